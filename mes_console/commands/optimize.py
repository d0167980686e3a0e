"""``mes-console optimize``: an Optuna parameter search scored on the validation window, reported
on a held-out window, with the overfitting measures (R-BT-6). See :mod:`engine.research.optimize`.

Output: rich progress (trials complete, best value) on stderr; the report (best parameters, the
validation figures, the held-out backtest of the best parameters, halts, DSR and PBO, trials per
minute) on stdout or as one JSON document with ``--json``; the best parameters as a complete
config file (``--write-config``, default ``<reports dir>/optimize-<study>.toml``) that
``mes-console backtest --config FILE --start … --end …`` reproduces to the cent.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mes_console.commands.common import (EXIT_PROBLEMS, EXIT_UNREADABLE, EXIT_USAGE, err_console, fail,
                                         out_console, print_json, settings_from)


def register(root_app: typer.Typer) -> None:
    """Add the top-level ``optimize`` command to the root app."""
    root_app.command("optimize")(optimize)


def holdout_backtest(bars, settings, window: tuple[str, str], model: Optional[Path]):
    """The held-out run exactly as ``backtest --config … --start … --end …`` does it: slice by
    UTC date, the strategy's signals on the slice, fresh market arrays."""
    from engine.backtest.metrics import compute_metrics
    from engine.backtest.runner import run_backtest, slice_dates
    from engine.strategy import ModelStrategy, strategy_by_name

    part = slice_dates(bars, *window)
    strat = ModelStrategy(model) if model is not None else strategy_by_name(
        settings.backtest.strategy, lookback=settings.backtest.baseline_lookback)
    res = run_backtest(part, strat.signals(part), settings, fill_model=settings.backtest.fill_model,
                       strategy_name=strat.name)
    import math

    import numpy as np

    from engine.backtest.metrics import daily_equity

    m = compute_metrics(res.trades, res.equity, res.day, res.starting_balance, res.ts)
    _, deq = daily_equity(res.equity, res.day)
    pnl = np.diff(np.concatenate([[res.starting_balance], deq]))
    sd = float(pnl.std(ddof=1)) if len(pnl) > 1 else 0.0
    m["sharpe_usd"] = float(pnl.mean() / sd * math.sqrt(252)) if sd > 0 else 0.0
    return res, m


