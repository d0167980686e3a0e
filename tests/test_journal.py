"""The trade journal (issue 14 item 6): SQLite, schema versioned, written as it happens, safe on
SIGKILL; ``mes-console journal`` prints trades and P&L by day and by session."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.journal import SCHEMA_VERSION, Journal, JournalError

ROOT = Path(__file__).resolve().parents[1]


def _trade(exit_ts: int, net: float, direction: int = 1) -> SimpleNamespace:
    return SimpleNamespace(entry_ts=exit_ts - 60_000_000_000, exit_ts=exit_ts, direction=direction, contracts=1,
                           entry_price=6000.0, exit_price=6001.0, gross_pnl=net + 1.0, commission=0.74,
                           slippage=0.26, net_pnl=net, exit_reason="target", confidence=0.7)


# 2025-10-07 14:00 UTC = 10:00 New York; 2025-10-07 23:00 UTC = 19:00 New York (next CME day)
T1 = 1_759_845_600_000_000_000
T2 = T1 + 9 * 3_600_000_000_000


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mes_console.cli", "journal", *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="400", **(env or {})),
                          capture_output=True, text=True, timeout=60)


def test_journal_rows_days_sessions_and_dedup(tmp_path) -> None:
    p = tmp_path / "j" / "journal.sqlite3"
    j = Journal(p)
    sid = j.open_session(mode="paper", account="A1", contract="CON.F.US.MES.Z25", symbol="MES", clock="exchange",
                         started_ns=T1, started_wall_ns=T1, start_balance=50_000.0)
    assert j.fill(ts_ns=T1, side=1, qty=1, price=6000.0, fees=0.37, broker_id=11)
    assert not j.fill(ts_ns=T1, side=1, qty=1, price=6000.0, fees=0.37, broker_id=11)   # replayed: once
    assert j.fill(ts_ns=T1, side=-1, qty=1, price=6001.0, fees=0.37, broker_id=12, pnl=5.0)
    j.trade(_trade(T1, 3.0))
    j.trade(_trade(T2, -2.5, -1))
    j.event(T1, "state", "HALTED: operator kill switch", "error")
    # a second process reads while the writer still holds its connection (WAL)
    r = Journal(p, readonly=True)
    assert [f["broker_id"] for f in r.fills()] == [11, 12]
    days = r.by_day()
    assert [(d["day"], d["trades"], round(d["net_pnl"], 2)) for d in days] == [("2025-10-07", 1, 3.0),
                                                                                 ("2025-10-08", 1, -2.5)]
    s = r.by_session()
    assert s[0]["id"] == sid and s[0]["trades"] == 2 and s[0]["fills"] == 2 and s[0]["ended_ns"] is None
    assert abs(s[0]["net_pnl"] - 0.5) < 1e-9
    assert [e["kind"] for e in r.events()] == ["state"]
    assert len(r.trades("2025-10-08", "2025-10-08")) == 1
    j.close_session(ended_ns=T2, end_balance=50_000.5, net_pnl=0.5, trades=2, exit_reason="operator quit",
                    report={"trades_count": 2})
    assert r.by_session()[0]["exit_reason"] == "operator quit"
    r.close()
    j.close()
    assert sqlite3.connect(p).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sqlite3.connect(p).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_journal_refuses_newer_schema_foreign_file_and_missing(tmp_path) -> None:
    newer = tmp_path / "newer.sqlite3"
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(JournalError, match=rf"newer.sqlite3: schema version {SCHEMA_VERSION + 1} is newer"):
        Journal(newer)
    foreign = tmp_path / "other.sqlite3"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE prices (x)")
    c.commit()
    c.close()
    with pytest.raises(JournalError, match="not a mes-console journal"):
        Journal(foreign)
    with pytest.raises(JournalError, match="no such file"):
        Journal(tmp_path / "none.sqlite3", readonly=True)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(JournalError, match="garbage.sqlite3"):
        Journal(garbage)


def test_cli_journal_json_and_table_and_errors(tmp_path) -> None:
    p = tmp_path / "journal.sqlite3"
    j = Journal(p)
    j.open_session(mode="paper", account="A1", contract="C", symbol="MES", clock="exchange", started_ns=T1,
                   started_wall_ns=T1, start_balance=1000.0)
    j.fill(ts_ns=T1, side=1, qty=2, price=6000.0, fees=0.74, broker_id=7)
    j.trade(_trade(T1, 3.0))
    j.close()
    r = _cli("--path", str(p), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["days"][0]["day"] == "2025-10-07" and doc["days"][0]["net_pnl"] == 3.0
    assert doc["fills"][0]["broker_id"] == 7 and doc["sessions"][0]["fills"] == 1
    assert doc["trades"][0]["exit_utc"] == "2025-10-07T14:00:00+00:00"
    r = _cli("--path", str(p), "--fills", "--events")
    assert r.returncode == 0 and "P&L by trading day" in r.stdout and "+3.00" in r.stdout
    # a journal no session has written yet is an empty journal (issue 21 item 6)
    r = _cli("--path", str(tmp_path / "missing.sqlite3"), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["sessions"] == [] and doc["trades"] == [] and doc["days"] == [] and doc["fills"] == []
    r = _cli("--path", str(tmp_path / "missing.sqlite3"))
    assert r.returncode == 0 and "empty (no session has written it yet)" in r.stdout
    r = _cli("--path", str(p), "--from", "10/07/2025")
    assert r.returncode == 3 and "--from" in r.stderr
    # default path: <[paths] data_dir>/journal.sqlite3
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')
    r = _cli("--config", str(cfg), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["path"] == str(p)


def test_sigkill_paper_session_journal_holds_every_fill(topstepx_path, tmp_path) -> None:
    """A real paper session process (signalrcore client) against the fake gateway: after some
    round trips it is SIGKILLed; the journal holds every fill the fake reported, and
    ``mes-console journal --json`` prints them after the kill."""
    from engine.broker.fake import load_bars_frame
    from tests.px_fixtures import ThreadedGateway
    from tests.test_px_crash import CAPITAL, KEY, START, USER, Proc, _broker, _wait, paper_config

    frame = load_bars_frame(topstepx_path, start=START, max_rows=420)
    gt = ThreadedGateway(frame, username=USER, api_key=KEY, balance=CAPITAL)
    ex = gt.gw.exchange
    cfg = paper_config(tmp_path / "c.toml", f"""[paths]
