"""Metrics arithmetic, drawdown, the report files, walk-forward stitching, the go-live gate and
the ``backtest`` CLI (one JSON document on stdout)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from engine.backtest.metrics import compute_metrics, drawdown
from engine.backtest.report import write_report
from engine.backtest.runner import equity_curve, run_backtest, slice_dates
from engine.backtest.walkforward import go_live_check, limits_exercised, walk_forward_backtest
from engine.config import GoLiveConfig, Settings
from engine.data.io import load_bars
from engine.kernel import TradeRecord
from engine.strategy import strategy_by_name


def _trade(a: int, b: int, entry: float, direction: int, net: float) -> TradeRecord:
    return TradeRecord(entry_ts=0, exit_ts=0, entry_bar=a, exit_bar=b, direction=direction,
                       entry_price=entry, exit_price=entry, contracts=2, gross_pnl=net, commission=0.0,
                       slippage=0.0, net_pnl=net, exit_reason="target", confidence=0.8,
                       predicted_class=2, risk_dollars=10.0, stop_ticks=8)


def test_equity_curve_books_open_pnl_then_the_net_at_the_exit_bar():
    close = np.array([100.0, 101.0, 102.0, 99.0, 98.0, 97.0])
    # long 2 MES from bar 1 (entry 100.5) closed at bar 3 for +$7; short from bar 3 (entry 99)
    # still open at the end
    eq = equity_curve([_trade(1, 3, 100.5, 1, 7.0), _trade(3, 9, 99.0, -1, 0.0)], close, 1000.0, 5.0, 6)
    expect = [1000.0, 1000.0 + 0.5 * 10, 1000.0 + 1.5 * 10, 1007.0, 1007.0 + 10, 1007.0 + 20]
    np.testing.assert_allclose(eq, expect)
    with pytest.raises(ValueError, match="trade 1"):  # overlapping positions are refused
        equity_curve([_trade(1, 4, 100.0, 1, 1.0), _trade(3, 5, 100.0, 1, 1.0)], close, 1000.0, 5.0, 6)


def test_drawdown_depth_duration_recovery():
    eq = np.array([100, 110, 105, 90, 95, 111, 108.0])
    d = drawdown(eq, bar_ns=60 * 10**9)
    assert d["max_dd"] == 20.0 and d["peak_bar"] == 1 and d["trough_bar"] == 3
    assert d["recovery_bar"] == 5 and d["duration_bars"] == 4 and d["duration_s"] == 240.0
    assert d["max_dd_pct"] == pytest.approx(20 / 110)


def test_metrics_by_hand():
    t = pd.to_datetime(["2025-03-03 15:00", "2025-03-03 16:00", "2025-03-04 15:30"], utc=True)
    trades = pd.DataFrame({"net_pnl": [10.0, -5.0, 20.0], "gross_pnl": [11.0, -4.0, 21.0],
                           "commission": [0.84] * 3, "slippage": [0.16] * 3, "exit_time": t})
    eq = np.array([1000, 1010, 1005, 1005, 1025.0])
    day = np.array([1, 1, 1, 2, 2])
    m = compute_metrics(trades, eq, day, 1000.0)
    assert m["trades"] == 3 and m["net_pnl"] == 25.0 and m["gross_pnl"] == 28.0
    assert m["win_rate"] == pytest.approx(2 / 3) and m["profit_factor"] == 6.0
    assert m["expectancy"] == pytest.approx(25 / 3)
    assert m["largest_win"] == 20.0 and m["largest_loss"] == -5.0
    assert m["max_win_streak"] == 1 and m["max_loss_streak"] == 1
    r = np.array([5.0, 20.0]) / 1000.0  # daily dollar P&L over the capital (no compounding)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert m["pnl_by_hour_ny"] == {10: 30.0, 11: -5.0}
    assert m["total_costs"] == pytest.approx(3.0) and m["winning_days_pct"] == 100.0


@pytest.fixture(scope="module")
def part(es_1m_path):
    return slice_dates(load_bars(es_1m_path), "2025-06-01", "2025-09-30")


def _big():
    s = Settings()
    return dataclasses.replace(s, account=dataclasses.replace(s.account, starting_capital=100_000.0),
                               risk=dataclasses.replace(s.risk, kill_switch_loss=1e9, account_drawdown_limit=1e9))


def test_report_files(part, tmp_path):
    res = run_backtest(part, strategy_by_name("random", p=0.03).signals(part), _big())
    paths = write_report(res, tmp_path)
    tr = pd.read_csv(paths["trades"])
    for c in ("entry_time", "exit_time", "direction", "entry_price", "exit_price", "contracts", "gross_pnl",
              "commission", "slippage", "net_pnl", "exit_reason", "confidence", "predicted_class"):
        assert c in tr.columns
    assert len(tr) == len(res.trades) > 20
    eq = pd.read_csv(paths["equity"])
    assert len(eq) == len(part) and (eq["drawdown"] <= 0).all()
    doc = json.loads(paths["metrics"].read_text())
    assert doc["metrics"]["trades"] == len(tr)
    assert paths["equity_png"].read_bytes()[:4] == b"\x89PNG"
    assert "| sharpe |" in paths["report"].read_text()


def test_walk_forward_stitching_and_go_live_gate(part):
    from engine.ml.splits import Fold, Window

    edges = [pd.Timestamp(x, tz="UTC").value for x in ("2025-07-01", "2025-08-01", "2025-09-01", "2025-10-01")]
    folds = [Fold(k, Window(0, 1), Window(0, 1), Window(edges[k], edges[k + 1]), np.zeros(0, int),
                  np.zeros(0, int), np.zeros(0, int)) for k in range(3)]
    s = _big()
    wf = walk_forward_backtest(part, folds, lambda f, b: strategy_by_name("random", seed=f.number, p=0.03).signals(b), s)
    assert len(wf.folds) == 3 and len(wf.equity) == sum(r.bars for r in wf.folds)
    total_net = sum(r.trades.net_pnl.sum() for r in wf.folds)
    assert wf.equity[-1] == pytest.approx(100_000 + total_net)
    gate = go_live_check(wf, 0.50, GoLiveConfig())
    assert gate["pass"] is False
    assert gate["checks"]["oos_accuracy"]["pass"] is False
    assert gate["checks"]["trades_per_fold"]["value"] == [int(m["trades"]) for m in wf.fold_metrics]
    ex = limits_exercised(wf.folds)
    assert ex["daily_loss_limit"] and ex["consecutive_losses_3"]
    assert not ex["kill_switch"]  # disabled above: never fired


def test_cli_backtest_json(es_1m_path, tmp_path):
    from mes_console.cli import app

    r = CliRunner().invoke(app, ["backtest", "--data", str(es_1m_path), "--start", "2025-03-03", "--end",
                                 "2025-03-14", "--strategy", "random", "--fill", "realistic",
                                 "--out", str(tmp_path / "rep"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["strategy"] == "random" and doc["fill_model"] == "realistic" and doc["bars"] > 10_000
    assert (tmp_path / "rep" / "trades.csv").exists() and (tmp_path / "rep" / "equity.png").exists()
    bad = CliRunner().invoke(app, ["backtest", "--data", str(es_1m_path), "--strategy", "nope", "--json"])
    assert bad.exit_code == 3 and "unknown strategy 'nope'" in bad.output
    bad = CliRunner().invoke(app, ["backtest", "--data", str(es_1m_path), "--fill", "magic"])
    assert bad.exit_code == 3


def test_model_strategy_predicts_in_one_batch(part):
    """The model strategy makes ONE batch call for the whole series and maps classes to
    direction/confidence; rows without a prediction give no signal."""
    from engine.ml.predictor import BatchPredictions
    from engine.strategy import ModelStrategy

    calls = []

    class FakePredictor:
        def predict_bars(self, bars):
            calls.append(len(bars))
            n = len(bars)
            rng = np.random.default_rng(1)
            probs = rng.dirichlet([1, 1, 1], size=n)
            valid = np.ones(n, bool)
            valid[:50] = False
            d = (probs.argmax(1) - 1).astype(np.int8)
            return BatchPredictions(bars.ts, valid, np.where(valid, d, 0).astype(np.int8),
                                    np.where(valid, probs.max(1), np.nan), probs, np.zeros(n), np.zeros(n))

    strat = ModelStrategy("unused.ckpt", predictor=FakePredictor())
    sig = strat.signals(part)
    assert calls == [len(part)]
    assert (sig.direction[:50] == 0).all() and np.isnan(sig.confidence[:50]).all()
    assert set(np.unique(sig.pred_class[50:])) <= {0, 1, 2}
    assert ((sig.pred_class[50:] - 1) == sig.direction[50:]).all()
    res = run_backtest(part, sig, _big())
    assert len(res.trades) > 10
    assert (res.trades["confidence"] >= 0.60).all()


def test_walk_forward_with_a_fold_that_makes_no_trade(part):
    """A fold whose model never trades (here: no signal at all) stitched with folds that trade:
    the empty fold's trade table has the same dtypes as a full one, so the stitched table keeps
    datetime exit times and the metrics compute (an empty table of float columns used to turn
    the times into objects and crash ``compute_metrics``)."""
    from engine.ml.splits import Fold, Window
    from engine.strategy.base import StrategySignals

    edges = [pd.Timestamp(x, tz="UTC").value for x in ("2025-07-01", "2025-08-01", "2025-09-01")]
    folds = [Fold(k, Window(0, 1), Window(0, 1), Window(edges[k], edges[k + 1]), np.zeros(0, int),
                  np.zeros(0, int), np.zeros(0, int)) for k in range(2)]

    def signals(f, b):
        if f.number == 0:
            n = len(b)
            return StrategySignals(np.zeros(n, np.int8), np.zeros(n), np.full(n, 1, np.int64))
        return strategy_by_name("random", seed=1, p=0.03).signals(b)

    wf = walk_forward_backtest(part, folds, signals, _big())
    assert len(wf.folds[0].trades) == 0 and len(wf.folds[1].trades) > 10
    assert wf.folds[0].trades.dtypes.equals(wf.folds[1].trades.dtypes)
    assert str(wf.trades["exit_time"].dtype).startswith("datetime64") and len(wf.trades) == len(wf.folds[1].trades)
    assert wf.metrics["trades"] == len(wf.folds[1].trades)


def test_report_dir_holds_tables_images_and_a_self_contained_html(es_1m_path, tmp_path):
    """Issue 24: the backtest report directory holds the analytics tables, the plots and one
    HTML file that names the run's trades and net P&L; ``--json`` carries the same tables."""
    import re

    from mes_console.cli import app

    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["backtest", "--data", str(es_1m_path), "--start", "2025-03-03", "--end",
                                 "2025-03-28", "--out", str(out), "--json", "--research"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    m = doc["metrics"]
    assert m["trades"] > 10
    for name in ("by_day", "by_week", "by_month", "by_hour", "by_weekday", "by_exit_reason", "by_confidence",
                 "trades", "streaks"):
        t = pd.read_csv(out / "tables" / f"{name}.csv")
        assert len(t) == len(doc["analytics"]["tables"][name]), name
    for name in ("by_day", "by_month", "by_hour", "by_exit_reason", "by_weekday"):
        t = pd.read_csv(out / "tables" / f"{name}.csv")
        assert t["trades"].sum() == m["trades"] and t["net_pnl"].sum() == pytest.approx(m["net_pnl"], abs=0.05)
    tr = pd.read_csv(out / "tables" / "trades.csv")
    assert (tr["mae_ticks"] >= 0).all() and (tr["mfe_ticks"] >= 0).all() and (tr["holding_min"] >= 0).all()
    stops = tr["exit_reason"] == "stop"
    assert (tr.loc[stops, "mae_ticks"] > 0).all()  # a stop-out went against the entry
    log = pd.read_csv(out / "trades.csv")  # ... by at most its stop plus the worst slippage (4 ticks)
    assert (tr.loc[stops, "mae_ticks"] <= log.loc[stops, "stop_ticks"] + 4).all()
    tg = tr["exit_reason"] == "target"
    assert (tr.loc[tg, "mfe_ticks"] > 0).all()  # a target exit went for the entry
    for png in ("equity.png", "daily_pnl_hist.png", "mae_mfe.png", "pnl_by_hour.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"{m['trades']} trades" in html and f"net P&amp;L ${m['net_pnl']:,.2f}" in html
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # self-contained: no external resource
    assert html.count("data:image/png;base64,") == 4
    s = doc["analytics"]["summary"]
    assert 0 < s["exposure_bars_pct"] <= 100 and s["trades"] == m["trades"]
