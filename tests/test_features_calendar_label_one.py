"""CmeCalendar.label_one (streaming labeller) equals the vectorized CmeCalendar.label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.calendar import CalendarError, calendar_for

NS = 1_000_000_000


def _check(ts: np.ndarray) -> None:
    cal = calendar_for(int(ts.min()), int(ts.max()))
    lab = cal.label(ts)
    for i, t in enumerate(ts):
        got = cal.label_one(int(t))
        exp = (int(lab.trading_day[i]), int(lab.ny_seconds[i]), bool(lab.in_session[i]),
               bool(lab.is_rth[i]), int(lab.session[i]))
        assert got == exp, (i, int(t), got, exp)


def test_label_one_equals_label_on_real_bars(topstepx_path, es_1m_path):
    ts = pd.read_parquet(topstepx_path, columns=["ts_event"])["ts_event"]
    _check(ts.dt.as_unit("ns").astype("int64").to_numpy()[::3])
    ts1 = pd.read_parquet(es_1m_path, columns=["ts_event"])["ts_event"]
    _check(ts1.dt.as_unit("ns").astype("int64").to_numpy()[::11])


def test_label_one_every_minute_around_dst_and_holidays():
    # every minute across the 2025 DST changes, Good Friday and Thanksgiving (incl. halts)
    parts = []
    for day in ("2025-03-08", "2025-04-17", "2025-11-01", "2025-11-26", "2025-12-24"):
        t0 = np.datetime64(day + "T00:00", "ns").astype(np.int64)
        parts.append(t0 + np.arange(3 * 1440, dtype=np.int64) * 60 * NS)
    ts = np.concatenate(parts)
    _check(ts)
    # and unsorted order (the cache must re-validate)
    _check(np.random.default_rng(3).permutation(ts)[:5000])


def test_label_one_refuses_outside_span():
    cal = calendar_for(int(np.datetime64("2025-06-01", "ns").astype(np.int64)))
    with pytest.raises(CalendarError):
        cal.label_one(int(np.datetime64("2040-01-01", "ns").astype(np.int64)))
