"""R-FEAT-3: no lookahead. Truncating or changing future bars never changes a past feature row;
higher-timeframe features use only COMPLETED higher-timeframe bars."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.bars import Bars
from engine.features import feature_set_for
from tests.test_features_parity import load_bars

NS = 1_000_000_000
M = 60 * NS


def perturbed(bars: Bars, rows: np.ndarray, seed: int) -> Bars:
    """A copy with rows ``rows`` changed (prices scaled and shifted, volume changed), OHLC
    relations kept."""
    rng = np.random.default_rng(seed)
    o, h, l, c, v = (a.copy() for a in (bars.open, bars.high, bars.low, bars.close, bars.volume))
    f = 1.0 + rng.uniform(-0.01, 0.01, rows.size)
    o[rows] *= f
    c[rows] *= f * (1.0 + rng.uniform(-0.002, 0.002, rows.size))
    h[rows] = np.maximum(np.maximum(o[rows], c[rows]), h[rows] * f) + rng.uniform(0, 2, rows.size)
    l[rows] = np.minimum(np.minimum(o[rows], c[rows]), l[rows] * f) - rng.uniform(0, 2, rows.size)
    if bars.has_volume:
        v[rows] = rng.integers(0, 5000, rows.size).astype(np.float64)
    return Bars(bars.ts, o, h, l, c, v, bars.symbol, bars.bar_ns)


@pytest.fixture(scope="module")
def vol_bars(topstepx_path):
    return load_bars(topstepx_path, M, start=5_000, n=12_000)


@pytest.fixture(scope="module")
def novol_bars(es_1m_path):
    return load_bars(es_1m_path, M, start=200_000, n=12_000)


@pytest.mark.parametrize("which", ["vol", "novol"])
def test_truncation_and_future_perturbation(which, vol_bars, novol_bars):
    bars = vol_bars if which == "vol" else novol_bars
    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    full = fs.batch(bars)
    rng = np.random.default_rng(7)
    cuts = np.unique(np.concatenate([[1, 2, fs.warmup - 1, fs.warmup, fs.warmup + 1],
                                     rng.integers(1, len(bars), 40)]))
    for t in cuts:
        t = int(t)
        head = fs.batch(bars.slice(0, t))
        np.testing.assert_array_equal(head, full[:t], err_msg=f"truncation at {t} changed rows")
    for t in cuts[::4]:
        t = int(t)
        fut = np.arange(t, len(bars))
        X = fs.batch(perturbed(bars, fut, seed=t))
        np.testing.assert_array_equal(X[:t], full[:t], err_msg=f"future bars ≥ {t} leaked")
        if t + 1 < len(bars):  # the perturbation is real: it changes rows from t on
            assert not np.allclose(X[t:], full[t:], equal_nan=True)


def _htf_cols(fs, label):
    return [fs.names.index(f"htf_{label}_{k}") for k in ("trend", "mom", "vol")]


@pytest.mark.parametrize("label,h_ns", [("5m", 5 * M), ("15m", 15 * M)])
def test_htf_only_completed_bars(label, h_ns, novol_bars):
    """Changing the bars of an HTF bucket changes nothing of that timeframe before the base
    bar whose close time reaches the bucket's end; the new value appears exactly there."""
    bars = novol_bars
    fs = feature_set_for(bars.bar_ns, False)
    cols = _htf_cols(fs, label)
    full = fs.batch(bars)
    ts = bars.ts
    B = bars.bar_ns
    hb = h_ns // B
    # complete buckets (all hb bars present) after warm-up
    starts = np.flatnonzero((ts % h_ns == 0) & (np.arange(len(ts)) > fs.warmup))
    starts = [int(i) for i in starts if i + hb < len(ts) and ts[i + hb - 1] == ts[i] + h_ns - B]
    assert len(starts) > 100
    for i0 in starts[:: max(1, len(starts) // 25)]:
        e = i0 + hb - 1  # the base bar with open time T+H-bar: first one allowed to see bucket
        assert ts[e] + B == ts[i0] + h_ns
        # constant inside the bucket (values of the previous completed bucket)...
        seg = full[i0:e, cols]
        assert (seg == seg[0]).all()
        # ...and the new HTF bar shows up exactly at row e
        assert (full[e, cols] != full[e - 1, cols]).any()
        # changing every bar of the bucket except the last leaves rows < e untouched for HTF
        X = fs.batch(perturbed(bars, np.arange(i0, e), seed=i0))
        np.testing.assert_array_equal(X[:e, cols], full[:e, cols])
        # changing the bucket's last bar too changes the HTF value from row e on
        X2 = fs.batch(perturbed(bars, np.arange(i0, e + 1), seed=i0 + 1))
        np.testing.assert_array_equal(X2[:e, cols], full[:e, cols])
        assert (X2[e, cols] != full[e, cols]).any()


def test_htf_bucket_with_missing_last_bar_completes_at_next_bucket(novol_bars):
    """When the bar that would close an HTF bucket is missing, the bucket is known complete
    only at the first bar of a later bucket (whose close time is past the bucket's end)."""
    fs = feature_set_for(M, False)
    bars = novol_bars
    cols = _htf_cols(fs, "15m")
    ts = bars.ts
    i0 = next(int(i) for i in np.flatnonzero(ts % (15 * M) == 0)
              if i > fs.warmup + 50 and i + 20 < len(ts) and ts[i + 15] == ts[i] + 15 * M)
    e = i0 + 14
    keep = np.ones(len(ts), bool)
    keep[e] = False  # drop the 14:59-style last minute of the bucket
    gap = bars.take(keep)
    X = fs.batch(gap)
    full = fs.batch(bars)
    # rows before the dropped bar are identical; at e (now the next bucket's first bar) the
    # completed bucket's value appears, computed with the close of the bar before the gap
    np.testing.assert_array_equal(X[:e, cols], full[:e, cols])
    assert (X[e, cols] != X[e - 1, cols]).any()
    assert (X[e - 1, cols] == full[e - 1, cols]).all()


def test_htf_matches_independent_resample(novol_bars):
    """HTF values equal a pandas computation on completed 15-minute closes, placed at the first
    base bar whose close time reaches the bucket end (an independent implementation)."""
    import pandas as pd

    fs = feature_set_for(M, False)
    bars = novol_bars
    X = fs.batch(bars)
    H = 15 * M
    bucket = bars.ts // H
    s = pd.Series(bars.close, index=bucket)
    closes = s.groupby(level=0).last()
    ema = closes.ewm(span=10, adjust=False).mean()
    trend = closes / ema - 1
    mom = closes / closes.shift(5) - 1
    lr = np.log(closes / closes.shift(1))
    vol = lr.rolling(10).std(ddof=0)
    # availability row of each bucket: the first row with ts + B ≥ bucket end
    end = (closes.index.to_numpy() + 1) * H
    avail = np.searchsorted(bars.ts + bars.bar_ns, end, side="left")
    cols = _htf_cols(fs, "15m")
    ok = 0
    for b in range(12, len(closes) - 1):
        r = avail[b]
        if r >= len(bars):
            break
        r_next = avail[b + 1]
        exp = np.array([trend.iloc[b], mom.iloc[b], vol.iloc[b]])
        # the value holds from its availability row until the next bucket's row
        got = X[r:r_next, cols]
        np.testing.assert_allclose(got, np.broadcast_to(exp, got.shape), rtol=1e-9)
        ok += 1
    assert ok > 500
