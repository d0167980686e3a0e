"""Stops and targets (REQUIREMENTS R-RISK-3): pure functions on the tick grid.

Prices are index points; distances are whole ticks. ``side`` is +1 (long) or -1 (short).

Initial stop (``StopsConfig.method``):
- ``atr``: ATR (points) × ``atr_multiplier`` (1.5).
- ``fixed``: ``fixed_ticks`` (8 ticks = $10 per MES contract).
- ``structure``: one tick beyond the recent swing: the lowest low (long) / highest high (short)
  of the last ``structure_lookback`` bars. A swing on the wrong side of entry gives a distance ≤ 0,
  which the clamp below lifts to ``min_stop_ticks``.
The distance is rounded UP to whole ticks (the stop moves away from entry, onto the grid),
multiplied by ``eod_stop_tighten`` (0.5) in the EOD phases ``no_new``/``exit``/``flat`` (from
the no_new phase on), and clamped to [``min_stop_ticks``, ``max_stop_ticks``]. The target is
``floor(reward_risk × stop ticks)`` ticks on the other side (rounded toward entry, so the
reward:risk is never better than configured by rounding).
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr
import math
from typing import Final

import numpy as np

from engine.calendar import P_EXIT, P_NO_NEW, PHASE_NAMES
from engine.config import EodConfig, StopsConfig
from engine.risk.sizing import is_finite  # one definition (compiled to C)

EPS: Final = 1e-9
TIGHTEN_PHASES: Final = PHASE_NAMES[P_NO_NEW:P_EXIT + 2]  # no_new, exit, flat (engine.calendar.PHASE_NAMES)
"""EOD phases in which stop distances are multiplied by ``EodConfig.eod_stop_tighten``."""


@mypyc_attr(native_class=False)  # mypyc (setup.py) compiles builtin-exception subclasses as Python classes
class StopError(ValueError):
    """Impossible stop input (bad side, NaN price, missing ATR, too few bars)."""


def _round_half_even(q: float) -> int:
    """``round(q)`` for a finite float (half to even), without a call to the builtin."""
    f = math.floor(q)
    d = q - f  # exact for q ≥ 0 (f and q lie within one of each other, same sign)
    if q < 0.0:
        return round(q)
    if d > 0.5 or (d == 0.5 and f % 2 == 1):
        return f + 1
    return f


def price_to_tick_index(price: float, tick: float, direction: int) -> int:
    """Price → integer tick index; ``direction`` -1 floors, +1 ceils, 0 rounds (with a 1e-9
    tolerance so that prices already on the grid never move)."""
    q = price / tick
    r = _round_half_even(q)
    if abs(q - r) < 1e-6:
        return int(r)
    if direction < 0:
        return int(math.floor(q))
    if direction > 0:
        return int(math.ceil(q))
    return int(r)


def _check_side(side: int) -> None:
    if side not in (1, -1):
        raise StopError(f"side must be +1 (long) or -1 (short), got {side!r}")


def initial_stop_ticks(side: int, entry: float, atr_points: float, highs: np.ndarray | None,
                       lows: np.ndarray | None, phase: str, stops: StopsConfig, eod: EodConfig,
                       tick: float) -> int:
    """Stop distance in whole ticks, after rounding, EOD tightening and the min/max clamp.
    Raises :class:`StopError` for a NaN/≤0 ATR (method atr), an empty swing window (structure),
    a bad side or a non-finite entry."""
    return BracketRule(stops, eod, tick).stop_ticks(side, entry, atr_points, highs, lows, phase)


def min_entry_stop_ticks(stops: StopsConfig) -> int:
    """The smallest stop distance (whole ticks) :func:`initial_stop_ticks` can give in a phase
    where entries are allowed (before ``no_new``, so no EOD tightening): ``fixed_ticks``
    clamped for the fixed method, else ``min_stop_ticks`` (the clamp's floor). The risk an
    entry is sized with (``ceil(|entry − stop| / tick)``) is never smaller: an off-grid entry
    only lengthens the distance."""
    if stops.method == "fixed":
        return int(min(max(int(stops.fixed_ticks), stops.min_stop_ticks), stops.max_stop_ticks))
    return int(stops.min_stop_ticks)


def compute_bracket(side: int, entry: float, atr_points: float, highs: np.ndarray | None,
                    lows: np.ndarray | None, phase: str, stops: StopsConfig, eod: EodConfig,
                    tick: float) -> tuple[float, float]:
    """(stop price, target price) in points for an entry at ``entry`` (see the module rules).
    The stop lies on the tick grid at least ``min_stop_ticks`` from entry, on the loss side;
    an off-grid entry is first moved to the grid toward the stop (the distance only grows). Raises
    :class:`StopError` (see :func:`initial_stop_ticks`)."""
    return BracketRule(stops, eod, tick).bracket(side, entry, atr_points, highs, lows, phase)


def update_trailing(side: int, entry: float, stop: float, best_price: float, phase: str,
                    stops: StopsConfig, eod: EodConfig, tick: float,
                    initial_stop: float | None = None) -> float | None:
    """A tighter stop for an open position, or None when the stop stays.

    Rules (each gives a candidate; the most protective wins; the stop never loosens):
    - breakeven: once ``best_price`` is ``breakeven_after_ticks`` (6) or more in profit, the stop
      moves to entry (0 = off);
    - trailing: ``trailing_ticks`` (0 = off) behind ``best_price``, rounded away from it;
    - EOD: in the tighten phases (from the no_new phase) and only when ``initial_stop`` is given, the
      stop distance is at most ceil(initial distance × ``eod_stop_tighten``) (≥ min_stop_ticks).
      Computing it from the initial stop keeps repeated calls idempotent.
    ``best_price`` is the most favourable price since entry (highest high for a long). The
    caller checks the returned stop against the current market (a stop through the market
    means: exit now). Raises :class:`StopError` for a bad side or non-finite prices.
    """
    return BracketRule(stops, eod, tick).trailing(side, entry, stop, best_price, phase, initial_stop)


class BracketRule:
    """The stop and target rules of one ``[stops]`` / ``[eod]`` configuration on one tick grid
    (``tick`` points), with the settings read once: the risk manager builds one and asks it per
    entry (:meth:`bracket`) and per bar with a position (:meth:`trailing`). The module functions
    :func:`initial_stop_ticks`, :func:`compute_bracket` and :func:`update_trailing` are these
    methods on a rule built for the call (one implementation)."""

    def __init__(self, stops: StopsConfig, eod: EodConfig, tick: float) -> None:
        self.method: str = stops.method
        self.atr_multiplier = float(stops.atr_multiplier)
        self.fixed_ticks = int(stops.fixed_ticks)
        self.structure_lookback = int(stops.structure_lookback)
        self.min_stop_ticks = int(stops.min_stop_ticks)
        self.max_stop_ticks = int(stops.max_stop_ticks)
        self.reward_risk = float(stops.reward_risk)
        self.breakeven_after_ticks = int(stops.breakeven_after_ticks)
        self.trailing_ticks = int(stops.trailing_ticks)
        self.tighten = float(eod.eod_stop_tighten)
        self.tick = float(tick)

    def stop_ticks(self, side: int, entry: float, atr_points: float, highs: np.ndarray | None,
                   lows: np.ndarray | None, phase: str) -> int:
        """:func:`initial_stop_ticks` (same arguments and errors)."""
        _check_side(side)
        if not is_finite(entry):
            raise StopError(f"entry price must be finite, got {entry!r}")
        tick = self.tick
        if self.method == "atr":
            if not (is_finite(atr_points) and atr_points > 0):
                raise StopError(f"ATR stop needs a positive ATR, got {atr_points!r} points")
            dist = atr_points * self.atr_multiplier
            ticks = math.ceil(dist / tick - EPS)
        elif self.method == "fixed":
            ticks = self.fixed_ticks
        elif self.method == "structure":
            window = lows if side == 1 else highs
            if window is None or len(window) == 0:
                raise StopError("structure stop needs recent highs/lows, got none")
            w = np.asarray(window, dtype=np.float64)[-self.structure_lookback:]
            if not np.all(np.isfinite(w)):
                raise StopError("structure stop: NaN in the recent highs/lows")
            if side == 1:
                swing = price_to_tick_index(float(w.min()), tick, -1) - 1
                ticks = price_to_tick_index(entry, tick, 0) - swing
            else:
                swing = price_to_tick_index(float(w.max()), tick, 1) + 1
                ticks = swing - price_to_tick_index(entry, tick, 0)
        else:  # pragma: no cover - config validation forbids it
            raise StopError(f"unknown stop method {self.method!r}")
        if phase in TIGHTEN_PHASES:
            ticks = math.ceil(ticks * self.tighten - EPS)
        return int(min(max(ticks, self.min_stop_ticks), self.max_stop_ticks))

    def bracket(self, side: int, entry: float, atr_points: float, highs: np.ndarray | None,
                lows: np.ndarray | None, phase: str) -> tuple[float, float]:
        """:func:`compute_bracket` (same arguments and errors)."""
        ticks = self.stop_ticks(side, entry, atr_points, highs, lows, phase)
        tick = self.tick
        # Entry off the grid: measure from the grid price on the loss side so the distance only grows.
        e = price_to_tick_index(entry, tick, -side)
        stop_i = e - side * ticks
        target_ticks = int(math.floor(self.reward_risk * ticks + EPS))
        e_t = price_to_tick_index(entry, tick, side)
        target_i = e_t + side * target_ticks
        return stop_i * tick, target_i * tick

    def trailing(self, side: int, entry: float, stop: float, best_price: float, phase: str,
                 initial_stop: float | None = None) -> float | None:
        """:func:`update_trailing` (same arguments, rules and errors)."""
        _check_side(side)
        if not is_finite(entry):
            raise StopError(f"entry must be finite, got {entry!r}")
        if not is_finite(stop):
            raise StopError(f"stop must be finite, got {stop!r}")
        if not is_finite(best_price):
            raise StopError(f"best_price must be finite, got {best_price!r}")
        tighten = initial_stop is not None and phase in TIGHTEN_PHASES
        be, tr = self.breakeven_after_ticks, self.trailing_ticks
        if be <= 0 and tr <= 0 and not tighten:
            return None  # no rule can move the stop
        tick = self.tick
        cur = price_to_tick_index(stop, tick, 0)
        e = price_to_tick_index(entry, tick, 0)
        best = price_to_tick_index(best_price, tick, 0)
        new = cur  # the most protective candidate: max for a long, min for a short
        if be > 0 and side * (best - e) >= be:
            new = max(new, e) if side == 1 else min(new, e)
        if tr > 0:
            c = best - side * tr
            new = max(new, c) if side == 1 else min(new, c)
        if tighten and initial_stop is not None:
            init_ticks = abs(e - price_to_tick_index(initial_stop, tick, 0))
            t = max(math.ceil(init_ticks * self.tighten - EPS), self.min_stop_ticks)
            if t < init_ticks:
                c = e - side * t
                new = max(new, c) if side == 1 else min(new, c)
        if side * (new - cur) < 0:  # pragma: no cover - guarded by max/min above
            raise AssertionError("trailing update would loosen the stop")
        if new == cur:
            return None
        return new * tick
