"""ProjectX entity parsing (engine/broker/projectx/models.py) and the adapter's read-only view
of its venue (engine/broker/projectx/connection.py): what the table-driven parsers promise."""

from __future__ import annotations

import dataclasses

import pytest

from engine.broker.base import ReconcileReport
from engine.broker.projectx.connection import ProjectXConnection
from engine.broker.projectx.models import Account, Contract, Order, Position, Trade, parse_ts
from engine.broker.projectx.venue import ProjectXVenue
from engine.clock import SimClock
from engine.config import Secrets, Settings

ORDER = {"id": "41", "accountId": 7.0, "contractId": "CON.F.US.MES.Z25", "status": 1, "type": 1,
         "side": 0, "size": 2, "limitPrice": 6500.25, "stopPrice": None, "fillVolume": None,
         "customTag": "e-1", "creationTimestamp": "2025-09-04T13:30:00.123456789Z",
         "updateTimestamp": None, "linkedOrderId": "40"}


def test_an_order_is_read_field_by_field_from_its_wire_keys() -> None:
    o = Order.from_json(ORDER)
    assert (o.id, o.account_id, o.contract_id, o.status, o.type, o.side, o.size) == \
        (41, 7, "CON.F.US.MES.Z25", 1, 1, 0, 2)
    assert (o.limit_price, o.stop_price, o.fill_volume, o.filled_price) == (6500.25, None, 0, None)
    assert o.creation_ns == parse_ts("2025-09-04T13:30:00.123456789Z") and o.creation_ns % 1000 == 789
    assert (o.update_ns, o.parent_order_id, o.linked_order_id, o.trail_distance) == (None, None, 40, None)
    assert o.custom_tag == "e-1" and o.raw == ORDER and o.raw is not ORDER
    assert o == Order.from_json({**ORDER, "extra": 1})            # raw takes no part in equality


def test_absent_optional_fields_take_their_documented_values() -> None:
    a = Account.from_json({"id": 3})
    assert (a.name, a.balance, a.can_trade, a.is_visible, a.simulated) == ("", 0.0, False, True, None)
    p = Position.from_json({"accountId": 3, "contractId": "C", "type": 2, "size": 1})
    assert (p.id, p.average_price, p.creation_ns, p.signed_size) == (0, 0.0, None, -1)
    t = Trade.from_json({"id": 9, "accountId": 3, "contractId": "C", "orderId": 4, "price": 6500,
                         "side": 1, "size": 1, "fees": None})
    assert (t.profit_and_loss, t.fees, t.voided, t.price) == (None, 0.0, False, 6500.0)


@pytest.mark.parametrize("cls, d, message", [
    (Order, {k: v for k, v in ORDER.items() if k != "side"}, r"Order: field 'side' missing"),
    (Contract, {"id": "C", "tickSize": 0.25}, r"Contract: field 'tickValue' missing"),
    (Trade, {"id": 1, "accountId": 2.5, "contractId": "C"}, r"Trade.accountId 2.5: not an integer"),
    (Order, {**ORDER, "linkedOrderId": "x"}, r"Order.linkedOrderId 'x': expected an integer id"),
    (Position, {"id": True, "accountId": 1}, r"Position.id True: expected an integer id"),
])
def test_a_malformed_entity_names_the_entity_and_the_field(cls, d, message) -> None:
    with pytest.raises(ValueError, match=message):
        cls.from_json(d)


def test_the_connection_reads_its_venues_state_live_and_never_writes_it() -> None:
    s = dataclasses.replace(Settings(), secrets=Secrets(projectx_username="u", projectx_api_key="k" * 12))
    v = ProjectXVenue(s, SimClock(1_757_000_000_000_000_000), base_url="http://127.0.0.1:9")
    c = ProjectXConnection(v)
    assert (c.position_qty, c.balance, c.last_reconcile, c.account_events) == (0, None, None, 0)
    v.pos_qty, v.balance, v.account_name, v.tick = 2, 50_000.0, "PRAC-1", 0.25
    rep = ReconcileReport(ts_ns=1, reason="startup")
    v.last_reconcile = rep
    assert (c.position_qty, c.balance, c.account_name, c.tick, c.last_reconcile) == (2, 50_000.0, "PRAC-1", 0.25, rep)
    assert c.stats is v.stats and c.venue is v
    with pytest.raises(AttributeError, match="position_qty"):
        c.position_qty = 1                                       # type: ignore[misc]
    assert v.pos_qty == 2
    with pytest.raises(ValueError, match="PROJECTX_USERNAME and PROJECTX_API_KEY"):
        ProjectXConnection.from_settings(Settings(), SimClock(0))
