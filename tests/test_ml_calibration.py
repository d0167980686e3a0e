"""Issue 24: the model's confidence is calibrated on the validation fold (temperature scaling),
its entry threshold chosen there by after-cost expectancy and stored in the checkpoint; a model
with no positive threshold abstains and says so. Real ES bars."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from engine.config import Settings
from engine.data import load_bars
from engine.ml import TrainParams
from engine.ml.calibration import ABSTAIN_MESSAGE, apply_temperature, choose_threshold, fit_temperature, nll
from engine.ml.pipeline import train_from_bars


@pytest.fixture(scope="module")
def trained(es_1m_path, tmp_path_factory):
    b = load_bars(es_1m_path)
    tail = b.slice(len(b) - 30_000, len(b))
    s = Settings()
    rep = train_from_bars(tail, out_dir=tmp_path_factory.mktemp("ck"), arch="mlp", walk_forward=False,
                          params=TrainParams(epochs=1, batch_size=4096, seed=3), training_cfg=s.training,
                          target_cfg=s.target, tick_size=0.25, hparams={"hidden": [8]}, name="m", settings=s)
    return tail, rep


def test_checkpoint_holds_the_validation_calibration_and_threshold(trained):
    tail, rep = trained
    body = json.loads((rep.checkpoint / "manifest.json").read_text())["body"]
    cal = body["calibration"]
    assert 0.05 <= cal["temperature"] <= 20 and cal["nll_after"] <= cal["nll_before"]
    assert cal["rows"] > 1000 and cal["val_window"] == body["training"]["final_model_windows"]["val"]
    table = cal["table"]
    assert [r["threshold"] for r in table] == sorted(r["threshold"] for r in table) and len(table) == 31
    assert all(a["trades"] >= b["trades"] for a, b in zip(table, table[1:]))  # higher threshold, fewer trades
    enough = [r for r in table if r["trades"] >= cal["min_trades"]]
    if cal["abstain"]:
        assert cal["threshold"] is None and all(r["mean_usd"] <= 0 for r in enough)
        assert cal["reason"].startswith(ABSTAIN_MESSAGE)
    else:
        best = max(enough, key=lambda r: r["mean_usd"])
        assert cal["threshold"] == best["threshold"] and best["mean_usd"] > 0
    assert rep.summary["calibration"]["temperature"] == cal["temperature"]


def test_predictor_applies_the_temperature(trained):
    """The predictor's probabilities are the calibrated ones: the validation NLL of the loaded
    checkpoint's predictions over the validation window is the recorded ``nll_after``."""
    from engine.ml.pipeline import build_dataset
    from engine.strategy.model import ModelStrategy

    tail, rep = trained
    body = json.loads((rep.checkpoint / "manifest.json").read_text())["body"]
    cal, w = body["calibration"], body["calibration"]["val_window"]
    s = Settings()
    ds = build_dataset(tail, target_cfg=s.target, tick_size=0.25, settings=s)
    strat = ModelStrategy(rep.checkpoint)
    p = strat.predictor_for(tail).predict_bars(tail)
    rows = np.flatnonzero((ds.ts >= w["start_ns"]) & (ds.ts < w["end_ns"]) & p.valid & (ds.y >= 0))
    assert len(rows) > 1000
    assert nll(p.probs[rows], ds.y[rows]) == pytest.approx(cal["nll_after"], abs=2e-3)
    assert cal["temperature"] == pytest.approx(strat.predictor_for(tail).temperature)


def test_threshold_follows_the_checkpoint_and_an_abstaining_model_makes_no_signal(trained, tmp_path):
    import shutil

    from engine.ml.checkpoint import canonical_json
    from engine.strategy.model import ModelStrategy, apply_threshold, threshold_note

    tail, rep = trained
    s = Settings()
    t = apply_threshold(s, {"threshold": 0.44, "temperature": 1.2, "reason": "x"})
    assert t.signal.min_confidence == 0.44 and t.risk.confidence_multipliers[0][0] == 0.44
    assert t.risk.confidence_multipliers[1:] == s.risk.confidence_multipliers[1:]
    cfg = dataclasses.replace(s, signal=dataclasses.replace(s.signal, model_threshold="config"))
    assert apply_threshold(cfg, {"threshold": 0.44}).signal.min_confidence == s.signal.min_confidence
    assert "threshold 0.44 from the checkpoint" in threshold_note(s, {"threshold": 0.44, "temperature": 1.2})
    # an abstaining checkpoint (body rewritten, checksum recomputed) gives no signal at all
    ck = tmp_path / "abstain"
    shutil.copytree(rep.checkpoint, ck)
    doc = json.loads((ck / "manifest.json").read_text())
    doc["body"]["calibration"].update(abstain=True, threshold=None, reason=f"{ABSTAIN_MESSAGE} (best: -$1.00)")
    import hashlib

    doc["checksums"]["body_sha256"] = hashlib.sha256(canonical_json(doc["body"])).hexdigest()
    (ck / "manifest.json").write_text(json.dumps(doc))
    strat = ModelStrategy(ck)
    sa = apply_threshold(s, strat.calibration())
    assert sa.signal.min_confidence > 1.0  # unreachable: no trade
    from engine.backtest.runner import run_backtest

    assert len(run_backtest(tail, strat.signals(tail), sa).trades) == 0
    assert threshold_note(s, doc["body"]["calibration"]).startswith(ABSTAIN_MESSAGE)


def test_temperature_fit_and_threshold_choice_by_hand():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 4000)
    logits = rng.normal(0, 1, (4000, 3))
    logits[np.arange(4000), y] += 1.0
    over = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)  # over-confident by 3x
    fit = fit_temperature(over, y)
    assert fit["temperature"] == pytest.approx(3.0, rel=0.1) and fit["nll_after"] < fit["nll_before"]
    assert np.allclose(apply_temperature(over, fit["temperature"]).argmax(1), over.argmax(1))

    def score(mean_by_thr):
        return lambda thr: {"one_at_a_time": {"trades": int(200 * (1 - thr)), "mean_usd": mean_by_thr(thr),
                                              "total_usd": 0.0, "win_rate": 0.5}}
    c = choose_threshold(score(lambda thr: thr - 0.6))
    assert not c["abstain"] and c["threshold"] == max(r["threshold"] for r in c["table"] if r["trades"] >= 30)
    c = choose_threshold(score(lambda thr: -1.0 - thr))
    assert c["abstain"] and c["threshold"] is None and c["best"]["threshold"] == 0.34
    assert c["reason"] == f"{ABSTAIN_MESSAGE} (best on validation: threshold 0.34, 131 trades, -$1.34 per trade after costs, $0.00 in all)"
