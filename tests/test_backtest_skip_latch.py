"""The skip-ahead asks the risk manager (``RiskManager.quiet_equity_band``,
``next_entry_possible_ns``) and the signal rules (``SignalGenerator.actionable`` /
``next_entry_ns``) instead of repeating their numbers: a risk manager with a latch of its own
(here an open-loss cap that flattens a position $4 under water, declared in its band) gives the
same trades with the skip-ahead as stepping every bar, on real bars."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from engine.backtest.runner import run_backtest, slice_dates
from engine.calendar import calendar_for
from engine.clock import SimClock
from engine.config import Settings
from engine.data.io import load_bars
from engine.instruments import spec as instrument_spec
from engine.risk import RiskManager
from engine.risk.manager import BAND_MARGIN
from engine.strategy import strategy_by_name

CAP = 4.0  # dollars of open loss that flatten the position


class OpenLossCap(RiskManager):
    """A new latch: a position whose open loss reaches ``CAP`` is flattened (as a halt is)."""

    def __init__(self, *a, declare_band: bool = True, **kw):
        super().__init__(*a, **kw)
        self.capped_ns: int | None = None
        self.cap_hits = 0
        self.declare_band = declare_band

    def on_mark(self, equity, now_ns):
        super().on_mark(equity, now_ns)
        if self.capped_ns is None and equity <= self.balance - CAP:
            self.capped_ns = int(now_ns)
            self.cap_hits += 1

    def flatten_reason(self, now_ns):
        if self.capped_ns is not None:
            return "HALTED: open-loss cap"
        return super().flatten_reason(now_ns)

    def on_trade_closed(self, net_pnl, exit_ts_ns):
        super().on_trade_closed(net_pnl, exit_ts_ns)
        self.capped_ns = None

    def quiet_equity_band(self):
        lo, hi = super().quiet_equity_band()
        if self.declare_band:
            lo = max(lo, self.balance - CAP + BAND_MARGIN)
        return lo, hi


@pytest.fixture(scope="module")
def part(es_1m_path):
    return slice_dates(load_bars(es_1m_path), "2025-03-01", "2025-04-30")


def _run(part, sig, s, fast, cls=OpenLossCap, **kw):
    cal = calendar_for(int(part.ts[0]), int(part.ts[-1]) + part.bar_ns)
    risk = cls(s, SimClock(int(part.ts[0])), cal, instrument_spec(s.instrument.symbol), None, **kw)
    return run_backtest(part, sig, s, fill_model="conservative", fast=fast, risk=risk), risk


def test_new_latch_skip_ahead_equals_bar_by_bar(part):
    s = Settings()
    s = dataclasses.replace(s, account=dataclasses.replace(s.account, starting_capital=100_000.0),
                            risk=dataclasses.replace(s.risk, kill_switch_loss=1e9, account_drawdown_limit=1e9),
                            stops=dataclasses.replace(s.stops, method="fixed", fixed_ticks=8, reward_risk=3.0))
    sig = strategy_by_name("random", seed=5, p=0.02).signals(part)
    fast, rf = _run(part, sig, s, True)
    slow, rs = _run(part, sig, s, False)
    assert rs.cap_hits > 5, "the latch must act in this window for the test to mean anything"
    assert fast.steps < slow.steps / 5
    pd.testing.assert_frame_equal(fast.trades, slow.trades)
    np.testing.assert_array_equal(fast.equity, slow.equity)
    assert rf.cap_hits == rs.cap_hits
    # the latch changes the trades (it is not a no-op)
    plain, _ = _run(part, sig, s, False, cls=RiskManager)
    assert not plain.trades.equals(slow.trades)
