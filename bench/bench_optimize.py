"""Optimize throughput: trials per minute of ``mes-console optimize``'s study on the real ES
1-minute year (validation window = all but the last 3 months, ≈ 268,000 bars), TPE sampler,
the default space, with 1 and 2 worker processes, on a fresh SQLite storage in a temporary
directory. Target: ≥ 120 trials/min with two workers.

A trial is the kernel in research mode over the validation window (market arrays and signals
computed once per study and process, not per trial), plus its metrics and daily P&L written to
the storage; the figure counts COMPLETE trials over the wall time of the trial phase only (data
loading, the held-out run and the report are printed apart). The load average is printed: on a
shared machine the figures move with it.

Run: python bench/bench_optimize.py [--trials N] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import Settings  # noqa: E402
from engine.research.optimize import optimize_study  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "es_1m_2024-12-03_2025-12-15.parquet"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=120)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    a, b, c = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {a:.2f} {b:.2f} {c:.2f} at the start")
    for w in (int(x) for x in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            doc = optimize_study(Settings(), DATA, trials=args.trials, workers=w, storage=f"sqlite:///{d}/o.db",
                                 study=f"bench-{w}", write_config=Path(d) / "best.toml")
            total = time.perf_counter() - t0
        sp = doc["speed"]
        print(f"workers {w}: {sp['new_trials']} trials in {sp['elapsed_s']:.1f} s = {sp['trials_per_min']:.0f} "
              f"trials/min (whole command {total:.1f} s; {doc['eligible_trials']} trials with ≥ min_trades)")
    a, b, c = os.getloadavg()
    print(f"load average at the end: {a:.2f} {b:.2f} {c:.2f}; target ≥ 120 trials/min with 2 workers")


if __name__ == "__main__":
    main()
