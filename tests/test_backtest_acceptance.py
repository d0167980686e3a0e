"""Issue 12 acceptance on the full real year (1-minute ES bars standing in for MES): the shipped
defaults with research mode trade on ordinary RTH days; no trade, day or intraday drawdown
breaks its limit; every exit is on or before the EOD profile's flat time; no fill lies outside
its bar's range; RTH pays one tick a side in the median; without research the run stops at its
first account-level halt."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.runner import prepare_market, run_backtest
from engine.calendar import calendar_for
from engine.config import Settings
from engine.data.io import load_bars
from engine.strategy import strategy_by_name

TICK_VALUE = 1.25


@pytest.fixture(scope="module")
def bars(es_1m_path):
    return load_bars(es_1m_path)


@pytest.fixture(scope="module", params=["conservative", "realistic"])
def year(request, bars):
    s = Settings()
    sig = strategy_by_name("baseline").signals(bars)
    return s, run_backtest(bars, sig, s, fill_model=request.param, research=True)


def _day_drawdowns(bars, equity, start):
    cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]))
    day = cal.label(bars.ts).trading_day
    starts = np.r_[0, np.flatnonzero(np.diff(day)) + 1]
    ends = np.r_[starts[1:], len(day)]
    out = []
    for a, b in zip(starts, ends):
        seg = np.r_[equity[a - 1] if a else start, equity[a:b]]
        out.append(float((np.maximum.accumulate(seg) - seg).max()))
    return np.array(out)


def test_baseline_defaults_research_trade_the_year_within_every_limit(bars, year):
    s, res = year
    tr = res.trades
    cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]))
    day = cal.label(tr.entry_ts.to_numpy()).trading_day
    assert len(np.unique(day)) >= 150
    # per trade: ≤ $25 planned; realized ≤ $25 + the slippage bound (3 extra ticks a side)
    assert (tr.risk_dollars <= 25.0 + 1e-9).all()
    assert tr.net_pnl.min() >= -(25.0 + 2 * 3 * TICK_VALUE) - 1e-9
    # per day: loss ≤ $50, intraday drawdown (bar closes) ≤ $75
    xday = cal.label(tr.exit_ts.to_numpy()).trading_day
    assert tr.groupby(xday).net_pnl.sum().min() >= -s.risk.daily_loss_limit - 1e-9
    assert _day_drawdowns(bars, res.equity, res.starting_balance).max() <= s.risk.daily_drawdown_limit + 1e-9
    # every exit on or before the flat time of its session (topstepx profile)
    row = cal.label(tr.exit_ts.to_numpy()).session
    assert (row >= 0).all()
    flat = cal.eod_table(s.eod)[row, 3]
    assert (tr.exit_ts.to_numpy() <= flat).all()
    # research mode passed account-level halts and says so
    assert res.research and any(h["kind"] == "account_drawdown" for h in res.halts)


def test_no_fill_outside_its_bar_and_rth_pays_one_tick(bars, year):
    _, res = year
    tr = res.trades
    for col_ts, col_px in (("entry_ts", "entry_price"), ("exit_ts", "exit_price")):
        i = np.searchsorted(bars.ts, tr[col_ts].to_numpy())
        assert (bars.ts[i] == tr[col_ts].to_numpy()).all()
        px = tr[col_px].to_numpy()
        assert ((px >= bars.low[i] - 1e-9) & (px <= bars.high[i] + 1e-9)).all(), col_px
    if res.fill_model == "realistic":
        mk = prepare_market(bars, Settings(), "realistic")
        assert np.median(mk.slip[mk.is_rth]) == 1.0
        assert (mk.slip[mk.is_rth] > 1).mean() < 0.25
        rth = mk.is_rth[np.searchsorted(bars.ts, tr.entry_ts.to_numpy())]
        per_side = (tr.slippage / tr.contracts / TICK_VALUE / 2).to_numpy()
        assert np.median(per_side[rth]) <= 1.0


def test_spread_breaker_is_fed_from_the_model(bars, year):
    _, res = year
    mk = prepare_market(bars, Settings(), res.fill_model)
    assert np.nanmax(mk.spread) == 3.0 and np.nanmin(mk.spread) == 1.0
    assert sum(n for r, n in res.refused.items() if r.startswith("spread breaker")) > 0


def test_without_research_the_year_stops_at_the_first_account_halt(bars):
    s = Settings()
    res = run_backtest(bars, strategy_by_name("baseline").signals(bars), s, research=False)
    acct = [h for h in res.halts if h["kind"] in ("account_drawdown", "kill_switch", "min_balance")]
    assert len(acct) == 1 and acct[0]["resumed_ns"] is None
    assert int(res.trades.entry_ts.max()) <= acct[0]["ts_ns"]  # (the last trade may enter and stop out in one bar)
