"""The one per-bar step every mode calls: clock → venue → kernel (R-BT-1, R-LIVE-2).

:func:`step_bar` is the whole wiring of one bar close, written once:

1. the clock moves to the bar's close (UTC ns, bar open + bar length), firing the timers due by
   then (a :class:`engine.clock.SimClock`; a clock that follows events, paper/live, only moves
   forward: :class:`FollowClock`);
2. the venue processes the bar (the simulated venue fills market orders at the bar's open, then
   stops, then limits; a broker venue's ``process_bar`` does nothing: its fills arrive as events);
3. the kernel takes one step on the bar's :class:`engine.kernel.BarInput` (its market inputs
   already computed: batch by :func:`engine.market.inputs.prepare_market` in a backtest,
   streaming by :class:`engine.runtime.market_state.MarketState` in a session).

The backtest (:func:`engine.backtest.runner.run_backtest`) calls it for every bar it steps.
The streaming modes (replay :class:`engine.runtime.session.Session`, paper/live
:class:`engine.runtime.live.LiveSession`) call it through :class:`StreamingBarPath`, which adds
what a bar needs when its inputs arrive one at a time: the signal source's update, the
streaming market state, the per-bar timings and the equity point.

This module imports no UI and no broker (it sees the clock, the venue and the kernel through the
small protocols below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from mypy_extensions import mypyc_attr

from engine.clock import perf_ns
from engine.kernel import BarInput, TradingKernel


class BarClock(Protocol):
    """What the step asks of a clock: move to a bar's close (UTC ns)."""

    def advance_to(self, ts_ns: int) -> Any: ...


class BarVenue(Protocol):
    """What the step asks of a venue: process bar ``i`` (the simulated venue fills; a broker
    venue does nothing, its fills arrive as events)."""

    def process_bar(self, i: int) -> None: ...


class BarStepper(Protocol):
    """What the step asks of the kernel (:class:`engine.kernel.TradingKernel`)."""

    def step(self, b: BarInput) -> Any: ...


class StreamingKernel(BarStepper, Protocol):
    """What :class:`StreamingBarPath` asks of the kernel: a step, and the equity it marked at
    the last close (dollars)."""

    last_equity: float


def step_bar(clock: BarClock, venue: BarVenue, kernel: BarStepper | TradingKernel, bar: BarInput) -> None:
    """One bar close: ``clock.advance_to(bar.close_ts)``, ``venue.process_bar(bar.i)``,
    ``kernel.step(bar)``, in that order (see the module docstring). Raises what they raise
    (:class:`engine.clock.ClockError` when the clock would move backwards)."""
    clock.advance_to(bar.close_ts)
    venue.process_bar(bar.i)
    kernel.step(bar)


class FollowClock:
    """The per-bar clock of a session whose clock is driven by market events (paper/live):
    ``advance_to`` moves an exchange clock forward only (``observe``: a later event may already
    have moved it past the bar's close) and leaves a wall clock alone (it has no
    ``advance_to``: the wall moves by itself)."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def advance_to(self, ts_ns: int) -> None:
        observe = getattr(self.clock, "observe", None)
        if observe is not None:
            observe(int(ts_ns))


@mypyc_attr(native_class=False)  # __getattr__ forwarding: a plain Python class (setup.py compiles this module)
class NoBarVenue:
    """A venue wrapper for a broker: ``process_bar`` is a no-op (fills arrive as events), every
    other attribute is the wrapped venue's."""

    def __init__(self, venue: Any) -> None:
        self._venue = venue

    def process_bar(self, i: int) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


@dataclass
class BarTiming:
    """Per-bar latencies in ns (wall time): features, inference, risk (risk-manager calls inside
    the kernel step), order (the rest of the step: clock timers, venue, signals, OCO), total."""

    features: int = 0
    inference: int = 0
    risk: int = 0
    order: int = 0
    total: int = 0


