"""Logging for the engine: JSON lines for headless runs, a bounded ring for the console, and a
redaction filter that keeps secrets and tokens out of every record.

The engine logs through the standard library under the ``mes`` logger hierarchy
(``mes.risk``, ``mes.exec``, ...); a paper/live command attaches the same handlers to the
``engine`` hierarchy (the broker layer). Every handler made or installed here carries a
:class:`ClockGate`, which stamps each record once (the same time on every handler).

**Record times (UTC ns)** — the rule:

- No engine clock installed (:func:`set_clock` never called, or ``set_clock(None)``): a record
  carries its creation time (the wall clock), labelled ``"clock": "wall"``.
- An engine clock installed and started (``now_ns()`` > 0: a replay's simulated clock from its
  first bar, a live session's wall clock at once): a record carries ``now_ns()``, labelled
  ``"clock": "engine"``.
- An engine clock installed but not started yet (``now_ns()`` reads 0/None: a paper session's
  exchange clock before the first market event), and from :func:`hold` until a clock is installed:
  records are **held** in order (at most :data:`HOLD_MAX` records) and released, in order, as soon
  as the clock has started (checked on every record, by :func:`poll` and by :func:`set_clock`),
  stamped with the engine clock's first reading and labelled ``"clock": "engine", "held": true``:
  the log's ``ts_ns`` never goes backwards across the start.
- Held records are released at once, stamped with their creation (wall) time and labelled
  ``"clock": "wall", "held": true``, when the session ends or fails before its clock started
  (:func:`set_clock` ``(None)``, :func:`release`, :func:`reset`, the :func:`holding` context
  manager's exit, interpreter exit), when more than :data:`HOLD_MAX` are held (the oldest), and
  when an ERROR or CRITICAL record arrives (everything held before it, then the error itself,
  ``"held": false``; the records after it are held again): an operator watching a headless
  start-up sees a failure when it happens, with its context, never after a time-out or not at
  all. INFO and WARNING records stay held: start-up warnings are routine
  (a model threshold note, a reconnect), the wait for the first market event is bounded by the
  start-up time-out, and keeping them held keeps the log in one time base.

Nothing is ever dropped. Every JSON line also carries ``wall_ts`` (ISO UTC, ms: the real time the
record was made), so the wall time of a held record is never lost.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import re
import threading
from typing import Callable, Iterable, Iterator

LOGGER_NAME = "mes"

HOLD_MAX = 10_000
"""At most this many records are held while the engine clock has not started; beyond it the
oldest is released at once, wall-stamped (module docstring)."""

_lock = threading.RLock()          # guards the clock state and the held records (reentrant: a
                                   # release re-enters the gate through ``Handler.handle``)
_clock_ns: Callable[[], int] | None = None
_hold = False                      # hold records until ``_clock_ns`` reads > 0
_held: collections.deque[logging.LogRecord] = collections.deque()

# the stamp a record carries once it passed a gate (private attributes: JSON lines skip "_" keys)
_TS, _CLOCK, _HELD, _HANDLERS = "_mes_ts_ns", "_mes_clock", "_mes_held", "_mes_hold_handlers"


def set_clock(now_ns: Callable[[], int] | None) -> None:
    """Stamp records with ``now_ns()`` (the engine clock, UTC ns). While it reads 0/None (not
    started) records are held, then released stamped with its first reading (module
    docstring); when it has started already, anything held is released now. ``None``: release
    whatever is held (wall-stamped, labelled) and stamp records with their creation time."""
    global _clock_ns, _hold
    with _lock:
        if now_ns is None:
            _release_wall()
            _clock_ns = None
            return
        _clock_ns = now_ns
        _hold = True
        _check_started()


def hold() -> None:
    """Hold records from now on until :func:`set_clock` installs a started clock (or the held
    records are released: :func:`release`, ``set_clock(None)``, :func:`reset`). A command calls
    it right after :func:`install`, before the session that owns the engine clock is built, so
    the records of the build are stamped with the engine clock too."""
    global _hold
    with _lock:
        _hold = True


def release() -> None:
    """Write every held record now, in order, wall-stamped and labelled (``"clock": "wall",
    "held": true``), and hold no more: until the clock starts, records are written at once,
    wall-stamped. For a session that ended or failed before its clock started. Never raises."""
    with _lock:
        _release_wall()


def poll() -> None:
    """Release the held records if the engine clock has started (cheap; a session's loop or a
    command may call it right after the clock starts, not to wait for the next record)."""
    with _lock:
        _check_started()


@contextlib.contextmanager
def holding(now_ns: Callable[[], int] | None = None) -> Iterator[None]:
    """``with holding(clock):`` hold records (:func:`hold`; :func:`set_clock` ``(now_ns)`` when
    given) and, on the way out, normal or by an exception, ``set_clock(None)``: nothing held is
    ever lost."""
    if now_ns is None:
        hold()
    else:
        set_clock(now_ns)
    try:
        yield
    finally:
        set_clock(None)


def _read_clock() -> int:
    if _clock_ns is None:
        return 0
    try:
        return int(_clock_ns() or 0)
    except Exception:  # a broken clock must not break logging: read as "not started"
        return 0


def _stamp(record: logging.LogRecord, ts_ns: int, clock: str, held: bool) -> None:
    d = record.__dict__
    d[_TS], d[_CLOCK], d[_HELD] = int(ts_ns), clock, held


def _wall_ns(record: logging.LogRecord) -> int:
    return int(record.created * 1e9)


def _emit_held(record: logging.LogRecord) -> None:
    for h in record.__dict__.pop(_HANDLERS, ()):
        try:
            h.handle(record)      # its gate lets a stamped record through
        except Exception:  # pragma: no cover - logging must never raise into the engine
            pass


def _release(first_ns: int | None) -> None:
    """Under ``_lock``: emit the held records in order, stamped ``first_ns`` (engine) or their
    own creation time (wall, ``None``)."""
    while _held:
        rec = _held.popleft()
        if first_ns is None:
            _stamp(rec, _wall_ns(rec), "wall", True)
        else:
            _stamp(rec, first_ns, "engine", True)
        _emit_held(rec)


def _release_wall() -> None:
    global _hold
    _hold = False
    _release(None)


def _check_started() -> int:
    """Under ``_lock``, while holding: the clock's reading; when it has started, release the
    held records stamped with it and stop holding."""
    global _hold
    now = _read_clock()
    if _hold and now > 0:
        _hold = False
        _release(now)
    return now


def _admit(handler: logging.Handler, record: logging.LogRecord) -> bool:
    """The gate (module docstring): True when ``handler`` may write ``record`` now (stamped);
    False when it is held (``handler`` remembered with it). Never raises."""
    try:
        d = record.__dict__
        if _TS in d:
            return True
        with _lock:
            if _TS in d:            # stamped meanwhile (released by another thread)
                return True
            hs = d.get(_HANDLERS)
            if hs is not None:      # held for another handler already: held for this one too
                hs.append(handler)
                return False
            if _hold:
                now = _check_started()
                if _hold:
                    if record.levelno >= logging.ERROR:   # now, after what was held before it
                        _release(None)
                        _stamp(record, _wall_ns(record), "wall", False)
                        return True
                    d[_HANDLERS] = [handler]
                    _held.append(record)
                    while len(_held) > HOLD_MAX:     # the oldest, at once, wall-stamped
                        old = _held.popleft()
                        _stamp(old, _wall_ns(old), "wall", True)
                        _emit_held(old)
                    return False
            else:
                now = _read_clock()
            if now > 0:
                _stamp(record, now, "engine", False)
            else:
                _stamp(record, _wall_ns(record), "wall", False)
            return True
    except Exception:  # pragma: no cover - logging must never raise into the engine
        return True


class ClockGate(logging.Filter):
    """The per-handler filter that stamps, holds and releases records (module docstring).
    :func:`install` and the handler factories here add one to every handler."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        return _admit(self.handler, record)


