"""Command-line options that several commands share, defined once so that the flag, its default
and its help read the same in every command (the validation-gate options ``--strict``,
``--repair`` and ``--front-month`` live with the gate in :mod:`mes_console.commands.loading`).

A typer ``OptionInfo`` is a declaration, not state: one object may stand as the default of a
parameter in any number of commands (typer copies what it needs when it builds each command).

- :data:`DataOpt`: ``--data PATH``, required: the bars file (parquet, CSV or DBN; see
  :func:`engine.data.io.load_bars`).
- :data:`ConfigOpt`: ``--config PATH``: a TOML settings file applied over the defaults and the
  user file (:func:`engine.config.load_settings`); :func:`config_option` for a command whose help
  says more.
- :data:`JsonOpt`: ``--json``: exactly one JSON document on stdout (the convention of
  :mod:`mes_console.commands.common`).
- :func:`top_level_command`: the ``register(root_app)`` of a module whose command is one
  top-level function (``mes_console.cli`` calls it).
"""

from __future__ import annotations

from typing import Any, Callable

import typer

DataOpt = typer.Option(..., "--data", help="Bars file (parquet/CSV/DBN).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def config_option(help: str = "TOML settings file.") -> Any:
    """The ``--config PATH`` option (default None = no file beyond the root's ``--config`` and
    the user file) with ``help``."""
    return typer.Option(None, "--config", help=help)


ConfigOpt = config_option()


def top_level_command(name: str, command: Callable[..., None]) -> Callable[[typer.Typer], None]:
    """A ``register(root_app)`` function that adds ``command`` to ``root_app`` as the top-level
    command ``name`` (the protocol of ``mes_console.cli._GROUPS`` entries without a group)."""

    def register(root_app: typer.Typer) -> None:
        root_app.command(name)(command)

    register.__doc__ = f"Add the top-level ``{name}`` command to the root app."
    return register


__all__ = ["DataOpt", "ConfigOpt", "JsonOpt", "config_option", "top_level_command"]
