"""Remote control over Telegram and the dead-man watchdog (issue 26), against a paper session over
the fake ProjectX gateway on real TopstepX bars and a local fake Telegram Bot API on 127.0.0.1:

- ``/halt`` from an allowed chat leaves the broker flat with no working order, answered with the
  broker's confirmation and the seconds it took; journaled with the chat id;
- a chat not in the allow-list changes nothing (no answer, position and bracket untouched);
- the bot losing its connection leaves trading and protection untouched (bars keep being
  processed, the stop keeps working at the broker), and it reconnects by itself;
- the token appears in no file the session wrote (state, journal, report, logs);
- the watchdog fires on a stalled feed, driven by its clock (a SimClock advanced by the test).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import pytest

from engine.broker.fake import load_bars_frame
from engine.clock import SimClock
from engine.config import Settings
from engine.journal import Journal
from engine.logs import RingHandler, install, json_handler, reset
from engine.remote import RemoteError, start_remote
from engine.remote.control import RemoteController, status_text
from engine.remote.telegram import TelegramChannel
from engine.remote.watchdog import Watchdog
from tests.fake_telegram import FakeTelegram
from tests.paper_support import paper_session, paper_settings, subscribed, wait_until

USER = "remote-user"
KEY = "px-remote-key-77aa66bb55cc"
TOKEN = "987654321:AAF-remote-test-token-zz9"
ALLOWED, STRANGER = 111, 666
START = "2025-09-04T12:00:00+00:00"
N_BARS = 300
WORKING = (1, 8)  # ProjectX order statuses that still work (open, suspended bracket child)


def _settings(state: Path) -> Settings:
    return paper_settings(state, USER, KEY, stops={"breakeven_after_ticks": 0},
                          remote={"telegram": True, "allowed_chats": [ALLOWED], "poll_timeout_s": 1.0,
                                  "action_timeout_s": 15.0},
                          watchdog={"feed_silence_s": 30.0, "bar_silence_s": 90.0, "protection_s": 10.0,
                                    "heartbeat_min": 5.0})


class _Mono:
    """A SimClock read as a monotonic clock (the watchdog measures on ``monotonic_ns``)."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock

    def monotonic_ns(self) -> int:
        return self.clock.now_ns()


