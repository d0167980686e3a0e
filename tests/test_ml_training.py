"""Training on real-derived arrays: determinism, class weights, early stopping, progress events,
every architecture trains one tiny epoch, and the walk-forward record carries the baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.ml import TrainParams, plan_walk_forward, run_walk_forward, train_model
from engine.ml.training import class_weights_from, valid_sequence_ends

from test_ml_core import H, NS_MIN, real_arrays


@pytest.fixture(scope="module")
def arrays(es_1m_path):
    return real_arrays(es_1m_path, 20_000)


def _split(X, y, n_train=6000, n_val=1500, seq=1):
    ok = valid_sequence_ends(np.isfinite(X).all(1), seq) & (y >= 0)
    idx = np.flatnonzero(ok)
    return idx[:n_train], idx[n_train + H:n_train + H + n_val]


def test_same_seed_same_weights(arrays):
    ts, X, y, mv = arrays
    tr, va = _split(X, y, n_train=3000, n_val=800)
    p = TrainParams(epochs=2, batch_size=512, seed=11)
    a = train_model(X, y, mv, tr, va, arch="mlp", hparams={"hidden": [16]}, params=p)
    b = train_model(X, y, mv, tr, va, arch="mlp", hparams={"hidden": [16]}, params=p)
    c = train_model(X, y, mv, tr, va, arch="mlp", hparams={"hidden": [16]}, params=TrainParams(epochs=2, batch_size=512, seed=12))
    for (k, va_), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(va_, vb), k
    assert any(not torch.equal(x, z) for x, z in zip(a.model.state_dict().values(), c.model.state_dict().values()))
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]


def test_class_weights_progress_and_moves(arrays):
    ts, X, y, mv = arrays
    tr, va = _split(X, y)
    events = []
    tm = train_model(X, y, mv, tr, va, arch="mlp", hparams={"hidden": [8]},
                     params=TrainParams(epochs=3, batch_size=1024, seed=1), on_progress=events.append)
    counts = np.bincount(y[tr], minlength=3)
    assert np.allclose(tm.class_weights, counts.sum() / (3 * counts))
    ep = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in ep] == [1, 2, 3]
    assert all({"fold", "train_loss", "val_loss", "val_acc"} <= set(e) for e in ep)
    assert events[-1]["event"] == "done"
    # class-conditional moves (ticks) measured on the training split: DOWN < 0 < UP
    assert tm.class_moves["mean"][0] <= -3 and tm.class_moves["mean"][2] >= 3
    assert abs(tm.class_moves["mean"][1]) < 3
    with pytest.raises(ValueError, match="no DOWN"):
        class_weights_from(np.array([1, 2, 2]))
    with pytest.raises(ValueError, match="NaN"):
        train_model(X, y, mv, np.arange(0, 50), va, arch="mlp", params=TrainParams(epochs=1))


def test_early_stopping_restores_best(arrays):
    ts, X, y, mv = arrays
    tr, va = _split(X, y, n_train=1500)
    tm = train_model(X, y, mv, tr, va, arch="mlp", hparams={"hidden": [64, 64], "dropout": 0.0},
                     params=TrainParams(epochs=15, batch_size=128, learning_rate=3e-2, patience=2, seed=2))
    assert tm.stopped_early and len(tm.history) < 15
    best = min(h["val_loss"] for h in tm.history)
    assert tm.best_val_loss == pytest.approx(best)
    assert tm.history[tm.best_epoch - 1]["val_loss"] == pytest.approx(best)


@pytest.mark.parametrize("arch", ["lstm", "hybrid", "transformer"])
def test_sequence_models_train(arrays, arch):
    ts, X, y, mv = arrays
    tr, va = _split(X, y, n_train=1500, n_val=300, seq=8)
    small = {"transformer": {"d_model": 16, "layers": 1, "ff": 32}}.get(arch, {})
    tm = train_model(X, y, mv, tr, va, arch=arch, hparams={"seq_len": 8, **small},
                     params=TrainParams(epochs=1, batch_size=256, seed=0))
    assert np.isfinite(tm.best_val_loss) and tm.scaler.mean.shape == (X.shape[1],)


def test_walk_forward_reports_baselines(arrays):
    ts, X, y, mv = arrays
    usable = np.isfinite(X).all(1) & (y >= 0)
    plan = plan_walk_forward(ts, usable, bar_ns=NS_MIN, lookahead_bars=H)
    events = []
    res = run_walk_forward(X, y, mv, ts, plan, lookahead_ns=H * NS_MIN, hparams={"hidden": [8]},
                           params=TrainParams(epochs=1, batch_size=1024), on_progress=events.append)
    assert len(res.folds) == len(plan.folds) == 3
    assert [e["fold"] for e in events if e["event"] == "fold_done"] == [0, 1, 2]
    for fr in res.folds:
        assert fr.metrics["n"] == len(fr.fold.test_idx)
        assert {"majority", "persistence"} <= set(fr.baselines)
        assert np.allclose(fr.test_probs.sum(1), 1)
    total = sum(len(f.fold.test_idx) for f in res.folds)
    assert res.combined["model"]["n"] == res.combined["persistence"]["n"] == total
    assert 0 < res.combined["model"]["log_loss"] < 5 and 0 < res.combined["prior_log_loss"] < 2


def test_prior_log_loss_baseline(arrays):
    from engine.ml.metrics import baseline_metrics

    ts, X, y, mv = arrays
    yt = y[y >= 0][:1000].astype(np.int64)
    prior = np.bincount(yt, minlength=3) / len(yt)
    b = baseline_metrics(yt, 1, np.ones_like(yt), prior)
    expected = -np.mean(np.log(prior[yt]))
    assert b["prior_log_loss"] == pytest.approx(expected)


def test_a_never_finite_validation_loss_is_refused(arrays):
    # a learning rate of 1e30 blows the weights up in the first steps: every validation loss is
    # NaN/inf, no epoch improves, and there is no best state to restore
    ts, X, y, mv = arrays
    tr, va = _split(X, y, n_train=1000, n_val=300)
    with pytest.raises(ValueError, match="validation loss was never finite"):
        train_model(X, y, mv, tr, va, arch="mlp", hparams={"hidden": [8]},
                    params=TrainParams(epochs=2, batch_size=256, learning_rate=1e30, patience=5, seed=3))


def test_inference_bench_needs_one_timed_run():
    from engine.ml.bench import bench_predictor

    with pytest.raises(ValueError, match="repeats=0"):
        bench_predictor(None, None, repeats=0)
