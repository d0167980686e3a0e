"""mes-console: the operator console (Textual App, widgets), CLI and runtime wiring."""

import sys as _sys

try:
    from engine import __version__
except ImportError as _exc:  # a stale mypyc build of the kernel: one line and exit 1, no traceback
    if type(_exc).__name__ != "StaleBuildError":
        raise
    if _sys.argv[1:2] == ["build"]:
        # `mes-console build [--clean]` replaces (or removes) the stale build: drop it first so
        # that the command itself runs on the .py source
        from pathlib import Path as _Path

        _root = _Path(_exc.checkout)  # type: ignore[attr-defined]
        for _so in [*(_root / "engine").rglob("*.cpython-*.so"), *_root.glob("*__mypyc*.so")]:
            _so.unlink()
        from engine import __version__
    else:
        _sys.stderr.write(f"error: {_exc}\n")
        raise SystemExit(1) from None

__all__ = ["__version__"]
