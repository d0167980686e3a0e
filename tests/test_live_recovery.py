"""The start-up recovery table (issue 22, :mod:`engine.runtime.recovery`), one test per row, over
loopback with the real client (aiohttp + signalrcore) against the fake gateway on real TopstepX
bars. Each case sets up what the broker shows after an engine died (the fake is driven by
explicit steps and calls, never by wall-clock waits), starts a session on a saved risk state,
and checks the ending: the broker flat (or the adopted position protected), no orphan order,
the risk state's balance and day P&L equal to the broker's to the cent, and the journal's fills
and round trips equal to the broker's trades (ids, P&L, fees)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.broker.base import api_host
from engine.broker.projectx.connection import ProjectXConnection
from engine.calendar import calendar_for
from engine.clock import LiveClock
from engine.instruments import spec
from engine.journal import Journal
from engine.risk import RiskManager, RiskStateStore
from engine.runtime.live import LiveSession
from tests.px_fixtures import ThreadedGateway
from tests.test_live_account import KEY, T_MID, USER, Run, _frames, _settings

TAG = "mc1abcdef-"        # an earlier engine process's tag prefix (the default form)
CAPITAL = 100_000.0


def _saved_state(gt: ThreadedGateway, state: Path, settings) -> None:
    """The risk state an earlier session left: its watermark a minute ago, the capital booked."""
    acct = gt.call(lambda: gt.gw.exchange.account["name"])
    now = LiveClock().now_ns()
    cal = calendar_for(now - 7 * 86_400 * 10**9, now + 30 * 86_400 * 10**9)
    store = RiskStateStore(state / "risk" / f"paper-{api_host(gt.url)}-{acct}")
    rm = RiskManager(settings, LiveClock(), cal, spec("MES"), store)
    rm.book_broker_trades([], None, since_ns=now - 60 * 10**9)


def _entry(ex, side: int, size: int, tag: str | None, *, bracket: bool = True, typ: int = 2,
           price: float | None = None) -> int:
    p = {"accountId": ex.account["id"], "contractId": ex.contract_id, "type": typ, "side": 0 if side > 0 else 1,
         "size": size, "customTag": tag}
    if price is not None:
        p["limitPrice"] = price
    if bracket:
        p["stopLossBracket"] = {"ticks": -8 * side, "type": 4}
        p["takeProfitBracket"] = {"ticks": 16 * side, "type": 1}
    code, msg, oid = ex.place(p)
    assert code == 0, msg
    return oid


def _working(ex) -> list[dict]:
    return [dict(o) for o in ex.orders.values() if o["status"] in (1, 6, 8)]


def _check_books(run: Run, state: Path, *, flat: bool = True) -> dict:
    """Broker vs risk state vs journal, to the cent; returns the broker's view."""
    ex = run.ex
    b = run.gt.call(lambda: {"balance": ex.account["balance"], "trades": [dict(t) for t in ex.trades],
                             "pos": sum(p["size"] for p in ex.position.values()), "working": _working(ex)})
    if flat:
        assert b["pos"] == 0, b["pos"]
        assert not b["working"], [(o["id"], o["customTag"], o["status"]) for o in b["working"]]
    closed = [t for t in b["trades"] if t["profitAndLoss"] is not None]
    if flat:
        net = round(sum((t["profitAndLoss"] or 0.0) - t["fees"] for t in b["trades"]), 2)
        r = run.sess.risk
        assert r.balance == pytest.approx(b["balance"], abs=0.005), (r.balance, b["balance"])
        assert r.balance - CAPITAL == pytest.approx(net, abs=0.005)
        st = r.state_dict()
        assert st["halt"] is None, st["halt"]          # recovery's own reconciliations explain themselves
        assert st["day_realized_pnl"] == pytest.approx(net, abs=0.005)
        assert st["trades_today"] == len(closed)
        assert {t["id"] for t in b["trades"]} <= r.book_broker_trades()["ids"]
        j = Journal(state / "data" / "journal.sqlite3", readonly=True)
        try:
            fills = {f["broker_id"]: f for f in j.fills()}
            assert set(fills) == {t["id"] for t in b["trades"]}
            for t in b["trades"]:
                f = fills[t["id"]]
                assert f["fees"] == pytest.approx(t["fees"]) and f["price"] == t["price"]
                assert (f["pnl"] is None) == (t["profitAndLoss"] is None)
                if t["profitAndLoss"] is not None:
                    assert f["pnl"] == pytest.approx(t["profitAndLoss"])
            assert round(sum(x["net_pnl"] for x in j.trades()), 2) == pytest.approx(net, abs=0.005)
        finally:
            j.close()
    return b


