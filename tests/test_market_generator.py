"""The embedded demo market generator against the real ES 1-minute file's statistics."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from engine.calendar import calendar_for
from engine.market import GeneratorError, generate_bars

NS = 1_000_000_000


def _stats(ts: np.ndarray, high, low, close, bar_ns: int = 60 * NS) -> dict:
    cal = calendar_for(int(ts[0]), int(ts[-1]))
    lab = cal.label(ts)
    r = np.diff(np.log(close))
    contig = np.diff(ts) == bar_ns
    rth = lab.is_rth[1:] & lab.is_rth[:-1] & contig
    eth = lab.in_session[1:] & ~lab.is_rth[1:] & contig
    rng = (high - low) / 0.25
    return {
        "rth_abs_ret_bp": float(np.median(np.abs(r[rth])) * 1e4),
        "eth_abs_ret_bp": float(np.median(np.abs(r[eth])) * 1e4),
        "std_ratio": float(r[rth].std() / r[eth].std()),
        "rth_range_ticks": float(np.median(rng[lab.is_rth])),
        "eth_range_ticks": float(np.median(rng[lab.in_session & ~lab.is_rth])),
    }


@pytest.fixture(scope="module")
def real_stats(es_1m_path) -> dict:
    df = pd.read_parquet(es_1m_path, columns=["ts_event", "high", "low", "close"])
    ts = df["ts_event"].dt.as_unit("ns").astype("int64").to_numpy()
    return _stats(ts, df.high.to_numpy(), df.low.to_numpy(), df.close.to_numpy())


@pytest.fixture(scope="module")
def half_year():
    return generate_bars(date(2025, 1, 2), date(2025, 6, 30), seed=11)


def test_prices_on_grid_and_ohlc_relations(half_year):
    b = half_year
    for col in (b.open, b.high, b.low, b.close):
        assert np.all(np.abs(col * 4 - np.round(col * 4)) < 1e-9)
    assert np.all(b.low <= np.minimum(b.open, b.close))
    assert np.all(b.high >= np.maximum(b.open, b.close))
    assert np.all(b.volume >= 1) and np.all(b.volume == np.round(b.volume))
    assert b.symbol == "MES" and b.bar_ns == 60 * NS and b.has_volume


def test_only_in_session_timestamps(half_year):
    ts = half_year.ts
    assert ts.dtype == np.int64 and np.all(np.diff(ts) > 0)
    assert np.all(ts % (60 * NS) == 0)
    lab = calendar_for(int(ts[0]), int(ts[-1])).label(ts)
    assert lab.in_session.all()
    # no bar in the daily 17:00-18:00 New York halt, none on a Saturday (NY date)
    ny_sec = lab.ny_seconds
    assert not np.any((ny_sec >= 17 * 3600) & (ny_sec < 18 * 3600))
    ny_dates = pd.to_datetime(ts, utc=True).tz_convert("America/New_York")
    assert not np.any(ny_dates.day_of_week == 5)
    # exactly the exchange's trading days appear, each from its open to its close
    cal = calendar_for(int(ts[0]), int(ts[-1]))
    want = [(d - date(1970, 1, 1)).days for d in cal.trading_days(date(2025, 1, 2), date(2025, 6, 30))]
    assert sorted(set(lab.trading_day.tolist())) == want
    t = cal.table
    per_day = np.bincount(lab.session - lab.session.min())
    rows = np.arange(lab.session.min(), lab.session.max() + 1)
    assert np.array_equal(per_day, (t.close[rows] - t.open[rows]) // (60 * NS))
    row = np.searchsorted(t.day, (date(2025, 1, 2) - date(1970, 1, 1)).days)
    assert ts[0] == t.open[row]


def test_early_close_has_no_bars_after_the_close():
    # 2025-11-28 (day after Thanksgiving): Globex closes early at 13:15 New York
    b = generate_bars(date(2025, 11, 28), date(2025, 11, 28), seed=3)
    cal = calendar_for(int(b.ts[0]))
    row = cal.session_row(date(2025, 11, 28))
    assert cal.table.early_close[row]
    assert b.ts[-1] == cal.table.close[row] - 60 * NS
    assert b.ts[0] == cal.table.open[row]


def test_deterministic_per_seed():
    a = generate_bars(date(2025, 3, 3), date(2025, 3, 7), seed=5)
    b = generate_bars(date(2025, 3, 3), date(2025, 3, 7), seed=5)
    c = generate_bars(date(2025, 3, 3), date(2025, 3, 7), seed=6)
    for col in ("ts", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    assert np.array_equal(a.ts, c.ts)
    assert not np.array_equal(a.close, c.close)


def test_volatility_matches_real_es_file(half_year, real_stats):
    b = half_year
    gen = _stats(b.ts, b.high, b.low, b.close)
    # median RTH 1-minute range and absolute return within ±25 % of the real file's figures
    assert gen["rth_range_ticks"] == pytest.approx(real_stats["rth_range_ticks"], rel=0.25)
    assert gen["rth_abs_ret_bp"] == pytest.approx(real_stats["rth_abs_ret_bp"], rel=0.25)
    assert gen["eth_range_ticks"] == pytest.approx(real_stats["eth_range_ticks"], rel=0.35)
    # RTH is clearly busier than overnight, as in the real file (~2×)
    assert gen["std_ratio"] == pytest.approx(real_stats["std_ratio"], rel=0.3)
    assert gen["std_ratio"] > 1.4


def test_intraday_u_shape_and_volume(half_year):
    b = half_year
    lab = calendar_for(int(b.ts[0]), int(b.ts[-1])).label(b.ts)
    rng = b.high - b.low
    sec = lab.ny_seconds
    open_30 = lab.is_rth & (sec < 10 * 3600)
    midday = lab.is_rth & (sec >= 12 * 3600) & (sec < 14 * 3600)
    close_30 = lab.is_rth & (sec >= 15 * 3600 + 1800)
    night = ~lab.is_rth & (sec < 4 * 3600)
    assert rng[open_30].mean() > 1.3 * rng[midday].mean()
    assert rng[close_30].mean() > 1.1 * rng[midday].mean()
    assert rng[midday].mean() > 1.5 * rng[night].mean()
    assert np.median(b.volume[open_30]) > 1.5 * np.median(b.volume[midday])
    assert np.median(b.volume[midday]) > 5 * np.median(b.volume[night])


def test_volatility_clusters(half_year):
    b = half_year
    lab = calendar_for(int(b.ts[0]), int(b.ts[-1])).label(b.ts)
    r = np.diff(np.log(b.close))
    mid = lab.is_rth[1:] & (lab.ny_seconds[1:] >= 11 * 3600) & (lab.ny_seconds[1:] < 15 * 3600)
    a = np.abs(r[mid])
    a = a - a.mean()
    acf5 = float((a[5:] * a[:-5]).mean() / a.var())
    assert acf5 > 0.1  # i.i.d. returns would give ~0


def test_one_second_bars():
    b = generate_bars(date(2025, 3, 4), date(2025, 3, 4), bar_ns=NS, seed=2)
    assert b.bar_ns == NS and np.all(np.diff(b.ts) > 0) and np.all(b.ts % NS == 0)
    assert len(b) == 23 * 3600
    assert np.all(np.abs(b.close * 4 - np.round(b.close * 4)) < 1e-9)
    lab = calendar_for(int(b.ts[0])).label(b.ts)
    rng = (b.high - b.low)[lab.is_rth]
    assert 0 < np.median(rng) / 0.25 <= 4


def test_refusals():
    with pytest.raises(GeneratorError, match="bar_ns"):
        generate_bars(date(2025, 3, 3), date(2025, 3, 4), bar_ns=5 * NS)
    with pytest.raises(GeneratorError, match="before"):
        generate_bars(date(2025, 3, 4), date(2025, 3, 3))
    with pytest.raises(GeneratorError, match="no CME trading day"):
        generate_bars(date(2025, 3, 8), date(2025, 3, 8))  # a Saturday
    with pytest.raises(GeneratorError, match="start_price"):
        generate_bars(date(2025, 3, 3), date(2025, 3, 4), start_price=-1.0)
