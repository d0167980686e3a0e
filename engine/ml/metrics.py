"""Out-of-sample classification metrics and baselines (R-ML-4).

Classes: DOWN=0, FLAT=1, UP=2. ``y`` arrays are int (0..2) with no missing labels (rows without a
label are removed before scoring).
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("DOWN", "FLAT", "UP")
_EPS = 1e-12


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """3×3 int64 counts; rows = true class, columns = predicted class."""
    cm = np.zeros((3, 3), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def log_loss(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood (natural log) of the true class; probabilities clipped at 1e-12."""
    y = np.asarray(y_true, np.int64)
    if len(y) == 0:
        return float("nan")
    p = np.clip(probs[np.arange(len(y)), y], _EPS, 1.0)
    return float(-np.log(p).mean())


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None = None) -> dict:
    """Accuracy, per-class precision/recall/support, confusion matrix and (with ``probs``) log loss.

    ``probs`` is ``(n, 3)``. Precision of a class never predicted is ``None`` (undefined), not 0.
    """
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    cm = confusion(y_true, y_pred)
    n = int(cm.sum())
    per_class = {}
    for c, name in enumerate(CLASS_NAMES):
        tp = int(cm[c, c])
        pred_c = int(cm[:, c].sum())
        true_c = int(cm[c, :].sum())
        per_class[name] = {
            "precision": (tp / pred_c) if pred_c else None,
            "recall": (tp / true_c) if true_c else None,
            "support": true_c,
        }
    out = {
        "n": n,
        "accuracy": (float(np.trace(cm)) / n) if n else None,
        "per_class": per_class,
        "confusion": cm.tolist(),
    }
    if probs is not None:
        out["log_loss"] = log_loss(y_true, probs)
    return out


def majority_class(y_train: np.ndarray) -> int:
    """The most frequent class of the TRAINING labels (ties → the lower class index)."""
    counts = np.bincount(np.asarray(y_train, np.int64), minlength=3)
    return int(np.argmax(counts))


def persistence_predictions(ts: np.ndarray, y: np.ndarray, lookahead_ns: int, fallback: int) -> np.ndarray:
    """Persistence baseline: at bar ``t`` predict the most recent realized class that is KNOWN at
    the close of bar ``t``.

    ``ts`` int64 UTC ns bar-open times and ``y`` int labels (-1 = none) of the WHOLE series (so
    that labels realized before a window are usable in it). The label of bar ``s`` compares the
    close of bar ``s`` with the close of the bar opening at ``ts[s] + lookahead_ns``; it is known
    at that bar's close, i.e. at ``ts[s] + lookahead_ns + bar_ns``, and the prediction at ``t`` is
    made at ``ts[t] + bar_ns``: so ``s`` is usable iff ``ts[s] + lookahead_ns <= ts[t]``.
    Rows with no usable label get ``fallback`` (the training majority class).
    Returns int64 ``(n,)``.
    """
    ts = np.asarray(ts, np.int64)
    y = np.asarray(y)
    valid = np.flatnonzero(y >= 0)
    known_at = ts[valid] + np.int64(lookahead_ns)        # ascending because ts is
    j = np.searchsorted(known_at, ts, side="right") - 1
    out = np.full(len(ts), fallback, dtype=np.int64)
    ok = j >= 0
    out[ok] = y[valid[j[ok]]]
    return out


def baseline_metrics(y_true: np.ndarray, majority: int, persistence_pred: np.ndarray,
                     train_prior: np.ndarray | None = None) -> dict:
    """Accuracy and per-class figures of the majority-class and persistence baselines; with
    ``train_prior`` (3 class frequencies of the training split) also ``prior_log_loss``: the log
    loss of always predicting those frequencies (the bar a model's log loss must beat)."""
    y_true = np.asarray(y_true, np.int64)
    extra = {}
    if train_prior is not None:
        extra["prior_log_loss"] = log_loss(y_true, np.tile(np.asarray(train_prior, float), (len(y_true), 1)))
    return {
        **extra,
        "majority_class": CLASS_NAMES[majority],
        "majority": classification_metrics(y_true, np.full_like(y_true, majority)),
        "persistence": classification_metrics(y_true, persistence_pred),
    }