def _run(tmp_path, setup, *, policy: str = "flatten", conn=ProjectXConnection) -> tuple[Run, Path]:
    _, live = _FR["f"]
    state = tmp_path / "state"
    s = _settings(state, capital=CAPITAL, on_start_position=policy, warm_start=False)
    gt = ThreadedGateway(live, username=USER, api_key=KEY, balance=CAPITAL)
    _saved_state(gt, state, s)
    gt.call(lambda: setup(gt.gw.exchange))   # what the broker shows after the engine died
    run = Run(live, s, state, gt=gt)
    if conn is not ProjectXConnection:
        run.sess = LiveSession(s, conn(run.venue, gt), run.sess.cfg)
    return run, state


_FR: dict = {}


@pytest.fixture(autouse=True)
def _frames_once(topstepx_path):
    if "f" not in _FR:
        _FR["f"] = _frames(topstepx_path, T_MID, 40, 10)
    yield


def test_row_orphan_orders_position_closed_while_dead_with_legs_left_working(tmp_path) -> None:
    def setup(ex):
        ex.step()
        _entry(ex, +1, 1, TAG + "e1")
        ex.step()
        assert len(_working(ex)) == 2          # the legs work
        assert ex.close_position({"accountId": ex.account["id"], "contractId": ex.contract_id}, None)[0] == 0
        assert len(_working(ex)) == 2          # closeContract leaves the legs working (reference §6.9)
    run, state = _run(tmp_path, setup)
    try:
        run.start()
        assert "orphan_orders" in run.sess.recovery_rows and "fills_unbooked" in run.sess.recovery_rows
        _check_books(run, state)
        _steps(run, 8)                         # the market moves on; no leg is left to fill
        assert run.gt.call(lambda: sum(p["size"] for p in run.ex.position.values())) == run.sess.kernel.oco.pos
    finally:
        run.close()


def _steps(run: Run, n: int) -> None:
    """``n`` price steps, each seen by the session before the next (no wall-clock sleep)."""
    from tests.test_live_account import _wait

    for _ in range(n):
        seen = run.sess.data_seen
        run.gt.call(run.ex.step)
        _wait(lambda: run.sess.data_seen >= seen + 2, 10, "step processed")


class _LegFillsDuringStartup(ProjectXConnection):
    """The stop leg fills at the broker between the start-up reconciliation (which saw the
    position and both legs working) and recovery's first action."""

    def __init__(self, venue, gt) -> None:
        super().__init__(venue)
        self.gt, self.done = gt, False

    def cancel_all_working(self, keep_market: bool = True) -> list:
        if not self.done:
            self.done = True

            def fill() -> None:
                ex = self.gt.gw.exchange
                stop = next(o for o in ex.orders.values() if o["status"] == 1 and o["type"] == 4)
                ex._fill(stop, stop["size"], stop["stopPrice"])
            self.gt.call(fill)
        return super().cancel_all_working(keep_market)


