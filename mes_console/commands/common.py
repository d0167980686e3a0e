"""Helpers shared by the CLI commands: settings from ``--config``, JSON output, error exits.

Convention: ``--json`` prints exactly one JSON document on stdout and nothing else there;
progress bars and messages go to stderr.
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
EXIT_UNREADABLE = 2
EXIT_USAGE = 3


def settings_from(ctx: typer.Context | None, config: Path | None = None) -> Settings:
    """Settings for a command: ``--config`` given to the command, else to the root, else None."""
    root = None
    if ctx is not None:
        obj = ctx.find_root().obj or {}
        root = obj.get("config")
    try:
        return load_settings(config or root)
    except ConfigError as exc:
        fail(str(exc), code=EXIT_USAGE)


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


def fail(message: str, code: int = EXIT_PROBLEMS) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    from rich.markup import escape

    # escaped: a message naming "[risk] key" must not lose its "[risk]" to rich markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)
