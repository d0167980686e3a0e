"""The public strategy API (specs/strategy.md): what a trader's own strategy file may use.

Minimal form (the :class:`engine.strategy.base.Strategy` protocol): any class with a ``name``
and ``signals(bars) -> StrategySignals``. A plain Python file with such a class runs in every
mode (``--strategy path/to/file.py:ClassName``).

Richer form: subclass :class:`StrategyBase` and declare

- ``params``: a tuple of :class:`Param` (name, type ``int``/``float``, range, default, step):
  the values ``__init__`` accepts (as keyword arguments, checked against the range) and what
  ``mes-console optimize --strategy`` and ``backtest --walk-forward --strategy`` search;
- ``warmup``: bars of history the signal of one bar may depend on (the trailing window a
  replay/paper/live session evaluates the batch method on, and the bars before the first
  signal); ``mes-console analyze warmup`` measures the real need;
- ``version``: a string recorded in every backtest report, optimize study and the journal;
- optionally ``update(ts, o, h, l, c, v) -> (direction, confidence)``: a streaming form used by
  the sessions instead of the trailing window; ``mes-console analyze streaming`` checks it
  against the batch signals (live trading is refused until it has passed on the bar size).

The rule every strategy keeps: the signal of bar ``i`` uses bars ``0..i`` only (closed bars;
``mes-console analyze lookahead`` checks it). Directions int8 -1/0/+1; the confidence of a
signal is a float in [0, 1] (the kernel's ``[signal] min_confidence`` and size multipliers read
it); a bar without a signal has direction 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.strategy.base import StrategySignals

PARAM_KINDS = ("int", "float")


@dataclass(frozen=True)
class Param:
    """One declared strategy parameter.

    ``kind``: ``"int"`` or ``"float"``; ``low``/``high``: the inclusive range the optimizer
    searches and ``__init__`` accepts; ``default``: the value when none is given; ``step``: the
    search grid step (ints: default 1; floats: default (high - low) / 20). ``doc``: one line for
    ``strategy list`` and the reports. Raises ``ValueError`` for an empty range or a default
    outside it."""

    name: str
    kind: str
    low: float
    high: float
    default: float
    step: float | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"parameter {self.name!r}: kind {self.kind!r}, expected int or float")
        if not (self.high >= self.low):
            raise ValueError(f"parameter {self.name!r}: high {self.high} < low {self.low}")
        if not (self.low <= self.default <= self.high):
            raise ValueError(f"parameter {self.name!r}: default {self.default} outside {self.low}..{self.high}")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"parameter {self.name!r}: step {self.step} must be > 0")

    @property
    def grid_step(self) -> float:
        """The search step (see the class docstring)."""
        if self.step is not None:
            return float(self.step)
        return 1.0 if self.kind == "int" else max((self.high - self.low) / 20.0, 1e-12)

    def coerce(self, value: Any) -> int | float:
        """``value`` as this parameter's type, checked against the range. Raises ``ValueError``
        naming the parameter, the value and the range."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name} = {value!r}: not a number") from None
        if self.kind == "int":
            if v != int(v):
                raise ValueError(f"parameter {self.name} = {value!r}: a whole number is expected")
            v = int(v)
        if not (self.low <= v <= self.high):
            raise ValueError(f"parameter {self.name} = {value!r}: outside {self.low:g}..{self.high:g}")
        return v

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high,
                "default": self.default, "step": self.grid_step, "doc": self.doc}


def IntParam(name: str, low: int, high: int, default: int, step: int = 1, doc: str = "") -> Param:
    """An integer :class:`Param` (e.g. a lookback in bars)."""
    return Param(name, "int", low, high, default, step, doc)


def FloatParam(name: str, low: float, high: float, default: float, step: float | None = None,
               doc: str = "") -> Param:
    """A float :class:`Param` (e.g. a band width in points)."""
    return Param(name, "float", low, high, default, step, doc)


class StrategyBase:
    """Optional base class of a strategy with declared parameters (module docstring).

    A subclass sets ``name`` (default: the class name), ``version``, ``params``, ``warmup`` and
    implements ``signals(bars)``. ``__init__(**values)`` sets one attribute per declared
    parameter (the default when not given); raises ``ValueError`` naming an unknown parameter or
    a value outside its range."""

    name: str = ""
    version: str = "1"
    params: tuple[Param, ...] = ()
    warmup: int = 0

    def __init__(self, **values: Any) -> None:
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; declared: {', '.join(known) or 'none'}")
        for p in self.params:
            setattr(self, p.name, p.coerce(values.get(p.name, p.default)))
        if not self.name:
            self.name = type(self).__name__

    def param_values(self) -> dict[str, int | float]:
        """The current value of every declared parameter."""
        return {p.name: getattr(self, p.name) for p in self.params}

    def signals(self, bars) -> StrategySignals:  # pragma: no cover - the subclass's
        """Signals for every bar of ``bars`` (:class:`engine.data.bars.Bars`); see the protocol."""
        raise NotImplementedError(f"{type(self).__name__} must implement signals(bars)")


def make_signals(direction, confidence: float | np.ndarray = 0.70) -> StrategySignals:
    """:class:`StrategySignals` from a direction array (-1/0/+1, any integer or float dtype
    without NaN): ``confidence`` (a number or an array) where a signal is, NaN elsewhere; the
    predicted class 2 UP / 0 DOWN / -1 none. Raises ``ValueError`` for NaN directions."""
    d = np.asarray(direction)
    if d.dtype.kind == "f" and np.isnan(d).any():
        raise ValueError(f"direction has NaN at bar {int(np.flatnonzero(np.isnan(d))[0])}")
    d = d.astype(np.int8)
    conf = np.broadcast_to(np.asarray(confidence, np.float64), d.shape)
    conf = np.where(d != 0, conf, np.nan)
    cls = np.where(d > 0, 2, np.where(d < 0, 0, -1)).astype(np.int8)
    return StrategySignals(d, conf, cls)


__all__ = ["Param", "IntParam", "FloatParam", "StrategyBase", "make_signals", "PARAM_KINDS"]
