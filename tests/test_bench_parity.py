"""The speed bench's comparison helpers (bench/bench_backtest.py, issue 16 item 6): how another
engine's trades are matched to the kernel's, and the two-rows-per-bar inputs that let vectorbt
exit on its entry bar, on the real ES bars and the kernel's own trades."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_SPEC = importlib.util.spec_from_file_location("bench_backtest", Path(__file__).resolve().parents[1] / "bench" / "bench_backtest.py")
bench = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("bench_backtest", bench)
_SPEC.loader.exec_module(bench)


def test_trade_diff_counts_a_lost_re_entry_and_own_entries():
    # kernel: stopped out on its entry bar 10, re-enters at 12; the other engine is still in
    # its bar-10 trade at bar 12 (exits there) and so misses it; then enters at 15 on its own
    d = bench.trade_diff([10, 12, 20], [10, 13, 25], [10, 15, 20], [12, 16, 25])
    assert d == {"same_entries": 2, "same_trades": 1, "lost": 1, "lost_held": 1, "extra": 1}
    same = bench.trade_diff([10, 12], [10, 13], [10, 12], [10, 13])
    assert same == {"same_entries": 2, "same_trades": 2, "lost": 0, "lost_held": 0, "extra": 0}
    # a kernel entry missed while the other engine was flat is lost but not a held re-entry
    flat = bench.trade_diff([10, 30], [11, 31], [10], [11])
    assert flat["lost"] == 1 and flat["lost_held"] == 0


def test_vectorbt_rows_carry_the_kernel_plan_and_bracket_on_real_bars(es_1m_path):
    from engine.backtest.runner import prepare_market, run_backtest
    from engine.data.io import load_bars
    from engine.strategy import BreakoutBaseline

    bars = load_bars(es_1m_path).slice(0, 30_000)
    s = bench.scalper_settings()
    res = run_backtest(bars, BreakoutBaseline().signals(bars), s, fill_model="conservative", fast=True)
    t = res.trades
    assert len(t) > 100
    act, ex = bench.kernel_plan(t, len(bars))
    slip = prepare_market(bars, s, "conservative").slip
    kw = bench.vectorbt_inputs(bars, act, ex, slip, 2.0, 3.0)
    n = len(bars)
    assert len(kw["close"]) == 2 * n
    eb = t["entry_bar"].to_numpy()
    long_ = (t["direction"] == "long").to_numpy()
    # entries only on the open rows of the kernel's entry bars, nothing on the bar rows
    assert np.array_equal(np.flatnonzero(kw["entries"]), 2 * eb[long_])
    assert np.array_equal(np.flatnonzero(kw["short_entries"]), 2 * eb[~long_])
    assert not kw["sl_stop"][1::2][~np.isnan(kw["sl_stop"][1::2])].size
    # the open row is the open alone; the bar row is the bar's range
    assert np.array_equal(kw["high"][0::2], bars.open) and np.array_equal(kw["high"][1::2], bars.high)
    assert np.array_equal(kw["low"][1::2], bars.low) and np.array_equal(kw["close"][1::2], bars.close)
    # vectorbt's fill (open × (1 ± slippage)) is the kernel's entry fill, and the bracket sits
    # around it: the stop 8 ticks away (1e-6 inside: hit on touch), the target 12 ticks (beyond)
    fill = bars.open[eb] * (1 + np.where(long_, 1, -1) * kw["slippage"][2 * eb])
    assert np.allclose(fill, t["entry_price"].to_numpy(), atol=1e-9)
    stop = fill * (1 - np.where(long_, 1, -1) * kw["sl_stop"][2 * eb])
    target = fill * (1 + np.where(long_, 1, -1) * kw["tp_stop"][2 * eb])
    assert np.allclose(np.abs(stop - fill), 2.0 - 1e-6, atol=1e-9)
    assert np.allclose(np.abs(target - fill), 3.0 + 1e-6, atol=1e-9)
    one = bench.vectorbt_inputs(bars, act, ex, slip, 2.0, 3.0, split=False)
    assert len(one["close"]) == n and np.array_equal(np.flatnonzero(one["entries"]), eb[long_])


def test_backtesting_py_fed_the_kernels_entries_makes_its_trades_on_real_bars(es_1m_path):
    """backtesting.py (a dev dependency) given the kernel's entries, its EOD/risk exits and the
    bracket around the kernel's fill simulates the bracket itself and exits on the kernel's bar
    in every trade: the bench compares the two engines on the same trades."""
    from engine.backtest.runner import prepare_market, run_backtest
    from engine.data.io import load_bars
    from engine.strategy import BreakoutBaseline

    bars = load_bars(es_1m_path).slice(0, 25_000)
    s = bench.scalper_settings()
    t = run_backtest(bars, BreakoutBaseline().signals(bars), s, fill_model="conservative", fast=True).trades
    t = t[t["exit_bar"] < len(bars) - 1]  # backtesting.py closes the last open trade at the end
    act, ex = bench.kernel_plan(t, len(bars))
    slip = prepare_market(bars, s, "conservative").slip
    bench.CPU.append([])
    _, m, entry, exit_ = bench.run_backtesting_py_fed(bars, act, ex, 2.0, 3.0, 1, slip)
    assert m == len(t) > 100
    d = bench.trade_diff(t["entry_bar"].to_numpy(), t["exit_bar"].to_numpy(), entry, exit_)
    assert d["same_trades"] == len(t) and d["extra"] == 0
    buy, sell = bench.kernel_fills(bars, slip)
    eb = t["entry_bar"].to_numpy()
    assert np.allclose(np.where(t["direction"] == "long", buy[eb], sell[eb]), t["entry_price"].to_numpy())
