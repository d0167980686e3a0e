"""The validation gate in front of backtest / train / run replay / fake-gateway, on small files
the tests write (never committed data), plus the validator checks it relies on."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from engine.data import Bars, validate
from engine.data.errors import DataError
from engine.data.gate import DataRefused, check_bars
from engine.market import generate_bars
from mes_console.cli import app

runner = CliRunner()
NS = 1_000_000_000


def _write(path, ts, o, h, l, c, v=None, symbol=None):
    cols = {"ts_event": pa.array(np.asarray(ts, np.int64), pa.int64()).cast(
        pa.timestamp("ns", tz="UTC")), "open": o, "high": h, "low": l, "close": c}
    if v is not None:
        cols["volume"] = v
    if symbol is not None:
        cols["symbol"] = symbol
    pq.write_table(pa.table(cols), path)
    return path


def _write_bars(path, b: Bars):
    return _write(path, b.ts, b.open, b.high, b.low, b.close, b.volume)


@pytest.fixture(scope="module")
def two_days():
    return generate_bars(date(2025, 11, 3), date(2025, 11, 4), seed=3)


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(r):
    err = r.stderr.strip()
    assert "Traceback" not in r.output and err.startswith("error:"), r.output
    return err


# --------------------------------------------------------------------------- always refused
def test_backtest_strict_on_ohlc_violations_exits_2_and_writes_nothing(tmp_path, two_days):
    h = two_days.high.copy()
    bad = [100, 500, 900]
    h[bad] = np.minimum(two_days.open[bad], two_days.close[bad]) - 1.0  # high below the body
    f = _write(tmp_path / "ohlc.parquet", two_days.ts, two_days.open, h, two_days.low,
               two_days.close, two_days.volume)
    out = tmp_path / "report"
    r = _cli("backtest", "--data", f, "--strict", "--out", out, "--json")
    assert r.exit_code == 3, r.output
    err = _one_line_error(r)
    assert "ohlc_relation ×3" in err and r.stdout == ""
    assert not out.exists()
    # without --strict it runs, and says so on stderr and in --json
    r = _cli("backtest", "--data", f, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["data_validation"]["errors"] == {"ohlc_relation": 3}
    assert "ohlc_relation ×3" in r.stderr
    # --repair drops exactly those bars, and says how many
    r = _cli("backtest", "--data", f, "--repair", "--strict", "--json")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)["data_validation"]
    assert v["dropped"] == {"ohlc_relation": 3} and v["rows"] == len(two_days) - 3 and v["ok"]
    assert "repair dropped 3 of" in r.stderr


def test_config_key_strict(tmp_path, two_days):
    o = two_days.open.copy()
    o[10] += 0.1  # off the tick grid
    f = _write(tmp_path / "off.parquet", two_days.ts, o, np.maximum(two_days.high, o),
               np.minimum(two_days.low, o), two_days.close, two_days.volume)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nstrict = true\n")
    r = _cli("backtest", "--data", f, "--config", cfg)
    assert r.exit_code == 3 and "off_tick ×1" in _one_line_error(r)
    assert _cli("backtest", "--data", f, "--config", cfg, "--no-strict").exit_code == 0


def test_inf_high_refused_in_every_command(tmp_path, two_days):
    h = two_days.high.copy()
    h[200] = np.inf
    f = _write(tmp_path / "inf.parquet", two_days.ts, two_days.open, h, two_days.low,
               two_days.close, two_days.volume)
    r = _cli("backtest", "--data", f)
    assert r.exit_code == 3 and "row 200, column 'high': non-finite price" in _one_line_error(r)
    r = _cli("train", "--data", f, "--epochs", "1", "--out", tmp_path / "m")
    assert r.exit_code == 3 and "non-finite price" in _one_line_error(r)
    r = _cli("run", "--mode", "replay", "--data", f, "--no-tui", "--speed", "max")
    assert r.exit_code == 3 and "non-finite price" in _one_line_error(r)


def test_swapped_rows_refused_with_one_line(tmp_path, two_days):
    ts = two_days.ts.copy()
    ts[[300, 301]] = ts[[301, 300]]
    f = _write(tmp_path / "swap.parquet", ts, two_days.open, two_days.high, two_days.low,
               two_days.close, two_days.volume)
    r = _cli("backtest", "--data", f)
    assert r.exit_code == 3
    assert "row 301, column 'ts': timestamps not ascending" in _one_line_error(r)
    rep = tmp_path / "rep.json"
    r = _cli("run", "--mode", "replay", "--data", f, "--no-tui", "--speed", "max",
             "--json-report", rep)
    assert r.exit_code == 3 and "not ascending" in _one_line_error(r)
    r = _cli("train", "--data", f, "--epochs", "1", "--out", tmp_path / "m")
    err = _one_line_error(r)
    assert r.exit_code == 3 and "not ascending" in err and "bar size" not in err


def test_empty_file(tmp_path):
    e = np.empty(0)
    f = _write(tmp_path / "empty.parquet", np.empty(0, np.int64), e, e, e, e, e)
    r = _cli("data", "validate", f, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["problems"] == ["no_bars"]
    r = _cli("backtest", "--data", f)
    assert r.exit_code == 3 and "no bars" in _one_line_error(r)


def test_check_bars_engine_level(two_days):
    res = check_bars(two_days)
    assert res.bars is two_days and res.summary()["ok"] and res.summary()["errors"] == {}
    c = two_days.close.copy()
    c[5] = np.nan
    nan = Bars(two_days.ts, two_days.open, two_days.high, two_days.low, c, two_days.volume)
    with pytest.raises(DataError, match="row 5, column 'close'"):
        check_bars(nan, repair=True)
    lo = two_days.low.copy()
    lo[7] = two_days.high[7] + 1
    bad = Bars(two_days.ts, two_days.open, two_days.high, lo, two_days.close, two_days.volume)
    with pytest.raises(DataRefused, match="ohlc_relation ×1"):
        check_bars(bad, strict=True)


# --------------------------------------------------------------------------- validator checks
def test_single_trade_range_counted_exactly(two_days):
    v = np.full(len(two_days), 25.0)
    h, lo = two_days.high.copy(), two_days.low.copy()
    rng = np.random.default_rng(0)
    rows = rng.choice(len(v), 37, replace=False)
    v[rows] = 1.0
    flat = rng.choice(np.setdiff1d(np.arange(len(v)), rows), 11, replace=False)
    v[flat] = 1.0  # a single trade with no range: real, not counted
    p = two_days.close[flat]
    h[flat] = lo[flat] = p
    o, c = two_days.open.copy(), two_days.close.copy()
    o[flat] = c[flat] = p
    ranged = rows[h[rows] > lo[rows]]
    b = Bars(two_days.ts, o, h, lo, c, v)
    rep = validate(b)
    assert rep.kinds["single_trade_range"].count == ranged.size > 30
    assert rep.kinds["single_trade_range"].examples[0]["row"] == int(np.sort(ranged)[0])
    assert not rep.ok


def _quiet_series(day: date, price: float = 1680.0, hole=None):
    """Calm 1-minute bars (range 0.75-1 pt) over the trading day ``day`` of the 2025 calendar,
    without the minutes in ``hole`` (start, end) UTC ns."""
    from engine.calendar import calendar_for, ny_to_ns, time

    cal = calendar_for(ny_to_ns(day, time(12)))
    r = cal.session_row(day)
    ts = np.arange(cal.table.open[r], cal.table.close[r], 60 * NS)
    if hole is not None:
        ts = ts[(ts < hole[0]) | (ts >= hole[1])]
    rng = np.random.default_rng(1)
    c = price + np.cumsum(rng.choice([-0.25, 0.0, 0.25], len(ts)))
    o = np.concatenate([[c[0]], c[:-1]])
    h = np.maximum(o, c) + rng.choice([0.5, 0.75], len(ts))
    lo = np.minimum(o, c) - 0.25
    return Bars(ts, o, h, lo, c, np.full(len(ts), 50.0))


def test_bad_print_after_a_16_minute_hole_is_found():
    from engine.calendar import ny_to_ns, time

    d = date(2025, 9, 10)
    h0, h1 = ny_to_ns(d, time(11, 0)), ny_to_ns(d, time(11, 16))
    b = _quiet_series(d, hole=(h0, h1))
    i = int(np.searchsorted(b.ts, h1))
    high = b.high.copy()
    high[i] = max(b.open[i], b.close[i], b.close[i - 1]) + 22.0  # a 22-point lone wick
    bad = Bars(b.ts, b.open, high, b.low, b.close, b.volume)
    rep = validate(bad)
    assert rep.kinds["implausible_jump"].count == 1
    assert rep.kinds["implausible_jump"].examples[0]["row"] == i
    assert validate(b).kinds["implausible_jump"].count == 0


def test_bad_print_rule_flags_nothing_on_the_shipped_files(es_5m_path, topstepx_path):
    from engine.data import load_bars

    for p in (es_5m_path, topstepx_path):
        assert validate(load_bars(p)).kinds["implausible_jump"].count == 0


# --------------------------------------------------------------------------- eras
def _day_2013():
    from engine.calendar import calendar_for, ny_to_ns, time

    d = date(2013, 9, 10)
    cal = calendar_for(ny_to_ns(d, time(12)))
    s, e = ny_to_ns(date(2013, 9, 9), time(18)), ny_to_ns(d, time(17, 15))
    ts = np.arange(s, e, 60 * NS)
    h0, h1 = ny_to_ns(d, time(16, 15)), ny_to_ns(d, time(16, 30))
    return d, cal, ts, h0, h1


def test_2013_session_day_labelled_and_validated_without_false_errors():
    d, cal, ts, h0, h1 = _day_2013()
    real = ts[(ts < h0) | (ts >= h1)]
    p = np.full(len(real), 1680.0)
    rep = validate(Bars(real, p, p + 0.25, p - 0.25, p, np.full(len(real), 9.0)))
    assert rep.ok and not rep.warnings, rep.to_dict()["kinds"]
    lab = cal.label(ts)
    inside = (ts >= h0) & (ts < h1)
    assert not lab.in_session[inside].any() and lab.in_session[~inside].all()
    assert len(set(lab.session[~inside].tolist())) == 1  # one session across the halt
    assert (lab.trading_day == (d - date(1970, 1, 1)).days).all()
    any_path = cal._label_any(ts[::-1])  # the unsorted path agrees with the compiled one
    assert np.array_equal(any_path.in_session[::-1], lab.in_session)
    assert np.array_equal(any_path.session[::-1], lab.session)
    for t in (h0 - 60 * NS, h0, h1, ts[-1]):
        assert cal.label_one(int(t))[2] == bool(cal.label(np.array([t])).in_session[0])
    # bars inside the real halt are reported as halt bars, not as a gap
    p = np.full(len(ts), 1680.0)
    rep = validate(Bars(ts, p, p + 0.25, p - 0.25, p, np.full(len(ts), 9.0)))
    assert rep.kinds["in_maintenance_halt"].count == 15 and rep.kinds["gap_in_session"].count == 0


def test_2013_eod_exit_before_the_halt():
    from engine.calendar import ny_to_ns, time
    from engine.config import EodConfig

    d, cal, _, h0, _ = _day_2013()
    eod = cal.eod_times(d)  # default profile topstepx: flat 5 min before 15:10 CT
    assert eod["flat"] == ny_to_ns(d, time(16, 5)) < h0
    assert eod["exit"] == ny_to_ns(d, time(16, 0))
    assert cal.eod_phase(h0 - NS) == "flat" and cal.eod_phase(h0 + NS) == "closed"
    # the older fixed New York times move before the era's 16:15 halt
    fixed = cal.eod_table(EodConfig(profile="fixed_ny"))[cal.session_row(d)]
    assert fixed[3] == ny_to_ns(d, time(15, 45)) < h0 and fixed[2] == ny_to_ns(d, time(15, 40))
    # today's era: 17:00 close, no halt; flat at 16:05 (topstepx) or 16:30 (fixed_ny)
    d2 = date(2025, 9, 10)
    cal2 = __import__("engine.calendar", fromlist=["calendar_for"]).calendar_for(ny_to_ns(d2, time(12)))
    assert cal2.eod_times(d2)["flat"] == ny_to_ns(d2, time(16, 5))
    r = cal2.session_row(d2)
    assert cal2.eod_table(EodConfig(profile="fixed_ny"))[r][3] == ny_to_ns(d2, time(16, 30))
    assert cal2.table.close[r] == ny_to_ns(d2, time(17)) and cal2.table.halt_start[r] == -1


def test_era_table_agrees_with_the_library_break():
    """The library records the same 15:15-15:30 CT break in the 2012-2021 era and none after."""
    import pandas_market_calendars as mcal

    from engine.calendar import CmeCalendar

    sched = mcal.get_calendar("CME_Equity").schedule("2013-01-01", "2022-12-31")
    cal = CmeCalendar(2013, 2022)
    t = cal.table
    for day in ("2013-09-10", "2019-03-05", "2021-06-25", "2021-06-28", "2022-03-01"):
        r = cal.session_row(date.fromisoformat(day))
        lib = sched.loc[day]
        has_break = lib.break_start < lib.break_end
        assert (t.halt_start[r] >= 0) == has_break, day
        if has_break:
            assert t.halt_start[r] == lib.break_start.value and t.halt_end[r] == lib.break_end.value


# --------------------------------------------------------------------------- front month
def test_front_month_order_and_option_on_backtest(tmp_path):
    from engine.data import load_bars

    # two contracts across the December 2013 roll, the file grouped by contract (ESH14 first)
    days = generate_bars(date(2013, 12, 9), date(2013, 12, 13), seed=5, start_price=1800.0)
    n = len(days)
    ts = np.concatenate([days.ts, days.ts])
    f = _write(tmp_path / "multi.parquet", ts, np.concatenate([days.open + 5, days.open]),
               np.concatenate([days.high + 5, days.high]),
               np.concatenate([days.low + 5, days.low]),
               np.concatenate([days.close + 5, days.close]), None,
               pa.array(["ESH14"] * n + ["ESZ13"] * n))
    b = load_bars(f, multi_contract="front-month")
    assert b.symbol.endswith("ESZ13→ESH14") and np.all(np.diff(b.ts) > 0)
    r = _cli("backtest", "--data", f)
    assert r.exit_code == 3 and "--front-month" in _one_line_error(r)
    r = _cli("backtest", "--data", f, "--front-month", "--json")
    assert r.exit_code == 0, r.output


def test_2013_backtest_never_carries_a_position_through_the_halt(tmp_path):
    """Generated bars on 2013 dates, without the halt minutes: validated clean under --strict,
    and every trade is closed before the 16:15 NY halt (EOD flat at 15:45 NY in that era)."""
    import pandas as pd

    from engine.calendar import calendar_for

    b = generate_bars(date(2013, 9, 9), date(2013, 9, 13), seed=4, start_price=1680.0)
    cal = calendar_for(int(b.ts[0]))
    keep = cal.label(b.ts).in_session
    f = _write(tmp_path / "es2013.parquet", b.ts[keep], b.open[keep], b.high[keep], b.low[keep],
               b.close[keep], b.volume[keep])
    r = _cli("backtest", "--data", f, "--strict", "--json", "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["data_validation"]["errors"] == {}
    t = pd.read_csv(tmp_path / "rep" / "trades.csv")
    assert len(t) > 5
    tab = cal.table
    rows = np.searchsorted(tab.day, cal.label(t.entry_ts.to_numpy(np.int64)).trading_day)
    assert (tab.halt_start[rows] > 0).all()
    assert (t.exit_ts.to_numpy(np.int64) <= tab.eod[rows, 3]).all()
    assert (tab.eod[rows, 3] < tab.halt_start[rows]).all()


def test_fake_gateway_refuses_unusable_data(tmp_path, two_days, monkeypatch):
    ts = two_days.ts.copy()
    ts[[3, 4]] = ts[[4, 3]]
    f = _write(tmp_path / "swap.parquet", ts, two_days.open, two_days.high, two_days.low,
               two_days.close, two_days.volume)
    monkeypatch.setenv("PROJECTX_USERNAME", "u")
    monkeypatch.setenv("PROJECTX_API_KEY", "k")
    r = _cli("fake-gateway", "--data", f, "--port", "0")
    assert r.exit_code == 3 and "row 4, column 'ts'" in _one_line_error(r)


def test_pre_2012_data_is_noted_as_unverified_hours():
    ts = np.arange(3) * 60 * NS + np.datetime64("2011-03-01T15:00", "ns").astype(np.int64)
    p = np.full(3, 1300.0)
    rep = validate(Bars(ts, p, p, p, p, np.full(3, 5.0)))
    assert any("before 2012-11-19" in n for n in rep.notes)
    assert not any("2012-11-19" in n for n in validate(_quiet_series(date(2025, 9, 10))).notes)


def test_three_labelling_paths_agree_across_eras():
    """Random minutes from 2012 to 2022 (both eras, their boundary days, halts, DST): the compiled
    sorted pass, the searchsorted path and the streaming label_one give the same labels."""
    from engine.calendar import CmeCalendar

    cal = CmeCalendar(2012, 2022)
    lo = np.datetime64("2012-11-15", "ns").astype(np.int64)
    hi = np.datetime64("2021-07-02", "ns").astype(np.int64)
    rng = np.random.default_rng(11)
    ts = np.sort(lo + rng.integers(0, (hi - lo) // (60 * NS), 4000) * 60 * NS)
    halts = cal.table.halt_start[cal.table.halt_start > 0]
    ts = np.unique(np.concatenate([ts, halts[:50], halts[:50] - 60 * NS, halts[:50] + 15 * 60 * NS]))
    a = cal.label(ts)
    b = cal._label_any(ts[::-1])
    for f in ("trading_day", "ny_seconds", "in_session", "is_rth", "session"):
        assert np.array_equal(getattr(a, f), getattr(b, f)[::-1]), f
    one = np.array([cal.label_one(int(t))[2] for t in ts])
    assert np.array_equal(one, a.in_session)
    # the halt minutes are out, the minute before and the reopen are in
    assert not cal.label(halts[:50]).in_session.any()
    assert cal.label(halts[:50] - 60 * NS).in_session.all()
    assert cal.label(halts[:50] + 15 * 60 * NS).in_session.all()