state_dir = "{tmp_path / 'state'}"
data_dir = "{tmp_path / 'data'}"
log_dir = "{tmp_path / 'log'}"
""")
    jpath = tmp_path / "data" / "journal.sqlite3"

    def step(n: int = 1) -> None:
        for _ in range(n):
            gt.call(ex.step)
            time.sleep(0.004)

    def journal_ids() -> set:
        if not jpath.exists():
            return set()
        try:
            r = Journal(jpath, readonly=True)
        except JournalError:
            return set()
        try:
            return {f["broker_id"] for f in r.fills()}
        finally:
            r.close()

    p = Proc(gt.url, cfg)
    try:
        _wait(lambda: p.started() or p.p.poll() is not None, step, 90, "session start")
        assert p.p.poll() is None, p.text()[-3000:]
        _wait(lambda: sum(1 for t in _broker(gt)["trades"] if t["profitAndLoss"] is not None) >= 2
              or p.p.poll() is not None, step, 120, "two round trips at the fake")
        assert p.p.poll() is None, p.text()[-3000:]
        step(3)
        fake = {t["id"]: t for t in _broker(gt)["trades"]}
        fake_ids = set(fake)
        assert len(fake_ids) >= 4
        # written as they happen: no shutdown needed for the rows to be there
        _wait(lambda: fake_ids <= journal_ids(), lambda: time.sleep(0.05), 10, "fills in the journal")
        p.kill()
    finally:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait(10)
        gt.close()
    r = _cli("--config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    fills = {f["broker_id"]: f for f in doc["fills"]}
    assert fake_ids <= set(fills)
    s = doc["sessions"][-1]
    assert s["mode"] == "paper" and s["ended_ns"] is None          # killed: no summary, rows kept
    assert s["fills"] >= len(fake_ids) and s["trades"] >= 1
    # the rotating JSON log file in [paths] log_dir holds the session's lines (start event included)
    lines = [json.loads(x) for x in (tmp_path / "log" / "mes-console.jsonl").read_text().splitlines()]
    assert any(x.get("event") == "start" for x in lines) and all("ts_ns" in x for x in lines)
    for i in fake_ids:   # the journal's fill is the fake's: size, price, side, realised P&L
        f, t = fills[i], fake[i]
        assert (f["qty"], f["price"], f["side"]) == (t["size"], t["price"], 1 if t["side"] == 0 else -1)
        assert f["pnl"] == t["profitAndLoss"]


def test_a_failed_journal_write_pauses_entries_and_alerts(tmp_path) -> None:
    """Loud and safe: the journal is dropped, new entries paused (protection kept), alert sent."""
    from engine.runtime.session import SessionBase

    class Risk:
        paused = None

        def pause(self, reason, operator):
            self.paused = (reason, operator)

    class Alerts:
        sent: list = []

        def send(self, *a):
            self.sent.append(a)

    j = Journal(tmp_path / "j.sqlite3")
    j.open_session(mode="paper", account="A", contract="C", symbol="MES", clock="exchange", started_ns=T1,
                   started_wall_ns=T1, start_balance=1.0)
    j.close()                                  # every later write fails
    s = SessionBase()
    s._init_common()
    s.journal, s.risk, s.alerts = j, Risk(), Alerts()
    s._journal("fill", ts_ns=T1, side=1, qty=1, price=1.0, fees=0.0)
    assert s.journal is None and s.risk.paused[0].startswith("journal write failed")
    assert s.alerts.sent and s.alerts.sent[0][:2] == ("critical", "journal")


def test_console_shows_todays_trades_from_the_journal(tmp_path) -> None:
    """The broker pane's journal line is read back from the journal: a trade written by an
    earlier session of the same trading day counts, and each new round trip updates it."""
    from engine.calendar import day_date
    from engine.runtime.snapshot import money
    from mes_console.widgets.render import render_broker
    from tests.ui_support import make_session, open_position

    sess = make_session()
    day = day_date(int(sess.cal.label_one(sess.clock.now_ns())[0])).isoformat()
    j = Journal(tmp_path / "j.sqlite3", day_of=lambda ts: day_date(int(sess.cal.label_one(int(ts))[0])).isoformat())
    j.open_session(mode="paper", account="A", contract="C", symbol="MES", clock="exchange",
                   started_ns=sess.clock.now_ns(), started_wall_ns=T1, start_balance=1000.0)
    earlier = sess.kernel.trades[-1]   # a round trip "of an earlier session" today
    assert day_date(int(sess.cal.label_one(earlier.exit_ts)[0])).isoformat() == day
    j.trade(earlier)
    sess.journal = j
    sess._refresh_journal_today()
    sess._publish()
    assert sess.snapshot().broker.journal == f"journal {day}: 1 trades, net {money(earlier.net_pnl, sign=True)}"
    n = len(sess.kernel.trades)
    open_position(sess)
    while len(sess.kernel.trades) == n:
        assert sess.step(), "data ended before the position closed"
    sess._publish()
    view = sess.snapshot().broker
    today = day_date(int(sess.cal.label_one(sess.clock.now_ns())[0])).isoformat()
    rows = j.by_day(today, today)
    assert sum(r["trades"] for r in j.by_day()) == 1 + len(sess.kernel.trades) - n
    assert view.journal == f"journal {today}: {rows[0]['trades']} trades, net {money(rows[0]['net_pnl'], sign=True)}"
    assert view.journal in str(render_broker(view, sess.clock.now_ns()))


def test_version_1_journal_gains_broker_ids_and_round_trips_are_unique_by_them(tmp_path) -> None:
    """Issue 22: a round trip is written once across a crash, by its broker trade ids."""
    from types import SimpleNamespace

    p = tmp_path / "v1.sqlite3"
    c = sqlite3.connect(p)
    c.executescript(_V1_TRADES)
    c.execute("PRAGMA user_version=1")
    c.commit()
    c.close()
    j = Journal(p)
    assert sqlite3.connect(p).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    j.open_session(mode="paper", account="A1", contract="C", symbol="MES", clock="exchange", started_ns=T1,
                   started_wall_ns=T1, start_balance=50_000.0)
    t = SimpleNamespace(entry_ts=T1, exit_ts=T2, direction=1, contracts=1, entry_price=6500.0, exit_price=6501.0,
                        gross_pnl=5.0, commission=0.84, slippage=0.0, net_pnl=4.16, exit_reason="target",
                        confidence=float("nan"))
    assert j.trade(t, broker_ids=[5, 6]) and not j.trade(t, broker_ids=[5, 6])
    assert j.has_trade([5, 6]) and not j.has_trade([5])
    assert j.trade(t) and j.trade(t)          # no ids (replay): every row is written
    assert [r["broker_ids"] for r in j.trades()] == ["5,6", None, None]
    j.close()


_V1_TRADES = """
CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, mode TEXT NOT NULL, account TEXT NOT NULL,
    contract TEXT NOT NULL, symbol TEXT NOT NULL, clock TEXT NOT NULL, started_ns INTEGER NOT NULL,
    started_wall_ns INTEGER NOT NULL, ended_ns INTEGER, start_balance REAL, end_balance REAL, net_pnl REAL,
    trades INTEGER, exit_reason TEXT, report TEXT);
