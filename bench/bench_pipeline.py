"""Data pipeline benchmark: load + validate + session labels + RTH filter + target.

Runs on the real 1-minute ES file (../shared/data) and on a generated 33-million-row 1-second
file (written once to /tmp/mes_bench_1s_33m.parquet, never committed: a random walk on the
0.25 grid over every second of real CME sessions from 2023 on). Prints seconds per step,
bars/second and peak resident memory (resource.getrusage). Goal (issue 2): the 33M pipeline in
≤ 25 s and ≤ 8 GB on the 2-core machine.

    python bench/bench_pipeline.py [--rows 33000000] [--skip-big]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.clock import perf_ns  # noqa: E402
from engine.data import (NS, filter_session, load_bars, make_target, session_labels,  # noqa: E402
                         validate)

ES_1M = ROOT.parent / "shared" / "data" / "es_1m_2024-12-03_2025-12-15.parquet"
BIG = Path("/tmp/mes_bench_1s_33m.parquet")


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB


def generate(path: Path, rows: int) -> None:
    """Write ``rows`` 1-second bars inside real CME sessions (calendar table) to ``path``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.calendar import calendar_for

    t0 = np.datetime64("2023-01-03", "ns").astype(np.int64)
    tab = calendar_for(int(t0), int(t0) + 3 * 365 * 86_400 * NS).table
    rng = np.random.default_rng(7)
    writer = None
    written, price = 0, 4000.0
    tmp = path.with_suffix(".tmp")
    for r in range(len(tab)):
        if tab.open[r] < t0:
            continue
        ts = np.arange(tab.open[r], tab.close[r], NS, dtype=np.int64)[: rows - written]
        n = len(ts)
        steps = rng.integers(-1, 2, n) * 0.25
        close = price + np.cumsum(steps)
        open_ = np.concatenate([[price], close[:-1]])
        high = np.maximum(open_, close) + rng.integers(0, 2, n) * 0.25
        low = np.minimum(open_, close) - rng.integers(0, 2, n) * 0.25
        price = float(close[-1])
        tbl = pa.table({"ts_event": pa.array(ts).cast(pa.timestamp("ns", tz="UTC")),
                        "open": open_, "high": high, "low": low, "close": close,
                        "volume": rng.integers(1, 50, n).astype(np.float64),
                        "symbol": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), ["SYN"])})
        if writer is None:
            writer = pq.ParquetWriter(tmp, tbl.schema)
        writer.write_table(tbl, row_group_size=1_000_000)
        written += n
        if written >= rows:
            break
    writer.close()
    tmp.replace(path)


def run(path: Path, label: str) -> dict:
    steps = {}
    t = perf_ns()
    bars = load_bars(path)
    steps["load"] = perf_ns() - t
    t = perf_ns()
    lab = session_labels(bars)
    steps["session labels"] = perf_ns() - t
    t = perf_ns()
    rep = validate(bars)
    steps["validate"] = perf_ns() - t
    t = perf_ns()
    rth = filter_session(bars, "rth")
    steps["rth filter"] = perf_ns() - t
    h = 30 if bars.bar_ns < 60 * NS else 5
    t = perf_ns()
    y = make_target(bars, lookahead_bars=h, threshold_ticks=3, tick_size=0.25, labels=lab)
    steps["target"] = perf_ns() - t
    total = sum(steps.values()) / 1e9
    n = len(bars)
    print(f"\n== {label}: {n:,} bars, bar size {bars.bar_ns / NS:g} s")
    for k, v in steps.items():
        print(f"  {k:<15} {v / 1e9:7.2f} s  {n / max(v / 1e9, 1e-9) / 1e6:8.1f} M bars/s")
    print(f"  {'TOTAL':<15} {total:7.2f} s  {n / total / 1e6:8.1f} M bars/s")
    print(f"  rth bars {len(rth):,}; labelled {(y >= 0).sum():,}; problems {rep.problems}; "
          f"warnings {rep.warnings}")
    print(f"  peak RSS so far {peak_gb():.2f} GiB")
    return {"total_s": total, "rows": n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=33_000_000)
    ap.add_argument("--skip-big", action="store_true")
    a = ap.parse_args()
    # warm the compiled kernels (cache=True: a no-op after the first run) on a small slice
    run(ES_1M, "real ES 1-minute (first run, includes JIT/cache load)")
    gc.collect()
    run(ES_1M, "real ES 1-minute")
    if a.skip_big:
        return
    if not BIG.exists() or _rows(BIG) != a.rows:
        t = perf_ns()
        generate(BIG, a.rows)
        print(f"\ngenerated {BIG} ({a.rows:,} rows) in {(perf_ns() - t) / 1e9:.1f} s")
    gc.collect()
    r = run(BIG, "generated 1-second")
    print(f"\n33M goal: ≤ 25 s and ≤ 8 GiB → {r['total_s']:.1f} s, peak {peak_gb():.2f} GiB "
          f"({'MET' if r['total_s'] <= 25 and peak_gb() <= 8 else 'NOT MET'})")


def _rows(p: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(p).metadata.num_rows


if __name__ == "__main__":
    main()
