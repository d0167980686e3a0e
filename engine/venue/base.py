"""The Venue protocol and its event types (R-EXE-5: only the clock and the venue change between
backtest, replay, paper and live).

A venue accepts orders (market / limit / stop, each with a unique custom tag, optionally with a
native bracket: stop and target offsets in ticks from the fill price, attached as one OCO group
by the venue), modifies and cancels them, and reports positions, open orders and the account.
Everything the venue learns (fills, order status changes, position changes) arrives as events in
one queue that the kernel drains from its single thread (:meth:`Venue.poll_events`); venue I/O
never calls into the kernel.

``place`` may raise :class:`SubmissionTimeout`: the outcome is then UNKNOWN and the order must be
reconciled by its tag, never resent (R-EXE-4; projectx-api.md §10).
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Protocol, Union


class OrderStatus(str, Enum):
    """An order's status as venues report it and :mod:`engine.execution.orders` tracks it
    (that module holds the transition table). Defined here, at the venue layer, so that the
    execution layer imports the venue interface and never the other way round."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

BUY = 1
SELL = -1

# The event types and Bracket are immutable NamedTuples rather than frozen dataclasses: a backtest
# builds about eight of them per round trip, and a NamedTuple costs a quarter of the time to
# build (bench/bench_backtest.py). Change a field with ``ev._replace(ts_ns=...)``.


@mypyc_attr(native_class=False)  # mypyc (setup.py) compiles builtin-exception subclasses as Python classes
class VenueError(RuntimeError):
    """The venue refused a request (bad order id, impossible modify...)."""


@mypyc_attr(native_class=False)  # mypyc (setup.py) compiles builtin-exception subclasses as Python classes
class SubmissionTimeout(VenueError):
    """A submission got no answer in time: outcome unknown; reconcile by tag, never resend."""


class Bracket(NamedTuple):
    """Native bracket: protective stop and target, in ticks from the entry fill price (> 0)."""

    stop_ticks: int
    target_ticks: int


class FillEvent(NamedTuple):
    """One execution.

    Attributes:
        order_id, tag: the order. side: +1 buy / -1 sell. qty: contracts (≥ 1).
        price: fill price, index points (slippage included).
        ref_price: price before slippage (the open, the stop level, the limit), points.
        slippage_points: adverse slippage per contract, points (≥ 0; ``|price - ref_price|``).
        commission: dollars for this fill (commission + exchange fee, all contracts).
        ts_ns: UTC ns of the execution.
    """

    order_id: str
    tag: str
    side: int
    qty: int
    price: float
    ref_price: float
    slippage_points: float
    commission: float
    ts_ns: int


class OrderUpdate(NamedTuple):
    """An order status change reported by the venue (ACCEPTED, CANCELLED, REJECTED, EXPIRED, a
    confirmed modify as ACCEPTED with the new ``qty``/``price``). ``parent`` names the entry order
    of a native bracket leg; ``role`` is "stop" / "target" for legs, else ""."""

    order_id: str
    tag: str
    status: OrderStatus
    ts_ns: int
    qty: int = 0
    price: float | None = None
    kind: str = ""
    side: int = 0
    parent: str = ""
    role: str = ""
    reason: str = ""


class PositionUpdate(NamedTuple):
    """Net position at the venue after a change: signed contracts, average price (points)."""

    qty: int
    avg_price: float
    ts_ns: int


VenueEvent = Union[FillEvent, OrderUpdate, PositionUpdate]


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An open order as the venue reports it."""

    order_id: str
    tag: str
    side: int
    qty: int
    filled: int
    kind: str
    price: float | None
    status: OrderStatus


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """A position as the venue reports it: signed contracts, average price in points."""

    symbol: str
    qty: int
    avg_price: float


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """Account as the venue reports it: balance in dollars (realized, after costs)."""

    name: str
    balance: float
    can_trade: bool = True


class Venue(Protocol):
    """What the kernel may ask of a venue. Prices are index points, quantities contracts."""

    native_oco: bool

    def place(self, side: int, qty: int, kind: str, price: float | None = None, *, tag: str,
              bracket: Bracket | None = None) -> str:
        """Submit an order, return its venue id. ``kind``: "market" | "limit" | "stop".
        Raises :class:`SubmissionTimeout` (outcome unknown) or :class:`VenueError`."""

    def modify(self, order_id: str, *, qty: int | None = None, price: float | None = None) -> None:
        """Request a change; confirmed by an :class:`OrderUpdate`."""

    def cancel(self, order_id: str) -> None:
        """Request a cancel; done only when a CANCELLED :class:`OrderUpdate` arrives."""

    def positions(self) -> list[VenuePosition]: ...

    def open_orders(self) -> list[VenueOrder]: ...

    def account(self) -> AccountInfo: ...

    def poll_events(self) -> list[VenueEvent]:
        """Drain the event queue (in arrival order)."""

    def has_events(self) -> bool:
        """True when events are queued (the kernel then steps again before skipping ahead)."""
