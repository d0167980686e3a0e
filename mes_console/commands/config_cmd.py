"""``mes-console config show|check``: the effective settings, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from engine.config import ConfigError, load_settings, user_config_path
from mes_console.commands.common import EXIT_USAGE, config_path, fail, out_console, print_json, settings_from
from mes_console.commands.options import JsonOpt, config_option

app = typer.Typer(help="Show and check the settings (config.toml files and environment secrets).",
                  no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    config: Optional[Path] = config_option("TOML file applied over the defaults."),
    json_out: bool = JsonOpt,
) -> None:
    """Print the effective settings; secrets are masked (****abc)."""
    s = settings_from(ctx, config)
    from engine.risk.profiles import limit_sources

    limits = limit_sources(s)
    doc = {"sources": list(s.sources), "user_config_path": str(user_config_path()), **s.to_dict(),
           "account_limits": [{"key": k, "value": v, "set_by": why} for k, v, why in limits]}
    if json_out:
        print_json(doc)
        return
    out_console.print(f"files applied: {', '.join(s.sources) or '(defaults only)'}")
    out_console.print(f"user file: {user_config_path()}")
    for section, values in s.to_dict().items():
        # escaped: rich would read "[risk]" as a style tag and print nothing
        t = Table(title=escape(f"[{section}]"), title_justify="left", show_header=False, box=None)
        for k, v in values.items():
            t.add_row(k, repr(v) if isinstance(v, str) else str(v))
        out_console.print(t)
    t = Table(title="account profile: effective limits and the rule that set each", title_justify="left",
              show_header=True, box=None)
    for col in ("key", "value", "set by"):
        t.add_column(col)
    for k, v, why in limits:
        if k != "source":
            t.add_row(k, repr(v) if isinstance(v, str) else str(v), why)
    out_console.print(t)
    for k, v, why in limits:
        if k == "source":
            out_console.print(f"sources of {why}: {v}", highlight=False)


@app.command("check")
def check(
    ctx: typer.Context,
    config: Optional[Path] = config_option("TOML file to check."),
    json_out: bool = JsonOpt,
) -> None:
    """Validate the settings. Exit 0 when valid, 3 with a message naming the key when not."""
    try:
        s = load_settings(config_path(ctx, config))
    except ConfigError as exc:
        if json_out:
            print_json({"ok": False, "error": str(exc)})
            raise typer.Exit(EXIT_USAGE)
        fail(str(exc), code=EXIT_USAGE)
    missing = [k for k, v in s.to_dict(mask_secrets=False)["secrets"].items() if not v]
    if json_out:
        print_json({"ok": True, "sources": list(s.sources), "secrets_unset": missing})
        return
    out_console.print(f"[green]ok[/]: settings valid ({', '.join(s.sources) or 'defaults only'})")
    if missing:
        out_console.print(f"secrets not set (needed only for live/paper/download): {', '.join(missing)}")
