"""Shared helpers of the ProjectX tests: a fake gateway on 127.0.0.1 over real TopstepX bars."""

from __future__ import annotations

import contextlib

from engine.broker.fake import FakeGateway, load_bars_frame
from engine.broker.projectx.rest import ProjectXClient
from engine.clock import LiveClock

USER = "fake-user"
KEY = "px-test-api-key-9f8e7d6c5b4a"

_FRAMES: dict = {}


def bars(path):
    if path not in _FRAMES:
        _FRAMES[path] = load_bars_frame(path, start="2025-10-01T13:30:00", max_rows=600)
    return _FRAMES[path]


@contextlib.asynccontextmanager
async def gateway_and_client(path, *, client_clock=None, gw_kwargs=None, **client_kwargs):
    gw = FakeGateway(bars(path), LiveClock(), username=USER, api_key=KEY, **(gw_kwargs or {}))
    url = await gw.start()
    client_kwargs.setdefault("backoff_base_s", 0.01)
    client_kwargs.setdefault("backoff_max_s", 0.05)
    px = ProjectXClient(url, USER, KEY, client_clock or LiveClock(), **client_kwargs)
    try:
        yield gw, px
    finally:
        await px.close()
        await gw.stop()


class ThreadedGateway:
    """The fake gateway on its own thread and event loop (``speed`` 0: ``step()`` by hand), for
    tests that drive a session in another thread or process over loopback."""

    def __init__(self, frame, speed: float = 0.0, username: str = USER, api_key: str = KEY,
                 **gw_kwargs) -> None:
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-gw", daemon=True)
        self.thread.start()

        async def make():
            gw = FakeGateway(frame, LiveClock(), username=username, api_key=api_key, speed=speed,
                             **gw_kwargs)
            await gw.start()
            return gw
        self.gw = self.run(make())
        self.url = self.gw.base_url

    def run(self, coro, timeout: float = 15.0):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn):
        async def f():
            return fn()
        return self.run(f())

    def close(self) -> None:
        try:
            self.run(self.gw.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
