"""Loading a strategy from a ``--strategy`` spec, and checking every signal it makes.

Spec forms (specs/strategy.md):

- ``baseline`` / ``random``: the built-in strategies;
- ``path/to/file.py:ClassName`` (or ``path/to/file.py`` holding exactly one strategy class); the
  file's folder is appended to ``sys.path`` so that modules beside it import;
- ``package.module:ClassName`` (an importable module);
- a name registered in the entry-point group ``mes_console.strategies`` (``[project.entry-points
  ."mes_console.strategies"] mine = "pkg.mod:Mine"``).

Every problem with the user's file is a :class:`StrategyError` (a ``ValueError``: the CLI's exit
code 3) with ONE line naming the file, the class and the problem: an import error (with its
line), a missing ``signals`` method, a bad parameter, and, from :func:`check_signals`, an
exception inside ``signals``, a result that is no ``StrategySignals``, arrays of the wrong
length or dtype, NaN or out-of-range directions, a signal without a finite confidence in
[0, 1]. A signal that fails a check is never traded: the caller gets the error, not the arrays.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.strategy.base import StrategySignals

ENTRY_POINT_GROUP = "mes_console.strategies"
BUILTINS = ("baseline", "random")
DEFAULT_WINDOW = 1000
"""Trailing window (bars) a session evaluates a strategy on when it declares no ``warmup``."""


class StrategyError(ValueError):
    """A strategy that cannot be loaded or made a bad signal: one line naming the file, the
    class and the problem."""


@dataclass
class LoadedStrategy:
    """A strategy instance with where it came from; implements the Strategy protocol with every
    batch checked (:func:`check_signals`).

    ``spec``: the ``--strategy`` text; ``where``: ``file.py:Class`` / ``module:Class`` /
    ``builtin``; ``source``: the file (or None); ``sha``: first 12 hex of the file's sha256 (or
    the version for a module without a file); ``params``: the parameter values it was built with."""

    impl: Any
    spec: str
    where: str
    source: Path | None
    sha: str
    params: dict = field(default_factory=dict)
    cls: Any = None

    @property
    def name(self) -> str:
        return str(getattr(self.impl, "name", "") or type(self.impl).__name__)

    @property
    def version(self) -> str:
        return str(getattr(self.impl, "version", "") or "")

    @property
    def warmup(self) -> int:
        """Declared warm-up (bars); 0 when not declared."""
        try:
            return max(int(getattr(self.impl, "warmup", 0) or 0), 0)
        except (TypeError, ValueError):
            raise StrategyError(f"{self.where}: warmup = {getattr(self.impl, 'warmup', None)!r} is not a number of bars") from None

    @property
    def window(self) -> int:
        """The trailing window (bars) a session evaluates ``signals`` on: ``warmup + 1``, or
        :data:`DEFAULT_WINDOW` without a declared warm-up."""
        w = self.warmup
        return w + 1 if w > 0 else DEFAULT_WINDOW

    @property
    def has_update(self) -> bool:
        return callable(getattr(self.impl, "update", None))

    @property
    def declared(self) -> tuple:
        """The declared :class:`engine.strategy.api.Param` tuple (empty for a plain class)."""
        p = getattr(self.impl, "params", ())
        return tuple(p) if isinstance(p, (tuple, list)) else ()

    def label(self) -> str:
        v = f" v{self.version}" if self.version else ""
        return f"{self.name}{v} ({self.where})"

    def describe(self) -> dict:
        """What reports and the journal record: name, version, where, file hash, parameters."""
        return {"name": self.name, "version": self.version, "where": self.where, "spec": self.spec,
                "sha": self.sha, "params": dict(self.params)}

    def identity(self) -> str:
        """Key of the analysis records (:mod:`engine.strategy.analysis`): where, version, file
        hash and parameters."""
        ps = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.where}|v{self.version}|{self.sha}|{ps}"

    def signals(self, bars) -> StrategySignals:
        """The strategy's batch signals on ``bars``, checked (:func:`check_signals`). Raises
        :class:`StrategyError`."""
        try:
            out = self.impl.signals(bars)
        except StrategyError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code: one line naming it
            raise StrategyError(f"{self.where}: signals() raised {type(exc).__name__}: {_one_line(exc)}"
                                f"{_user_line(exc, self.source)}") from None
        return check_signals(out, len(bars), self.where)

    def with_params(self, values: dict) -> "LoadedStrategy":
        """A new instance of the same class with ``values`` (declared parameters)."""
        return _instantiate(self.cls, self.spec, self.where, self.source, self.sha, dict(values))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _user_line(exc: BaseException, source: Path | None) -> str:
    """`` (line N)`` of the deepest traceback frame in the user's file, or ''."""
    if source is None:
        return ""
    tb = exc.__traceback__
    line = None
    src = str(source)
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == src:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line else ""