class _Alerts:
    """Records what the watchdog sends (the session's own router is used for everything else)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, priority: str, kind: str, message: str) -> bool:
        self.sent.append((priority, kind, message))
        return True


@pytest.fixture(scope="module")
def frame(topstepx_path):
    return load_bars_frame(topstepx_path, start=START, max_rows=N_BARS)


@pytest.fixture(scope="module")
def rig(frame, tmp_path_factory):
    """A paper session over the fake gateway (stepped by hand) with the Telegram remote control
    on a fake Bot API, a DEBUG JSON log file of every logger involved, and a watchdog on a
    SimClock (the test advances it)."""
    from tests.px_fixtures import ThreadedGateway

    state = tmp_path_factory.mktemp("remote-state")
    logfile = state / "session.jsonl"
    fh = open(logfile, "w")
    reset()
    ring = RingHandler(2000)
    h = json_handler(fh)
    install([h, ring], level=logging.DEBUG)
    others = [logging.getLogger(n) for n in ("engine", "httpx", "httpcore", "telegram", "aiohttp")]
    levels = [lg.level for lg in others]
    for lg in others:
        lg.addHandler(h)
        lg.setLevel(logging.DEBUG)
    gt = ThreadedGateway(frame, 0.0, username=USER, api_key=KEY)
    tg = FakeTelegram(TOKEN)
    settings = dataclasses.replace(_settings(state), remote=dataclasses.replace(
        _settings(state).remote, base_url=tg.base_url))
    sess, venue = paper_session(gt, settings, state, USER, KEY, N_BARS, ring=ring, feed_end_s=1e9)
    wd_clock = SimClock(0)
    wd_alerts = _Alerts()
    sess.watchdog = Watchdog(settings.watchdog, wd_alerts, _Mono(wd_clock))
    channel = TelegramChannel(TOKEN, settings.remote.allowed_chats, base_url=tg.base_url, poll_timeout_s=1.0,
                              backoff_s=(0.05, 0.2))
    ex = gt.gw.exchange
    rig = dict(sess=sess, gt=gt, tg=tg, ex=ex, venue=venue, state=state, logfile=logfile, channel=channel,
               wd_clock=wd_clock, wd_alerts=wd_alerts, steps=0)
    handle = None
    try:
        sess.start()
        wait_until(lambda: subscribed(gt), 30)
        handle = start_remote(sess, settings, channel=channel)
        rig["handle"] = handle
        yield rig
    finally:
        if handle is not None:
            handle.close()
        sess.stop("test over")
        sess.finished.wait(20)
        gt.close()
        tg.close()
        reset()
        for lg, lv in zip(others, levels):
            lg.removeHandler(h)
            lg.setLevel(lv)
        fh.close()


def _step(rig, n: int = 1) -> None:
    sess, gt, ex, venue = rig["sess"], rig["gt"], rig["ex"], rig["venue"]
    for _ in range(n):
        gt.call(ex.step)
        rig["steps"] += 1
        k = rig["steps"]
        wait_until(lambda: sess.data_seen >= 2 * k and sess.venue.fills >= len(ex.trades)
              and all(c.outbox.empty() for c in gt.gw.connections) and venue.user_events.empty(),
              why=lambda: (k, sess.data_seen, sess.exit_reason))


def _exchange(rig) -> tuple[int, list]:
    ex = rig["ex"]
    return rig["gt"].call(lambda: (sum(p["size"] for p in ex.position.values()),
                                   [o["id"] for o in ex.orders.values() if o["status"] in WORKING]))


def _step_until_protected_position(rig, max_steps: int = 4 * N_BARS) -> None:
    sess = rig["sess"]
    for _ in range(max_steps):
        _step(rig)
        k = sess.kernel
        if k is not None and k.oco.pos != 0:
            pos, working = _exchange(rig)
            if pos != 0 and working:
                return
    raise AssertionError("no position opened in the replayed bars")


def _ask(rig, chat: int, text: str, timeout: float = 20.0) -> str | None:
    tg = rig["tg"]
    before = len(tg.sent_to(chat))
    uid = tg.push(chat, text)
    wait_until(lambda: tg.consumed(uid), timeout, lambda: f"update {uid} not polled")
    if chat != ALLOWED:
        return None
    wait_until(lambda: len(tg.sent_to(chat)) > before, timeout, lambda: f"no answer to {text}")
    return tg.sent_to(chat)[before]


def test_remote_control_over_the_fake_telegram_api(rig):
    sess, tg, channel = rig["sess"], rig["tg"], rig["channel"]
    ctl: RemoteController = rig["handle"].controller
    # -- a protected position at the broker
    _step_until_protected_position(rig)
    pos0, working0 = _exchange(rig)
    assert pos0 != 0 and working0

    # -- /status from the allowed chat: state, position and legs, today's P&L
    st = _ask(rig, ALLOWED, "/status")
    assert "PAPER" in st and "ACTIVE" in st and ("LONG" in st or "SHORT" in st)
    assert "stop " in st and "today " in st and "ALL PROTECTED" in st

    # -- a stranger's /halt: logged and ignored, nothing changes, no answer
    _ask(rig, STRANGER, "/halt")
    wait_until(lambda: ctl.ignored == 1)
    assert _exchange(rig) == (pos0, working0)
    assert sess.risk.state()[0].name == "ACTIVE"
    assert tg.sent_to(STRANGER) == []

    # -- /pause and /resume: the operator pause, protection kept
    assert _ask(rig, ALLOWED, "/pause").startswith("paused: no new entries, protection kept · REDUCING")
    assert sess.risk.state()[0].name == "REDUCING" and _exchange(rig) == (pos0, working0)
    assert _ask(rig, ALLOWED, "/resume") == "resumed · ACTIVE"

    # -- the bot loses its connection: trading and protection go on
    tg.stop()
    errors = channel.errors
    bars0 = sess.i
    wait_until(lambda: channel.errors > errors and not channel.connected, 10)
    _step(rig, 12)   # three more bars while the bot is down
    assert sess.i >= bars0 + 2
    pos1, working1 = _exchange(rig)
    if pos1 != 0:
        assert working1, "an open position keeps its bracket at the broker while the bot is down"
    assert sess.exit_reason == "" and not sess.finished.is_set()
    tg.start()
    wait_until(lambda: channel.connected, 10)
    if pos1 == 0:  # the bracket closed it meanwhile: open another one for the kill switch
        _step_until_protected_position(rig)

    # -- /halt from the allowed chat: broker flat, no working order, with the time it took
    t0 = time.perf_counter()
    ans = _ask(rig, ALLOWED, "/halt")
    took = time.perf_counter() - t0
    pos, working = _exchange(rig)
    assert (pos, working) == (0, [])
    assert ans.startswith("HALTED: broker confirms flat, no working order (")
    secs = float(ans.rsplit("(", 1)[1].split(" s)")[0])
    assert 0 <= secs <= took
    print(f"/halt: broker flat in {secs:.3f} s (round trip through the fake Telegram {took:.3f} s)")
    assert sess.risk.state()[0].name == "HALTED"
    # -- /reset is refused remotely by default
    assert _ask(rig, ALLOWED, "/reset RESET").startswith("reset refused")
    assert sess.risk.state()[0].name == "HALTED"
    # -- journaled with the chat id
    j = Journal(sess.cfg.journal_path, readonly=True)
    ev = [e for e in j.events() if e["kind"] in ("remote", "remote_refused")]
    j.close()
    assert any(e["kind"] == "remote_refused" and f"chat {STRANGER}" in e["message"] for e in ev)
    assert any(e["kind"] == "remote" and e["message"].startswith(f"chat {ALLOWED}: /halt -> HALTED: broker confirms")
               for e in ev)


def test_watchdog_fires_on_a_stalled_feed_driven_by_its_clock(rig):
    """No wall-time waits: the watchdog's SimClock is advanced by hand; the test only waits for
    the session loop to have ticked the watchdog after each advance."""
    sess, clk, alerts = rig["sess"], rig["wd_clock"], rig["wd_alerts"]
    wd = sess.watchdog
    s = 1_000_000_000

    def ticked_after(fn):
        n = wd.ticks
        fn()
        wait_until(lambda: wd.ticks >= n + 2, 10)

    ticked_after(lambda: _step(rig, 4))   # data flows
    ticked_after(lambda: clk.advance_to(clk.now_ns() + 29 * s))
    assert not [a for a in alerts.sent if a[1] == "watchdog"], "29 s of silence is within the 30 s bound"
    ticked_after(lambda: clk.advance_to(clk.now_ns() + 2 * s))   # 31 s > feed_silence_s
    fired = [a for a in alerts.sent if a[1] == "watchdog"]
    assert len(fired) == 1, alerts.sent
    pr, _, msg = fired[0]
    assert pr == "critical" and msg.startswith("market feed silent for 31 s (bound 30 s) during trading hours")
    assert set(wd.active) == {"feed"}
    ticked_after(lambda: clk.advance_to(clk.now_ns() + 60 * s))   # the bar loop too (91 s > 90 s)
    assert set(wd.active) == {"feed", "bar"}
    assert len([a for a in alerts.sent if a[1] == "watchdog"]) == 2   # one alert per condition
    ticked_after(lambda: _step(rig, 4))   # the feed comes back: cleared
    assert "feed" not in wd.active
    assert any(a[0] == "info" and a[2].startswith("cleared: market feed silent") for a in alerts.sent)
    # the heartbeat, every 5 minutes of the watchdog's clock
    hb = wd.heartbeats
    ticked_after(lambda: clk.advance_to(clk.now_ns() + 301 * s))
    assert wd.heartbeats == hb + 1
    assert any(a[1] == "heartbeat" and a[2].startswith("alive: paper") for a in alerts.sent)


def test_the_token_is_in_no_file(rig):
    sess = rig["sess"]
    sess.stop("test over")
    sess.finished.wait(20)
    logging.getLogger().handlers  # flush below
    for hd in logging.getLogger("mes").handlers:
        hd.flush()
    files = [p for p in Path(rig["state"]).rglob("*") if p.is_file()]
    assert any(p.name == "session.jsonl" for p in files) and any(p.suffix == ".sqlite3" for p in files)
    assert Path(rig["logfile"]).stat().st_size > 0
    for p in files:
        assert TOKEN.encode() not in p.read_bytes(), p
    assert TOKEN not in repr(rig["channel"])
    rep = json.loads((Path(rig["state"]) / "report.json").read_text())
    assert TOKEN not in json.dumps(rep)


def test_start_remote_refuses_without_token_or_chats(tmp_path):
    s = Settings()
    on = dataclasses.replace(s, remote=dataclasses.replace(s.remote, telegram=True, allowed_chats=[1]))
    assert start_remote(object(), s) is None
    with pytest.raises(RemoteError, match="MES_TELEGRAM_TOKEN is not set"):
        start_remote(object(), on, env={})
    empty = dataclasses.replace(s, remote=dataclasses.replace(s.remote, telegram=True))
    with pytest.raises(RemoteError, match="allowed_chats is empty"):
        start_remote(object(), empty, env={"MES_TELEGRAM_TOKEN": "x"})


def test_status_text_example():
    """The README's /status example is produced by status_text (kept in step with it)."""
    from engine.runtime.snapshot import (BrokerView, EodView, HeaderView, ModelView, OrderLegView,
                                         PositionView, QuoteView, RiskView, SessionSnapshot)

    ts = 1_757_000_000_000_000_000
    snap = SessionSnapshot(
        1, HeaderView("paper", "PRAC-50K", "ACTIVE", False, ts, 120.0),
        QuoteView(6481.0, 6481.25, 6481.25, 1.0, (), 120.0), ModelView("rule-based baseline", True),
        PositionView("LONG", 2, 6478.50, 27.5, 41.16, OrderLegView("stop", 6473.50, 31.0, "WORKING"),
                     OrderLegView("target", 6486.00, 19.0, "WORKING"), True),
        RiskView("ACTIVE", "", 0.0, 50.0, 12.0, 75.0, 0, 300.0, 300.0, venue_rules="topstepx-50k",
                 venue_liquidation_usd=48_000.0, venue_distance_usd=2_068.66, venue_max_contracts=50,
                 lockouts=("ok trades 3/5 today",)),
        EodView("normal", (), "2025-09-04"), BrokerView(ts, "agree", "periodic: position +2, 2 working"))
    text = status_text(snap)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert text in readme, text


