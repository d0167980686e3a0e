"""FeatureSet API: names, HTF rule, volume handling, manifest, refusals, bounded streaming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.calendar import calendar_for
from engine.data.bars import Bars
from engine.features import (FEATURES_VERSION, FeatureError, FeatureSet, feature_set_for,
                             htf_for)
from tests.test_features_parity import load_bars

NS = 1_000_000_000
M = 60 * NS

BASE_1M = (
    "ret_1", "ret_5", "ret_10", "ret_30", "ret_60",
    "ema_dist_9", "ema_dist_21", "ema_dist_50", "ema_dist_200",
    "twap_dist", "twap_slope_10", "to_rth_close", "tod_sin", "tod_cos",
    "atr_pct_14", "rsi_14", "macd_hist", "stoch_k_14", "stoch_d_3",
    "bar_dir", "body_ratio", "upper_wick", "lower_wick",
    "htf_5m_trend", "htf_5m_mom", "htf_5m_vol", "htf_15m_trend", "htf_15m_mom", "htf_15m_vol",
)


def test_names_fixed_order_and_unique():
    fs = feature_set_for(M, False)
    assert fs.names == BASE_1M
    fv = feature_set_for(M, True)
    assert fv.names == tuple(n.replace("twap", "vwap") for n in BASE_1M) + (
        "vol_delta_30", "obv_roc_30", "vol_rel_30")
    for f in (fs, fv, feature_set_for(NS, True), feature_set_for(5 * M, False)):
        assert len(set(f.names)) == len(f.names)
    s1 = feature_set_for(NS, False)
    assert s1.names[-6:] == ("htf_1m_trend", "htf_1m_mom", "htf_1m_vol",
                             "htf_5m_trend", "htf_5m_mom", "htf_5m_vol")


def test_volume_features_absent_without_volume():
    fs = feature_set_for(M, False)
    assert not any(n.startswith(("vol_", "obv_", "vwap")) for n in fs.names)
    assert fs.to_manifest()["has_volume"] is False


def test_htf_rule():
    assert htf_for(NS) == (M, 5 * M)
    assert htf_for(M) == (5 * M, 15 * M)
    assert htf_for(5 * NS) == (M, 5 * M)
    assert htf_for(30 * NS) == (5 * M, 15 * M)
    assert htf_for(5 * M) == (30 * M, 120 * M)
    for bad in (0, -M, 15 * M, 7 * NS + 1):
        with pytest.raises(FeatureError):
            htf_for(bad)


def test_warmup_values():
    assert feature_set_for(M, False).warmup == 200
    assert feature_set_for(NS, False).warmup == 12 * 300  # 12 five-minute HTF bars


def test_frozen_hashable_equal():
    a, b = feature_set_for(M, True), feature_set_for(M, True)
    assert a == b and hash(a) == hash(b) and a != feature_set_for(M, False)
    with pytest.raises(Exception):
        a.bar_ns = 1  # type: ignore[misc]


def test_manifest_round_trip_and_refusals():
    fs = feature_set_for(M, True)
    d = json.loads(json.dumps(fs.to_manifest()))
    assert d["version"] == FEATURES_VERSION
    assert FeatureSet.from_manifest(d) == fs
    renamed = dict(d, names=[n if n != "rsi_14" else "rsi_norm" for n in d["names"]])
    with pytest.raises(FeatureError, match="rsi_14"):
        FeatureSet.from_manifest(renamed)
    swapped = list(d["names"])
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(FeatureError, match="column 0"):
        FeatureSet.from_manifest(dict(d, names=swapped))
    with pytest.raises(FeatureError, match="version"):
        FeatureSet.from_manifest(dict(d, version="features-v0"))
    with pytest.raises(FeatureError, match="htf_ns"):
        FeatureSet.from_manifest(dict(d, htf_ns=[M, 5 * M]))
    with pytest.raises(FeatureError, match="names"):
        FeatureSet.from_manifest({k: v for k, v in d.items() if k != "names"})
    # a no-volume manifest used with volume bars would keep its own (twap) names
    with pytest.raises(FeatureError):
        FeatureSet.from_manifest(dict(d, has_volume=False))


def test_batch_refusals(es_1m_path, topstepx_path):
    novol = load_bars(es_1m_path, M, n=500)
    with pytest.raises(FeatureError, match="volume"):
        feature_set_for(M, True).batch(novol)
    with pytest.raises(FeatureError, match="bar_ns"):
        feature_set_for(5 * M, False).batch(novol)
    vb = load_bars(topstepx_path, M, n=500)
    v = vb.volume.copy()
    v[123] = np.nan
    with pytest.raises(FeatureError, match="row 123"):
        feature_set_for(M, True).batch(Bars(vb.ts, vb.open, vb.high, vb.low, vb.close, v,
                                            bar_ns=M))
    ts = novol.ts.copy()
    ts[50] = ts[49]
    with pytest.raises(FeatureError, match="row 50"):
        feature_set_for(M, False).batch(Bars(ts, novol.open, novol.high, novol.low,
                                             novol.close, novol.volume, bar_ns=M))
    c = novol.close.copy()
    c[7] = np.nan
    with pytest.raises(FeatureError, match="close.*row 7"):
        feature_set_for(M, False).batch(Bars(novol.ts, novol.open, novol.high, novol.low, c,
                                             novol.volume, bar_ns=M))
    assert feature_set_for(M, False).batch(novol.slice(0, 0)).shape == (0, 29)


def test_stream_refusals_and_bounded_memory(topstepx_path):
    bars = load_bars(topstepx_path, M, n=6000)
    fs = feature_set_for(M, True)
    s = fs.stream()

    def size():
        return sum(a.nbytes for a in (s._ist, s._st, s._rb, s._hr))

    for i in range(1000):
        s.update(bars.ts[i], bars.open[i], bars.high[i], bars.low[i], bars.close[i],
                 bars.volume[i])
    n1 = size()
    before = s._ist.copy()
    with pytest.raises(FeatureError, match="does not follow"):
        s.update(bars.ts[999], 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(FeatureError, match="volume"):
        s.update(bars.ts[1000], bars.open[1000], bars.high[1000], bars.low[1000],
                 bars.close[1000], float("nan"))
    np.testing.assert_array_equal(s._ist, before)  # refused bars leave no trace
    for i in range(1000, 6000):
        s.update(bars.ts[i], bars.open[i], bars.high[i], bars.low[i], bars.close[i],
                 bars.volume[i])
    assert size() == n1 < 16_384 and s.ready and s.n_bars == 6000


def test_stream_over_new_year_synthetic_prices():
    """Stream == batch over a New-Year boundary (holiday sessions) on a random walk."""
    fs = feature_set_for(M, False)
    start = int(np.datetime64("2025-12-28T23:00", "ns").astype(np.int64))
    ts = start + np.arange(4000, dtype=np.int64) * M
    cal = calendar_for(int(ts[0]), int(ts[-1]))
    lab = cal.label(ts)
    ts = ts[lab.in_session][:2500]
    rng = np.random.default_rng(1)
    c = 6000 + np.cumsum(rng.normal(0, 1, len(ts))).round() * 0.25
    o = np.concatenate([[c[0]], c[:-1]])
    h = np.maximum(o, c) + 0.25
    lo = np.minimum(o, c) - 0.25
    bars = Bars(ts, o, h, lo, c, np.full(len(ts), np.nan), bar_ns=M)
    X = fs.batch(bars)
    s = fs.stream()
    S = np.array([s.update(ts[i], o[i], h[i], lo[i], c[i]) for i in range(len(ts))])
    np.testing.assert_allclose(S, X, rtol=1e-9, equal_nan=True)
