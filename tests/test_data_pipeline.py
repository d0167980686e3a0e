"""Loading, resampling, ticks, target and saving on the real files (R-DATA-1, 3, 4, 5)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.calendar import day_number
from engine.config import TargetConfig
from engine.data import (NS, Bars, DataError, class_balance, filter_session, load_bars,
                         load_ticks, make_target, resample, save_bars, session_labels,
                         target_lookahead_bars, ticks_to_bars)


@pytest.fixture(scope="module")
def es1m(es_1m_path):
    return load_bars(es_1m_path)


def test_load_real_1m(es1m):
    assert len(es1m) == 352_976
    assert es1m.bar_ns == 60 * NS and not es1m.has_volume
    assert es1m.ts.dtype == np.int64 and es1m.close.dtype == np.float64
    assert es1m.ts[0] == pd.Timestamp("2024-12-03 00:00", tz="UTC").value
    assert np.isnan(es1m.volume).all()


def test_resample_1m_to_5m_reproduces_shared_file(es1m, es_5m_path):
    five = load_bars(es_5m_path)
    got = resample(es1m, "5m")
    assert got.bar_ns == 5 * 60 * NS and len(got) == len(five) == 70_616
    for col in ("ts", "open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(got, col), getattr(five, col), err_msg=col)
    assert np.isnan(got.volume).all()  # the 1-minute source has no volume: unknown stays unknown


def test_resample_never_crosses_a_trading_day():
    # 15-minute bars on a 1-minute series that runs 16:50 → 18:10 New York (EDT: UTC-4)
    ts = pd.date_range("2025-06-10 20:50", "2025-06-10 22:10", freq="1min", tz="UTC")
    ts = ts[(ts < "2025-06-10 21:00") | (ts >= "2025-06-10 22:00")].as_unit("ns").asi8
    px = np.arange(len(ts), dtype=float) * 0.25 + 6000
    b = Bars(ts, px, px + 0.25, px - 0.25, px, np.ones(len(ts)), "T", 60 * NS)
    out = resample(b, "15m")
    lab = session_labels(out)
    # 16:50-16:59 alone (trading day 06-10), then 18:00, 18:15 ... of the next trading day
    assert pd.Timestamp(out.ts[0], tz="UTC") == pd.Timestamp("2025-06-10 20:45", tz="UTC")
    assert out.volume[0] == 10 and out.close[0] == px[9]
    assert lab.trading_day[0] == day_number(pd.Timestamp("2025-06-10").date())
    assert lab.trading_day[1] == lab.trading_day[0] + 1


def test_resample_refuses_bad_sizes(es1m):
    with pytest.raises(DataError, match="multiple"):
        resample(es1m, "90s")
    with pytest.raises(DataError, match="15m"):
        resample(es1m, "30m")


def test_ticks_to_1s_bars(esm8_trades_path):
    ts, price, size = load_ticks(esm8_trades_path)
    assert len(ts) == 74_907 and np.isnan(size).all()
    bars = ticks_to_bars(ts, price, size, symbol="ESM8")
    assert bars.bar_ns == NS and not bars.has_volume  # prints carry no size → volume unknown
    assert np.all(np.diff(bars.ts) > 0) and np.all(bars.ts % NS == 0)
    # every trade lands in exactly one bar: reproduce one bar by hand
    sec = ts // NS * NS
    k = 100
    m = sec == bars.ts[k]
    assert bars.open[k] == price[m][0] and bars.close[k] == price[m][-1]
    assert bars.high[k] == price[m].max() and bars.low[k] == price[m].min()
    assert len(bars) == len(np.unique(sec))
    with_size = ticks_to_bars(ts[:10], price[:10], np.arange(10.0))
    assert np.nansum(with_size.volume) == 45.0


def test_filter_session_rth_eth(es1m):
    rth = filter_session(es1m, "rth")
    eth = filter_session(es1m, "eth")
    lab = session_labels(es1m)
    assert len(rth) == int(lab.is_rth.sum()) and len(rth) + len(eth) == int(lab.in_session.sum())
    ny_min = session_labels(rth).ny_seconds // 60
    assert ny_min.min() >= 9 * 60 + 30 and ny_min.max() < 16 * 60
    with pytest.raises(DataError):
        filter_session(es1m, "overnight")


def test_target_never_labels_across_sessions_or_gaps(es1m):
    h = target_lookahead_bars(es1m.bar_ns, TargetConfig())
    assert h == 5
    y = make_target(es1m, lookahead_bars=h, threshold_ticks=3, tick_size=0.25)
    assert y.dtype == np.int8 and set(np.unique(y)) == {-1, 0, 1, 2}
    lab = session_labels(es1m)
    idx = np.flatnonzero(y >= 0)
    assert np.all(lab.session[idx + h] == lab.session[idx])
    assert np.all(es1m.ts[idx + h] - es1m.ts[idx] == h * es1m.bar_ns)
    # the last h bars of every session have no label
    last_of_session = np.flatnonzero(np.diff(lab.session) != 0)
    assert np.all(y[last_of_session] == -1)
    # the 2025-11-28 outage gap (02:44 → 13:30 UTC) leaves no label spanning it
    t0 = pd.Timestamp("2025-11-28 02:40", tz="UTC").value
    i = int(np.searchsorted(es1m.ts, t0))
    assert es1m.ts[i + 5] == pd.Timestamp("2025-11-28 13:30", tz="UTC").value  # the hole
    assert (y[i:i + 5] == -1).all() and y[i - 1] >= 0
    # classes follow the rule exactly where labelled
    move = np.round((es1m.close[idx + h] - es1m.close[idx]) / 0.25)
    expect = np.where(move >= 3, 2, np.where(move <= -3, 0, 1))
    np.testing.assert_array_equal(y[idx], expect)
    bal = class_balance(y)
    assert bal["labelled"] == idx.size and abs(sum(bal["fractions"].values()) - 1) < 1e-12


def test_lookahead_from_config():
    assert target_lookahead_bars(NS, TargetConfig()) == 30
    assert target_lookahead_bars(5 * NS, TargetConfig()) == 6
    assert target_lookahead_bars(5 * 60 * NS, TargetConfig(lookahead_minutes=15)) == 3
    with pytest.raises(DataError, match="lookahead_s"):
        target_lookahead_bars(7 * NS, TargetConfig())


# ------------------------------------------------------------------ bad input
def _small(es1m, n=50):
    s = es1m.slice(1000, 1000 + n)
    return Bars(s.ts.copy(), s.open.copy(), s.high.copy(), s.low.copy(), s.close.copy(),
                s.volume.copy(), s.symbol, s.bar_ns, "mem.parquet")


def test_truncated_parquet_is_a_clear_error(tmp_path, es_5m_path):
    raw = Path(es_5m_path).read_bytes()
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cut.parquet.*parquet"):
        load_bars(bad)


def test_nan_price_refused_by_resample_and_save(es1m, tmp_path):
    b = _small(es1m)
    b.close[17] = np.nan
    out = tmp_path / "o.parquet"
    with pytest.raises(DataError, match=r"mem.parquet, row 17, column 'close'"):
        resample(b, "5m")
    with pytest.raises(DataError, match=r"row 17"):
        save_bars(b, out)
    with pytest.raises(DataError, match=r"row 17"):
        make_target(b, lookahead_bars=5, threshold_ticks=3, tick_size=0.25)
    assert list(tmp_path.iterdir()) == []


def test_unsorted_refused_nothing_written(es1m, tmp_path):
    b = _small(es1m)
    b.ts[[20, 21]] = b.ts[[21, 20]]
    with pytest.raises(DataError, match=r"row 21, column 'ts'.*unsorted"):
        save_bars(b, tmp_path / "o.parquet")
    with pytest.raises(DataError, match=r"row 21"):
        resample(b, "5m")
    assert list(tmp_path.iterdir()) == []


def test_nan_in_file_reported_with_row(tmp_path, es1m):
    b = _small(es1m)
    df = b.to_frame()
    df.loc[7, "high"] = np.nan
    p = tmp_path / "nan.csv"
    df.to_csv(p, index=False)
    loaded = load_bars(p)
    with pytest.raises(DataError, match=r"nan.csv, row 7, column 'high'"):
        resample(loaded, "5m")


def test_save_roundtrip_atomic(es1m, tmp_path):
    b = _small(es1m, 500)
    p = save_bars(b, tmp_path / "x.parquet")
    back = load_bars(p)
    for col in ("ts", "open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(back, col), getattr(b, col))
    assert back.bar_ns == b.bar_ns and [f.name for f in tmp_path.iterdir()] == ["x.parquet"]


def test_memory_estimate_refuses(es_1m_path):
    with pytest.raises(DataError, match="GiB"):
        load_bars(es_1m_path, max_memory_bytes=1_000_000)


def test_naive_times_refused_unless_zone_given(tmp_path, es1m):
    df = _small(es1m).to_frame()
    df["ts_event"] = df.ts_event.dt.tz_convert("America/New_York").dt.tz_localize(None)
    p = tmp_path / "naive.csv"
    df.to_csv(p, index=False)
    with pytest.raises(DataError, match="timezone"):
        load_bars(p)
    got = load_bars(p, tz="America/New_York")
    np.testing.assert_array_equal(got.ts, _small(es1m).ts)


def test_multi_contract_refused_or_split(tmp_path, es1m):
    b = _small(es1m, 200)
    df = b.to_frame()
    two = pd.concat([df.assign(symbol="ESH5", volume=100.0),
                     df.assign(symbol="ESM5", volume=5.0, close=df.close + 40)])
    p = tmp_path / "two.parquet"
    two.to_parquet(p)
    with pytest.raises(DataError, match="2 contracts.*front-month"):
        load_bars(p)
    got = load_bars(p, multi_contract="front-month")
    assert len(got) == 200 and "ESH5" in got.symbol
    np.testing.assert_array_equal(got.close, b.close)


def test_dbn_ohlcv_files(dbn_dir):
    for schema, ns in (("1s", NS), ("1m", 60 * NS), ("1h", 3600 * NS), ("1d", 86_400 * NS)):
        b = load_bars(dbn_dir / f"test_data.ohlcv-{schema}.dbn.zst")
        assert b.bar_ns == ns and b.symbol == "ESH1" and b.has_volume
        assert b.ts[0] == pd.Timestamp("2020-12-28", tz="UTC").value
        assert 3000 < b.close[0] < 4000  # prices in index points, not fixed-point integers
    with pytest.raises(DataError, match="no OHLCV"):
        load_bars(dbn_dir / "test_data.mbo.dbn.zst")
