"""CME calendar: DST-safe New York time, trading-day labels, RTH, holidays, early closes, EOD."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from engine.calendar import CalendarError, calendar_for, day_date, ny_datetime

cal = calendar_for(pd.Timestamp("2025-01-01", tz="UTC").value)


def ns(s: str) -> int:
    return pd.Timestamp(s, tz="UTC").value


def test_dst_offsets() -> None:
    ts = np.array([ns("2025-03-09 06:59"), ns("2025-03-09 07:00"), ns("2025-11-02 05:59"), ns("2025-11-02 06:00")])
    assert (cal.ny_offset_ns(ts) // 3_600_000_000_000).tolist() == [-5, -4, -4, -5]


def test_trading_day_labels_and_sessions() -> None:
    ts = np.array([
        ns("2025-01-19 23:00"),  # Sunday 18:00 NY (MLK weekend) → Monday 2025-01-20
        ns("2025-01-20 17:59"),  # Monday 12:59 NY, MLK early close 13:00 → in session, no RTH
        ns("2025-01-20 18:00"),  # 13:00 NY: closed
        ns("2025-01-20 23:00"),  # 18:00 NY → Tuesday
        ns("2025-03-09 22:00"),  # Sunday 18:00 EDT (first day after the spring change) → Monday
        ns("2025-03-10 13:30"),  # 09:30 EDT → RTH
        ns("2025-03-10 21:30"),  # 17:30 EDT → maintenance halt
        ns("2025-11-27 15:00"),  # Thanksgiving 10:00 NY: Globex open, NYSE shut → no RTH
        ns("2025-12-25 15:00"),  # Christmas: closed
    ])
    lab = cal.label(ts)
    days = [day_date(d).isoformat() for d in lab.trading_day]
    assert days[:5] == ["2025-01-20", "2025-01-20", "2025-01-20", "2025-01-21", "2025-03-10"]
    assert lab.in_session.tolist() == [True, True, False, True, True, True, False, True, False]
    assert lab.is_rth.tolist() == [False, False, False, False, False, True, False, False, False]


def test_sorted_fast_path_equals_general_path() -> None:
    rng = np.random.default_rng(0)
    ts = np.sort(rng.integers(ns("2024-12-01"), ns("2026-01-01"), 200_000))
    a, b = cal.label(ts), cal._label_any(ts)
    for f in ("trading_day", "ny_seconds", "in_session", "is_rth", "session"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f


def test_eod_phases_normal_dst_and_early_close() -> None:
    # Default profile topstepx: flat 5 min before 15:10 CT (16:10 NY), or before the early close.
    for d in (date(2025, 3, 10), date(2025, 11, 3), date(2025, 7, 2)):
        t = {k: ny_datetime(v).strftime("%H:%M") for k, v in cal.eod_times(d).items()}
        assert t == {"reduce": "15:35", "no_new": "15:50", "exit": "16:00", "flat": "16:05"}, d
    for d in (date(2024, 12, 24), date(2025, 7, 3), date(2025, 11, 28)):
        # Early close 13:15 NY (12:15 CT): flat 5 min before it.
        t = {k: ny_datetime(v).strftime("%H:%M") for k, v in cal.eod_times(d).items()}
        assert t == {"reduce": "12:40", "no_new": "12:55", "exit": "13:05", "flat": "13:10"}, d
    assert cal.eod_phase(ns("2025-11-28 17:40")) == "reduce"
    assert cal.eod_phase(ns("2025-11-28 18:05")) == "exit"
    assert cal.eod_phase(ns("2025-11-28 18:14")) == "flat"
    assert cal.eod_phase(ns("2025-11-28 18:15")) == "closed"
    assert cal.eod_phase(ns("2025-03-10 19:51")) == "no_new"  # 15:51 EDT
    assert cal.eod_phase(ns("2025-03-10 20:12")) == "flat"  # 16:12 EDT
    assert cal.eod_phase(ns("2025-03-10 14:00")) == "normal"
    with pytest.raises(CalendarError, match="2025-12-25 is not a CME trading day"):
        cal.eod_times(date(2025, 12, 25))


def test_eod_profiles_fixed_ny_and_offsets() -> None:
    from engine.calendar import eod_schedule
    from engine.config import EodConfig

    fixed = EodConfig(profile="fixed_ny")
    for d in (date(2025, 3, 10), date(2025, 11, 3)):
        t = {k: ny_datetime(v).strftime("%H:%M") for k, v in cal.eod_times(d, fixed).items()}
        assert t == {"reduce": "16:00", "no_new": "16:15", "exit": "16:25", "flat": "16:30"}, d
    t = {k: ny_datetime(v).strftime("%H:%M") for k, v in cal.eod_times(date(2025, 11, 28), fixed).items()}
    assert t == {"reduce": "12:15", "no_new": "12:30", "exit": "12:40", "flat": "12:45"}
    wide = EodConfig(margin_min=10.0, reduce_min=60.0, no_new_min=20.0, exit_min=2.0)
    t = {k: ny_datetime(v).strftime("%H:%M") for k, v in cal.eod_times(date(2025, 3, 10), wide).items()}
    assert t == {"reduce": "15:00", "no_new": "15:40", "exit": "15:58", "flat": "16:00"}
    # the deadline follows the close held in the table: a session closing at 14:00 NY → flat 13:55
    row = cal.session_row(date(2025, 3, 10))
    early = int(cal.table.close[row]) - 3 * 3600 * 10**9
    out = eod_schedule(cal.table.day[row:row + 1], np.array([early]))
    assert ny_datetime(int(out[0, 3])).strftime("%H:%M") == "13:55"
    with pytest.raises(ValueError, match="reduce_min ≥ no_new_min ≥ exit_min"):
        eod_schedule(cal.table.day[:1], cal.table.close[:1], EodConfig(no_new_min=40.0))


def test_corrections_over_the_library() -> None:
    # NYSE early close → CME equity closes 13:15 NY; library holidays (Thanksgiving) keep 13:00.
    for d in (date(2024, 12, 24), date(2025, 7, 3), date(2025, 11, 28)):
        assert ny_datetime(int(cal.table.close[cal.session_row(d)])).strftime("%H:%M") == "13:15"
    assert ny_datetime(int(cal.table.close[cal.session_row(date(2025, 11, 27))])).strftime("%H:%M") == "13:00"
    # 2025-01-09: overnight session to 09:30 NY, no RTH.
    r = cal.session_row(date(2025, 1, 9))
    assert ny_datetime(int(cal.table.open[r])).isoformat() == "2025-01-08T18:00:00-05:00"
    assert ny_datetime(int(cal.table.close[r])).strftime("%H:%M") == "09:30"
    assert cal.table.rth_open[r] == -1


def test_holidays_and_early_closes_come_from_the_library() -> None:
    assert not cal.is_trading_day(date(2025, 12, 25))
    assert not cal.is_trading_day(date(2025, 4, 18)) or cal.table.early_close[cal.session_row(date(2025, 4, 18))]
    assert cal.table.early_close[cal.session_row(date(2025, 11, 28))]
    assert not cal.table.early_close[cal.session_row(date(2025, 11, 26))]
    assert len(cal.trading_days(date(2025, 12, 22), date(2025, 12, 28))) == 4
