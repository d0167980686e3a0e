"""Loopback acceptance of issue 14 (R-RISK-7, R-LIVE-1/4): a paper session with the real
signalrcore client against the fake gateway on real TopstepX bars (127.0.0.1 only; every wait
bounded in time).

- warm start: the fake serves the bars before its replay start as History/retrieveBars; a
  session started mid-day decides on its first live bar and trades exactly as a replay that
  saw the whole history (the cold control decides nothing for the baseline's window);
- a position opened at the fake before start-up is adopted with a working stop within one
  second (``on_start_position = "adopt"``) or closed (``"flatten"``);
- the broker's balance: a new state starts at the broker's balance; a balance changed outside
  the engine reaches the risk manager (tier, limits) at the next account event;
- the venue's MLL refuses an entry whose stop-out would cross the liquidation level.
"""

from __future__ import annotations

import dataclasses
import time
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
from engine.runtime.live import LiveConfig, LiveSession
from engine.runtime.session import Session, SessionConfig, make_signal_source
from tests.px_fixtures import ThreadedGateway

USER = "acct-user"
KEY = "px-acct-key-0f1e2d3c4b5a69"
T_MID = "2025-09-04T15:00:00+00:00"       # 11:00 New York, mid-RTH


def _settings(state: Path, capital: float = 100_000.0, **live) -> Settings:
    s = Settings()
    risk = dataclasses.replace(s.risk, max_risk_per_trade=1e3, daily_loss_limit=1e4, daily_drawdown_limit=1e4, kill_switch_loss=2e4,
                               account_drawdown_limit=2e4, consecutive_loss_pauses=[[1000, 1]])
    return dataclasses.replace(
        s, risk=risk, account=dataclasses.replace(s.account, starting_capital=capital),
        live=dataclasses.replace(s.live, **live),
        paths=dataclasses.replace(s.paths, state_dir=str(state), data_dir=str(state / "data")),
        secrets=Secrets(projectx_username=USER, projectx_api_key=KEY))


def _wait(pred, timeout: float, why: str, step=None) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out: {why}")
        if step is not None:
            step()
        else:
            time.sleep(0.002)


class Run:
    """A fake gateway (speed 0) and one in-process paper session on it."""

    def __init__(self, frame, settings: Settings, state: Path, history=None, balance: float = 100_000.0,
                 before=None, gt: ThreadedGateway | None = None, contract_id: str | None = None) -> None:
        self.gt = gt or ThreadedGateway(frame, username=USER, api_key=KEY, balance=balance, history=history)
        self.ex = self.gt.gw.exchange
        if before is not None:
            self.gt.call(lambda: before(self.ex))
        wall = LiveClock()
        client = ProjectXClient(self.gt.url, USER, KEY, wall, request_timeout_s=5.0)
        self.venue_alerts: list[tuple[str, str, str]] = []
        self.venue = ProjectXVenue(settings, wall, base_url=self.gt.url, client=client, native_oco=True,
                                   hub_kwargs={"backoff_initial_s": 0.05, "backoff_max_s": 0.2},
                                   on_alert=lambda p, k, m: self.venue_alerts.append((p, k, m)),
                                   contract_id=contract_id, market_depth=True)
        cfg = LiveConfig(mode="paper", clock="exchange", state_dir=state, reconcile_interval_s=1800.0,
                         min_reconcile_wall_s=0.5, feed_end_s=30.0, normal_window_bars=len(frame),
                         shutdown_wait_s=1.0)   # the fake is stepped by hand: venue.flatten closes at once
        self.sess = LiveSession(settings, ProjectXConnection(self.venue), cfg)

    def start(self) -> None:
        self.sess.start()
        gw = self.gt.gw
        _wait(lambda: any(c.hub == "market" and len(c.subs) >= 2 for c in gw.connections)
              and any(c.hub == "user" and len(c.subs) >= 4 for c in gw.connections), 30, "hubs")
        self.gt.call(self.ex.step)                       # the first market event: start-up ends
        _wait(lambda: self.sess.snapshot() is not None or self.sess.finished.is_set(), 30, "start-up")
        assert not self.sess.finished.is_set(), self.sess.exit_reason

    def step(self, n: int = 1) -> None:
        """``n`` price steps, each one processed by the session (fills delivered) before the next."""
        s, ex = self.sess, self.ex
        for _ in range(n):
            seen = s.data_seen
            self.gt.call(ex.step)
            _wait(lambda: s.data_seen >= seen + 2 and s.venue.fills >= len(ex.trades)
                  and all(c.outbox.empty() for c in self.gt.gw.connections) and self.venue.user_events.empty(),
                  10, "step processed")

    def close(self, keep_gateway: bool = False) -> None:
        try:
            self.sess.stop("test over")
            self.sess.finished.wait(20)
            self.end_position = self.gt.call(lambda: sum(p["size"] for p in self.ex.position.values()))
        finally:
            if not keep_gateway:
                self.gt.close()