class SignalSource(Protocol):
    """A streaming signal source (:class:`engine.runtime.session.ModelSignals`,
    ``WindowSignals``): one closed bar → (direction −1/0/+1, confidence, class 0..2 or −1,
    features ns, inference ns)."""

    def update(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> tuple[int, float, int, int, int]: ...


class MarketSource(Protocol):
    """Streaming market inputs (:class:`engine.runtime.market_state.MarketState`): one closed
    bar → its row (``atr``, ``atr_normal``, ``avg_volume``, ``is_rth``, ``in_session``,
    ``phase``, ``day``, ``spread``)."""

    def update(self, ts: int, high: float, low: float, close: float, volume: float) -> Any: ...


class StreamingBarPath:
    """The per-bar path of the streaming modes (replay, paper, live): for each closed bar
    (open time ``ts`` UTC ns, OHLCV in points/contracts) the signal source's update, the
    streaming market inputs, then :func:`step_bar`, timed (:class:`BarTiming`), and the equity
    marked at the close appended.

    Args:
        clock, venue, kernel: as :func:`step_bar` takes them.
        signals: a :class:`SignalSource`. market: a :class:`MarketSource`.
        timed_risk: the kernel's risk proxy with an ``elapsed`` ns counter
            (:class:`engine.runtime.session._TimedRisk`), reset before each kernel step.
        bar_ns: bar length (ns).
        modelled_spread: feed the kernel the market state's modelled spread (ticks; replay, as a
            backtest does); False: NaN, the spread unknown to the kernel (paper/live today).
        before_step: called with the market row after the inputs are computed and before the
            step (the live session's contract-roll check).

    After :meth:`step`: ``last_signal`` (direction, confidence, class), ``last_row`` (the market
    row), ``last_bar`` (the :class:`BarInput`), ``timings`` and ``equity`` (one entry per bar).
    """

    def __init__(self, clock: BarClock, venue: BarVenue, kernel: StreamingKernel, signals: SignalSource,
                 market: MarketSource, timed_risk: Any, bar_ns: int, *, modelled_spread: bool = True,
                 before_step: Callable[[Any], None] | None = None) -> None:
        self.clock, self.venue, self.kernel = clock, venue, kernel
        self.signals, self.market, self.timed_risk = signals, market, timed_risk
        self.bar_ns = int(bar_ns)
        self.modelled_spread = bool(modelled_spread)
        self.before_step = before_step
        self.timings: list[BarTiming] = []
        self.equity: list[float] = []
        self.last_signal: tuple[int, float, int] = (0, float("nan"), -1)
        self.last_row: Any = None
        self.last_bar: BarInput | None = None

    def step(self, i: int, ts: int, o: float, h: float, l: float, c: float, v: float,
             highs: Any, lows: Any) -> BarInput:
        """Bar ``i`` (0-based count of the bars stepped) closed; ``highs``/``lows``: the recent
        highs and lows up to this bar (float64 arrays, the structure stop's lookback). Returns
        the :class:`BarInput` the kernel stepped on."""
        t0 = perf_ns()
        close_ts = ts + self.bar_ns
        d, conf, cls, f_ns, inf_ns = self.signals.update(ts, o, h, l, c, v)
        self.last_signal = (d, conf, cls)
        m = self.market.update(ts, h, l, c, v)
        self.last_row = m
        if self.before_step is not None:
            self.before_step(m)
        tr = self.timed_risk
        tr.elapsed = 0
        t_k = perf_ns()
        bar = BarInput(i, close_ts, o, h, l, c, m.atr, m.is_rth, m.in_session, m.phase, m.day, d, conf, cls,
                       m.atr_normal, v, m.avg_volume, highs, lows,
                       m.spread if self.modelled_spread else float("nan"))
        step_bar(self.clock, self.venue, self.kernel, bar)
        k_ns = perf_ns() - t_k
        r_ns = tr.elapsed
        self.timings.append(BarTiming(f_ns, inf_ns, r_ns, max(k_ns - r_ns, 0), perf_ns() - t0))
        self.equity.append(self.kernel.last_equity)
        self.last_bar = bar
        return bar


__all__ = ["step_bar", "StreamingBarPath", "BarTiming", "BarClock", "BarVenue", "BarStepper", "StreamingKernel", "FollowClock",
           "NoBarVenue", "SignalSource", "MarketSource"]
