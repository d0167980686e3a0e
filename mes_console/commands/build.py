"""``mes-console build``: compile the backtest kernel's hot modules with mypyc, in place.

``pip install -e .`` installs the pure-Python kernel (the README's first command: about a
minute, no compiler). The compiled kernel is an opt-in speed-up for long backtests and parameter
searches (``specs/backtest.md``: 2-3x faster kernel steps, same trades byte for byte): this
command runs ``setup.py build_ext --inplace`` with ``MES_MYPYC=1`` in the source checkout, shows
what it is doing and for how long (mypy's type check of the import graph takes most of the ~3
minutes and prints nothing by itself), and checks that the result imports. ``--clean`` removes the
build (the ``.py`` files run again).

Exit codes: 0 built (or cleaned), 3 no source checkout / mypy missing, 1 the compile failed (the
tail of the compiler's output is printed; the checkout keeps the pure-Python kernel).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import typer

from mes_console.commands.common import EXIT_PROBLEMS, EXIT_USAGE, err_console, fail, print_json


def _checkout() -> Path:
    """The source checkout the running ``engine`` package comes from (``setup.py`` beside it)."""
    import engine

    root = Path(engine.__file__).resolve().parent.parent
    if not (root / "setup.py").is_file():
        fail(f"no source checkout: {root / 'setup.py'} is missing (the compiled kernel is built in a "
             "checkout installed with `pip install -e .`)", code=EXIT_USAGE)
    return root


def _built(root: Path) -> list[Path]:
    return sorted(p for p in (root / "engine").rglob("*.so") if ".cpython-" in p.name) + \
        sorted(root.glob("*__mypyc*.so"))


def _compiled_list(root: Path) -> list[str]:
    """setup.py's COMPILED list (the one list of compiled modules), read without running setup()."""
    import ast

    tree = ast.parse((root / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise RuntimeError(f"{root / 'setup.py'}: no COMPILED list")


def _stage(line: str, done: int, total: int) -> tuple[str, int]:
    """The progress text for one line of build_ext's output, and the updated module count."""
    if line.startswith("building '") and "extension" in line:
        done += 1
        # build_ext -j starts the extensions on a pool: the shared library (mypyc's *__mypyc) holds
        # all the compiled code and takes most of the time, the per-module stubs a second each
        return f"compiling C: {min(done, total)}/{total} extensions started (the shared kernel library takes longest)", done
    return "", done


def register(root_app: typer.Typer) -> None:
    """Add the top-level ``build`` command to ``root_app``."""

    @root_app.command("build")
    def build(
        clean: bool = typer.Option(False, "--clean", help="Remove the compiled modules instead (run the .py source)."),
        jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel C compiler processes."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON document (modules, seconds)."),
    ) -> None:
        """Compile the kernel's hot modules with mypyc (opt-in speed-up, ~3 min, needs a C compiler
        and mypy: `pip install -e '.[fast]'`).

        The same source runs either way; `import engine` refuses a build older than its `.py`, so
        rerun this after editing a kernel module (or `mes-console build --clean`)."""
        root = _checkout()
        if clean:
            gone = _built(root)
            for p in gone:
                p.unlink()
            if json_out:
                print_json({"cleaned": [str(p.relative_to(root)) for p in gone]})
            else:
                err_console.print(f"removed {len(gone)} compiled module(s); the pure-Python kernel runs", highlight=False)
            return
        try:
            import mypy  # noqa: F401
        except ImportError:
            fail("mypy is not installed: `pip install -e '.[fast]'` (or '.[dev]') brings the mypyc compiler",
                 code=EXIT_USAGE)
        total = len(_compiled_list(root)) + 1  # one extension per module + mypyc's shared library
        env = {**os.environ, "MES_MYPYC": "1", "PYTHONUNBUFFERED": "1"}  # progress as it happens
        env.pop("MES_NO_MYPYC", None)
        cmd = [sys.executable, "setup.py", "build_ext", "--inplace", f"-j{jobs}"]
        t0 = time.monotonic()
        tail: list[str] = []
        state = {"text": f"mypy type-checks the kernel ({total - 1} modules; ~1-3 min)"}
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)

        def _read() -> None:
            done = 0
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip())
                del tail[:-40]
                text, done = _stage(line, done, total)
                if text:
                    state["text"] = text
                elif line.startswith("copying build"):
                    state["text"] = "installing the modules beside their .py files"

        reader = threading.Thread(target=_read, daemon=True)
        reader.start()
        if err_console.is_terminal:
            with err_console.status("", spinner="dots") as status:
                while proc.poll() is None:
                    status.update(f"[bold]mes-console build[/]: {state['text']}  [dim]{time.monotonic() - t0:4.0f} s[/]")
                    time.sleep(0.2)
        else:  # a log (CI): one plain line per stage, with the time it started
            shown = ""
            while proc.poll() is None:
                if state["text"] != shown:
                    shown = state["text"]
                    err_console.print(f"mes-console build: {shown} ({time.monotonic() - t0:.0f} s)",
                                      highlight=False, markup=False)
                time.sleep(0.2)
        reader.join(timeout=5)
        seconds = time.monotonic() - t0
        built = _built(root)
        pure = any("PURE-PYTHON kernel" in line for line in tail)
        if proc.returncode != 0 or pure or not built:
            for line in tail[-15:]:
                err_console.print(line, highlight=False, markup=False)
            fail(f"the compile failed after {seconds:.0f} s; the pure-Python kernel stays in place", code=EXIT_PROBLEMS)
        # the build must import in a fresh interpreter (a stale or broken .so would refuse there)
        check = subprocess.run([sys.executable, "-c", "import engine.kernel as k; print(k.__file__)"],
                               cwd=root, capture_output=True, text=True)
        if check.returncode != 0 or not check.stdout.strip().endswith(".so"):
            fail(f"the compiled kernel does not import: {(check.stderr or check.stdout).strip().splitlines()[-1:]}",
                 code=EXIT_PROBLEMS)
        if json_out:
            print_json({"modules": total - 1, "seconds": round(seconds, 1),
                        "files": [str(p.relative_to(root)) for p in built]})
        else:
            err_console.print(f"compiled kernel built: {total - 1} modules in {seconds:.0f} s "
                              f"({len(built)} extension files under {root})", highlight=False)
