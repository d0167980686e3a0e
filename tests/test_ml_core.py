"""engine.ml on arrays: model shapes, scaler, metrics, the persistence baseline, purged
walk-forward windows. Inputs are simple features computed from real ES closes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from engine.ml import build_model, plan_walk_forward, resolve_hparams
from engine.ml.metrics import classification_metrics, log_loss, majority_class, persistence_predictions
from engine.ml.scaler import StandardScaler

NS_MIN = 60_000_000_000
H = 5


def real_arrays(path, n=None):
    df = pd.read_parquet(path, columns=["ts_event", "high", "low", "close"])
    if n:
        df = df.iloc[:n]
    ts = pd.DatetimeIndex(df["ts_event"]).as_unit("ns").asi8
    c = df["close"].to_numpy(float)
    m = len(c)

    def ret(k):
        r = np.full(m, np.nan)
        r[k:] = np.log(c[k:] / c[:-k])
        return r

    X = np.column_stack([ret(1), ret(5), ret(15), (df["high"] - df["low"]).to_numpy() / c])
    move = np.full(m, np.nan)
    move[:-H] = np.round((c[H:] - c[:-H]) / 0.25)
    contiguous = np.zeros(m, bool)
    contiguous[:-H] = (ts[H:] - ts[:-H]) == H * NS_MIN
    move[~contiguous] = np.nan
    y = np.where(np.isnan(move), -1, np.where(move >= 3, 2, np.where(move <= -3, 0, 1))).astype(np.int8)
    return ts, X, y, move


@pytest.mark.parametrize("arch", ["mlp", "lstm", "hybrid", "transformer"])
def test_models_emit_three_logits(arch):
    hp = resolve_hparams(arch, {"seq_len": 8} if arch != "mlp" else None)
    model = build_model(arch, 6, hp).eval()
    x = torch.randn(5, 8, 6) if arch != "mlp" else torch.randn(5, 6)
    out = model(x)
    assert out.shape == (5, 3)
    assert torch.isfinite(out).all()


def test_unknown_arch_and_hparam_refused():
    with pytest.raises(ValueError, match="unknown architecture 'cnn'"):
        resolve_hparams("cnn")
    with pytest.raises(ValueError, match="unknown hyper-parameter 'width'"):
        resolve_hparams("mlp", {"width": 3})


def test_scaler_fits_train_only_and_roundtrips(es_1m_path):
    ts, X, y, _ = real_arrays(es_1m_path, 5000)
    rows = np.flatnonzero(np.isfinite(X).all(1))
    sc = StandardScaler.fit(X[rows[:2000]])
    z = sc.transform(X[rows[:2000]])
    assert np.allclose(z.mean(0), 0, atol=1e-4) and np.allclose(z.std(0), 1, atol=1e-3)
    later = sc.transform(X[rows[3000:]])
    assert not np.allclose(later.mean(0), 0, atol=1e-4)  # fitted on the first rows only
    back = StandardScaler.from_manifest(sc.to_manifest(), X.shape[1])
    assert np.array_equal(back.mean, sc.mean) and np.array_equal(back.std, sc.std)
    with pytest.raises(ValueError, match="NaN"):
        StandardScaler.fit(X[:100])            # warm-up NaN rows
    with pytest.raises(ValueError, match="scaler missing"):
        StandardScaler.from_manifest({}, X.shape[1])


def test_metrics_by_hand():
    yt = np.array([0, 0, 1, 2, 2, 2])
    yp = np.array([0, 1, 1, 2, 2, 0])
    m = classification_metrics(yt, yp)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m["per_class"]["DOWN"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["UP"]["recall"] == pytest.approx(2 / 3)
    p = np.full((2, 3), 1 / 3)
    assert log_loss(np.array([0, 2]), p) == pytest.approx(np.log(3))
    assert majority_class(np.array([1, 2, 2, 0])) == 2


def test_persistence_uses_only_known_labels():
    ts = np.arange(10, dtype=np.int64) * NS_MIN
    y = np.array([2, 0, 1, 2, 0, 0, 1, 2, -1, -1], dtype=np.int8)
    pred = persistence_predictions(ts, y, 3 * NS_MIN, fallback=1)
    # label of bar s is known at bar s+3: at t=3 the latest known label is y[0]
    assert pred[:3].tolist() == [1, 1, 1]          # nothing known yet → fallback
    assert pred[3] == y[0] and pred[4] == y[1] and pred[9] == y[6]
    # never the label of t-1 (which would be lookahead)
    assert pred[5] != y[4] or y[4] == y[2]


def test_walk_forward_windows_purged(es_1m_path):
    ts, X, y, _ = real_arrays(es_1m_path)
    usable = np.isfinite(X).all(1) & (y >= 0)
    plan = plan_walk_forward(ts, usable, bar_ns=NS_MIN, lookahead_bars=H)
    assert not plan.scaled and len(plan.folds) == 5      # 12.5 months → 5 folds of 6/1/1
    for f in plan.folds:
        for name, w, idx in (("train", f.train, f.train_idx), ("val", f.val, f.val_idx), ("test", f.test, f.test_idx)):
            assert (ts[idx] >= w.start).all() and (ts[idx] < w.end).all()
            # purge: every kept label horizon ends inside its own window
            assert (ts[idx] + H * NS_MIN < w.end).all(), name
            assert usable[idx].all()
        assert (ts[f.val_idx] >= f.val.start + H * NS_MIN).all()       # embargo
        assert (ts[f.test_idx] >= f.test.start + H * NS_MIN).all()
        assert f.train.end == f.val.start and f.val.end == f.test.start
        assert ts[f.train_idx].max() + H * NS_MIN < ts[f.val_idx].min()
        assert ts[f.val_idx].max() + H * NS_MIN < ts[f.test_idx].min()
        assert sum(p["label_overlap"] for p in f.purged.values()) > 0   # something was purged
    assert plan.folds[-1].test.end == ts[-1] + NS_MIN
    # rolling by one month
    assert plan.folds[1].test.start == plan.folds[0].test.end


def test_walk_forward_scales_short_data(es_1m_path):
    ts, X, y, _ = real_arrays(es_1m_path, 40_000)
    usable = np.isfinite(X).all(1) & (y >= 0)
    plan = plan_walk_forward(ts, usable, bar_ns=NS_MIN, lookahead_bars=H)
    assert plan.scaled and plan.lengths["unit"] == "days" and len(plan.folds) == 3
    assert "scaled" in plan.note
    with pytest.raises(ValueError, match="cannot hold one fold"):
        plan_walk_forward(ts[:3], usable[:3], bar_ns=NS_MIN, lookahead_bars=H)
