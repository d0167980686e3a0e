"""Paper session through the real ProjectX protocol (REST + SignalR over loopback) against the
fake gateway on real TopstepX bars: trades equal the replay of the same bars within the fake's
slippage, the headless CLI exits 0 with a report, live needs its flag, no secret reaches a log
or a state file."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from engine.broker.fake import load_bars_frame
from engine.broker.projectx.rest import ProjectXClient
from engine.broker.projectx.venue import ProjectXVenue
from engine.broker.projectx.connection import ProjectXConnection
from engine.clock import LiveClock
from engine.config import Secrets, Settings
from engine.data import load_bars
from engine.logs import RingHandler, install, json_handler, reset
from tests.paper_support import feed_when_subscribed
from engine.runtime.live import BarAggregator, LiveConfig, LiveSession
from engine.runtime.session import Session, SessionConfig, make_signal_source

ROOT = Path(__file__).resolve().parents[1]
USER = "paper-user"
KEY = "px-paper-key-5e4d3c2b1a09f8"
START = "2025-09-04T12:00:00+00:00"   # 08:00 New York: warm-up, then the RTH day, EOD flat
N_BARS = 540                          # to 21:00 UTC (17:00 New York)
TICK = 0.25


def Gateway(frame, speed: float = 0.0):
    """The fake gateway on its own thread/loop (speed 0: ``step()`` advances the market)."""
    from tests.px_fixtures import ThreadedGateway

    return ThreadedGateway(frame, speed, username=USER, api_key=KEY)


def _compare_settings() -> Settings:
    """Defaults, except the limits that feed realized P&L back into decisions (daily loss,
    drawdowns, loss-streak pauses, balance tiers): the fake fills at bid/ask + 1 tick and a stop
    at the price step that crossed it, the replay at the bar open/stop level + 1 tick, so P&L
    differs by design and would otherwise change later decisions. With a large balance, size
    depends only on ``max_risk_per_trade`` ($25) and the stop distance, as in both runs."""
    s = Settings()
    risk = dataclasses.replace(s.risk, daily_loss_limit=1e6, daily_drawdown_limit=1e6,
                               kill_switch_loss=1e6, account_drawdown_limit=1e6,
                               consecutive_loss_pauses=[[1000, 1]])
    # wide stops (40 ticks, the older cap): a tight stop would turn the by-design fill difference
    # into a different stop-out bar and so a different next decision
    stops = dataclasses.replace(s.stops, max_stop_ticks=40)
    # reward:risk pinned at 1.5 (the default before the defaults study chose 2.0): this real day's
    # comparison was established on that target; with 2.0 a by-design 1-tick fill difference
    # moves a target exit to another bar (trade 11), which this test's parting rule (2+ ticks)
    # does not cover; the test is about paper = replay, not about the bracket's size
    stops = dataclasses.replace(stops, reward_risk=1.5)
    # the fake's $50,000 account traded as a TopstepX 50K Combine (issue 23): its MLL ($2,000
    # away) and position cap (50 MES) never bind the $25 trades, so the decisions stay the same
    return dataclasses.replace(s, risk=risk, stops=stops,
                               account=dataclasses.replace(s.account, starting_capital=50_000.0,
                                                           rules="topstepx-50k"))


def _settings(state_dir: Path) -> Settings:
    s = _compare_settings()
    paths = dataclasses.replace(s.paths, state_dir=str(state_dir))
    return dataclasses.replace(s, paths=paths, secrets=Secrets(projectx_username=USER, projectx_api_key=KEY))


def _wait(pred, timeout: float = 10.0, why=lambda: "") -> None:
    end = time.perf_counter() + timeout
    while not pred():
        if time.perf_counter() > end:
            raise AssertionError(f"timed out waiting for the paper session {why()}")
        time.sleep(0.0005)


@pytest.fixture(scope="module")
def frame(topstepx_path):
    return load_bars_frame(topstepx_path, start=START, max_rows=N_BARS)


@pytest.fixture(scope="module")
def paper_run(frame, tmp_path_factory):
    """One paper session over N_BARS real bars, the fake stepped as fast as the session takes
    them (each of the 4 price steps of a bar waits until the session has processed it, every
    fill has reached it and every modify/cancel it sent has been answered), then the feed ends."""
    state = tmp_path_factory.mktemp("paper-state")
    logfile = state / "session.jsonl"
    fh = open(logfile, "w")
    reset()
    ring = RingHandler(2000)
    h = json_handler(fh)
    install([h, ring])
    others = [logging.getLogger(n) for n in ("engine", "signalrcore", "aiohttp")]
    levels = [lg.level for lg in others]
    for lg in others:                      # the broker layer and the libraries, at DEBUG
        lg.addHandler(h)
        lg.setLevel(logging.DEBUG)
    gt = Gateway(frame)
    settings = _settings(state)
    wall = LiveClock()
    client = ProjectXClient(gt.url, USER, KEY, wall, request_timeout_s=5.0)
    venue = ProjectXVenue(settings, wall, base_url=gt.url, client=client, native_oco=True,
                          hub_kwargs={"backoff_initial_s": 0.05, "backoff_max_s": 0.2})
    cfg = LiveConfig(mode="paper", clock="exchange", state_dir=state, report_path=state / "report.json",
                     reconcile_interval_s=1800.0, min_reconcile_wall_s=0.5, feed_end_s=1.0,
                     normal_window_bars=N_BARS - 1)
    sess = LiveSession(settings, ProjectXConnection(venue), cfg, ring=ring)
    ex = gt.gw.exchange
    try:
        sess.start()                          # start-up on the engine thread: waits for data
        _wait(lambda: any(c.hub == "market" and len(c.subs) >= 2 for c in gt.gw.connections)
              and any(c.hub == "user" and len(c.subs) >= 4 for c in gt.gw.connections), 30)
        n_steps = 4 * N_BARS
        for k in range(n_steps):
            gt.call(ex.step)
            # 1 quote + 1 trade per step
            _wait(lambda: sess.data_seen >= 2 * (k + 1) and sess.venue.fills >= len(ex.trades)
                  and all(c.outbox.empty() for c in gt.gw.connections) and venue.user_events.empty()
                  and not venue._inflight,     # modifies/cancels reach the fake before the next step
                  why=lambda: (k, sess.data_seen, sess.venue.fills, len(ex.trades), sess.exit_reason,
                               [c.outbox.qsize() for c in gt.gw.connections], venue.user_events.qsize()))
        sess.finished.wait(30)
        exch = gt.call(lambda: ([dict(t) for t in ex.trades], dict(ex.position),
                                {i: o["status"] for i, o in ex.orders.items()}))
    finally:
        sess.stop("test over")
        sess.finished.wait(10)
        gt.close()
        reset()
        for lg, lv in zip(others, levels):
            lg.removeHandler(h)
            lg.setLevel(lv)
        fh.close()
    return sess, exch, state, logfile


def test_bar_aggregator_buckets_and_late_prints() -> None:
    m = 60_000_000_000
    agg = BarAggregator(m)
    assert agg.on_trade(0, 10.0, 1.0) is None
    assert agg.on_trade(30 * 10**9, 12.0, 2.0) is None
    assert agg.on_trade(45 * 10**9, 9.0, 1.0) is None
    bar = agg.on_trade(m + 1, 11.0, 1.0)              # next minute closes the first
    assert bar == (0, 10.0, 12.0, 9.0, 9.0, 4.0)
    assert agg.on_trade(10, 99.0, 1.0) is None and agg.late == 1   # older than the open bar
    assert agg.close_before(2 * m - 1) is None
    assert agg.close_before(2 * m) == (m, 11.0, 11.0, 11.0, 11.0, 1.0)


@pytest.fixture(scope="module")
def replay_run(topstepx_path):
    """The replay over the paper session's closed bars with the same settings: (bars, session)."""
    bars = load_bars(topstepx_path)
    lo = int(np.searchsorted(bars.ts, np.datetime64(START[:19], "ns").astype(np.int64)))
    sub = bars.slice(lo, lo + N_BARS - 1)
    s = _compare_settings()
    rep = Session(s, sub, make_signal_source(s, sub, None), SessionConfig())
    assert rep.run() == 0
    return sub, rep


