"""JSON-lines logs with engine-clock stamps; secrets and tokens never reach a record."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from datetime import datetime, timezone

import pytest

from engine import logs


def test_json_lines_use_engine_clock_and_redact_secrets() -> None:
    buf = io.StringIO()
    logs.reset()
    logs.REDACT.add("MyApiKey-1234567890")
    logs.install([logs.json_handler(buf)])
    logs.set_clock(lambda: 1_700_000_000_000_000_000)
    try:
        log = logs.get_logger("px")
        log.info("login with key %s", "MyApiKey-1234567890", extra={"event": "login"})
        log.warning("header Authorization: Bearer abc.def.ghi and jwt eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl")
        try:
            raise RuntimeError("boom MyApiKey-1234567890")
        except RuntimeError:
            log.exception("failed")
    finally:
        logs.set_clock(None)
        logs.reset()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert len(lines) == 3
    assert lines[0]["ts_ns"] == 1_700_000_000_000_000_000 and lines[0]["event"] == "login"
    assert lines[0]["ts"].startswith("2023-11-14T22:13:20")
    text = buf.getvalue()
    assert "MyApiKey" not in text and "abc.def.ghi" not in text and "eyJzdWIi" not in text
    assert "****" in lines[0]["msg"] and "boom ****" in lines[2]["exc"]


def test_ring_handler_is_bounded_and_filters_levels() -> None:
    ring = logs.RingHandler(capacity=3)
    logs.reset()
    logs.install([ring], level=logging.DEBUG)
    try:
        log = logs.get_logger("x")
        for i in range(5):
            log.info("i%d", i)
        log.error("bad")
    finally:
        logs.reset()
    assert [r[3] for r in ring.records] == ["i3", "i4", "bad"]
    assert [r[3] for r in ring.tail(10, logging.ERROR)] == ["bad"]


# --- engine clock not started yet: held records (issue 22 item 7) ---------------------------

T0 = 1_757_000_000_000_000_000          # 2025-09-04 (a replayed exchange time, UTC ns)


@pytest.fixture
def sink():
    """A JSON-lines buffer and a ring installed on ``mes``; everything reset afterwards."""
    buf, ring = io.StringIO(), logs.RingHandler(100)
    logs.reset()
    logs.install([logs.json_handler(buf), ring], level=logging.DEBUG)
    yield buf, ring
    logs.set_clock(None)
    logs.reset()


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in buf.getvalue().splitlines()]


def _stopped_clock() -> list[int]:
    """Install an engine clock that reads ``cell[0]`` (0: not started); returns the cell."""
    now = [0]
    logs.set_clock(lambda: now[0])
    return now


def test_records_before_the_clock_starts_are_held_then_stamped_with_its_first_time(sink) -> None:
    buf, ring = sink
    now = _stopped_clock()
    log = logs.get_logger("live")
    log.info("login ok")
    log.warning("model threshold")            # a warning is held too: one time base
    assert buf.getvalue() == "" and len(ring.records) == 0
    now[0] = T0                                # the first market event
    logs.poll()                                # released without waiting for the next record
    now[0] = T0 + 5_000_000_000
    log.info("session started")
    out = _lines(buf)
    assert [x["msg"] for x in out] == ["login ok", "model threshold", "session started"]
    assert [x["ts_ns"] for x in out] == [T0, T0, T0 + 5_000_000_000]
    assert [x["held"] for x in out] == [True, True, False] and {x["clock"] for x in out} == {"engine"}
    assert out[0]["ts"].startswith("2025-09-04T")
    made = datetime.fromisoformat(out[0]["wall_ts"])
    assert abs((datetime.now(timezone.utc) - made).total_seconds()) < 60     # the real time kept
    assert [(r[0], r[3]) for r in ring.records] == [(x["ts_ns"], x["msg"]) for x in out]


def test_the_first_record_after_the_start_releases_the_held_ones_first(sink) -> None:
    buf, ring = sink
    now = [0]
    logs.hold()                                # before the session (and its clock) exists
    log = logs.get_logger("live")
    log.info("building")
    logs.set_clock(lambda: now[0])
    log.info("connecting")
    now[0] = T0
    log.info("first bar")
    out = _lines(buf)
    assert [(x["msg"], x["ts_ns"], x["held"]) for x in out] == [
        ("building", T0, True), ("connecting", T0, True), ("first bar", T0, False)]


def test_a_started_clock_releases_at_once_and_a_wall_clock_session_is_unaffected(sink) -> None:
    buf, _ = sink
    logs.hold()
    logs.get_logger().info("build")
    logs.set_clock(lambda: T0)                 # e.g. a replay's clock: at its first bar already
    assert [(x["ts_ns"], x["held"]) for x in _lines(buf)] == [(T0, True)]
    logs.set_clock(time.time_ns)               # a live session: the wall clock is the engine clock
    logs.get_logger().info("live")
    last = _lines(buf)[-1]
    assert last["clock"] == "engine" and not last["held"]
    assert abs(last["ts_ns"] - time.time_ns()) < 60 * 10**9


def test_ending_before_the_clock_starts_releases_wall_stamped_and_labelled(sink) -> None:
    buf, ring = sink
    logs.set_clock(lambda: 0)
    log = logs.get_logger("live")
    before = time.time_ns()
    log.info("login ok")
    log.info("waiting for market data")
    assert buf.getvalue() == ""
    logs.set_clock(None)                       # e.g. "no market data from the gateway within 30 s"
    out = _lines(buf)
    assert [x["msg"] for x in out] == ["login ok", "waiting for market data"]
    assert all(x["clock"] == "wall" and x["held"] for x in out)
    assert before <= out[0]["ts_ns"] <= out[1]["ts_ns"] <= time.time_ns()
    assert out[0]["ts"] == out[0]["wall_ts"]
    log.info("after")                          # no clock: written at once, wall clock
    assert _lines(buf)[-1]["clock"] == "wall" and not _lines(buf)[-1]["held"]
    assert len(ring.records) == 3


def test_holding_releases_on_an_exception(sink) -> None:
    buf, _ = sink
    with pytest.raises(RuntimeError):
        with logs.holding(lambda: 0):
            logs.get_logger().info("refused login")
            raise RuntimeError("boom")
    assert [(x["msg"], x["clock"], x["held"]) for x in _lines(buf)] == [("refused login", "wall", True)]


def test_an_error_while_held_is_written_at_once_after_what_was_held(sink) -> None:
    buf, _ = sink
    now = _stopped_clock()
    log = logs.get_logger("live")
    log.info("login ok")
    log.error("account lock held by another instance")
    out = _lines(buf)
    assert [(x["msg"], x["clock"], x["held"]) for x in out] == [
        ("login ok", "wall", True), ("account lock held by another instance", "wall", False)]
    log.info("retrying")                       # held again until the clock starts
    assert len(_lines(buf)) == 2
    now[0] = T0
    logs.poll()
    last = _lines(buf)[-1]
    assert (last["msg"], last["ts_ns"], last["clock"], last["held"]) == ("retrying", T0, "engine", True)


def test_overflow_releases_the_oldest_wall_stamped_never_drops(sink, monkeypatch) -> None:
    buf, ring = sink
    monkeypatch.setattr(logs, "HOLD_MAX", 3)
    now = _stopped_clock()
    log = logs.get_logger("live")
    for i in range(5):
        log.info("r%d", i)
    out = _lines(buf)
    assert [(x["msg"], x["clock"], x["held"]) for x in out] == [("r0", "wall", True), ("r1", "wall", True)]
    now[0] = T0
    logs.poll()
    out = _lines(buf)
    assert [x["msg"] for x in out] == [f"r{i}" for i in range(5)]
    assert [x["clock"] for x in out[2:]] == ["engine"] * 3 and {x["ts_ns"] for x in out[2:]} == {T0}
    assert [r[3] for r in ring.records] == [f"r{i}" for i in range(5)]


def test_records_of_several_threads_are_held_in_order_and_none_lost(sink) -> None:
    buf, ring = sink
    now = _stopped_clock()
    go = threading.Barrier(4)

    def worker(k: int) -> None:
        go.wait()
        log = logging.getLogger(f"mes.t{k}")
        for i in range(200):
            log.info("%d %d", k, i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert buf.getvalue() == ""
    now[0] = T0
    logs.poll()
    out = _lines(buf)
    assert len(out) == 800 and {x["ts_ns"] for x in out} == {T0}
    for k in range(4):
        assert [int(x["msg"].split()[1]) for x in out if x["msg"].startswith(f"{k} ")] == list(range(200))
    assert [r[3] for r in ring.records] == [x["msg"] for x in out][-100:]
