"""VWAP reversion (an example strategy for mes-console; specs/strategy.md).

Rule: the session VWAP is the volume-weighted mean of the typical price (high + low + close) / 3
of the regular-session bars since 09:30 New York. ``sd`` is the standard deviation of the close
over the last ``std_bars`` bars. From 10:00 until 15:30 New York (the bar must close by then),
at the close of a bar: LONG when the close falls below VWAP − ``band`` × sd (the bar before
was not below), SHORT when it rises above VWAP + ``band`` × sd: a bet that the price returns
toward the VWAP. Confidence 0.70. Needs volume (the 5-minute real file has it; the 1-minute one
does not: the strategy then raises, naming the problem).

Warm-up: a signal depends on the bars since that day's 09:30 (≤ 390 one-minute bars) and the
last ``std_bars`` (≤ 60) bars; ``warmup = 400``.

Walk-forward result on the real year (ES 5-minute bars 2024-12-03 … 2025-12-15, default
settings, conservative fills, ``[training]`` windows 6/1/1 months rolled monthly, 20 TPE
trials per fold on each in-sample window)::

    mes-console backtest --walk-forward --strategy examples/strategies/vwap_reversion.py:VwapReversion \
        --data ../shared/data/es_5m_2024-12-03_2025-12-15.parquet --trials 20

Result (run 2026-12-05 with this file, version 1): 5 folds, tested 2025-07-15 … 2025-12-15::

    fold 0  test 2025-07-15 … 2025-08-15  band=3.0, std_bars=55             12 trades  net  -102.58 $  Sharpe -10.45
    fold 1  test 2025-08-15 … 2025-09-15  band=3.0, std_bars=60              8 trades  net   -62.97 $  Sharpe  -8.68
    fold 2  test 2025-09-15 … 2025-10-15  band=3.0, std_bars=45             18 trades  net   -75.12 $  Sharpe  -3.94
    fold 3  test 2025-10-15 … 2025-11-15  band=3.0, std_bars=45             13 trades  net   -17.17 $  Sharpe  -1.14
    fold 4  test 2025-11-15 … 2025-12-15  band=3.0, std_bars=45             14 trades  net   -70.51 $  Sharpe  -4.78
    stitched out-of-sample: 65 trades, net -328.35 $ (gross -133.75, commission 54.60, slippage 140.00),
    Sharpe -4.61, max drawdown 328.35 $, win rate 0.231; go live: NO

Every fold chose the widest band (3.0, the top of its range): fewer trades lose less, and it
still loses before costs. No edge on this year; an example of the API, not a strategy to trade.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from engine.strategy.api import FloatParam, IntParam, StrategyBase, make_signals

RTH_OPEN_MIN = 9 * 60 + 30


class VwapReversion(StrategyBase):
    name = "vwap_reversion"
    version = "1"
    params = (FloatParam("band", 1.0, 3.0, 2.0, step=0.25, doc="distance from the VWAP, in sd"),
              IntParam("std_bars", 10, 60, 20, step=5, doc="bars of the close's standard deviation"))
    warmup = 400
    band: float
    std_bars: int

    def signals(self, bars):
        n = len(bars)
        if not bars.has_volume:
            raise ValueError(f"needs volume; the bars {bars.source or bars.symbol} have none")
        t = pd.DatetimeIndex(pd.to_datetime(bars.ts, utc=True)).tz_convert("America/New_York")
        mod = np.asarray(t.hour * 60 + t.minute, np.int64)
        day = np.asarray(t.tz_localize(None).normalize().asi8 // 86_400_000_000_000, np.int64)
        bar_min = bars.bar_ns / 60e9
        rth = (mod >= RTH_OPEN_MIN) & (mod + bar_min <= 16 * 60)
        vol = np.where(rth, np.nan_to_num(bars.volume), 0.0)
        tp = (bars.high + bars.low + bars.close) / 3.0
        df = pd.DataFrame({"day": day, "pv": tp * vol, "v": vol})
        g = df.groupby("day", sort=False)
        cv = g["v"].cumsum().to_numpy()
        vwap = np.where(cv > 0, g["pv"].cumsum().to_numpy() / np.where(cv > 0, cv, 1.0), np.nan)
        k = self.std_bars
        sd = np.full(n, np.nan)
        if n >= k:
            sd[k - 1:] = sliding_window_view(bars.close, k).std(axis=1)
        ok = rth & (mod >= 10 * 60) & (mod + bar_min <= 15 * 60 + 30) & np.isfinite(vwap) & (sd > 0)
        c = bars.close
        below = ok & (c < vwap - self.band * sd)
        above = ok & (c > vwap + self.band * sd)
        pb = np.zeros(n, bool)
        pa = np.zeros(n, bool)
        pb[1:], pa[1:] = below[:-1], above[:-1]
        direction = np.where(below & ~pb, 1, np.where(above & ~pa, -1, 0))
        return make_signals(direction, 0.70)
