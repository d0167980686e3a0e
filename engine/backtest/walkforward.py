"""Walk-forward backtest and the go-live check (R-BT-4).

:func:`walk_forward_backtest` runs the kernel over each fold's TEST window (folds from
``engine.ml.splits.plan_walk_forward``: calendar-month windows, purged and embargoed) with the
signals that fold's model produced (one batch per fold, never one call per bar), each fold
starting from the starting balance with a fresh risk manager, and stitches the out-of-sample
equity by chaining each fold's P&L onto the previous fold's end.

:func:`go_live_check` applies the thresholds of :class:`engine.config.GoLiveConfig`:
Sharpe > 1.0 and Calmar > 0.5 on the stitched out-of-sample equity, out-of-sample 3-class
accuracy > 52 %, at least 100 trades in EVERY fold, and every risk limit exercised in simulation
(:data:`RISK_LIMITS`, detected from refusal reasons, exit reasons and risk audit records of any
runs given, typically the walk-forward runs plus stress runs built to trip them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.backtest.metrics import compute_metrics
from engine.backtest.runner import BacktestResult, run_backtest

RISK_LIMITS: dict[str, tuple[str, ...]] = {
    "daily_loss_limit": ("daily loss limit",),
    "daily_drawdown_limit": ("daily drawdown",),
    "consecutive_losses_3": ("3 consecutive losses",),
    "consecutive_losses_5": ("5 consecutive losses",),
    "kill_switch": ("kill switch",),
    "account_drawdown": ("account drawdown",),
    "min_account_balance": ("below the minimum",),
    "max_risk_per_trade": ("risk too small for one contract", "exceeds the $"),
    "eod_no_new": ("EOD phase",),
    "eod_flatten": ("eod_flatten",),
}
"""Limit name → phrases that prove it fired (risk manager reasons / exit reasons)."""


@dataclass
class WalkForwardResult:
    folds: list          # list[BacktestResult], one per fold
    fold_metrics: list   # list[dict]
    equity: np.ndarray   # stitched out-of-sample equity, dollars, per test bar
    ts: np.ndarray       # int64 bar open times of the stitched curve
    day: np.ndarray
    metrics: dict        # metrics of the stitched curve (all trades)
    trades: object       # all out-of-sample trades (DataFrame)


def walk_forward_backtest(bars, folds, signals_for_fold, settings, *, fill_model: str | None = None,
                          progress=None) -> WalkForwardResult:
    """Run each fold's test window.

    Args:
        bars: the full :class:`Bars`. folds: ``Fold`` objects (``test.start``/``test.end`` UTC ns).
        signals_for_fold: callable ``(fold, test_bars) -> StrategySignals`` (one batch per fold).
        settings, fill_model: as :func:`run_backtest`.
    Raises ``ValueError`` when a fold's test window holds no bars.
    """
    import pandas as pd

    results, metrics = [], []
    eq_parts, ts_parts, day_parts, trade_parts = [], [], [], []
    carry = float(settings.account.starting_capital)
    for k, f in enumerate(folds):
        lo = int(np.searchsorted(bars.ts, f.test.start))
        hi = int(np.searchsorted(bars.ts, f.test.end))
        if hi <= lo:
            raise ValueError(f"walk-forward fold {f.number}: no bars in its test window {f.test.to_dict()}")
        part = bars.slice(lo, hi)
        res = run_backtest(part, signals_for_fold(f, part), settings, fill_model=fill_model,
                           strategy_name=f"fold {f.number}")
        results.append(res)
        metrics.append(compute_metrics(res.trades, res.equity, res.day, res.starting_balance, res.ts))
        eq_parts.append(res.equity - res.starting_balance + carry)
        carry = float(eq_parts[-1][-1])
        ts_parts.append(res.ts)
        day_parts.append(res.day)
        trade_parts.append(res.trades.assign(fold=f.number))
        if progress is not None:
            progress(k + 1, len(folds))
    equity = np.concatenate(eq_parts) if eq_parts else np.zeros(0)
    ts = np.concatenate(ts_parts) if ts_parts else np.zeros(0, np.int64)
    day = np.concatenate(day_parts) if day_parts else np.zeros(0, np.int32)
    trades = pd.concat(trade_parts, ignore_index=True) if trade_parts else pd.DataFrame()
    start = float(settings.account.starting_capital)
    total = compute_metrics(trades, equity, day, start, ts) if len(equity) else {}
    return WalkForwardResult(results, metrics, equity, ts, day, total, trades)


def limits_exercised(results: list[BacktestResult]) -> dict[str, bool]:
    """Which of :data:`RISK_LIMITS` fired in any of ``results`` (refusal reasons, exit reasons,
    risk audit records, the halt log)."""
    texts: list[str] = []
    for r in results:
        texts.extend(r.refused.keys())
        texts.extend(str(a.get("reason", "")) for a in r.risk_audit)
        texts.extend(str(h.get("reason", "")) for h in getattr(r, "halts", []))  # halts, blocks, pauses
        if len(r.trades):
            texts.extend(r.trades["exit_reason"].unique().tolist())
    blob = "\n".join(texts)
    return {name: any(p in blob for p in phrases) for name, phrases in RISK_LIMITS.items()}


def go_live_check(wf: WalkForwardResult, oos_accuracy: float, go_live_cfg,
                  exercised: dict[str, bool] | None = None) -> dict:
    """The R-BT-4 gate. Returns {"pass": bool, "checks": {name: {"value", "threshold", "pass"}}}.
    ``oos_accuracy``: out-of-sample 3-class accuracy of the models (0..1); ``exercised``: from
    :func:`limits_exercised` (default: the walk-forward runs alone)."""
    m = wf.metrics or {}
    ex = exercised if exercised is not None else limits_exercised(wf.folds)
    per_fold = [int(fm["trades"]) for fm in wf.fold_metrics]
    checks = {
        "sharpe": {"value": m.get("sharpe", 0.0), "threshold": f"> {go_live_cfg.min_sharpe}",
                   "pass": m.get("sharpe", 0.0) > go_live_cfg.min_sharpe},
        "calmar": {"value": m.get("calmar", 0.0), "threshold": f"> {go_live_cfg.min_calmar}",
                   "pass": m.get("calmar", 0.0) > go_live_cfg.min_calmar},
        "oos_accuracy": {"value": float(oos_accuracy), "threshold": f"> {go_live_cfg.min_accuracy}",
                         "pass": float(oos_accuracy) > go_live_cfg.min_accuracy},
        "trades_per_fold": {"value": per_fold, "threshold": f">= {go_live_cfg.min_trades_per_fold} in every fold",
                            "pass": bool(per_fold) and min(per_fold) >= go_live_cfg.min_trades_per_fold},
        "risk_limits_exercised": {"value": ex, "threshold": "all", "pass": all(ex.values())},
    }
    return {"pass": all(c["pass"] for c in checks.values()), "checks": checks}
