"""The ``mes-console`` command line (typer).

Bare ``mes-console`` runs the embedded demo: a replay session on a generated MES market in the
console (no credentials, no network, no data files). Sub-commands:

    run        a session: replay | paper | live, in the console or headless (--no-tui)
    backtest   the trading kernel over historical bars
    train      train a model (walk-forward optional)
    optimize   parameter search on Optuna (R-BT-6)
    data       inspect | validate | resample | download
    model      info | bench
    config     show | check
    fake-gateway  a local ProjectX gateway for paper trading and tests
    journal    trades and P&L by day and by session from the trade journal
    build      compile the kernel's hot modules with mypyc (opt-in speed-up)
    strategy   new (a commented strategy file and its test) | list
    analyze    lookahead | warmup | streaming checks of a strategy's signals
    drift      a paper/live session against the kernel re-run on the bars it saw

Each group lives in ``mes_console/commands/<name>.py``; a group whose module is not present yet
is simply not listed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer

from engine import __version__

app = typer.Typer(
    name="mes-console",
    help="Operator console and trading engine for ML-driven MES futures scalping.\n\n"
    "Run with no command for the embedded demo session (no data, credentials or network needed).",
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    # plain help (click's formatter), no markup at all: "[training] arch" is a config section
    # and "<data dir>" a placeholder, which rich markup and markdown both ate; a long flag
    # (--i-understand-this-trades-real-money) gets its own line instead of being cut at 80
    # columns, and an on/off flag shows no "<bool>" (tests/test_cli_errors.py checks all four)
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (module, group name or None for top-level commands registered by the module itself)
_GROUPS: list[tuple[str, str | None]] = [
    ("mes_console.commands.run", None),
    ("mes_console.commands.backtest", None),
    ("mes_console.commands.train", None),
    ("mes_console.commands.optimize", None),
    ("mes_console.commands.data", "data"),
    ("mes_console.commands.model", "model"),
    ("mes_console.commands.config_cmd", "config"),
    ("mes_console.commands.fake_gateway", None),
    ("mes_console.commands.journal", None),
    ("mes_console.commands.build", None),
    ("mes_console.commands.strategy", "strategy"),
    ("mes_console.commands.analyze", "analyze"),
    ("mes_console.commands.drift", None),
]


def _register() -> None:
    for module_name, group in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mes-console {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None, "--config", help="A TOML settings file applied over the defaults and the user file."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Bare console only: the demo session runs this "
                                           "strategy (path/file.py:Class, package.module:Class, an entry-point name)."),
) -> None:
    ctx.obj = {"config": config, "strategy": strategy}
    if ctx.invoked_subcommand is None:
        demo = getattr(importlib.import_module("mes_console.commands.run"), "demo", None) \
            if importlib.util.find_spec("mes_console.commands.run") else None
        if demo is None:
            typer.echo(ctx.get_help())
            raise typer.Exit()
        demo(ctx)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: bad input ends in one ``error:`` line and the exit code
    documented in :mod:`mes_console.commands.common` (never a traceback)."""
    import sys

    from mes_console.commands.common import guarded

    sys.exit(guarded(app, argv))


if __name__ == "__main__":  # python -m mes_console.cli
    main()