@pytest.mark.parametrize("policy", ["flatten", "adopt"])
def test_row_position_ours_a_leg_filled_during_startup(tmp_path, policy) -> None:
    def setup(ex):
        ex.step()
        _entry(ex, +1, 2, TAG + "e1")
        ex.step()
        assert ex.position[ex.contract_id]["size"] == 2
    run, state = _run(tmp_path, setup, policy=policy, conn=_LegFillsDuringStartup)
    try:
        run.start()
        rows = run.sess.recovery_rows
        assert "position_ours" in rows and "legs_of_position" in rows, rows
        assert run.sess.adopted is None and run.sess.kernel.oco.pos == 0   # the re-read saw it flat
        b = _check_books(run, state)
        assert sum(1 for t in b["trades"] if t["profitAndLoss"] is not None) == 1
        # no false "activity outside the engine" alert: the balance read follows the leg's fill
        assert not [e for e in run.sess._events if "outside the engine" in e.message]
    finally:
        run.close()


def test_row_position_not_ours_opened_by_hand_while_dead(tmp_path) -> None:
    def setup(ex):
        ex.step()
        _entry(ex, -1, 2, None, bracket=False)     # a hand trade: no engine tag
        ex.step()
    run, state = _run(tmp_path, setup)
    try:
        run.start()
        assert "position_not_ours" in run.sess.recovery_rows, run.sess.recovery_rows
        b = _check_books(run, state)
        assert len(b["trades"]) == 2
    finally:
        run.close()


def test_row_position_size_partial_fill_while_dead(tmp_path) -> None:
    def setup(ex):
        ex.step()
        ex.faults.partial_fills = True
        oid = _entry(ex, +1, 2, TAG + "e1", typ=1, price=ex.market.ask + 1.0)   # a marketable limit
        ex.faults.partial_fills = False
        ex._pending_partial.pop(oid)              # the rest never fills while the engine is dead
        o = ex.orders[oid]
        assert o["fillVolume"] == 1 and o["status"] == 1
        assert sorted(k["status"] for k in ex.orders.values() if k.get("parentOrderId") == oid) == [8, 8]
    run, state = _run(tmp_path, setup)
    try:
        run.start()
        rows = run.sess.recovery_rows
        assert "entry_partial" in rows and "position_size" in rows, rows
        _check_books(run, state)
    finally:
        run.close()


def test_row_foreign_orders_cancelled(tmp_path) -> None:
    def setup(ex):
        ex.step()
        px = round(ex.market.last * 0.9 / 0.25) * 0.25
        _entry(ex, +1, 1, None, bracket=False, typ=1, price=px)     # a resting buy placed by hand
        _entry(ex, +1, 1, "someone-else", bracket=False, typ=1, price=px - 1.0)
        assert len(_working(ex)) == 2
    run, state = _run(tmp_path, setup)
    try:
        run.start()
        assert run.sess.recovery_rows == ["foreign_orders"], run.sess.recovery_rows
        _check_books(run, state)
        assert any("[foreign_orders]" in e.message for e in run.sess._events)
    finally:
        run.close()


def test_row_flat_nothing_to_do(tmp_path) -> None:
    run, state = _run(tmp_path, lambda ex: ex.step())
    try:
        run.start()
        assert run.sess.recovery_rows == ["flat"]
        _check_books(run, state)
    finally:
        run.close()


def test_round_trip_row_from_fills() -> None:
    from engine.broker.base import BrokerFill
    from engine.runtime.recovery import round_trip

    fills = [BrokerFill(1, 10, 1, 2, 6500.0, 0.84), BrokerFill(2, 20, -1, 2, 6501.25, 0.84, pnl=12.5)]
    rt = round_trip(fills, 30)
    assert (rt.direction, rt.contracts, rt.entry_price, rt.exit_price) == (1, 2, 6500.0, 6501.25)
    assert (rt.gross_pnl, rt.commission, rt.net_pnl) == (12.5, 1.68, 10.82)
    assert rt.exit_reason == "recovery" and rt.exit_ts == 30



