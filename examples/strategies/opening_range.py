"""Opening-range breakout (an example strategy for mes-console; specs/strategy.md).

Rule: the opening range is the high and low of the first ``range_minutes`` of the regular
session (09:30 New York, bar open times). From the end of the range until ``last_entry``
(minutes after 09:30; the bar must close by then), at the close of a bar: LONG when the close is
above the range high, SHORT when below the range low, each time the bar's side of the range
changes (a close back inside resets it). Confidence 0.70 (size multiplier 1.0 by default). The
range is made of bars BEFORE the bars it is traded on, so no signal uses a later bar.

Warm-up: a signal depends on the bars since that day's 09:30, at most 390 one-minute bars;
``warmup = 400`` (1-minute or longer bars).

Streaming: ``update`` gives the same signals bar by bar (``reset(bar_ns)`` first), so a session
runs it instead of re-evaluating the batch rule on a 401-bar window at every bar; ``mes-console
analyze streaming`` checks the two agree (live trading needs that pass).

Walk-forward result on the real year (ES 5-minute bars 2024-12-03 … 2025-12-15, default
settings, conservative fills, ``[training]`` windows 6/1/1 months rolled monthly, 20 TPE
trials per fold on each in-sample window)::

    mes-console backtest --walk-forward --strategy examples/strategies/opening_range.py:OpeningRangeBreakout \
        --data ../shared/data/es_5m_2024-12-03_2025-12-15.parquet --trials 20

Result (run 2026-12-05 with this file, version 1): 5 folds, tested 2025-07-15 … 2025-12-15::

    fold 0  test 2025-07-15 … 2025-08-15  range_minutes=20, last_entry=60   21 trades  net   -57.64 $  Sharpe  -2.91
    fold 1  test 2025-08-15 … 2025-09-15  range_minutes=25, last_entry=60   21 trades  net  -138.89 $  Sharpe  -8.07
    fold 2  test 2025-09-15 … 2025-10-15  range_minutes=40, last_entry=60   12 trades  net   -31.33 $  Sharpe  -2.29
    fold 3  test 2025-10-15 … 2025-11-15  range_minutes=25, last_entry=60   20 trades  net  -128.05 $  Sharpe  -6.90
    fold 4  test 2025-11-15 … 2025-12-15  range_minutes=50, last_entry=90   12 trades  net   -65.08 $  Sharpe  -5.49
    stitched out-of-sample: 86 trades, net -420.99 $ (gross -167.50, commission 72.24, slippage 181.25),
    Sharpe -5.28, max drawdown 420.99 $, win rate 0.256; go live: NO

It loses before costs too (gross < 0): no edge on this year; shown as an example of the API,
not as a strategy to trade.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from engine.strategy.api import IntParam, StrategyBase, make_signals

RTH_OPEN_MIN = 9 * 60 + 30
NY = ZoneInfo("America/New_York")


def ny_minutes(ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(minute of the New York day of each bar open, New York date as int64 days)."""
    t = pd.DatetimeIndex(pd.to_datetime(ts_ns, utc=True)).tz_convert("America/New_York")
    mod = np.asarray(t.hour * 60 + t.minute, np.int64)
    day = np.asarray(t.tz_localize(None).normalize().asi8 // 86_400_000_000_000, np.int64)
    return mod, day


class OpeningRangeBreakout(StrategyBase):
    name = "opening_range"
    version = "1"
    params = (IntParam("range_minutes", 5, 60, 15, step=5, doc="length of the opening range, minutes"),
              IntParam("last_entry", 60, 360, 240, step=30, doc="no new signal after 09:30 + this many minutes"))
    warmup = 400
    range_minutes: int
    last_entry: int

    def signals(self, bars):
        n = len(bars)
        if n == 0:
            return make_signals(np.zeros(0, np.int8))
        mod, day = ny_minutes(bars.ts)
        bar_min = bars.bar_ns / 60e9
        end_range = RTH_OPEN_MIN + self.range_minutes
        in_range = (mod >= RTH_OPEN_MIN) & (mod + bar_min <= end_range)
        after = (mod >= end_range) & (mod + bar_min <= RTH_OPEN_MIN + self.last_entry)
        df = pd.DataFrame({"day": day, "h": np.where(in_range, bars.high, np.nan),
                           "l": np.where(in_range, bars.low, np.nan)})
        g = df.groupby("day", sort=False)
        rh = g["h"].transform("max").to_numpy()   # the day's range bars: all before any `after` bar
        rl = g["l"].transform("min").to_numpy()
        c = bars.close
        state = np.where(after & (c > rh), 1, np.where(after & (c < rl), -1, 0)).astype(np.int8)
        prev = np.zeros(n, np.int8)
        prev[1:] = state[:-1]
        prev[1:][day[1:] != day[:-1]] = 0
        direction = np.where((state != 0) & (state != prev), state, 0)
        return make_signals(direction, 0.70)

    # ------------------------------------------------------------------ streaming form
    def reset(self, bar_ns: int) -> None:
        """Start a stream of ``bar_ns``-nanosecond bars (fresh state)."""
        self._bar_min = bar_ns / 60e9
        self._day = None
        self._rh, self._rl, self._prev = -np.inf, np.inf, 0

    def update(self, ts, o, h, l, c, v):
        """One closed bar (open time ``ts`` UTC ns) → (direction, confidence): the batch rule."""
        t = datetime.fromtimestamp(int(ts) // 1_000_000_000, NY)
        mod, day = t.hour * 60 + t.minute, t.date()
        if day != self._day:
            self._day, self._rh, self._rl, self._prev = day, -np.inf, np.inf, 0
        end_range = RTH_OPEN_MIN + self.range_minutes
        if mod >= RTH_OPEN_MIN and mod + self._bar_min <= end_range:
            self._rh, self._rl = max(self._rh, h), min(self._rl, l)
        after = mod >= end_range and mod + self._bar_min <= RTH_OPEN_MIN + self.last_entry
        state = 0
        if after and self._rh > -np.inf:
            state = 1 if c > self._rh else (-1 if c < self._rl else 0)
        d = state if state != 0 and state != self._prev else 0
        self._prev = state
        return d, (0.70 if d else float("nan"))
