"""Inference benchmark (R-ML-6), shared by ``mes-console model bench`` and ``bench/``.

Timings use ``engine.clock.perf_ns`` (monotonic; no wall clock).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.clock import perf_ns


def _stats(ns: np.ndarray) -> dict:
    us = np.asarray(ns, np.float64) / 1e3
    return {"n": int(len(us)), "median": float(np.median(us)), "p99": float(np.percentile(us, 99)),
            "mean": float(us.mean()), "max": float(us.max())}


def bench_predictor(pred: Any, bars: Any, *, n_stream: int = 3000, n_rows: int = 1_000_000,
                    repeats: int = 3) -> dict:
    """Time ``pred`` (an :class:`engine.ml.predictor.Predictor`) on real ``bars``.

    * batch-1, features + inference: :meth:`Predictor.update_bar` over ``n_stream`` bars after a
      warm-up of ``feature_set.warmup + seq_len`` bars (µs per bar: median, p99);
    * batch-1, inference only: :meth:`Predictor.update` on precomputed raw rows;
    * batch: :meth:`Predictor.predict_batch` on ``n_rows`` raw rows (finite rows of the series,
      tiled when the series is shorter); best of ``repeats``; rows per second.

    Raises ``ValueError`` when the bars are too short for the warm-up plus ``n_stream``, or
    ``repeats`` < 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: at least one timed batch run")
    fs = pred.feature_set
    warm = int(fs.warmup) + int(pred.seq_len or 1) + 5
    if len(bars) < warm + n_stream:
        raise ValueError(f"bench needs {warm + n_stream} bars, the file has {len(bars)}")
    X = fs.batch(bars)
    pred.reset()
    o, h, l, c, v, ts = bars.open, bars.high, bars.low, bars.close, bars.volume, bars.ts
    for i in range(warm):
        pred.update_bar(int(ts[i]), o[i], h[i], l[i], c[i], v[i])
    lat = []
    for i in range(warm, warm + n_stream):
        t0 = perf_ns()
        rec = pred.update_bar(int(ts[i]), o[i], h[i], l[i], c[i], v[i])
        t1 = perf_ns()
        if rec is not None:
            lat.append(t1 - t0)
    pred.reset()
    rows = X[warm - (pred.seq_len or 1): warm + n_stream]
    for r in rows[: (pred.seq_len or 1)]:
        pred.update(r)
    inf = []
    for r in rows[(pred.seq_len or 1):]:
        t0 = perf_ns()
        rec = pred.update(r)
        t1 = perf_ns()
        if rec is not None:
            inf.append(t1 - t0)
    pred.reset()
    if not lat or not inf:
        raise ValueError("no predictions in the benchmark window (all rows NaN?)")
    finite = X[np.isfinite(X).all(axis=1)]
    reps = -(-n_rows // len(finite))
    big = np.ascontiguousarray(np.tile(finite, (reps, 1))[:n_rows])
    pred.predict_batch(big[: min(len(big), 10_000)])  # warm-up
    times = []
    for _ in range(repeats):
        t0 = perf_ns()
        pred.predict_batch(big)
        times.append(perf_ns() - t0)
    best = min(times)
    import torch

    return {"arch": pred.arch, "features": len(fs.names), "threads": torch.get_num_threads(),
            "batch1_features_plus_inference_us": _stats(np.array(lat)),
            "batch1_inference_only_us": _stats(np.array(inf)),
            "batch_rows": int(n_rows), "batch_seconds": best / 1e9, "batch_rows_per_s": n_rows / (best / 1e9)}
