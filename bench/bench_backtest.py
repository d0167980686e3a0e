"""Backtest throughput on the SAME trades: this kernel vs backtesting.py (and vectorbt, a bench
extra: ``pip install -e '.[bench]'``) on 1,000,000 bars.

Bars: the real ES 1-minute file (../shared/data) repeated end to end with its timestamps shifted
by whole 52-week blocks (weekdays and session times stay aligned) until 1,000,000 bars.
Strategy: the Donchian-30 breakout baseline (engine.strategy.BreakoutBaseline) through the
kernel, one bracket per entry: fixed 8-tick stop, 12-tick target (stops.method = fixed,
reward_risk = 1.5), breakeven off.

Same trades: the other engines are fed the kernel's OWN entries (a market order decided at the
close of the bar before each kernel entry, filled at the next open) and its non-bracket exits
(EOD flatten, risk flatten: a market exit at the same bar), and each simulates the 8/12-tick
bracket itself (neither is given the kernel's stop or target exits), the bracket's levels around
the kernel's entry fill (:func:`kernel_fills`: the open ± the kernel's per-bar slippage, clamped
to the bar) and the kernel's ``conservative`` rules: the stop fills on touch, the target only when
traded through. backtesting.py closes an open trade when the next entry arrives
(``exclusive_orders``); its fills have no slippage, so its prices differ by the kernel's.

vectorbt (``Portfolio.from_signals``) places at most one order per bar and checks a stop from the
bar AFTER the entry; a stop exit takes that bar's order and swallows an entry signal there
(vectorbt's own notes on ``from_signals`` and ``simulate_from_signals_nb``; no option of this
version changes it: ``stop_exit_price``, ``upon_stop_exit``, ``stop_entry_price`` only move the
price or the mode). Fed one row per bar it therefore closes a trade the kernel stopped out on its
entry bar (about half of all trades here) one bar late, against the next bar's range, and loses
the kernel's next entry when that falls on its exit bar or while it is still in. On the
1,000,000 bars, with the fill rules below, that loses 28 of 4,950 trades (0.57 %) at the bench
density and 242 of 13,547 (1.79 %) at the scalper density, every one a re-entry lost while it
still held the previous position, and only 48 % of its trades keep the kernel's exit bar (the
bracket as a fraction of the open, stop and target on touch and unclamped slippage lost 61 and
341: 1.2 % and 2.5 %). So it is fed two rows per bar (:func:`vectorbt_inputs`): the open
(entries, market exits, stops gapped through) and then the bar's range, with the kernel's
``conservative`` fill rules (slippage on the entry, clamped to the bar; stop on touch; target
only when traded through). It then makes the kernel's trades: the same entry AND exit bar for
every trade at both densities; its stop exits lack the kernel's stop slippage (stop-limit at the
level). Its time covers the 2n rows; the one-row run is printed beside it as an untimed
reference with its lost re-entries. Every engine's line prints its trade count, the trades with
the kernel's entry bar and with its entry and exit bar and, when they differ, the kernel entries
it did not take and how many of those were re-entries lost while it still held a position.
Both engines' counts must agree with the kernel's within 2 % (the run fails otherwise).
backtesting.py (which checks a bracket on its entry bar) makes the kernel's trades too, the same
entry and exit bar for every trade; with its bracket around the open instead of the kernel's fill
and its target filled on touch, about 21 % of its exits fell on another bar, hidden from the
count by ``exclusive_orders``.

Two densities: ``bench`` (the default risk limits: daily loss/drawdown, consecutive-loss pauses,
cooldowns) and ``scalper`` (those limits relaxed so the same signals give ≈ 15,000 trades per
1,000,000 bars).

Timing (the same for every engine): warm (each is run once on a small slice first, so imports,
numba caches and first-run costs are excluded; our CME calendar for the whole span is built then
too: it is cached per process and its build time is printed), inputs prepared outside the timing,
a ``gc.collect()`` before each timed run, cyclic GC off during the run, ``--repeats`` runs (3);
best and median wall times are printed, with the median process CPU time beside them (on a machine
shared with other jobs the wall time includes waits for a core, the CPU time does not), ratios on
the wall medians and on the CPU medians. The kernel's line adds its µs per kernel step and per
trade (its cost grows with the trades, backtesting.py's with the bars). The kernel's own check: the skip-ahead run
gives the same trades as the plain bar-by-bar run. The machine's load average is printed at the
start and the end: on a shared machine the figures move with it.

Run: python bench/bench_backtest.py [--bars N] [--repeats R] [--skip-bt] [--skip-vbt]
[--density bench|scalper|both].
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar

from engine.backtest.runner import prepare_market, run_backtest  # noqa: E402
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


def scalper_settings() -> Settings:
    """``settings()`` with the limits that thin the trades relaxed: no daily loss/drawdown limit,
    no consecutive-loss pauses, no exit/reversal cooldowns, and a capital the losses never drain
    below the lowest balance tier."""
    s = settings()
    R = dataclasses.replace
    return R(s, account=R(s.account, starting_capital=10_000_000.0), risk=R(s.risk, daily_loss_limit=1e9, daily_drawdown_limit=1e9, consecutive_loss_pauses=[],
                       min_account_balance=0.0),
             signal=R(s.signal, exit_cooldown_s=0.0, reversal_cooldown_s=0.0))


def kernel_plan(trades, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(act, exit_now) per bar from the kernel's trades: ``act[i]`` = +1/-1 to enter at the open
    of bar i + 1 (the kernel's decision bar is entry_bar − 1), ``exit_now[i]`` True to exit at the
    open of bar i + 1 where the kernel left by anything but its stop or target."""
    act = np.zeros(n, np.int8)
    ex = np.zeros(n, bool)
    eb = trades["entry_bar"].to_numpy(np.int64)
    d = np.where(trades["direction"].to_numpy() == "long", 1, -1).astype(np.int8)
    act[eb - 1] = d
    other = ~trades["exit_reason"].isin(["stop", "target"]).to_numpy()
    xb = trades["exit_bar"].to_numpy(np.int64)[other]
    ex[xb - 1] = True
    return act, ex


