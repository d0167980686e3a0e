"""Compiled helpers of the backtest: the skip-ahead scan and the equity pass. (The market-input
kernels, ATR, rolling means, EOD phase codes and the spread hysteresis, live in
:mod:`engine.market.inputs` and are re-exported here.)

The scans only say WHICH bar the kernel must see next; they never decide anything. Stopping
earlier than necessary is always safe (the kernel simply steps one more bar), so each scan stops
at the first bar where anything could happen:
- flat: the next bar with an actionable signal (direction ≠ 0, confidence ≥ the minimum, EOD
  phase before no_new, session allowed) — precomputed as a mask and found by ``searchsorted``;
- in a position with only its bracket legs working (:func:`scan_position`): the first bar whose
  range touches the stop or the target, makes a new favourable extreme (when breakeven or
  trailing is on), changes EOD phase, carries an opposite actionable signal, or whose
  close-marked equity makes a new day peak or reaches a risk-limit threshold.
"""

from __future__ import annotations

import numba
import numpy as np

from engine.market.inputs import (NORMAL_ATR_DAYS, eod_phase_codes, rolling_mean,  # noqa: F401 - re-exported
                                  spread_hysteresis, time_of_day_mean, time_of_day_slots, wilder_atr)


@numba.njit(cache=True)
def scan_position(start, ph0, side, stop, target, best, trail_on, high, low, close, phase, sig_dir,
                  actionable, cash, avg, qty_pv, eq_hi, eq_lo):  # pragma: no cover - compiled
    """First bar ≥ ``start`` at which the kernel must step for an open position (see module
    docstring); ``len(high)`` when none. ``ph0``: EOD phase code of the last stepped bar;
    ``qty_pv`` = signed contracts × point value."""
    n = high.shape[0]
    for k in range(start, n):
        if phase[k] != ph0:
            return k
        if side > 0:
            if low[k] <= stop or high[k] >= target:
                return k
            if trail_on and high[k] > best:
                return k
        else:
            if high[k] >= stop or low[k] <= target:
                return k
            if trail_on and low[k] < best:
                return k
        if actionable[k] and sig_dir[k] == -side:
            return k
        eq = cash + (close[k] - avg) * qty_pv
        if eq > eq_hi or eq <= eq_lo:
            return k
    return n


@numba.njit(cache=True)
def equity_pass(close, start, pv, n, entry_bar, exit_bar, entry_price, direction, contracts,
                net):  # pragma: no cover - compiled
    """Equity curve of :func:`engine.backtest.runner.equity_curve` (float64 (n,), dollars):
    ``start`` + the net P&L of every trade whose exit bar is ≤ k + the open P&L
    ``(close − entry) × direction × contracts × pv`` of the trade open on bar k (entry_bar ≤ k <
    exit_bar). Trades come in order and never overlap (one position at a time)."""
    eq = np.empty(n)
    m = entry_bar.shape[0]
    cash = start
    p = 0  # the first trade not yet closed at bar k
    for k in range(n):
        while p < m and exit_bar[p] <= k:
            cash += net[p]
            p += 1
        v = cash
        if p < m and entry_bar[p] <= k:
            v += (close[k] - entry_price[p]) * direction[p] * contracts[p] * pv
        eq[k] = v
    return eq
