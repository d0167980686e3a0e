"""Crash-only recovery (issue 15 item 1, issue 22, R-RISK-6, R-EXE-4): a real paper session
PROCESS (headless CLI, real signalrcore client) against the fake gateway on real TopstepX bars
is SIGKILLed with a position open (the market moves on while it is dead), ~100 ms after an exit
filled, and with a position open that is then closed at the broker while it is dead (the
bracket legs left working). After each restart the broker is flat with no working order, the
risk state's balance, day P&L and trade count and the journal's fills and round trips equal the
broker's, no order is sent twice, and the session trades on. The fake is stepped by hand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.broker.fake import load_bars_frame
from tests.px_fixtures import ThreadedGateway

ROOT = Path(__file__).resolve().parents[1]
USER, KEY = "crash-user", "px-crash-key-0a1b2c3d4e5f67"
START = "2025-09-04T13:00:00+00:00"   # 09:00 New York: warm-up, then RTH
CAPITAL = 100_000.0


class Proc:
    """One ``run --mode paper`` process; its JSON-lines stdout read on a thread."""

    def __init__(self, url: str, cfg: Path) -> None:
        env = dict(os.environ, PROJECTX_USERNAME=USER, PROJECTX_API_KEY=KEY, PYTHONPATH=str(ROOT))
        self.p = subprocess.Popen([sys.executable, "-m", "mes_console.cli", "run", "--mode", "paper",
                                   "--gateway-url", url, "--no-tui", "--config", str(cfg)],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        self.lines: list[str] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.append(line)

    def started(self) -> bool:
        for ln in list(self.lines):
            try:
                if json.loads(ln).get("event") == "start":
                    return True
            except ValueError:
                pass
        return False

    def kill(self) -> None:
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(10)

    def text(self) -> str:
        return "".join(self.lines)


def _broker(gt):
    ex = gt.gw.exchange

    def snap():
        trades = [dict(t) for t in ex.trades]
        return {"balance": ex.account["balance"], "trades": trades,
                "pos": sum(p["size"] for p in ex.position.values()),
                "orders": [dict(o) for o in ex.orders.values()]}
    return gt.call(snap)


def _risk_state(state: Path) -> dict:
    files = list((state / "risk").glob("*/risk_state.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())["state"]


def _assert_books_equal(state: Path, b: dict) -> None:
    st = _risk_state(state)
    closes = [t for t in b["trades"] if t["profitAndLoss"] is not None]
    opens_unclosed = b["pos"] != 0
    assert not opens_unclosed, "compare when the broker is flat"
    net = sum((t["profitAndLoss"] or 0.0) - t["fees"] for t in b["trades"])
    assert abs((st["balance"] - CAPITAL) - (b["balance"] - CAPITAL)) < 0.01 * (len(closes) + 1), (st, b["balance"])
    assert abs((b["balance"] - CAPITAL) - net) < 0.011 * (len(b["trades"]) + 1), (b["balance"], net)
    assert abs(st["day_realized_pnl"] - net) < 0.01 * (len(closes) + 1), (st["day_realized_pnl"], net)
    assert st["trades_today"] == len(closes), (st["trades_today"], len(closes))
    assert sorted(st["broker_booked"]) == sorted(t["id"] for t in b["trades"]), (
        sorted(st["broker_booked"]), [t["id"] for t in b["trades"]])
    j = state.parent / "data" / "journal.sqlite3"
    if j.exists():     # the journal equals the broker's trades: ids, P&L, fees; round trips' net
        from engine.journal import Journal

        jr = Journal(j, readonly=True)
        try:
            fills = {f["broker_id"]: f for f in jr.fills()}
            jnet = sum(t["net_pnl"] for t in jr.trades())
        finally:
            jr.close()
        assert set(fills) == {t["id"] for t in b["trades"]}, (sorted(fills), [t["id"] for t in b["trades"]])
        for t in b["trades"]:
            assert abs(fills[t["id"]]["fees"] - t["fees"]) < 0.005, (fills[t["id"]], t)
            assert (fills[t["id"]]["pnl"] is None) == (t["profitAndLoss"] is None), (fills[t["id"]], t)
        assert abs(jnet - net) < 0.005 * (len(closes) + 1), (jnet, net)
    print(f"risk state: balance {st['balance']:.2f}, day P&L {st['day_realized_pnl']:+.2f}, "
          f"{st['trades_today']} trades; broker: balance {b['balance']:.2f}, net {net:+.2f}, "
          f"{len(closes)} closing fills")


def _wait(pred, steps, timeout: float, why: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out: {why}")
        steps()


def paper_config(path: Path, extra: str) -> Path:
    """A settings file for a CLI paper session on the ``CAPITAL`` fake account: limits far away
    (the tests compare books, not limits), a patient feed, plus ``extra`` TOML."""
    path.write_text(f"""[account]
