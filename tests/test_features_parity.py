"""R-FEAT-2: streaming == batch for every feature, on the real data files (relative 1e-9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data.bars import Bars
from engine.features import FeatureSet, feature_set_for

NS = 1_000_000_000


def load_bars(path, bar_ns: int, start: int = 0, n: int | None = None) -> Bars:
    """Rows ``start:start+n`` of a real parquet file as :class:`Bars` (test-local loader)."""
    df = pd.read_parquet(path)
    df = df.iloc[start: None if n is None else start + n]
    ts = df["ts_event"].dt.as_unit("ns").astype("int64").to_numpy()
    return Bars(
        ts, df["open"].to_numpy(np.float64), df["high"].to_numpy(np.float64),
        df["low"].to_numpy(np.float64), df["close"].to_numpy(np.float64),
        df["volume"].to_numpy(np.float64), symbol="ES", bar_ns=bar_ns, source=str(path),
    )


def stream_all(fs: FeatureSet, bars: Bars) -> np.ndarray:
    s = fs.stream()
    out = np.empty((len(bars), len(fs.names)))
    ready_at = None
    for i in range(len(bars)):
        out[i] = s.update(int(bars.ts[i]), bars.open[i], bars.high[i], bars.low[i],
                          bars.close[i], bars.volume[i])
        if ready_at is None and s.ready:
            ready_at = i
    assert ready_at == fs.warmup - 1
    return out


def assert_parity(fs: FeatureSet, bars: Bars) -> np.ndarray:
    X = fs.batch(bars)
    S = stream_all(fs, bars)
    assert X.shape == S.shape == (len(bars), len(fs.names))
    # same NaN pattern everywhere, same values (relative 1e-9) for every feature
    np.testing.assert_array_equal(np.isnan(X), np.isnan(S))
    w = fs.warmup - 1
    for j, name in enumerate(fs.names):
        np.testing.assert_allclose(S[w:, j], X[w:, j], rtol=1e-9, atol=0, equal_nan=True,
                                   err_msg=f"feature {name!r} differs between stream and batch")
    # after warm-up every feature is finite (to_rth_close only undefined outside a session)
    post = X[w:]
    bad = ~np.isfinite(post)
    bad[:, fs.names.index("to_rth_close")] = False
    assert not bad.any(), [fs.names[j] for j in np.flatnonzero(bad.any(0))]
    # no feature is a constant (catches a hard-coded value, the old codebase's macd bug)
    for j, name in enumerate(fs.names):
        col = post[:, j][np.isfinite(post[:, j])]
        assert np.unique(col).size > 2, f"feature {name!r} is (nearly) constant on real data"
    return X


def test_parity_es_1m_no_volume(es_1m_path):
    # 30k bars from mid-file: crosses weekends, holidays, a DST change and a data hole
    bars = load_bars(es_1m_path, 60 * NS, start=95_000, n=30_000)
    assert not bars.has_volume
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    assert fs.htf_ns == (300 * NS, 900 * NS)
    X = assert_parity(fs, bars)
    assert "twap_dist" in fs.names and "vwap_dist" not in fs.names
    assert X.shape[1] == 29


def test_parity_es_5m_with_volume(es_5m_path):
    bars = load_bars(es_5m_path, 300 * NS, start=20_000, n=15_000)
    assert bars.has_volume
    fs = feature_set_for(bars.bar_ns, True)
    assert fs.htf_ns == (1800 * NS, 7200 * NS)
    assert_parity(fs, bars)
    assert fs.names[-3:] == ("vol_delta_30", "obv_roc_30", "vol_rel_30")


def test_parity_topstepx_1m_with_volume(topstepx_path):
    bars = load_bars(topstepx_path, 60 * NS, start=0, n=25_000)
    assert bars.has_volume
    fs = feature_set_for(bars.bar_ns, True)
    assert_parity(fs, bars)
    assert "vwap_dist" in fs.names


def test_no_volume_set_on_volume_data_ignores_volume(topstepx_path):
    """A model trained without volume can run on volume data: the volume is ignored, the
    values equal those of the same bars with the volume removed."""
    bars = load_bars(topstepx_path, 60 * NS, start=1000, n=3000)
    fs = feature_set_for(bars.bar_ns, False)
    novol = Bars(bars.ts, bars.open, bars.high, bars.low, bars.close,
                 np.full(len(bars), np.nan), bars.symbol, bars.bar_ns)
    np.testing.assert_array_equal(fs.batch(bars), fs.batch(novol))
    np.testing.assert_array_equal(stream_all(fs, bars), fs.batch(novol))