def test_balance_change_recovery_cannot_attribute_is_alerted_once(tmp_path) -> None:
    def setup(ex):
        ex.step()
        ex.adjust_balance(-50.0)                   # a fee or a withdrawal while no engine ran
    run, state = _run(tmp_path, setup)
    try:
        run.start()
        assert run.sess.risk.balance == pytest.approx(CAPITAL - 50.0)
        outside = [e for e in run.sess._events if "outside the engine" in e.message]
        assert len(outside) == 1 and "$-50.00" in outside[0].message, [e.message for e in run.sess._events]
    finally:
        run.close()


def test_adopted_position_books_its_whole_round_trip_by_id(tmp_path) -> None:
    """``position_ours`` under ``adopt``: the broker's legs are replaced by the kernel's, and when
    the adopted position closes, the risk state and the journal hold the whole round trip
    (opening fill included, fees too), equal to the broker's."""
    def setup(ex):
        ex.step()
        _entry(ex, +1, 1, TAG + "e1")
        ex.step()
    run, state = _run(tmp_path, setup, policy="adopt")
    try:
        run.start()
        s = run.sess
        assert "position_ours" in s.recovery_rows and s.adopted is not None and s.kernel.oco.pos == 1
        working = run.gt.call(lambda: _working(run.ex))
        assert [o["type"] for o in working if o["status"] == 1] in ([4, 1], [1, 4])   # the kernel's stop + target

        def stop_out():
            ex = run.ex
            stop = next(o for o in ex.orders.values() if o["status"] == 1 and o["type"] == 4)
            ex._fill(stop, stop["size"], stop["stopPrice"])
        run.gt.call(stop_out)
        _steps(run, 8)
        assert s.kernel.oco.pos == 0 and len(s.kernel.trades) == 1
        _check_books(run, state)
    finally:
        run.close()


# ---------------------------------------------------------------------- a running session
# The same table after a hub reconnect and after outside activity (module docstring of
# engine.runtime.recovery, "At a running session"): what the broker shows is classified against
# the kernel. The outage is made on the gateway's own thread, in one call: the user hub's
# connections are dropped, then the broker changes, so the session cannot see the change on the
# stream; it reconnects by itself (back-off 0.05 s).


def _while_hub_down(run: Run, change) -> None:
    """Drop the user hub, change the broker (``change(exchange)``) before the session can
    reconnect, wait for the reconnection, then step the market until the table has run."""
    from tests.test_live_account import _wait

    gw, v, s = run.gt.gw, run.venue, run.sess
    before, runs = v.stats["reconnects"], len(s.recoveries)

    async def outage():
        await gw.drop_hub_connections("user", graceful=False)
        change(gw.exchange)
    run.gt.run(outage())
    _wait(lambda: v.stats["reconnects"] > before, 10, "user hub reconnected")
    _settled(run, runs)


def _settled(run: Run, runs: int) -> None:
    """Step the market until the running table has recorded a run after ``runs`` and has
    nothing left to do (no pending check, no outside fill)."""
    from tests.test_live_account import _wait

    s = run.sess
    _wait(lambda: len(s.recoveries) > runs and s._recheck is None and not s.venue.outside, 20,
          "recovery table ran", step=lambda: _steps(run, 1))


def _adopted(ex) -> None:
    """An engine position the session adopts at start-up (the kernel then holds +1 with its own
    stop and target working)."""
    ex.step()
    _entry(ex, +1, 1, TAG + "e1")
    ex.step()