def optimize(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="Bars file (parquet/CSV/DBN)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model checkpoint (default: the rule strategy 'baseline')."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="tpe | random | grid (default [optimize] sampler)."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="COMPLETE trials the study should hold."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes on this machine."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (default SQLite under the data dir)."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default optimize-<data file stem>); the same name resumes."),
    objective: Optional[str] = typer.Option(None, "--objective", help="sharpe | net_pnl | calmar | expectancy."),
    space: Optional[List[str]] = typer.Option(None, "--space", help="NAME=LOW:HIGH[:STEP]; repeatable."),
    holdout_months: Optional[int] = typer.Option(None, "--holdout-months", min=1, help="Held-out months at the end."),
    start: Optional[str] = typer.Option(None, "--start", help="First UTC date of the data used."),
    end: Optional[str] = typer.Option(None, "--end", help="Last UTC date of the data used."),
    seed: int = typer.Option(7, "--seed", help="Sampler seed (worker i adds 1000·i)."),
    write_config: Optional[Path] = typer.Option(None, "--write-config", help="Where to write the best parameters as a config file."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML settings file."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Search stop/target ticks, risk %, the confidence threshold or the strategy's lookback on
    Optuna; report on held-out data with the deflated Sharpe ratio and the PBO."""
    import hashlib
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.backtest.report import _clean
    from engine.backtest.runner import BacktestError, slice_dates
    from engine.config import resolve_dir
    from engine.data.io import load_bars
    from engine.research.optimize import (OptimizeError, StudyPlan, TrialRunner, apply_params, build_space,
                                          default_storage, make_storage, open_study, run_workers, settings_toml,
                                          split_windows, study_report, _redact)

    s = settings_from(ctx, config)
    oc = s.optimize
    sampler_, trials_, workers_ = sampler or oc.sampler, trials or oc.trials, workers or oc.workers
    objective_ = objective or oc.objective
    if sampler_ not in ("tpe", "random", "grid"):
        fail(f"--sampler {sampler_!r}: allowed tpe, random, grid", code=EXIT_USAGE)
    if objective_ not in ("sharpe", "net_pnl", "calmar", "expectancy"):
        fail(f"--objective {objective_!r}: allowed sharpe, net_pnl, calmar, expectancy", code=EXIT_USAGE)
    if model is None and s.backtest.strategy != "baseline":
        fail(f"[backtest] strategy = {s.backtest.strategy!r}: optimize searches the rule strategy 'baseline' "
             "or a --model", code=EXIT_USAGE)
    try:
        sp = build_space(oc, space, model=model is not None)
    except OptimizeError as exc:
        fail(str(exc), code=EXIT_USAGE)
    try:
        bars = load_bars(data)
    except Exception as exc:  # the loader names file and row
        fail(f"{data}: {exc}", code=EXIT_UNREADABLE)
    try:
        bars = slice_dates(bars, start, end)
        win = split_windows(bars, holdout_months or oc.holdout_months)
        val_bars = slice_dates(bars, *win["validation"])
    except (BacktestError, OptimizeError) as exc:
        fail(str(exc), code=EXIT_USAGE)
    url = storage or oc.storage or default_storage(s)
    name = study or f"optimize-{data.stem}"
    base_digest = hashlib.sha256(settings_toml(s).encode()).hexdigest()[:16]
    setup = {"data": data.name, "bars": int(len(bars)), "first_ts": int(bars.ts[0]), "last_ts": int(bars.ts[-1]),
             "windows": win, "space": {k: d.to_dict() for k, d in sp.items()}, "objective": objective_,
             "sampler": sampler_, "model": model.name if model else "baseline", "settings_sha": base_digest}
    setup["min_trades"] = int(oc.min_trades)
    plan = StudyPlan(url, name, sampler_, sp, objective_, int(trials_), seed=seed, setup=setup,
                     min_trades=int(oc.min_trades))
    err_console.print(f"study {name} · storage {_redact(url)} · {sampler_} · objective {objective_} · "
                      f"validation {win['validation'][0]}…{win['validation'][1]} ({len(val_bars):,} bars) · "
                      f"held out {win['holdout'][0]}…{win['holdout'][1]} · space "
                      + ", ".join(f"{k} {d.low:g}…{d.high:g}/{d.step:g}" for k, d in sp.items()), highlight=False)
    try:
        runner = TrialRunner(val_bars, s, model)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err_console,
                      transient=False) as prog:
            task = prog.add_task("trials", total=int(trials_), info="")

            def on_progress(ev: dict) -> None:
                bv = ev["best_value"]
                prog.update(task, completed=ev["complete"],
                            info="" if bv is None else f"best {objective_} {bv:.4g} {ev['best_params']}")

            speed = run_workers(plan, runner, int(workers_), on_progress=on_progress)
        st = open_study(plan, make_storage(url))
        rep = study_report(st, objective_)
    except OptimizeError as exc:
        fail(str(exc), code=EXIT_PROBLEMS)
    except Exception as exc:  # noqa: BLE001 - one line, no traceback for the user
        fail(f"optimize: {type(exc).__name__}: {exc}", code=EXIT_PROBLEMS)
    best_s = apply_params(s, rep["best"]["params"])
    res, hm = holdout_backtest(bars, best_s, win["holdout"], model)
    from engine.research.optimize import halt_counts

    held = {"window": win["holdout"], "metrics": _clean(hm), "halts": halt_counts(res.halts)}
    cfg_path = write_config or (resolve_dir(s.paths.reports_dir, "reports") / f"{name}.toml")
    repro = (f"mes-console backtest --data {data} --config {cfg_path} --start {win['holdout'][0]} "
             f"--end {win['holdout'][1]}" + (f" --model {model}" if model else ""))
    header = [f"mes-console optimize: best of study {name!r} (trial {rep['best']['number']}, {objective_} "
              f"{rep['best']['value']:.6g} on {win['validation'][0]}…{win['validation'][1]})",
              f"params: {json.dumps(rep['best']['params'])}",
              f"held-out net P&L {hm['net_pnl']:.2f} $ over {hm['trades']} trades; reproduce with:",
              repro]
    try:
        Path(cfg_path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(cfg_path) + ".tmp")
        tmp.write_text(settings_toml(best_s, header))
        tmp.replace(cfg_path)
    except OSError as exc:
        fail(f"{cfg_path}: cannot write the config: {exc}", code=EXIT_PROBLEMS)
    doc = {"study": name, "storage": _redact(url), "sampler": sampler_, "windows": win, "space": setup["space"],
           "speed": speed, **{k: v for k, v in rep.items() if k != "history"}, "holdout": held,
           "config": str(cfg_path), "reproduce": repro}
    if json_out:
        print_json(doc)
        return
    _print_report(doc, objective_)


def _print_report(doc: dict, objective: str) -> None:
    from rich.table import Table

    b, h = doc["best"], doc["holdout"]
    t = Table(title=f"optimize · {doc['study']} · best trial {b['number']} of {sum(doc['trials'].values())}",
              show_header=True)
    t.add_column("")
    t.add_column("validation", justify="right")
    t.add_column("held out", justify="right")
    for k in ("net_pnl", "sharpe_usd", "sharpe", "calmar", "expectancy", "max_drawdown", "win_rate",
              "profit_factor", "trades"):
        v, w = b["validation"].get(k), h["metrics"].get(k)
        fmt = (lambda x: "—" if x is None else (f"{x:,.4g}" if isinstance(x, float) else str(x)))
        t.add_row(k, fmt(v), fmt(w))
    t.add_row("halts", ", ".join(f"{k} {v}" for k, v in b["halts"].items()) or "none",
              ", ".join(f"{k} {v}" for k, v in h["halts"].items()) or "none")
    out_console.print(t)
    out_console.print(f"best parameters: {b['params']}")
    d, p = doc["dsr"], doc["pbo"]
    out_console.print(
        f"deflated Sharpe ratio {d['dsr']:.3f} (daily Sharpe {d['sharpe']:.3f} vs {d['sr0']:.3f} expected from "
        f"the best of {d['n_trials']} skill-less trials; ≥ 0.95 is the usual bar) · PBO {p['pbo']:.2f} "
        f"({p['combinations']} CSCV splits of {p['blocks']} blocks; 0.5 = a coin flip)")
    sp = doc["speed"]
    out_console.print(f"{sp['new_trials']} new trials in {sp['elapsed_s']:.1f} s = {sp['trials_per_min']:.0f} "
                      f"trials/min with {sp['workers']} worker(s); trials by state {doc['trials']}")
    out_console.print(f"config: {doc['config']}")
    out_console.print(f"reproduce: {doc['reproduce']}", soft_wrap=True)
