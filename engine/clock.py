"""The engine clock: the only place in ``engine/`` that may read the wall clock.

Every time-dependent decision (EOD phases, pause timers, cooldowns, token expiry, data age) asks
an injected :class:`Clock`. Backtest and replay inject :class:`SimClock`; paper and live inject
:class:`LiveClock`. A test (``tests/test_clock.py``) scans ``engine/`` and fails if any other
module calls ``time.time``, ``datetime.now`` and friends.

Times are integers of nanoseconds since the Unix epoch, UTC (``int``), the same unit as bar
timestamps, so that no float rounding ever reorders two events.
"""

from __future__ import annotations

import heapq
import time as _time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

from mypy_extensions import mypyc_attr

NS_PER_SECOND = 1_000_000_000
NS = NS_PER_SECOND  # the short name the engine's modules import (one definition)

TimerCallback = Callable[[int], None]


@mypyc_attr(native_class=False)  # mypyc (setup.py) compiles builtin-exception subclasses as Python classes
class ClockError(RuntimeError):
    """Raised when a clock is asked to do something impossible (run backwards, bad timer)."""


class Clock(Protocol):
    """What the engine may ask of time.

    ``now_ns()`` returns UTC nanoseconds since the epoch; ``monotonic_ns()`` a monotonic counter
    in nanoseconds for measuring durations (latencies); ``set_timer`` schedules ``callback(ts_ns)``
    at or after ``at_ns``; ``cancel_timer`` removes one.
    """

    def now_ns(self) -> int: ...

    def monotonic_ns(self) -> int: ...

    def set_timer(self, name: str, at_ns: int, callback: TimerCallback) -> None: ...

    def cancel_timer(self, name: str) -> bool: ...


def to_datetime(ts_ns: int) -> datetime:
    """UTC nanoseconds → aware ``datetime`` in UTC (microsecond precision)."""
    return datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=timezone.utc)


def from_datetime(dt: datetime) -> int:
    """Aware ``datetime`` → UTC nanoseconds. Raises ``ValueError`` for a naive datetime."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: give a timezone (UTC or America/New_York)")
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1_000


@dataclass
class _Timer:
    at_ns: int
    seq: int
    name: str
    callback: TimerCallback
    cancelled: bool = False


class _TimerTable:
    """Timers ordered by (due time, insertion order); one live timer per name. The heap holds
    ``(due ns, insertion number, timer)``: the insertion number is unique, so two entries never
    compare their timers."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, _Timer]] = []
        self._by_name: dict[str, _Timer] = {}
        self._seq = 0

    def add(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        old = self._by_name.pop(name, None)
        if old is not None:
            old.cancelled = True
        seq = self._seq
        self._seq += 1
        timer = _Timer(int(at_ns), seq, name, callback)
        self._by_name[name] = timer
        heapq.heappush(self._heap, (timer.at_ns, seq, timer))

    def cancel(self, name: str) -> bool:
        timer = self._by_name.pop(name, None)
        if timer is None:
            return False
        timer.cancelled = True
        return True

    def pop_due(self, now_ns: int) -> _Timer | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if heap and heap[0][0] <= now_ns:
            timer = heapq.heappop(heap)[2]
            self._by_name.pop(timer.name, None)
            return timer
        return None

    def next_due(self) -> int | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def names(self) -> list[str]:
        return sorted(self._by_name)


@mypyc_attr(allow_interpreted_subclasses=True)  # the live session's ExchangeClock subclasses it
class SimClock:
    """Simulated clock for backtest, replay and tests.

    Time only moves when :meth:`advance_to` is called. Timers due at or before the new time fire
    in (due time, insertion) order, each seeing ``now_ns()`` equal to its own due time, so a
    timer's callback observes the same clock it would have live.

    Raises :class:`ClockError` when asked to move backwards.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)
        self._timers = _TimerTable()
        self._mono = 0

    def now_ns(self) -> int:
        return self._now

    def monotonic_ns(self) -> int:
        # Simulated durations: the simulated clock measures nothing, so latencies read as 0
        # unless the caller uses a LiveClock for timing. Strictly increasing all the same.
        self._mono += 1
        return self._mono

    def set_timer(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        self._timers.add(name, at_ns, callback)

    def cancel_timer(self, name: str) -> bool:
        return self._timers.cancel(name)

    def timer_names(self) -> list[str]:
        """Names of the timers still pending, sorted."""
        return self._timers.names()

    def next_timer_ns(self) -> int | None:
        """Due time of the earliest pending timer, or None."""
        return self._timers.next_due()

    def advance_to(self, ts_ns: int) -> int:
        """Move time forward to ``ts_ns`` firing due timers in order; returns how many fired."""
        ts_ns = int(ts_ns)
        if ts_ns < self._now:
            raise ClockError(
                f"SimClock cannot run backwards: now={self._now} ns, asked for {ts_ns} ns "
                f"({(self._now - ts_ns) / NS_PER_SECOND:.3f} s earlier)"
            )
        fired = 0
        while True:
            timer = self._timers.pop_due(ts_ns)
            if timer is None:
                break
            self._now = max(self._now, timer.at_ns)
            timer.callback(self._now)
            fired += 1
        self._now = ts_ns
        return fired


class LiveClock:
    """Wall clock for paper and live trading.

    Timers are kept in the same ordered table; the owner calls :meth:`fire_due` from its loop
    (the kernel's single thread), so callbacks never run on a foreign thread.
    """

    def __init__(self) -> None:
        self._timers = _TimerTable()
        self._last = 0

    def now_ns(self) -> int:
        now = _time.time_ns()
        # Never report time running backwards (NTP steps): hold the last value instead.
        if now < self._last:
            return self._last
        self._last = now
        return now

    def monotonic_ns(self) -> int:
        return _time.perf_counter_ns()

    def set_timer(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        self._timers.add(name, at_ns, callback)

    def cancel_timer(self, name: str) -> bool:
        return self._timers.cancel(name)

    def next_timer_ns(self) -> int | None:
        return self._timers.next_due()

    def fire_due(self) -> int:
        """Fire every timer due by now, in order; returns how many fired."""
        fired = 0
        while True:
            timer = self._timers.pop_due(self.now_ns())
            if timer is None:
                return fired
            timer.callback(self.now_ns())
            fired += 1


def perf_ns() -> int:
    """A monotonic high-resolution counter for benchmarks and latency measurements (ns)."""
    return _time.perf_counter_ns()
