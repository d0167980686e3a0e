"""Session labels on the real ES 1-minute file: DST days, Sunday evenings, RTH counts."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from engine.calendar import day_number, ny_datetime
from engine.data import load_bars, session_labels


@pytest.fixture(scope="module")
def es1m(es_1m_path):
    bars = load_bars(es_1m_path)
    return bars, session_labels(bars)


def _day(lab, d):
    return np.flatnonzero(lab.trading_day == day_number(d))


@pytest.mark.parametrize("friday,monday,fri_last_ny,sun_first_ny", [
    # spring forward 2025-03-09 02:00: Friday closes 17:00 EST (22:00 UTC), Sunday opens 18:00 EDT (22:00 UTC)
    (date(2025, 3, 7), date(2025, 3, 10), "2025-03-07 16:59 EST", "2025-03-09 18:00 EDT"),
    # fall back 2025-11-02 02:00: Friday closes 17:00 EDT (21:00 UTC), Sunday opens 18:00 EST (23:00 UTC)
    (date(2025, 10, 31), date(2025, 11, 3), "2025-10-31 16:59 EDT", "2025-11-02 18:00 EST"),
])
def test_dst_weekends(es1m, friday, monday, fri_last_ny, sun_first_ny):
    bars, lab = es1m
    fri, mon = _day(lab, friday), _day(lab, monday)
    fmt = "%Y-%m-%d %H:%M %Z"
    assert ny_datetime(int(bars.ts[fri[-1]])).strftime(fmt) == fri_last_ny
    assert ny_datetime(int(bars.ts[mon[0]])).strftime(fmt) == sun_first_ny
    # a full Globex day is 23 h of 1-minute bars on both sides of the change; RTH 6.5 h
    assert len(fri) == len(mon) == 1380
    assert lab.is_rth[fri].sum() == lab.is_rth[mon].sum() == 390
    assert lab.in_session[mon].all()
    # RTH starts 09:30 New York on both sides of the change (13:30 UTC in summer time, 14:30 winter)
    first_rth = bars.ts[mon][lab.is_rth[mon]][0]
    assert ny_datetime(int(first_rth)).strftime("%H:%M") == "09:30"


def test_sunday_evening_bars_belong_to_monday(es1m):
    bars, lab = es1m
    ny_dates = np.array([ny_datetime(int(t)).date() for t in bars.ts[::15]])
    sunday = np.array([d.weekday() == 6 for d in ny_dates])
    assert sunday.sum() > 500
    days = lab.trading_day[::15][sunday]
    assert all(day_number(d) + 1 == td for d, td in zip(ny_dates[sunday], days))


def test_rth_normal_and_early_close(es1m):
    bars, lab = es1m
    d = _day(lab, date(2025, 6, 10))
    assert lab.is_rth[d].sum() == 390
    for early in (date(2024, 12, 24), date(2025, 7, 3), date(2025, 11, 28)):
        d = _day(lab, early)
        rth = bars.ts[d][lab.is_rth[d]]
        assert len(rth) == 210, early  # NYSE closes 13:00 New York: 09:30-13:00
        assert ny_datetime(int(rth[-1])).strftime("%H:%M") == "12:59"