CREATE TABLE fills (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id INTEGER NOT NULL, broker_id INTEGER UNIQUE,
    order_id TEXT, tag TEXT, kind TEXT, side INTEGER NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL,
    fees REAL NOT NULL, pnl REAL, ts_ns INTEGER NOT NULL, broker_ts_ns INTEGER, day TEXT NOT NULL);
CREATE TABLE trades (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id INTEGER NOT NULL, entry_ns INTEGER NOT NULL,
    exit_ns INTEGER NOT NULL, direction INTEGER NOT NULL, contracts INTEGER NOT NULL, entry_price REAL NOT NULL,
    exit_price REAL NOT NULL, gross_pnl REAL NOT NULL, commission REAL NOT NULL, slippage REAL NOT NULL,
    net_pnl REAL NOT NULL, exit_reason TEXT NOT NULL, confidence REAL, day TEXT NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id INTEGER NOT NULL, ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL, day TEXT NOT NULL);
"""


def test_demo_session_writes_the_sim_journal_and_the_report(tmp_path) -> None:
    """The README's tour: the demo (here headless, one generated day at full speed) writes its
    fills, round trips and summary to journal-sim.sqlite3 and its report to the reports
    directory; ``journal --sim`` shows them, the broker journal stays empty (exit 0)."""
    from typer.testing import CliRunner

    from mes_console.cli import app

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\nreports_dir = "{tmp_path}/reports"\n')
    r = CliRunner().invoke(app, ["--config", str(cfg), "run", "--no-tui", "--start", "2025-11-03",
                                 "--end", "2025-11-03", "--speed", "max"])
    assert r.exit_code == 0, r.output
    reports = list((tmp_path / "reports").glob("session-demo-*.json"))
    assert len(reports) == 1
    rep = json.loads(reports[0].read_text())
    r = CliRunner().invoke(app, ["journal", "--config", str(cfg), "--sim", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["path"] == str(tmp_path / "journal-sim.sqlite3")
    (s,) = doc["sessions"]
    assert s["mode"] == "demo" and s["exit_reason"] == "end of data" and s["ended_ns"] is not None
    assert rep["trades_count"] > 0 and s["trades"] == rep["trades_count"] == len(doc["trades"])
    assert len(doc["fills"]) == 2 * rep["trades_count"]   # one entry and one exit fill per round trip
    assert abs(sum(t["net_pnl"] for t in doc["trades"]) - rep["net_pnl"]) < 1e-6
    assert abs(sum(f["fees"] for f in doc["fills"]) - rep["commission"]) < 1e-6
    for t in doc["trades"]:   # each round trip's fills carry its prices
        ins = [f for f in doc["fills"] if f["ts_ns"] == t["entry_ns"] and f["tag"] == "entry"]
        assert ins and abs(ins[0]["price"] - t["entry_price"]) < 1e-9
    r = CliRunner().invoke(app, ["journal", "--config", str(cfg), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["sessions"] == []