def test_watchdog_protection_bound_needs_a_broker_accepted_stop():
    """A position whose stop the broker has not accepted (SUBMITTED) for protection_s fires once,
    with flatten_on_alarm the session is flattened; an ACCEPTED stop covering it is quiet."""
    from types import SimpleNamespace

    from engine.execution.orders import OrderStatus

    clk = SimClock(0)
    s = Settings()
    cfg = dataclasses.replace(s.watchdog, protection_s=10.0, flatten_on_alarm=True, heartbeat_min=0.0)
    alerts = _Alerts()
    wd = Watchdog(cfg, alerts, _Mono(clk))
    stop = SimpleNamespace(status=OrderStatus.SUBMITTED, remaining=1)
    oco = SimpleNamespace(pos=1, stop=stop, exiting=lambda: False)
    flattened = []
    sess = SimpleNamespace(i=0, data_seen=0, kernel=SimpleNamespace(oco=oco), last_data_ts=1, cal=None,
                           clock=clk, flatten=lambda: flattened.append(1))
    for _ in range(9):
        clk.advance_to(clk.now_ns() + 1_000_000_000)
        wd.tick(sess)
    assert alerts.sent == []
    clk.advance_to(clk.now_ns() + 2_000_000_000)
    wd.tick(sess)
    wd.tick(sess)
    assert [a[1] for a in alerts.sent] == ["watchdog"] and flattened == [1]
    assert alerts.sent[0][2].startswith("position +1 without a broker-confirmed stop for 10 s (bound 10 s)")
    stop.status = OrderStatus.ACCEPTED
    wd.tick(sess)
    assert "protection" not in wd.active and alerts.sent[-1][0] == "info"


def test_daily_text_from_the_journal(tmp_path):
    from types import SimpleNamespace

    from engine.remote.control import daily_text

    j = Journal(tmp_path / "j.sqlite3")
    j.open_session(mode="paper", account="A", contract="C", symbol="MES", clock="exchange", started_ns=0,
                   started_wall_ns=0, start_balance=1000.0)
    day = 86_400_000_000_000
    for k, pnl in enumerate((12.5, -4.25, 7.0)):
        t = SimpleNamespace(entry_ts=day * (20_000 + k // 2) + 1, exit_ts=day * (20_000 + k // 2) + 2, direction=1,
                            contracts=1, entry_price=5000.0, exit_price=5001.0, gross_pnl=pnl + 0.84,
                            commission=0.84, slippage=0.0, net_pnl=pnl, exit_reason="target", confidence=0.7)
        j.trade(t)
    text = daily_text(j)
    j.close()
    lines = text.splitlines()
    assert lines[0].split() == ["day", "trades", "won", "net"]
    assert lines[1].split()[1:] == ["2", "1", "+$8.25"] and lines[2].split()[1:] == ["1", "1", "+$7.00"]
    assert lines[-1] == "total 2 days +$15.25"
    assert daily_text(None).startswith("no journal")
