"""Inference for backtest (batch) and live (streaming) from a verified checkpoint (R-ML-2, R-ML-6).

The :class:`Predictor` takes RAW features, exactly as ``FeatureSet.batch`` / ``FeatureSet.stream``
produce them, and always applies the checkpoint's scaler: there is no entry point that accepts
pre-scaled or unscaled-for-a-scaled-model inputs. A row with any NaN/inf feature (warm-up) gives
no prediction; for sequence models so does every window that contains such a row.

Prediction fields (R-ML-2):
    direction           -1 short (DOWN), 0 flat, +1 long (UP): the arg-max class
    confidence          max class probability (calibrated: the logits are divided by the
                        checkpoint's validation temperature, engine.ml.calibration)
    probs               (3,) probabilities DOWN, FLAT, UP
    expected_move_ticks sum_c p_c · mean_move_c, with mean_move_c the class-conditional mean forward
                        move (ticks) measured on the training split
    volatility_ticks    standard deviation of the forward move under that mixture:
                        sqrt(sum_c p_c (std_c² + mean_c²) − expected²) (ticks)
    ts_ns               bar-open time of the bar the prediction is made at the close of (UTC ns)
    latency_ns          time spent in this call (features when :meth:`Predictor.update_bar` is used,
                        scaling and inference), from ``engine.clock.perf_ns``

The feed-forward model runs as a pure-numpy float32 forward pass (no per-call allocations for one
row); ``tests/test_ml_checkpoint.py`` (test_numpy_mlp_equals_torch_and_stream_equals_batch) proves it
equal to the torch module. Sequence models run in
torch under ``inference_mode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from engine.clock import perf_ns
from engine.ml.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from engine.ml.models import MLP, is_sequence
from engine.ml.training import valid_sequence_ends

if TYPE_CHECKING:
    from engine.features import FeatureStream


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One prediction; see the module docstring for units."""

    ts_ns: int
    direction: int
    confidence: float
    probs: np.ndarray
    expected_move_ticks: float
    volatility_ticks: float
    latency_ns: int


@dataclass(frozen=True)
class BatchPredictions:
    """Column arrays of length ``n`` (one per input row). ``valid`` False → no prediction: probs,
    confidence, expected move and volatility are NaN and direction 0 there."""

    ts: np.ndarray                   # int64 UTC ns (zeros when not given)
    valid: np.ndarray                # bool
    direction: np.ndarray            # int8 -1/0/+1
    confidence: np.ndarray           # float64
    probs: np.ndarray                # (n, 3) float64
    expected_move_ticks: np.ndarray  # float64
    volatility_ticks: np.ndarray     # float64

    def __len__(self) -> int:
        return len(self.valid)

    def record(self, i: int) -> PredictionRecord | None:
        if not self.valid[i]:
            return None
        return PredictionRecord(int(self.ts[i]), int(self.direction[i]), float(self.confidence[i]),
                                self.probs[i].copy(), float(self.expected_move_ticks[i]),
                                float(self.volatility_ticks[i]), 0)