def test_reconnect_position_closed_by_hand_while_the_hub_was_down(tmp_path) -> None:
    """The kernel holds +1 with both legs working; the position is closed by hand during an
    outage (closeContract leaves the legs working). Without the table the kernel kept +1 and
    both legs worked on a flat account: a leg fill would have opened a naked position."""
    run, state = _run(tmp_path, _adopted, policy="adopt")
    try:
        run.start()
        s = run.sess
        assert s.kernel.oco.pos == 1
        _while_hub_down(run, lambda ex: ex.close_position({"accountId": ex.account["id"],
                                                            "contractId": ex.contract_id}, None))
        rows = s.recoveries[-1]["rows"]
        assert "position_size" in rows and "fills_unbooked" in rows, s.recoveries
        assert s.kernel.oco.pos == 0 and s.kernel.oco.protected()
        _check_books(run, state)                       # flat, no leg working, books = broker
        _steps(run, 8)                                 # the market moves on: nothing is left to fill
        _check_books(run, state)
        assert s.risk.state_dict()["halt"] is None
        assert any("[position_size]" in e.message and "the kernel holds +1" in e.message for e in s._events)
    finally:
        run.close()


def test_reconnect_hand_position_and_foreign_order_closed(tmp_path) -> None:
    """The kernel is flat; during an outage a position is opened by hand and a resting order is
    placed by hand. Without the table both stayed, the reconcile called the position 'explained'
    and nothing was alerted."""
    def change(ex):
        _entry(ex, -1, 2, None, bracket=False)
        _entry(ex, +1, 1, None, bracket=False, typ=1, price=round(ex.market.last * 0.9 / 0.25) * 0.25)
    run, state = _run(tmp_path, lambda ex: ex.step())
    try:
        run.start()
        _while_hub_down(run, change)
        rows = run.sess.recoveries[-1]["rows"]
        assert {"foreign_orders", "position_not_ours", "fills_unbooked"} <= set(rows), rows
        b = _check_books(run, state)
        assert len(b["trades"]) == 2                   # the hand sell and recovery's close
        assert run.sess.kernel.oco.pos == 0
    finally:
        run.close()


def test_reconnect_foreign_order_only_is_cancelled_and_the_position_kept(tmp_path) -> None:
    """Only a foreign order appeared: it is cancelled; the kernel's position and its stop and
    target stay (the table does not close what agrees with the broker)."""
    run, state = _run(tmp_path, _adopted, policy="adopt")
    try:
        run.start()
        s = run.sess
        legs = sorted(o["id"] for o in run.gt.call(lambda: _working(run.ex)))
        _while_hub_down(run, lambda ex: _entry(ex, -1, 1, "someone-else", bracket=False, typ=1,
                                               price=round(ex.market.last * 1.1 / 0.25) * 0.25))
        assert s.recoveries[-1]["rows"] == ["foreign_orders"], s.recoveries
        assert sorted(o["id"] for o in run.gt.call(lambda: _working(run.ex))) == legs
        assert s.kernel.oco.pos == 1 and s.kernel.oco.protected()
        assert run.gt.call(lambda: run.ex.position[run.ex.contract_id]["size"]) == 1
    finally:
        run.close()


def test_reconnect_orphan_engine_order_of_an_earlier_session_cancelled(tmp_path) -> None:
    """An engine-tagged order the kernel does not hold (an earlier process's) appears while the
    hub is down: the orphan row cancels it; nothing else is touched."""
    run, state = _run(tmp_path, lambda ex: ex.step())
    try:
        run.start()
        _while_hub_down(run, lambda ex: _entry(ex, +1, 1, TAG + "old", bracket=False, typ=1,
                                               price=round(ex.market.last * 0.9 / 0.25) * 0.25))
        assert run.sess.recoveries[-1]["rows"] == ["orphan_orders"], run.sess.recoveries
        _check_books(run, state)
    finally:
        run.close()


def test_outside_round_trip_while_connected_is_booked_by_trade_id(tmp_path) -> None:
    """A hand round trip while the stream is up: its fills are outside fills (not the kernel's);
    the table books them by trade id, so the risk state and the journal equal the broker's and
    no 'outside the engine' balance alert follows."""
    run, state = _run(tmp_path, lambda ex: ex.step())
    try:
        run.start()
        s = run.sess
        runs = len(s.recoveries)

        def hand(ex):
            _entry(ex, +1, 1, None, bracket=False)
            ex.step()
            _entry(ex, -1, 1, None, bracket=False)
        run.gt.call(lambda: hand(run.ex))
        _settled(run, runs)
        assert s.recoveries[-1]["rows"] == ["fills_unbooked"], s.recoveries
        _check_books(run, state)
        assert not [e for e in s._events if "outside the engine" in e.message]
    finally:
        run.close()


