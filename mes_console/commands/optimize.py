"""``mes-console optimize``: an Optuna parameter search scored on the validation window, reported
on a held-out window, with the overfitting measures (R-BT-6). See :mod:`engine.research.optimize`.

Output: rich progress (trials complete, best value) on stderr; the report (best parameters, the
validation figures, the held-out backtest of the best parameters, halts, DSR and PBO, trials per
minute) on stdout or as one JSON document with ``--json``; the best parameters as a complete
config file (``--write-config``, default ``<reports dir>/optimize-<study>.toml``) that
``mes-console backtest --config FILE --start … --end …`` reproduces to the cent.

Exit codes: 0 done, 1 study problem (set-up mismatch, failed worker, storage), 2 unreadable
data, 3 bad flags/space/windows, 4 interrupted (ctrl+c; finished trials are kept, rerun resumes).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mes_console.commands.common import (EXIT_PROBLEMS, EXIT_UNREADABLE, EXIT_USAGE, check_dates, err_console, fail,
                                         out_console, print_json, settings_from)
from mes_console.commands.options import ConfigOpt, DataOpt, JsonOpt, top_level_command


def optimize(
    ctx: typer.Context,
    data: Path = DataOpt,
    model: Optional[Path] = typer.Option(None, "--model", help="Model checkpoint (default: the rule strategy 'baseline')."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="A strategy whose declared parameters are searched with the risk ones: path/file.py:Class | package.module:Class | an entry-point name."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="tpe | random | grid (default [optimize] sampler)."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="COMPLETE trials the study should hold."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes on this machine."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (default SQLite under the data dir)."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default optimize-<data file stem>); the same name resumes."),
    objective: Optional[str] = typer.Option(None, "--objective", help="sharpe | net_pnl | calmar | expectancy | pass_probability | expected_value (the last two need an [account] profile)."),
    space: Optional[List[str]] = typer.Option(None, "--space", help="NAME=LOW:HIGH[:STEP]; repeatable."),
    holdout_months: Optional[int] = typer.Option(None, "--holdout-months", min=1, help="Held-out months at the end."),
    start: Optional[str] = typer.Option(None, "--start", help="First UTC date of the data used."),
    end: Optional[str] = typer.Option(None, "--end", help="Last UTC date of the data used."),
    seed: int = typer.Option(7, "--seed", help="Sampler seed (worker i adds 1000·i)."),
    write_config: Optional[Path] = typer.Option(None, "--write-config", help="Where to write the best parameters as a config file."),
    config: Optional[Path] = ConfigOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Search stop/target ticks, risk %, the confidence threshold or the strategy's lookback (with
    --strategy FILE: its declared parameters) on Optuna; report on held-out data with the deflated
    Sharpe ratio and the PBO."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.research.optimize import OptimizeDataError, OptimizeError, OptimizeUsageError, optimize_study

    check_dates(start, end)
    s = settings_from(ctx, config)
    loaded = None
    if strategy is not None and strategy != "baseline":
        from mes_console.commands.strategy import cli_strategy

        if model is not None:
            fail("give --model or --strategy, not both", code=EXIT_USAGE)
        loaded = cli_strategy(strategy, None, settings=s)
    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err_console, transient=False)
    state: dict = {}

    def on_start(st: dict) -> None:
        v, h = st["windows"]["validation"], st["windows"]["holdout"]
        err_console.print(f"study {st['study']} · storage {st['storage']} · {st['sampler']} · objective "
                          f"{st['objective']} · validation {v[0]}…{v[1]} ({st['validation_bars']:,} bars) · held out "
                          f"{h[0]}…{h[1]} · space " + ", ".join(f"{k} {d['low']:g}…{d['high']:g}/{d['step']:g}"
                                                             for k, d in st["space"].items()), highlight=False)
        state["objective"] = st["objective"]
        prog.start()
        state["task"] = prog.add_task("trials", total=st["trials"], info="")

    def on_progress(ev: dict) -> None:
        bv = ev["best_value"]
        prog.update(state["task"], completed=ev["complete"],
                    info="" if bv is None else f"best {state['objective']} {bv:.4g} {ev['best_params']}")

    try:
        doc = optimize_study(s, data, model=model, sampler=sampler, trials=trials, workers=workers, storage=storage,
                             study=study, objective=objective, space=space, holdout_months=holdout_months,
                             start=start, end=end, seed=seed, write_config=write_config, on_start=on_start,
                             on_progress=on_progress, **({"strategy": loaded} if loaded is not None else {}))
    except KeyboardInterrupt:
        prog.stop()
        fail("interrupted: the study keeps every finished trial; run the same command again to resume", code=4)
    except OptimizeUsageError as exc:
        prog.stop()
        fail(str(exc), code=EXIT_USAGE)
    except OptimizeDataError as exc:
        prog.stop()
        fail(str(exc), code=EXIT_UNREADABLE)
    except OptimizeError as exc:
        prog.stop()
        fail(str(exc), code=EXIT_PROBLEMS)
    except Exception as exc:  # noqa: BLE001 - one line, no traceback for the user
        prog.stop()
        fail(f"optimize: {type(exc).__name__}: {exc}", code=EXIT_PROBLEMS)
    prog.stop()
    doc = {k: v for k, v in doc.items() if k != "history"}
    if json_out:
        print_json(_finite(doc))
        return
    _print_report(doc, state.get("objective", ""))


def _finite(v):
    """NaN/inf → None, recursively (JSON has no NaN): undefined DSR/PBO print as null."""
    import math

    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _print_report(doc: dict, objective: str) -> None:
    from rich.table import Table

    b, h = doc["best"], doc["holdout"]
    t = Table(title=f"optimize · {doc['study']} · best trial {b['number']} of {sum(doc['trials'].values())}",
              show_header=True)
    t.add_column("")
    t.add_column("validation", justify="right")
    t.add_column("held out", justify="right")
    for k in ("net_pnl", "sharpe_usd", "sharpe", "calmar", "expectancy", "max_drawdown", "win_rate",
              "profit_factor", "trades") + tuple(x for x in ("pass_probability", "expected_value")
                                                 if b["validation"].get(x) is not None):
        v, w = b["validation"].get(k), h["metrics"].get(k)
        fmt = (lambda x: "—" if x is None else (f"{x:,.4g}" if isinstance(x, float) else str(x)))
        t.add_row(k, fmt(v), fmt(w))
    t.add_row("halts", ", ".join(f"{k} {v}" for k, v in b["halts"].items()) or "none",
              ", ".join(f"{k} {v}" for k, v in h["halts"].items()) or "none")
    out_console.print(t)
    out_console.print(f"best parameters: {b['params']}")
    for what, v in (("validation, research mode", b.get("verdict")), ("held out", h.get("verdict"))):
        if v:
            out_console.print(f"account verdict ({what}): {v['status']}"
                              + (f" on {v['date']}" if v.get("date") else "") + (f" by {v['rule']}" if v.get("rule") else "")
                              + (f" · P(pass) {100 * v['p_pass']:.1f}%" if v.get("p_pass") is not None else ""),
                              highlight=False)
    d, p = doc["dsr"], doc["pbo"]
    if not doc["eligible_trials"]:
        out_console.print("no trial reached [optimize] min_trades: nothing was selected; DSR and PBO are undefined, "
                          "the 'best' parameters above are no result", highlight=False)
    out_console.print(
        f"deflated Sharpe ratio {d['dsr']:.3f} (daily Sharpe {d['sharpe']:.3f} vs {d['sr0']:.3f} expected from "
        f"the best of {d['n_trials']} skill-less trials with ≥ min_trades trades; ≥ 0.95 is the usual bar) · "
        f"PBO {p['pbo']:.2f} "
        f"({p['combinations']} CSCV splits of {p['blocks']} blocks; 0.5 = a coin flip)")
    sp = doc["speed"]
    out_console.print(f"{sp['new_trials']} new trials in {sp['elapsed_s']:.1f} s = {sp['trials_per_min']:.0f} "
                      f"trials/min with {sp['workers']} worker(s); trials by state {doc['trials']}")
    out_console.print(f"config: {doc['config']}")
    out_console.print(f"reproduce: {doc['reproduce']}", soft_wrap=True)


register = top_level_command("optimize", optimize)
