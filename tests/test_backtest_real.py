"""The backtest on the real 1-minute ES file (ES prices stand in for MES on the same tick grid):
skip-ahead = bar-by-bar trade for trade, EOD flat across both DST changes and early closes, no
trade risks more than $25, consecutive-loss pauses and the daily loss limit fire as specified,
random entries have zero gross expectancy within noise and costs are exact (R-BT-1 … R-BT-5)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from engine.backtest.runner import run_backtest, slice_dates
from engine.calendar import calendar_for
from engine.config import Settings
from engine.data.io import load_bars
from engine.strategy import strategy_by_name

NS = 1_000_000_000


def _settings(**sections):
    s = Settings()
    rep = {}
    for name, kw in sections.items():
        rep[name] = dataclasses.replace(getattr(s, name), **kw)
    return dataclasses.replace(s, **rep)


# A large account (the $3,000+ tier: up to 5 contracts, still capped at $25 risk per trade) with
# the account-level halts (kill switch, account drawdown) out of the way, so that a full year of
# trades happens; the daily limits and pauses stay at their §0 values.
BIG = dict(account=dict(starting_capital=100_000.0),
           risk=dict(kill_switch_loss=1e9, account_drawdown_limit=1e9))


@pytest.fixture(scope="module")
def bars(es_1m_path):
    return load_bars(es_1m_path)


@pytest.fixture(scope="module")
def random_all(bars):
    """Dense random entries in every session (ETH included): the EOD and risk checks."""
    s = _settings(session=dict(trade_session="all"), **BIG)
    sig = strategy_by_name("random", seed=11, p=0.2).signals(bars)
    return s, run_backtest(bars, sig, s, fill_model="realistic", strategy_name="random")


def test_fast_path_equals_bar_by_bar_random_full_file(bars):
    s = _settings(**BIG)
    sig = strategy_by_name("random", seed=3, p=0.02).signals(bars)
    fast = run_backtest(bars, sig, s, fill_model="realistic", fast=True)
    slow = run_backtest(bars, sig, s, fill_model="realistic", fast=False)
    assert len(fast.trades) > 300
    assert fast.steps < slow.steps / 20
    pd.testing.assert_frame_equal(fast.trades, slow.trades)
    np.testing.assert_array_equal(fast.equity, slow.equity)


def test_fast_path_equals_bar_by_bar_baseline_with_trailing(bars):
    part = slice_dates(bars, "2025-02-15", "2025-04-15")  # spans the March DST change
    s = _settings(stops=dict(trailing_ticks=6, breakeven_after_ticks=4),
                  session=dict(trade_session="all"), **BIG)
    sig = strategy_by_name("baseline").signals(part)
    for fill in ("conservative", "optimistic"):
        fast = run_backtest(part, sig, s, fill_model=fill, fast=True)
        slow = run_backtest(part, sig, s, fill_model=fill, fast=False)
        assert len(fast.trades) > 50, fill
        pd.testing.assert_frame_equal(fast.trades, slow.trades)


def test_every_day_flat_by_1630_no_entry_after_1615_across_dst(bars):
    """Late entries that a wide bracket keeps open into the EOD phases: every one is closed by
    the 16:25 NY exit phase (12:25 on 13:00 early closes), never open at the flat time, across
    both DST changes of 2025; signals after 16:15 NY never open a position."""
    from engine.data.sessions import session_labels
    from engine.strategy.base import StrategySignals

    lab = session_labels(bars)
    sec = lab.ny_seconds
    # signals at 12:10, 16:10 and 16:20 NY every day (16:20 must be refused: after 16:15)
    fire = np.isin(sec, [12 * 3600 + 600, 16 * 3600 + 600, 16 * 3600 + 1200])
    d = np.where(fire, np.where(lab.trading_day % 2 == 0, 1, -1), 0).astype(np.int8)
    sig = StrategySignals(d, np.where(fire, 0.75, np.nan), np.where(fire, 2, -1).astype(np.int8))
    s = _settings(stops=dict(method="fixed", fixed_ticks=10, reward_risk=3.0, breakeven_after_ticks=0),
                  signal=dict(exit_cooldown_s=0.0), session=dict(trade_session="all"), **BIG)
    res = run_backtest(bars, sig, s, fill_model="realistic")
    fast_bb = run_backtest(bars, sig, s, fill_model="realistic", fast=False)
    pd.testing.assert_frame_equal(res.trades, fast_bb.trades)
    tr = res.trades
    cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]))
    row = cal.label(tr["entry_ts"].to_numpy()).session
    assert (row >= 0).all()
    eod = cal.table.eod[row]
    no_new, flat = eod[:, 1], eod[:, 3]
    assert (tr["entry_ts"].to_numpy() < no_new).all()
    assert (tr["exit_ts"].to_numpy() <= flat).all()
    ny_entry = tr["entry_time"].dt.tz_convert("America/New_York")
    assert not ((ny_entry.dt.hour == 16) & (ny_entry.dt.minute >= 15)).any()
    eod_tr = tr[tr["exit_reason"] == "eod_flatten"]
    assert len(eod_tr) > 40
    ny = eod_tr["exit_time"].dt.tz_convert("America/New_York")
    early = cal.table.early_close[cal.label(eod_tr["exit_ts"].to_numpy()).session]
    assert set(ny[~early].dt.strftime("%H:%M")) == {"16:25"}
    assert early.any() and set(ny[early].dt.strftime("%H:%M")) == {"12:25"}
    for week in (("2025-03-10", "2025-03-14"), ("2025-11-03", "2025-11-07")):
        w = ny[(ny >= pd.Timestamp(week[0], tz="America/New_York"))
               & (ny < pd.Timestamp(week[1], tz="America/New_York") + pd.Timedelta(days=1))]
        assert len(w) >= 1 and set(w.dt.strftime("%H:%M")) == {"16:25"}, week
    # the equity curve holds no open P&L at any flat time: the position is zero there
    flat_bars = np.flatnonzero(np.isin(bars.ts, cal.table.eod[:, 3]))
    open_at = [(t.entry_bar <= b < t.exit_bar) for t in res.records for b in flat_bars
               if t.entry_bar <= b]
    assert not any(open_at)


def test_no_trade_risks_more_than_25_dollars(random_all):
    _, res = random_all
    tr = res.trades
    planned = tr["stop_ticks"] * 1.25 * tr["contracts"]
    assert (planned <= 25.0 + 1e-9).all() and (tr["risk_dollars"] <= 25.0 + 1e-9).all()
    assert np.allclose(planned, tr["risk_dollars"])
    # the realized loss of a stopped trade is the planned risk plus slippage and commission
    stopped = tr[tr["exit_reason"] == "stop"]
    assert (stopped["gross_pnl"] >= -25.0 - 1e-9).all()


def test_consecutive_loss_pauses_fire_and_auto_resume(random_all):
    _, res = random_all
    tr = res.trades.sort_values("entry_ts").reset_index(drop=True)
    streak = 0
    fired = {3: 0, 5: 0}
    resumed_on_time = 0
    for k in range(len(tr) - 1):
        streak = streak + 1 if tr.net_pnl[k] < 0 else 0
        pause = 1800 if streak >= 5 else (900 if streak >= 3 else 0)
        if pause:
            fired[5 if streak >= 5 else 3] += 1
            end = tr.exit_ts[k] + pause * NS
            assert tr.entry_ts[k + 1] >= end, f"trade {k + 1} entered during a {pause} s pause"
            if tr.entry_ts[k + 1] - end <= 2 * 60 * NS:
                resumed_on_time += 1
    assert fired[3] > 20 and fired[5] > 5
    assert resumed_on_time > 10
    assert any("3 consecutive losses: paused 15 min" in r for r in res.refused)
    assert any("5 consecutive losses: paused 30 min" in r for r in res.refused)


def test_daily_loss_limit_blocks_until_next_rth_open(bars, random_all):
    s, res = random_all
    tr = res.trades.sort_values("entry_ts").reset_index(drop=True)
    cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]))
    day = cal.label(tr["exit_ts"].to_numpy()).trading_day
    t = cal.table
    blocked_days = 0
    for d in np.unique(day):
        idx = np.flatnonzero(day == d)
        cum = np.cumsum(tr.net_pnl.to_numpy()[idx])
        hit = np.flatnonzero(cum <= -s.risk.daily_loss_limit)
        if hit.size == 0:
            continue
        blocked_days += 1
        k = idx[hit[0]]
        later = np.flatnonzero((t.day > d) & (t.rth_open >= 0))
        next_rth = t.rth_open[later[0]]
        after = tr.entry_ts.to_numpy()[k + 1:]
        assert not ((after > tr.exit_ts[k]) & (after < next_rth)).any(), f"entry during the daily block of day {d}"
    assert blocked_days > 20
    assert any(r.startswith("daily loss limit") for r in res.refused)


def test_random_entries_zero_gross_expectancy_and_exact_costs(bars):
    s = _settings(**BIG)
    sig = strategy_by_name("random", seed=5, p=0.05).signals(bars)
    res = run_backtest(bars, sig, s, fill_model="realistic")
    tr = res.trades
    n = len(tr)
    assert n > 400
    g = tr.gross_pnl.to_numpy()
    assert abs(g.mean()) < 3 * g.std(ddof=1) / np.sqrt(n), (g.mean(), g.std(ddof=1), n)
    # costs: exact per trade and in total
    np.testing.assert_allclose(tr.net_pnl, tr.gross_pnl - tr.commission - tr.slippage, atol=1e-9)
    np.testing.assert_allclose(tr.commission, 0.84 * tr.contracts, atol=1e-9)
    assert (tr.slippage >= 0).all() and tr.slippage.sum() > 0
    assert res.equity[-1] == pytest.approx(100_000 + tr.net_pnl.sum(), abs=1e-6)
    # same seed → identical; another seed → different
    again = run_backtest(bars, strategy_by_name("random", seed=5, p=0.05).signals(bars), s, fill_model="realistic")
    pd.testing.assert_frame_equal(tr, again.trades)
    other = run_backtest(bars, strategy_by_name("random", seed=6, p=0.05).signals(bars), s, fill_model="realistic")
    assert not other.trades["entry_ts"].equals(tr["entry_ts"])


def test_commissions_reduce_net_by_exactly_their_sum(bars):
    """With every P&L-dependent limit off, the same trades happen with and without commission;
    net differs by exactly the commissions."""
    part = slice_dates(bars, "2025-05-01", "2025-07-31")
    off = dict(daily_loss_limit=1e9, daily_drawdown_limit=1e9, consecutive_loss_pauses=[])
    sig = strategy_by_name("random", seed=9, p=0.05).signals(part)
    a = run_backtest(part, sig, _settings(account=BIG["account"], risk={**BIG["risk"], **off}))
    b = run_backtest(part, sig, _settings(account=BIG["account"], risk={**BIG["risk"], **off},
                                          costs=dict(commission_per_side=0.0, exchange_fee_per_side=0.0)))
    assert len(a.trades) > 100
    pd.testing.assert_series_equal(a.trades.entry_ts, b.trades.entry_ts)
    assert b.trades.commission.sum() == 0
    assert b.trades.net_pnl.sum() - a.trades.net_pnl.sum() == pytest.approx(a.trades.commission.sum(), abs=1e-6)
