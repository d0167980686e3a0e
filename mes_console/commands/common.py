"""Helpers shared by the CLI commands: settings from ``--config``, JSON output, error exits.

Convention: ``--json`` prints exactly one JSON document on stdout and nothing else there;
progress bars and messages go to stderr.

Bad input never reaches the user as a traceback: :func:`guarded` (wrapped around the whole
command line by ``mes_console.cli.main``) turns every known error into ONE line on stderr and a
documented exit code:

====  =====================================================================================
0     success
1     problems found (``data validate``, an incomplete ``data download``), or an internal
      error: one line, the traceback is written to ``<log dir>/cli-error-<pid>.txt`` and its
      path printed
2     usage: the command line itself is wrong: an unknown option, a value of the wrong type, a
      missing required option or argument (click's ``UsageError``)
3     bad input: a bad date or value (``--start 2025-13-01``, ``--start`` after ``--end``,
      ``--to 7q``), a missing or unreadable file (bars, model checkpoint, settings), data the
      validation gate refuses, bad settings (``ValueError`` and its engine subclasses
      ``ConfigError``/``DataError``/``CheckpointError``, ``OSError`` such as
      ``FileNotFoundError``, ``SessionError``)
4     ``run`` (and ``optimize``): stopped by SIGINT/SIGTERM after an orderly shutdown
130   interrupted (Ctrl-C) outside a session
====  =====================================================================================

The same table is in README.md ("Exit codes"); ``tests/test_cli_errors.py`` runs every command
with each kind of bad input and asserts it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from engine.config import ConfigError, Settings, load_settings

err_console = Console(stderr=True)
out_console = Console()

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_CLI_USAGE = 2   # click's usage errors (raised by click itself, not by the commands)
EXIT_BAD_INPUT = 3
# The names the commands use: both are bad input (3). An unreadable or refused data file is bad
# input like a missing one (it was 2 before issue 21, which made the same file exit 2 in
# `backtest` and 3 in `run`).
EXIT_UNREADABLE = EXIT_BAD_INPUT
EXIT_USAGE = EXIT_BAD_INPUT


def config_path(ctx: typer.Context | None, config: Path | None = None) -> Path | None:
    """The settings file of a command: ``--config`` given to the command, else to the root, else
    None (defaults and the user file only)."""
    root = None
    if ctx is not None:
        obj = ctx.find_root().obj or {}
        root = obj.get("config")
    return config or root


def settings_from(ctx: typer.Context | None, config: Path | None = None) -> Settings:
    """Settings for a command (:func:`config_path`); a bad file exits 3 with one line."""
    global _LOG_DIR
    try:
        s = load_settings(config_path(ctx, config))
    except ConfigError as exc:
        fail(str(exc), code=EXIT_USAGE)
    _LOG_DIR = s.paths.log_dir
    return s


_LOG_DIR = ""
"""``[paths] log_dir`` of the settings the running command loaded (the internal-error traceback
file goes there; empty before any settings were read: the platformdirs log dir)."""


def check_dates(start: str | None, end: str | None, *, start_opt: str = "--start",
                end_opt: str = "--end") -> None:
    """Refuse (exit 3, one line naming the option) a ``start``/``end`` that is not an ISO date
    (``YYYY-MM-DD``, or a date-time ``YYYY-MM-DDTHH:MM``) or a range whose start lies after its
    end. Runs before any file is read, so a bad date is never blamed on the data file."""
    from datetime import datetime

    parsed = {}
    for opt, text in ((start_opt, start), (end_opt, end)):
        if text is None:
            continue
        try:
            parsed[opt] = datetime.fromisoformat(text)
        except ValueError as exc:
            fail(f"{opt} {text!r}: not a date YYYY-MM-DD ({exc})", code=EXIT_BAD_INPUT)
    if start_opt in parsed and end_opt in parsed:
        a, b = parsed[start_opt], parsed[end_opt]
        if a.tzinfo is None and b.tzinfo is None and a.date() > b.date():
            fail(f"{start_opt} {start} is after {end_opt} {end}: the range is reversed",
                 code=EXIT_BAD_INPUT)


def print_json(doc: Any) -> None:
    """One JSON document on stdout (numpy scalars and paths converted)."""
    sys.stdout.write(json.dumps(doc, indent=2, default=_json_default, allow_nan=False) + "\n")
    sys.stdout.flush()


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


EXIT_INTERRUPTED = 130


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text or type(exc).__name__


def guarded(call, argv: list[str] | None = None) -> int:
    """Run ``call(args=argv, standalone_mode=False)`` (a typer/click app) and return the exit
    code of the table above, printing at most one ``error: ...`` line on stderr."""
    from engine.runtime.session import SessionError

    Exit, UsageError, ClickException, Abort = _click_exceptions()
    try:
        rv = call(args=argv, standalone_mode=False)
        return rv if isinstance(rv, int) else EXIT_OK
    except Exit as exc:
        return int(exc.exit_code)
    except UsageError as exc:
        err_console.print(f"[bold red]error:[/] {_one_line_markup(exc.format_message())} "
                          f"(see --help)", highlight=False, soft_wrap=True)
        return int(exc.exit_code)
    except ClickException as exc:
        err_console.print(f"[bold red]error:[/] {_one_line_markup(exc.format_message())}", highlight=False, soft_wrap=True)
        return int(exc.exit_code)
    except (*Abort, KeyboardInterrupt):
        err_console.print("interrupted", highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_PROBLEMS)
    except (ValueError, OSError, SessionError) as exc:
        err_console.print(f"[bold red]error:[/] {_one_line_markup(_one_line(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except Exception as exc:  # a bug: one line here, the traceback in a file
        where = _save_traceback(exc)
        err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: "
                          f"{_one_line_markup(_one_line(exc))}" + (f" (traceback: {where})" if where else ""),
                          highlight=False, soft_wrap=True)
        return EXIT_PROBLEMS


def _click_exceptions() -> tuple[tuple[type, ...], ...]:
    """(Exit, UsageError, ClickException, Abort) classes of the click that typer raises, plus
    ``typer.Exit``.

    typer ≥ 0.2x vendors click as ``typer._click`` and no longer depends on click; older typers
    raise click's own classes. Whichever of the two is importable counts (both when both are):
    click is NOT a dependency of this project, and a base install (``pip install -e .``) has
    none (tests/test_base_install.py checks every run-time import against the base dependencies)."""
    import importlib

    mods: list = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            continue
    if not mods:  # neither typer's copy nor click: typer itself would not have imported
        raise RuntimeError("typer provides no click exceptions (typer._click nor click importable)")
    out = []
    for name in ("Exit", "UsageError", "ClickException", "Abort"):
        classes = {getattr(m, name) for m in mods if isinstance(getattr(m, name, None), type)}
        if name == "Exit":
            classes.add(typer.Exit)
        out.append(tuple(classes))
    return tuple(out)


def _one_line_markup(text: str) -> str:
    from rich.markup import escape

    return escape(" ".join(text.split()))


def _save_traceback(exc: BaseException) -> str:
    import os
    import traceback

    try:
        from engine.config import resolve_dir

        from engine.logs import REDACT

        path = resolve_dir(_LOG_DIR, "log") / f"cli-error-{os.getpid()}.txt"
        path.write_text(REDACT.redact("".join(traceback.format_exception(exc))))   # no secret in it
        return str(path)
    except Exception:
        return ""


def fail(message: str, code: int = EXIT_PROBLEMS) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    from rich.markup import escape

    # escaped: a message naming "[risk] key" must not lose its "[risk]" to rich markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