def check_signals(out: Any, n: int, where: str) -> StrategySignals:
    """``out`` checked as the signals of ``n`` bars and returned normalised (int8 direction,
    float64 confidence, int8 class). Raises :class:`StrategyError` naming ``where`` and the
    first offending bar: not a StrategySignals, a length other than ``n``, a non-integer
    direction dtype, NaN directions, directions outside -1/0/+1, a signal whose confidence is
    not a finite number in [0, 1]."""
    if not isinstance(out, StrategySignals):
        raise StrategyError(f"{where}: signals() returned {type(out).__name__}, expected StrategySignals "
                            "(engine.strategy.api.make_signals builds one from a direction array)")
    d, conf, cls = np.asarray(out.direction), np.asarray(out.confidence), np.asarray(out.pred_class)
    for what, a in (("direction", d), ("confidence", conf), ("pred_class", cls)):
        if a.ndim != 1 or len(a) != n:
            raise StrategyError(f"{where}: signals() returned {what} of shape {a.shape} for {n} bars "
                                f"(one value per bar expected)")
    if d.dtype.kind == "f" and np.isnan(d).any():
        raise StrategyError(f"{where}: direction is NaN at bar {int(np.flatnonzero(np.isnan(d))[0])} "
                            "(0 = no signal; NaN is never a direction)")
    if d.dtype.kind not in "iub":
        raise StrategyError(f"{where}: direction has dtype {d.dtype}, expected an integer type (int8 -1/0/+1)")
    bad = np.flatnonzero((d < -1) | (d > 1))
    if len(bad):
        raise StrategyError(f"{where}: direction {int(d[bad[0]])} at bar {int(bad[0])} (allowed -1, 0, +1)")
    if conf.dtype.kind not in "fiu":
        raise StrategyError(f"{where}: confidence has dtype {conf.dtype}, expected float64")
    if cls.dtype.kind not in "iu":
        raise StrategyError(f"{where}: pred_class has dtype {cls.dtype}, expected an integer type (int8)")
    conf = conf.astype(np.float64, copy=False)
    on = d != 0
    badc = np.flatnonzero(on & ~(np.isfinite(conf) & (conf >= 0.0) & (conf <= 1.0)))
    if len(badc):
        raise StrategyError(f"{where}: the signal at bar {int(badc[0])} has confidence {conf[badc[0]]!r} "
                            "(a finite number in [0, 1] expected)")
    return StrategySignals(d.astype(np.int8, copy=False), conf, cls.astype(np.int8, copy=False))


# ----------------------------------------------------------------------------- loading
def load_strategy(spec: str, params: dict | None = None, *, builtin_kw: dict | None = None) -> LoadedStrategy:
    """The strategy named by ``spec`` (module docstring), built with ``params`` (declared
    parameters; values may be strings from ``--param NAME=VALUE``). ``builtin_kw``: keyword
    arguments of a built-in (``lookback``, ``seed``). Raises :class:`StrategyError`."""
    spec = str(spec).strip()
    if not spec:
        raise StrategyError("--strategy: empty")
    if spec in BUILTINS:
        from engine.strategy import strategy_by_name

        if params:
            raise StrategyError(f"{spec}: the built-in strategy declares no parameters (--param)")
        inst = strategy_by_name(spec, **(builtin_kw or {}))
        return LoadedStrategy(inst, spec, f"builtin:{spec}", None, "builtin", {}, type(inst))
    cls, where, source, sha = _resolve(spec)
    return _instantiate(cls, spec, where, source, sha, dict(params or {}))


