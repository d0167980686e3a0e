"""Random entries for validation (R-BT-5): each bar independently gets a signal with probability
``p`` (default 0.02), long or short with equal odds, confidence ``confidence`` (0.75), from a
seeded ``numpy.random.default_rng(seed)``: the same seed gives identical signals."""

from __future__ import annotations

import numpy as np

from engine.strategy.base import StrategySignals


class RandomEntry:
    name = "random"

    def __init__(self, seed: int = 7, p: float = 0.02, confidence: float = 0.75) -> None:
        if not 0 < p <= 1:
            raise ValueError(f"p must be in (0, 1], got {p}")
        self.seed, self.p, self.confidence = int(seed), float(p), float(confidence)

    def signals(self, bars) -> StrategySignals:
        rng = np.random.default_rng(self.seed)
        n = len(bars)
        fire = rng.random(n) < self.p
        side = np.where(rng.random(n) < 0.5, 1, -1)
        d = np.where(fire, side, 0).astype(np.int8)
        conf = np.where(fire, self.confidence, np.nan)
        cls = np.where(d > 0, 2, np.where(d < 0, 0, -1)).astype(np.int8)
        return StrategySignals(d, conf, cls)