@pytest.fixture(scope="module")
def bars_1m(topstepx_path):
    return load_bars(topstepx_path)


def _frames(topstepx_path, start: str, n: int, n_hist: int):
    full = load_bars_frame(topstepx_path)
    t0 = np.datetime64(start[:19], "ns")
    before = full[full["ts_event"] < start].tail(n_hist).reset_index(drop=True)
    after = full[full["ts_event"] >= start].head(n).reset_index(drop=True)
    assert len(before) == n_hist and len(after) == n and after["ts_event"].iloc[0].value == t0.astype(np.int64)
    return before, after


def _first_replay_entry(topstepx_path, bars_1m, tmp_path):
    """(entry time, contracts, fake start at its decision bar, history frame, live frame) of the
    first trade after 11:00 of a replay that saw 1,500 bars of history."""
    s = _settings(tmp_path / "ref")
    i0 = int(np.searchsorted(bars_1m.ts, np.datetime64(T_MID[:19], "ns").astype(np.int64)))
    sub = bars_1m.slice(i0 - 1500, i0 + 240)
    rep = Session(s, sub, make_signal_source(s, sub, None), SessionConfig())
    assert rep.run() == 0
    firsts = [t for t in rep.kernel.trades if t.entry_ts >= int(sub.ts[1500])]
    assert firsts, "the replay should trade after 11:00"
    entry = firsts[0].entry_ts
    decision_bar = int(np.searchsorted(sub.ts, entry)) - 1        # its bar closed → entry at the next open
    start = str(np.datetime64(int(sub.ts[decision_bar]), "ns")) + "+00:00"
    hist, live = _frames(topstepx_path, start, 30, 1500)
    return entry, firsts[0].contracts, hist, live


def test_warm_start_decides_on_the_first_live_bar_and_trades_like_the_replay(topstepx_path, bars_1m, tmp_path) -> None:
    # where does a replay that saw the history trade? start the fake at that decision bar
    entry, _, hist, live = _first_replay_entry(topstepx_path, bars_1m, tmp_path)
    run = Run(live, _settings(tmp_path / "warm"), tmp_path / "warm", history=hist)
    try:
        run.start()
        sess = run.sess
        assert sess.warm_bars >= sess.signals.window
        run.step(4 * 3)                                # the decision bar closes, the entry fills
        assert sess.first_decision_wall_s is not None and sess.i >= 1
        fills = [t for t in run.gt.call(lambda: [dict(t) for t in run.ex.trades])]
        assert fills, "the first live bar's decision should have traded"
        assert sess.kernel.book.qty != 0 or sess.kernel.trades
        first_entry = sess.kernel._open.entry_ts if sess.kernel._open is not None else sess.kernel.trades[0].entry_ts
        assert first_entry == entry                   # the same entry as the replay's
    finally:
        run.close()
    # control: no history → the baseline's window is not full, no decision on the first bars
    cold = Run(live, _settings(tmp_path / "cold", warm_start=False), tmp_path / "cold", history=hist)
    try:
        cold.start()
        cold.step(4 * 3)
        assert cold.sess.warm_bars == 0
        assert not np.isfinite(cold.sess._last_sig[1]) and cold.sess.first_decision_wall_s is None
        assert not cold.gt.call(lambda: list(cold.ex.trades))
    finally:
        cold.close()


def _open_at_fake(qty: int):
    def f(ex) -> None:
        ex.step()
        ex.place({"accountId": ex.account["id"], "contractId": ex.contract_id, "type": 2, "side": 0 if qty > 0 else 1,
                  "size": abs(qty)})
        ex.step()
    return f


