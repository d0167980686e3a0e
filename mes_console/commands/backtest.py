"""``mes-console backtest``: the trading kernel over historical bars, with a report.

Without ``--model`` the strategy ``--strategy`` (default ``backtest.strategy`` = baseline; or a
trader's own ``file.py:Class`` / ``module:Class`` / entry point with ``--param NAME=VALUE``,
specs/strategy.md) runs through the same kernel, risk manager and simulated venue.
``--walk-forward --strategy FILE`` re-optimizes its declared parameters per fold
(:func:`engine.strategy.walkforward.strategy_walk_forward`).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mes_console.commands.common import EXIT_PROBLEMS, EXIT_UNREADABLE, EXIT_USAGE, err_console, fail, out_console, print_json, settings_from
from mes_console.commands.loading import FrontMonthOpt, RepairOpt, StrictOpt
from mes_console.commands.options import ConfigOpt, DataOpt, JsonOpt


def register(root_app: typer.Typer) -> None:
    """Add the top-level ``backtest`` command to the root app."""
    root_app.command("backtest")(backtest)


def backtest(
    ctx: typer.Context,
    data: Path = DataOpt,
    model: Optional[Path] = typer.Option(None, "--model", help="Model checkpoint: batch predictions drive the kernel."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Strategy without a model: baseline | random | path/file.py:Class | package.module:Class | an entry-point name (specs/strategy.md)."),
    param: Optional[List[str]] = typer.Option(None, "--param", help="NAME=VALUE of a declared strategy parameter; repeatable."),
    trials: int = typer.Option(20, "--trials", min=1, help="With --walk-forward --strategy: parameter-search trials per fold."),
    start: Optional[str] = typer.Option(None, "--start", help="First UTC date (YYYY-MM-DD), inclusive."),
    end: Optional[str] = typer.Option(None, "--end", help="Last UTC date (YYYY-MM-DD), inclusive."),
    fill: Optional[str] = typer.Option(None, "--fill", help="conservative | optimistic | realistic (default from settings)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report directory (trades.csv, equity.csv, metrics.json, report.md, PNGs)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the random strategy."),
    bar_by_bar: bool = typer.Option(False, "--bar-by-bar", help="Step every bar (no skip-ahead; same results, slower)."),
    config: Optional[Path] = ConfigOpt,
    json_out: bool = JsonOpt,
    strict: Optional[bool] = StrictOpt,
    repair: bool = RepairOpt,
    front_month: bool = FrontMonthOpt,
    research: Optional[bool] = typer.Option(None, "--research/--no-research", help="Record each account-level halt (drawdown, kill switch, minimum balance) and resume at the next RTH open (default: backtest.research)."),
    walk_forward: bool = typer.Option(False, "--walk-forward", help="Train one model per walk-forward fold ([training], [target]) and backtest each fold's test window with it; stitched equity and the R-BT-4 go-live table."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="With --walk-forward: maximum epochs per fold model (default [training] epochs)."),
    monte_carlo: int = typer.Option(0, "--monte-carlo", min=0, help="Pass probability of the [account] profile: this many block-bootstrap paths of the run's trading days (0 = off; needs a venue profile)."),
    mc_seed: int = typer.Option(0, "--mc-seed", help="Seed of the --monte-carlo bootstrap."),
    mc_block: int = typer.Option(5, "--mc-block", min=1, help="Trading days per --monte-carlo bootstrap block."),
) -> None:
    """Backtest a model or a strategy (baseline, random, or your own: --strategy FILE.py:Class) over real
    bars; writes a report with --out.

    The bars pass the validation gate first (mes_console.commands.loading): exit 3 with one
    line on stderr, and nothing written, for unusable data (non-finite prices, unsorted or
    duplicate timestamps, no bars) and, with --strict, for any validation error."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.backtest.metrics import result_metrics
    from engine.backtest.analytics import analytics_json
    from engine.backtest.report import _clean, _clean_doc, halts_doc, summary_text, verdict_text, write_report
    from engine import compose
    from engine.venue.sim import FILL_MODELS

    s = settings_from(ctx, config)
    fill = fill or s.backtest.fill_model
    if fill not in FILL_MODELS:
        fail(f"--fill {fill!r}: allowed {', '.join(FILL_MODELS)}", code=EXIT_USAGE)
    if model is not None and strategy is not None:
        fail("give --model or --strategy, not both", code=EXIT_USAGE)
    from mes_console.commands.loading import load_bars_checked

    bars = load_bars_checked(data, start=start, end=end, front_month=front_month, strict=strict,
                             repair=repair, settings=s, exit_code=EXIT_UNREADABLE)
    if walk_forward and strategy is not None and strategy not in ("baseline", "random"):
        from mes_console.commands.strategy import cli_strategy

        _strategy_walk_forward(bars, s, cli_strategy(strategy, param, settings=s), fill, trials, json_out,
                               str(data), out, research, (monte_carlo, mc_seed, mc_block))
        return
    if walk_forward:
        if model is not None or strategy is not None:
            fail("--walk-forward trains its own model per fold: give neither --model nor --strategy", code=EXIT_USAGE)
        if bar_by_bar:
            fail("--bar-by-bar is not available with --walk-forward", code=EXIT_USAGE)
        if research is not None:
            import dataclasses

            s = dataclasses.replace(s, backtest=dataclasses.replace(s.backtest, research=bool(research)))
        _walk_forward(bars, s, fill, epochs, json_out, str(data), out, (monte_carlo, mc_seed, mc_block))
        return
    if epochs is not None:
        fail("--epochs belongs to --walk-forward", code=EXIT_USAGE)
    from engine.strategy import ModelStrategy, strategy_by_name

    warning = None
    if model is not None and (strategy is not None or param):
        fail("give --model or --strategy/--param, not both", code=EXIT_USAGE)
    if model is not None:
        from engine.backtest.walkforward import checkpoint_overlap

        try:
            warning = checkpoint_overlap(model, bars)
        except Exception as exc:  # noqa: BLE001 - the checkpoint loader below names the problem
            warning = f"cannot read the checkpoint's training range: {exc}"
        if warning:
            err_console.print(f"[bold red]warning:[/] {warning}", highlight=False)

    model_note = None
    loaded = None
    if model is not None:
        strat = ModelStrategy(model)
        from engine.strategy.model import apply_threshold, threshold_note

        try:
            cal = strat.calibration()
        except Exception as exc:  # noqa: BLE001 - one line, the loader names the file
            fail(f"model {model}: {exc}", code=EXIT_UNREADABLE)
        s = apply_threshold(s, cal)
        model_note = threshold_note(s, cal)
        err_console.print(model_note, highlight=False, markup=False)
    elif strategy is not None and strategy not in ("baseline", "random") or param:
        from engine.strategy.analysis import bar_seconds, lookahead_warning
        from mes_console.commands.strategy import cli_strategy, warn

        strat = loaded = cli_strategy(strategy or s.backtest.strategy, param, settings=s, seed=seed)
        lw = lookahead_warning(loaded, s, bar_seconds(bars))
        if lw:
            warn(lw)
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
            if loaded is not None:  # StrategyError: one line naming the file and the class
                fail(str(exc), code=EXIT_USAGE)
            fail(f"strategy {strat.name}: {exc}", code=EXIT_UNREADABLE)
        prog.update(task, description="backtest", completed=0)
        res = compose.backtest(bars, sig, s, fill_model=fill, fast=not bar_by_bar,
                               strategy_name=strat.name if loaded is None else f"{loaded.name} v{loaded.version}",
                           progress=lambda i, n: prog.update(task, completed=i), research=research)
    _account_mc(res, s, monte_carlo, mc_seed, mc_block)
    m = result_metrics(res)
    an = _analytics(res.trades, res.ts, res.day, bars, s)
    notes = ([model_note] if model_note else []) + ([f"warning: {warning}"] if warning else [])
    if loaded is not None:
        notes.append(f"strategy: {loaded.label()}, parameters {loaded.params}, file sha256 {loaded.sha}")
    paths = write_report(res, out, m, analytics=an, notes=notes) if out is not None else {}
    if loaded is not None:
        for pth in paths.values():
            if str(pth).endswith(".md"):
                with open(pth, "a", encoding="utf-8") as fh:
                    fh.write(f"\n**Strategy:** {loaded.label()}, parameters {loaded.params}, file sha256 {loaded.sha}\n")
    if warning:
        for pth in paths.values():
            if str(pth).endswith(".md"):
                with open(pth, "a", encoding="utf-8") as fh:
                    fh.write(f"\n**Warning:** {warning}\n")
    doc = {"data": str(data), "bars": res.bars, "strategy": strat.name, "fill_model": fill,
           "steps": res.steps, "elapsed_s": res.elapsed_s, "bars_per_second": res.bars_per_second,
           "metrics": _clean(m), "files": {k: str(v) for k, v in paths.items()},
           "alerts": len(res.alerts), "data_validation": bars.validation, **halts_doc(res),
           "account": _clean_doc(res.account), "warnings": [warning] if warning else [],
           "analytics": analytics_json(an), "model_threshold": model_note,
           **({"strategy_info": loaded.describe()} if loaded is not None else {})}
    if json_out:
        print_json(doc)
        return
    from rich.table import Table

    t = Table(title=f"backtest · {strat.name} · {fill}" + (" · IN-SAMPLE (see warning)" if warning else ""),
              show_header=False)
    for k in ("trades", "net_pnl", "gross_pnl", "commission", "slippage", "sharpe", "sortino", "calmar",
              "max_drawdown", "max_drawdown_duration_days", "win_rate", "profit_factor", "expectancy",
              "avg_win", "avg_loss", "largest_win", "largest_loss", "max_win_streak", "max_loss_streak",
              "winning_days_pct", "trades_per_day"):
        v = m[k]
        t.add_row(k, f"{v:,.4g}" if isinstance(v, float) else str(v))
    out_console.print(t)
    if res.account:
        out_console.print(verdict_text(res.account), markup=False, highlight=False, soft_wrap=True)
    out_console.print(summary_text(res, metrics=m), markup=False, highlight=False, soft_wrap=True)
    if model_note:
        out_console.print(model_note, markup=False, highlight=False, soft_wrap=True)
    out_console.print(f"{res.bars:,} bars in {res.elapsed_s:.2f} s ({res.bars_per_second:,.0f} bars/s)")
    for k, v in paths.items():
        out_console.print(f"{k}: {v}")
    if warning:
        out_console.print(f"warning: {warning}", markup=False, highlight=False)


