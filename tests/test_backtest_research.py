"""Research mode (``[backtest] research``, ``backtest --research``) and the halt log of a
backtest, on the real 1-minute file: without research the run stops at its first account-level
halt and says when and why; with research each account-level halt is recorded and lifted at the
next RTH open, daily limits and pauses apply unchanged, and skip-ahead = bar-by-bar."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from engine.backtest.runner import run_backtest, slice_dates
from engine.calendar import ny_datetime
from engine.config import Settings
from engine.data.io import load_bars
from engine.risk.manager import ACCOUNT_HALT_KINDS, HALT_KINDS
from engine.strategy import strategy_by_name


@pytest.fixture(scope="module")
def bars(es_1m_path):
    return slice_dates(load_bars(es_1m_path), "2024-12-01", "2025-03-31")


@pytest.fixture(scope="module")
def sig(bars):
    return strategy_by_name("baseline").signals(bars)


def test_without_research_the_first_account_halt_ends_trading(bars, sig):
    res = run_backtest(bars, sig, Settings(), research=False)
    acct = [h for h in res.halts if h["kind"] in ACCOUNT_HALT_KINDS]
    assert acct, "the shipped defaults lose on this span; an account-level halt must fire"
    first = acct[0]
    assert first["resumed_ns"] is None
    assert "manual review" in first["reason"] or "kill switch" in first["reason"]
    assert not res.research
    # no entry after the halt
    assert int(res.trades.entry_ts.max()) <= first["ts_ns"]
    assert all(h["kind"] in HALT_KINDS for h in res.halts)


def test_research_records_and_resumes_each_account_halt(bars, sig):
    s = dataclasses.replace(Settings(), backtest=dataclasses.replace(Settings().backtest, research=True))
    res = run_backtest(bars, sig, s)  # research=None takes the config key
    assert res.research
    acct = [h for h in res.halts if h["kind"] in ACCOUNT_HALT_KINDS]
    assert len(acct) >= 2
    for h in acct:
        assert h["resumed_ns"] is not None and h["resumed_ns"] > h["ts_ns"]
        # resumes at an RTH open (09:30 New York)
        t = ny_datetime(h["resumed_ns"])
        assert (t.hour, t.minute) == (9, 30)
        # no entry between the halt and its resumption
        e = res.trades.entry_ts.to_numpy()
        assert not np.any((e > h["ts_ns"]) & (e < h["resumed_ns"]))
    # trading continues after the first halt
    assert int(res.trades.entry_ts.max()) > acct[0]["resumed_ns"]
    # daily limits and pauses still apply
    assert any(h["kind"] == "pause" for h in res.halts)


def test_research_fast_equals_bar_by_bar(bars, sig):
    fast = run_backtest(bars, sig, Settings(), research=True, fast=True)
    slow = run_backtest(bars, sig, Settings(), research=True, fast=False)
    pd.testing.assert_frame_equal(fast.trades, slow.trades)
    assert fast.halts == slow.halts
    assert len(fast.trades) > 100
