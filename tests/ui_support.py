"""Shared helpers for the console tests: a deterministic demo runtime at a fixed engine time."""

from __future__ import annotations

import threading
from datetime import date, datetime
from zoneinfo import ZoneInfo

from engine.clock import from_datetime
from engine.runtime.demo import FakeRuntime

FIXED_NY = datetime(2025, 3, 4, 15, 47, 30, tzinfo=ZoneInfo("America/New_York"))
"""Engine time of every UI test: 12.5 min before the 16:00 EOD reduce phase."""


def make_runtime(gate: threading.Event | None = None, at: datetime = FIXED_NY) -> FakeRuntime:
    """A FakeRuntime with no background thread, at a fixed simulated time, no long-work delay."""
    return FakeRuntime(day=date(2025, 3, 4), start_ns=from_datetime(at), seed=0,
                       long_work_wait_s=0.0, backtest_gate=gate)


def open_position(rt: FakeRuntime) -> None:
    """Advance the simulated market minute by minute until the baseline holds a position."""
    for _ in range(600):
        if rt.snapshot().position.side != "FLAT":
            return
        rt.advance(60)
    raise AssertionError("the demo baseline never opened a position in 10 hours")
