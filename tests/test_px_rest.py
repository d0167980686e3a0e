"""ProjectX REST client against the fake gateway over loopback (real TopstepX ES bars)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.broker.projectx import (
    AuthError, NotFoundError, OrderSide, OrderStatus, OrderType, OutcomeUnknown,
    RateLimitedError, RejectedError,
)
from engine.broker.projectx.models import Bracket
from engine.broker.projectx.rest import ProjectXClient
from engine.clock import LiveClock, SimClock
from tests.px_fixtures import KEY, USER, gateway_and_client


async def _ready(gw, px, steps=4):
    for _ in range(steps):
        gw.exchange.step()
    await px.login()
    acct = (await px.search_accounts())[0]
    mes = await px.resolve_front_month()
    return acct, mes


async def test_login_bad_key_is_auth_error_without_the_key(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, _):
        bad = ProjectXClient(gw.base_url, USER, "wrong-key-123456", LiveClock())
        with pytest.raises(AuthError) as ei:
            await bad.login()
        await bad.close()
        assert ei.value.code == 3 and ei.value.name == "InvalidCredentials"
        assert "wrong-key-123456" not in str(ei.value)


async def test_plain_http_refused_off_loopback():
    with pytest.raises(ValueError, match="loopback"):
        ProjectXClient("http://api.example.com", USER, KEY, LiveClock())


async def test_token_renewed_before_expiry_by_clock(topstepx_path):
    clock = SimClock(LiveClock().now_ns())
    async with gateway_and_client(topstepx_path, client_clock=clock, renew_margin_s=600) as (gw, px):
        await px.login()
        t1, e1 = px.current_token(), px.token_expiry_ns
        await px.search_accounts()
        assert gw.calls.get("Auth/validate", 0) == 0
        clock.advance_to(px.token_expiry_ns - 300 * 1_000_000_000)   # inside the margin
        await px.search_accounts()
        assert gw.calls["Auth/validate"] == 1
        changed = px.current_token() != t1
        assert changed and px.token_expiry_ns > e1


async def test_expired_token_401_relogs_in(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        await px.login()
        gw.expire_tokens()
        accts = await px.search_accounts()
        assert accts[0].balance == 50_000.0
        assert px.stats["http_401"] == 1 and gw.calls["Auth/loginKey"] == 2


async def test_contract_resolution_picks_active_mes(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        await px.login()
        rows = await px.search_contracts("MES")
        assert len(rows) >= 3      # the active, the next (inactive) and a look-alike root
        c = await px.resolve_front_month()
        assert c.id == "CON.F.US.MES.Z25" and c.tick_size == 0.25 and c.tick_value == 1.25
        assert (await px.contract_by_id(c.id)).id == c.id
        with pytest.raises(NotFoundError):
            await px.contract_by_id("CON.F.US.MES.Z99")


async def test_bars_oldest_first_and_match_the_data(topstepx_path):
    from tests.px_fixtures import bars as frame
    async with gateway_and_client(topstepx_path) as (gw, px):
        for _ in range(4 * 30):
            gw.exchange.step()
        await px.login()
        df = frame(topstepx_path)
        t0 = int(df["ts_event"].iloc[0].value)
        got = await px.retrieve_bars("CON.F.US.MES.Z25", t0, t0 + 3600 * 10**9, limit=20)
        assert len(got) == 20 and got[0].ts_ns < got[-1].ts_ns
        assert got[-1].ts_ns == int(df["ts_event"].iloc[29].value)
        assert got[-1].close == df["close"].iloc[29] and got[-1].high == df["high"].iloc[29]


async def test_place_cancel_search_round_trip(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        acct, mes = await _ready(gw, px)
        start = px.clock.now_ns() - 10**9
        last = gw.exchange.market.last
        oid = await px.place_order(acct.id, mes.id, OrderType.LIMIT, OrderSide.BUY, 1,
                                   limit_price=last - 20, custom_tag="rt-1")
        open_ = await px.search_open_orders(acct.id)
        assert [o.id for o in open_] == [oid] and open_[0].status == OrderStatus.OPEN
        with pytest.raises(RejectedError, match="already in use"):
            await px.place_order(acct.id, mes.id, OrderType.LIMIT, OrderSide.BUY, 1,
                                 limit_price=last - 20, custom_tag="rt-1")
        with pytest.raises(RejectedError, match="Invalid price"):
            await px.place_order(acct.id, mes.id, OrderType.LIMIT, OrderSide.BUY, 1,
                                 limit_price=last - 20.1, custom_tag="rt-2")
        await px.modify_order(acct.id, oid, limit_price=last - 10)
        assert (await px.order_by_id(acct.id, oid)).limit_price == last - 10
        await px.cancel_order(acct.id, oid)
        with pytest.raises(RejectedError):          # cancel of a terminal order: code 3
            await px.cancel_order(acct.id, oid)
        hist = await px.search_orders(acct.id, start)
        assert [(o.id, o.status, o.custom_tag) for o in hist] == [(oid, OrderStatus.CANCELLED, "rt-1")]
        assert await px.search_open_orders(acct.id) == []


async def test_bracket_exactly_one_leg_fills(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        acct, mes = await _ready(gw, px)
        start = px.clock.now_ns() - 10**9
        with pytest.raises(RejectedError, match="less than zero when longing"):
            await px.place_order(acct.id, mes.id, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="bad",
                                 stop_loss_bracket=Bracket(8, OrderType.STOP))
        oid = await px.place_order(acct.id, mes.id, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="br-1",
                                   stop_loss_bracket=Bracket(-8, OrderType.STOP),
                                   take_profit_bracket=Bracket(8, OrderType.LIMIT))
        legs = {o.custom_tag: o for o in await px.working_orders(acct.id, mes.id)}
        assert set(legs) == {"br-1-SL", "br-1-TP"}
        entry = await px.order_by_id(acct.id, oid)
        assert entry.status == OrderStatus.FILLED
        assert legs["br-1-SL"].stop_price == entry.filled_price - 2.0
        assert legs["br-1-TP"].limit_price == entry.filled_price + 2.0
        assert legs["br-1-TP"].linked_order_id == legs["br-1-SL"].id
        for _ in range(4 * 200):
            gw.exchange.step()
            if not await px.search_open_positions(acct.id):
                break
        assert await px.search_open_positions(acct.id) == []
        tagged = await px.find_orders_by_tag(acct.id, "br-1", start)
        st = sorted(o.status for o in tagged if o.custom_tag != "br-1")
        assert st == [OrderStatus.FILLED, OrderStatus.CANCELLED]
        trades = await px.search_trades(acct.id, start)
        assert len(trades) == 2 and trades[0].profit_and_loss is None and trades[1].profit_and_loss is not None


async def test_both_legs_racing_fault_is_visible(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        acct, mes = await _ready(gw, px)
        gw.faults.bracket_race = True
        await px.place_order(acct.id, mes.id, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="race",
                             stop_loss_bracket=Bracket(-4, OrderType.STOP),
                             take_profit_bracket=Bracket(4, OrderType.LIMIT))
        for _ in range(4 * 200):
            gw.exchange.step()
            if not await px.working_orders(acct.id):
                break
        pos = await px.search_open_positions(acct.id)
        assert len(pos) == 1 and pos[0].size == 1            # both legs filled: reversed to short 1
        assert pos[0].signed_size == -1
        await px.close_position(acct.id, mes.id)
        assert await px.search_open_positions(acct.id) == []


async def test_429_burst_reads_back_off_and_succeed(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        await px.login()
        gw.faults.http_429 = 3
        gw.faults.retry_after_s = 0.01
        accts = await px.search_accounts()
        assert accts and px.stats["http_429"] == 3 and px.stats["retries"] == 3
        gw.faults.http_429 = 1
        with pytest.raises(RateLimitedError):          # a placement is refused, not retried
            await px.place_order(accts[0].id, "CON.F.US.MES.Z25", OrderType.MARKET, OrderSide.BUY, 1,
                                 custom_tag="rl-1")
        assert gw.calls.get("Order/place", 0) == 1


async def test_500_reads_retry_but_mutations_raise_outcome_unknown(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        acct, mes = await _ready(gw, px)
        gw.faults.http_500 = 2
        assert await px.search_open_orders(acct.id) == []
        gw.faults.http_500 = 1
        with pytest.raises(OutcomeUnknown) as ei:
            await px.cancel_order(acct.id, 12345)
        assert ei.value.order_id == 12345 and gw.calls["Order/cancel"] == 1


async def test_placement_timeout_not_resent_and_found_by_tag(topstepx_path):
    async with gateway_and_client(topstepx_path, request_timeout_s=0.4) as (gw, px):
        acct, mes = await _ready(gw, px)
        start = px.clock.now_ns() - 10**9
        gw.faults.hold_s["Order/place"] = 1.0       # the order is created, the answer comes late
        last = gw.exchange.market.last
        with pytest.raises(OutcomeUnknown) as ei:
            await px.place_order(acct.id, mes.id, OrderType.LIMIT, OrderSide.SELL, 1,
                                 limit_price=last + 25, custom_tag="amb-1")
        assert ei.value.custom_tag == "amb-1"
        assert gw.calls["Order/place"] == 1          # never resent
        gw.faults.hold_s.clear()
        await asyncio.sleep(0.7)
        found = await px.find_orders_by_tag(acct.id, "amb-1", start)
        assert len(found) == 1 and found[0].status == OrderStatus.OPEN
        assert len(gw.exchange.orders) == 1


async def test_partial_close_and_partial_fills(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        acct, mes = await _ready(gw, px)
        gw.faults.partial_fills = True
        oid = await px.place_order(acct.id, mes.id, OrderType.MARKET, OrderSide.SELL, 3, custom_tag="pf")
        o = await px.order_by_id(acct.id, oid)
        assert o.status == OrderStatus.OPEN and o.fill_volume == 1
        gw.exchange.step()
        o = await px.order_by_id(acct.id, oid)
        assert o.status == OrderStatus.FILLED and o.fill_volume == 3
        with pytest.raises(RejectedError) as ei:
            await px.partial_close_position(acct.id, mes.id, 5)
        assert ei.value.name == "InvalidCloseSize"
        await px.partial_close_position(acct.id, mes.id, 1)
        pos = await px.search_open_positions(acct.id)
        assert pos[0].signed_size == -2


async def test_no_secret_in_any_log_record(topstepx_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with gateway_and_client(topstepx_path) as (gw, px):
        acct, mes = await _ready(gw, px)
        gw.expire_tokens()
        gw.faults.http_429 = 2
        await px.search_open_orders(acct.id)
        tokens = list(gw.tokens)
    assert caplog.records, "expected broker log records"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY not in text and all(t not in text for t in tokens)
    assert "retry" in text and "login" in text
