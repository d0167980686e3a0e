"""JSON-lines logs with engine-clock stamps; secrets and tokens never reach a record."""

from __future__ import annotations

import io
import json
import logging

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
