"""Logging for the engine: JSON lines for headless runs, a bounded ring for the console, and a
redaction filter that keeps secrets and tokens out of every record.

The engine logs through the standard library under the ``mes`` logger hierarchy
(``mes.risk``, ``mes.exec``, ...). Record times come from the engine clock when a session has
installed one (:func:`set_clock`), so a replay's log shows simulated time; otherwise from the
record's own creation time.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
from typing import Callable, Iterable

LOGGER_NAME = "mes"

_clock_ns: Callable[[], int] | None = None


def set_clock(now_ns: Callable[[], int] | None) -> None:
    """Stamp records with ``now_ns()`` (engine clock, UTC ns); ``None`` restores record time."""
    global _clock_ns
    _clock_ns = now_ns


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
    if _clock_ns is not None:
        try:
            return int(_clock_ns())
        except Exception:  # a broken clock must not break logging
            pass
    return int(record.created * 1e9)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ``ts_ns``, ``ts`` (ISO UTC), ``level``, ``logger``, ``msg``, and
    any ``extra={"event": ..., ...}`` fields given by the caller."""

    _STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        from datetime import datetime, timezone

        ts = _ts_ns(record)
        doc = {
            "ts_ns": ts,
            "ts": datetime.fromtimestamp(ts / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds"),
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
    console's log pane. Thread-safe; bounded memory."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self.records: collections.deque[tuple[int, str, str, str]] = collections.deque(maxlen=capacity)
        self.addFilter(REDACT)

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
    """Attach ``handlers`` (each gets the redaction filter) to the ``mes`` logger."""
    root = get_logger()
    root.setLevel(level)
    root.propagate = False
    for h in handlers:
        if REDACT not in h.filters:
            h.addFilter(REDACT)
        root.addHandler(h)
    return root


def json_handler(stream=None) -> logging.Handler:
    """A stream handler writing JSON lines (stderr by default)."""
    h = logging.StreamHandler(stream)
    h.setFormatter(JsonLinesFormatter())
    h.addFilter(REDACT)
    return h


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
    return h


def reset() -> None:
    """Remove every handler from the ``mes`` logger (tests, re-initialisation). A
    ``NullHandler`` stays, so an embedding program that installs nothing gets no stray output
    from Python's last-resort handler (library convention)."""
    root = get_logger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(logging.NullHandler())


get_logger().addHandler(logging.NullHandler())
