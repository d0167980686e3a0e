"""``mes-console journal``: the trade journal (:mod:`engine.journal`) that paper and live
sessions write as they trade: P&L by trading day, by session, and the round trips (and, with
``--fills``, the broker fills).

Read-only: the journal is opened with SQLite's read-only mode, so it can be read while a
session writes it. ``--json`` prints one document: ``{"path", "schema_version", "days",
"sessions", "trades", "fills"?, "events"?}`` (times UTC ns and ISO, money in dollars).

Exit codes: 0 printed; 2 the journal is missing, unreadable or of a newer schema (one line on
stderr naming the file); 3 bad arguments or settings.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

import typer

from mes_console.commands.common import EXIT_UNREADABLE, EXIT_USAGE, check_dates, fail, out_console, print_json, settings_from


def _iso(ns) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(int(ns) / 1e9, tz=dt.timezone.utc).isoformat(timespec="seconds")


def _check_day(value: Optional[str], opt: str) -> Optional[str]:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        fail(f"{opt} {value!r}: expected a date YYYY-MM-DD", code=EXIT_USAGE)


def register(app: typer.Typer) -> None:
    @app.command("journal")
    def journal(
        ctx: typer.Context,
        path: Optional[Path] = typer.Option(None, "--path", help="Journal file (default: journal.sqlite3 in the data directory; with --sim journal-sim.sqlite3)."),
        sim: bool = typer.Option(False, "--sim", help="The journal of the simulated sessions (the demo and run --mode replay) instead of the broker sessions' (paper, live)."),
        day_from: Optional[str] = typer.Option(None, "--from", help="First trading day, YYYY-MM-DD."),
        day_to: Optional[str] = typer.Option(None, "--to", help="Last trading day, YYYY-MM-DD."),
        today: bool = typer.Option(False, "--today", help="Only the current trading day (New York date)."),
        session: Optional[int] = typer.Option(None, "--session", help="Only the trades of this session id."),
        fills: bool = typer.Option(False, "--fills", help="Also list the broker fills."),
        events: bool = typer.Option(False, "--events", help="Also list halts, manual actions and alerts."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML settings file."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    ) -> None:
        """Trades and P&L by day and by session from the trade journal.

        Paper and live sessions write journal.sqlite3, the demo and replay sessions
        journal-sim.sqlite3 (--sim), both in the data directory. A journal no session has
        written yet is an empty journal (exit 0)."""
        from engine.journal import (SCHEMA_VERSION, Journal, JournalError, _iso_day, default_journal_path,
                                    default_sim_journal_path)

        lo, hi = _check_day(day_from, "--from"), _check_day(day_to, "--to")
        check_dates(lo, hi, start_opt="--from", end_opt="--to")
        if today:
            lo = hi = _iso_day(int(dt.datetime.now(dt.timezone.utc).timestamp() * 1e9))
        if path is None:
            st = settings_from(ctx, config)
            path = default_sim_journal_path(st) if sim else default_journal_path(st)
        elif config is not None:
            settings_from(ctx, config)   # a bad --config is refused even with --path
        days: list = []
        sessions: list = []
        trades: list = []
        fill_rows: list = []
        event_rows: list = []
        empty = not path.exists()   # no session has written it yet: an empty journal
        if not empty:
            try:
                j = Journal(path, readonly=True)
                try:
                    days = j.by_day(lo, hi)
                    sessions = j.by_session()
                    trades = j.trades(lo, hi, session)
                    fill_rows = j.fills(lo, hi, session) if (fills or json_out) else []
                    event_rows = j.events(lo, hi, session) if events else []
                finally:
                    j.close()
            except JournalError as exc:
                fail(str(exc), code=EXIT_UNREADABLE)
        for s in sessions:
            s["started_utc"], s["ended_utc"] = _iso(s["started_ns"]), _iso(s["ended_ns"])
        for t in trades:
            t["entry_utc"], t["exit_utc"] = _iso(t["entry_ns"]), _iso(t["exit_ns"])
        for f in fill_rows:
            f["utc"] = _iso(f["ts_ns"])
        if json_out:
            doc = {"path": str(path), "schema_version": SCHEMA_VERSION, "days": days, "sessions": sessions,
                   "trades": trades, "fills": fill_rows}
            if events:
                doc["events"] = event_rows
            print_json(doc)
            return
        from rich.table import Table

        out_console.print(f"journal {path}" + (": empty (no session has written it yet)" if empty else ""),
                          markup=False, highlight=False)
        if not sim and not sessions:
            out_console.print("demo and replay sessions write their own journal: mes-console journal --sim",
                              markup=False, highlight=False)
        t = Table(title="P&L by trading day")
        for c in ("day", "trades", "winners", "gross $", "costs $", "net $"):
            t.add_column(c, justify="right")
        for d in days:
            t.add_row(d["day"], str(d["trades"]), str(d["winners"]), f"{d['gross_pnl']:+.2f}",
                      f"{d['commission'] + d['slippage']:.2f}", f"{d['net_pnl']:+.2f}")
        out_console.print(t)
        t = Table(title="Sessions")
        for c in ("id", "mode", "started (UTC)", "fills", "trades", "net $", "exit"):
            t.add_column(c)
        for s in sessions:
            t.add_row(str(s["id"]), s["mode"], (s["started_utc"] or "")[:16].replace("T", " "), str(s["fills"]),
                      str(s["trades"]), f"{s['net_pnl']:+.2f}",
                      (s["exit_reason"] or "") if s["ended_ns"] is not None else "(killed / running)")
        out_console.print(t)
        t = Table(title="Trades")
        for c in ("sess", "day", "exit (UTC)", "side", "qty", "entry", "exit", "net $", "reason"):
            t.add_column(c)
        for r in trades:
            t.add_row(str(r["session_id"]), r["day"], r["exit_utc"][11:16], "long" if r["direction"] > 0 else "short",
                      str(r["contracts"]), f"{r['entry_price']:.2f}", f"{r['exit_price']:.2f}",
                      f"{r['net_pnl']:+.2f}", r["exit_reason"])
        out_console.print(t)
        if fills:
            t = Table(title="Fills")
            for c in ("session", "broker id", "UTC", "side", "qty", "price", "fees $", "broker P&L $"):
                t.add_column(c)
            for f in fill_rows:
                t.add_row(str(f["session_id"]), str(f["broker_id"]), f["utc"], "buy" if f["side"] > 0 else "sell",
                          str(f["qty"]), f"{f['price']:.2f}", f"{f['fees']:.2f}",
                          "" if f["pnl"] is None else f"{f['pnl']:+.2f}")
            out_console.print(t)
        if events:
            t = Table(title="Events")
            for c in ("session", "UTC", "kind", "severity", "message"):
                t.add_column(c)
            for e in event_rows:
                t.add_row(str(e["session_id"]), _iso(e["ts_ns"]), e["kind"], e["severity"], e["message"])
            out_console.print(t)
