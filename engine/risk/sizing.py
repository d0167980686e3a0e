"""Position sizing (REQUIREMENTS R-RISK-2): pure functions, no state.

The risk of one contract is what a stop-out costs: ``stop ticks × tick value + round-trip costs
(commission + exchange fees) + expected slippage`` (dollars). The dollar budget is
``min(max_risk_per_trade, balance × tier risk fraction)`` times the confidence multiplier and
every further multiplier (EOD reduce phase 0.5, volatility / volume breakers 0.5): the
multipliers scale DOLLARS, never a contract count, so a 60-70 % signal (× 0.5) still trades one
contract when its stop fits half the budget. Then:

    contracts = floor(budget / risk per contract), capped by the tier's maximum contracts,
    by floor(max_risk_per_trade / risk per contract) (a 1.5× / 2× multiplier never lifts the
    risk past the per-trade cap) and by the room left (what is left of the daily loss limit and
    of the daily drawdown limit, whichever is smaller) divided by the risk per contract plus
    ``room_extra_per_contract`` (the worst-case slippage above the expected one, so a stop-out
    cannot breach a daily limit).

All money is in dollars, stops in whole ticks.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr
import math
from typing import Final, NamedTuple

EPS: Final = 1e-9
# Tier and SizeResult are immutable NamedTuples (cheaper to build than frozen dataclasses; one
# of each per entry decision).


@mypyc_attr(native_class=False)  # mypyc (setup.py) compiles builtin-exception subclasses as Python classes
class SizingError(ValueError):
    """Impossible sizing input (NaN, non-positive stop, bad table)."""


def is_finite(x: float) -> bool:
    """``math.isfinite`` for a float (mypyc compiles ``isinf``/``isnan`` to C; ``isfinite``
    would be a call through the math module)."""
    return not (math.isinf(x) or math.isnan(x))


class Tier(NamedTuple):
    """One balance tier: from ``min_balance`` dollars, at most ``max_contracts``, risking
    ``risk_fraction`` of the balance per trade (0.02 = 2 %)."""

    min_balance: float
    max_contracts: int
    risk_fraction: float


def tier_for(balance: float, tiers: list) -> Tier | None:
    """The tier of ``balance`` (dollars): the last row of ``tiers`` ([[from $, max contracts,
    risk fraction], ...] ascending, RiskConfig.balance_tiers) whose threshold is ≤ balance.
    A balance below the first threshold has no tier (None: no trading). Boundaries belong to the
    upper tier ($1,000 → the $1,000-1,500 tier)."""
    if not is_finite(balance):
        raise SizingError(f"balance must be finite, got {balance!r}")
    found = None
    for row in tiers:
        if balance + EPS >= float(row[0]):
            found = row
    return None if found is None else Tier(float(found[0]), int(found[1]), float(found[2]))


def confidence_multiplier(confidence: float, table: list, min_confidence: float) -> float | None:
    """Size multiplier for a model confidence in [0, 1] (RiskConfig.confidence_multipliers,
    [[from, multiplier], ...] ascending). None (= no trade) below ``min_confidence``
    (SignalConfig.min_confidence) or below the table's first row, and for NaN. Boundaries belong
    to the upper row (0.70 → 1.0)."""
    if not is_finite(confidence):
        return None
    if confidence + EPS < min_confidence:
        return None
    mult = None
    for row in table:
        if confidence + EPS >= float(row[0]):
            mult = float(row[1])
    return mult


class SizeResult(NamedTuple):
    """Outcome of :func:`size_position`. ``contracts`` 0 means refused with ``reason``;
    ``steps`` records each stage (for the decision log and the UI)."""

    contracts: int
    reason: str
    risk_per_contract: float
    steps: tuple


def size_position(*, balance: float, stop_ticks: int, tick_value: float, confidence: float,
                  tiers: list, confidence_table: list, min_confidence: float,
                  max_risk_per_trade: float, extra_multipliers: tuple = (),
                  risk_room: float | None = None, cost_per_contract: float = 0.0,
                  slippage_per_contract: float = 0.0, room_extra_per_contract: float = 0.0,
                  room_name: str = "the daily loss limit") -> SizeResult:
    """Contracts for one entry (R-RISK-2; see the module docstring for the rule).

    Args:
        balance: account balance, dollars (the tier and the % budget use it).
        stop_ticks: whole ticks from entry to stop (> 0).
        tick_value: dollars per tick per contract (MES 1.25).
        confidence: model confidence 0..1.
        tiers, confidence_table, min_confidence, max_risk_per_trade: from Settings.
        extra_multipliers: ``(name, multiplier)`` pairs applied to the dollar budget after the
            confidence multiplier (EOD reduce 0.5, volatility breaker 0.5, ...).
        risk_room: optional dollars still allowed to be lost today (the smaller of the daily
            loss and daily drawdown rooms); the size is capped so a stop-out fits inside it.
        cost_per_contract: round-trip commission + fees per contract, dollars (0.84 for MES).
        slippage_per_contract: expected round-trip slippage per contract, dollars.
        room_extra_per_contract: worst-case slippage beyond the expected one, dollars per
            contract, added only for the ``risk_room`` cap.
        room_name: what ``risk_room`` is left of, for the refusal reason.

    Returns a :class:`SizeResult` (``risk_per_contract`` = stop + costs + expected slippage);
    never raises for a too-small budget (contracts 0 + reason). Raises :class:`SizingError` for
    a non-positive stop or tick value. The same rule as :meth:`Sizer.size` (which it calls).
    """
    return Sizer(tiers, confidence_table, min_confidence, max_risk_per_trade).size(
        balance, stop_ticks, tick_value, confidence, extra_multipliers,
        math.nan if risk_room is None else float(risk_room), room_name, cost_per_contract,
        slippage_per_contract, room_extra_per_contract)


class Sizer:
    """:func:`size_position` with the tables fixed (the risk manager builds one from its
    settings and asks it once per entry decision): the balance tiers and the confidence table
    are converted to numbers once, so a decision reads no list of lists.

    Args: ``tiers`` ([[from $, max contracts, risk fraction], ...] ascending),
    ``confidence_table`` ([[from, multiplier], ...] ascending), ``min_confidence`` (0..1),
    ``max_risk_per_trade`` (dollars): as in :func:`size_position`.
    """

    def __init__(self, tiers: list, confidence_table: list, min_confidence: float,
                 max_risk_per_trade: float) -> None:
        self.tiers = tiers
        self.tier_from: list[float] = [float(r[0]) for r in tiers]
        self.tier_max: list[int] = [int(r[1]) for r in tiers]
        self.tier_frac: list[float] = [float(r[2]) for r in tiers]
        self.conf_from: list[float] = [float(r[0]) for r in confidence_table]
        self.conf_mult: list[float] = [float(r[1]) for r in confidence_table]
        self.min_confidence = float(min_confidence)
        self.max_risk = float(max_risk_per_trade)

    def multiplier(self, confidence: float) -> float:
        """:func:`confidence_multiplier` on the fixed table; NaN where that gives None."""
        if not is_finite(confidence) or confidence + EPS < self.min_confidence:
            return math.nan
        mult = math.nan
        for i in range(len(self.conf_from)):
            if confidence + EPS >= self.conf_from[i]:
                mult = self.conf_mult[i]
        return mult

    def size(self, balance: float, stop_ticks: int, tick_value: float, confidence: float,
             extra_multipliers: tuple, risk_room: float, room_name: str, cost_per_contract: float,
             slippage_per_contract: float, room_extra_per_contract: float) -> SizeResult:
        """:func:`size_position` (same arguments, ``risk_room`` NaN = no room cap)."""
        return SizeResult(*self.size_parts(balance, stop_ticks, tick_value, confidence, extra_multipliers,
                                           risk_room, room_name, cost_per_contract, slippage_per_contract,
                                           room_extra_per_contract))

    def size_parts(self, balance: float, stop_ticks: int, tick_value: float, confidence: float,
                   extra_multipliers: tuple, risk_room: float, room_name: str, cost_per_contract: float,
                   slippage_per_contract: float, room_extra_per_contract: float) -> tuple[int, str, float, tuple]:
        """:meth:`size` as a plain tuple (contracts, reason, risk per contract, steps): what the
        compiled risk manager reads without building a :class:`SizeResult`."""
        if stop_ticks <= 0:
            raise SizingError(f"stop distance must be ≥ 1 tick, got {stop_ticks}")
        if not (tick_value > 0):
            raise SizingError(f"tick value must be > 0, got {tick_value!r}")
        per = stop_ticks * tick_value + cost_per_contract + slippage_per_contract
        if not is_finite(balance):
            raise SizingError(f"balance must be finite, got {balance!r}")
        # tier_for: the last row whose threshold is ≤ balance
        t = -1
        for i in range(len(self.tier_from)):
            if balance + EPS >= self.tier_from[i]:
                t = i
        if t < 0:
            return (0, f"balance ${balance:,.2f} is below the lowest tier "
                              f"${float(self.tiers[0][0]):,.2f}", per, ())
        mult = self.multiplier(confidence)
        if mult != mult:
            return (0, f"confidence {confidence:.3f} below the minimum {self.min_confidence:.2f}",
                              per, ())
        max_risk = self.max_risk
        budget = min(max_risk, balance * self.tier_frac[t])
        # (stage, value) or (stage, multiplier, budget after it): the stages of the decision log
        steps: list[tuple[str, float] | tuple[str, float, float]] = [("budget_$", budget)]
        budget *= mult
        steps.append(("confidence", mult, budget))
        for name, m in extra_multipliers:
            budget *= float(m)
            steps.append((name, float(m), budget))
        n = int(math.floor(budget / per + EPS))
        steps.append(("base", n))
        n = min(n, self.tier_max[t])
        steps.append(("tier_cap", n))
        hard = int(math.floor(max_risk / per + EPS))
        n = min(n, hard)
        steps.append(("max_risk_cap", n))
        if n <= 0:
            return (0, f"risk too small for one contract: budget ${budget:.2f}, {stop_ticks} ticks "
                              f"× ${tick_value:.2f} + costs ${cost_per_contract:.2f} + slippage "
                              f"${slippage_per_contract:.2f} = ${per:.2f} per contract", per, tuple(steps))
        if risk_room == risk_room:
            per_room = per + room_extra_per_contract
            room = int(math.floor(max(risk_room, 0.0) / per_room + EPS))
            if room < n:
                n = room
                steps.append(("room_cap", n))
                if n == 0:
                    return (0, f"risk ${per_room:.2f} per contract (worst-case slippage) exceeds the "
                                      f"${max(risk_room, 0):.2f} left of {room_name}", per, tuple(steps))
        return (n, "", per, tuple(steps))
