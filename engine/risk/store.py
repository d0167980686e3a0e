"""Persisted risk state, the one-instance-per-account lock and the audit log (R-RISK-6).

Files in the state directory:
- ``risk_state.json``: the risk manager's counters and latches, written atomically (temporary
  file in the same directory, flush, fsync, ``os.replace``, fsync of the directory), so a crash
  mid-write leaves the previous file intact. A file that cannot be parsed, or lacks a key, raises
  :class:`RiskStateError` naming the file: the state is never silently reset.
- ``audit.jsonl``: one JSON object per line for every manual action (pause, resume, halt,
  reset, refused reset) and every automatic halt; each line is appended with a single
  ``os.write`` on an ``O_APPEND`` descriptor and fsynced.
- ``<account>.lock``: an exclusive ``fcntl.flock`` held while an instance trades the account;
  the holder's pid is written inside so that a second instance can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_text  # noqa: F401 - re-exported (one mechanism: engine.atomic)

STATE_FILE = "risk_state.json"
AUDIT_FILE = "audit.jsonl"
STATE_VERSION = 1


class RiskStateError(RuntimeError):
    """The persisted risk state cannot be read (corrupt JSON, wrong version, missing keys)."""


class AccountLockError(RuntimeError):
    """Another process holds the account lock; the message names its pid and the lock file."""


class AuditLog:
    """Append-only JSON-lines audit log. Each :meth:`append` writes one complete line with a
    single ``os.write`` on an ``O_APPEND`` descriptor (atomic with respect to other appenders on a
    local file system) and fsyncs it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            n = os.write(fd, line)
            if n != len(line):
                raise OSError(f"{self.path}: short audit write ({n} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        """Every record, oldest first. Raises :class:`RiskStateError` naming the line that is
        not valid JSON."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RiskStateError(f"{self.path}:{i}: not valid JSON: {exc}") from None
        return out


class RiskStateStore:
    """The risk state directory: ``load``/``save`` of ``risk_state.json`` and the audit log.

    ``save(state)`` takes a JSON-serialisable dict (no NaN); ``load()`` returns it, or None when
    no state was ever written. Raises :class:`RiskStateError` for an unreadable file.
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / STATE_FILE
        self.audit = AuditLog(self.dir / AUDIT_FILE)

    def save(self, state: dict[str, Any]) -> None:
        payload = {"version": STATE_VERSION, "state": state}
        atomic_write_text(self.path, json.dumps(payload, sort_keys=True, indent=1, allow_nan=False))

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            raw = self.path.read_text(encoding="utf-8")
            payload = json.loads(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RiskStateError(
                f"{self.path}: risk state is unreadable ({exc}); refusing to start with a blank "
                "state. Inspect the file and the audit log, then repair or move it away."
            ) from None
        if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION or not isinstance(
            payload.get("state"), dict
        ):
            raise RiskStateError(
                f"{self.path}: unexpected risk state layout (want version {STATE_VERSION} with a "
                f"'state' object, got {str(payload)[:120]!r})"
            )
        return payload["state"]


def _lock_name(account: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", account) or "default"
    return f"{name}.lock"


class AccountLock:
    """Exclusive per-account lock so that two instances never trade one account.

    ``AccountLock(dir, account).acquire()`` (or ``with AccountLock(...):``) takes a non-blocking
    ``fcntl.flock(LOCK_EX)`` on ``<dir>/<account>.lock`` and writes the holder's pid into it. The
    lock dies with the process (the kernel releases it), so a crash never leaves a stale lock.
    Raises :class:`AccountLockError` naming the holder's pid when another process holds it.
    """

    def __init__(self, directory: str | Path, account: str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.account = account
        self.path = self.dir / _lock_name(account)
        self._fd: int | None = None

    def acquire(self) -> "AccountLock":
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise AccountLockError(
                f"account {self.account!r} is already being traded by another instance "
                f"(pid {holder}, lock {self.path}); stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "AccountLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