def _resolve(spec: str) -> tuple[Any, str, Path | None, str]:
    path_part, _, cls_name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if path_part.endswith(".py") or spec.endswith(".py"):
        if not path_part:
            path_part, cls_name = spec, ""
        return _from_file(Path(path_part).expanduser(), cls_name)
    if cls_name and path_part:
        try:
            mod = importlib.import_module(path_part)
        except Exception as exc:  # noqa: BLE001 - the user's module
            raise StrategyError(f"{spec}: cannot import module {path_part}: {type(exc).__name__}: {_one_line(exc)}") from None
        src = Path(getattr(mod, "__file__", "") or "") if getattr(mod, "__file__", None) else None
        return _pick_class(mod, cls_name, f"{path_part}:{cls_name}"), f"{path_part}:{cls_name}", src, _sha(src)
    ep = _entry_points().get(spec)
    if ep is None:
        names = sorted(set(BUILTINS) | set(_entry_points()))
        raise StrategyError(f"unknown strategy {spec!r}: not a built-in, a file.py:Class, a module:Class or a "
                            f"registered entry point (group {ENTRY_POINT_GROUP}); known names: {', '.join(names)}")
    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001
        raise StrategyError(f"entry point {spec} = {ep.value}: {type(exc).__name__}: {_one_line(exc)}") from None
    ep_mod = sys.modules.get(getattr(cls, "__module__", ""), None)
    ep_file = getattr(ep_mod, "__file__", None)
    src = Path(ep_file) if ep_file else None
    _check_class(cls, ep.value)
    return cls, ep.value, src, _sha(src)


