"""CLI command groups. Each module defines a ``typer.Typer`` named ``app`` (a group) or a
``register(root)`` function (top-level commands); :mod:`mes_console.cli` wires them in."""
