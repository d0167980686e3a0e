"""Checkpoints and the Predictor on real ES bars: fresh-process reload gives identical
probabilities; renamed/reordered features, a removed scaler, one changed byte, another bar size
are refused with a message naming the difference; numpy MLP equals torch; batch equals stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import Settings
from engine.data import load_bars
from engine.features import FeatureSet, feature_set_for
from engine.ml import CheckpointError, Predictor, TrainParams, load_checkpoint
from engine.ml.pipeline import train_from_bars

ROOT = Path(__file__).resolve().parents[1]
N_BARS = 40_000


@pytest.fixture(scope="module")
def bars(es_1m_path):
    b = load_bars(es_1m_path)
    return b.slice(len(b) - N_BARS, len(b))


@pytest.fixture(scope="module")
def trained(bars, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    s = Settings()
    rep = train_from_bars(bars, out_dir=out, arch="mlp", walk_forward=False,
                          params=TrainParams(epochs=2, batch_size=2048, seed=3),
                          training_cfg=s.training, target_cfg=s.target, tick_size=0.25,
                          hparams={"hidden": [16, 8]}, data_path="es_1m_tail", name="m")
    return rep


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _rewrite_body(path: Path, fn) -> None:
    """Edit the manifest body AND recompute its checksum (a forged but self-consistent manifest)."""
    import hashlib

    from engine.ml.checkpoint import canonical_json

    doc = json.loads((path / "manifest.json").read_text())
    fn(doc["body"])
    doc["checksums"]["body_sha256"] = hashlib.sha256(canonical_json(doc["body"])).hexdigest()
    (path / "manifest.json").write_text(json.dumps(doc))


def test_manifest_contents(trained, bars):
    doc = json.loads((trained.checkpoint / "manifest.json").read_text())
    b = doc["body"]
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    assert b["feature_names"] == list(fs.names) and b["feature_set"] == fs.to_manifest()
    assert b["bar_ns"] == 60_000_000_000 and b["target"]["lookahead_bars"] == 5
    assert b["target"]["threshold_ticks"] == 3
    assert len(b["scaler"]["mean"]) == len(fs.names)
    assert b["training"]["data_sha256"] and b["training"]["volume_features"].startswith("dropped")
    assert b["package_version"] and set(doc["checksums"]) == {"weights_sha256", "body_sha256"}
    assert "combined" in b["metrics"] and b["metrics"]["folds"][0]["baselines"]["persistence"]["accuracy"] > 0
    assert not list(trained.checkpoint.parent.glob(".m.tmp-*"))   # atomic write left no temp dir


def test_fresh_process_reload_identical(trained, bars, tmp_path):
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    pred = Predictor.load(trained.checkpoint, fs)
    X = fs.batch(bars)[-3000:]
    np.save(tmp_path / "x.npy", X)
    here = pred.predict_batch(X).probs
    code = (
        "import numpy as np, sys\n"
        "from engine.features import feature_set_for\n"
        "from engine.ml import Predictor\n"
        f"p = Predictor.load({str(trained.checkpoint)!r}, feature_set_for(60_000_000_000, False))\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, p.predict_batch(np.load({str(tmp_path / 'x.npy')!r})).probs)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
    there = np.load(tmp_path / "p.npy")
    valid = np.isfinite(here).all(1)
    assert valid.sum() > 2500
    assert np.array_equal(np.isfinite(there).all(1), valid)
    assert np.array_equal(here[valid], there[valid])


def test_renamed_feature_refused(trained, bars, tmp_path):
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    ck = _copy(trained.checkpoint, tmp_path / "renamed")

    def rename(body):
        body["feature_names"][3] = "ret_31"
        body["feature_set"]["names"][3] = "ret_31"
    _rewrite_body(ck, rename)
    with pytest.raises(CheckpointError, match=r"feature names differ.*'ret_31'"):
        Predictor.load(ck, fs)


def test_reordered_feature_refused(trained, bars, tmp_path):
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    ck = _copy(trained.checkpoint, tmp_path / "reordered")

    def swap(body):
        for names in (body["feature_names"], body["feature_set"]["names"]):
            names[0], names[1] = names[1], names[0]
    _rewrite_body(ck, swap)
    with pytest.raises(CheckpointError, match="different order: position 0"):
        Predictor.load(ck, fs)


def test_removed_scaler_refused(trained, bars, tmp_path):
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    ck = _copy(trained.checkpoint, tmp_path / "noscaler")
    _rewrite_body(ck, lambda body: body.pop("scaler"))
    with pytest.raises(CheckpointError, match="scaler missing"):
        Predictor.load(ck, fs)
    with pytest.raises(CheckpointError, match="scaler missing"):
        load_checkpoint(ck)


def test_changed_byte_refused(trained, bars, tmp_path):
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    ck = _copy(trained.checkpoint, tmp_path / "wbyte")
    w = ck / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights checksum mismatch"):
        Predictor.load(ck, fs)
    ck2 = _copy(trained.checkpoint, tmp_path / "mbyte")
    m = ck2 / "manifest.json"
    text = m.read_text()
    i = text.index('"threshold_ticks": 3')
    m.write_text(text[:i] + '"threshold_ticks": 4' + text[i + len('"threshold_ticks": 3'):])
    with pytest.raises(CheckpointError, match="manifest body checksum mismatch"):
        load_checkpoint(ck2)


def test_other_bar_size_and_volume_refused(trained):
    with pytest.raises(CheckpointError, match="bar size differs"):
        Predictor.load(trained.checkpoint, feature_set_for(300_000_000_000, False))
    with pytest.raises(CheckpointError, match="feature names differ"):
        Predictor.load(trained.checkpoint, feature_set_for(60_000_000_000, True))
    with pytest.raises(CheckpointError, match="running feature set"):
        Predictor.load(trained.checkpoint, None)


def test_numpy_mlp_equals_torch_and_stream_equals_batch(trained, bars):
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    pred = Predictor.load(trained.checkpoint, fs)
    X = fs.batch(bars)
    bp = pred.predict_batch(X, ts=bars.ts)
    ok = bp.valid
    assert not ok[: fs.warmup - 1].any() and ok.sum() > 0.9 * len(X)
    with torch.inference_mode():
        xs = torch.from_numpy(pred.checkpoint.scaler.transform(X[ok]))
        ref = torch.softmax(pred.model(xs) / pred.checkpoint.temperature, dim=1).double().numpy()  # calibrated
    assert np.abs(bp.probs[ok] - ref).max() < 1e-6
    assert np.array_equal(bp.direction[ok], ref.argmax(1) - 1)
    # streaming features + model, bar by bar, equals the batch over the same bars
    sub = bars.slice(len(bars) - 600 - fs.warmup, len(bars))
    sp = pred.predict_batch(fs.batch(sub), ts=sub.ts)
    pred.reset()
    recs = [pred.update_bar(int(sub.ts[i]), sub.open[i], sub.high[i], sub.low[i], sub.close[i],
                            sub.volume[i]) for i in range(len(sub))]
    assert sum(r is not None for r in recs) == int(sp.valid.sum()) > 550
    for i, r in enumerate(recs):
        if not sp.valid[i]:
            assert r is None
            continue
        assert r.ts_ns == sub.ts[i] and r.latency_ns > 0
        assert np.allclose(r.probs, sp.probs[i], rtol=0, atol=1e-6)
        assert r.direction == sp.direction[i]
        assert abs(r.expected_move_ticks - sp.expected_move_ticks[i]) < 1e-5
        assert r.volatility_ticks > 0
    # NaN row → no prediction
    assert pred.predict_one(np.full(len(fs.names), np.nan)) is None
    with pytest.raises(ValueError, match="expects"):
        pred.predict_batch(X[:, :-1])


def test_feature_manifest_roundtrip_used_by_model_cli(trained):
    body = json.loads((trained.checkpoint / "manifest.json").read_text())["body"]
    fs = FeatureSet.from_manifest(body["feature_set"])
    assert load_checkpoint(trained.checkpoint, expected_feature_set=fs).arch == "mlp"


def test_sequence_predictor_stream_equals_batch(bars, tmp_path):
    s = Settings()
    sub = bars.slice(len(bars) - 20_000, len(bars))
    rep = train_from_bars(sub, out_dir=tmp_path, arch="lstm", walk_forward=False,
                          params=TrainParams(epochs=1, batch_size=2048, seed=5),
                          training_cfg=s.training, target_cfg=s.target, tick_size=0.25,
                          hparams={"seq_len": 6, "hidden": 8}, name="lstm")
    fs = feature_set_for(sub.bar_ns, sub.has_volume)
    pred = Predictor.load(rep.checkpoint, fs)
    tail = sub.slice(len(sub) - 300 - fs.warmup, len(sub))
    X = fs.batch(tail)
    bp = pred.predict_batch(X)
    first = int(np.flatnonzero(np.isfinite(X).all(1))[0])
    assert not bp.valid[: first + 5].any() and bp.valid[first + 5]   # a full window of 6 rows needed
    pred.reset()
    for i in range(len(X)):
        r = pred.update(X[i], ts_ns=int(tail.ts[i]))
        assert (r is not None) == bool(bp.valid[i]), i
        if r is not None:
            assert np.allclose(r.probs, bp.probs[i], rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="window"):
        pred.predict_one(X[-1])
