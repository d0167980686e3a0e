"""`backtest --walk-forward` (per-fold models, stitched equity, go-live table) and the in-sample
warning of `backtest --model`, on slices of the real ES year."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from engine.config import Settings
from engine.data import load_bars, save_bars
from engine.ml import TrainParams
from engine.ml.pipeline import train_from_bars
from mes_console.cli import app


def test_walk_forward_backtest_cli(es_1m_path, tmp_path):
    b = load_bars(es_1m_path)
    data = save_bars(b.slice(len(b) - 40_000, len(b)), tmp_path / "tail.parquet")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[signal]\nmin_confidence = 0.34\nmodel_threshold = \"config\"\n[risk]\n"
                   "confidence_multipliers = [[0.34, 1.0]]\n[target]\nkind = \"bracket\"\ntime_limit_bars = 30\n")
    r = CliRunner().invoke(app, ["backtest", "--walk-forward", "--data", str(data), "--epochs", "1",
                                 "--config", str(cfg), "--json", "--out", str(tmp_path / "wf")])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["folds"]) == 3 and doc["target"]["kind"] == "bracket"
    assert sum(f["trades"] for f in doc["folds"]) == doc["metrics"]["trades"] > 0
    checks = doc["go_live"]["checks"]
    assert set(checks) == {"sharpe", "calmar", "oos_accuracy", "trades_per_fold", "risk_limits_exercised"}
    assert doc["go_live"]["pass"] == all(c["pass"] for c in checks.values())
    assert checks["oos_accuracy"]["value"] == doc["oos_accuracy"]
    assert "model_any" in doc["training_trading"]
    assert json.loads((tmp_path / "wf" / "walk_forward.json").read_text())["folds"] == doc["folds"]
    import pandas as pd

    tr = pd.read_csv(tmp_path / "wf" / "trades.csv")
    assert len(tr) == doc["metrics"]["trades"] and set(tr["fold"]) <= {0, 1, 2}
    r2 = CliRunner().invoke(app, ["backtest", "--walk-forward", "--data", str(data), "--strategy", "baseline"])
    assert r2.exit_code == 3


def test_backtest_model_warns_when_in_sample(es_1m_path, tmp_path):
    b = load_bars(es_1m_path)
    tail = b.slice(len(b) - 30_000, len(b))
    s = Settings()
    rep = train_from_bars(tail, out_dir=tmp_path, arch="mlp", walk_forward=False,
                          params=TrainParams(epochs=1, batch_size=4096, seed=3), training_cfg=s.training,
                          target_cfg=s.target, tick_size=0.25, hparams={"hidden": [8]}, name="m")
    data = save_bars(tail, tmp_path / "tail.parquet")
    r = CliRunner().invoke(app, ["backtest", "--data", str(data), "--model", str(rep.checkpoint), "--json"])
    assert r.exit_code == 0, r.stderr
    w = json.loads(r.stdout)["warnings"]
    assert len(w) == 1 and "IN-SAMPLE" in w[0] and "IN-SAMPLE" in r.stderr
    r = CliRunner().invoke(app, ["backtest", "--data", str(data), "--model", str(rep.checkpoint),
                                 "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0 and "warning: IN-SAMPLE" in r.stdout
    assert "IN-SAMPLE" in (tmp_path / "rep" / "report.md").read_text()
    # a range after the training data: no warning
    last_day = str(__import__("pandas").Timestamp(int(tail.ts[-1]), tz="UTC").date())
    r = CliRunner().invoke(app, ["backtest", "--data", str(data), "--model", str(rep.checkpoint),
                                 "--start", last_day, "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["warnings"] == []


def test_walk_forward_with_shipped_settings_trades_or_says_why_not(es_1m_path, tmp_path):
    """Issue 24: with the shipped settings each fold's model either trades out of sample at the
    threshold chosen on its validation month, or the output carries the abstain message with
    the validation figures (it used to make no trade at all and say nothing)."""
    b = load_bars(es_1m_path)
    data = save_bars(b.slice(len(b) - 40_000, len(b)), tmp_path / "tail.parquet")
    r = CliRunner().invoke(app, ["backtest", "--walk-forward", "--data", str(data), "--epochs", "1", "--json",
                                 "--out", str(tmp_path / "wf")])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["calibration"]) == len(doc["folds"]) == 3
    for f, c in zip(doc["folds"], doc["calibration"]):
        assert c["temperature"] > 0 and c["nll_after"] <= c["nll_before"]
        if c["abstain"]:
            assert f["trades"] == 0
            assert c["reason"].startswith("model abstains: no threshold with positive expectancy after costs on "
                                          "validation (")
            assert "per trade after costs" in c["reason"] or "validation trades" in c["reason"]
            assert any(line.endswith(c["reason"]) for line in doc["abstain"])
        else:
            assert c["best"]["mean_usd"] > 0 and c["threshold"] == c["best"]["threshold"]
            assert f["trades"] > 0  # it trades out of sample at its validation threshold
    html = (tmp_path / "wf" / "report.html").read_text(encoding="utf-8")
    for c in doc["calibration"]:
        if c["abstain"]:
            assert "model abstains: no threshold with positive expectancy after costs on validation" in html
    r = CliRunner().invoke(app, ["backtest", "--walk-forward", "--data", str(data), "--epochs", "1"])
    assert r.exit_code == 0
    text = " ".join(r.stdout.split())
    assert all(("model abstains" in text) or ("chosen on validation" in text) for _ in doc["folds"])
