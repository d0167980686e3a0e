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