def _sha(path: Path | None) -> str:
    if path is None or not path.is_file():
        return "none"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _from_file(path: Path, cls_name: str) -> tuple[Any, str, Path, str]:
    if not path.is_file():
        raise StrategyError(f"{path}: no such strategy file")
    path = path.resolve()
    sha = _sha(path)
    mod_name = f"mes_user_strategy_{path.stem}_{sha}"
    mod = sys.modules.get(mod_name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise StrategyError(f"{path}: cannot be loaded as a Python module")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod
        if str(path.parent) not in sys.path:   # helpers beside the file import (appended: never shadows)
            sys.path.append(str(path.parent))
        try:
            spec.loader.exec_module(mod)
        except SyntaxError as exc:
            sys.modules.pop(mod_name, None)
            raise StrategyError(f"{path}: import failed: SyntaxError: {exc.msg} (line {exc.lineno})") from None
        except Exception as exc:  # noqa: BLE001 - the user's file: one line naming it
            sys.modules.pop(mod_name, None)
            raise StrategyError(f"{path}: import failed: {type(exc).__name__}: {_one_line(exc)}"
                                f"{_user_line(exc, path)}") from None
    where_file = str(path)
    if not cls_name:
        found = strategy_classes(mod)
        if len(found) != 1:
            raise StrategyError(f"{path}: {len(found)} strategy classes ({', '.join(found) or 'none'}); "
                                f"name one: {path}:ClassName")
        cls_name = found[0]
    return _pick_class(mod, cls_name, f"{where_file}:{cls_name}"), f"{where_file}:{cls_name}", path, sha


def strategy_classes(mod: Any) -> list[str]:
    """Names of the classes defined in module ``mod`` that have a ``signals`` method."""
    out = []
    for k, v in vars(mod).items():
        if (isinstance(v, type) and getattr(v, "__module__", None) == mod.__name__
                and callable(getattr(v, "signals", None))):
            out.append(k)
    return out


def _base():
    from engine.strategy.api import StrategyBase

    return StrategyBase


def _pick_class(mod: Any, cls_name: str, where: str) -> Any:
    cls = getattr(mod, cls_name, None)
    if cls is None:
        have = strategy_classes(mod)
        raise StrategyError(f"{where}: no class {cls_name!r} in the module"
                            + (f" (strategy classes there: {', '.join(have)})" if have else ""))
    _check_class(cls, where)
    return cls


def _check_class(cls: Any, where: str) -> None:
    if not isinstance(cls, type):
        raise StrategyError(f"{where}: is a {type(cls).__name__}, not a class")
    sig = getattr(cls, "signals", None)
    if not callable(sig):
        raise StrategyError(f"{where}: missing method signals(self, bars) -> StrategySignals")
    if sig is getattr(_base(), "signals", None):
        raise StrategyError(f"{where}: missing method signals(self, bars) -> StrategySignals "
                            "(StrategyBase's is abstract)")


def _instantiate(cls: Any, spec: str, where: str, source: Path | None, sha: str, params: dict) -> LoadedStrategy:
    declared = getattr(cls, "params", ())
    declared = tuple(declared) if isinstance(declared, (tuple, list)) else ()
    if params and not declared:
        raise StrategyError(f"{where}: parameters {', '.join(sorted(params))} given, but the class declares none")
    known = {p.name: p for p in declared}
    values: dict = {}
    for k, v in params.items():
        if k not in known:
            raise StrategyError(f"{where}: unknown parameter {k!r}; declared: {', '.join(known)}")
        try:
            values[k] = known[k].coerce(v)
        except ValueError as exc:
            raise StrategyError(f"{where}: {exc}") from None
    try:
        inst = cls(**values)
    except Exception as exc:  # noqa: BLE001 - the user's __init__
        raise StrategyError(f"{where}: creating the strategy failed: {type(exc).__name__}: {_one_line(exc)}"
                            f"{_user_line(exc, source)}") from None
    full = {p.name: getattr(inst, p.name, p.default) for p in declared}
    return LoadedStrategy(inst, spec, where, source, sha if sha != "none" else str(getattr(cls, "version", "none")),
                          full, cls)


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["NAME=VALUE", ...]`` (``--param``) → dict. Raises :class:`StrategyError` naming a bad item."""
    out: dict[str, str] = {}
    for it in items or []:
        k, eq, v = it.partition("=")
        if not eq or not k.strip():
            raise StrategyError(f"--param {it!r}: expected NAME=VALUE")
        out[k.strip()] = v.strip()
    return out


# ----------------------------------------------------------------------------- discovery
def _entry_points() -> dict:
    from importlib.metadata import entry_points

    try:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # noqa: BLE001 - a broken distribution must not hide the built-ins
        return {}


def discover(dirs: list[Path] | None = None) -> list[dict]:
    """The strategies found: the built-ins, the entry points of :data:`ENTRY_POINT_GROUP`, and
    the classes with a ``signals`` method in the ``*.py`` files of ``dirs`` (found by reading the
    source, never importing it). Each: ``{"spec", "name", "kind", "where"}``."""
    import ast

    out = [{"spec": b, "name": b, "kind": "builtin", "where": "engine.strategy"} for b in BUILTINS]
    for name, ep in sorted(_entry_points().items()):
        out.append({"spec": name, "name": name, "kind": "entry point", "where": ep.value})
    for d in dirs or []:
        if not Path(d).is_dir():
            continue
        for f in sorted(Path(d).glob("*.py")):
            if f.name.startswith(("_", "test_")):
                continue
            try:
                tree = ast.parse(f.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError):
                out.append({"spec": str(f), "name": f.stem, "kind": "file (unreadable)", "where": str(f)})
                continue
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and any(
                        isinstance(x, ast.FunctionDef) and x.name == "signals" for x in node.body):
                    out.append({"spec": f"{f}:{node.name}", "name": node.name, "kind": "file", "where": str(f)})
    return out


def default_dirs() -> list[Path]:
    """Folders :func:`discover` reads by default: ``./strategies`` and the project's
    ``examples/strategies``."""
    root = Path(__file__).resolve().parents[2]
    return [Path.cwd() / "strategies", root / "examples" / "strategies"]


__all__ = ["StrategyError", "LoadedStrategy", "load_strategy", "check_signals", "discover", "default_dirs",
           "parse_params", "strategy_classes", "ENTRY_POINT_GROUP", "BUILTINS", "DEFAULT_WINDOW"]