class _CancelsIgnored(ProjectXConnection):
    """The broker answers the first three recovery cancels (one whole table run: three
    attempts) without cancelling anything."""

    def __init__(self, venue, gt) -> None:
        super().__init__(venue)
        self.refused = 0

    def cancel_orders(self, ids: list[int]) -> list[int]:
        if self.refused < 3:
            self.refused += 1
            return []
        return super().cancel_orders(ids)


def test_unconfirmed_recovery_holds_entries_until_the_broker_agrees(tmp_path) -> None:
    """The broker does not confirm the cancel: entries are held (the risk proxy refuses them
    naming the recovery) and the table runs again; once the order is gone they are free."""
    run, state = _run(tmp_path, lambda ex: ex.step(), conn=_CancelsIgnored)
    run.sess.cfg.recovery_retry_s = 0.0
    try:
        run.start()
        s = run.sess
        _while_hub_down(run, lambda ex: _entry(ex, +1, 1, "someone-else", bracket=False, typ=1,
                                               price=round(ex.market.last * 0.9 / 0.25) * 0.25))
        fails = [r for r in s.recoveries if not r["ok"]]
        assert fails and "not cancelled after 3 attempts" in fails[0]["error"], s.recoveries
        assert s.recoveries[-1]["ok"] and s.recoveries[-1]["rows"] == ["foreign_orders"]
        assert s._timed_risk.hold_reason == ""
        msgs = [e.message for e in s._events]
        assert any("hub reconnect recovery: orders not cancelled after 3 attempts" in m for m in msgs), msgs
        assert any("entries free again" in m for m in msgs)
        _check_books(run, state)
        object.__setattr__(s._timed_risk, "hold_reason", "recovery pending: test")   # what a held entry meets
        d = s._timed_risk.evaluate_entry(1, 0.9, 6500.0, 2.0, None, None, 0, True)
        assert not d.approved and d.reason == "recovery pending: test"
    finally:
        run.close()


def test_entries_held_while_the_user_hub_is_down_until_the_table_has_run(tmp_path) -> None:
    """A user-hub outage that lasts (the fake refuses the reconnection): while it lasts the
    session trades nothing new (entries refused naming the outage) although the market moves;
    a hand position opened meanwhile is closed by the table after the reconnection, and only
    then are entries free again."""
    from tests.test_live_account import _wait

    run, state = _run(tmp_path, lambda ex: ex.step())
    try:
        run.start()
        s, gw = run.sess, run.gt.gw
        runs = len(s.recoveries)

        async def outage():
            gw.faults.hubs_down.add("user")
            await gw.drop_hub_connections("user", graceful=False)
            _entry(gw.exchange, +1, 1, None, bracket=False)
        run.gt.run(outage())
        _wait(lambda: "disconnected" in s._timed_risk.hold_reason, 10, "entries held")   # the loop's timers see it
        _steps(run, 3)                                 # the market moves on; the outage lasts
        d = s._timed_risk.evaluate_entry(1, 0.9, 6500.0, 2.0, None, None, 0, True)
        assert not d.approved and "hub disconnected" in d.reason
        assert not s.recoveries[runs:]                 # nothing seen, nothing acted on yet
        run.gt.call(lambda: gw.faults.hubs_down.clear())
        _settled(run, runs)
        assert {"position_not_ours", "fills_unbooked"} <= set(s.recoveries[-1]["rows"]), s.recoveries
        assert s._timed_risk.hold_reason == ""
        _check_books(run, state)
    finally:
        run.close()
