"""Monte Carlo pass probability (issue 23): 10,000 block-bootstrap paths of a trading year (252
days) run against the TopstepX 50K Combine's rules, timed. The daily P&L is the real year's: the
baseline backtest on ``es_1m_2024-12-03_2025-12-15.parquet`` under ``[account] rules =
"topstepx-50k"`` with ``mll_entry_cap = false`` and research mode (so every day trades), its
:func:`engine.research.montecarlo.daily_table`. Prints min / median of ``--runs`` timings in
seconds and the figures; ``--json`` prints one JSON line. The target: ≤ 1 s.

    python bench/bench_montecarlo.py [--runs 5] [--paths 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.backtest.runner import run_backtest  # noqa: E402
from engine.config import load_settings  # noqa: E402
from engine.data import load_bars  # noqa: E402
from engine.research.montecarlo import PathRules, daily_table, pass_probability  # noqa: E402
from engine.risk.profiles import effective_profile  # noqa: E402
from engine.strategy.baseline import BreakoutBaseline  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "es_1m_2024-12-03_2025-12-15.parquet"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write('[account]\nrules = "topstepx-50k"\nmll_entry_cap = false\n')
    s = load_settings(f.name, use_user_file=False, env={})
    bars = load_bars(DATA)
    res = run_backtest(bars, BreakoutBaseline(lookback=s.backtest.baseline_lookback).signals(bars), s, research=True)
    pnl, low = daily_table(res.equity, res.day, res.starting_balance)
    rules = PathRules.of(effective_profile(s.account))
    times, doc = [], {}
    for _ in range(a.runs):
        t = time.perf_counter()
        doc = pass_probability(pnl, low, rules, n_paths=a.paths, horizon=252, seed=0)
        times.append(time.perf_counter() - t)
    out = {"paths": a.paths, "horizon_days": 252, "days_in_sample": int(pnl.size), "min_s": min(times),
           "median_s": statistics.median(times), "p_pass": doc["p_pass"], "p_fail": doc["p_fail"],
           "median_days_to_fail": doc["median_days_to_fail"], "provisional": doc["provisional"]}
    if a.json:
        print(json.dumps(out))
        return
    print(f"{a.paths:,} paths × 252 days over {pnl.size} real days: min {out['min_s']:.3f} s, median "
          f"{out['median_s']:.3f} s (target ≤ 1 s); P(pass) {doc['p_pass']:.3f}, P(fail) {doc['p_fail']:.3f}, "
          f"median days to fail {doc['median_days_to_fail']}")


if __name__ == "__main__":
    main()
