"""ProjectXVenue against the fake gateway over loopback (real signalrcore hubs, real TopstepX
bars): native brackets, managed OCO, the never-resent timed-out placement, flatten."""

from __future__ import annotations

import pytest

from engine.broker.projectx.models import Trade
from engine.broker.projectx.rest import ProjectXClient
from engine.broker.projectx.venue import ProjectXVenue
from engine.clock import LiveClock
from engine.config import Settings
from engine.execution.oco import OcoManager
from engine.execution.orders import OrderStatus as S
from engine.venue.base import Bracket, FillEvent, OrderUpdate, PositionUpdate, SubmissionTimeout, VenueError
from tests.px_fixtures import KEY, USER
from tests.test_px_venue_support import GatewayThread, collect, make_venue, settle


@pytest.fixture
def gt(topstepx_path):
    g = GatewayThread(topstepx_path)
    g.step(4)
    yield g
    g.close()


def _fills(evs, oid=None):
    return [e for e in evs if isinstance(e, FillEvent) and (oid is None or e.order_id == oid)]


def _ups(evs, **kw):
    return [e for e in evs if isinstance(e, OrderUpdate) and all(getattr(e, k) == v for k, v in kw.items())]


def test_native_bracket_entry_fills_and_one_leg_closes(gt):
    v = make_venue(gt)
    rep = v.start(timeout_s=10)
    try:
        assert rep.ok and rep.broker_qty == 0 and v.contract_id == "CON.F.US.MES.Z25"
        assert v.account().balance == 50_000.0 and v.positions() == []
        gt.step(1)                                  # a quote for the reference price
        collect(v, lambda ev: v.last_quote().get("bestAsk") == gt.call(lambda: gt.gw.exchange.market.ask))
        ask = v.last_quote()["bestAsk"]
        oid = v.place(1, 1, "market", tag="e1", bracket=Bracket(stop_ticks=8, target_ticks=12))
        evs = collect(v, lambda ev: len(_ups(ev, parent=oid, status=S.ACCEPTED)) >= 4)
        # wire: one entry with the session-unique tag, signed bracket ticks, children suspended
        orders = gt.call(lambda: dict(gt.gw.exchange.orders))
        tags = sorted(o["customTag"] for o in orders.values())
        assert tags == [v.tag_prefix + "e1", v.tag_prefix + "e1-SL", v.tag_prefix + "e1-TP"]
        sl = next(o for o in orders.values() if o["customTag"].endswith("-SL"))
        tp = next(o for o in orders.values() if o["customTag"].endswith("-TP"))
        assert (sl["type"], sl["trailDistance"], tp["type"], tp["trailDistance"]) == (4, -8, 1, 12)
        # kernel-facing events, in order
        assert _ups(evs, order_id=oid)[0].status == S.ACCEPTED
        legs = _ups(evs, parent=oid)
        assert [(u.role, u.price) for u in legs[:2]] == [("stop", None), ("target", None)]
        f = _fills(evs, oid)
        assert len(f) == 1 and f[0].side == 1 and f[0].price == ask + 0.25
        assert f[0].ref_price == ask and f[0].slippage_points == 0.25 and f[0].commission == 0.42
        assert evs.index(f[0]) < evs.index(legs[2])
        assert {(u.role, u.price) for u in legs[2:]} == {("stop", f[0].price - 2.0), ("target", f[0].price + 3.0)}
        assert any(isinstance(e, PositionUpdate) and e.qty == 1 and e.avg_price == f[0].price for e in evs)
        assert [p.qty for p in v.positions()] == [1]
        assert sorted(o.kind for o in v.open_orders()) == ["limit", "stop"]
        # the market runs into one leg: a fill for it, the sibling cancelled, flat
        evs2: list = []
        for _ in range(400):
            gt.step(1)
            evs2 += v.poll_events()
            if any(isinstance(e, PositionUpdate) and e.qty == 0 for e in evs2):
                break
        evs2 = collect(v, lambda ev: len(_ups(ev, status=S.CANCELLED)) == 1, got=evs2)
        leg_ids = {u.order_id: u.role for u in legs}
        fl = [e for e in _fills(evs2) if e.order_id in leg_ids]
        cancelled = _ups(evs2, status=S.CANCELLED)
        assert len(fl) == 1 and fl[0].side == -1 and cancelled[0].order_id in leg_ids
        assert cancelled[0].order_id != fl[0].order_id
        settle(gt, v)
        assert v.positions() == [] and v.open_orders() == [] and v.reconcile().ok
    finally:
        v.stop()


