"""Bracket / OCO manager (R-EXE-3): one entry, one protective stop, one target, one OCO group.

- ``open`` places the entry (market). With a venue that has native brackets
  (``venue.native_oco``) the bracket rides on the entry (stop/target offsets in ticks from the
  fill); otherwise the manager places the legs itself after each entry fill (managed OCO).
- Partial entry fills resize both legs to the filled position (managed: modify; native: the
  venue does it, the manager tracks the legs from the venue's updates).
- Exactly one leg should fill: when a leg fills, the sibling is resized to the rest of the
  position, or cancelled when the position is flat. A cancel is done only when the venue confirms
  it (PENDING_CANCEL until then). If the sibling fills anyway (both legs filled, or a late fill
  after a cancel request), the position crosses zero: the excess is flattened at once with a
  market order and an alert is raised.
- If the stop is rejected (cannot be placed) while a position stands, the position is closed at
  once with a market order and an alert is raised.
- ``flatten(reason)`` cancels the legs and closes the position with a market order (EOD, risk,
  signal exits).

Invariants (property-tested, tests/test_oco_props.py): after every event the position never
exceeds the intended size unless a market order for exactly the excess is in flight, and a
non-zero position always has a working stop for its full size or a closing market order in
flight.
"""

from __future__ import annotations

from typing import Callable

from engine.execution.position import PositionManager
from engine.execution.orders import (ACCEPTED, CANCELLED, EXPIRED, FILLED, PARTIALLY_FILLED,
                                     PENDING_CANCEL, REJECTED, SUBMITTED, UNKNOWN, Order)
from engine.venue.base import Bracket, FillEvent, OrderUpdate, PositionUpdate, SubmissionTimeout

LIVE = frozenset({SUBMITTED, ACCEPTED, PARTIALLY_FILLED, UNKNOWN})
IN_FLIGHT = LIVE | {PENDING_CANCEL}  # an exit order that may still fill
CANCELLABLE = frozenset({ACCEPTED, PARTIALLY_FILLED, SUBMITTED})
MODIFIABLE = frozenset({ACCEPTED, PARTIALLY_FILLED})
DONE = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED})  # terminal (CANCELLED keeps the late-fill race)
REFUSED = frozenset({REJECTED, EXPIRED})
GONE = frozenset({REJECTED, EXPIRED, CANCELLED})  # a stop that no longer protects
WORKING_LEG = frozenset({SUBMITTED, ACCEPTED, PARTIALLY_FILLED})
_tnew = tuple.__new__


def _is_margin(reason: str | None) -> bool:
    """A refusal for margin: ProjectX ``Order/place`` errorCode 3 InsufficientFunds (reference
    §4), or a venue message saying so."""
    r = (reason or "").lower()
    return "insufficientfunds" in r or "insufficient funds" in r or "margin" in r