starting_capital = {CAPITAL}
[risk]
daily_loss_limit = 40000.0
daily_drawdown_limit = 45000.0
kill_switch_loss = 60000.0
account_drawdown_limit = 50000.0
min_account_balance = 100.0
consecutive_loss_pauses = [[1000, 1]]
[projectx]
stale_feed_s = 60.0
""" + extra)
    return path


def test_sigkill_with_position_and_after_exit_books_broker_pnl_once(topstepx_path, tmp_path) -> None:
    frame = load_bars_frame(topstepx_path, start=START, max_rows=420)
    gt = ThreadedGateway(frame, username=USER, api_key=KEY, balance=CAPITAL)
    ex = gt.gw.exchange
    state = tmp_path / "state"
    # books are compared right after each start-up: a warm session may trade on its first bar
    cfg = paper_config(tmp_path / "c.toml", f'[paths]\nstate_dir = "{state}"\ndata_dir = "{tmp_path / "data"}"\n'
                                            '[live]\nwarm_start = false\n')
    procs: list[Proc] = []

    def step(n: int = 1) -> None:
        for _ in range(n):
            gt.call(ex.step)
            time.sleep(0.004)

    def hubs() -> set:
        return {id(c) for c in gt.gw.connections
                if (c.hub == "market" and len(c.subs) >= 2) or (c.hub == "user" and len(c.subs) >= 4)}

    def start() -> Proc:
        """A new process; once ITS two hubs are subscribed, one price step (its first market
        event ends the start-up wait), then no more steps until it reports its start: the
        market does not run on while it recovers (a slow start under load would otherwise
        replay enough bars for the session to trade before the books are compared)."""
        seen = hubs()
        p = Proc(gt.url, cfg)
        procs.append(p)
        _wait(lambda: len(hubs() - seen) >= 2 or p.p.poll() is not None, lambda: time.sleep(0.02), 60, "hubs")
        assert p.p.poll() is None, p.text()[-3000:]
        polls = [0]

        def nudge() -> None:       # a step now and then only if the first one was not seen
            if polls[0] % 100 == 0:
                step()
            polls[0] += 1
            time.sleep(0.02)
        _wait(lambda: p.started() or p.p.poll() is not None, nudge, 60, "session start")
        assert p.p.poll() is None, p.text()[-3000:]
        return p

    try:
        # 1. a session trades until a position is open with its bracket, then SIGKILL
        p1 = start()
        _wait(lambda: _broker(gt)["pos"] != 0, step, 60, "first entry")
        p1.kill()
        step(40)                                 # the market moves on while no engine runs
        # 2. restart: the crash window is booked; the leftover position is closed and booked
        p2 = start()
        b = _broker(gt)
        assert b["pos"] == 0 and not [o for o in b["orders"] if o["status"] in (1, 6, 8)], (
            b["pos"], [(o["id"], o["customTag"], o["status"]) for o in b["orders"] if o["status"] in (1, 6, 8)])
        _assert_books_equal(state, b)
        n_trades = len(b["trades"])
        n_closes = sum(1 for t in b["trades"] if t["profitAndLoss"] is not None)
        # 3. it trades on: a new round trip; SIGKILL ~100 ms after its exit filled
        _wait(lambda: sum(1 for t in _broker(gt)["trades"][n_trades:] if t["profitAndLoss"] is not None) >= 1,
              step, 90, "a round trip after the restart")
        time.sleep(0.1)
        p2.kill()
        # 4. restart again: balance, day P&L and trade count equal the broker's
        p3 = start()
        b = _broker(gt)
        _assert_books_equal(state, b)
        assert sum(1 for t in b["trades"] if t["profitAndLoss"] is not None) > n_closes, "no new round trip"
        tags = [o["customTag"] for o in b["orders"] if o.get("customTag")]
        assert len(tags) == len(set(tags)), "an order was sent twice"
        roots = {t.split("-")[0] for t in tags}
        assert len(roots) >= 2, roots  # p1 and p2 placed orders under their own prefixes
        # 5. the third session trades on until a position is open; SIGKILL; the position is closed
        #    at the broker while no engine runs (closeContract leaves both legs working)
        _wait(lambda: _broker(gt)["pos"] != 0, step, 90, "an entry after the second restart")
        p3.kill()
        gt.call(lambda: ex.close_position({"accountId": ex.account["id"], "contractId": ex.contract_id}, None))
        left = [o for o in _broker(gt)["orders"] if o["status"] in (1, 6, 8)]
        step(40)                                 # a leg left working may fill while the engine is dead
        # 6. restart: the orphan legs are cancelled (or the position a leg opened is closed)
        p4 = start()
        b = _broker(gt)
        assert b["pos"] == 0 and not [o for o in b["orders"] if o["status"] in (1, 6, 8)], left
        _assert_books_equal(state, b)
        p4.p.send_signal(signal.SIGTERM)
        p4.p.wait(30)
        _assert_books_equal(state, _broker(gt))
        assert "Traceback" not in p4.text()
        for proc in procs:          # the JSON-lines output stays parseable
            for ln in proc.lines:
                if ln.strip().startswith("{"):
                    json.loads(ln)
    finally:
        for p in procs:
            if p.p.poll() is None:
                p.p.kill()
                p.p.wait(10)
        gt.close()


def test_book_broker_trades_is_idempotent_across_a_reload(tmp_path) -> None:
    from engine.calendar import calendar_for
    from engine.clock import SimClock
    from engine.config import Settings
    from engine.instruments import spec
    from engine.risk import RiskManager, RiskStateStore

    now = 1_757_000_000_000_000_000
    s, clock = Settings(), SimClock(now)
    cal = calendar_for(now - 7 * 86_400 * 10**9, now + 30 * 86_400 * 10**9)
    rm = RiskManager(s, clock, cal, spec("MES"), RiskStateStore(tmp_path))
    assert rm.book_broker_trades() == {"booked": False, "ids": set(), "since_ns": None}
    assert rm.book_broker_trades([11, 12], -4.17, now, since_ns=now - 60)["booked"]
    assert not rm.book_broker_trades([12, 13], 99.0, now)["booked"]      # 12 already booked
    # a new process on the same state: the ids come back with the balance (one atomic write)
    rm2 = RiskManager(s, clock, cal, spec("MES"), RiskStateStore(tmp_path))
    info = rm2.book_broker_trades()
    assert info["ids"] == {11, 12} and info["since_ns"] == now - 60
    assert rm2.balance == 1000.0 - 4.17 and rm2.state_dict()["trades_today"] == 1
    assert not rm2.book_broker_trades([11, 12], -4.17, now)["booked"]
    assert rm2.book_broker_trades([14], None)["booked"] and rm2.balance == 1000.0 - 4.17   # recorded only
    with pytest.raises(ValueError):
        rm2.book_broker_trades([15, 16], float("nan"), now)
    assert 15 not in rm2.book_broker_trades()["ids"]
