"""Issue 24 item 7: every fill price of the trade log lies inside the bar its time stamp names, in
every fill model (an optimistic market fill took the signal bar's close but was stamped with the
next bar's open time: 6 trade-log prices of the real year lay outside their stamped bar)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.backtest.runner import run_backtest, slice_dates
from engine.config import Settings
from engine.data.io import load_bars
from engine.strategy import strategy_by_name


@pytest.mark.parametrize("fill", ["optimistic", "conservative"])
def test_trade_prices_lie_inside_their_stamped_bar(es_1m_path, fill):
    bars = slice_dates(load_bars(es_1m_path), "2025-03-01", "2025-05-31")
    s = Settings()
    s = dataclasses.replace(s, account=dataclasses.replace(s.account, starting_capital=100_000.0),
                            risk=dataclasses.replace(s.risk, kill_switch_loss=1e9, account_drawdown_limit=1e9))
    res = run_backtest(bars, strategy_by_name("random", seed=3, p=0.05).signals(bars), s, fill_model=fill)
    tr = res.trades
    assert len(tr) > 200
    eps = 1e-9
    for tcol, pcol in (("entry_time", "entry_price"), ("exit_time", "exit_price")):
        t = tr[tcol].astype("int64").to_numpy()
        i = np.searchsorted(bars.ts, t)
        assert (bars.ts[i] == t).all(), f"{tcol}: a stamp that is no bar's open time"
        px = tr[pcol].to_numpy()
        outside = (px < bars.low[i] - eps) | (px > bars.high[i] + eps)
        assert not outside.any(), tr.loc[outside, [tcol, pcol]].head()
