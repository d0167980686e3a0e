"""Walk-forward optimization of a strategy's declared parameters (``backtest --walk-forward
--strategy``).

Folds: :func:`engine.ml.splits.plan_walk_forward` on the bars with the ``[training]`` window
lengths (calendar months, scaled down on short data as for a model). On each fold the declared
parameters (:class:`engine.strategy.api.Param`) are searched on the fold's in-sample window
(train + validation) with an Optuna TPE study of ``trials`` trials (in memory, seeded), scored
as ``mes-console optimize`` scores a trial (:class:`engine.research.optimize.StrategyTrialRunner`:
the kernel in research mode, objective ``[optimize] objective``); the best values are then run on
the fold's TEST window, which the search never saw, through
:func:`engine.backtest.walkforward.walk_forward_backtest` (a fresh account per fold, equity
stitched). The signals of a test window are computed with the strategy's trailing window of
history before it, so the first test bars are not in warm-up.

The go-live gate is :func:`engine.backtest.walkforward.go_live_check`; a rule strategy has no
3-class predictions, so its "out-of-sample accuracy" is the out-of-sample win rate of its trades
(said in the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from engine.strategy.base import StrategySignals
from engine.strategy.loader import LoadedStrategy


@dataclass
class StrategyWalkForward:
    """``wf``: :class:`engine.backtest.walkforward.WalkForwardBacktest`; ``chosen``: per fold
    ``{"fold", "params", "in_sample": {objective value, trades}}``; ``go_live``; ``oos_accuracy``
    (the out-of-sample win rate); ``note`` (the windows used)."""

    wf: Any
    chosen: list
    go_live: dict
    oos_accuracy: float
    note: str
    strategy: dict


def _tail(sig: StrategySignals, n: int) -> StrategySignals:
    return StrategySignals(sig.direction[-n:], sig.confidence[-n:], sig.pred_class[-n:])


def strategy_walk_forward(bars, settings, strategy: LoadedStrategy, *, trials: int = 20, seed: int = 7,
                          fill_model: str | None = None,
                          on_progress: Callable[[dict], None] | None = None) -> StrategyWalkForward:
    """See the module docstring. ``on_progress``: ``{"event": "plan", "note", "folds"}``, then
    ``{"event": "fold_done", "fold", "params"}`` per fold and ``{"event": "backtest_fold",
    "done", "total"}``. Raises ``ValueError`` (data too short for a fold, no declared
    parameters) and :class:`engine.strategy.loader.StrategyError`."""
    import dataclasses

    import optuna

    from engine.backtest.walkforward import go_live_check, walk_forward_backtest
    from engine.ml.splits import plan_walk_forward
    from engine.research.optimize import (StrategyTrialRunner, make_sampler, objective_value, strategy_space,
                                          strategy_values, suggest)

    fill = fill_model or settings.backtest.fill_model
    settings = dataclasses.replace(settings, backtest=dataclasses.replace(settings.backtest, fill_model=fill))
    space = strategy_space(strategy)
    tc = settings.training
    plan = plan_walk_forward(bars.ts, np.ones(len(bars), bool), bar_ns=int(bars.bar_ns), lookahead_bars=0,
                             train_months=tc.train_months, val_months=tc.val_months, test_months=tc.test_months,
                             roll_months=tc.roll_months, embargo_bars=0)
    if on_progress:
        on_progress({"event": "plan", "note": plan.note, "folds": len(plan.folds)})
    objective = settings.optimize.objective
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chosen: dict[int, LoadedStrategy] = {}
    record = []
    for f in plan.folds:
        lo, hi = np.searchsorted(bars.ts, [f.train.start, f.val.end])
        runner = StrategyTrialRunner(bars.slice(int(lo), int(hi)), settings, strategy)
        study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", space, seed + f.number))
        study.enqueue_trial({k: strategy.params[k[len("strategy."):]] for k in space})  # the defaults first

        def objective_fn(trial, runner=runner):
            r = runner.run(suggest(trial, space))
            trial.set_user_attr("trades", int(r["metrics"]["trades"]))
            if int(r["metrics"]["trades"]) < settings.optimize.min_trades:
                return -1e9
            return objective_value(r["metrics"], objective)

        study.optimize(objective_fn, n_trials=int(trials))
        best = max(study.trials, key=lambda t: (t.value if t.value is not None else -np.inf, -t.number))
        vals = strategy_values(best.params)
        chosen[f.number] = strategy.with_params(vals)
        record.append({"fold": f.number, "params": vals, "in_sample": {objective: best.value,
                                                                       "trades": best.user_attrs.get("trades")},
                       "train": f.train.to_dict(), "val": f.val.to_dict(), "test": f.test.to_dict()})
        if on_progress:
            on_progress({"event": "fold_done", "fold": f.number, "params": vals})

    def signals_for_fold(f, part):
        lo = int(np.searchsorted(bars.ts, f.test.start))
        st = chosen[f.number]
        w0 = max(0, lo - st.window)
        return _tail(st.signals(bars.slice(w0, lo + len(part))), len(part))

    prog = (lambda i, n: on_progress({"event": "backtest_fold", "done": i, "total": n})) if on_progress else None
    wf = walk_forward_backtest(bars, plan.folds, signals_for_fold, settings, fill_model=fill, progress=prog)
    tr: Any = wf.trades   # a DataFrame
    acc = float((tr["net_pnl"] > 0).mean()) if len(tr) else 0.0
    gate = go_live_check(wf, acc, settings.go_live)
    return StrategyWalkForward(wf, record, gate, acc, plan.note, strategy.describe())


def walk_forward_doc(r: StrategyWalkForward, fill_model: str, data: str) -> dict:
    """The ``walk_forward.json`` document of a strategy walk-forward: strategy, per fold the
    chosen parameters, their in-sample score and the test figures, the stitched out-of-sample
    metrics, the go-live checks, and the account verdicts (per fold and stitched; None for
    ``rules = "none"``) as the model walk-forward's document has them."""
    from engine.backtest.report import _clean

    folds = []
    for c, fm, res in zip(r.chosen, r.wf.fold_metrics, r.wf.folds):
        folds.append({**c, "trades": int(fm["trades"]), "net_pnl": fm["net_pnl"], "sharpe": fm["sharpe"],
                      "max_drawdown": fm["max_drawdown"], "halts": len(getattr(res, "halts", []))})
    return {"data": data, "walk_forward": True, "strategy": r.strategy, "fill_model": fill_model, "windows": r.note,
            "folds": folds, "metrics": _clean(r.wf.metrics), "oos_accuracy": r.oos_accuracy,
            "oos_accuracy_is": "out-of-sample trade win rate (a rule strategy makes no 3-class predictions)",
            "go_live": _clean(r.go_live), "account": getattr(r.wf, "account", None)}


__all__ = ["StrategyWalkForward", "strategy_walk_forward", "walk_forward_doc"]
