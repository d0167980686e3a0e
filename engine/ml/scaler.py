"""Standard scaler fitted on the training split only (R-FEAT-4, R-ML-5).

The scaler is part of every checkpoint; :class:`engine.ml.predictor.Predictor` always applies it,
so there is no path that feeds raw features to a model trained on scaled ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StandardScaler:
    """``(x - mean) / std`` per feature. ``mean`` and ``std`` are float64 arrays of shape ``(k,)``.

    A feature that is constant on the training rows (std 0) gets std 1 (it becomes 0 after
    centering); :attr:`constant` lists those column indices so the manifest can say so.
    """

    mean: np.ndarray
    std: np.ndarray
    constant: tuple[int, ...] = ()

    @classmethod
    def fit(cls, x: np.ndarray) -> "StandardScaler":
        """Fit on ``x`` ``(n, k)`` float; rows must be finite (NaN warm-up rows removed first).

        Raises ``ValueError`` for an empty or non-finite input, naming the first bad column.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"scaler needs (n ≥ 2, k) training rows, got shape {x.shape}")
        bad = ~np.isfinite(x).all(axis=0)
        if bad.any():
            raise ValueError(f"scaler: training column {int(np.flatnonzero(bad)[0])} has NaN/inf values")
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        const = np.flatnonzero(std <= 1e-12)
        std = np.where(std <= 1e-12, 1.0, std)
        return cls(mean, std, tuple(int(i) for i in const))

    def transform(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Scaled copy of ``x`` (..., k) as float32 (or into ``out``). NaN stays NaN."""
        if x.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"scaler expects {self.mean.shape[0]} features, got {x.shape[-1]}")
        if out is None:
            return ((x - self.mean) / self.std).astype(np.float32)
        np.subtract(x, self.mean, out=out, casting="unsafe")
        np.divide(out, self._std32, out=out)
        return out

    @property
    def _std32(self) -> np.ndarray:
        return self.std.astype(np.float32)

    def to_manifest(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "constant_columns": list(self.constant)}

    @classmethod
    def from_manifest(cls, d: dict, n_features: int) -> "StandardScaler":
        """Rebuild from the manifest; raises ``ValueError`` when absent or of the wrong length."""
        if not isinstance(d, dict) or "mean" not in d or "std" not in d:
            raise ValueError("scaler missing (needs 'mean' and 'std')")
        mean = np.asarray(d["mean"], dtype=np.float64)
        std = np.asarray(d["std"], dtype=np.float64)
        if mean.shape != (n_features,) or std.shape != (n_features,):
            raise ValueError(f"scaler has {mean.shape[0]} mean / {std.shape[0]} std values for {n_features} features")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("scaler has non-finite or non-positive values")
        return cls(mean, std, tuple(int(i) for i in d.get("constant_columns", ())))
