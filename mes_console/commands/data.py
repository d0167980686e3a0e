"""``mes-console data``: inspect | validate | resample | download (R-UI-7, R-DATA-1..6).

Exit codes (the table of :mod:`mes_console.commands.common`): 0 clean, 1 problems found
(validate) or an incomplete download, 2 a wrong command line, 3 bad input (a missing or
unreadable file, a bar size ``resample`` cannot make, bad settings). ``--json`` prints one JSON document on stdout; progress and messages go
to stderr.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from mes_console.commands.common import (EXIT_PROBLEMS, EXIT_UNREADABLE, EXIT_USAGE, err_console,
                                         fail, print_json, settings_from)

app = typer.Typer(help="Market data: inspect, validate, resample, download.", no_args_is_help=True)


@contextlib.contextmanager
def _progress(label: str, quiet: bool = False):
    """A rich progress bar on stderr; yields a ``progress(done, total)`` callback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    if quiet:
        yield None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed:,.0f} rows"), TimeRemainingColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None, completed=0)

        def cb(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield cb


def _is_tick_file(path: Path) -> bool:
    name = path.name.lower()
    if ".dbn" in name:
        return ".trades." in name or name.startswith("trades")
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            names = [n.lower() for n in pq.ParquetFile(path).schema_arrow.names]
        except Exception:
            return False
        return "price" in names and "open" not in names
    return False


def _load(path: Path, front_month: bool, tz: Optional[str], quiet: bool):
    """(bars, note) or exit 3 (bad input). Tick files are aggregated to 1-second bars (said in the note)."""
    from engine.data import DataError, load_bars, load_ticks, ticks_to_bars

    try:
        if _is_tick_file(path):
            ts, price, size = load_ticks(path, tz=tz)
            sym = path.name.split("_")[0].upper()
            bars = ticks_to_bars(ts, price, size, symbol=sym)
            object.__setattr__(bars, "source", str(path))
            note = (f"tick file ({len(ts):,} trade prints, "
                    f"{'with' if not np.isnan(size).all() else 'without'} size): aggregated to "
                    f"{len(bars):,} 1-second bars before the checks")
            return bars, note, len(ts)
        with _progress(f"loading {path.name}", quiet) as cb:
            bars = load_bars(path, multi_contract="front-month" if front_month else "refuse",
                             progress=cb, tz=tz)
        return bars, None, None
    except DataError as exc:
        fail(str(exc), code=EXIT_UNREADABLE)
    except FileNotFoundError as exc:
        fail(str(exc), code=EXIT_UNREADABLE)


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ny(ts: int) -> str:
    from engine.calendar import ny_datetime

    return ny_datetime(int(ts)).strftime("%Y-%m-%d %H:%M:%S %Z")


PathArg = typer.Argument(..., help="A .parquet, .csv or .dbn[.zst] file (bars, or trade ticks).")
FrontOpt = typer.Option(False, "--front-month",
                        help="A file with several contracts: keep the front month per trading day "
                             "(default: refuse such a file).")
TzOpt = typer.Option(None, "--tz", help="Zone of naive timestamps (e.g. UTC, America/New_York).")


@app.command()
def inspect(path: Path = PathArg, as_json: bool = typer.Option(False, "--json"),
            front_month: bool = FrontOpt, tz: Optional[str] = TzOpt) -> None:
    """Rows, first/last bar (UTC and New York), bar size, trading days, RTH bars, volume."""
    from engine.calendar import day_date
    from engine.data import format_bar_size, session_labels

    bars, note, ticks = _load(path, front_month, tz, as_json)
    doc = {"path": str(path), "kind": "ticks" if ticks is not None else "bars",
           "rows": len(bars), "symbol": bars.symbol, "symbols": [bars.symbol],
           "bar_size": format_bar_size(bars.bar_ns), "bar_ns": int(bars.bar_ns),
           "has_volume": bars.has_volume}
    if ticks is not None:
        doc["tick_rows"] = ticks
        doc["note"] = note
    if len(bars):
        lab = session_labels(bars)
        days = np.unique(lab.trading_day[lab.in_session])
        doc.update({
            "first_utc": _utc(int(bars.ts[0])), "last_utc": _utc(int(bars.ts[-1])),
            "first_ny": _ny(int(bars.ts[0])), "last_ny": _ny(int(bars.ts[-1])),
            "trading_days": int(days.size),
            "first_trading_day": day_date(int(days[0])).isoformat() if days.size else None,
            "last_trading_day": day_date(int(days[-1])).isoformat() if days.size else None,
            "rth_bars": int(lab.is_rth.sum()), "eth_bars": int((lab.in_session & ~lab.is_rth).sum()),
            "outside_session_bars": int((~lab.in_session).sum()),
        })
    if as_json:
        print_json(doc)
        return
    from rich.table import Table

    t = Table(title=str(path), show_header=False)
    for k, v in doc.items():
        t.add_row(k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
    from rich.console import Console

    Console().print(t)


@app.command()
def validate(path: Path = PathArg, strict: bool = typer.Option(
                 False, "--strict", help="Warnings (gaps, implausible jumps) count as problems."),
             as_json: bool = typer.Option(False, "--json"), front_month: bool = FrontOpt,
             tz: Optional[str] = TzOpt) -> None:
    """Check every bar; exit 0 clean, 1 problems found, 3 a missing or unreadable file."""
    from engine.data import validate as run_validation

    bars, note, _ = _load(path, front_month, tz, as_json)
    rep = run_validation(bars, strict=strict)
    if note:
        rep.notes.insert(0, note)
    if as_json:
        print_json(rep.to_dict())
    else:
        _print_report(rep)
    if not rep.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def _print_report(rep) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"{rep.source}: {rep.rows:,} bars")
    for c in ("kind", "severity", "count", "first example"):
        t.add_column(c)
    for k, r in rep.kinds.items():
        ex = r.examples[0] if r.examples else {}
        first = ex.get("ts_ny") or (f"{ex.get('from_ny')} → {ex.get('to_ny')}" if ex else "")
        style = "red" if r.count and r.severity == "error" else "yellow" if r.count else ""
        t.add_row(k, r.severity, f"{r.count:,}", str(first), style=style)
    con.print(t)
    for n in rep.notes:
        con.print(f"note: {n}")
    con.print("[green]OK[/]" if rep.ok else f"[red]problems:[/] {', '.join(rep.problems)}")


@app.command()
def resample(path: Path = PathArg,
             to: str = typer.Option(..., "--to", help="Target bar size: 5s, 15s, 1m, 5m, 15m ..."),
             out: Path = typer.Option(..., "--out", help="Output parquet file (written atomically)."),
             as_json: bool = typer.Option(False, "--json"), front_month: bool = FrontOpt,
             tz: Optional[str] = TzOpt) -> None:
    """Resample bars (or ticks) to a larger bar size and save them as parquet."""
    from engine.data import DataError, format_bar_size, resample as run_resample, save_bars

    bars, note, _ = _load(path, front_month, tz, as_json)
    try:
        res = run_resample(bars, to)
        save_bars(res, out)
    except DataError as exc:  # a bar size it cannot make (--to 7q, --to 30s from 1m bars): bad input
        fail(str(exc), code=EXIT_USAGE)
    doc = {"source": str(path), "out": str(out), "rows_in": len(bars), "rows_out": len(res),
           "from": format_bar_size(bars.bar_ns), "to": format_bar_size(res.bar_ns)}
    if note:
        doc["note"] = note
    if as_json:
        print_json(doc)
    else:
        err_console.print(f"wrote {len(res):,} {doc['to']} bars to {out}")


@app.command()
def download(
    ctx: typer.Context,
    symbol: str = typer.Option("MES.c.0", "--symbol", help="Databento continuous symbol."),
    schema: str = typer.Option("ohlcv-1m", "--schema", help="ohlcv-1s | ohlcv-1m | ohlcv-1h | ohlcv-1d"),
    start: Optional[str] = typer.Option(None, "--start", help="First day (YYYY-MM-DD, UTC) when "
                                        "the store is empty; later runs resume after the last bar."),
    end: Optional[str] = typer.Option(None, "--end", help="End (exclusive, UTC); default now."),
    out_dir: Optional[Path] = typer.Option(None, "--dir", help="Store directory (default: the "
                                           "configured data dir / databento)."),
    backfill: bool = typer.Option(True, "--backfill/--no-backfill",
                                  help="Re-request gaps found inside trading hours."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Download OHLCV from Databento (key from DATABENTO_API_KEY) into a year/month parquet store."""
    from engine.clock import LiveClock, from_datetime
    from engine.data import DataError
    from engine.data import download as dl

    settings = settings_from(ctx)
    key = settings.secrets.databento_api_key  # from DATABENTO_API_KEY only (engine.config)
    if not key:
        fail("DATABENTO_API_KEY is not set", code=EXIT_USAGE)
    if out_dir is None:
        base = getattr(getattr(settings, "paths", None), "data_dir", "") or ""
        if not base:
            import platformdirs

            base = platformdirs.user_data_dir("mes-console")
        out_dir = Path(base) / "databento"

    def _ts(text: str) -> int:
        dt = datetime.fromisoformat(text)
        return from_datetime(dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))

    end_ns = _ts(end) if end else LiveClock().now_ns()
    try:
        res = dl.update_store(out_dir, symbol=symbol, schema=schema, api_key=key,
                              start_ns=_ts(start) if start else None, end_ns=end_ns,
                              backfill=backfill, log=lambda m: err_console.print(m, highlight=False))
    except DataError as exc:
        fail(str(exc), code=EXIT_PROBLEMS)
    if as_json:
        print_json(res)
    else:
        err_console.print(res)
    if not res.get("ok", True):
        raise typer.Exit(EXIT_PROBLEMS)
