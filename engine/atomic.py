"""One atomic-write mechanism for every file the engine writes (risk state, reports, bars).

A writer gets a temporary path in the target's own directory (same file system), writes it
whole, and the temporary file replaces the target with ``os.replace`` after an fsync; the
directory is fsynced after the rename where the platform allows. Either the old or the new
content survives a crash; on any failure the temporary file is removed and the error re-raised
(the target is untouched).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _fsync_path(p: Path, directory: bool = False) -> None:
    try:
        fd = os.open(p, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return  # a directory cannot be opened for fsync on some platforms
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, the
    temporary file is fsynced and renamed over ``path`` (then the directory is fsynced). On an
    error the temporary file is removed and the error propagates. The parent directory must exist."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_path(target.parent, directory=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary directory beside ``path``; when the block ends without an error it
    replaces ``path`` as a whole (an existing directory is first renamed aside, then removed), and
    the parent directory is fsynced. On an error the temporary directory is removed and the error
    propagates; ``path`` is untouched. The writer fsyncs the files it writes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(target.parent, directory=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`); a new file gets ``mode``."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o600) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)