class NumpyMLP:
    """The feed-forward network as float32 numpy matrices (Linear/ReLU; Dropout is identity at eval)."""

    def __init__(self, model: MLP) -> None:
        layers = list(model.net)
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for layer in layers:
            if isinstance(layer, nn.Linear):
                self.weights.append(np.ascontiguousarray(layer.weight.detach().numpy().T, dtype=np.float32))
                self.biases.append(layer.bias.detach().numpy().astype(np.float32))
            elif not isinstance(layer, (nn.ReLU, nn.Dropout)):
                raise TypeError(f"NumpyMLP: unsupported layer {type(layer).__name__}")
        self._one = [np.empty((1, w.shape[1]), np.float32) for w in self.weights]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``x`` (m, k) float32 scaled → logits (m, 3) float32."""
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w
            h += b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h

    def logits_one(self, x: np.ndarray) -> np.ndarray:
        """``x`` (1, k) float32 → logits (1, 3) in a reused buffer (valid until the next call)."""
        h = x
        last = len(self.weights) - 1
        for i, (w, b, buf) in enumerate(zip(self.weights, self.biases, self._one)):
            np.matmul(h, w, out=buf)
            buf += b
            if i < last:
                np.maximum(buf, 0.0, out=buf)
            h = buf
        return h


def _softmax64(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class Predictor:
    """Scaler + model from a checkpoint, checked against the running feature set.

    Build with :meth:`load`. Thread-unsafe (reuses buffers); use one per session.
    """

    def __init__(self, checkpoint: Checkpoint, feature_set: Any) -> None:
        if feature_set is None:
            raise CheckpointError("Predictor needs the running feature set to check the checkpoint against")
        if checkpoint.scaler is None:
            raise CheckpointError(f"{checkpoint.path}: scaler missing: refusing to predict")
        self.checkpoint = checkpoint
        self.feature_set = feature_set
        self.arch = checkpoint.arch
        self.k = len(checkpoint.feature_names)
        self.seq_len = int(checkpoint.hparams["seq_len"]) if is_sequence(self.arch) else None
        sc = checkpoint.scaler
        self._mean = sc.mean.astype(np.float64)
        self._inv_std = (1.0 / sc.std).astype(np.float64)
        cm = checkpoint.body["class_moves"]
        self._move_mean = np.asarray(cm["mean"], np.float64)
        self._move_m2 = np.asarray(cm["std"], np.float64) ** 2 + self._move_mean ** 2
        self.model = checkpoint.model.eval()
        self.temperature = checkpoint.temperature  # validation calibration (engine.ml.calibration)
        self._inv_t = 1.0 / self.temperature
        self._np_mlp = NumpyMLP(self.model) if isinstance(self.model, MLP) else None
        self._buf64 = np.empty((1, self.k), np.float64)
        self._buf32 = np.empty((1, self.k), np.float32)
        self._ring = np.zeros((self.seq_len or 1, self.k), np.float32)
        self._ring_ok = np.zeros(self.seq_len or 1, bool)
        self._stream: FeatureStream | None = None
        self.threads = torch.get_num_threads()

    @classmethod
    def load(cls, path: str | Path, feature_set: Any) -> "Predictor":
        """Load and verify checkpoint ``path`` against ``feature_set`` (refuses any mismatch,
        see :func:`engine.ml.checkpoint.load_checkpoint`)."""
        if feature_set is None:
            raise CheckpointError("Predictor.load needs the running feature set")
        return cls(load_checkpoint(path, expected_feature_set=feature_set), feature_set)

    # ---- scaling (the only way into the model) -------------------------------------------------
    def _scale(self, x: np.ndarray) -> np.ndarray:
        return ((x - self._mean) * self._inv_std).astype(np.float32)

    def _probs_rows(self, xs32: np.ndarray) -> np.ndarray:
        if self._np_mlp is not None:
            return _softmax64(self._np_mlp.logits(xs32) * self._inv_t)
        with torch.inference_mode():
            return torch.softmax(self.model(torch.from_numpy(xs32)) * self._inv_t, dim=1).double().numpy()

    def _finish(self, probs: np.ndarray):
        cls_ = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        exp = probs @ self._move_mean
        vol = np.sqrt(np.maximum(probs @ self._move_m2 - exp * exp, 0.0))
        return cls_, conf, exp, vol

    # ---- batch ---------------------------------------------------------------------------------
    def predict_batch(self, features: np.ndarray, ts: np.ndarray | None = None,
                      chunk: int = 65536) -> BatchPredictions:
        """Predictions for every row of RAW ``features`` ``(n, k)`` float64 (the running feature
        set's order). Sequence models use the ``seq_len`` rows ending at each row. Raises
        ``ValueError`` for a wrong number of columns."""
        X = np.asarray(features, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.k:
            raise ValueError(f"features have shape {X.shape}, the checkpoint expects (n, {self.k})")
        n = X.shape[0]
        finite = np.asarray(np.isfinite(X).all(axis=1))
        valid = finite if self.seq_len is None else valid_sequence_ends(finite, self.seq_len)
        probs = np.full((n, 3), np.nan)
        rows = np.flatnonzero(valid)
        if self.seq_len is None:
            for i in range(0, len(rows), chunk):
                r = rows[i:i + chunk]
                probs[r] = self._probs_rows(self._scale(X[r]))
        else:
            Xs = np.nan_to_num(self._scale(X))
            win = np.lib.stride_tricks.sliding_window_view(Xs, (self.seq_len, self.k))[:, 0]  # (n-T+1, T, k)
            for i in range(0, len(rows), chunk // 8):
                r = rows[i:i + chunk // 8]
                probs[r] = self._probs_rows(np.ascontiguousarray(win[r - self.seq_len + 1]))
        direction = np.zeros(n, np.int8)
        conf = np.full(n, np.nan)
        exp = np.full(n, np.nan)
        vol = np.full(n, np.nan)
        if len(rows):
            c, cf, e, v = self._finish(probs[rows])
            direction[rows] = (c - 1).astype(np.int8)
            conf[rows], exp[rows], vol[rows] = cf, e, v
        tsa = np.zeros(n, np.int64) if ts is None else np.asarray(ts, np.int64)
        if len(tsa) != n:
            raise ValueError(f"ts has {len(tsa)} rows, features {n}")
        return BatchPredictions(tsa, valid, direction, conf, probs, exp, vol)

    def predict_bars(self, bars: Any) -> BatchPredictions:
        """``feature_set.batch(bars)`` then :meth:`predict_batch` (for backtests)."""
        if int(bars.bar_ns) != int(self.checkpoint.bar_ns):
            raise CheckpointError(f"bars have bar_ns={bars.bar_ns}, the checkpoint was trained on {self.checkpoint.bar_ns}")
        return self.predict_batch(self.feature_set.batch(bars), ts=bars.ts)

    # ---- streaming -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the streaming window (and the feature stream of :meth:`update_bar`)."""
        self._ring_ok[:] = False
        self._stream = None

    def update(self, row: np.ndarray, ts_ns: int = 0, _t0: int | None = None) -> PredictionRecord | None:
        """Feed one RAW feature row ``(k,)`` (the newest bar); return its prediction or ``None``
        while the row (or, for sequence models, the window) holds NaN. Equal to the matching row of
        :meth:`predict_batch` over the same history."""
        t0 = perf_ns() if _t0 is None else _t0
        b64 = self._buf64
        b64[0] = row
        np.subtract(b64, self._mean, out=b64)
        np.multiply(b64, self._inv_std, out=b64)
        ok = bool(np.isfinite(b64).all())
        mlp = self._np_mlp
        if mlp is not None:          # the feed-forward model (seq_len None): one row
            if not ok:
                return None
            self._buf32[...] = b64
            logits = mlp.logits_one(self._buf32)
            m = logits.max()
            e = np.exp((logits[0] - m).astype(np.float64) * self._inv_t)
            p = e / e.sum()
        else:
            self._ring[:-1] = self._ring[1:]
            self._ring_ok[:-1] = self._ring_ok[1:]
            self._ring[-1] = b64[0] if ok else 0.0
            self._ring_ok[-1] = ok
            if not self._ring_ok.all():
                return None
            with torch.inference_mode():
                p = torch.softmax(self.model(torch.from_numpy(self._ring[None])) * self._inv_t, dim=1)[0].double().numpy()
        c = int(p.argmax())
        exp = float(p @ self._move_mean)
        vol = float(np.sqrt(max(float(p @ self._move_m2) - exp * exp, 0.0)))
        return PredictionRecord(int(ts_ns), c - 1, float(p[c]), p, exp, vol, perf_ns() - t0)

    def predict_one(self, row: np.ndarray, ts_ns: int = 0) -> PredictionRecord | None:
        """One row without history. Only for the feed-forward model (sequence models need
        :meth:`update`); raises ``TypeError`` otherwise."""
        if self.seq_len is not None:
            raise TypeError(f"{self.arch} needs a window of {self.seq_len} rows: use update()")
        return self.update(row, ts_ns)

    def update_bar(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> PredictionRecord | None:
        """Live path: the feature set's streaming update for one closed bar, then :meth:`update`.
        ``latency_ns`` covers features + scaling + inference."""
        t0 = perf_ns()
        stream = self._stream
        if stream is None:
            stream = self._stream = self.feature_set.stream()
        row = stream.update(ts, o, h, l, c, v)
        return self.update(row, ts, _t0=t0)