def _analytics(trades, ts, day, bars, s) -> dict:
    """:func:`engine.backtest.analytics.trade_analytics` with the instrument's tick size/value."""
    from engine.backtest.analytics import trade_analytics
    from engine.instruments import spec

    sp = spec(s.instrument.symbol)
    return trade_analytics(trades, ts, day, bars, tick_size=sp.tick_size, tick_value=sp.tick_value,
                           bar_ns=int(bars.bar_ns))


def _clean_cal(cal) -> list:
    """The per-fold calibration records, JSON-ready (NaN → null)."""
    from engine.backtest.report import _clean

    return [_clean(c) for c in (cal or [])]


def _wf_notes(r) -> list[str]:
    """Lines for the walk-forward report: per fold its trades and net P&L, and its model's entry
    threshold (chosen on validation) or the abstain message with the validation figures."""
    cal = {c["fold"]: c for c in (r.calibration or [])}
    out = []
    for fm, fr in zip(r.wf.fold_metrics, r.training.folds):
        c = cal.get(fr.fold.number, {})
        if r.threshold_source != "checkpoint":
            why = "[signal] model_threshold = \"config\": the configured min_confidence"
        elif c.get("abstain"):
            why = c.get("reason", "")
        else:
            why = (
                f"threshold {c['threshold']:.2f} chosen on validation ({c.get('reason', '')})"
                if c.get("threshold") is not None else "")
        halted = (f"; halted {fm['halted_at']}, untraded remainder {fm['untraded_days']} trading days"
                  if fm.get("halted_at") else "")
        out.append(f"fold {fr.fold.number}: {int(fm['trades'])} trades, net ${fm['net_pnl']:,.2f}{halted}"
                   + (f"; {why}" if why else "") + f"; temperature {c.get('temperature', 1.0):.3f}")
    return out


