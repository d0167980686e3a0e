"""Confidence calibration and the entry threshold of a model, both fitted on the VALIDATION fold
(issue 24: with the shipped 0.60 threshold the model never traded, and nothing said why).

Temperature scaling (Guo, Pleiss, Sun & Weinberger 2017, "On Calibration of Modern Neural
Networks", ICML): calibrated probabilities = softmax(logits / T) with one scalar T > 0 that
minimises the negative log-likelihood of the validation labels. ``log p`` of the softmax output
differs from the logits by a per-row constant, so ``softmax(log p / T)`` is the same thing. T does
not change the arg-max class (accuracy is unchanged), only how confident the model claims to be.

Entry threshold: on the validation rows, for every threshold of :data:`THRESHOLD_GRID`, the
model's trades (direct mode: the arg-max class when it is UP/DOWN with calibrated probability ≥
the threshold; meta mode: the rule's side when the probability of taking it is ≥ it; only where
the kernel allows an entry) are scored with the bracket outcome of each bar after costs (one
position at a time, :func:`engine.data.target.trade_expectancy`). The chosen threshold is the one
with the highest mean $ per trade after costs among those with at least ``min_trades`` trades and
a POSITIVE mean; when none is positive the model ABSTAINS: the checkpoint records
``abstain = true`` with the validation table, and backtest, walk-forward and the console print
:data:`ABSTAIN_MESSAGE` with the best validation figures instead of silently making no trade.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

ABSTAIN_MESSAGE = "model abstains: no threshold with positive expectancy after costs on validation"
THRESHOLD_GRID = tuple(round(0.34 + 0.02 * i, 2) for i in range(31))  # 0.34 … 0.94
MIN_VAL_TRADES = 30


def _usd(v: float) -> str:
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (m, 3) float64 re-scaled by ``temperature``: softmax(log p / T)."""
    p = np.asarray(probs, np.float64)
    if temperature == 1.0 or not len(p):
        return p
    z = np.log(np.clip(p, 1e-12, 1.0)) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of labels ``y`` (int (m,), 0..2) under ``probs`` (m, 3)."""
    p = np.clip(np.asarray(probs, np.float64)[np.arange(len(y)), np.asarray(y, np.int64)], 1e-12, 1.0)
    return float(-np.log(p).mean()) if len(p) else float("nan")


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> dict:
    """The temperature T ∈ [0.05, 20] minimising the validation NLL of ``probs`` (m, 3) for labels
    ``y`` (bounded scalar search on log T). Returns ``{"temperature", "nll_before", "nll_after",
    "rows"}``; T = 1 with no rows."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, np.int64)
    if not len(y):
        return {"temperature": 1.0, "nll_before": float("nan"), "nll_after": float("nan"), "rows": 0}
    before = nll(probs, y)
    res = minimize_scalar(lambda lt: nll(apply_temperature(probs, math.exp(lt)), y),
                          bounds=(math.log(0.05), math.log(20.0)), method="bounded", options={"xatol": 1e-4})
    t = float(math.exp(res.x))
    after = nll(apply_temperature(probs, t), y)
    if not after <= before:  # never worse than uncalibrated
        t, after = 1.0, before
    return {"temperature": t, "nll_before": before, "nll_after": after, "rows": int(len(y))}


def choose_threshold(score: Callable[[float], dict], *, grid: tuple = THRESHOLD_GRID,
                     min_trades: int = MIN_VAL_TRADES) -> dict:
    """Pick the entry threshold by after-cost expectancy on validation (module docstring).

    ``score(threshold)`` returns :func:`engine.data.target.trade_expectancy`'s dict for the
    validation rows at that threshold. Returns ``{"threshold": float | None, "abstain": bool,
    "reason": str, "best": row, "table": [{"threshold", "trades", "mean_usd", "total_usd",
    "win_rate"}, ...], "min_trades"}``; ``best`` is the chosen row, or when abstaining the row with
    the highest mean among those with enough trades (the validation figures of the message)."""
    table = []
    for thr in grid:
        e = score(float(thr))["one_at_a_time"]
        table.append({"threshold": float(thr), "trades": int(e["trades"]), "mean_usd": float(e["mean_usd"]),
                      "total_usd": float(e["total_usd"]), "win_rate": float(e["win_rate"])})
    enough = [r for r in table if r["trades"] >= min_trades]
    best = max(enough, key=lambda r: (r["mean_usd"], -r["threshold"])) if enough else None
    if best is not None and best["mean_usd"] > 0:
        return {"threshold": best["threshold"], "abstain": False, "best": best, "table": table,
                "min_trades": int(min_trades),
                "reason": (f"threshold {best['threshold']:.2f}: {best['trades']} validation trades, "
                           f"{_usd(best['mean_usd'])} per trade after costs")}
    if best is None:
        why = f"no threshold gave {min_trades} validation trades"
    else:
        why = (f"best on validation: threshold {best['threshold']:.2f}, {best['trades']} trades, "
               f"{_usd(best['mean_usd'])} per trade after costs, {_usd(best['total_usd'])} in all")
    return {"threshold": None, "abstain": True, "best": best, "table": table, "min_trades": int(min_trades),
            "reason": f"{ABSTAIN_MESSAGE} ({why})"}


def abstain_text(cal: dict | None) -> str | None:
    """The abstain message with its validation figures for a checkpoint's ``calibration``
    record, or None when the model has a threshold (or no record)."""
    if not cal or not cal.get("abstain"):
        return None
    return str(cal.get("reason") or ABSTAIN_MESSAGE)
