"""The formulas of specs/features.md, re-implemented independently with pandas, agree with the
compiled features on real data (parity tests cannot catch a formula that is wrong in both paths,
because both paths share one implementation: these tests can)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.calendar import calendar_for
from engine.features import feature_set_for
from tests.test_features_parity import load_bars

NS = 1_000_000_000
M = 60 * NS


@pytest.fixture(scope="module")
def case(topstepx_path):
    bars = load_bars(topstepx_path, M, start=3_000, n=8_000)
    fs = feature_set_for(M, True)
    X = pd.DataFrame(fs.batch(bars), columns=fs.names)
    df = pd.DataFrame({"o": bars.open, "h": bars.high, "l": bars.low, "c": bars.close,
                       "v": bars.volume})
    return bars, fs, X, df


def close(a, b, w=200, rtol=1e-9, atol=1e-12):
    a = np.asarray(a, float)[w:]
    b = np.asarray(b, float)[w:]
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def test_returns_emas_macd(case):
    _, _, X, df = case
    c = df.c
    for p in (1, 5, 10, 30, 60):
        close(X[f"ret_{p}"], c / c.shift(p) - 1)
    for p in (9, 21, 50, 200):
        close(X[f"ema_dist_{p}"], c / c.ewm(span=p, adjust=False).mean() - 1)
    macd = c.ewm(span=12, adjust=False).mean() - c.ewm(span=26, adjust=False).mean()
    close(X["macd_hist"], (macd - macd.ewm(span=9, adjust=False).mean()) / c)


def test_atr_rsi(case):
    _, _, X, df = case
    pc = df.c.shift(1)
    tr = np.maximum(df.h, pc.fillna(df.h)) - np.minimum(df.l, pc.fillna(df.l))
    atr = np.empty(len(df))
    a = 0.0
    for i, t in enumerate(tr):
        a += (t - a) / min(i + 1, 14)
        atr[i] = a
    close(X["atr_pct_14"], atr / df.c)
    d = df.c.diff()
    g, lo = d.clip(lower=0), (-d).clip(lower=0)
    ag, al = np.empty(len(df)), np.empty(len(df))
    x = y = 0.0
    for i in range(1, len(df)):
        m = min(i, 14)
        x += (g.iloc[i] - x) / m
        y += (lo.iloc[i] - y) / m
        ag[i], al[i] = x, y
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100 - 100 / (1 + ag / al)
    close(X["rsi_14"], (rsi - 50) / 50)


def test_stochastic_and_microstructure(case):
    _, _, X, df = case
    hh, ll = df.h.rolling(14).max(), df.l.rolling(14).min()
    k = ((df.c - ll) / (hh - ll)).where(hh > ll, 0.5)
    close(X["stoch_k_14"], k)
    close(X["stoch_d_3"], k.rolling(3).mean())
    rng = df.h - df.l
    close(X["bar_dir"], np.sign(df.c - df.o))
    close(X["body_ratio"], ((df.c - df.o).abs() / rng).where(rng > 0, 0.0))
    close(X["upper_wick"], ((df.h - np.maximum(df.o, df.c)) / rng).where(rng > 0, 0.0))
    close(X["lower_wick"], ((np.minimum(df.o, df.c) - df.l) / rng).where(rng > 0, 0.0))


def test_volume_features(case):
    _, _, X, df = case
    rng = df.h - df.l
    sv = (df.v * (df.c - df.o) / rng).where(rng > 0, 0.0)
    s30 = df.v.rolling(30).sum()
    close(X["vol_delta_30"], sv.rolling(30).sum() / s30)
    close(X["vol_rel_30"], df.v / (s30 / 30) - 1)
    obv = (np.sign(df.c.diff()).fillna(0) * df.v).cumsum()
    close(X["obv_roc_30"], (obv - obv.shift(30)) / s30, rtol=1e-9, atol=1e-9)


def test_vwap_anchors_and_time(case):
    bars, _, X, df = case
    cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]))
    lab = cal.label(bars.ts)
    t = cal.table
    row = lab.session
    r = np.maximum(row, 0)
    started = (row >= 0) & (t.rth_open[r] >= 0) & (bars.ts >= t.rth_open[r])
    key = pd.Series(np.where(row >= 0, lab.trading_day, -1)).astype(str) + "/" + pd.Series(
        started).astype(str)
    seg = (key != key.shift()).cumsum()
    tp = (df.h + df.l + df.c) / 3
    vwap = (tp * df.v).groupby(seg).cumsum() / df.v.groupby(seg).cumsum()
    close(X["vwap_dist"], df.c / vwap - 1, w=0)
    # resets happen at the Globex open and the RTH open (09:30 New York)
    first = np.flatnonzero((seg != seg.shift()).to_numpy())[1:]
    ny = lab.ny_seconds[first]
    at_open = np.isin(ny, [9 * 3600 + 1800, 18 * 3600])
    after_gap = bars.ts[first] - bars.ts[first - 1] > M
    out = (row[first] < 0) | (row[first - 1] < 0)
    assert (at_open | after_gap | out).all()
    assert (ny == 34200).sum() >= 5 and (ny == 64800).sum() >= 5
    n_in = seg.groupby(seg).cumcount()
    m = np.minimum(n_in, 10)
    lag = vwap.to_numpy()[np.arange(len(df)) - m]
    close(X["vwap_slope_10"], vwap / lag - 1, w=0)
    ang = 2 * np.pi * lab.ny_seconds / 86400
    close(X["tod_sin"], np.sin(ang), w=0, atol=1e-15)
    close(X["tod_cos"], np.cos(ang), w=0, atol=1e-15)
    ref = np.where(t.rth_close[r] >= 0, t.rth_close[r], t.close[r])
    exp = np.where(row >= 0, (ref - (bars.ts + M)) / (390 * 60e9), np.nan)
    np.testing.assert_allclose(X["to_rth_close"], exp, rtol=1e-12)
    # at the last RTH bar of a normal day (15:59 open) the close is exactly 0 minutes away
    last = (lab.ny_seconds == 15 * 3600 + 59 * 60) & lab.is_rth
    assert last.sum() >= 4 and np.allclose(X["to_rth_close"][last], 0.0)
