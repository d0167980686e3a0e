"""Persisted risk state (atomic, crash-safe, loud on corruption), the account lock (second
instance refused, naming the pid) and the JSONL audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date, time

import pytest

from engine.calendar import calendar_for, ny_to_ns
from engine.clock import SimClock
from engine.config import Settings
from engine.instruments import spec
from engine.risk import (AccountLock, AccountLockError, RiskManager, RiskStateError, RiskStateStore,
                         TradingState)
from engine.risk import store as store_mod

MIN = 60 * 1_000_000_000
T0 = ny_to_ns(date(2025, 3, 12), time(10))
CAL = calendar_for(T0)


def make(path, start=T0):
    clock = SimClock(start)
    return RiskManager(Settings(), clock, CAL, spec("MES"), RiskStateStore(path)), clock


def test_round_trip_and_halt_survives_restart(tmp_path):
    rm, clock = make(tmp_path)
    for k in range(3):
        rm.on_trade_closed(-4.0, T0 + k * MIN)
    rm.on_mark(990.0, T0 + 3 * MIN)
    clock.advance_to(T0 + 4 * MIN)
    rm.halt("operator kill switch", "alice")
    before = rm.state_dict()
    rm2, clock2 = make(tmp_path, T0 + 5 * MIN)
    assert rm2.state_dict() == before
    snap = rm2.snapshot()
    assert snap.state is TradingState.HALTED and "operator kill switch" in snap.reason
    assert snap.balance == 988.0 and snap.consecutive_losses == 3 and snap.pause_until_ns == T0 + 17 * MIN
    assert "HALTED" in rm2.evaluate_entry(1, 0.9, 5000.0, 1.3, None, None, T0 + 30 * MIN, True).reason
    rm2.reset_halt("alice", "RESET")
    rm3, _ = make(tmp_path, T0 + 6 * MIN)
    assert rm3.snapshot().state is not TradingState.HALTED
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [(r["action"], r["operator"], r["ts_ns"]) for r in recs] == [
        ("halt", "alice", T0 + 4 * MIN), ("reset_halt", "alice", T0 + 5 * MIN)]
    assert recs[0]["ts_utc"] == "2025-03-12T14:04:00+00:00"


def test_corrupt_state_is_a_loud_error(tmp_path):
    rm, _ = make(tmp_path)
    rm.on_trade_closed(-4.0, T0)
    p = tmp_path / "risk_state.json"
    p.write_text(p.read_text()[:-20])
    with pytest.raises(RiskStateError, match="risk_state.json: risk state is unreadable"):
        make(tmp_path)
    p.write_text(json.dumps({"version": 1, "state": {"balance": 5.0}}))
    with pytest.raises(RiskStateError, match="lacks keys"):
        make(tmp_path)
    p.write_text("[]")
    with pytest.raises(RiskStateError, match="unexpected risk state layout"):
        make(tmp_path)


def test_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    rm, _ = make(tmp_path)
    rm.on_trade_closed(-4.0, T0)
    good = (tmp_path / "risk_state.json").read_bytes()

    real_write = os.write

    def half_write(fd, data):  # the process "dies" after writing half the bytes
        real_write(fd, bytes(data[: len(data) // 2]))
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(store_mod.os, "write", half_write)
    with pytest.raises(KeyboardInterrupt):
        rm.on_trade_closed(-4.0, T0 + MIN)
    monkeypatch.setattr(store_mod.os, "write", real_write)
    assert (tmp_path / "risk_state.json").read_bytes() == good

    def no_replace(src, dst):
        raise OSError("crash before rename")

    monkeypatch.setattr(store_mod.os, "replace", no_replace)
    with pytest.raises(OSError):
        rm.on_trade_closed(-4.0, T0 + 2 * MIN)
    monkeypatch.undo()
    assert (tmp_path / "risk_state.json").read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["risk_state.json"]   # no temp file left
    rm2, _ = make(tmp_path)
    assert rm2.balance == 996.0


HOLDER = textwrap.dedent("""
    import sys, time
    from engine.risk import AccountLock
    lock = AccountLock(sys.argv[1], "PRAC-V2-12345").acquire()
    print("locked", flush=True)
    sys.stdin.readline()
""")


def test_lock_refuses_a_second_instance(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=root,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(AccountLockError, match=rf"pid {proc.pid}\b.*PRAC-V2-12345.lock"):
            AccountLock(tmp_path, "PRAC-V2-12345").acquire()
        with AccountLock(tmp_path, "OTHER-ACCOUNT") as other:   # another account is independent
            assert other.held
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    with AccountLock(tmp_path, "PRAC-V2-12345") as lock:        # released when the holder exits
        assert lock.held
        assert (tmp_path / "PRAC-V2-12345.lock").read_text().strip() == str(os.getpid())
    assert not lock.held


def test_audit_log_appends_whole_lines(tmp_path):
    log = store_mod.AuditLog(tmp_path / "a.jsonl")
    for k in range(50):
        log.append({"k": k, "action": "pause", "reason": "x" * k})
    recs = log.read()
    assert [r["k"] for r in recs] == list(range(50))
    with open(tmp_path / "a.jsonl", "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(RiskStateError, match=r"a.jsonl:51"):
        log.read()
