"""Model strategy: a checkpoint's batch predictions as signals.

Features come from ``engine.features.feature_set_for(bar_ns, has_volume)``; the whole series is
predicted in one batch (``Predictor.predict_bars``), never one call per bar. Direction is the
arg-max class (-1 DOWN / 0 FLAT / +1 UP), confidence the max class probability; rows without a
prediction (warm-up) give no signal. The kernel's signal generator applies the confidence
threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.strategy.base import StrategySignals


class ModelStrategy:
    """Signals from a model checkpoint at ``path`` (raises the checkpoint loader's errors)."""

    name = "model"

    def __init__(self, path: str | Path, predictor=None) -> None:
        self.path = Path(path)
        self._predictor = predictor

    def predictor_for(self, bars):
        if self._predictor is None:
            from engine.features import feature_set_for
            from engine.ml.predictor import Predictor

            fs = feature_set_for(bars.bar_ns, bars.has_volume)
            self._predictor = Predictor.load(self.path, fs)
        return self._predictor

    def signals(self, bars) -> StrategySignals:
        p = self.predictor_for(bars).predict_bars(bars)
        valid = np.asarray(p.valid, bool)
        d = np.where(valid, p.direction, 0).astype(np.int8)
        conf = np.where(valid, p.confidence, np.nan)
        cls = np.where(valid, d + 1, -1).astype(np.int8)
        return StrategySignals(d, conf, cls)
