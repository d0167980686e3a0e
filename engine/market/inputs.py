"""The kernel's market inputs over whole bar arrays (batch): EOD phase codes, Wilder ATR, the
time-of-day normal ATR, average volume, slippage ticks and the modelled spread.

One definition for every driver: the backtest (:mod:`engine.backtest.runner`), the replay/paper
session's simulated venue, the target builder, the ML pipeline and the optimizer import it from
here (the engine's market layer, below the backtest). The streaming twin, one bar at a time, is
:class:`engine.runtime.market_state.MarketState` (the same floating-point operations in the same
order; tests/test_runtime_session.py proves them equal on real bars).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from engine.calendar import DAY_NS, calendar_for
from engine.market.spread import spread_ticks
from engine.venue.sim import slippage_ticks


class MarketInputError(ValueError):
    """Market inputs cannot be computed (no bars)."""


def wilder_update(i: int, period: int, high: float, low: float, prev_close: float, acc: float,
                  atr: float) -> tuple[float, float, float]:
    """One bar of Wilder's ATR (points), the one definition: bar ``i`` (0-based) with its high,
    low and the previous bar's close (unused at ``i == 0``); ``acc`` the sum of the first
    ``period`` true ranges, ``atr`` the running ATR. Returns ``(acc, atr, value)`` with ``value``
    NaN until ``period`` bars have passed, then the mean of the first ``period`` true ranges,
    then ``(atr × (period − 1) + tr) / period``. Runs as written in the streaming path
    (:class:`engine.runtime.market_state.MarketState`) and compiled in :func:`wilder_atr`: the
    same operations in the same order, so both give bit-identical numbers."""
    tr = high - low
    if i > 0:
        a = abs(high - prev_close)
        b = abs(low - prev_close)
        if a > tr:
            tr = a
        if b > tr:
            tr = b
    value = math.nan
    if i < period:
        acc += tr
        if i == period - 1:
            atr = acc / period
            value = atr
    else:
        atr = (atr * (period - 1) + tr) / period
        value = atr
    return acc, atr, value


_wilder_update = numba.njit(cache=True)(wilder_update)


@numba.njit(cache=True)
def wilder_atr(high, low, close, period):  # pragma: no cover - compiled
    """Wilder ATR in points, float64 (n,); NaN for the first ``period - 1`` bars
    (:func:`wilder_update` over the bars)."""
    n = high.shape[0]
    out = np.full(n, np.nan)
    acc = 0.0
    atr = 0.0
    prev = close[0] if n else 0.0
    for i in range(n):
        acc, atr, out[i] = _wilder_update(i, period, high[i], low[i], prev, acc, atr)
        prev = close[i]
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


NORMAL_ATR_DAYS = 20
"""Trading days in the time-of-day "normal ATR" (see :func:`time_of_day_mean`)."""


def time_of_day_slots(ny_seconds: np.ndarray, bar_ns: int) -> np.ndarray:
    """Time-of-day slot of each bar (int64 (n,)): seconds since New York midnight of its open //
    the bar length in seconds (1-minute bars: 0 … 1439). Bars longer than a day share slot 0."""
    bar_s = max(int(bar_ns // 1_000_000_000), 1)
    return np.floor_divide(np.asarray(ny_seconds, dtype=np.int64), np.int64(bar_s))  # int64 // int64: int64


def time_of_day_mean(x: np.ndarray, slot: np.ndarray, window: int = NORMAL_ATR_DAYS, *,
                     per_slot: int = 1) -> np.ndarray:
    """Trailing mean of ``x`` over the last ``window`` bars of the SAME time-of-day slot,
    float64 (n,): the "normal ATR" of the bar's minute of the day over the last 20 trading days,
    so the RTH open is compared with earlier RTH opens and the overnight with the overnight. Per
    slot exactly the arithmetic of :func:`rolling_mean` (NaN weighs 0; NaN until ``window`` bars
    of that slot have passed); causal.

    ``slot``: non-negative ints (n,); bar i's slot is ``slot[i] // per_slot``. Pass the slots of
    :func:`time_of_day_slots` (``per_slot`` 1), or the bars' New York seconds since midnight with
    ``per_slot`` = the bar length in seconds, which computes the same slots inside the pass (no
    slot array is built)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    slot = np.ascontiguousarray(slot)
    if slot.dtype.kind not in "iu":
        raise ValueError(f"time_of_day_mean: slots must be integers, got {slot.dtype}")
    per_slot = max(int(per_slot), 1)
    nslots = int(slot.max()) // per_slot + 1 if len(slot) else 1
    return _slot_rolling_mean(x, slot, per_slot, nslots, int(window))


