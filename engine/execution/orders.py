"""Order life cycle: one explicit state table, races included (R-EXE-1).

States: SUBMITTED (sent, no answer yet), ACCEPTED (working at the venue), PARTIALLY_FILLED,
FILLED, PENDING_CANCEL (cancel requested, not confirmed), CANCELLED, REJECTED, EXPIRED, and
UNKNOWN (the submission timed out: the outcome is unknown until a reconciliation says what
happened; such an order is never resent).

The table follows nautilus_trader's ``_ORDER_STATE_TABLE`` (reference/architecture.md §4): a fill
can cross a cancel on the wire, so PENDING_CANCEL → FILLED / PARTIALLY_FILLED and the late fill
CANCELLED → FILLED / PARTIALLY_FILLED are legal. Anything not in the table raises
:class:`IllegalTransition` naming the order, both states and the event.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr
from dataclasses import dataclass, field

from engine.venue.base import OrderStatus  # the venue's status words (execution → venue, one way)


S = OrderStatus

(SUBMITTED, ACCEPTED, PARTIALLY_FILLED, FILLED, PENDING_CANCEL, CANCELLED, REJECTED, EXPIRED,
 UNKNOWN) = OrderStatus
# Module-level names of the statuses for the execution hot path: reading ``OrderStatus.X`` is
# an Enum class-attribute lookup (about 75 ns on CPython 3.11), and a backtest tests statuses a
# few hundred times per round trip.

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.SUBMITTED: frozenset({S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED,
                            S.PENDING_CANCEL, S.EXPIRED, S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED,
                          S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED,
                           S.EXPIRED, S.ACCEPTED}),  # ACCEPTED → ACCEPTED: a confirmed modify
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED,
                                   S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELLED, S.FILLED, S.PARTIALLY_FILLED, S.ACCEPTED,
                                 S.PENDING_CANCEL}),  # → ACCEPTED: cancel refused by the venue
    S.CANCELLED: frozenset({S.FILLED, S.PARTIALLY_FILLED}),  # the late fill race
    S.FILLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
"""Every legal (from → to) transition. Terminal states map to the empty set (CANCELLED keeps
only the late-fill race)."""

TERMINAL = frozenset({S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED})
WORKING = frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.UNKNOWN})


@mypyc_attr(native_class=False)  # mypyc (setup.py) compiles builtin-exception subclasses as Python classes
class IllegalTransition(RuntimeError):
    """A status change the state table does not allow (a bug or a venue protocol violation)."""


def check_transition(order_id: str, old: OrderStatus, new: OrderStatus, event: str = "") -> None:
    """Raise :class:`IllegalTransition` unless ``old → new`` is in :data:`TRANSITIONS`."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(
            f"order {order_id}: illegal transition {old.value} → {new.value}"
            + (f" on {event}" if event else "")
        )


@dataclass(slots=True)
class Order:
    """Local record of one order.

    Attributes:
        order_id: venue id (the custom tag until the venue answers).
        tag: custom tag, unique per order (used to reconcile an UNKNOWN submission).
        side: +1 buy, -1 sell.
        qty: contracts ordered (≥ 1).
        kind: "market" | "limit" | "stop".
        price: limit/stop price in index points (None for market).
        role: "entry", "stop", "target", "exit".
        filled: contracts filled so far.
        avg_fill: average fill price, points.
        status: :class:`OrderStatus`.
        history: list of (status, ts_ns) in order.
    """

    order_id: str
    tag: str
    side: int
    qty: int
    kind: str
    price: float | None = None
    role: str = "entry"
    filled: int = 0
    avg_fill: float = 0.0
    status: OrderStatus = S.SUBMITTED
    history: list = field(default_factory=list)

    def __init__(self, order_id: str, tag: str, side: int, qty: int, kind: str,
                 price: float | None = None, role: str = "entry", filled: int = 0,
                 avg_fill: float = 0.0, status: OrderStatus = S.SUBMITTED,
                 history: list | None = None) -> None:
        # explicit (same parameters and defaults as the fields; ``history`` None = a new list):
        # mypyc (setup.py) compiles it, where the dataclass-generated __init__ is a Python
        # function, about 4x the cost; three orders per round trip
        self.order_id = order_id
        self.tag = tag
        self.side = side
        self.qty = qty
        self.kind = kind
        self.price = price
        self.role = role
        self.filled = filled
        self.avg_fill = avg_fill
        self.status = status
        self.history = [] if history is None else history

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    def transition(self, new: OrderStatus, ts_ns: int = 0, event: str = "") -> None:
        """Move to ``new`` (checked against the table); raises :class:`IllegalTransition`."""
        if new not in TRANSITIONS[self.status]:  # check_transition inlined: the hot path
            check_transition(self.order_id, self.status, new, event)
        self.status = new
        self.history.append((new, ts_ns))

    def apply_fill(self, qty: int, price: float, ts_ns: int = 0) -> None:
        """Add a fill of ``qty`` contracts at ``price``; moves to PARTIALLY_FILLED or FILLED.

        Raises :class:`IllegalTransition` if the fill exceeds the ordered quantity or the state
        table forbids it."""
        if qty <= 0 or self.filled + qty > self.qty:
            raise IllegalTransition(
                f"order {self.order_id}: fill of {qty} with {self.filled}/{self.qty} already filled"
            )
        new = FILLED if self.filled + qty == self.qty else PARTIALLY_FILLED
        if new not in TRANSITIONS[self.status]:
            check_transition(self.order_id, self.status, new, "fill")
        self.avg_fill = (self.avg_fill * self.filled + price * qty) / (self.filled + qty)
        self.filled += qty
        self.status = new
        self.history.append((new, ts_ns))
