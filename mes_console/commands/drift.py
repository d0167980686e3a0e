"""``mes-console drift``: a paper or live session from the trade journal against the kernel
re-run on the bars that session saw (recorded in the journal), with the same settings (the
session report's, else ``--config``) and signals (the baseline, or ``--model``), trade by trade
(:mod:`engine.backtest.drift`): entries taken in one and not the other with the reason, entry
and exit price differences against the modelled slippage, timing, and the P&L difference by
cause.

Exit codes: 0 printed; 2 the journal is missing or unreadable, or the session has no recorded
bars; 3 bad arguments or settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mes_console.commands.common import EXIT_UNREADABLE, EXIT_USAGE, fail, out_console, print_json, settings_from
from mes_console.commands.options import JsonOpt, config_option


def register(app: typer.Typer) -> None:
    @app.command("drift")
    def drift(
        ctx: typer.Context,
        session: Optional[int] = typer.Option(None, "--session", help="Session id (default: the newest with recorded bars)."),
        path: Optional[Path] = typer.Option(None, "--path", help="Journal file (default: <data dir>/journal.sqlite3)."),
        model: Optional[Path] = typer.Option(None, "--model", help="The checkpoint the session traded (default: the rule-based baseline)."),
        fill: Optional[str] = typer.Option(None, "--fill", help="Fill model of the re-run (default [backtest] fill_model)."),
        config: Optional[Path] = config_option("TOML settings, used when the session report has none."),
        json_out: bool = JsonOpt,
    ) -> None:
        """Live/paper against the backtest of the same bars, trade by trade."""
        from engine.backtest.drift import DriftError, drift_session
        from engine.config import ConfigError
        from engine.journal import Journal, JournalError, default_journal_path
        from engine.venue.sim import FILL_MODELS

        s = settings_from(ctx, config)
        if fill is not None and fill not in FILL_MODELS:
            fail(f"--fill {fill!r}: allowed {', '.join(FILL_MODELS)}", code=EXIT_USAGE)
        if path is None:
            path = default_journal_path(s)
        try:
            j = Journal(path, readonly=True)
            try:
                rep = drift_session(j, session, s, model=model, fill_model=fill)
            finally:
                j.close()
        except (JournalError, DriftError) as exc:
            fail(str(exc), code=EXIT_UNREADABLE)
        except ConfigError as exc:
            fail(str(exc), code=EXIT_USAGE)
        if json_out:
            print_json(rep.to_dict())
            return
        out_console.print(f"session {rep.session_id}: {rep.bars} bars (+{rep.warm_bars} warm-up)", highlight=False)
        for r in rep.rows:
            out_console.print(r.text(), highlight=False, markup=False)
        out_console.print("P&L difference by cause (live − model, $): " + ", ".join(
            f"{k} {v:+.2f}" for k, v in rep.totals.items() if abs(v) >= 0.005), highlight=False)
        out_console.print(rep.line(), highlight=False, markup=False)
