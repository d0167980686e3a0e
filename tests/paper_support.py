"""Helpers shared by the paper-session tests (remote control, drift, user strategies, the paper CLI)."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

from engine.config import Secrets, Settings


def wait_until(pred, timeout: float = 20.0, why=lambda: "") -> None:
    """Poll ``pred`` until true (the engine thread's progress; no fixed sleeps), else fail."""
    end = time.perf_counter() + timeout
    while not pred():
        if time.perf_counter() > end:
            raise AssertionError(f"timed out: {why()}")
        time.sleep(0.0005)


def paper_settings(state: Path, user: str, key: str, **sections) -> Settings:
    """Defaults with the money limits out of the way (valid: below a $100,000 account), 40-tick
    stops, the state under ``state``, the fake's credentials; ``sections``: more replacements."""
    s = Settings()
    rep = {"risk": dataclasses.replace(s.risk, daily_loss_limit=40_000.0, daily_drawdown_limit=40_000.0,
                                       kill_switch_loss=45_000.0, account_drawdown_limit=45_000.0,
                                       consecutive_loss_pauses=[[1000, 1]]),
           "stops": dataclasses.replace(s.stops, max_stop_ticks=40),
           "account": dataclasses.replace(s.account, starting_capital=100_000.0),
           "paths": dataclasses.replace(s.paths, state_dir=str(state))}
    for name, kw in sections.items():
        rep[name] = dataclasses.replace(rep.get(name, getattr(s, name)), **kw)
    return dataclasses.replace(s, **rep, secrets=Secrets(projectx_username=user, projectx_api_key=key))


def paper_session(gt, settings, state: Path, user: str, key: str, n_bars: int, *, ring=None, **cfg):
    """A paper :class:`LiveSession` on the exchange clock over the fake gateway ``gt`` (a
    ``tests.px_fixtures.ThreadedGateway``), journal and report under ``state``; ``cfg``: more
    :class:`LiveConfig` fields. Returns ``(session, venue)``; not started."""
    from engine.broker.projectx.connection import ProjectXConnection
    from engine.broker.projectx.rest import ProjectXClient
    from engine.broker.projectx.venue import ProjectXVenue
    from engine.clock import LiveClock
    from engine.runtime.live import LiveConfig, LiveSession

    wall = LiveClock()
    client = ProjectXClient(gt.url, user, key, wall, request_timeout_s=5.0)
    venue = ProjectXVenue(settings, wall, base_url=gt.url, client=client, native_oco=True,
                          hub_kwargs={"backoff_initial_s": 0.05, "backoff_max_s": 0.2})
    opts = dict(mode="paper", clock="exchange", state_dir=state, report_path=state / "report.json",
                reconcile_interval_s=1800.0, min_reconcile_wall_s=0.2, normal_window_bars=n_bars - 1,
                journal_path=state / "journal.sqlite3")
    opts.update(cfg)
    return LiveSession(settings, ProjectXConnection(venue), LiveConfig(**opts), ring=ring), venue


def subscribed(gt) -> bool:
    """The session has subscribed to the fake's market and user hubs."""
    return (any(c.hub == "market" and len(c.subs) >= 2 for c in gt.gw.connections)
            and any(c.hub == "user" and len(c.subs) >= 4 for c in gt.gw.connections))


def feed_when_subscribed(gt, stop: threading.Event, period_s: float = 0.025) -> threading.Thread:
    """Start a thread that steps the fake gateway ``gt`` one bar every ``period_s`` once a
    session has subscribed to its market hub (a subprocess's start-up time varies), until the
    bars run out or ``stop`` is set. The pacing is the bar rate a CLI session over real sockets
    can follow, not a wait for a result."""
    ex = gt.gw.exchange

    def feed() -> None:
        while not stop.is_set() and not any(c.hub == "market" and len(c.subs) >= 2 for c in gt.gw.connections):
            time.sleep(0.02)
        while not stop.is_set() and gt.call(ex.step):
            time.sleep(period_s)

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    return th
