"""The composition root (engine.compose): each mode's market-data source and broker connection
are chosen there and nowhere else. The backtest and the replay built by it trade alike on real
bars (tests/test_runtime_session.py::test_replay_equals_backtest_trade_for_trade)."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from engine import compose
from engine.backtest.runner import slice_dates
from engine.calendar import RTH_OPEN_NY, ny_to_ns
from engine.config import Secrets, Settings
from engine.data import load_bars
from engine.runtime.session import SessionError


def test_replay_source_is_the_bars_file_or_the_generated_market(es_1m_path) -> None:
    s = Settings()
    bars, pace, label = compose.replay_bars(s, data=es_1m_path, start="2025-10-06", end="2025-10-07")
    want = slice_dates(load_bars(es_1m_path), "2025-10-06", "2025-10-07")
    assert (label, pace) == ("replay", 0) and np.array_equal(bars.ts, want.ts) and np.array_equal(bars.close, want.close)
    gen, pace, label = compose.replay_bars(s, data=None, start="2025-03-03", end="2025-03-04", seed=3)
    assert label == "demo" and len(gen) > 1000
    assert pace == ny_to_ns(date(2025, 3, 3), RTH_OPEN_NY) - 300 * 1_000_000_000   # 09:25 New York
    again, _, _ = compose.replay_bars(s, data=None, start="2025-03-03", end="2025-03-04", seed=3)
    assert np.array_equal(again.close, gen.close)   # the seed decides the generated market


def _live_settings(tmp_path) -> Settings:
    s = Settings()
    return dataclasses.replace(s, paths=dataclasses.replace(s.paths, state_dir=str(tmp_path)),
                               secrets=Secrets(projectx_username="u", projectx_api_key="k"))


class _UnconnectedBroker:
    """Enough of a :class:`engine.broker.base.BrokerConnection` for building a session: nothing
    may be called on it before start-up."""

    stale_feed_s = 10.0
    venue = None

    def connect(self, timeout_s: float):
        raise AssertionError("connected before start-up")

    def market_events(self, timeout_s: float):
        raise AssertionError("read before start-up")


def test_live_session_takes_its_broker_from_the_factory(tmp_path) -> None:
    s = _live_settings(tmp_path)
    seen = []

    def factory(settings, wall, alerts, gateway_url):
        seen.append((settings, gateway_url))
        return _UnconnectedBroker()   # unconnected: nothing is called on it before start-up

    sess = compose.live_session(s, mode="paper", model=None, json_report=None, gateway_url="http://127.0.0.1:9",
                                state_dir=tmp_path, connect=factory)
    try:
        assert seen == [(s, "http://127.0.0.1:9")]
        assert sess.cfg.mode == "paper" and sess.cfg.clock == "exchange"   # a local gateway: exchange time
    finally:
        sess.alerts.close(1.0)
    wall = compose.live_session(s, mode="live", model=None, json_report=None, gateway_url=None,
                                state_dir=tmp_path, connect=factory)
    try:
        assert wall.cfg.clock == "wall" and seen[-1] == (s, None)
    finally:
        wall.alerts.close(1.0)


def test_live_session_refuses_a_bad_mode_and_names_it(tmp_path) -> None:
    with pytest.raises(SessionError, match="replay"):
        compose.live_session(_live_settings(tmp_path), mode="replay", model=None, json_report=None,
                             gateway_url=None, connect=lambda *a: _UnconnectedBroker())
