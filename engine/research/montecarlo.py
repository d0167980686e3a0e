"""Pass probability of an account profile (issue 23, R-BT-7): a seeded block bootstrap of whole
trading days of a run's daily P&L, each resampled path run against the profile's rules.

Per trading day the run gives two numbers (:func:`daily_table`): the day's P&L (end-of-day
equity − the previous day's, dollars) and its worst intraday equity relative to the day's start
(the lowest bar-close equity of the day − the start, ≤ 0; bar closes, not the bars' extremes: a
path's intraday breach is as fine as the run's equity curve). A path strings ``horizon`` days
drawn as blocks of ``block`` consecutive days (circular, uniform starts; block 1 = days i.i.d.)
and applies the rules of :class:`engine.risk.account_rules.AccountRules` day by day:

- the MLL level of day ``d`` = ``min(max(start, end-of-day balances before d) − allowance,
  lock)``; the path FAILS on the first day whose intraday low or end-of-day balance is at or
  below that level;
- it PASSES at the end of the first day whose profit ≥ the target with the best day's P&L ≤
  ``consistency_share`` × the profit (a fail on the same day wins: the intraday breach comes
  first); neither within the horizon: OPEN.

:func:`pass_probability` reports P(pass), P(fail), P(open), the median trading days to pass and
to fail, ``provisional`` when the run traded on fewer than :data:`MIN_TRADED_DAYS` days, and
with evaluation economics the expected value of one attempt: ``P(pass) × payout − fee −
P(fail) × reset fee`` (dollars). 10,000 paths of 252 days take well under a second
(``bench/bench_montecarlo.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_TRADED_DAYS = 30
"""Below this many traded days (days with a non-zero P&L) the estimate is ``provisional``."""


@dataclass(frozen=True)
class PathRules:
    """The rules a path is run against (dollars; ``consistency_share`` 0 = no rule, ``target``
    0 = no target: a path can only fail or stay open)."""

    start: float
    allowance: float
    lock: float
    target: float
    consistency_share: float

    @classmethod
    def of(cls, profile: Any) -> "PathRules":
        """From an :class:`engine.risk.profiles.AccountProfile` (its overrides applied)."""
        return cls(float(profile.account_size), float(profile.mll_allowance), float(profile.lock_level),
                   float(profile.profit_target), float(profile.consistency_share))


def daily_table(equity: np.ndarray, day: np.ndarray, start: float) -> tuple[np.ndarray, np.ndarray]:
    """``(pnl, low)`` float64 (D,) per trading day of a run: ``equity`` float64 (n,) dollars at
    each bar close, ``day`` int (n,) trading-day labels (ascending), ``start`` the starting
    balance. ``pnl[d]`` = the day's last equity − the previous day's (``start`` before the
    first); ``low[d]`` = min(the day's lowest equity − its start equity, 0)."""
    eq = np.asarray(equity, dtype=np.float64)
    dy = np.asarray(day)
    if eq.size == 0:
        return np.zeros(0), np.zeros(0)
    first = np.flatnonzero(np.r_[True, dy[1:] != dy[:-1]])
    last = np.r_[first[1:] - 1, eq.size - 1]
    close = eq[last]
    open_ = np.r_[float(start), close[:-1]]
    low = np.minimum(np.minimum.reduceat(eq, first) - open_, 0.0)
    return close - open_, low


def run_paths(pnl: np.ndarray, low: np.ndarray, rules: PathRules) -> tuple[np.ndarray, np.ndarray]:
    """Run paths against ``rules``: ``pnl``, ``low`` float64 (P, H) (one row per path, one column
    per day). Returns ``(outcome, days)`` int8 / int64 (P,): outcome 1 passed, -1 failed, 0 open;
    days = the trading day (1-based) it passed or failed on, 0 when open."""
    P, H = pnl.shape
    bal = rules.start + np.cumsum(pnl, axis=1)
    before = np.empty_like(bal)
    before[:, 0] = rules.start
    before[:, 1:] = bal[:, :-1]
    high = np.maximum.accumulate(np.maximum(before, rules.start), axis=1)
    level = np.minimum(high - rules.allowance, rules.lock)
    fail = (before + low <= level + 1e-9) | (bal <= level + 1e-9)
    if rules.target > 0:
        profit = bal - rules.start
        ok = profit >= rules.target - 1e-9
        if rules.consistency_share > 0:
            best = np.maximum.accumulate(pnl, axis=1)
            ok &= best <= rules.consistency_share * profit + 1e-9
    else:
        ok = np.zeros_like(fail)
    big = H + 1
    f_at = np.where(fail.any(axis=1), fail.argmax(axis=1), big)
    p_at = np.where(ok.any(axis=1), ok.argmax(axis=1), big)
    outcome = np.where(f_at <= p_at, np.where(f_at < big, -1, 0), 1).astype(np.int8)
    days = np.where(outcome == -1, f_at + 1, np.where(outcome == 1, p_at + 1, 0)).astype(np.int64)
    return outcome, days


def bootstrap_index(n_days: int, n_paths: int, horizon: int, block: int, seed: int) -> np.ndarray:
    """int64 (n_paths, horizon) day indices: blocks of ``block`` consecutive days (circular) at
    uniform random starts (``numpy.random.default_rng(seed)``)."""
    if n_days < 1:
        raise ValueError("no trading days to resample")
    block = max(1, min(int(block), n_days))
    nb = -(-int(horizon) // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_days, size=(int(n_paths), nb))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n_days
    return idx.reshape(int(n_paths), nb * block)[:, :int(horizon)]


def pass_probability(pnl: np.ndarray, low: np.ndarray, rules: PathRules, *, n_paths: int = 10_000,
                     horizon: int | None = None, block: int = 5, seed: int = 0,
                     economics: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """The Monte Carlo of the module docstring over a run's :func:`daily_table`.

    Args:
        pnl, low: float64 (D,) per trading day. rules: :class:`PathRules`.
        n_paths: paths. horizon: trading days per path (default D, the run's length).
        block: days per bootstrap block. seed: the generator's seed (same seed, same answer).
        economics: ``(evaluation fee, reset fee, payout value)`` dollars, or None.
    Returns a JSON-ready dict: ``p_pass``, ``p_fail``, ``p_open``, ``median_days_to_pass`` /
    ``median_days_to_fail`` (None when no path did), ``paths``, ``horizon_days``, ``block_days``,
    ``seed``, ``traded_days``, ``provisional`` and, with economics, ``expected_value``.
    Raises ``ValueError`` when there are no days."""
    pnl = np.asarray(pnl, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    h = int(horizon or pnl.size)
    idx = bootstrap_index(pnl.size, n_paths, h, block, seed)
    outcome, days = run_paths(pnl[idx], low[idx], rules)
    n = float(n_paths)
    traded = int(np.count_nonzero(np.abs(pnl) > 1e-9))
    doc: dict[str, Any] = {
        "p_pass": float(np.count_nonzero(outcome == 1) / n),
        "p_fail": float(np.count_nonzero(outcome == -1) / n),
        "p_open": float(np.count_nonzero(outcome == 0) / n),
        "median_days_to_pass": float(np.median(days[outcome == 1])) if (outcome == 1).any() else None,
        "median_days_to_fail": float(np.median(days[outcome == -1])) if (outcome == -1).any() else None,
        "paths": int(n_paths), "horizon_days": h, "block_days": int(block), "seed": int(seed),
        "traded_days": traded, "provisional": traded < MIN_TRADED_DAYS,
    }
    if economics is not None:
        fee, reset, payout = (float(x) for x in economics)
        doc["expected_value"] = doc["p_pass"] * payout - fee - doc["p_fail"] * reset
        doc["economics"] = {"evaluation_fee": fee, "reset_fee": reset, "payout_value": payout}
    return doc


def record_verdict(equity: np.ndarray, day: np.ndarray, start: float, rules: PathRules) -> dict[str, Any]:
    """The verdict of ONE recorded path (a walk-forward's stitched out-of-sample equity: float64
    (n,) dollars per bar, ``day`` its trading-day labels) under ``rules`` at the daily grain of
    :func:`run_paths`: ``status`` passed / failed / open, ``day`` (the trading-day label it
    passed or failed on, None when open), ``trading_days`` (days into the record)."""
    pnl, low = daily_table(equity, day, start)
    if pnl.size == 0:
        return {"status": "open", "day": None, "trading_days": 0}
    outcome, days = run_paths(pnl[None, :], low[None, :], rules)
    o, d = int(outcome[0]), int(days[0])
    labels = np.asarray(day)[np.flatnonzero(np.r_[True, np.asarray(day)[1:] != np.asarray(day)[:-1]])]
    return {"status": {1: "passed", -1: "failed", 0: "open"}[o],
            "day": int(labels[d - 1]) if d > 0 else None, "trading_days": d if d > 0 else int(pnl.size),
            "profit": float(np.sum(pnl))}


def result_pass_probability(result: Any, settings: Any, *, n_paths: int = 10_000, seed: int = 0,
                            block: int = 5, horizon: int | None = None) -> dict[str, Any] | None:
    """:func:`pass_probability` of a :class:`engine.backtest.runner.BacktestResult` under the
    account profile of ``settings`` (None for ``rules = "none"``); economics from ``[account]``
    ``evaluation_fee`` / ``reset_fee`` / ``payout_value`` when the payout is > 0."""
    from engine.risk.profiles import effective_profile

    prof = effective_profile(settings.account)
    if prof is None:
        return None
    pnl, low = daily_table(result.equity, result.day, result.starting_balance)
    a = settings.account
    econ = (a.evaluation_fee, a.reset_fee, a.payout_value) if a.payout_value > 0 else None
    return pass_probability(pnl, low, PathRules.of(prof), n_paths=n_paths, seed=seed, block=block,
                            horizon=horizon, economics=econ)


__all__ = ["PathRules", "daily_table", "run_paths", "record_verdict", "bootstrap_index", "pass_probability",
           "result_pass_probability", "MIN_TRADED_DAYS"]
