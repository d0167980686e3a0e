"""The batch market inputs: the time-of-day normal ATR computed from the New York seconds inside
its pass equals the one over a precomputed slot array (real 1-minute bars, both DST changes)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.calendar import calendar_for
from engine.data import load_bars
from engine.market.inputs import time_of_day_mean, time_of_day_slots, wilder_atr


def test_normal_atr_from_ny_seconds_equals_the_slot_array_path(es_1m_path) -> None:
    bars = load_bars(es_1m_path)
    cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]) + bars.bar_ns)
    lab = cal.label(bars.ts)
    atr = wilder_atr(bars.high, bars.low, bars.close, 14)
    slots = time_of_day_slots(lab.ny_seconds, bars.bar_ns)
    want = time_of_day_mean(atr, slots)
    got = time_of_day_mean(atr, lab.ny_seconds, per_slot=60)
    assert np.isfinite(want).sum() > 300_000  # 20 days of every minute slot have passed
    assert np.array_equal(want, got, equal_nan=True)
    # a 5-minute grid: ny_seconds // 300, both ways
    assert np.array_equal(time_of_day_mean(atr, lab.ny_seconds // 300), time_of_day_mean(atr, lab.ny_seconds, per_slot=300),
                          equal_nan=True)


def test_normal_atr_refuses_non_integer_slots() -> None:
    with pytest.raises(ValueError, match="integers"):
        time_of_day_mean(np.ones(3), np.array([0.0, 1.0, 2.0]))
