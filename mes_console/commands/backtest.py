"""``mes-console backtest``: the trading kernel over historical bars, with a report.

Without ``--model`` the rule-based strategy ``--strategy`` (default ``backtest.strategy`` =
baseline) runs through the same kernel, risk manager and simulated venue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mes_console.commands.common import EXIT_UNREADABLE, EXIT_USAGE, err_console, fail, out_console, print_json, settings_from


def register(root_app: typer.Typer) -> None:
    """Add the top-level ``backtest`` command to the root app."""
    root_app.command("backtest")(backtest)


def backtest(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="Bars file (parquet/CSV/DBN)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model checkpoint: batch predictions drive the kernel."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Rule-based strategy without a model: baseline | random."),
    start: Optional[str] = typer.Option(None, "--start", help="First UTC date (YYYY-MM-DD), inclusive."),
    end: Optional[str] = typer.Option(None, "--end", help="Last UTC date (YYYY-MM-DD), inclusive."),
    fill: Optional[str] = typer.Option(None, "--fill", help="conservative | optimistic | realistic (default from settings)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report directory (trades.csv, equity.csv, metrics.json, report.md, PNGs)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the random strategy."),
    bar_by_bar: bool = typer.Option(False, "--bar-by-bar", help="Step every bar (no skip-ahead; same results, slower)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML settings file."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    research: Optional[bool] = typer.Option(None, "--research/--no-research", help="Record each account-level halt (drawdown, kill switch, minimum balance) and resume at the next RTH open (default: backtest.research)."),
) -> None:
    """Backtest a model or a rule-based strategy over real bars; writes a report with --out."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.backtest.metrics import compute_metrics
    from engine.backtest.report import _clean, halts_doc, summary_text, write_report
    from engine.backtest.runner import BacktestError, run_backtest, slice_dates
    from engine.venue.sim import FILL_MODELS

    s = settings_from(ctx, config)
    fill = fill or s.backtest.fill_model
    if fill not in FILL_MODELS:
        fail(f"--fill {fill!r}: allowed {', '.join(FILL_MODELS)}", code=EXIT_USAGE)
    if model is not None and strategy is not None:
        fail("give --model or --strategy, not both", code=EXIT_USAGE)
    from engine.data.io import load_bars

    try:
        bars = load_bars(data)
    except Exception as exc:  # the loader names file and row
        fail(f"{data}: {exc}", code=EXIT_UNREADABLE)
    try:
        bars = slice_dates(bars, start, end)
    except BacktestError as exc:
        fail(str(exc), code=EXIT_USAGE)
    from engine.strategy import ModelStrategy, strategy_by_name

    if model is not None:
        strat = ModelStrategy(model)
    else:
        name = strategy or s.backtest.strategy
        try:
            strat = strategy_by_name(name, **({"seed": seed} if name == "random" else
                                              {"lookback": s.backtest.baseline_lookback}))
        except ValueError as exc:
            fail(str(exc), code=EXIT_USAGE)
    err_console.print(f"{len(bars):,} bars {bars.symbol} · strategy {strat.name} · fill {fill}")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err_console, transient=True) as prog:
        task = prog.add_task("signals", total=len(bars))
        try:
            sig = strat.signals(bars)
        except Exception as exc:
            fail(f"strategy {strat.name}: {exc}", code=EXIT_UNREADABLE)
        prog.update(task, description="backtest", completed=0)
        res = run_backtest(bars, sig, s, fill_model=fill, fast=not bar_by_bar, strategy_name=strat.name,
                           progress=lambda i, n: prog.update(task, completed=i), research=research)
    m = compute_metrics(res.trades, res.equity, res.day, res.starting_balance, res.ts)
    paths = write_report(res, out, m) if out is not None else {}
    doc = {"data": str(data), "bars": res.bars, "strategy": strat.name, "fill_model": fill,
           "steps": res.steps, "elapsed_s": res.elapsed_s, "bars_per_second": res.bars_per_second,
           "metrics": _clean(m), "files": {k: str(v) for k, v in paths.items()},
           "alerts": len(res.alerts), **halts_doc(res)}
    if json_out:
        print_json(doc)
        return
    from rich.table import Table

    t = Table(title=f"backtest · {strat.name} · {fill}", show_header=False)
    for k in ("trades", "net_pnl", "gross_pnl", "commission", "slippage", "sharpe", "sortino", "calmar",
              "max_drawdown", "max_drawdown_duration_days", "win_rate", "profit_factor", "expectancy",
              "avg_win", "avg_loss", "largest_win", "largest_loss", "max_win_streak", "max_loss_streak",
              "winning_days_pct", "trades_per_day"):
        v = m[k]
        t.add_row(k, f"{v:,.4g}" if isinstance(v, float) else str(v))
    out_console.print(t)
    out_console.print(summary_text(res), markup=False, highlight=False)
    out_console.print(f"{res.bars:,} bars in {res.elapsed_s:.2f} s ({res.bars_per_second:,.0f} bars/s)")
    for k, v in paths.items():
        out_console.print(f"{k}: {v}")