def _account_mc(res, s, n_paths: int, seed: int, block: int) -> None:
    """``--monte-carlo``: the pass probability of the run's account profile
    (:func:`engine.research.montecarlo.result_pass_probability`) into ``res.account``; exit 2
    when asked without a venue profile."""
    if n_paths <= 0:
        return
    if res.account is None:
        fail("--monte-carlo needs an account profile: set [account] rules (e.g. topstepx-50k)", code=EXIT_USAGE)
    from engine.research.montecarlo import result_pass_probability

    res.account["pass_probability"] = result_pass_probability(res, s, n_paths=n_paths, seed=seed, block=block)


def _walk_forward(bars, s, fill: str, epochs: Optional[int], json_out: bool, data: str,
                  out: Optional[Path] = None, mc: tuple = (0, 0, 5)) -> None:
    """``backtest --walk-forward``: :func:`engine.backtest.walkforward.model_walk_forward`, a
    per-fold table, the stitched out-of-sample metrics and the go-live table; with ``out``:
    ``walk_forward.json``, ``trades.csv`` (every fold's trades, column ``fold``) and
    ``equity.csv`` (stitched out-of-sample equity) in that directory."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.backtest.walkforward import model_walk_forward
    from engine.ml.training import TrainParams

    params = TrainParams.from_config(s.training, epochs=epochs)
    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err_console, transient=True)
    tasks: dict = {}

    def on_progress(ev: dict) -> None:
        k = ev["event"]
        if k == "plan":
            err_console.print(ev["note"], highlight=False)
            tasks["f"] = prog.add_task("train folds", total=ev["folds"], info="")
        elif k == "epoch":
            prog.update(tasks["f"], info=f"fold {ev['fold'] + 1} epoch {ev['epoch']} val {ev['val_loss']:.4f}")
        elif k == "fold_done":
            prog.update(tasks["f"], advance=1)
        elif k == "backtest_fold":
            if "b" not in tasks:
                tasks["b"] = prog.add_task("backtest folds", total=ev["total"], info="")
            prog.update(tasks["b"], completed=ev["done"])

    try:
        with prog:
            r = model_walk_forward(bars, s, arch=s.training.arch, params=params, fill_model=fill,
                                   on_progress=on_progress)
    except ValueError as exc:
        fail(str(exc), code=EXIT_PROBLEMS)
    from engine.runtime.work import walk_forward_doc

    from engine.backtest.analytics import analytics_json

    doc = walk_forward_doc(r, s, fill, data, s.training.arch)
    doc["calibration"] = _clean_cal(r.calibration)
    doc["abstain"] = r.abstain_lines()
    an = _analytics(r.wf.trades, r.wf.ts, r.wf.day, bars, s)
    doc["analytics"] = analytics_json(an)
    _wf_pass_probability(doc, r, s, mc)
    folds = doc["folds"]
    _wf_files(r, doc, an, out, f"Walk-forward out-of-sample report: {s.training.arch} per fold", _wf_notes(r))
    if json_out:
        print_json(doc)
        return
    from rich.table import Table

    t = Table(title=f"walk-forward backtest · {s.training.arch} per fold · target {r.target['kind']}/{r.target['mode']}"
              f" · {fill}")
    for c in ("fold", "test", "trades", "net $", "sharpe", "max dd $", "accuracy"):
        t.add_column(c, justify="right")
    for f in folds:
        t.add_row(str(f["fold"] + 1), f["test"]["start"][:10], str(f["trades"]), f"{f['net_pnl']:,.2f}",
                  f"{f['sharpe']:.2f}", f"{f['max_drawdown']:,.2f}", f"{100 * f['accuracy']:.1f}%")
    m = r.wf.metrics
    t.add_row("all", "stitched", str(m.get("trades", 0)), f"{m.get('net_pnl', 0.0):,.2f}", f"{m.get('sharpe', 0.0):.2f}",
              f"{m.get('max_drawdown', 0.0):,.2f}", f"{100 * r.oos_accuracy:.1f}%", style="bold")
    out_console.print(t)
    from mes_console.commands.strategy import go_live_table

    out_console.print(go_live_table(r.go_live, "go-live check (R-BT-4)"))
    for line in _wf_notes(r):  # each fold's threshold from validation, or why its model abstains
        out_console.print(line, highlight=False, soft_wrap=True, markup=False)
    if not m.get("trades") and not r.abstain_lines():
        out_console.print(f"no trades: the fold models' confidence never reached their entry threshold "
                          f"(the first [risk] confidence_multipliers step {s.risk.confidence_multipliers[0][0]:g} "
                          "when above it) at an allowed entry", highlight=False)
    tr = r.training.combined.get("trading")
    if tr:
        a = tr["model_any"]["one_at_a_time"]
        out_console.print(f"the same models at any confidence (bracket outcome after costs, one at a time): "
                          f"{a['trades']} trades, {a['mean_ticks']:+.2f} ± {a['se_ticks']:.2f} ticks = "
                          f"{a['mean_usd']:+.2f} $ per contract per trade", highlight=False)
    out_console.print("go live: " + ("PASS" if r.go_live["pass"] else "NO — at least one criterion failed"))
    _print_wf_account(doc)
    for k, v in doc.get("files", {}).items():
        out_console.print(f"{k}: {v}")


def _wf_pass_probability(doc: dict, r, s, mc: tuple) -> None:
    """``--monte-carlo`` of a walk-forward (model or strategy): the pass probability of the
    stitched out-of-sample trading days against the account profile, into ``doc["account"]``;
    exit 3 without a profile."""
    if mc[0] <= 0:
        return
    if doc.get("account") is None:
        fail("--monte-carlo needs an account profile: set [account] rules (e.g. topstepx-50k)", code=EXIT_USAGE)
    from engine.research.montecarlo import PathRules, daily_table, pass_probability
    from engine.risk.profiles import effective_profile

    pnl, low = daily_table(r.wf.equity, r.wf.day, float(s.account.starting_capital))
    a = s.account
    doc["account"]["pass_probability"] = pass_probability(
        pnl, low, PathRules.of(effective_profile(a)), n_paths=mc[0], seed=mc[1], block=mc[2],
        economics=(a.evaluation_fee, a.reset_fee, a.payout_value) if a.payout_value > 0 else None)


def _wf_files(r, doc: dict, an, out: Optional[Path], title: str, notes: Optional[list[str]]) -> None:
    """With ``out``: walk_forward.json, trades.csv, equity.csv, the analytics tables, plots and
    report.html of a walk-forward (model or strategy); their paths into ``doc["files"]``."""
    if out is None:
        return
    from engine.backtest.report import write_analytics
    from engine.runtime.work import write_walk_forward_report

    try:
        doc["files"] = write_walk_forward_report(r, doc, out)
        more = write_analytics(an, out, title=title, metrics=r.wf.metrics, equity=r.wf.equity, ts=r.wf.ts, notes=notes)
        doc["files"].update({k: str(v) for k, v in more.items()})
    except OSError as exc:
        fail(str(exc), code=EXIT_PROBLEMS)


def _print_wf_account(doc: dict) -> None:
    """The account lines of a walk-forward: folds passed/failed (one attempt per fold), the
    stitched out-of-sample record, and the pass probability when a Monte Carlo ran."""
    acc = doc.get("account")
    if not acc:
        return
    from engine.backtest.report import pass_probability_text

    st = acc["stitched"]
    out_console.print(f"account {acc['profile']}: folds passed {acc['folds_passed']}, failed {acc['folds_failed']} "
                      f"of {len(acc['folds'])} (one attempt per fold); the stitched out-of-sample record: "
                      f"{st['status']} after {st['trading_days']} trading days", highlight=False)
    if acc.get("pass_probability"):
        out_console.print(pass_probability_text(acc["pass_probability"]), highlight=False)


def _strategy_walk_forward(bars, s, strat, fill: str, trials: int, json_out: bool, data: str,
                           out: Optional[Path], research: Optional[bool], mc: tuple = (0, 0, 5)) -> None:
    """``backtest --walk-forward --strategy FILE``: walk-forward optimization of the strategy's
    declared parameters (:func:`engine.strategy.walkforward.strategy_walk_forward`), the per-fold
    table and the go-live table; with ``out``: walk_forward.json, trades.csv, equity.csv."""
    import dataclasses

    from engine.strategy.walkforward import strategy_walk_forward, walk_forward_doc
    from mes_console.commands.strategy import print_walk_forward

    from engine.strategy.analysis import bar_seconds, lookahead_warning
    from mes_console.commands.strategy import warn

    lw = lookahead_warning(strat, s, bar_seconds(bars))
    if lw:
        warn(lw)
    if research is not None:
        s = dataclasses.replace(s, backtest=dataclasses.replace(s.backtest, research=bool(research)))

    def on_progress(ev: dict) -> None:
        if ev["event"] == "plan":
            err_console.print(f"{ev['note']}: {ev['folds']} fold(s), {trials} trials each", highlight=False)
        elif ev["event"] == "fold_done":
            err_console.print(f"fold {ev['fold'] + 1}: chosen {ev['params']}", highlight=False)

    from engine.research.optimize import OptimizeUsageError
    from engine.strategy.loader import StrategyError

    try:
        r = strategy_walk_forward(bars, s, strat, trials=trials, fill_model=fill, on_progress=on_progress)
    except (StrategyError, OptimizeUsageError) as exc:   # the user's file, or no declared parameters
        fail(str(exc), code=EXIT_USAGE)
    except ValueError as exc:   # data too short for a fold
        fail(str(exc), code=EXIT_PROBLEMS)
    from engine.backtest.analytics import analytics_json

    doc = walk_forward_doc(r, fill, data)
    an = _analytics(r.wf.trades, r.wf.ts, r.wf.day, bars, s)
    doc["analytics"] = analytics_json(an)
    _wf_pass_probability(doc, r, s, mc)
    _wf_files(r, doc, an, out, f"Walk-forward out-of-sample report: {strat.name}", None)
    if json_out:
        print_json(doc)
        return
    print_walk_forward(r, doc, s.optimize.objective)
    _print_wf_account(doc)
    for k, v in doc.get("files", {}).items():
        out_console.print(f"{k}: {v}")
