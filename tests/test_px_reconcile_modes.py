"""``[reconcile] mode`` strict / warn / auto-sync honoured by the live venue and session (issue 12
item 5, R-EXE-4): the broker always wins; an unexplained position mismatch is only logged
(auto-sync), alerted as a warning (warn), or alerted as critical and halts trading (strict)."""

from __future__ import annotations

import dataclasses

import pytest

from engine.broker.base import ReconcileReport
from engine.calendar import calendar_for
from engine.clock import SimClock
from engine.config import ReconcileConfig, Secrets, Settings
from engine.instruments import spec as instrument_spec
from engine.risk import RiskManager
from engine.runtime.live import LiveConfig, LiveSession
from engine.venue.base import PositionUpdate
from tests.test_px_venue_support import GatewayThread, make_venue

NOW = 1_757_000_000_000_000_000     # 2025-09-04 15:33 UTC


def _settings(mode: str) -> Settings:
    s = Settings()
    return dataclasses.replace(s, reconcile=ReconcileConfig(mode=mode, interval_s=30.0),
                               secrets=Secrets(projectx_username="u", projectx_api_key="k" * 20))


@pytest.fixture
def gt(topstepx_path):
    g = GatewayThread(topstepx_path)
    g.step(4)
    yield g
    g.close()


@pytest.mark.parametrize("mode, priority", [("strict", "critical"), ("warn", "warning"), ("auto-sync", None)])
def test_venue_unexplained_position_mismatch_by_mode(gt, mode, priority):
    alerts: list = []
    v = make_venue(gt, settings=_settings(mode), on_alert=lambda p, k, m: alerts.append((p, k, m)))
    v.start(timeout_s=10)
    try:
        # a position appears at the broker with no fill on the wire (manual trade elsewhere)
        def forge():
            ex = gt.gw.exchange
            ex.position[ex.contract_id] = {"size": 2, "avg": 6000.0, "id": 99, "created": ex.now_iso()}
        gt.call(forge)
        rep = v.reconcile("periodic")
        assert rep.unexplained and not rep.ok and rep.broker_qty == 2 and v.pos_qty == 2   # broker wins
        assert any(isinstance(e, PositionUpdate) and e.qty == 2 for e in v.poll_events())
        got = [a for a in alerts if a[1] == "position_mismatch"]
        if priority is None:
            assert got == []
        else:
            assert [a[0] for a in got] == [priority]
    finally:
        v.stop()


def test_bad_mode_refused():
    s = dataclasses.replace(_settings("strict"), reconcile=ReconcileConfig(mode="lenient", interval_s=30.0))
    from engine.broker.projectx.venue import ProjectXVenue

    with pytest.raises(ValueError, match="strict, warn or auto-sync"):
        ProjectXVenue(s, SimClock(NOW), base_url="http://127.0.0.1:9")


@pytest.mark.parametrize("mode, halted", [("strict", True), ("warn", False), ("auto-sync", False)])
def test_session_halts_only_in_strict_mode(tmp_path, mode, halted):
    from engine.broker.projectx.connection import ProjectXConnection
    from engine.broker.projectx.venue import ProjectXVenue

    s = _settings(mode)
    wall = SimClock(NOW)
    sess = LiveSession(s, ProjectXConnection(ProjectXVenue(s, wall, base_url="http://127.0.0.1:9")), LiveConfig(clock="wall"),
                       wall_clock=wall)
    sess.risk = RiskManager(s, wall, calendar_for(NOW - 7 * 86_400 * 10**9, NOW + 30 * 86_400 * 10**9),
                            instrument_spec("MES"))
    rep = ReconcileReport(ts_ns=NOW, reason="periodic", ok=False, local_qty=0, broker_qty=2,
                          mismatches=["position: venue 0 @ 0.00, broker 2 @ 6000.00 (broker wins)"],
                          unexplained=["position: venue 0 @ 0.00, broker 2 @ 6000.00 (broker wins)"])
    sess._note_reconcile(rep)
    st = sess.risk.state_dict()
    assert (st["halt"] is not None) is halted
    if halted:
        assert "reconcile mismatch (strict mode)" in st["halt"]["reason"]
        assert not sess.risk.allow_order(False, NOW)[0]
    # an explained correction (missed fills found by REST) never halts
    s2 = LiveSession(s, ProjectXConnection(ProjectXVenue(s, wall, base_url="http://127.0.0.1:9")), LiveConfig(clock="wall"),
                     wall_clock=wall)
    s2.risk = RiskManager(s, wall, sess.risk.calendar, instrument_spec("MES"))
    s2._note_reconcile(dataclasses.replace(rep, unexplained=[]))
    assert s2.risk.state_dict()["halt"] is None
