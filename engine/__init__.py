"""mes-console trading engine.

The engine holds everything that trades: data, sessions, features, models, risk, execution,
simulation and the broker adapters. It never imports the user interface (``textual``, ``rich``,
``mes_console`` or ``screens``); a test in ``tests/test_import_hygiene.py`` enforces that.
"""

__version__ = "0.1.0"


class StaleBuildError(ImportError):
    """A compiled kernel module (mypyc ``.so``) is older than its ``.py`` source.

    ``checkout`` is the directory holding ``engine/`` (where the build lives)."""

    def __init__(self, message: str, checkout: str) -> None:
        super().__init__(message)
        self.checkout = checkout


def _check_compiled_build() -> None:
    """Refuse to run a stale mypyc build (setup.py compiles the kernel's hot modules in place).

    Python imports ``X.cpython-*.so`` before ``X.py``: after ``X.py`` is edited (or changed by a
    git checkout/merge) the old compiled rules would run silently. Raises ImportError naming the
    file and the rebuild command when any such .so is older than its .py; a source tree without a
    build (no .so) runs the .py files. Cost: one directory walk of engine/ at import (~1 ms)."""
    import os

    root = os.path.dirname(os.path.abspath(__file__))
    for d, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(".so") and ".cpython-" in f:
                py = os.path.join(d, f.split(".", 1)[0] + ".py")
                if os.path.exists(py) and os.path.getmtime(py) > os.path.getmtime(os.path.join(d, f)):
                    raise StaleBuildError(
                        f"{os.path.relpath(py, os.path.dirname(root))} is newer than its mypyc build {f}: "
                        "rebuild with `mes-console build`, or run the pure-Python source with "
                        "`mes-console build --clean` (or `find engine -name '*.so' -delete`)",
                        os.path.dirname(root))


_check_compiled_build()