def _gate(h: logging.Handler) -> logging.Handler:
    if not any(isinstance(f, ClockGate) for f in h.filters):
        h.addFilter(ClockGate(h))
    return h


def get_logger(name: str = "") -> logging.Logger:
    """``mes`` or ``mes.<name>``."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


class RedactFilter(logging.Filter):
    """Replaces every registered secret (API keys, tokens) in a record's message and args by
    ``****``. Secrets are registered with :meth:`add`; JWT-looking strings and ``Bearer ...``
    headers are redacted whether registered or not."""

    _JWT = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")
    _BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"]+")

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(s, "****")
        text = self._JWT.sub("****", text)
        return self._BEARER.sub(r"\1****", text)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = self.redact(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(text)
        return True


REDACT = RedactFilter()
"""The process-wide redaction filter, installed on every handler made here."""


def _ts_ns(record: logging.LogRecord) -> int:
    """The record's time (UTC ns): its gate's stamp; a record that passed no gate (a handler
    made elsewhere) reads the engine clock when it has started, else its creation time."""
    return int(_stamp_of(record)[0])


def _stamp_of(record: logging.LogRecord) -> tuple[int, str, bool]:
    d = record.__dict__
    if _TS in d:
        return int(d[_TS]), str(d[_CLOCK]), bool(d[_HELD])
    now = _read_clock()
    return (now, "engine", False) if now > 0 else (_wall_ns(record), "wall", False)


def _iso(ts_ns: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ``ts_ns`` (UTC ns) and ``ts`` (ISO UTC, ms): the record's time
    by the rule of the module docstring; ``clock``: ``"engine"`` or ``"wall"``, the clock
    ``ts_ns`` was read from; ``held``: true for a record held while the engine clock had not
    started and released later; ``wall_ts`` (ISO UTC, ms): the real time the record was made;
    ``level``, ``logger``, ``msg``, and any ``extra={"event": ..., ...}`` fields given by the
    caller."""

    _STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        ts, clock, held = _stamp_of(record)
        doc = {
            "ts_ns": ts,
            "ts": _iso(ts),
            "clock": clock,
            "held": held,
            "wall_ts": _iso(_wall_ns(record)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in self._STD and not k.startswith("_"):
                doc[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
        if record.exc_info:
            doc["exc"] = record.exc_text or self.formatException(record.exc_info)
        return REDACT.redact(json.dumps(doc, default=str))


class RingHandler(logging.Handler):
    """Keeps the last ``capacity`` records as ``(ts_ns, level, logger, message)`` tuples for the
    console's log pane (``ts_ns``: UTC ns by the rule of the module docstring: a record held
    while the engine clock had not started enters the ring when it is released). Thread-safe;
    bounded memory."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self.records: collections.deque[tuple[int, str, str, str]] = collections.deque(maxlen=capacity)
        self.addFilter(REDACT)
        _gate(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append((_ts_ns(record), record.levelname, record.name, record.getMessage()))
        except Exception:  # pragma: no cover - logging must never raise into the engine
            self.handleError(record)

    def tail(self, n: int = 50, min_level: int = logging.DEBUG) -> list[tuple[int, str, str, str]]:
        """The last ``n`` records at or above ``min_level``, oldest first."""
        out = [r for r in list(self.records) if logging.getLevelName(r[1]) >= min_level]
        return out[-n:]


def install(handlers: Iterable[logging.Handler], level: int = logging.INFO) -> logging.Logger:
    """Attach ``handlers`` (each gets the redaction filter and a :class:`ClockGate`) to the
    ``mes`` logger."""
    root = get_logger()
    root.setLevel(level)
    root.propagate = False
    for h in handlers:
        if REDACT not in h.filters:
            h.addFilter(REDACT)
        _gate(h)
        root.addHandler(h)
    return root


def json_handler(stream=None) -> logging.Handler:
    """A stream handler writing JSON lines (stderr by default)."""
    h = logging.StreamHandler(stream)
    h.setFormatter(JsonLinesFormatter())
    h.addFilter(REDACT)
    return _gate(h)


def file_handler(log_dir, name: str = "mes-console.jsonl", *, max_bytes: int = 10_000_000,
                 backups: int = 10) -> logging.Handler:
    """A rotating file handler writing the same JSON lines as :func:`json_handler` to
    ``<log_dir>/<name>`` (directory created): rotated at ``max_bytes`` bytes, ``backups`` older
    files kept (``.1`` … ``.N``), UTF-8, flushed on every record. Raises ``OSError`` when the
    directory cannot be created or the file opened."""
    from logging.handlers import RotatingFileHandler
    from pathlib import Path

    d = Path(log_dir)
    d.mkdir(parents=True, exist_ok=True)
    h = RotatingFileHandler(d / name, maxBytes=int(max_bytes), backupCount=int(backups), encoding="utf-8")
    h.setFormatter(JsonLinesFormatter())
    h.addFilter(REDACT)
    return _gate(h)


def reset() -> None:
    """Undo :func:`install`: remove every handler from the ``mes`` logger and give it back its
    import-time level (NOTSET) and propagation (True: an embedding program's or pytest's
    handlers on the root logger see its records again; :func:`install` turns propagation off).
    A ``NullHandler`` stays, so an embedding program that installs nothing gets no stray output
    from Python's last-resort handler (library convention). Held records are released first
    (:func:`release`): nothing is lost."""
    release()
    root = get_logger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.NOTSET)
    root.propagate = True


get_logger().addHandler(logging.NullHandler())
atexit.register(release)   # a process ending while records are held still writes them
