"""AlertRouter (R-LIVE-5): routing, throttling, de-duplication and never-blocking delivery to a
local aiohttp server on 127.0.0.1 (webhook, Slack, Discord) and a fake SMTP."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import threading
import time

import pytest
from aiohttp import web

from engine.alerts import AlertRouter
from engine.clock import SimClock
from engine.config import AlertsConfig

NS = 1_000_000_000


class Sink:
    """aiohttp server on a background thread capturing POSTs per path; /fail answers 500,
    /slow sleeps ``slow_s``."""

    def __init__(self, slow_s: float = 0.0):
        self.posts: dict[str, list] = {}
        self.slow_s = slow_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self):
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def _handle(self, request):
        name = request.match_info["name"]
        self.posts.setdefault(name, []).append(await request.json())
        if name == "slow":
            await asyncio.sleep(self.slow_s)
        return web.Response(status=500 if name == "fail" else 200)

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class FakeSMTP:
    sent: list = []
    fail = False

    def __init__(self, host, port, timeout=None):
        self.host, self.port, self.timeout = host, port, timeout

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def send_message(self, msg):
        if FakeSMTP.fail:
            raise smtplib.SMTPServerDisconnected("server went away")
        FakeSMTP.sent.append((self.host, self.port, msg))


@pytest.fixture
def sink():
    s = Sink(slow_s=2.0)
    yield s
    s.close()


@pytest.fixture
def smtp(monkeypatch):
    FakeSMTP.sent, FakeSMTP.fail = [], False
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    return FakeSMTP


def _cfg(url, **kw):
    base = dict(webhook_url=f"{url}/hook", slack_webhook_url=f"{url}/slack",
                discord_webhook_url=f"{url}/discord", email_to="ops@example.com, me@example.com",
                smtp_host="mail.local:2525", throttle_s=60.0)
    base.update(kw)
    return AlertsConfig(**base)


def test_routing_payloads_and_email(sink, smtp, caplog):
    caplog.set_level(logging.DEBUG, logger="mes.alerts")
    clock = SimClock(1_760_000_000 * NS)
    r = AlertRouter(_cfg(sink.url), clock)
    try:
        assert r.send("info", "heartbeat", "all good") is True
        assert r.send("warning", "reconcile", "position mismatch, broker wins") is True
        assert r.send("critical", "oco_excess", "both legs filled: flattening") is True
        assert r.flush(10)
        assert len(sink.posts["hook"]) == 2 and len(sink.posts["slack"]) == 2 and len(sink.posts["discord"]) == 2
        h = sink.posts["hook"][1]
        assert (h["priority"], h["kind"], h["source"], h["ts_ns"]) == ("critical", "oco_excess", "mes-console", clock.now_ns())
        assert sink.posts["slack"][0] == {"text": "[WARNING] reconcile: position mismatch, broker wins"}
        assert sink.posts["discord"][1]["content"].startswith("[CRITICAL] oco_excess")
        assert len(smtp.sent) == 2 and smtp.sent[0][:2] == ("mail.local", 2525)
        assert smtp.sent[1][2]["Subject"] == "[mes-console] CRITICAL oco_excess"
        assert smtp.sent[1][2]["To"] == "ops@example.com, me@example.com"
        msgs = [rec.getMessage() for rec in caplog.records if rec.name == "mes.alerts"]
        assert any("heartbeat" in m for m in msgs)        # info: log only, still logged
        assert r.sent == {"log": 0, "webhook": 2, "slack": 2, "discord": 2, "email": 2}
    finally:
        r.close()


def test_throttle_escalation_dedup_from_the_clock(sink, smtp):
    clock = SimClock(1_760_000_000 * NS)
    r = AlertRouter(_cfg(sink.url, slack_webhook_url="", discord_webhook_url="", email_to="",
                         smtp_host="", throttle_s=60.0), clock, dedup_s=600)
    try:
        assert r.send("warning", "hub", "user hub disconnected") is True
        assert r.send("warning", "hub", "user hub disconnected again") is False     # throttled
        assert r.send("warning", "hub", "third") is False
        assert r.send("critical", "hub", "reconnect failing for 5 min") is True     # escalation passes
        assert r.send("warning", "other", "a different kind") is True
        clock.advance_to(clock.now_ns() + 61 * NS)
        assert r.send("warning", "hub", "user hub disconnected") is False           # duplicate (<600 s)
        assert r.send("warning", "hub", "user hub back") is True
        clock.advance_to(clock.now_ns() + 601 * NS)
        assert r.send("warning", "hub", "user hub disconnected") is True            # dedup window over
        assert r.flush(10)
        texts = [p["message"] + f"/{p['suppressed']}" for p in sink.posts["hook"]]
        assert texts == ["user hub disconnected/0", "reconnect failing for 5 min/2", "a different kind/0",
                         "user hub back/0", "user hub disconnected/0"]
        assert r.stats["throttled"] == 2 and r.stats["deduplicated"] == 1
        assert r.configured == ["log", "webhook"]
    finally:
        r.close()


def test_never_blocks_bounded_queue_and_failing_sinks(sink, smtp, caplog):
    caplog.set_level(logging.WARNING, logger="mes.alerts")
    smtp.fail = True
    clock = SimClock(1_760_000_000 * NS)
    cfg = _cfg(sink.url, webhook_url=f"{sink.url}/slow", slack_webhook_url=f"{sink.url}/fail",
               discord_webhook_url="http://127.0.0.1:9/discord", throttle_s=0.0)
    r = AlertRouter(cfg, clock, queue_size=3, timeout_s=0.3)
    try:
        t0 = time.perf_counter()
        res = [r.send("critical", f"k{i}", f"message {i}") for i in range(8)]
        elapsed = time.perf_counter() - t0
        assert elapsed < 0.2                                  # the slow sink never blocks the caller
        assert res.count(False) >= 4 and r.stats["dropped"] == res.count(False)
        assert r.flush(15)
        assert r.stats["failed"] == 4 * (8 - r.stats["dropped"])   # slow (timeout), 500, refused, smtp
        msgs = "\n".join(rec.getMessage() for rec in caplog.records)
        assert "alert sink slack failed: HTTP 500" in msgs and "alert sink email failed" in msgs
        assert "alert queue full" in msgs
        assert sink.url not in msgs                           # webhook URLs never logged
        assert r.send("warning", "bad", "x") is True          # still working after failures
        assert r.send("nonsense", "typo", "priority typo") is True   # never raises: treated as critical
    finally:
        r.close()
        r.close()                                             # idempotent
    assert r.send("critical", "late", "after close: logged only") is True


def test_bad_routes_and_email_without_host_refused():
    clock = SimClock(0)
    with pytest.raises(ValueError, match="unknown sinks"):
        AlertRouter(AlertsConfig(), clock, routes={"info": ("log", "pager")}, start=False)
    with pytest.raises(ValueError, match="smtp_host"):
        AlertRouter(AlertsConfig(email_to="a@b.c"), clock, start=False)
