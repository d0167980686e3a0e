"""Inference benchmark (R-ML-6): batch-1 latency (features + inference and inference alone,
median/p99) and batch throughput for a checkpoint, on real ES bars.

    python bench/bench_inference.py [CKPT] [--arch mlp] [--data PATH]

Without CKPT a small model of ``--arch`` is trained on the last 60,000 bars first (2 epochs; the
weights do not matter for speed). Prints figures and the ratios to the targets (batch-1 p99
≤ 250 µs and ≥ 1M rows/s for the feed-forward model).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import Settings  # noqa: E402
from engine.data import load_bars  # noqa: E402
from engine.features import FeatureSet  # noqa: E402
from engine.ml import Predictor, TrainParams, load_checkpoint  # noqa: E402
from engine.ml.bench import bench_predictor  # noqa: E402
from engine.ml.pipeline import train_from_bars  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "es_1m_2024-12-03_2025-12-15.parquet"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt", nargs="?")
    ap.add_argument("--arch", default="mlp")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--bars", type=int, default=3000)
    a = ap.parse_args()
    bars = load_bars(a.data)
    ckpt = a.ckpt
    if ckpt is None:
        s = Settings()
        tail = bars.slice(len(bars) - 60_000, len(bars))
        ckpt = train_from_bars(tail, out_dir=tempfile.mkdtemp(prefix="bench-ml-"), arch=a.arch,
                               walk_forward=False, params=TrainParams(epochs=2, batch_size=2048),
                               training_cfg=s.training, target_cfg=s.target, tick_size=0.25,
                               name="bench").checkpoint
    cp = load_checkpoint(ckpt)
    fs = FeatureSet.from_manifest(cp.body["feature_set"])
    pred = Predictor.load(ckpt, fs)
    r = bench_predictor(pred, bars, n_stream=a.bars, n_rows=a.rows)
    b1 = r["batch1_inference_only_us"]
    bf = r["batch1_features_plus_inference_us"]
    print(f"model {r['arch']} ({r['features']} features, {r['threads']} torch threads), checkpoint {ckpt}")
    print(f"batch-1 features+inference: median {bf['median']:.1f} µs  p99 {bf['p99']:.1f} µs  (n={bf['n']})")
    print(f"batch-1 inference only:     median {b1['median']:.1f} µs  p99 {b1['p99']:.1f} µs  "
          f"target p99 ≤ 250 µs → {250 / b1['p99']:.1f}× headroom")
    print(f"batch throughput: {r['batch_rows_per_s']:,.0f} rows/s ({r['batch_rows']:,} rows in "
          f"{r['batch_seconds']:.3f} s)  target ≥ 1,000,000 → {r['batch_rows_per_s'] / 1e6:.2f}×")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
