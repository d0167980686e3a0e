"""Benchmark of engine.features on real ES bars (prints figures and ratios to the targets).

* batch: seconds per 1M bars for the full feature set, on ~1.06M 1-minute bars built by
  repeating the real 1-minute file three times with timestamps shifted by whole weeks (target
  ≤ 0.25 s per 1M bars), and on the TopstepX 1-minute file with volume repeated 16 times;
* streaming: per-bar latency of ``FeatureStream.update`` (median and p99 µs; target p99 ≤ 100 µs)
  over real bars after warm-up.

Run: ``python bench/bench_features.py [--repeat 3] [--stream-bars 20000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.clock import perf_ns  # noqa: E402
from engine.data.bars import Bars  # noqa: E402
from engine.features import feature_set_for  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
NS = 1_000_000_000
M = 60 * NS
WEEK = 7 * 86_400 * NS
BATCH_TARGET_S = 0.25
STREAM_P99_TARGET_US = 100.0


def load(path: Path) -> Bars:
    df = pd.read_parquet(path)
    ts = df["ts_event"].dt.as_unit("ns").astype("int64").to_numpy()
    return Bars(ts, *(df[c].to_numpy(np.float64) for c in ("open", "high", "low", "close",
                                                           "volume")), bar_ns=M)


def tile(b: Bars, copies: int) -> Bars:
    """``copies`` back-to-back copies, each shifted by whole weeks past the previous one."""
    span = int(b.ts[-1] - b.ts[0])
    shift = (span // WEEK + 1) * WEEK
    ts = np.concatenate([b.ts + k * shift for k in range(copies)])
    cols = [np.tile(getattr(b, c), copies) for c in ("open", "high", "low", "close", "volume")]
    return Bars(ts, *cols, bar_ns=b.bar_ns)


def bench_batch(bars: Bars, repeat: int) -> float:
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    fs.batch(bars.slice(0, 1000))  # compile / load the numba cache
    best = float("inf")
    for _ in range(repeat):
        t0 = perf_ns()
        fs.batch(bars)
        best = min(best, (perf_ns() - t0) / 1e9)
    return best / len(bars) * 1e6


def bench_stream(bars: Bars, n: int) -> tuple[float, float]:
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    s = fs.stream()
    ts, o, h, l, c, v = (bars.ts.tolist(), bars.open.tolist(), bars.high.tolist(),
                         bars.low.tolist(), bars.close.tolist(), bars.volume.tolist())
    for i in range(fs.warmup):
        s.update(ts[i], o[i], h[i], l[i], c[i], v[i])
    lat = np.empty(n)
    for j, i in enumerate(range(fs.warmup, fs.warmup + n)):
        t0 = perf_ns()
        s.update(ts[i], o[i], h[i], l[i], c[i], v[i])
        lat[j] = perf_ns() - t0
    return float(np.median(lat) / 1e3), float(np.percentile(lat, 99) / 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stream-bars", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    es = load(DATA / "es_1m_2024-12-03_2025-12-15.parquet")
    tx = load(DATA / "es_1m_topstepx_2025-08-31_2025-11-03.parquet")
    big = tile(es, 3)
    bigv = tile(tx, 16)
    res = {
        "batch_s_per_1M_novol": bench_batch(big, a.repeat),
        "batch_bars_novol": len(big),
        "batch_s_per_1M_vol": bench_batch(bigv, a.repeat),
        "batch_bars_vol": len(bigv),
    }
    res["stream_median_us_novol"], res["stream_p99_us_novol"] = bench_stream(es, a.stream_bars)
    res["stream_median_us_vol"], res["stream_p99_us_vol"] = bench_stream(tx, a.stream_bars)
    res["batch_ratio_to_target"] = max(res["batch_s_per_1M_novol"],
                                       res["batch_s_per_1M_vol"]) / BATCH_TARGET_S
    res["stream_p99_ratio_to_target"] = max(res["stream_p99_us_novol"],
                                            res["stream_p99_us_vol"]) / STREAM_P99_TARGET_US
    res["load_average_1min"] = os.getloadavg()[0]
    if a.json:
        print(json.dumps(res))
        return
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {res['load_average_1min']:.1f} "
          "(figures are best-of-repeat; a loaded machine inflates them)")
    print(f"batch, no volume ({len(big):,} bars, {len(feature_set_for(M, False).names)} features):"
          f" {res['batch_s_per_1M_novol']:.3f} s per 1M bars")
    print(f"batch, volume    ({len(bigv):,} bars, {len(feature_set_for(M, True).names)} features):"
          f" {res['batch_s_per_1M_vol']:.3f} s per 1M bars")
    print(f"  target ≤ {BATCH_TARGET_S} s per 1M bars: ratio {res['batch_ratio_to_target']:.2f}"
          " (≤ 1 meets it)")
    print(f"stream, no volume: median {res['stream_median_us_novol']:.1f} µs, "
          f"p99 {res['stream_p99_us_novol']:.1f} µs per bar")
    print(f"stream, volume:    median {res['stream_median_us_vol']:.1f} µs, "
          f"p99 {res['stream_p99_us_vol']:.1f} µs per bar")
    print(f"  target p99 ≤ {STREAM_P99_TARGET_US:.0f} µs: ratio "
          f"{res['stream_p99_ratio_to_target']:.2f} (≤ 1 meets it)")


if __name__ == "__main__":
    main()
