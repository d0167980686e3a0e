"""Speed of the embedded demo market generator (figures, no assertions).

    python bench/bench_market_generator.py
"""

from __future__ import annotations

import json
from datetime import date

from engine.clock import perf_ns
from engine.market import generate_bars


def timed(**kw) -> dict:
    t0 = perf_ns()
    b = generate_bars(**kw)
    dt = (perf_ns() - t0) / 1e9
    return {"bars": len(b), "seconds": round(dt, 3), "bars_per_s": int(len(b) / dt)}


def main() -> None:
    generate_bars(date(2025, 3, 3), date(2025, 3, 3))  # compile / load the numba cache
    out = {
        "year_1min": timed(start=date(2025, 1, 2), end=date(2025, 12, 31), seed=1),
        "week_1s": timed(start=date(2025, 3, 3), end=date(2025, 3, 7), bar_ns=1_000_000_000, seed=1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
