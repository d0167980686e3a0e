"""Backtest throughput: this kernel's backtest vs backtesting.py on the same 1,000,000 bars with
the same bracket strategy.

Bars: the real ES 1-minute file (../shared/data) repeated end to end with its timestamps shifted
by whole 52-week blocks (weekdays and session times stay aligned) until 1,000,000 bars.
Strategy: the Donchian-30 breakout baseline (engine.strategy.BreakoutBaseline), one bracket per
entry: fixed 8-tick stop, 12-tick target (stops.method = fixed, reward_risk = 1.5), breakeven
off. backtesting.py gets the same signal array and the same bracket (sl/tp in points from the
entry price), one contract, no costs; it has no EOD, risk manager or sessions, so its trade count
differs: the comparison is throughput. Our own check is that the skip-ahead run gives the same
trades as the plain bar-by-bar run of the same kernel.

Timing (the same for both): warm (each is run once on a small slice first, so imports, numba
caches and first-run costs are excluded; our CME calendar for the whole span is built then too:
it is cached per process and its build time is printed), inputs prepared outside the timing
(our Bars and signal array; their DataFrame), a ``gc.collect()`` before each timed run (no
collector debt carried from the previous run), cyclic GC off during the run (our runner turns
it off for its loop and outputs; bt.run() gets the same), best of ``--repeats`` (5) runs; every
run and the median are printed too (the first full-size run of each also pays for growing the
process's memory).
The bar-by-bar run is timed once (it is the parity reference). The machine's load average is
printed at the start and the end: on a shared machine the figures move with it.

Run: python bench/bench_backtest.py [--bars N] [--repeats R] [--skip-bt]. Prints figures and ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backtest.runner import run_backtest  # noqa: E402
from engine.calendar import calendar_for  # noqa: E402
from engine.clock import perf_ns  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.data.bars import Bars  # noqa: E402
from engine.data.io import load_bars  # noqa: E402
from engine.strategy import BreakoutBaseline  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "es_1m_2024-12-03_2025-12-15.parquet"
WEEK_NS = 7 * 86_400 * 1_000_000_000


def tiled(n_target: int) -> Bars:
    b = load_bars(DATA)
    span = int(b.ts[-1] - b.ts[0])
    shift = ((span // (52 * WEEK_NS)) + 1) * 52 * WEEK_NS
    reps = -(-n_target // len(b))
    cols = {k: [] for k in ("ts", "open", "high", "low", "close", "volume")}
    for r in range(reps):
        # back-to-back copies: each shifted by whole 52-week blocks and by the price drift so the
        # series has no artificial jump at the seams
        off = 0.0 if r == 0 else cols["close"][-1][-1] - b.open[0]
        cols["ts"].append(b.ts + r * shift)
        for k in ("open", "high", "low", "close"):
            cols[k].append(getattr(b, k) + off)
        cols["volume"].append(b.volume)
    a = {k: np.concatenate(v)[:n_target] for k, v in cols.items()}
    return Bars(a["ts"], a["open"], a["high"], a["low"], a["close"], a["volume"], b.symbol, b.bar_ns)


def settings() -> Settings:
    s = Settings()
    R = dataclasses.replace
    return R(s, stops=R(s.stops, method="fixed", fixed_ticks=8, reward_risk=1.5, breakeven_after_ticks=0),
             account=R(s.account, starting_capital=100_000.0),
             risk=R(s.risk, kill_switch_loss=1e9, account_drawdown_limit=1e9))


def run_backtesting_py(bars: Bars, direction: np.ndarray, repeats: int = 5) -> tuple[list[float], int]:
    """Wall times (s) of ``repeats`` warm ``Backtest.run()`` calls and the trade count.

    Treated like our kernel: imported and run once on a small slice first (import, first-run
    and cache overhead excluded), the DataFrame is built outside the timing (our Bars exist
    before ``run_backtest`` too), the cyclic GC is off during each timed run (our runner turns
    it off for its loop), and the best of ``repeats`` runs counts (the caller takes it)."""
    import pandas as pd
    from backtesting import Backtest, Strategy

    sig_all = direction.astype(np.float64)

    def make(b: Bars, sig: np.ndarray):
        df = pd.DataFrame({"Open": b.open, "High": b.high, "Low": b.low, "Close": b.close,
                           "Volume": np.ones(len(b))}, index=pd.to_datetime(b.ts, utc=True).tz_localize(None))

        class Bracket(Strategy):
            def init(self):
                self.sig = self.I(lambda: sig, name="sig", plot=False)

            def next(self):
                if self.position:
                    return
                d = self.sig[-1]
                c = self.data.Close[-1]
                if d > 0:
                    self.buy(size=1, sl=c - 2.0, tp=c + 3.0)
                elif d < 0:
                    self.sell(size=1, sl=c + 2.0, tp=c - 3.0)

        return Backtest(df, Bracket, cash=10_000_000, commission=0.0, margin=1.0, trade_on_close=False,
                        exclusive_orders=False, finalize_trades=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make(bars.slice(0, 20_000), sig_all[:20_000]).run()  # warm: imports, first run
        times, trades = [], 0
        for _ in range(repeats):
            bt = make(bars, sig_all)
            gc.collect()  # as for our runs: no collector debt from the previous run
            gc.disable()
            try:
                t0 = perf_ns()
                stats = bt.run()
                dt = (perf_ns() - t0) / 1e9
            finally:
                gc.enable()
            times.append(dt)
            trades = int(stats["# Trades"])
    return times, trades


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each; the best counts")
    ap.add_argument("--skip-bt", action="store_true", help="skip backtesting.py")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {_load()} (1/5/15 min) at the start")
    bars = tiled(args.bars)
    n = len(bars)
    s = settings()
    t0 = perf_ns()
    sig = BreakoutBaseline().signals(bars)
    t_sig = (perf_ns() - t0) / 1e9
    warm = bars.slice(0, 20_000)
    run_backtest(warm, BreakoutBaseline().signals(warm), s)  # warm: imports, numba caches
    # The CME calendar of the whole span (pandas_market_calendars; built once per process and
    # cached) is part of the warm-up too: backtesting.py has no calendar to build.
    t0 = perf_ns()
    calendar_for(int(bars.ts[0]), int(bars.ts[-1]) + bars.bar_ns)
    t_cal = (perf_ns() - t0) / 1e9
    best = None
    times = []
    for _ in range(args.repeats):
        gc.collect()  # start each timed run with no collector debt from the previous one
        t0 = perf_ns()
        fast = run_backtest(bars, sig, s, fill_model="conservative", fast=True)
        dt = (perf_ns() - t0) / 1e9
        times.append(dt)
        best = dt if best is None else min(best, dt)
    t0 = perf_ns()
    slow = run_backtest(bars, sig, s, fill_model="conservative", fast=False)
    t_slow = (perf_ns() - t0) / 1e9
    same = fast.trades.equals(slow.trades) and np.array_equal(fast.equity, slow.equity)
    print(f"bars: {n:,}  signals: {int((sig.direction != 0).sum()):,} ({t_sig:.3f} s, batch, not timed)  "
          f"CME calendar of the span: {t_cal:.3f} s (once per process, cached, not timed)")
    print(f"kernel skip-ahead : {best:8.3f} s  {n / best:13,.0f} bars/s  trades {len(fast.trades):,}  "
          f"kernel steps {fast.steps:,}  (best of {args.repeats})")
    print(f"  every run (s): {' '.join(f'{t:.3f}' for t in times)}  median {float(np.median(times)):.3f}")
    print(f"kernel bar-by-bar : {t_slow:8.3f} s  {n / t_slow:13,.0f} bars/s  trades {len(slow.trades):,}  "
          f"kernel steps {slow.steps:,}")
    print(f"trades identical to the bar-by-bar run: {'yes' if same else 'NO'}")
    if not args.skip_bt:
        bt_times, n_bt = run_backtesting_py(bars, sig.direction, args.repeats)
        t_bt = min(bt_times)
        print(f"backtesting.py    : {t_bt:8.3f} s  {n / t_bt:13,.0f} bars/s  trades {n_bt:,}  "
              f"(best of {args.repeats}, warm)")
        print(f"  every run (s): {' '.join(f'{t:.3f}' for t in bt_times)}  median {float(np.median(bt_times)):.3f}")
        print(f"ratio skip-ahead / backtesting.py : {t_bt / best:6.1f}x  (target ≥ 30x; "
              f"medians: {float(np.median(bt_times)) / float(np.median(times)):.1f}x)")
        print(f"ratio bar-by-bar / backtesting.py : {t_bt / t_slow:6.1f}x")
    print(f"load average at the end: {_load()}")
    if not same:
        raise SystemExit("FAIL: skip-ahead trades differ from the bar-by-bar run")


if __name__ == "__main__":
    main()
