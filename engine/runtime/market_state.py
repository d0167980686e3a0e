"""Per-bar market state for a streaming session: session labels, EOD phase, Wilder ATR, normal
ATR and average volume, one bar at a time.

These are the kernel inputs that :func:`engine.market.inputs.prepare_market` computes in batch.
The arithmetic here is the same, operation for operation (Wilder recursion: the same
:func:`engine.market.inputs.wilder_update`; trailing means as
differences of running sums, like ``numpy.cumsum``), so a replay feeds the kernel bit-identical
numbers to a backtest over the same bars (``tests/test_runtime_session.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine.calendar import CmeCalendar
from engine.market.inputs import NORMAL_ATR_DAYS, normal_window, wilder_update  # the batch's rules, one definition each
from engine.market.spread import spread_ticks_one


class _TrailingMean:
    """Trailing mean over the last ``window`` positions, NaN values weigh 0 (as ``rolling_mean``)."""

    __slots__ = ("window", "cs", "cn", "ring_s", "ring_n", "i")

    def __init__(self, window: int) -> None:
        self.window = window
        self.cs = 0.0
        self.cn = 0
        self.ring_s = np.zeros(window + 1)
        self.ring_n = np.zeros(window + 1, dtype=np.int64)
        self.i = 0  # values seen

    def update(self, x: float) -> float:
        w = self.window
        ok = x == x and x not in (float("inf"), float("-inf"))
        self.cs = self.cs + (x if ok else 0.0)
        self.cn += 1 if ok else 0
        self.i += 1
        slot = self.i % (w + 1)
        self.ring_s[slot] = self.cs
        self.ring_n[slot] = self.cn
        if self.i < w:
            return float("nan")
        old = (self.i - w) % (w + 1)
        s = self.cs - self.ring_s[old] if self.i > w else self.cs
        c = self.cn - (int(self.ring_n[old]) if self.i > w else 0)
        return s / max(c, 1) if c > 0 else float("nan")


@dataclass(slots=True)
class MarketRow:
    """The kernel's market inputs at one bar close (see :class:`engine.kernel.BarInput`)."""

    close_ts: int
    phase: int
    is_rth: bool
    in_session: bool
    day: int
    atr: float
    atr_normal: float
    avg_volume: float
    spread: float = float("nan")  # ticks, as the breaker sees it: modelled (engine.market.spread) or quoted (paper/live)


class MarketState:
    """Streaming market state (see the module docstring).

    Args:
        calendar: the CME calendar. bar_ns: bar length (ns). atr_period: Wilder period (bars).
        n_bars: length of the series when it is known (replay), ``None`` live.
        has_volume: whether the average volume is tracked.
        quoted_spread: paper/live: ``() → ticks`` the broker's quoted spread (best ask − best
            bid over the tick; NaN without a quote) read at each bar close, used instead of
            the modelled one (the spread breaker then sees the real market, issue 22); the
            same pause/resume hysteresis applies.
    """

    def __init__(self, calendar: CmeCalendar, bar_ns: int, atr_period: int, n_bars: int | None,
                 has_volume: bool, settings=None, quoted_spread: Callable[[], float] | None = None) -> None:
        self.cal = calendar
        self.bar_ns = int(bar_ns)
        self.period = int(atr_period)
        win = normal_window(bar_ns, n_bars)
        self._atr_tod: dict[int, _TrailingMean] = {}  # time-of-day slot → trailing mean (normal ATR)
        self._bar_s = max(int(self.bar_ns // 1_000_000_000), 1)
        from engine.config import Settings

        st = settings if settings is not None else Settings()
        self._spread_args = (float(st.slippage.high_vol_atr_ratio), float(st.risk.volatility_breaker_ratio))
        self._spread_hyst = (float(st.risk.spread_pause_ticks), float(st.risk.spread_resume_ticks))
        self._spread_last = float("nan")
        self._quoted = quoted_spread
        self._eod = calendar.eod_table(st.eod)  # EOD phase times of the [eod] profile
        self._vol_mean = _TrailingMean(win) if has_volume else None
        self._i = 0
        self._acc = 0.0
        self._prev = 0.0
        self._atr = 0.0

    def update(self, ts: int, high: float, low: float, close: float, volume: float) -> MarketRow:
        """One closed bar (open time ``ts`` UTC ns) → its :class:`MarketRow`."""
        self._acc, self._atr, atr = wilder_update(self._i, self.period, high, low, self._prev, self._acc, self._atr)
        self._prev = close
        self._i += 1
        avg_vol = self._vol_mean.update(volume) if self._vol_mean is not None else float("nan")

        day, ny_sec, in_session, is_rth, row = self.cal.label_one(ts)
        # normal ATR: the mean ATR of this time of day over the last 20 trading days
        # (engine.market.inputs.time_of_day_mean, operation for operation)
        slot = int(ny_sec) // self._bar_s
        tm = self._atr_tod.get(slot)
        if tm is None:
            tm = self._atr_tod[slot] = _TrailingMean(NORMAL_ATR_DAYS)
        atr_norm = tm.update(atr)
        if self._quoted is not None:
            sp = float(self._quoted())
        else:
            sp = spread_ticks_one(bool(is_rth), atr, atr_norm, *self._spread_args)
        if sp != sp and self._quoted is not None:
            self._spread_last = sp      # no quote: unknown (the breaker keeps its state)
        elif sp > self._spread_hyst[0] or sp <= self._spread_hyst[1]:
            self._spread_last = sp
        close_ts = int(ts) + self.bar_ns
        if row < 0:
            phase = 5
        else:
            close_row = self.cal.label_one(close_ts - 1)[4]
            if close_row != row:
                phase = 5
            else:
                eod = self._eod[row]
                phase = int((close_ts >= eod).sum())
        return MarketRow(close_ts, phase, bool(is_rth), bool(in_session), int(day), atr, atr_norm,
                         avg_vol, self._spread_last)