class OcoManager:
    """Tracks one bracketed position on one venue.

    Args:
        venue: a :class:`engine.venue.base.Venue`.
        tick_size: points per tick.
        on_alert: callback ``(kind: str, message: str)`` for alert events.
        book: the :class:`engine.execution.position.PositionManager` that owns the position
            (signed contracts, average price, realized P&L). The manager books every fill of its
            own orders there; :attr:`pos` and :attr:`avg` read it (one owner of the position: the
            kernel passes its book). Default: a book of its own (point value 1).
    """

    def __init__(self, venue, tick_size: float, on_alert: Callable[[str, str], None] | None = None,
                 book: PositionManager | None = None) -> None:
        self.venue = venue
        self.tick = float(tick_size)
        self.on_alert = on_alert or (lambda kind, msg: None)
        self.orders: dict[str, Order] = {}
        self.alerts: list[tuple[str, str]] = []
        self.book = book if book is not None else PositionManager(1.0)
        self.last_fill_before = 0  # signed position before the last booked fill
        self.last_fill_pnl = 0.0   # realized P&L of the last booked fill (dollars, before costs)
        self.last_fill_order: Order | None = None  # the order of the last booked fill
        self.side = 0
        self.intended = 0
        self.stop_ticks = 0
        self.target_ticks = 0
        self.entry: Order | None = None
        self.stop: Order | None = None
        self.target: Order | None = None
        self.exits: list[Order] = []
        self.close_reason = ""
        self._seq = 0
        self._margin_retried = False
        self.native = bool(getattr(venue, "native_oco", False))

    @property
    def pos(self) -> int:
        """Signed contracts (the book's)."""
        return self.book.qty

    @property
    def avg(self) -> float:
        """Average entry price of the open position, points (the book's; 0.0 when flat)."""
        return self.book.avg_price

    # ------------------------------------------------------------------ commands
    def _tag(self, role: str) -> str:
        self._seq += 1
        return f"{role}-{self._seq}"

    def _place(self, side: int, qty: int, kind: str, price, role: str, bracket=None) -> Order:
        self._seq += 1  # _tag, inlined
        tag = f"{role}-{self._seq}"
        o = Order(tag, tag, side, qty, kind, price, role)  # order_id, tag, side, qty, kind, price, role
        try:
            oid = self.venue.place(side, qty, kind, price, tag=tag, bracket=bracket)
        except SubmissionTimeout:
            o.transition(UNKNOWN, event="submission timeout")
            self.orders[tag] = o
            self._alert("unknown_order", f"{role} order {tag}: submission timed out; reconcile, never resend")
            return o
        o.order_id = oid
        self.orders[oid] = o
        return o

    def open(self, side: int, qty: int, stop_ticks: int, target_ticks: int) -> Order:
        """Enter ``qty`` contracts on ``side`` (+1/-1) with a bracket; raises ``RuntimeError``
        when a position, an entry or an exit is already live (no duplicate entries) and
        ``ValueError`` for a bad size or bracket."""
        if self.book.qty != 0 or (self.entry is not None and self.entry.status in LIVE) or self._closing_live():
            raise RuntimeError(f"open refused: position {self.book.qty}, entry or exit already live")
        if stop_ticks < 1 or target_ticks < 1 or qty < 1:
            raise ValueError(f"bad bracket: qty={qty} stop_ticks={stop_ticks} target_ticks={target_ticks}")
        self.side, self.intended = side, qty
        self.stop_ticks, self.target_ticks = int(stop_ticks), int(target_ticks)
        self.stop = self.target = None
        self.exits = []
        self.close_reason = ""
        self._margin_retried = False
        # tuple.__new__: the NamedTuple without its Python-level __new__ (one per round trip)
        br = _tnew(Bracket, (self.stop_ticks, self.target_ticks)) if self.native else None
        self.entry = self._place(side, qty, "market", None, "entry", br)
        return self.entry

    def adopt(self, pos: int, avg: float, stop_ticks: int, target_ticks: int, *, protect: bool = True) -> None:
        """Take over a position found at the broker (start-up, ``[live] on_start_position =
        "adopt"``): ``pos`` signed contracts at ``avg`` points are booked into the position book
        (its one owner) and, with ``protect``, protected at once by a stop ``stop_ticks`` and a
        target ``target_ticks`` from ``avg`` (placed as standalone legs: there is no entry for a
        native bracket to ride on). From then on the legs behave as any bracket's (one fills,
        the other is cancelled; a refused stop closes the position). ``protect=False`` is for a
        position the caller closes at once (:meth:`flatten`). Raises ``RuntimeError`` when the
        manager already holds a position or live orders and ``ValueError`` for a bad size or
        bracket."""
        if self.book.qty != 0 or (self.entry is not None and self.entry.status in LIVE) or self._closing_live():
            raise RuntimeError(f"adopt refused: position {self.book.qty}, entry or exit already live")
        if pos == 0 or stop_ticks < 1 or target_ticks < 1:
            raise ValueError(f"bad adoption: pos={pos} stop_ticks={stop_ticks} target_ticks={target_ticks}")
        sgn = 1 if pos > 0 else -1
        self.book.on_fill(sgn, abs(int(pos)), float(avg), 0.0)
        self.side, self.intended = sgn, abs(int(pos))
        self.stop_ticks, self.target_ticks = int(stop_ticks), int(target_ticks)
        self.entry = None
        self.exits = []
        self.close_reason = ""
        if not protect:
            return
        q = abs(self.book.qty)
        grid = lambda x: round(round(x / self.tick) * self.tick, 10)   # noqa: E731 (tick grid)
        self.stop = self._place(-sgn, q, "stop", grid(self.avg - sgn * self.stop_ticks * self.tick), "stop")
        self.target = self._place(-sgn, q, "limit", grid(self.avg + sgn * self.target_ticks * self.tick), "target")

    def flatten(self, reason: str) -> None:
        """Cancel the legs and the unfilled entry; close the position at market (role "exit").
        Idempotent: only the part not yet covered by exits in flight is sent."""
        self.close_reason = self.close_reason or reason
        for o in (self.entry, self.stop, self.target):
            self._cancel(o)
        self._send_exit(0)

    def _send_exit(self, target_pos: int) -> None:
        """Send a market order for whatever moves the position to ``target_pos`` beyond what the
        live exit orders already cover."""
        need = target_pos - self.book.qty - self._exit_in_flight()
        if need != 0:
            self.exits.append(self._place(1 if need > 0 else -1, abs(need), "market", None, "exit"))

    def _exit_in_flight(self) -> int:
        if not self.exits:
            return 0
        return sum(o.side * o.remaining for o in self.exits if o.status in IN_FLIGHT)

    @property
    def closing(self) -> Order | None:
        """The latest exit order (None when none was sent)."""
        return self.exits[-1] if self.exits else None

    def modify_stop(self, price: float) -> None:
        """Move the working stop to ``price`` (trailing / breakeven / EOD tightening)."""
        if self.stop is not None and self.stop.status in MODIFIABLE:
            self.venue.modify(self.stop.order_id, price=price)
            self.stop.price = price

    def _cancel(self, o: Order | None) -> None:
        if o is not None and o.status in CANCELLABLE:
            o.transition(PENDING_CANCEL, event="cancel request")
            self.venue.cancel(o.order_id)

    def closing_live(self) -> bool:
        """True while an exit order may still fill."""
        return self._closing_live()

    def entry_or_exit_live(self) -> bool:
        """True while the entry order works or an exit order may still fill (no new entry then)."""
        return (self.entry is not None and self.entry.is_working) or self._closing_live()

    def _closing_live(self) -> bool:
        return bool(self.exits) and any(o.status in IN_FLIGHT for o in self.exits)

    def _alert(self, kind: str, msg: str) -> None:
        self.alerts.append((kind, msg))
        self.on_alert(kind, msg)

    # ------------------------------------------------------------------ events
    def on_event(self, ev) -> FillEvent | None:
        """Apply one venue event; returns the fill if it was one of ours (for the position book)."""
        t = ev.__class__  # exact types first (the per-event hot path), then subclasses
        if t is OrderUpdate:
            self._on_update(ev)
            return None
        if t is FillEvent:
            return self._on_fill(ev)
        if t is PositionUpdate:
            return None
        if isinstance(ev, FillEvent):
            return self._on_fill(ev)
        if isinstance(ev, OrderUpdate):
            self._on_update(ev)
        elif isinstance(ev, PositionUpdate):
            pass
        return None

    def _on_update(self, ev: OrderUpdate) -> None:
        o = self.orders.get(ev.order_id)
        if o is None:
            if ev.parent and self.entry is not None and ev.parent == self.entry.order_id:
                o = Order(ev.order_id, ev.tag, ev.side, ev.qty, ev.kind, ev.price, ev.role)
                self.orders[ev.order_id] = o
                if ev.role == "stop":
                    self.stop = o
                elif ev.role == "target":
                    self.target = o
            else:
                return
        if ev.status == ACCEPTED:
            if o.status is SUBMITTED or o.status is UNKNOWN:
                o.transition(ACCEPTED, ev.ts_ns, "accepted")
            if o.status not in DONE:
                if ev.qty:
                    o.qty = max(ev.qty, o.filled)
                if ev.price is not None:
                    o.price = ev.price
            self._after_change()
        elif ev.status == CANCELLED:
            if o.status != CANCELLED:
                o.transition(CANCELLED, ev.ts_ns, ev.reason or "cancel confirmed")
            self._after_change()
        elif ev.status in REFUSED:
            if o.status == ev.status:
                return
            o.transition(ev.status, ev.ts_ns, ev.reason)
            if o.role == "stop" and self.book.qty != 0:
                self._alert("stop_rejected", f"stop {o.tag} {ev.status.value}: {ev.reason}; closing at once")
                self.flatten("risk")
            elif o.role == "exit" and self.book.qty != 0:
                self._alert("exit_rejected", f"exit {o.tag} {ev.status.value}: {ev.reason}; resending the close")
            elif (o is self.entry and ev.status == REJECTED and _is_margin(ev.reason) and o.qty > 1
                  and not self._margin_retried and o.filled == 0 and self.pos == 0 and not self.close_reason):
                # R-LIVE-4: insufficient margin → ONE new entry at half the size (a new order,
                # new tag; the refused one is never resent)
                self._margin_retried = True
                q = max(1, o.qty // 2)
                self._alert("margin_retry", f"entry {o.tag} of {o.qty} refused for margin ({ev.reason}); "
                            f"retrying once with {q}")
                self.intended = q
                br = Bracket(self.stop_ticks, self.target_ticks) if self.native else None
                self.entry = self._place(o.side, q, "market", None, "entry", br)
                return
            self._after_change()

    def _on_fill(self, ev: FillEvent) -> FillEvent | None:
        o = self.orders.get(ev.order_id)
        if o is None:
            return None
        o.apply_fill(ev.qty, ev.price, ev.ts_ns)
        self.last_fill_order = o
        self.last_fill_before = self.book.qty
        self.last_fill_pnl = self.book.on_fill(ev.side, ev.qty, ev.price, ev.commission)
        self._after_change()
        return ev

    def _after_change(self) -> None:
        """Restore the invariants after any event: excess → exit at once (+ alert); a close
        requested → exits cover the whole position; flat → legs cancelled; else legs sized."""
        q = self.book.qty
        wrong_side = q != 0 and self.side != 0 and (q > 0) != (self.side > 0)
        over = abs(q) > self.intended
        if wrong_side or over:
            target = 0 if (wrong_side or self.close_reason) else self.side * self.intended
            if target - self.book.qty - self._exit_in_flight() != 0:
                self._alert("oco_excess",
                            f"position {self.book.qty} beyond intended {self.side * self.intended}: "
                            f"flattening the excess at once")
            if wrong_side:
                self.close_reason = self.close_reason or "risk"
                for o in (self.entry, self.stop, self.target):
                    self._cancel(o)
            self._send_exit(target)
            if not wrong_side and not self.close_reason:
                self._size_legs()
            return
        if self.close_reason:
            for o in (self.entry, self.stop, self.target):
                if o is not None and o.status in CANCELLABLE:
                    self._cancel(o)
            if q != 0:
                self._send_exit(0)
            return
        if q == 0:
            e = self.entry
            if e is None or e.status not in LIVE:
                for o in (self.stop, self.target):
                    if o is not None and o.status in CANCELLABLE:  # _cancel's own test, first
                        self._cancel(o)
            return
        if self.native:  # _size_legs' native branch, inlined (every leg event of a position)
            s = self.stop
            if s is not None and s.status in GONE and min(abs(q), self.intended) != 0:
                self._alert("no_stop", f"position {q} without a working stop: closing at once")
                self.flatten("risk")
            return
        self._size_legs()

    def _size_legs(self) -> None:
        """Make both legs cover exactly the position (managed OCO places/modifies; a native
        venue does it itself). A position without a stop that can still be placed → close."""
        q = min(abs(self.book.qty), self.intended)
        if q == 0:
            return
        if self.native:
            if self.stop is not None and self.stop.status in GONE:
                self._alert("no_stop", f"position {self.book.qty} without a working stop: closing at once")
                self.flatten("risk")
            return
        sgn = 1 if self.book.qty > 0 else -1
        for role in ("stop", "target"):
            leg = self.stop if role == "stop" else self.target
            if leg is None or leg.status in DONE:
                if role == "stop" and leg is not None and leg.status in REFUSED:
                    self._alert("no_stop", f"position {self.book.qty} without a working stop: closing at once")
                    self.flatten("risk")
                    return
                price = (self.avg - sgn * self.stop_ticks * self.tick if role == "stop"
                         else self.avg + sgn * self.target_ticks * self.tick)
                leg = self._place(-sgn, q, "stop" if role == "stop" else "limit", price, role)
                if role == "stop":
                    self.stop = leg
                else:
                    self.target = leg
            elif leg.status in WORKING_LEG and leg.remaining != q:
                self.venue.modify(leg.order_id, qty=leg.filled + q)
                leg.qty = leg.filled + q

    # ------------------------------------------------------------------ queries
    def exiting(self) -> bool:
        """True when the position is open and market exits in flight cover all of it (a flatten
        or an EOD/risk close under way): protected by the exit, not by a stop."""
        q = self.book.qty
        return q != 0 and self._closing_live() and -self._exit_in_flight() * (1 if q > 0 else -1) >= abs(q)

    def protected(self) -> bool:
        """True when the position is flat, or a stop covers it, or a close is in flight."""
        if self.book.qty == 0:
            return True
        if self.exiting():
            return True
        s = self.stop
        return s is not None and s.status in LIVE and s.remaining >= abs(self.book.qty)

    def excess(self) -> int:
        """Contracts beyond the intended position (0 when within)."""
        if self.book.qty == 0:
            return 0
        if self.side and (self.book.qty > 0) != (self.side > 0):
            return abs(self.book.qty)
        return max(0, abs(self.book.qty) - self.intended)
