"""Broker calls on the flatten/halt path do not queue behind each other (issue 15 item 5): with
every ``Order/cancel`` delayed 3 s at the fake gateway, the kernel's flatten (cancel both legs,
then a market exit) puts the exit at the broker before any cancel is answered, and
``ProjectXVenue.flatten`` cancels the legs concurrently with the close (bounded total)."""

from __future__ import annotations

import time

import pytest

from engine.broker.projectx.models import parse_ts
from engine.venue.base import Bracket
from tests.test_px_venue_support import GatewayThread, collect, make_venue, settle

DELAY = 1.5


@pytest.fixture
def gt(topstepx_path):
    g = GatewayThread(topstepx_path)
    g.step(4)
    yield g
    g.close()


def _orders(gt):
    return gt.call(lambda: {o["id"]: dict(o) for o in gt.gw.exchange.orders.values()})


def test_exit_leaves_before_slow_cancels_are_answered(gt):
    v = make_venue(gt, request_timeout_s=6.0)
    v.start(timeout_s=10)
    try:
        gt.step(1)
        v.place(1, 1, "market", tag="e1", bracket=Bracket(stop_ticks=40, target_ticks=40))
        collect(v, lambda ev: sum(1 for o in _orders(gt).values() if o["status"] == 1) == 2)
        settle(gt, v)
        legs = [i for i, o in _orders(gt).items() if o["status"] == 1]
        gt.gw.faults.delay_s["Order/cancel"] = DELAY
        t0 = time.perf_counter()
        for b in legs:                               # the kernel's flatten: cancel both legs ...
            v.cancel(str(b))
        v.place(-1, 1, "market", tag="x1")            # ... then the market exit
        sent = time.perf_counter() - t0
        settle(gt, v, timeout=DELAY * 3)
        total = time.perf_counter() - t0
        o = _orders(gt)
        exit_o = next(x for x in o.values() if (x.get("customTag") or "").endswith("x1"))
        exit_ts = parse_ts(exit_o["updateTimestamp"])
        cancel_ts = sorted(parse_ts(o[b]["updateTimestamp"]) for b in legs if o[b]["status"] == 3)
        assert exit_o["status"] == 2 and cancel_ts                  # the exit filled, legs cancelled
        assert exit_ts < cancel_ts[0], "the market exit waited for a cancel"
        assert cancel_ts[-1] - cancel_ts[0] < 0.75e9, "the cancels ran one after another"
        assert gt.state()[2] == 0 and not [x for x in o.values() if x["status"] in (1, 6, 8)]
        print(f"exit sent after {sent * 1e3:.0f} ms; broker flat, no working order after {total:.2f} s")
    finally:
        v.stop()


def test_venue_flatten_cancels_concurrently_with_the_close(gt):
    v = make_venue(gt, request_timeout_s=6.0)
    v.start(timeout_s=10)
    try:
        gt.step(1)
        v.place(1, 1, "market", tag="e1", bracket=Bracket(stop_ticks=40, target_ticks=40))
        collect(v, lambda ev: sum(1 for o in _orders(gt).values() if o["status"] == 1) == 2)
        legs = [i for i, o in _orders(gt).items() if o["status"] == 1]
        gt.gw.faults.delay_s["Order/cancel"] = DELAY
        sent = v.flatten("kill switch")
        o = _orders(gt)
        assert sorted(sent) == sorted(legs) and all(o[b]["status"] == 3 for b in legs)
        cancel_ts = sorted(parse_ts(o[b]["updateTimestamp"]) for b in legs)
        close = [x for x in o.values() if x["type"] == 2 and not x.get("customTag")]
        assert len(close) == 1 and close[0]["status"] == 2
        assert parse_ts(close[0]["updateTimestamp"]) < cancel_ts[0]    # the close did not wait
        assert cancel_ts[-1] - cancel_ts[0] < 0.75e9                     # concurrent cancels
        assert gt.state()[2] == 0
    finally:
        v.stop()
