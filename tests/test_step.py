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


def test_streaming_path_order_hook_spread_and_records() -> None:
    from types import SimpleNamespace

    from engine.step import StreamingBarPath

    calls: list = []

    class Signals:
        def update(self, ts, o, h, l, c, v):
            calls.append("signals")
            return 1, 0.9, 2, 5, 7

    class Market:
        def update(self, ts, h, l, c, v):
            calls.append("market")
            return SimpleNamespace(atr=2.0, is_rth=True, in_session=True, phase=0, day=9, atr_normal=2.5,
                                   avg_volume=float("nan"), spread=1.0)

    class Kernel:
        last_equity = 1234.5

        def process_bar(self, i):
            calls.append("venue")

        def step(self, b):
            calls.append(("kernel", b.close_ts, b.direction, b.spread))

    k, clock = Kernel(), SimClock(0)
    for modelled, spread in ((True, 1.0), (False, None)):
        calls.clear()
        p = StreamingBarPath(clock if modelled else FollowClock(LiveClock()), k, k, Signals(), Market(),
                             SimpleNamespace(elapsed=0), 60 * NS, modelled_spread=modelled,
                             before_step=lambda m: calls.append("hook"))
        bar = p.step(0, 0 if modelled else 60 * NS, 1.0, 2.0, 0.5, 1.5, 10.0, None, None)
        close = 60 * NS if modelled else 120 * NS
        assert calls[:4] == ["signals", "market", "hook", "venue"] and calls[4][:3] == ("kernel", close, 1)
        assert calls[4][3] == spread if modelled else calls[4][3] != calls[4][3]   # NaN: unknown live
        assert p.last_signal == (1, 0.9, 2) and p.last_bar is bar and p.equity == [1234.5]
        assert len(p.timings) == 1 and (p.timings[0].features, p.timings[0].inference) == (5, 7)
