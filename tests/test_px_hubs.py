"""Real signalrcore client against the fake gateway's SignalR hubs over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue

from engine.broker.projectx import OrderSide, OrderType
from engine.broker.projectx.hubs import MarketHub, UserHub, drain
from engine.broker.projectx.models import Bracket
from engine.clock import LiveClock
from tests.px_fixtures import KEY, gateway_and_client


async def _collect(q, got, pred, timeout=8.0):
    """Poll the queue (letting the server's loop run) until ``pred(got)``; bounded."""
    for _ in range(int(timeout / 0.02)):
        got.extend(drain(q))
        if pred(got):
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met; kinds seen: {[e.kind for e in got][-30:]}")


@contextlib.asynccontextmanager
async def hubs(path, *, user_kwargs=None, market_kwargs=None, **gw):
    async with gateway_and_client(path, gw_kwargs=gw) as (g, px):
        for _ in range(4):
            g.exchange.step()
        await px.login()
        acct = (await px.search_accounts())[0]
        mes = await px.resolve_front_month()
        q: queue.Queue = queue.Queue()
        clock = LiveClock()
        m = MarketHub(g.base_url + "/hubs/market", px.current_token, clock, q,
                      backoff_initial_s=0.05, backoff_max_s=0.2, **(market_kwargs or {}))
        u = UserHub(g.base_url + "/hubs/user", px.current_token, clock, q,
                    backoff_initial_s=0.05, backoff_max_s=0.2, **(user_kwargs or {}))
        m.subscribe_contract(mes.id)
        u.subscribe_account(acct.id)
        try:
            await asyncio.gather(asyncio.to_thread(m.start, True, 8), asyncio.to_thread(u.start, True, 8))
            yield g, px, m, u, q, acct, mes
        finally:
            await asyncio.gather(asyncio.to_thread(m.stop), asyncio.to_thread(u.stop))


async def _subscribed(g, n_market=3, n_user=4):
    for _ in range(200):
        subs = {c.hub: len(c.subs) for c in g.connections}
        if subs.get("market", 0) >= n_market and subs.get("user", 0) >= n_user:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"subscriptions not seen by the server: {subs}")


async def test_quotes_and_order_events_arrive_in_order(topstepx_path):
    async with hubs(topstepx_path) as (g, px, m, u, q, acct, mes):
        await _subscribed(g)
        got: list = []
        for _ in range(12):
            g.exchange.step()
        await _collect(q, got, lambda ev: sum(e.kind == "quote" for e in ev) >= 12)
        quotes = [e for e in got if e.kind == "quote"]
        ts = [e.data["timestamp"] for e in quotes]
        assert ts == sorted(ts) and len(set(ts)) == 12
        assert all({"bestBid", "bestAsk", "lastPrice", "open", "high", "low"} <= set(e.data) for e in quotes)
        assert quotes[-1].data["lastPrice"] == g.exchange.market.last
        depth = [e for e in got if e.kind == "depth"]
        assert depth[0].data[0]["type"] == 6          # the snapshot starts with Reset
        assert [e.seq for e in got] == sorted(e.seq for e in got)

        await px.place_order(acct.id, mes.id, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="hub-1",
                             stop_loss_bracket=Bracket(-6, OrderType.STOP),
                             take_profit_bracket=Bracket(6, OrderType.LIMIT))
        got = []
        await _collect(q, got, lambda ev: sum(e.kind == "order" and e.data["status"] == 1 for e in ev) >= 2)
        seq = [(e.kind, e.data.get("customTag"), e.data.get("status")) for e in got
               if e.kind in ("order", "user_trade", "position")]
        assert seq[:3] == [("order", "hub-1", 6), ("order", "hub-1-SL", 8), ("order", "hub-1-TP", 8)]
        assert seq.index(("order", "hub-1", 2)) < seq.index(("user_trade", None, None)) \
            < seq.index(("order", "hub-1-SL", 1))


async def test_negotiate_path_and_action_envelope(topstepx_path):
    async with hubs(topstepx_path, user_kwargs={"skip_negotiation": False}) as (g, px, m, u, q, acct, mes):
        await _subscribed(g)
        g.faults.envelope = True
        await px.place_order(acct.id, mes.id, OrderType.MARKET, OrderSide.SELL, 1, custom_tag="env-1")
        got: list = []
        await _collect(q, got, lambda ev: any(e.kind == "position" for e in ev))
        orders = [e for e in got if e.kind == "order"]
        assert orders[0].action == 0 and orders[0].data["customTag"] == "env-1"
        pos = next(e for e in got if e.kind == "position")
        assert pos.data["type"] == 2 and pos.data["size"] == 1


