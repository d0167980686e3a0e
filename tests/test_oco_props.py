"""Property tests of the managed OCO manager (R-EXE-3) against a venue whose events arrive in any
interleaving: acks, rejections, partial fills, cancel confirmations, fills racing cancels and
late fills after a confirmed cancel.

Invariants checked after every event:
- the position never exceeds the intended size (or stands on the wrong side) without a market
  exit for the excess already in flight (sent in reaction to that same event);
- a non-zero position always has a working stop for its full size, or exits in flight that
  close it completely.
"""

from __future__ import annotations

from hypothesis import given, strategies as st

from engine.execution.oco import OcoManager
from engine.execution.orders import OrderStatus
from engine.venue.base import FillEvent, OrderUpdate

S = OrderStatus


class ScriptedVenue:
    """A venue without native brackets whose next action is chosen by the test."""

    native_oco = False

    def __init__(self) -> None:
        self.orders: dict[str, dict] = {}
        self.events: list = []
        self.n = 0

    def place(self, side, qty, kind, price=None, *, tag, bracket=None):
        assert bracket is None
        self.n += 1
        oid = f"V{self.n}"
        self.orders[oid] = dict(id=oid, tag=tag, side=side, qty=qty, filled=0, kind=kind, price=price,
                                state="new")
        return oid

    def modify(self, oid, *, qty=None, price=None):
        o = self.orders[oid]
        if o["state"] not in ("new", "working"):
            return  # too late: the venue ignores it (the order already filled / is cancelling)
        o["state"] = "working"  # a confirmed modify implies the venue holds the order
        if qty is not None:
            o["qty"] = qty
        if price is not None:
            o["price"] = price
        self.events.append(OrderUpdate(oid, o["tag"], S.ACCEPTED, 0, o["qty"], o["price"], o["kind"], o["side"]))

    def cancel(self, oid):
        o = self.orders[oid]
        if o["state"] in ("new", "working"):
            o["state"] = "cancel_req"

    def poll_events(self):
        out, self.events = self.events, []
        return out

    def actions(self, allow_late: bool):
        acts = []
        for oid, o in self.orders.items():
            rem = o["qty"] - o["filled"]
            if o["state"] == "new":
                acts.append(("ack", oid))
                acts.append(("reject", oid))
            if o["state"] in ("working", "cancel_req") and rem > 0:
                acts.append(("fill", oid))
            if o["state"] == "cancel_req":
                acts.append(("cancel_ok", oid))
            if allow_late and o["state"] == "cancelled" and rem > 0 and o["kind"] != "market":
                acts.append(("late_fill", oid))
        return acts

    def do(self, act, qty_pick: int) -> None:
        kind, oid = act
        o = self.orders[oid]
        if kind == "ack":
            o["state"] = "working"
            self.events.append(OrderUpdate(oid, o["tag"], S.ACCEPTED, 0, o["qty"], o["price"], o["kind"], o["side"]))
        elif kind == "reject":
            o["state"] = "rejected"
            self.events.append(OrderUpdate(oid, o["tag"], S.REJECTED, 0, o["qty"], o["price"], o["kind"], o["side"],
                                           reason="scripted rejection"))
        elif kind == "cancel_ok":
            o["state"] = "cancelled"
            self.events.append(OrderUpdate(oid, o["tag"], S.CANCELLED, 0, o["qty"], o["price"], o["kind"], o["side"]))
        else:  # fill / late_fill
            rem = o["qty"] - o["filled"]
            q = 1 + qty_pick % rem
            o["filled"] += q
            if o["filled"] == o["qty"] and o["state"] != "cancelled":
                o["state"] = "filled"
            px = o["price"] if o["price"] is not None else 5000.0
            self.events.append(FillEvent(oid, o["tag"], o["side"], q, px, px, 0.0, 0.42 * q, 0))


def _check(m: OcoManager) -> None:
    if m.excess() > 0:
        in_flight = -m._exit_in_flight() * (1 if m.pos > 0 else -1)
        assert in_flight >= m.excess(), f"excess {m.excess()} with only {in_flight} exiting; pos {m.pos}"
    if m.pos != 0:
        assert m.protected(), (f"position {m.pos} unprotected: stop "
                               f"{m.stop and (m.stop.status, m.stop.remaining)}, exits {m._exit_in_flight()}")