@pytest.mark.parametrize("policy", ["adopt", "flatten"])
def test_position_found_at_start_up_adopted_with_a_stop_within_one_second_or_closed(topstepx_path, tmp_path,
                                                                                    policy) -> None:
    hist, live = _frames(topstepx_path, T_MID, 40, 300)
    run = Run(live, _settings(tmp_path, on_start_position=policy), tmp_path, history=hist, before=_open_at_fake(3))
    assert run.gt.call(lambda: run.ex.position[run.ex.contract_id]["size"]) == 3
    try:
        run.start()
        ex = run.ex

        def working_stop():
            return run.gt.call(lambda: [o for o in ex.orders.values() if o["status"] == 1 and o["type"] == 4
                                        and o["side"] == 1 and o["size"] == 3])
        if policy == "adopt":
            _wait(lambda: bool(working_stop()) and run.sess.adopted is not None, 1.0,
                  "a working stop for the adopted 3 contracts")
            # from the start-up reconciliation that found the position to the stop accepted
            assert run.sess.adopted["protected_after_s"] < 1.0, run.sess.adopted
            k = run.sess.kernel
            assert k.oco.pos == 3 and k.oco.protected(), (k.oco.stop, k.oco.exits, k.oco.entry)
            assert run.sess.adopted["qty"] == 3
            _wait(lambda: run.sess.snapshot() is not None, 5.0, "first snapshot")
            assert run.sess.snapshot().position.all_protected
            pos = run.gt.call(lambda: ex.position[ex.contract_id]["size"])
            assert pos == 3                          # adopted, not closed
        else:
            pos = run.gt.call(lambda: ex.position[ex.contract_id]["size"])
            assert pos == 0 and not working_stop()
            assert run.sess.kernel.oco.pos == 0 and run.sess.adopted is None
    finally:
        run.close()
    # orderly shutdown (flatten policy) leaves the account flat either way
    assert run.end_position == 0


def test_balance_from_broker_and_outside_change_reaches_tier_and_limits(topstepx_path, tmp_path) -> None:
    hist, live = _frames(topstepx_path, T_MID, 40, 300)
    # configured $1,000, the broker holds $2,500: a new state starts at the broker's balance
    s = _settings(tmp_path, capital=1_000.0)
    s = dataclasses.replace(s, risk=dataclasses.replace(s.risk, daily_loss_limit=50.0, daily_drawdown_limit=75.0,
                                                        kill_switch_loss=150.0, account_drawdown_limit=100.0,
                                                        min_account_balance=500.0))
    run = Run(live, s, tmp_path, history=hist, balance=2_500.0)
    try:
        run.start()
        r = run.sess.risk
        assert r.balance == 2_500.0 and r.snapshot().daily_pnl == 0.0 and r.snapshot().drawdown == 0.0
        from engine.risk.sizing import tier_for
        assert tier_for(r.balance, s.risk.balance_tiers).max_contracts == 4
        # $1,200 leaves the account outside the engine (another platform, fees...)
        run.gt.call(lambda: run.ex.adjust_balance(-1_200.0))
        _wait(lambda: run.sess.risk.balance == 1_300.0, 5.0, "balance from the account event",
              step=lambda: run.step(1))
        assert tier_for(run.sess.risk.balance, s.risk.balance_tiers).max_contracts == 2
        # depth: the fake's snapshot and updates reach the quote pane (best bid/ask and sizes)
        run.sess._publish()
        q = run.sess.snapshot().quote
        assert q.bid_levels and q.ask_levels and q.bid_levels[0][0] < q.ask_levels[0][0]
        assert q.bid_levels[0][0] == q.bid and q.ask_levels[0][0] == q.ask
        snap = run.sess.risk.snapshot()
        assert snap.daily_loss_used == pytest.approx(1_200.0)     # counted in the day: limits react
        assert snap.state.name != "ACTIVE"
    finally:
        run.close()
    # the session report is written by default (reports dir), with the venue fields
    import json
    rep = json.loads(run.sess.report_written.read_text())
    assert rep["warm_bars"] >= 300 and rep["starting_balance"] == 2_500.0 and rep["mode"] == "paper"


