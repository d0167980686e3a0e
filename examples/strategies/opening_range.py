"""Opening-range breakout (an example strategy for mes-console; specs/strategy.md).

Rule: the opening range is the high and low of the first ``range_minutes`` of the regular
session (09:30 New York, bar open times). From the end of the range until ``last_entry``
(minutes after 09:30; the bar must close by then), at the close of a bar: LONG when the close is
above the range high, SHORT when below the range low, each time the bar's side of the range
changes (a close back inside resets it). Confidence 0.70 (size multiplier 1.0 by default). The
range is made of bars BEFORE the bars it is traded on, so no signal uses a later bar.

Warm-up: a signal depends on the bars since that day's 09:30, at most 390 one-minute bars;
``warmup = 400`` (1-minute or longer bars; a live session evaluates the last 401 bars).

Walk-forward result on the real year (ES 5-minute bars 2024-12-03 … 2025-12-15, default
settings, conservative fills, ``[training]`` windows 6/1/1 months rolled monthly, 20 TPE
trials per fold on each in-sample window)::

    mes-console backtest --walk-forward --strategy examples/strategies/opening_range.py:OpeningRangeBreakout \
        --data ../shared/data/es_5m_2024-12-03_2025-12-15.parquet --trials 20

WALK_FORWARD_RESULT
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.strategy.api import IntParam, StrategyBase, make_signals

RTH_OPEN_MIN = 9 * 60 + 30


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
