"""The README's first command (`pip install -e .`, no extras) must install every module the
product imports at run time.

The dev extra hides a missing base dependency: `click` once arrived only through import-linter,
so the tests passed while every `mes-console` call died on a fresh machine. This test reads every
import statement of `engine/`, `mes_console/` and `screens/` (module level and inside functions),
maps each third-party module to the distribution that provides it in this environment, and
requires that distribution to be a base dependency of `pyproject.toml` or one of theirs
(transitively, extras excluded). An import inside `try: ... except ImportError` is optional by
construction and is not counted; nor is one under `if TYPE_CHECKING:`.

`.ci/run` also proves it for real: a fresh venv, `pip install -e .`, `mes-console --help`, every
module of the three packages imported, and the headless demo to its end.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"engine", "mes_console", "screens"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True when ``node`` sits in a try whose handlers catch ImportError, or under TYPE_CHECKING."""
    child, cur = node, parents.get(node)
    while cur is not None:
        if isinstance(cur, ast.Try) and child in cur.body:
            for h in cur.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    return True
        if isinstance(cur, ast.If) and "TYPE_CHECKING" in ast.unparse(cur.test):
            return True
        child, cur = cur, parents.get(cur)
    return False


def runtime_imports() -> dict[str, str]:
    """Top-level third-party module name -> the first file:line that imports it."""
    found: dict[str, str] = {}
    for pkg in sorted(FIRST_PARTY):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                if _optional(node, parents):
                    continue
                for m in mods:
                    top = m.split(".")[0]
                    if top in FIRST_PARTY or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def base_closure() -> set[str]:
    """Normalised names of the base dependencies and, transitively, of theirs (no extras)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = default_environment()
    todo = [Requirement(d) for d in deps]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = _norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue  # declared but absent here: pip would install it; nothing to follow
        todo.extend(Requirement(r) for r in (dist.requires or []))
    return seen


def not_in_base(imports: dict[str, str]) -> list[str]:
    """One line per imported module that no base dependency (transitively) provides."""
    providers = md.packages_distributions()
    closure = base_closure()
    missing = []
    for module, where in sorted(imports.items()):
        dists = {_norm(d) for d in providers.get(module, [])}
        if not dists:
            missing.append(f"{where}: `import {module}` is provided by no installed distribution")
        elif not dists & closure:
            missing.append(f"{where}: `import {module}` ({', '.join(sorted(dists))}) is not a base dependency")
    return missing


def test_every_runtime_import_is_a_base_dependency() -> None:
    missing = not_in_base(runtime_imports())
    assert not missing, "\n".join(missing)


def test_the_check_flags_a_dev_only_import() -> None:
    """Not vacuous: the scan finds the product's heavy imports, and a module that only the dev
    extra brings (pytest; click, which came only through import-linter) is flagged."""
    found = runtime_imports()
    assert {"numpy", "pandas", "torch", "textual", "typer", "optuna"} <= set(found)
    assert found["textual"].startswith(("mes_console/", "screens/"))
    flagged = not_in_base({"pytest": "planted.py:1", "numpy": "planted.py:2"})
    assert flagged == ["planted.py:1: `import pytest` (pytest) is not a base dependency"]


def test_optional_imports_are_recognised() -> None:
    src = "try:\n    import click\nexcept ImportError:\n    click = None\nimport zlib\n"
    tree = ast.parse(src)
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    imports = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Import)), key=lambda n: n.lineno)
    assert [_optional(n, parents) for n in imports] == [True, False]