def test_mll_refuses_an_entry_that_would_cross_the_liquidation_level(topstepx_path, bars_1m, tmp_path) -> None:
    """topstepx-50k with the broker $1 above the 48,000 level (less than any stop-out: a tick
    is $1.25 plus $0.84 of costs): every entry the baseline wants is refused with the MLL
    reason; nothing is placed. §0 alone would have traded (the control below)."""
    hist, live = _frames(topstepx_path, T_MID, 120, 1500)
    s = _settings(tmp_path, capital=50_000.0)
    s = dataclasses.replace(s, account=dataclasses.replace(s.account, rules="topstepx-50k"))
    run = Run(live, s, tmp_path, history=hist, balance=48_001.0)
    try:
        run.start()
        sess = run.sess
        view = sess.snapshot().risk
        assert view.venue_rules == "topstepx-50k" and view.venue_liquidation_usd == 48_000.0
        assert view.venue_distance_usd == pytest.approx(1.0) and view.venue_max_contracts == 50
        for _ in range(4 * 110):
            run.step(1)
            if any(k.startswith("MLL:") for k in sess.kernel.stats.entries_refused):
                break
        refused = {k: v for k, v in sess.kernel.stats.entries_refused.items() if k.startswith("MLL:")}
        assert refused, sess.kernel.stats.entries_refused
        assert not run.gt.call(lambda: list(run.ex.orders.values()))
        n_bars = sess.i
    finally:
        run.close()
    s0 = dataclasses.replace(s, account=dataclasses.replace(s.account, rules="none"))
    ctl = Run(live, s0, tmp_path / "ctl", history=hist, balance=48_001.0)
    try:
        ctl.start()
        while ctl.sess.i < n_bars:
            ctl.step(1)
        assert ctl.gt.call(lambda: list(ctl.ex.orders.values())), "without the venue's rules it trades"
    finally:
        ctl.close()


