"""Strategy protocol: one batch call over a bar series gives one signal per bar.

A strategy sees only closed bars: the signal of bar ``i`` may use bars ``0..i`` (never later);
the kernel acts on it at the close of bar ``i``. Predictions are computed in batches (one call
for the whole series), never one call per bar; a live session calls the same method on its
trailing window and takes the last row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class StrategySignals:
    """Per-bar outputs, arrays of length n.

    direction: int8 -1 short / 0 none / +1 long. confidence: float64 0..1 (NaN = none).
    pred_class: int8 predicted 3-class label 0 DOWN / 1 FLAT / 2 UP (-1 = none).
    """

    direction: np.ndarray
    confidence: np.ndarray
    pred_class: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.direction)
        if len(self.confidence) != n or len(self.pred_class) != n:
            raise ValueError("StrategySignals arrays differ in length: "
                             f"direction {n}, confidence {len(self.confidence)}, pred_class {len(self.pred_class)}")


class Strategy(Protocol):
    name: str

    def signals(self, bars) -> StrategySignals:
        """Signals for every bar of ``bars`` (:class:`engine.data.bars.Bars`)."""
