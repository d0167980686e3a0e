"""The rule-based baseline strategy (used when no model is given).

Rule (Donchian breakout): at the close of bar ``i``, go long when the close is above the highest
high of the previous ``lookback`` bars (30 by default) and the previous close was not; go short
on the mirror rule below the lowest low. Confidence is a fixed ``confidence`` (0.70: size
multiplier 1.0 in the default table); the predicted class is 2 (UP) / 0 (DOWN). Everything else
(bracket, size, EOD, limits) comes from the same kernel and risk manager as a model strategy.
"""

from __future__ import annotations

import numba
import numpy as np

from engine.strategy.base import StrategySignals


@numba.njit(cache=True)
def _breakout(high, low, close, lookback):  # pragma: no cover - compiled
    n = close.shape[0]
    d = np.zeros(n, np.int8)
    prev_state = 0
    for i in range(lookback, n):
        hh = high[i - lookback]
        ll = low[i - lookback]
        for k in range(i - lookback + 1, i):
            if high[k] > hh:
                hh = high[k]
            if low[k] < ll:
                ll = low[k]
        state = 1 if close[i] > hh else (-1 if close[i] < ll else 0)
        if state != 0 and state != prev_state:
            d[i] = state
        prev_state = state
    return d


class BreakoutBaseline:
    """Donchian breakout baseline (see module docstring). ``lookback`` bars ≥ 2."""

    name = "baseline"

    def __init__(self, lookback: int = 30, confidence: float = 0.70) -> None:
        if lookback < 2:
            raise ValueError(f"lookback must be ≥ 2, got {lookback}")
        self.lookback = int(lookback)
        self.confidence = float(confidence)
        self.warmup = self.lookback + 1
        """Bars of history one signal uses (the channel and the previous bar's state)."""

    def signals(self, bars) -> StrategySignals:
        d = _breakout(bars.high, bars.low, bars.close, self.lookback)
        conf = np.where(d != 0, self.confidence, np.nan)
        cls = np.where(d > 0, 2, np.where(d < 0, 0, -1)).astype(np.int8)
        return StrategySignals(d, conf, cls)
