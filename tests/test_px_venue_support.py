"""Helpers for the ProjectXVenue tests (no tests here): the fake gateway on its own thread and
event loop on 127.0.0.1, so that the synchronous venue (and kernel) run on the test's thread as
they do in the runtime."""

from __future__ import annotations

import asyncio
import threading
import time

from engine.broker.fake import FakeGateway
from engine.broker.projectx.rest import ProjectXClient
from engine.broker.projectx.venue import ProjectXVenue
from engine.clock import LiveClock
from engine.config import Settings
from tests.px_fixtures import KEY, USER, bars


class GatewayThread:
    """A :class:`FakeGateway` served from a background thread's loop. ``step(n)`` advances the
    market on that loop (the exchange emits into asyncio queues: never call it cross-thread)."""

    def __init__(self, path, **gw_kwargs) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-gw", daemon=True)
        self.thread.start()

        async def make():
            gw = FakeGateway(bars(path), LiveClock(), username=USER, api_key=KEY, **gw_kwargs)
            await gw.start()
            return gw
        self.gw = self.run(make())
        self.url = self.gw.base_url

    def run(self, coro, timeout: float = 15.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def f():
            return fn(*args)
        return self.run(f())

    def step(self, n: int = 1) -> None:
        self.call(lambda: [self.gw.exchange.step() for _ in range(n)])

    def drop(self, hub=None, graceful=True) -> int:
        return self.run(self.gw.drop_hub_connections(hub, graceful))

    def state(self):
        """(order id → status, trade ids, signed position) of the exchange, read on its loop."""
        def snap():
            ex = self.gw.exchange
            pos = ex.position.get(ex.contract_id)
            return ({i: o["status"] for i, o in ex.orders.items()}, [t["id"] for t in ex.trades],
                    0 if pos is None else pos["size"])
        return self.call(snap)

    def close(self) -> None:
        try:
            self.run(self.gw.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def make_venue(gt: GatewayThread, *, native_oco=True, request_timeout_s=3.0, settings=None,
               client_clock=None, **kw) -> ProjectXVenue:
    clock = LiveClock()
    client = ProjectXClient(gt.url, USER, KEY, client_clock or clock, request_timeout_s=request_timeout_s,
                            backoff_base_s=0.01, backoff_max_s=0.05,
                            **kw.pop("client_kwargs", {}))
    kw.setdefault("hub_kwargs", {"backoff_initial_s": 0.05, "backoff_max_s": 0.2})
    return ProjectXVenue(settings or Settings(), clock, base_url=gt.url, client=client,
                         native_oco=native_oco, **kw)


def collect(venue, pred, timeout: float = 8.0, got: list | None = None) -> list:
    """Poll the venue's events until ``pred(events)``; bounded; returns every event seen."""
    got = [] if got is None else got
    end = time.perf_counter() + timeout
    while True:
        got.extend(venue.poll_events())
        if pred(got):
            return got
        if time.perf_counter() > end:
            raise AssertionError(f"condition not met; events: {got[-20:]}")
        time.sleep(0.01)


def settle(gt: GatewayThread, venue, timeout: float = 8.0) -> None:
    """Pump the venue (without draining its queue) until it has seen every order status,
    trade and the position the exchange holds."""
    end = time.perf_counter() + timeout
    venue.wait_sent(timeout)          # cancels are sent without waiting for the answer
    while True:
        venue.pump()
        orders, trades, pos = gt.state()
        seen = {b: t.status for b, t in venue._tracks.items()}
        if (all(seen.get(i) == s for i, s in orders.items()) and set(trades) <= venue._seen_trades
                and venue.pos_qty == pos):
            return
        if time.perf_counter() > end:
            raise AssertionError(f"venue did not converge: exchange {orders} {trades} {pos}; "
                                 f"venue {seen} {sorted(venue._seen_trades)} {venue.pos_qty}")
        time.sleep(0.01)
