"""Position manager and reconciliation (R-EXE-4).

The local position (signed contracts), its average price (points), realized P&L (dollars, at
fill prices, before costs), costs and unrealized P&L at a mark. The venue is the source of truth:
:meth:`PositionManager.reconcile` compares with the venue's positions and open orders in one of
three modes (:class:`engine.config.ReconcileConfig`):
- ``strict``: any mismatch raises :class:`ReconcileError` (the caller halts trading);
- ``warn``: mismatches are returned, local state is kept;
- ``auto-sync``: the venue's position replaces the local one and the mismatch is returned.
An order whose submission timed out is UNKNOWN: it stays in :attr:`unknown` until reconcile finds
its tag among the venue's open orders (then it is working) or the caller resolves it from fills;
it is never resent.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr
from dataclasses import dataclass, field

from engine.execution.orders import Order, OrderStatus


@mypyc_attr(native_class=False)  # mypyc (setup.py) compiles builtin-exception subclasses as Python classes
class ReconcileError(RuntimeError):
    """Local and venue state disagree in strict mode (names what differs)."""


@dataclass
class ReconcileResult:
    ok: bool
    mismatches: list[str] = field(default_factory=list)
    synced: bool = False
    resolved_unknown: list[str] = field(default_factory=list)


class PositionManager:
    """Local position book for one instrument. ``point_value``: dollars per point per contract."""

    def __init__(self, point_value: float) -> None:
        self.point_value = float(point_value)
        self.qty = 0
        self.avg_price = 0.0
        self.realized = 0.0
        self.costs = 0.0
        self.unknown: dict[str, Order] = {}

    def on_fill(self, side: int, qty: int, price: float, commission: float = 0.0) -> float:
        """Book a fill; returns the realized P&L of this fill (dollars, before costs)."""
        dq = side * qty
        self.costs += commission
        if self.qty == 0 or (dq > 0) == (self.qty > 0):
            new = self.qty + dq
            self.avg_price = (self.avg_price * abs(self.qty) + price * qty) / abs(new)
            self.qty = new
            return 0.0
        close = min(qty, abs(self.qty))
        pnl = (price - self.avg_price) * (1 if self.qty > 0 else -1) * close * self.point_value
        self.realized += pnl
        rest = qty - close
        self.qty += dq
        if self.qty == 0:
            self.avg_price = 0.0
        elif rest > 0:
            self.avg_price = price
        return pnl

    def unrealized(self, mark: float) -> float:
        """Open P&L at ``mark`` (points) in dollars."""
        return (mark - self.avg_price) * self.qty * self.point_value if self.qty else 0.0

    def mark_unknown(self, order: Order) -> None:
        """A submission timed out: keep the order as UNKNOWN until reconciled (never resend)."""
        order.transition(OrderStatus.UNKNOWN, event="submission timeout")
        self.unknown[order.tag] = order

    def reconcile(self, venue_positions, venue_orders, mode: str) -> ReconcileResult:
        """Compare with the venue. ``venue_positions``: list of VenuePosition; ``venue_orders``:
        list of VenueOrder. Raises :class:`ReconcileError` in strict mode on a mismatch and
        ``ValueError`` for an unknown mode."""
        if mode not in ("strict", "warn", "auto-sync"):
            raise ValueError(f"unknown reconcile mode {mode!r}; allowed: strict, warn, auto-sync")
        res = ReconcileResult(ok=True)
        by_tag = {o.tag: o for o in venue_orders}
        for tag, order in list(self.unknown.items()):
            if tag in by_tag:
                v = by_tag[tag]
                order.order_id = v.order_id
                order.transition(OrderStatus.ACCEPTED, event="reconciled")
                del self.unknown[tag]
                res.resolved_unknown.append(tag)
        vq = sum(p.qty for p in venue_positions)
        vavg = venue_positions[0].avg_price if venue_positions else 0.0
        if vq != self.qty or (vq and abs(vavg - self.avg_price) > 1e-9):
            res.ok = False
            res.mismatches.append(
                f"position: local {self.qty} @ {self.avg_price:.2f}, venue {vq} @ {vavg:.2f}")
        if self.unknown:
            res.ok = False
            res.mismatches.append("unknown submissions still unresolved: " + ", ".join(sorted(self.unknown)))
        if not res.ok:
            if mode == "strict":
                raise ReconcileError("reconcile (strict): " + "; ".join(res.mismatches))
            if mode == "auto-sync":
                self.qty, self.avg_price = vq, vavg
                res.synced = True
        return res