def test_margin_refusal_retries_once_smaller_and_two_auth_failures_alert(topstepx_path, bars_1m, tmp_path) -> None:
    entry, qty, hist, live = _first_replay_entry(topstepx_path, bars_1m, tmp_path)
    assert qty >= 2
    run = Run(live, _settings(tmp_path / "m"), tmp_path / "m", history=hist)
    run.gt.gw.faults.margin_max_contracts = qty // 2     # the margin covers half
    try:
        run.start()
        places0 = run.gt.gw.calls.get("Order/place", 0)
        run.step(4 * 3)
        k = run.sess.kernel
        retries = [a for a in k.stats.alerts if a[1] == "margin_retry"]
        assert len(retries) == 1 and f"retrying once with {qty // 2}" in retries[0][2]
        entries = run.gt.call(lambda: [dict(o) for o in run.ex.orders.values() if o["type"] == 2 and "-entry-" in (o.get("customTag") or "")])
        assert [o["size"] for o in entries] == [qty // 2]          # the refused one left no order
        assert run.gt.gw.calls.get("Order/place", 0) - places0 == 2   # refused + one smaller, never resent
        assert k.book.qty == qty // 2 or k.trades
        # two authentication failures in a row: the token dies and the key is refused once
        run.gt.gw.api_key = "rotated-" + KEY
        run.gt.gw.faults.http_401 = 1
        with pytest.raises(Exception):
            run.venue.account()                      # 401 → re-login refused → 2 in a row
        auth = [a for a in run.venue_alerts if a[1] == "auth_failures"]
        assert len(auth) == 1 and auth[0][0] == "critical" and "2 authentication failures" in auth[0][2]
        run.gt.gw.api_key = KEY
        run.venue.account()                          # re-authenticated: the streak ends
        assert run.venue.client.auth_failures_in_a_row == 0
    finally:
        run.close()


def test_session_across_the_roll_date_stops_entries_then_ends_and_restarts_on_the_next_contract(
        topstepx_path, tmp_path) -> None:
    """MES U25 rolls on Thursday 2025-09-11 (8 days before the 19 September expiry). A session
    started on the 10th trades U25; from the first bar of the roll day's session (Wednesday
    18:00 New York) it opens nothing more (critical alert); at the next trading day, flat, it
    ends with exit 0 naming Z25; a restart trades Z25 and one on U25 is refused naming Z25."""
    import pandas as pd

    full = load_bars_frame(topstepx_path)
    t = full["ts_event"]

    def part(a: str, b: str):
        return full[(t >= pd.Timestamp(a, tz="UTC")) & (t < pd.Timestamp(b, tz="UTC"))]
    live = pd.concat([part("2025-09-10T20:00", "2025-09-10T20:20"),      # trading day 09-10: U25
                      part("2025-09-10T22:00", "2025-09-10T22:20"),      # roll day 09-11 opens
                      part("2025-09-11T22:00", "2025-09-11T22:20")]).reset_index(drop=True)
    hist = full[t < pd.Timestamp("2025-09-10T20:00", tz="UTC")].tail(1500).reset_index(drop=True)
    run = Run(live, _settings(tmp_path / "a"), tmp_path / "a", history=hist)
    try:
        run.start()
        sess = run.sess
        assert run.venue.contract_id == "CON.F.US.MES.U25" and not sess._timed_risk.block_reason
        run.step(4 * 21)                                    # into the roll day's session
        assert sess._timed_risk.block_reason.startswith("contract roll: MESU5 rolls on 2025-09-11")
        assert "CON.F.US.MES.Z25" in sess._timed_risk.block_reason
        active = run.gt.call(lambda: [c["id"] for c in run.ex.contracts if c["activeContract"]
                                      and c["symbolId"] == "F.US.MES"])
        assert active == ["CON.F.US.MES.Z25"]
        n_orders = run.gt.call(lambda: len(run.ex.orders))
        run.step(4 * 19)
        assert run.gt.call(lambda: len(run.ex.orders)) == n_orders     # nothing new on the roll day
        _wait(lambda: sess.finished.is_set() or sess._stop.is_set(), 10.0, "session end at the next day",
              step=lambda: run.step(1))
        sess.finished.wait(20)
        assert sess.exit_code == 0 and sess.exit_reason == "contract roll: restart to trade CON.F.US.MES.Z25"
        # a restart on U25 is refused naming Z25; the default (active contract) trades Z25
        import threading

        from engine.runtime.session import SessionError

        def ticker():
            for _ in range(40):
                run.gt.call(run.ex.step)
                time.sleep(0.02)
        bad = Run(live, _settings(tmp_path / "b"), tmp_path / "b", gt=run.gt, contract_id="CON.F.US.MES.U25")
        th = threading.Thread(target=ticker, daemon=True)
        th.start()
        with pytest.raises(SessionError, match=r"CON.F.US.MES.U25 is not the front month on 2025-09-1\d: "
                                               r"trade CON.F.US.MES.Z25"):
            bad.sess.startup()
        bad.sess.shutdown()
        th.join()
        new = Run(live, _settings(tmp_path / "c"), tmp_path / "c", gt=run.gt)
        th = threading.Thread(target=ticker, daemon=True)
        th.start()
        new.sess.startup()
        th.join()
        assert new.venue.contract_id == "CON.F.US.MES.Z25" and not new.sess._timed_risk.block_reason
        new.sess.shutdown()
    finally:
        run.close()


def test_depth_book_rows() -> None:
    """ProjectX GatewayDepth rows → engine DepthUpdate (the adapter) → DepthBook (the session)."""
    from engine.broker.base import DepthRow, DepthUpdate
    from engine.broker.projectx.connection import depth_update
    from engine.runtime.live import DepthBook

    d = DepthBook()
    d.apply(depth_update([{"type": 2, "price": 90.0, "currentVolume": 1}, {"type": 6},
                          {"type": 2, "price": 100.0, "currentVolume": 5}, {"type": 2, "price": 99.75, "volume": 7},
                          {"type": 1, "price": 100.25, "currentVolume": 3}, None, {"type": 1, "price": "x"}]))
    assert d.levels(2) == (((100.0, 5.0), (99.75, 7.0)), ((100.25, 3.0),)) and d.bad == 2
    d.apply(depth_update([{"type": 9, "price": 99.75, "currentVolume": 4}, {"type": 1, "price": 100.25, "currentVolume": 0}]))
    assert d.levels(3) == (((99.75, 4.0),), ())       # new best bid below 100: that level is gone
    d.apply(depth_update([{"type": 6}]))
    assert d.levels(1) == ((), ())
    # the engine side refuses what no adapter should send: a non-finite price, a negative size
    d.apply(DepthUpdate((DepthRow(1, float("nan"), 1.0), DepthRow(-1, 100.0, -1.0), DepthRow(1, 99.5, 2.0))))
    assert d.levels(1) == (((99.5, 2.0),), ()) and d.bad == 4