async def test_forced_disconnects_reconnect_resubscribe_and_reconcile(topstepx_path):
    calls: list[str] = []
    async with hubs(topstepx_path, user_kwargs={"on_reconnected": calls.append},
                    market_kwargs={"on_reconnected": calls.append}) as (g, px, m, u, q, acct, mes):
        await _subscribed(g)
        for k in range(6):
            drain(q)
            await g.drop_hub_connections(graceful=bool(k % 2))
            got: list = []
            await _collect(q, got, lambda ev: sum(e.kind == "reconnected" for e in ev) >= 2)
            await _subscribed(g)
        assert calls.count("market") == 6 and calls.count("user") == 6
        # resubscribed: quotes and order events still flow
        g.exchange.step()
        await px.place_order(acct.id, mes.id, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="after")
        got = []
        await _collect(q, got, lambda ev: any(e.kind == "quote" for e in ev)
                       and any(e.kind == "order" and e.data["customTag"] == "after" for e in ev))


async def test_reconnect_uses_the_current_token(topstepx_path):
    async with hubs(topstepx_path) as (g, px, m, u, q, acct, mes):
        await _subscribed(g)
        old = px.current_token()
        g.expire_tokens()                     # sockets keep working, the old token is dead
        await g.drop_hub_connections("user", graceful=False)
        for _ in range(100):
            if u.last_error and "401" in u.last_error:
                break
            await asyncio.sleep(0.02)
        assert "401" in (u.last_error or "")    # reconnect with the old token refused
        assert old not in (u.last_error or "")
        await px.login()                      # the client renews; the hub picks it up
        got: list = []
        await _collect(q, got, lambda ev: any(e.kind == "reconnected" and e.hub == "user" for e in ev))


async def test_malformed_record_gap_logout_and_stale_watchdog(topstepx_path):
    async with hubs(topstepx_path, market_kwargs={"stale_after_s": 0.4}) as (g, px, m, u, q, acct, mes):
        await _subscribed(g)
        g.faults.malformed_next = 1
        g.exchange.step()
        g.exchange.step()
        got: list = []
        await _collect(q, got, lambda ev: any(e.kind == "gap" for e in ev) and any(e.kind == "quote" for e in ev))
        got = []
        await _collect(q, got, lambda ev: any(e.kind == "stale" and e.hub == "market" for e in ev))
        g.send_logout()
        got = []
        await _collect(q, got, lambda ev: any(e.kind == "logout" for e in ev)
                       and any(e.kind == "reconnected" and e.hub == "user" for e in ev))


async def test_no_secret_in_hub_logs(topstepx_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with hubs(topstepx_path) as (g, px, m, u, q, acct, mes):
        await _subscribed(g)
        g.exchange.step()
        await g.drop_hub_connections(graceful=False)
        got: list = []
        await _collect(q, got, lambda ev: sum(e.kind == "reconnected" for e in ev) >= 2)
        tokens = list(g.tokens)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "access_token=****" in text        # signalrcore logged the URL, redacted
    assert KEY not in text and all(t not in text for t in tokens)


async def _idle(g, m, u, q, seconds):
    got: list = []
    for _ in range(int(seconds / 0.05)):
        got.extend(drain(q))
        await asyncio.sleep(0.05)
    return got


async def test_idle_connection_stays_up_with_keep_alive(topstepx_path):
    """Issue 15 item 3: no market data and no invocation for 4 s against a server that drops a
    client silent for 1 s (the real one: 30 s): the client's pings keep both hubs up."""
    kw = {"keep_alive_s": 0.3}
    async with hubs(topstepx_path, user_kwargs=kw, market_kwargs=kw, ping_interval_s=0.2,
                    client_timeout_s=1.0) as (g, px, m, u, q, acct, mes):
        await _subscribed(g)
        got = await _idle(g, m, u, q, 4.0)
        assert not [e for e in got if e.kind in ("disconnected", "reconnected")], [e.kind for e in got]
        assert m.connect_count == 1 and u.connect_count == 1 and m.pings >= 5 and u.pings >= 5


async def test_idle_connection_without_pings_is_dropped(topstepx_path):
    """The control: the same server with the client's keep-alive effectively off drops it."""
    kw = {"keep_alive_s": 3600.0}
    async with hubs(topstepx_path, user_kwargs=kw, market_kwargs=kw, ping_interval_s=0.2,
                    client_timeout_s=1.0) as (g, px, m, u, q, acct, mes):
        await _subscribed(g)
        got = await _idle(g, m, u, q, 2.5)
        assert any(e.kind == "disconnected" for e in got)
