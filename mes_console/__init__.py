"""mes-console: the operator console (Textual App, widgets), CLI and runtime wiring."""

try:
    from engine import __version__
except ImportError as _exc:  # a stale mypyc build of the kernel: one line and exit 1, no traceback
    if type(_exc).__name__ != "StaleBuildError":
        raise
    import sys as _sys

    _sys.stderr.write(f"error: {_exc}\n")
    raise SystemExit(1) from None

__all__ = ["__version__"]