def kernel_fills(b: Bars, slip_ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's market fill at the open of each bar (SimVenue, ``conservative``): a buy at
    the open plus the bar's slippage (ticks × 0.25 points) but not above the high, a sell at the
    open minus it but not below the low. Returns (buy fill, sell fill) per bar, points; also the
    effective slippage is fill − open. The other engines put their bracket around these."""
    slip = np.asarray(slip_ticks, np.float64) * 0.25
    return b.open + np.minimum(slip, b.high - b.open), b.open - np.minimum(slip, b.open - b.low)


def run_backtesting_py_fed(bars: Bars, act: np.ndarray, exit_now: np.ndarray, stop_pts: float, tgt_pts: float,
                           repeats: int, slip_ticks: np.ndarray | None = None
                           ) -> tuple[list[float], int, np.ndarray, np.ndarray]:
    """backtesting.py fed the kernel's entries and non-bracket exits (see the module docstring),
    its bracket levels around the kernel's fill (:func:`kernel_fills`; backtesting.py itself fills
    at the open): the stop on touch, the target 1e-6 points beyond its level so that it fills only
    when traded through, as in the kernel's ``conservative`` model. Wall times (s) of ``repeats`` warm ``Backtest.run()`` calls, the
    trade count, and each trade's entry and exit bar."""
    import pandas as pd
    from backtesting import Backtest, Strategy

    slip_all = np.zeros(len(bars)) if slip_ticks is None else np.asarray(slip_ticks, np.float64)

    def make(b: Bars, a: np.ndarray, x: np.ndarray, slip: np.ndarray):
        df = pd.DataFrame({"Open": b.open, "High": b.high, "Low": b.low, "Close": b.close,
                           "Volume": np.ones(len(b))}, index=pd.to_datetime(b.ts, utc=True).tz_localize(None))
        buy, sell = kernel_fills(b, slip)
        # the kernel's fill of the order placed at this bar's close (at the next bar's open, on
        # the side of the plan; one array, as many indicators as before the fills were added)
        nxt = np.concatenate([np.where(a[:-1] > 0, buy[1:], sell[1:]), b.close[-1:]])

        class Fed(Strategy):
            def init(self):
                self.a = self.I(lambda: a.astype(np.float64), name="act", plot=False)
                self.x = self.I(lambda: x.astype(np.float64), name="exit", plot=False)
                self.nx = self.I(lambda: nxt, name="next_fill", plot=False)

            def next(self):
                if self.x[-1] and self.position:
                    self.position.close()
                d = self.a[-1]
                if d > 0:  # the target 1e-6 points beyond its level: backtesting.py fills a limit on touch
                    e = self.nx[-1]
                    self.buy(size=1, sl=e - stop_pts, tp=e + tgt_pts + 1e-6)
                elif d < 0:
                    e = self.nx[-1]
                    self.sell(size=1, sl=e + stop_pts, tp=e - tgt_pts - 1e-6)

        return Backtest(df, Fed, cash=10_000_000, commission=0.0, margin=1.0, trade_on_close=False,
                        exclusive_orders=True, finalize_trades=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make(bars.slice(0, 20_000), act[:20_000], exit_now[:20_000], slip_all[:20_000]).run()  # warm
        times, trades = [], 0
        for _ in range(repeats):
            bt = make(bars, act, exit_now, slip_all)
            gc.collect()
            gc.disable()
            try:
                t0, c0 = perf_ns(), time.process_time()
                stats = bt.run()
                dt = (perf_ns() - t0) / 1e9
                CPU[-1].append(time.process_time() - c0)
            finally:
                gc.enable()
            times.append(dt)
            trades = int(stats["# Trades"])
    tr = stats["_trades"]
    return times, trades, tr["EntryBar"].to_numpy(np.int64), tr["ExitBar"].to_numpy(np.int64)


def interleave(at_open: np.ndarray, in_bar: np.ndarray) -> np.ndarray:
    """Two rows per bar for vectorbt: row ``2i`` = ``at_open[i]`` (the open of bar i), row
    ``2i + 1`` = ``in_bar[i]`` (the rest of bar i). Shape (2n,)."""
    out = np.empty(2 * len(at_open), np.result_type(at_open, in_bar))
    out[0::2] = at_open
    out[1::2] = in_bar
    return out


def vectorbt_inputs(b: Bars, a: np.ndarray, x: np.ndarray, slip_ticks: np.ndarray, stop_pts: float, tgt_pts: float,
                    *, split: bool = True) -> dict:
    """``Portfolio.from_signals`` keyword arguments for the kernel's plan (``kernel_plan``) and
    bracket (points), vectorbt simulating the stop and the target itself.

    vectorbt places at most one order per column and bar, checks a stop from the bar AFTER its
    entry, and a stop exit takes the bar's one order, swallowing an entry signal on that bar
    (``Portfolio.from_signals`` notes; ``simulate_from_signals_nb``). The kernel fills at the open
    and then checks the bracket against the same bar's range. With ``split`` each bar becomes two
    rows: the open (open = high = low = close = the bar's open: market entries and exits, and
    stops gapped through at the open) and the bar itself (open, high, low, close: the bracket
    against the range of the bar it was entered on). ``split=False``: one row per bar (the
    reference that shows what is lost without it).

    Fill rules copied from the kernel's SimVenue (``conservative``): the entry at the open with the
    kernel's per-bar slippage (ticks, adverse, clamped to the bar's range); the bracket around that
    fill (``stop_entry_price="fillprice"``); the stop fills when touched (set 1e-6 points inside),
    the target only when traded through (set 1e-6 points beyond); a level gapped through fills at
    the open. vectorbt's stop exits are stop-limits at the level (no slippage), so its stop exit
    prices differ from the kernel's by the kernel's stop slippage."""
    n = len(b)
    le, se, lx = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    le[1:] = a[:-1] > 0
    se[1:] = a[:-1] < 0
    lx[1:] = x[:-1]
    buy, sell = kernel_fills(b, slip_ticks)
    fill = np.where(le, buy, sell)
    eff = np.abs(fill - b.open)
    sl = np.full(n, np.nan)
    tp = np.full(n, np.nan)
    on = le | se
    sl[on] = (stop_pts - 1e-6) / fill[on]
    tp[on] = (tgt_pts + 1e-6) / fill[on]
    common = dict(size=1.0, init_cash=1e9, stop_entry_price="fillprice", upon_opposite_entry="reverse", freq="1min")
    if not split:
        return dict(close=b.close, entries=le, exits=lx, short_entries=se, short_exits=lx, price=b.open,
                    open=b.open, high=b.high, low=b.low, sl_stop=sl, tp_stop=tp, slippage=eff / b.open, **common)
    no, nan, o = np.zeros(n, bool), np.full(n, np.nan), b.open
    return dict(close=interleave(o, b.close), open=interleave(o, o), high=interleave(o, b.high),
                low=interleave(o, b.low), price=interleave(o, b.close), entries=interleave(le, no),
                short_entries=interleave(se, no), exits=interleave(lx, no), short_exits=interleave(lx, no),
                sl_stop=interleave(sl, nan), tp_stop=interleave(tp, nan), slippage=interleave(eff / o, eff / o),
                **common)


def run_vectorbt_fed(bars: Bars, act: np.ndarray, exit_now: np.ndarray, stop_pts: float, tgt_pts: float,
                     repeats: int, slip_ticks: np.ndarray | None = None, split: bool = True
                     ) -> tuple[list[float], int, np.ndarray, np.ndarray]:
    """vectorbt ``Portfolio.from_signals`` fed the same entries and non-bracket exits, simulating
    the bracket itself (:func:`vectorbt_inputs`; two rows per bar unless ``split=False``). Wall
    times (s) of ``repeats`` warm runs, the trade count, and each trade's entry and exit bar."""
    import vectorbt as vbt

    slip_all = np.zeros(len(bars)) if slip_ticks is None else np.asarray(slip_ticks, np.float64)
    rows = 2 if split else 1
    warm = vectorbt_inputs(bars.slice(0, 20_000), act[:20_000], exit_now[:20_000], slip_all[:20_000],
                           stop_pts, tgt_pts, split=split)
    vbt.Portfolio.from_signals(**warm).trades.count()
    kw = vectorbt_inputs(bars, act, exit_now, slip_all, stop_pts, tgt_pts, split=split)
    times, trades, pf = [], 0, None
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            t0, c0 = perf_ns(), time.process_time()
            pf = vbt.Portfolio.from_signals(**kw)
            trades = int(pf.trades.count())
            dt = (perf_ns() - t0) / 1e9
            CPU[-1].append(time.process_time() - c0)
        finally:
            gc.enable()
        times.append(dt)
    rec = pf.trades.records
    return times, trades, np.asarray(rec["entry_idx"]) // rows, np.asarray(rec["exit_idx"]) // rows


def trade_diff(k_entry: np.ndarray, k_exit: np.ndarray, o_entry: np.ndarray, o_exit: np.ndarray) -> dict:
    """Why another engine's trades differ from the kernel's. Inputs: entry and exit bar per
    trade (int arrays). Returns counts: ``same_entries`` (kernel entry bars the other engine also
    entered on), ``same_trades`` (same entry AND exit bar), ``lost`` (kernel entries the other
    engine did not take), ``lost_held`` (of those, the ones where it was still in its previous
    position: a re-entry lost), ``extra`` (its entries on bars the kernel did not enter on)."""
    k_entry, k_exit = np.asarray(k_entry, np.int64), np.asarray(k_exit, np.int64)
    o_entry, o_exit = np.asarray(o_entry, np.int64), np.asarray(o_exit, np.int64)
    same = np.isin(k_entry, o_entry)
    pairs = set(zip(o_entry.tolist(), o_exit.tolist()))
    same_trades = sum((e, x) in pairs for e, x in zip(k_entry.tolist(), k_exit.tolist()))
    lost = k_entry[~same]
    order = np.argsort(o_entry)
    oe, ox = o_entry[order], o_exit[order]
    j = np.searchsorted(oe, lost) - 1  # the other engine's last trade entered before the lost entry
    held = int(np.sum((j >= 0) & (ox[np.maximum(j, 0)] >= lost)))
    return dict(same_entries=int(same.sum()), same_trades=int(same_trades), lost=int(lost.size), lost_held=held,
                extra=int((~np.isin(o_entry, k_entry)).sum()))


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


CPU: list[list[float]] = [[]]
"""Process CPU seconds of the timed runs of the engine being measured (the last list): on a
machine shared with other jobs, wall time includes the waits for a core; CPU time does not."""


def _times(ts: list[float]) -> str:
    cpu = CPU[-1]
    c = f"; CPU median {float(np.median(cpu)):.3f} s" if cpu else ""
    return (f"best {min(ts):.3f} s, median {float(np.median(ts)):.3f} s{c} "
            f"(runs: {' '.join(f'{t:.3f}' for t in ts)})")


def _diff_line(label: str, d: dict, k: int) -> str:
    line = f"same entry bars {d['same_entries']:,} of {k:,}, same entry and exit bars {d['same_trades']:,}"
    if d["lost"] or d["extra"]:
        line += (f"; {d['lost']:,} kernel entries not taken ({d['lost_held']:,} re-entries lost while {label} "
                 f"still held the previous position), {d['extra']:,} entries of its own")
    return line


def bench_density(name: str, bars: Bars, sig, s: Settings, args) -> bool:
    """One density: the kernel (skip-ahead, bar-by-bar parity), backtesting.py and vectorbt fed
    its entries. Returns whether the kernel's two modes agree and both engines' trade counts are
    within 2 % of the kernel's."""
    n = len(bars)
    times = []
    CPU.append([])
    for _ in range(args.repeats):
        gc.collect()  # start each timed run with no collector debt from the previous one
        t0, c0 = perf_ns(), time.process_time()
        fast = run_backtest(bars, sig, s, fill_model="conservative", fast=True)
        times.append((perf_ns() - t0) / 1e9)
        CPU[-1].append(time.process_time() - c0)
    med = float(np.median(times))
    k_cpu = float(np.median(CPU[-1]))
    t0 = perf_ns()
    slow = run_backtest(bars, sig, s, fill_model="conservative", fast=False)
    t_slow = (perf_ns() - t0) / 1e9
    same = fast.trades.equals(slow.trades) and np.array_equal(fast.equity, slow.equity)
    k = len(fast.trades)
    print(f"--- density {name}: {k:,} kernel trades on {n:,} bars ({1e6 * k / n:,.0f} per 1,000,000)")
    print(f"kernel skip-ahead : {n / med:13,.0f} bars/s  {_times(times)}  steps {fast.steps:,} "
          f"({1e6 * med / max(fast.steps, 1):.1f} µs per step, {1e6 * med / max(len(fast.trades), 1):.0f} µs per trade)")
    print(f"kernel bar-by-bar : {n / t_slow:13,.0f} bars/s  {t_slow:.3f} s  trades identical: {'yes' if same else 'NO'}")
    act, ex = kernel_plan(fast.trades, n)
    stop_pts = s.stops.fixed_ticks * 0.25
    tgt_pts = int(s.stops.fixed_ticks * s.stops.reward_risk + 1e-9) * 0.25
    ok = same
    k_entry, k_exit = fast.trades["entry_bar"].to_numpy(), fast.trades["exit_bar"].to_numpy()
    for label, fn, skip in (("backtesting.py", run_backtesting_py_fed, args.skip_bt),
                            ("vectorbt", run_vectorbt_fed, args.skip_vbt)):
        if skip:
            continue
        try:
            extra = {"slip_ticks": prepare_market(bars, s, "conservative").slip}
            CPU.append([])
            ts, m, o_entry, o_exit = fn(bars, act, ex, stop_pts, tgt_pts, args.repeats, **extra)
        except ImportError as exc:
            print(f"{label}: not installed ({exc}); pip install -e '.[bench]'")
            continue
        m_med = float(np.median(ts))
        diff = abs(m - k) / max(k, 1)
        ok = ok and diff <= 0.02
        rows = " (2 rows per bar: open, then the bar)" if label == "vectorbt" else ""
        print(f"{label:<18}: {n / m_med:13,.0f} bars/s  {_times(ts)}  trades {m:,} "
              f"({100 * diff:.2f} % from the kernel's: {'within' if diff <= 0.02 else 'NOT within'} 2 %){rows}")
        print(f"  {_diff_line(label, trade_diff(k_entry, k_exit, o_entry, o_exit), k)}")
        print(f"ratio kernel / {label}: {m_med / med:7.2f}x on medians ({min(ts) / min(times):.2f}x on bests, "
              f"{float(np.median(CPU[-1])) / k_cpu:.2f}x on CPU-time medians)")
        if label == "vectorbt":  # untimed reference: what one row per bar loses
            CPU.append([])
            _, m1, e1, x1 = fn(bars, act, ex, stop_pts, tgt_pts, 1, split=False, **extra)
            print(f"  vectorbt with one row per bar (untimed reference): trades {m1:,} "
                  f"({100 * abs(m1 - k) / max(k, 1):.2f} % off); {_diff_line(label, trade_diff(k_entry, k_exit, e1, x1), k)}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each; medians and bests printed")
    ap.add_argument("--skip-bt", action="store_true", help="skip backtesting.py")
    ap.add_argument("--skip-vbt", action="store_true", help="skip vectorbt")
    ap.add_argument("--density", choices=("bench", "scalper", "both"), default="both")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {_load()} (1/5/15 min) at the start")
    import engine.kernel as _k
    print(f"kernel: {'compiled by mypyc (setup.py)' if not _k.__file__.endswith('.py') else 'pure Python (no mypyc build)'}")
    bars = tiled(args.bars)
    t0 = perf_ns()
    sig = BreakoutBaseline().signals(bars)
    t_sig = (perf_ns() - t0) / 1e9
    warm = bars.slice(0, 20_000)
    run_backtest(warm, BreakoutBaseline().signals(warm), settings())  # warm: imports, numba caches
    # The CME calendar of the whole span (pandas_market_calendars; built once per process and
    # cached) is part of the warm-up too: the other engines have no calendar to build.
    t0 = perf_ns()
    calendar_for(int(bars.ts[0]), int(bars.ts[-1]) + bars.bar_ns)
    t_cal = (perf_ns() - t0) / 1e9
    print(f"bars: {len(bars):,}  signals: {int((sig.direction != 0).sum()):,} ({t_sig:.3f} s, batch, not timed)  "
          f"CME calendar of the span: {t_cal:.3f} s (once per process, cached, not timed)")
    ok = True
    for name, s in (("bench", settings()), ("scalper", scalper_settings())):
        if args.density in (name, "both"):
            ok = bench_density(name, bars, sig, s, args) and ok
    print("targets: ≥ 30x backtesting.py at the bench density, ≥ 10x at the scalper density (medians)")
    print(f"load average at the end: {_load()}")
    if not ok:
        raise SystemExit("FAIL: skip-ahead trades differ from the bar-by-bar run, or trade counts differ by > 2 %")


if __name__ == "__main__":
    main()