def test_paper_session_matches_replay_and_ends_flat(paper_run, replay_run) -> None:
    sess, (trades, positions, statuses), state, _ = paper_run
    assert sess.exit_code == 0 and sess.exit_reason == "market feed ended"
    assert sess.i == N_BARS - 1                        # the last bar never sees a later event
    # ends flat at the broker, no working order left
    assert all(p["size"] == 0 for p in positions.values())
    assert not [i for i, st in statuses.items() if st in (1, 6, 8)]
    assert sess.kernel.oco.pos == 0
    live = sess.kernel.trades
    sub, rep = replay_run                          # the replay over the same closed bars
    ref = rep.kernel.trades
    assert len(ref) >= 3, "the day should trade"
    m = 60_000_000_000
    # every decision is the same: entries (time, side, size) and exit reasons, trade for trade,
    # until a trade whose fills differ by 2+ ticks (the replay never fills outside its bar's
    # range, the fake at last + 2 ticks) closed on another bar or leg: its exit cooldown then
    # moves the next entry, and the two runs legitimately part there
    n = min(len(live), len(ref))
    key = lambda t: (t.entry_ts, t.direction, t.contracts)  # noqa: E731
    for k in range(n):
        if key(live[k]) != key(ref[k]):
            a, b = live[k - 1], ref[k - 1]
            assert k >= 10 and abs(a.entry_price - b.entry_price) >= 2 * TICK - 1e-9, (k, a, b)
            assert a.exit_ts != b.exit_ts, (k, a, b)
            n = k
            break
    else:
        assert len(live) == len(ref)
    live, ref = live[:n], ref[:n]
    for a, b in zip(live, ref):
        if abs(a.entry_price - b.entry_price) < 2 * TICK - 1e-9:
            assert a.exit_reason == b.exit_reason, (a, b)
    same_exit = 0
    for a, b in zip(live, ref):
        j = int(np.searchsorted(sub.ts, a.entry_ts))
        assert int(sub.ts[j]) == a.entry_ts
        # the fake fills a market buy at ask (last + 1 tick) + 1 tick, a sell at bid (last) - 1 tick
        want = sub.open[j] + (2 * TICK if a.direction > 0 else -TICK)
        assert a.entry_price == pytest.approx(want), (a, b)
        assert abs(a.entry_price - b.entry_price) <= 3 * TICK + 1e-9     # replay: open ± 1-4 ticks
        k = int(np.searchsorted(sub.ts, a.exit_ts // m * m))
        assert sub.low[k] - 2 * TICK - 1e-9 <= a.exit_price <= sub.high[k] + 2 * TICK + 1e-9, (a, sub.ts[k])
        d = a.direction * (a.entry_price - b.entry_price)   # > 0: the live bracket sits d higher/lower
        if d == 0:
            assert a.exit_ts // m == b.exit_ts // m, (a, b)
        elif a.exit_reason == "stop":                         # its stop is closer: never later
            assert a.exit_ts // m <= b.exit_ts // m, (a, b)
        elif a.exit_reason == "target":                       # its target is further: never earlier
            assert a.exit_ts // m >= b.exit_ts // m, (a, b)
        same_exit += a.exit_ts // m == b.exit_ts // m
    assert same_exit >= 0.7 * len(live)  # 2-tick fill differences move some exits by a bar or more
    assert {"stop", "target"} <= {t.exit_reason for t in live}
    # brackets were live at the broker: every entry had -SL/-TP children
    report = json.loads((state / "report.json").read_text())
    assert report["mode"] == "paper" and report["trades_count"] == len(sess.kernel.trades)
    assert report["position_at_end"] == 0
    assert report["broker"]["reconciliations"] >= 2
    assert report["broker"]["venue_stats"]["fills"] == len(trades)
    assert sess.snapshot().broker.result in ("agree", "mismatch")


def test_paper_and_replay_agree_on_the_account_verdict(paper_run, replay_run) -> None:
    """The same AccountRules in both modes (engine.risk.build): the paper session's (fed by the
    broker's balance) and the replay's (fed by the risk manager) verdict, MLL level and profile
    agree over the same bars; P&L differs only by the fake's fills."""
    sess, _, state, _ = paper_run
    want = replay_run[1].report()["account"]
    got = json.loads((state / "report.json").read_text())["account"]
    assert got is not None and want is not None
    for k in ("profile", "status", "mll_level", "target"):
        assert got[k] == want[k], k
    assert got["status"] == "open" and got["mll_level"] == 48_000.0 and not got["liquidations"]
    # the profit differs by the fake's fills only: a few ticks a side per trade
    assert abs(got["profit"] - want["profit"]) <= 4 * 2 * 1.25 * sum(t.contracts for t in sess.kernel.trades)
    view = sess.snapshot().risk
    assert view.venue_rules == "topstepx-50k" and view.venue_liquidation_usd == 48_000.0
    assert (state / "risk").exists() and list((state / "risk").rglob("account_rules.json"))


def test_no_secret_in_logs_or_state(paper_run) -> None:
    sess, _, state, logfile = paper_run
    token = sess.broker.venue.client.current_token() or ""
    assert len(token) > 20
    texts = [logfile.read_text()]
    assert len(texts[0].splitlines()) > 60
    assert "engine.broker" in texts[0] and "mes.live" in texts[0]
    for p in state.rglob("*"):
        if p.is_file() and p != logfile:
            texts.append(p.read_text(errors="replace"))
    for t in texts:
        assert KEY not in t and token not in t


def _cli(args, env, timeout=90):
    return subprocess.run([sys.executable, "-m", "mes_console.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_live_headless_without_flag_exits_3(tmp_path) -> None:
    env = dict(os.environ, PROJECTX_USERNAME=USER, PROJECTX_API_KEY=KEY)
    r = _cli(["run", "--mode", "live", "--no-tui"], env, timeout=60)
    assert r.returncode == 3
    assert "--i-understand-this-trades-real-money" in r.stderr


def test_headless_paper_cli_against_fake(topstepx_path, tmp_path) -> None:
    frame = load_bars_frame(topstepx_path, start="2025-09-04T14:00:00+00:00", max_rows=40)
    gt = Gateway(frame, speed=0.0)
    stop = threading.Event()
    th = feed_when_subscribed(gt, stop)   # a bar every 25 ms once the session subscribed
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[projectx]\nstale_feed_s = 0.5\n[paths]\nstate_dir = "{tmp_path / "st"}"\n'
                       f'log_dir = "{tmp_path / "log"}"\n')
        env = dict(os.environ, PROJECTX_USERNAME=USER, PROJECTX_API_KEY=KEY)
        rep = tmp_path / "r.json"
        r = _cli(["run", "--mode", "paper", "--gateway-url", gt.url, "--no-tui", "--json-report",
                  str(rep), "--config", str(cfg)], env)
    finally:
        stop.set()
        th.join(5)
        gt.close()
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    doc = json.loads(rep.read_text())
    assert doc["mode"] == "paper" and doc["bars"] >= 20 and doc["exit_reason"] == "market feed ended"
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    assert any(x.get("event") == "start" for x in lines) and any(x.get("event") == "end" for x in lines)
    _assert_exchange_clock_log(lines, frame)
    log_file = [json.loads(x) for x in (tmp_path / "log" / "mes-console.jsonl").read_text().splitlines()]
    assert log_file == lines   # the rotating file in [paths] log_dir: the same lines
    everything = r.stdout + r.stderr + "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert KEY not in everything


def test_refused_login_still_writes_the_held_start_up_lines(topstepx_path, tmp_path) -> None:
    """Issue 22 item 7: a session that fails before its exchange clock started (a refused
    login: exit 3) writes the records held so far, wall-stamped and labelled, on stdout and in
    the log file: the operator never loses a start-up line."""
    gt = Gateway(load_bars_frame(topstepx_path, start="2025-09-04T14:00:00+00:00", max_rows=5))
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[paths]\nstate_dir = "{tmp_path / "st"}"\nlog_dir = "{tmp_path / "log"}"\n')
        env = dict(os.environ, PROJECTX_USERNAME=USER, PROJECTX_API_KEY="px-wrong-key-0000")
        r = _cli(["run", "--mode", "paper", "--gateway-url", gt.url, "--no-tui", "--config", str(cfg)], env)
    finally:
        gt.close()
    assert r.returncode == 3 and "Invalid credentials" in r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    assert any(x["msg"].startswith("signals:") for x in lines)
    assert lines and all(x["clock"] == "wall" and x["held"] and x["ts"] == x["wall_ts"] for x in lines)
    assert [json.loads(x) for x in (tmp_path / "log" / "mes-console.jsonl").read_text().splitlines()] == lines


def _assert_exchange_clock_log(lines: list[dict], frame) -> None:
    """Issue 22 item 7: every JSON line of an exchange-clock paper session carries the engine
    clock: the start-up lines (login, lock, reconcile) were held until the first market event
    and carry its time, ``ts_ns`` never decreases and stays in the replayed history (no line
    carries the wall clock), and each keeps its real time in ``wall_ts``."""
    first_bar = int(frame["ts_event"].iloc[0].value)
    last_bar = int(frame["ts_event"].iloc[-1].value)
    ts = [x["ts_ns"] for x in lines]
    assert all(b >= a for a, b in zip(ts, ts[1:])), [(x["ts"], x["msg"]) for x in lines]
    assert all(x["clock"] == "engine" for x in lines), [x for x in lines if x["clock"] != "engine"]
    assert first_bar <= ts[0] and ts[-1] <= last_bar + 600 * 10**9   # the replayed day, not today
    held = [x for x in lines if x["held"]]
    assert len(held) >= 3 and lines[:len(held)] == held           # the start-up lines come first
    assert {x["ts_ns"] for x in held} == {ts[0]}                  # stamped with the first event's time
    assert any("login ok" in x["msg"] for x in held)
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    assert all(x["ts"] < x["wall_ts"] <= now for x in lines)      # real times kept, after the history


def test_bracket_exits_need_no_cancel_and_no_reconcile(paper_run) -> None:
    """Issue 21 item 9: when a bracket leg fills, the broker cancels its sibling itself; the
    session neither sends that sibling a cancel the broker refuses ("already terminal") nor
    reconciles after the exit."""
    sess, _, _, logfile = paper_run
    exits = [t for t in sess.kernel.trades if t.exit_reason in ("stop", "target")]
    assert exits, [t.exit_reason for t in sess.kernel.trades]
    text = logfile.read_text()
    assert "is already terminal" not in text and "not done by the broker" not in text
    assert "reconcile (hub reconnect/gap/unknown outcome)" not in text