def test_timed_out_placement_is_not_resent_and_is_reconciled(gt):
    v = make_venue(gt, request_timeout_s=0.4)
    v.start(timeout_s=10)
    try:
        gt.gw.faults.hold_s["Order/place"] = 1.0     # processed, answered too late
        oco = OcoManager(v, 0.25)
        entry = oco.open(1, 1, 8, 8)                  # the kernel's OCO manager: native bracket
        assert entry.status == S.UNKNOWN and entry.order_id == "entry-1"
        assert v.unknown_tags == ["entry-1"]
        gt.gw.faults.hold_s.clear()
        evs = collect(v, lambda ev: len(_ups(ev, parent="entry-1", status=S.ACCEPTED)) >= 4)
        for e in evs:
            oco.on_event(e)
        # resolved under the tag the kernel knows; exactly one order with that tag at the fake
        orders = gt.call(lambda: list(gt.gw.exchange.orders.values()))
        assert [o["customTag"] for o in orders].count(v.tag_prefix + "entry-1") == 1
        assert gt.gw.calls["Order/place"] == 1 and v.unknown_tags == []
        assert entry.status == S.FILLED and oco.pos == 1 and oco.protected()
        assert oco.stop.price is not None and oco.target.price is not None
        assert v.broker_id("entry-1") == next(o["id"] for o in orders if o["customTag"] == v.tag_prefix + "entry-1")
        # the kernel can modify the leg it learned through the alias
        v.modify(oco.stop.order_id, price=oco.stop.price - 1.0)
        up = collect(v, lambda ev: any(u.reason.startswith("updated") for u in _ups(ev, order_id=oco.stop.order_id)))
        assert _ups(up, order_id=oco.stop.order_id)[-1].price == oco.stop.price - 1.0
    finally:
        v.stop()


def test_placement_that_never_reached_the_broker_is_declared_rejected(gt):
    v = make_venue(gt, request_timeout_s=0.3, unknown_grace_s=0.0)
    v.start(timeout_s=10)
    try:
        gt.gw.faults.http_500 = 1                   # 5xx on a mutation: outcome unknown
        with pytest.raises(SubmissionTimeout):
            v.place(-1, 1, "market", tag="lost-1")
        evs = collect(v, lambda ev: bool(_ups(ev, order_id="lost-1")))
        assert _ups(evs, order_id="lost-1")[0].status == S.REJECTED
        assert gt.gw.calls["Order/place"] == 1 and gt.call(lambda: len(gt.gw.exchange.orders)) == 0
    finally:
        v.stop()


def test_managed_oco_legs_placed_by_the_kernel_and_refusals(gt):
    v = make_venue(gt, native_oco=False)
    v.start(timeout_s=10)
    try:
        with pytest.raises(VenueError, match="native_oco=False"):
            v.place(1, 1, "market", tag="x", bracket=Bracket(4, 4))
        with pytest.raises(VenueError, match="needs a price"):
            v.place(1, 1, "limit", tag="y")
        gt.gw.faults.reject_next_place = "Invalid price"
        rid = v.place(1, 1, "stop", 6000.0, tag="rej")     # refused by the broker: REJECTED event
        rej = collect(v, lambda ev: bool(_ups(ev, order_id=rid)))
        assert _ups(rej, order_id=rid)[0].status == S.REJECTED and "Invalid price" in rej[0].reason
        oco = OcoManager(v, 0.25)
        oco.open(-1, 2, 6, 6)
        got: list = []
        for _ in range(400):
            for e in v.poll_events():
                got.append(e)
                oco.on_event(e)
            if oco.pos == 0 and any(isinstance(e, FillEvent) and e.side == 1 for e in got):
                break
            gt.step(1)
        settle(gt, v)
        for e in v.poll_events():
            oco.on_event(e)
        assert oco.pos == 0 and oco.stop is not None and oco.target is not None
        legs = {oco.stop.status, oco.target.status}
        assert legs == {S.FILLED, S.CANCELLED}
        assert gt.call(lambda: [o["status"] for o in gt.gw.exchange.orders.values()]).count(1) == 0
        assert v.positions() == [] and v.open_orders() == []
    finally:
        v.stop()


def test_flatten_closes_and_cancels_every_working_order(gt):
    v = make_venue(gt)
    v.start(timeout_s=10)
    try:
        oid = v.place(1, 2, "market", tag="f1", bracket=Bracket(20, 20))
        collect(v, lambda ev: sum(1 for u in _ups(ev, parent=oid) if u.price is not None) >= 2)
        v.place(1, 1, "limit", 4000.0, tag="far-limit")
        assert len(v.open_orders()) == 3
        sent = v.flatten("test")
        assert len(sent) == 3
        settle(gt, v)
        evs = v.poll_events()
        assert v.positions() == [] and v.open_orders() == [] and v.pos_qty == 0
        assert len(_ups(evs, status=S.CANCELLED)) == 3
        assert v.flatten("again") == []            # flat and nothing working: a no-op
    finally:
        v.stop()


def test_commission_from_fees_else_settings_and_secret_free_repr():
    clock = LiveClock()
    v = ProjectXVenue(Settings(), clock, base_url="http://127.0.0.1:9",
                      client=ProjectXClient("http://127.0.0.1:9", USER, KEY, clock), tag_prefix="t-")
    v.account_id, v.contract_id = 1, "C"
    base = {"accountId": 1, "contractId": "C", "orderId": 5, "price": 5000.0, "side": 1, "size": 3,
            "creationTimestamp": "2025-10-01T14:00:00+00:00"}
    v._apply_trade(Trade.from_json({**base, "id": 1, "fees": 1.11, "commissions": 0.5}), 0)
    v._apply_trade(Trade.from_json({**base, "id": 2}), 0)
    v._apply_trade(Trade.from_json({**base, "id": 2}), 0)           # duplicate trade id
    f = v.poll_events()
    assert [round(e.commission, 2) for e in f] == [1.61, round(3 * 0.42, 2)]
    assert v.stats["dup_fills"] == 1 and f[0].side == -1 and f[0].ts_ns > 0
    assert KEY not in repr(v.client)
    with pytest.raises(VenueError, match="not started"):
        v.positions()
