"""The one per-bar step (engine.step): its order, and the adapters for event-driven clocks and
broker venues."""

from __future__ import annotations

import pytest

from engine.clock import ClockError, LiveClock, SimClock
from engine.kernel import BarInput
from engine.step import FollowClock, NoBarVenue, step_bar

NS = 1_000_000_000


def _bar(i: int, close_ts: int) -> BarInput:
    return BarInput(i, close_ts, 100.0, 101.0, 99.0, 100.5, 1.0, True, True, 0, 1, 0, float("nan"), -1)


class _Log:
    def __init__(self, clock, calls: list) -> None:
        self.clock, self.calls = clock, calls

    def process_bar(self, i: int) -> None:
        self.calls.append(("venue", i, self.clock.now_ns()))

    def step(self, b: BarInput) -> None:
        self.calls.append(("kernel", b.i, self.clock.now_ns()))


def test_step_bar_moves_the_clock_then_the_venue_then_the_kernel() -> None:
    clock, calls = SimClock(0), []
    clock.set_timer("t", 30 * NS, lambda now: calls.append(("timer", -1, now)))
    log = _Log(clock, calls)
    step_bar(clock, log, log, _bar(3, 60 * NS))
    assert calls == [("timer", -1, 30 * NS), ("venue", 3, 60 * NS), ("kernel", 3, 60 * NS)]
    with pytest.raises(ClockError):   # a simulated clock never runs backwards
        step_bar(clock, log, log, _bar(4, 59 * NS))


def test_follow_clock_only_moves_forward_and_leaves_a_wall_clock_alone() -> None:
    class Exchange(SimClock):   # engine.runtime.live.ExchangeClock's rule
        def observe(self, ts_ns: int) -> None:
            if ts_ns > self.now_ns():
                self.advance_to(ts_ns)

    ex = Exchange(90 * NS)   # a later trade already moved it past the bar's close
    FollowClock(ex).advance_to(60 * NS)
    assert ex.now_ns() == 90 * NS
    FollowClock(ex).advance_to(120 * NS)
    assert ex.now_ns() == 120 * NS
    FollowClock(LiveClock()).advance_to(60 * NS)   # no error: the wall moves by itself


def test_no_bar_venue_does_nothing_per_bar_and_passes_everything_else() -> None:
    class Broker:
        placed = 0

        def place(self) -> int:
            self.placed += 1
            return self.placed

    v = NoBarVenue(Broker())
    assert v.process_bar(7) is None
    assert v.place() == 1 and v.placed == 1
