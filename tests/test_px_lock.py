"""The per-account lock is taken before any network call (issue 15 item 4, R-RISK-6): a second
instance on the same account is refused without logging in, opening a hub or reconciling."""

from __future__ import annotations

import dataclasses

import pytest

from engine.broker.fake import load_bars_frame
from engine.broker.projectx.venue import ProjectXVenue
from engine.broker.projectx.connection import ProjectXConnection
from engine.clock import LiveClock
from engine.config import Secrets, Settings
from engine.risk import AccountLock
from engine.runtime.live import LiveConfig, LiveSession, api_host
from engine.runtime.session import SessionError
from tests.px_fixtures import KEY, USER, ThreadedGateway


def test_second_instance_refused_before_any_network_call(topstepx_path, tmp_path) -> None:
    gt = ThreadedGateway(load_bars_frame(topstepx_path, start="2025-09-04T13:20:00+00:00", max_rows=5))
    try:
        s = Settings()
        s = dataclasses.replace(s, paths=dataclasses.replace(s.paths, state_dir=str(tmp_path)),
                                secrets=Secrets(projectx_username=USER, projectx_api_key=KEY))
        held = AccountLock(tmp_path, f"{api_host(gt.url)}-default").acquire()   # the first instance
        wall = LiveClock()
        venue = ProjectXVenue(s, wall, base_url=gt.url, native_oco=True)
        sess = LiveSession(s, ProjectXConnection(venue), LiveConfig(mode="paper", state_dir=tmp_path), wall_clock=wall)
        with pytest.raises(SessionError, match="already being traded"):
            sess.startup()
        assert gt.gw.calls == {} and gt.gw.connects == {"user": 0, "market": 0}
        sess.shutdown()
        held.release()
    finally:
        gt.close()


def test_second_instance_under_another_account_name_refused_after_login(topstepx_path, tmp_path) -> None:
    """One config names the account, the other leaves it empty: the broker-name lock excludes them."""
    gt = ThreadedGateway(load_bars_frame(topstepx_path, start="2025-09-04T13:20:00+00:00", max_rows=5))
    try:
        s = Settings()
        s = dataclasses.replace(s, paths=dataclasses.replace(s.paths, state_dir=str(tmp_path)),
                                secrets=Secrets(projectx_username=USER, projectx_api_key=KEY))
        held = AccountLock(tmp_path, f"{api_host(gt.url)}-PRAC-V2-FAKE-1").acquire()
        wall = LiveClock()
        venue = ProjectXVenue(s, wall, base_url=gt.url, native_oco=True)
        sess = LiveSession(s, ProjectXConnection(venue), LiveConfig(mode="paper", state_dir=tmp_path), wall_clock=wall)
        with pytest.raises(SessionError, match="already being traded"):
            sess.startup()
        sess.shutdown()
        held.release()
        assert not sess.lock.held       # the configured-name lock was released again
    finally:
        gt.close()
