"""Compiled helpers of the backtest: ATR, rolling means and the skip-ahead scans.

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


@numba.njit(cache=True)
def wilder_atr(high, low, close, period):  # pragma: no cover - compiled
    """Wilder ATR in points, float64 (n,); NaN for the first ``period - 1`` bars."""
    n = high.shape[0]
    out = np.full(n, np.nan)
    if n == 0:
        return out
    acc = 0.0
    prev = close[0]
    atr = 0.0
    for i in range(n):
        tr = high[i] - low[i]
        if i > 0:
            a = abs(high[i] - prev)
            b = abs(low[i] - prev)
            if a > tr:
                tr = a
            if b > tr:
                tr = b
        prev = close[i]
        if i < period:
            acc += tr
            if i == period - 1:
                atr = acc / period
                out[i] = atr
        else:
            atr = (atr * (period - 1) + tr) / period
            out[i] = atr
    return out


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` finite values' positions (NaN treated as 0 weight),
    float64 (n,); NaN until ``window`` bars have passed (and where the window holds no finite
    value). Compiled; the same floating-point operations, in the same order, as the prefix-sum
    formula ``(cs[i+1] − cs[i+1−w]) / count`` with ``cs`` the running sum (bit-identical)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    return _rolling_mean(x, int(window))


@numba.njit(cache=True)
def _rolling_mean(x, window):  # pragma: no cover - compiled
    n = x.shape[0]
    out = np.empty(n)
    if n < window:
        out[:] = np.nan
        return out
    m = window + 1  # ring buffers of the running sum / count at positions i+1-window .. i+1
    cs = np.zeros(m)
    cn = np.zeros(m, np.int64)
    s = 0.0
    c = 0
    j = 0  # (i + 1) % m, kept without a division
    for i in range(n):
        v = x[i]
        if np.isfinite(v):
            s = s + v
            c += 1
        else:
            s = s + 0.0
        j += 1
        if j == m:
            j = 0
        cs[j] = s
        cn[j] = c
        out[i] = np.nan
        if i >= window - 1:
            k = j + 1 if j + 1 < m else 0  # (i + 1 - window) % m, as m = window + 1
            cnt = c - cn[k]
            if cnt > 0:
                out[i] = (s - cs[k]) / cnt
    return out


@numba.njit(cache=True)
def eod_phase_codes(close_ts, row, eod, sclose):  # pragma: no cover - compiled
    """EOD phase code (engine.calendar.PHASE_CODES) at each bar's close: 0-4 from the session's
    reduce/no_new/exit/flat times, 5 when the bar is outside a session or closes after it."""
    n = close_ts.shape[0]
    out = np.empty(n, np.int8)
    for i in range(n):
        r = row[i]
        t = close_ts[i]
        if r < 0 or t > sclose[r]:
            out[i] = 5
            continue
        p = 0
        for k in range(4):
            if t >= eod[r, k]:
                p = k + 1
        out[i] = p
    return out


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


NORMAL_ATR_DAYS = 20
"""Trading days in the time-of-day "normal ATR" (see :func:`time_of_day_mean`)."""


def time_of_day_slots(ny_seconds: np.ndarray, bar_ns: int) -> np.ndarray:
    """Time-of-day slot of each bar (int64 (n,)): seconds since New York midnight of its open //
    the bar length in seconds (1-minute bars: 0 … 1439). Bars longer than a day share slot 0."""
    bar_s = max(int(bar_ns // 1_000_000_000), 1)
    return (np.asarray(ny_seconds, dtype=np.int64) // bar_s).astype(np.int64)


def time_of_day_mean(x: np.ndarray, slot: np.ndarray, window: int = NORMAL_ATR_DAYS) -> np.ndarray:
    """Trailing mean of ``x`` over the last ``window`` bars of the SAME time-of-day ``slot``
    (:func:`time_of_day_slots`), float64 (n,): the "normal ATR" of the bar's minute of the day
    over the last 20 trading days, so the RTH open is compared with earlier RTH opens and the
    overnight with the overnight. Per slot exactly the arithmetic of :func:`rolling_mean` (NaN
    weighs 0; NaN until ``window`` bars of that slot have passed); causal."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    slot = np.ascontiguousarray(slot, dtype=np.int64)
    nslots = int(slot.max()) + 1 if len(slot) else 1
    return _slot_rolling_mean(x, slot, nslots, int(window))


@numba.njit(cache=True)
def _slot_rolling_mean(x, slot, nslots, window):  # pragma: no cover - compiled
    n = x.shape[0]
    out = np.empty(n)
    m = window + 1
    cs = np.zeros((nslots, m))
    cn = np.zeros((nslots, m), np.int64)
    s = np.zeros(nslots)
    c = np.zeros(nslots, np.int64)
    seen = np.zeros(nslots, np.int64)
    jj = np.zeros(nslots, np.int64)
    for i in range(n):
        q = slot[i]
        v = x[i]
        if np.isfinite(v):
            s[q] = s[q] + v
            c[q] += 1
        else:
            s[q] = s[q] + 0.0
        j = jj[q] + 1
        if j == m:
            j = 0
        jj[q] = j
        cs[q, j] = s[q]
        cn[q, j] = c[q]
        out[i] = np.nan
        if seen[q] >= window - 1:
            k = j + 1 if j + 1 < m else 0
            cnt = c[q] - cn[q, k]
            if cnt > 0:
                out[i] = (s[q] - cs[q, k]) / cnt
        seen[q] += 1
    return out


@numba.njit(cache=True)
def spread_hysteresis(spread, pause, resume):  # pragma: no cover - compiled
    """The spread the risk manager's breaker must see at each bar so that stepping only some bars
    gives the state of stepping every bar: the spread of the last bar at or before i that
    decides the breaker (> ``pause`` pauses, ≤ ``resume`` resumes; a spread between keeps the
    state), NaN before the first such bar. float64 (n,) ticks."""
    n = spread.shape[0]
    out = np.empty(n)
    last = np.nan
    for i in range(n):
        v = spread[i]
        if v > pause or v <= resume:
            last = v
        out[i] = last
    return out
