"""Hostile market records (issue 15 item 2): quotes and trades from the market hub with a time in
the year 2100, NaN / inf / text / off-grid prices, unknown enums and bad volumes are counted,
logged and dropped; the engine clock never jumps or moves back and the paper session trades on
to a normal end with a report. Over loopback against the fake gateway on real TopstepX bars."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from engine.broker.fake import load_bars_frame
from engine.broker.projectx.hubs import MarketHub
from engine.broker.projectx.models import format_ts
from engine.broker.projectx.rest import ProjectXClient
from engine.broker.projectx.venue import ProjectXVenue
from engine.broker.projectx.connection import ProjectXConnection
from engine.clock import LiveClock, SimClock
from engine.config import Secrets, Settings
from engine.runtime.live import LiveConfig, LiveSession
from tests.px_fixtures import KEY, USER, ThreadedGateway

START = "2025-09-04T13:20:00+00:00"
N = 60
Y2026 = 1_767_225_600_000_000_000   # 2026-01-01 UTC


def _settings(state) -> Settings:
    s = Settings()
    return dataclasses.replace(s, paths=dataclasses.replace(s.paths, state_dir=str(state)),
                               secrets=Secrets(projectx_username=USER, projectx_api_key=KEY))


def _wait(pred, timeout=15.0, why=""):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out: {why}"
        time.sleep(0.002)


def test_market_hub_refuses_bad_quote_updates_before_merging() -> None:
    import queue

    clock = SimClock(1_757_000_000_000_000_000)
    h = MarketHub("http://127.0.0.1:1/hubs/market", lambda: "t", clock, queue.Queue(), tick=0.25)
    good = {"bestBid": 6500.25, "bestAsk": 6500.5, "lastPrice": 6500.25, "volume": 10.0,
            "timestamp": "2025-09-04T13:30:00Z"}
    assert h.quote_problem(good) is None
    for bad in ({"bestBid": float("nan")}, {"bestAsk": float("inf")}, {"lastPrice": "zzz"},
                {"bestBid": 6500.13}, {"bestBid": -1.0}, {"volume": float("nan")}, {"bestBid": True},
                {"bestBid": 1e308}, {"lastPrice": 1e308}, {"bestAsk": -1}, {"lastPrice": float("nan")},
                {"timestamp": "2100-01-01T00:00:00Z"}, {"timestamp": "not a time"}):
        assert h.quote_problem(bad) is not None, bad
    h._on_quote(["CON", good])
    h._on_quote(["CON", {"bestBid": float("nan"), "timestamp": "2100-01-01T00:00:00Z"}])
    h._on_quote(["CON", {"bestBid": 1e308}])             # OverflowError in the tick check before
    h._on_quote(["CON", {"lastPrice": 9000.0}])          # 38 % from the last good price: the band
    assert h.quotes["CON"]["bestBid"] == 6500.25 and h.quotes["CON"]["lastPrice"] == 6500.25 and h.refused == 3
    kinds = [h.events.get_nowait().kind for _ in range(4)]
    assert kinds == ["quote", "refused", "refused", "refused"]


def test_hostile_market_records_are_dropped_and_the_session_goes_on(topstepx_path, tmp_path) -> None:
    frame = load_bars_frame(topstepx_path, start=START, max_rows=N)
    gt = ThreadedGateway(frame)
    gw, ex = gt.gw, gt.gw.exchange
    settings = _settings(tmp_path)
    wall = LiveClock()
    client = ProjectXClient(gt.url, USER, KEY, wall, request_timeout_s=5.0)
    venue = ProjectXVenue(settings, wall, base_url=gt.url, client=client, native_oco=True)
    cfg = LiveConfig(mode="paper", clock="exchange", state_dir=tmp_path, report_path=tmp_path / "r.json",
                     feed_end_s=1.0, min_reconcile_wall_s=0.5, normal_window_bars=N)
    sess = LiveSession(settings, ProjectXConnection(venue), cfg)
    cid = ex.contract_id
    key_q = {"contract": cid, "kind": "quotes"}
    key_t = {"contract": cid, "kind": "trades"}

    def inject():
        m = ex.market
        ts = format_ts(m.step_ts(m.i) + 1_000_000_000)
        gw._emit("market", "GatewayQuote", [cid, {"symbol": "F.US.MES", "lastPrice": m.last,
                                                  "timestamp": "2100-01-01T00:00:00Z"}], key_q)
        gw._emit("market", "GatewayQuote", [cid, {"symbol": "F.US.MES", "bestBid": float("inf"),
                                                  "timestamp": ts}], key_q)
        for bad in (1e308, -1.0, float("nan")):      # the magnitude gate: no OverflowError, no halt
            gw._emit("market", "GatewayQuote", [cid, {"symbol": "F.US.MES", "lastPrice": bad,
                                                      "timestamp": ts}], key_q)
        rows = [{"price": m.last, "timestamp": "2100-01-01T00:00:00Z", "type": 0, "volume": 1},
                {"price": float("nan"), "timestamp": ts, "type": 0, "volume": 1},
                {"price": "zzz", "timestamp": ts, "type": 0, "volume": 1},
                {"price": m.last + 0.13, "timestamp": ts, "type": 0, "volume": 1},
                {"price": 1e308, "timestamp": ts, "type": 0, "volume": 1},
                {"price": -1.0, "timestamp": ts, "type": 0, "volume": 1},
                {"price": m.last * 1.5, "timestamp": ts, "type": 0, "volume": 1},
                {"price": m.last, "timestamp": ts, "type": 9, "volume": 1},
                {"price": m.last, "timestamp": ts, "type": 0, "volume": -5},
                {"price": m.last, "timestamp": "1999-01-01T00:00:00Z", "type": 0, "volume": 1},
                {"price": m.last, "timestamp": "garbage", "type": 0, "volume": 1},
                "not an object"]
        gw._emit("market", "GatewayTrade", [cid, rows], key_t)

    import logging

    from engine.logs import install, json_handler, reset

    logfile = tmp_path / "session.jsonl"
    fh = open(logfile, "w")
    reset()
    h = json_handler(fh)
    install([h])
    others = [logging.getLogger(n) for n in ("engine", "signalrcore")]
    for lg in others:
        lg.addHandler(h)
    try:
        sess.start()
        _wait(lambda: any(c.hub == "market" and len(c.subs) >= 2 for c in gw.connections), why="hubs")
        for k in range(4 * N):
            gt.call(ex.step)
            if k in (41, 121, 201):
                gt.call(inject)
            _wait(lambda: sess.data_seen >= 2 * (k + 1) or sess.finished.is_set(), why=f"step {k}")
            assert sess.clock.now_ns() < Y2026
        sess.finished.wait(20)
    finally:
        sess.stop("test over")
        sess.finished.wait(10)
        gt.close()
        reset()
        for lg in others:
            lg.removeHandler(h)
        fh.close()
    assert sess.exit_code == 0 and sess.exit_reason == "market feed ended"
    lines = logfile.read_text().splitlines()       # the JSON-lines output stays parseable
    assert lines and all(json.loads(ln) for ln in lines)
    assert not [ln for ln in lines if "Traceback" in ln or "OverflowError" in ln]
    assert sess.i == N - 1                     # every real bar made it through
    assert sess.clock.now_ns() < Y2026
    rep = json.loads((tmp_path / "r.json").read_text())
    refused = rep["broker"]["records_refused"]
    want = {"quote timestamp", "quote bestBid", "quote lastPrice", "trade time", "trade price", "trade type",
            "trade volume", "trade timestamp", "trade record"}
    assert want <= set(refused), refused
    assert refused["trade price"] == 3 * 6        # NaN, text, off-grid, 1e308, -1, +50 % × 3 injections
    assert refused["quote lastPrice"] == 3 * 3    # 1e308, -1, NaN × 3
    assert refused["trade time"] == 3 * 2         # 2100 and 1999 × 3
    halt = json.loads(next(tmp_path.glob("risk/*/risk_state.json")).read_text())["state"]["halt"]
    assert halt is None


@pytest.mark.parametrize("clock", ["exchange", "wall"])
def test_gate_rules(tmp_path, clock) -> None:
    settings = _settings(tmp_path)
    wall = SimClock(1_757_000_000_000_000_000)
    venue = ProjectXVenue(settings, wall, base_url="http://127.0.0.1:9", native_oco=True)
    sess = LiveSession(settings, ProjectXConnection(venue), LiveConfig(clock=clock), wall_clock=wall)
    now = wall.now_ns()
    if clock == "exchange":
        base = now - 6 * 86_400 * 10**9
        sess.clock.advance_to(base)
        assert sess.gate_problem(base + 3 * 86_400 * 10**9) is None      # a weekend gap is fine
        assert "jumps" in sess.gate_problem(base + 5 * 86_400 * 10**9)
    else:
        base = now
        assert sess.gate_problem(base + 400 * 10**9) is not None
    assert sess.gate_problem(base, 6500.25, what="trade") is None
    assert sess.gate_problem(base - 301 * 10**9) is not None
    assert sess.gate_problem(now + 2 * 86_400 * 10**9) is not None
    for bad in (float("nan"), float("inf"), 0.0, -2.5, 6500.1, "6500.25", True, 1e308, -1):
        assert sess.gate_problem(base, bad, what="trade") is not None, bad
    venue.stop()
