"""`mes-console build`: the compiled kernel is opt-in, and a stale build is refused with the command
that mends it, which itself runs although the build is stale.

The compile itself (~2.5 min) is not repeated here: the README's test command (and so CI) runs
`mes-console build` before the suite, and tests/test_exec_kernel.py checks what it produced."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mes_console.commands.build import _compiled_list, _stage

ROOT = Path(__file__).resolve().parents[1]


def test_compiled_list_is_setup_pys_and_names_real_files() -> None:
    mods = _compiled_list(ROOT)
    assert "engine/kernel.py" in mods and "engine/risk/manager.py" in mods
    assert all((ROOT / m).is_file() for m in mods)


def test_progress_counts_modules_from_build_ext_output() -> None:
    text, done = _stage("building 'engine.kernel' extension\n", 0, 14)
    assert (text, done) == ("compiling C: 1/14 extensions started (the shared kernel library takes longest)", 1)
    assert _stage("gcc -O3 -c build/engine/kernel.c\n", 1, 14) == ("", 1)
    assert _stage("building '9cfdf55fbdc86598b852__mypyc' extension\n", 1, 14)[1] == 2


def _tree(tmp_path: Path) -> Path:
    """A copy of the checkout's Python packages and setup.py, without any compiled module."""
    dst = tmp_path / "checkout"
    for pkg in ("engine", "mes_console", "screens"):
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(ROOT / "setup.py", dst / "setup.py")
    return dst


def _cli(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-m", "mes_console.cli", *args], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def test_stale_build_refused_with_the_command_and_build_clean_mends_it(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    so = tree / "engine" / "clock.cpython-311-x86_64-linux-gnu.so"
    so.write_bytes(b"")  # never loaded: the check refuses it first
    old = (tree / "engine" / "clock.py").stat().st_mtime - 60
    os.utime(so, (old, old))

    r = _cli(tree, "--help")
    assert r.returncode == 1
    assert r.stderr.startswith("error: engine/clock.py is newer than its mypyc build")
    assert "`mes-console build`" in r.stderr and "Traceback" not in r.stderr

    r = _cli(tree, "build", "--clean")
    assert r.returncode == 0, r.stderr
    assert not so.exists()
    assert _cli(tree, "--help").returncode == 0


def test_a_plain_install_does_not_compile(tmp_path: Path) -> None:
    """setup.py builds extension modules only with MES_MYPYC=1 (set by `mes-console build`)."""
    tree = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("MES_MYPYC", "MES_NO_MYPYC")}
    probe = ("import runpy, sys, setuptools\n"
             "seen = {}\n"
             "setuptools.setup = lambda **kw: seen.update(kw)\n"
             "sys.argv = ['setup.py', 'build_ext']\n"
             "runpy.run_path('setup.py', run_name='__main__')\n"
             "print(len(seen['ext_modules']))\n")
    r = subprocess.run([sys.executable, "-c", probe], cwd=tree, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
