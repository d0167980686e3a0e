"""Issue 24: Sharpe, Sortino and Calmar from the daily DOLLAR P&L over the account's capital.
A losing run never shows a positive ratio (the old return-based Sharpe read +1.0 on a $6,316
research-mode loss once equity went below zero); the ratios match empyrical-reloaded; a run that
stops at an account-level halt labels what it measured; the go-live gate fails the Sharpe row of
an all-losing walk-forward."""

from __future__ import annotations

import dataclasses

import empyrical
import numpy as np
import pandas as pd
import pytest

from engine.backtest.metrics import daily_pnl, result_metrics
from engine.backtest.runner import run_backtest, slice_dates
from engine.backtest.walkforward import go_live_check, walk_forward_backtest
from engine.config import GoLiveConfig, Settings
from engine.data.io import load_bars
from engine.strategy import strategy_by_name


@pytest.fixture(scope="module")
def bars(es_1m_path):
    return slice_dates(load_bars(es_1m_path), "2025-01-02", "2025-04-30")


@pytest.fixture(scope="module")
def research_run(bars):
    s = Settings()
    return run_backtest(bars, strategy_by_name("baseline", lookback=30).signals(bars), s, research=True)


def test_losing_research_run_has_no_positive_ratio_and_matches_empyrical(research_run):
    res = research_run
    m = result_metrics(res)
    assert m["net_pnl"] < 0 and res.equity.min() < 0  # research mode took equity below zero
    for k in ("sharpe", "sortino", "calmar", "annual_return_pct"):
        assert m[k] < 0, (k, m[k])
    _, pnl = daily_pnl(res.equity, res.day, res.starting_balance)
    assert pnl.sum() == pytest.approx(res.equity[-1] - res.starting_balance)
    r = pd.Series(pnl / Settings().account.starting_capital)
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(r, period="daily"), rel=1e-9)
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(r, period="daily"), rel=1e-9)
    assert m["calmar"] == pytest.approx(pnl.mean() * 252 / m["max_drawdown"], rel=1e-12)
    assert "capital $1,000.00" in m["annualisation"]


def test_winning_ratio_is_positive_and_scale_free():
    from engine.backtest.metrics import dollar_ratios

    p = np.array([10.0, -4.0, 7.0, 3.0, -2.0])
    a, b = dollar_ratios(p, 1000.0, 6.0), dollar_ratios(p, 50_000.0, 6.0)
    assert a["sharpe"] > 0 and a["sortino"] > 0 and a["calmar"] > 0
    assert a["sharpe"] == pytest.approx(b["sharpe"]) and a["calmar"] == b["calmar"]
    assert all(v < 0 for k, v in dollar_ratios(-p, 1000.0, 20.0).items())


def test_halted_run_labels_span_and_until_halt(bars):
    res = run_backtest(bars, strategy_by_name("baseline", lookback=30).signals(bars), Settings(), research=False)
    m = result_metrics(res)
    assert m["halted_at"] is not None and m["halted_at"].endswith(" NY")
    assert m["days_until_halt"] + m["untraded_days"] == m["days_span"] and m["untraded_days"] > 10
    assert m["sharpe_until_halt"] < 0 and m["sharpe"] < 0
    from engine.backtest.report import summary_text

    txt = summary_text(res, metrics=m)
    assert f"untraded remainder {m['untraded_days']} trading days" in txt and m["halted_at"][:10] in txt


def test_go_live_fails_sharpe_for_an_all_losing_walk_forward(bars):
    from engine.ml.splits import Fold, Window

    edges = [pd.Timestamp(x, tz="UTC").value for x in ("2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01")]
    folds = [Fold(k, Window(0, 1), Window(0, 1), Window(edges[k], edges[k + 1]), np.zeros(0, int),
                  np.zeros(0, int), np.zeros(0, int)) for k in range(3)]
    s = Settings()
    s = dataclasses.replace(s, backtest=dataclasses.replace(s.backtest, research=True))
    wf = walk_forward_backtest(bars, folds, lambda f, b: strategy_by_name("baseline", lookback=30).signals(b), s)
    assert all(fm["net_pnl"] < 0 for fm in wf.fold_metrics)
    assert wf.metrics["net_pnl"] < 0
    gate = go_live_check(wf, 0.6, GoLiveConfig())
    row = gate["checks"]["sharpe"]
    assert row["value"] < 0 and row["pass"] is False
    assert gate["checks"]["calmar"]["pass"] is False and gate["pass"] is False
    assert all(fm["sortino"] <= 0 for fm in wf.fold_metrics)