@given(side=st.sampled_from([1, -1]), qty=st.integers(1, 3), allow_late=st.booleans(),
       script=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10)), max_size=60))
def test_oco_invariants_under_any_interleaving(side, qty, allow_late, script):
    v = ScriptedVenue()
    m = OcoManager(v, 0.25)
    m.open(side, qty, 8, 12)
    for pick, qpick in script:
        acts = v.actions(allow_late)
        if not acts:
            break
        v.do(acts[pick % len(acts)], qpick)
        for ev in v.poll_events():
            m.on_event(ev)
            # modifies triggered by this event come back as further events: deliver them too
        for ev in v.poll_events():
            m.on_event(ev)
        _check(m)


@given(script=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10)), max_size=80))
def test_everything_settles_flat_after_a_flatten(script):
    """Whatever happened, a flatten followed by the venue working off every order ends flat."""
    v = ScriptedVenue()
    m = OcoManager(v, 0.25)
    m.open(1, 2, 8, 12)
    for pick, qpick in script:
        acts = v.actions(True)
        if not acts:
            break
        v.do(acts[pick % len(acts)], qpick)
        for ev in v.poll_events():
            m.on_event(ev)
        _check(m)
    m.flatten("eod_flatten")
    for _ in range(200):  # the venue now acks, fills exits and confirms cancels, no more rejects
        acts = [a for a in v.actions(False) if a[0] != "reject"]
        acts = [a for a in acts if not (a[0] == "fill" and v.orders[a[1]]["kind"] != "market")] or acts
        if not acts:
            break
        v.do(acts[0], 10)
        for ev in v.poll_events():
            m.on_event(ev)
        _check(m)
    assert m.pos == 0


def test_double_fill_flattens_excess_and_alerts():
    v = ScriptedVenue()
    m = OcoManager(v, 0.25)
    e = m.open(1, 1, 8, 12)
    v.do(("ack", e.order_id), 0)
    v.do(("fill", e.order_id), 0)
    for ev in v.poll_events():
        m.on_event(ev)
    stop, target = m.stop, m.target
    assert stop is not None and target is not None and stop.price == 5000.0 - 2.0 and target.price == 5003.0
    for o in (stop, target):
        v.do(("ack", o.order_id), 0)
    v.do(("fill", target.order_id), 0)
    for ev in v.poll_events():
        m.on_event(ev)
    assert m.pos == 0 and stop.status == S.PENDING_CANCEL  # cancel requested, not yet done
    v.do(("fill", stop.order_id), 0)  # the race: the stop fills before the cancel lands
    for ev in v.poll_events():
        m.on_event(ev)
    assert m.pos == -1
    assert any(k == "oco_excess" for k, _ in m.alerts)
    assert m.closing is not None and m.closing.side == 1 and m.closing.qty == 1


def test_stop_rejected_closes_at_once():
    v = ScriptedVenue()
    m = OcoManager(v, 0.25)
    e = m.open(-1, 2, 8, 12)
    v.do(("ack", e.order_id), 0)
    v.do(("fill", e.order_id), 1)  # full fill of 2
    for ev in v.poll_events():
        m.on_event(ev)
    v.do(("reject", m.stop.order_id), 0)
    for ev in v.poll_events():
        m.on_event(ev)
    assert any(k == "stop_rejected" for k, _ in m.alerts)
    assert m.closing is not None and m.closing.side == 1 and m.closing.qty == 2
    assert m.close_reason == "risk"


def test_partial_entry_fills_resize_legs():
    v = ScriptedVenue()
    m = OcoManager(v, 0.25)
    e = m.open(1, 3, 8, 12)
    v.do(("ack", e.order_id), 0)
    v.do(("fill", e.order_id), 0)  # 1 of 3
    for ev in v.poll_events():
        m.on_event(ev)
    assert m.pos == 1 and m.stop.qty == 1 and m.target.qty == 1
    v.do(("fill", e.order_id), 0)  # 2 of 3
    for ev in v.poll_events():
        m.on_event(ev)
    assert m.pos == 2 and m.stop.remaining == 2 and m.target.remaining == 2
    assert v.orders[m.stop.order_id]["qty"] == 2