@numba.njit(cache=True)
def _slot_rolling_mean(x, key, per_slot, nslots, window):  # pragma: no cover - compiled
    """Per slot (``key[i] // per_slot``) the ring buffers of :func:`_rolling_mean`, kept in ONE
    row per slot so that a bar touches one slot's memory: ``st[q]`` = [running sum, ring of
    ``window + 1`` sums], ``ct[q]`` = [running count, bars seen, ring position, ring of
    ``window + 1`` counts]."""
    n = x.shape[0]
    out = np.empty(n)
    m = window + 1
    st = np.zeros((nslots, m + 1))
    ct = np.zeros((nslots, m + 3), np.int64)
    for i in range(n):
        q = key[i] // per_slot
        v = x[i]
        s = st[q, 0]
        c = ct[q, 0]
        if np.isfinite(v):
            s = s + v
            c += 1
        else:
            s = s + 0.0
        j = ct[q, 2] + 1
        if j == m:
            j = 0
        ct[q, 2] = j
        st[q, 0] = s
        ct[q, 0] = c
        st[q, 1 + j] = s
        ct[q, 3 + j] = c
        out[i] = np.nan
        if ct[q, 1] >= window - 1:
            k = j + 1 if j + 1 < m else 0
            cnt = c - ct[q, 3 + k]
            if cnt > 0:
                out[i] = (s - st[q, 1 + k]) / cnt
        ct[q, 1] += 1
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


def normal_window(bar_ns: int, n_bars: int | None) -> int:
    """Bars in the average-volume window: one day of bars (at least 20), and for a finite series
    of ``n_bars`` at most a quarter of it (at least 20). ``None`` = an open-ended live session.
    The batch (:func:`prepare_market`) and the streaming path
    (:class:`engine.runtime.market_state.MarketState`) both use it."""
    win = max(20, int(DAY_NS // max(bar_ns, 1)))
    if n_bars is not None:
        win = min(win, max(20, n_bars // 4))
    return win


@dataclass
class MarketInputs:
    """The kernel's per-bar market inputs, precomputed once by :func:`prepare_market` (n = bars);
    the streaming twin is :mod:`engine.runtime.market_state`."""

    close_ts: np.ndarray     # int64 UTC ns: bar open + bar_ns
    phase: np.ndarray        # int8 EOD phase code at the close (engine.calendar.PHASE_CODES)
    is_rth: np.ndarray
    in_session: np.ndarray
    day: np.ndarray          # int32 trading day
    atr: np.ndarray          # float64 points
    atr_normal: np.ndarray   # float64 points: mean ATR at this time of day, last 20 trading days
    avg_volume: np.ndarray   # float64; all NaN (a read-only view) when the bars carry no volume
    slip: np.ndarray         # float64 ticks
    spread: np.ndarray | None = None  # float64 ticks: modelled spread (engine.market.spread), as the breaker sees it


def prepare_market(bars, settings, fill_model: str) -> MarketInputs:
    """Labels, EOD phases (the ``[eod]`` profile), ATR (Wilder, ``stops.atr_period``), normal ATR
    (:func:`time_of_day_mean`: the mean ATR of the same time of day over the
    last 20 trading days, NaN = normal until then), the slippage ticks per bar and the modelled
    spread (:func:`engine.market.spread.spread_ticks`) fed to the spread breaker, carried through
    the bars that do not decide it (:func:`spread_hysteresis`) so that the
    skip-ahead sees the state of stepping every bar."""
    n = len(bars)
    if n == 0:
        raise MarketInputError("no bars to compute market inputs for")
    cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]) + bars.bar_ns)
    lab = cal.label(bars.ts)
    close_ts = bars.ts + np.int64(bars.bar_ns)
    row = lab.session
    phase = eod_phase_codes(close_ts, row, cal.eod_table(settings.eod), cal.table.close)
    atr = wilder_atr(bars.high, bars.low, bars.close, int(settings.stops.atr_period))
    win = normal_window(bars.bar_ns, n)
    # the slots (time_of_day_slots) computed inside the pass from the New York seconds
    atr_norm = time_of_day_mean(atr, lab.ny_seconds, per_slot=max(int(bars.bar_ns // 1_000_000_000), 1))
    # without volume: a read-only all-NaN view (no array of n NaNs is written)
    avg_vol = rolling_mean(bars.volume, win) if bars.has_volume else np.broadcast_to(np.float64(np.nan), (n,))
    slip = slippage_ticks(lab.is_rth, atr, atr_norm, settings.slippage, fill_model)
    r = settings.risk
    spread = spread_ticks(lab.is_rth, atr, atr_norm, settings.slippage.high_vol_atr_ratio, r.volatility_breaker_ratio)
    spread = spread_hysteresis(spread, float(r.spread_pause_ticks), float(r.spread_resume_ticks))
    return MarketInputs(close_ts, phase, lab.is_rth, lab.in_session, lab.trading_day, atr, atr_norm,
                  avg_vol, slip, spread)
