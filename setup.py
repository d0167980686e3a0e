"""Build hook: compiles the backtest kernel's hot modules with mypyc (the SAME source, one kernel).

Everything else is in pyproject.toml. A plain ``pip install -e .`` installs the PURE-PYTHON kernel
(and removes an earlier build, whose modules would shadow the .py files). The compiled kernel is
opt-in: ``mes-console build`` runs ``python setup.py build_ext --inplace`` with ``MES_MYPYC=1``
(mypy must be installed: the ``fast`` or ``dev`` extra) and shows its progress; it leaves one
extension module per listed file beside its .py (``engine/kernel.cpython-311-*.so``). Python
imports the .so before the .py, so after editing one of these files rebuild with
``mes-console build``, or ``mes-console build --clean`` to run the .py source; ``import engine``
refuses a build older than its source. A machine that cannot compile (no C compiler, mypyc
refuses the source) keeps the pure-Python kernel, with a warning block that names the cause: the
same rules, only slower (``bench/bench_backtest.py`` prints which kernel it ran).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildExtFresh(build_ext):
    """build_ext that stamps the in-place extension modules with the build time.

    setuptools copies them with the build directory's times, and an unchanged module's stub is
    not rebuilt at all; engine/__init__.py refuses a .so older than its .py (a stale build), so
    every module built together gets this build's time."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure: install pure Python, loudly
            _warn_pure(f"compiling failed ({type(exc).__name__}: {exc})")
            _remove_built()
            return
        root = os.path.dirname(os.path.abspath(__file__))
        for d, _dirs, files in os.walk(os.path.join(root, "engine")):
            for f in files:
                if f.endswith(".so"):
                    os.utime(os.path.join(d, f))

def _warn_pure(why: str) -> None:
    bar = "=" * 78
    sys.stderr.write(f"\n{bar}\nmes-console: {why}; keeping the PURE-PYTHON kernel (same rules, 2-3x\n"
                     f"slower kernel steps, see specs/backtest.md).\n{bar}\n\n")


def _remove_built() -> None:
    """Delete every compiled kernel module a failed build left behind (a partial build must not
    shadow the .py source)."""
    root = os.path.dirname(os.path.abspath(__file__))
    for d, _dirs, files in os.walk(os.path.join(root, "engine")):
        for f in files:
            if f.endswith(".so"):
                os.remove(os.path.join(d, f))
    for f in os.listdir(root):
        if f.endswith(".so") and "__mypyc" in f:
            os.remove(os.path.join(root, f))


# the per-step path: step -> clock -> kernel -> venue -> events -> OCO manager -> position book -> risk manager
COMPILED = [
    "engine/step.py",
    "engine/clock.py",
    "engine/kernel.py",
    "engine/execution/oco.py",
    "engine/execution/orders.py",
    "engine/execution/position.py",
    "engine/execution/signals.py",
    "engine/venue/base.py",
    "engine/venue/sim.py",
    "engine/risk/manager.py",
    "engine/risk/sizing.py",
    "engine/risk/stops.py",
    "engine/backtest/runner.py",
]

# mypycify type-checks the whole import graph (~2-3 min): only for the commands that build, not for
# the metadata steps pip runs first (egg_info, dist_info)
_BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}
ext_modules = []
# Opt-in: `mes-console build` sets MES_MYPYC=1 (a plain `pip install -e .` stays pure Python: the
# README's first command must not spend ~3 min in a silent compile; see specs/backtest.md)
_WANT = os.environ.get("MES_MYPYC", "") in ("1", "true", "yes") and \
    os.environ.get("MES_NO_MYPYC", "") not in ("1", "true", "yes")
if _BUILDS & set(sys.argv[1:]) and _WANT:
    try:
        from mypyc.build import mypycify

        ext_modules = mypycify(COMPILED, opt_level="3")
    except BaseException as exc:  # noqa: BLE001 - mypyc's type check exits via SystemExit
        _warn_pure(f"mypyc could not compile the kernel ({type(exc).__name__}: {exc})")
        ext_modules = []

if _BUILDS & set(sys.argv[1:]) and not ext_modules:
    # a pure-Python install (MES_NO_MYPYC=1, or mypyc refused the source): an earlier build's
    # modules must not shadow the .py files (their shared library would no longer be importable
    # through the editable install)
    _remove_built()

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExtFresh})
