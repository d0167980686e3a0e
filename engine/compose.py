"""The composition root: the one place that builds a run for each mode from settings.

Every mode runs the same kernel (:class:`engine.kernel.TradingKernel`) through the same per-bar
step (:func:`engine.step.step_bar`); a mode only chooses these four pieces:

| mode | clock | venue | market data | broker connection |
|---|---|---|---|---|
| ``backtest`` | ``SimClock`` | ``SimVenue`` | a bars file, batch inputs (``prepare_market``) | none |
| ``replay`` | ``SimClock`` | ``SimVenue`` | a bars file or the generated market, streaming (``MarketState``) | none |
| ``paper`` | exchange clock (a local gateway) or wall clock | the broker's | the broker's market feed, streaming | :data:`BrokerFactory` (ProjectX) |
| ``live`` | wall clock | the broker's | the broker's market feed, streaming | :data:`BrokerFactory` (ProjectX) |

- :func:`backtest` → :class:`engine.backtest.runner.BacktestResult` (the simulated pieces from
  :func:`engine.parts.sim_parts`, skip-ahead over the batch inputs);
- :func:`replay_bars` (the replay's market-data source) and :func:`replay` →
  :class:`engine.runtime.session.Session` (the same simulated pieces, streaming inputs);
- :func:`live_session` → :class:`engine.runtime.live.LiveSession` on a broker connection made by a
  :data:`BrokerFactory` (default :func:`projectx_connection`; the session is broker-neutral).

The CLI commands (``mes-console backtest``, ``run``) build through here; nothing in the engine
imports this module (it sits above the backtest and the sessions).

One risk path (issue 23): every mode's risk manager comes from :func:`risk_manager`
(:func:`engine.risk.build.build_risk`): the :class:`engine.risk.RiskManager` on the
settings whose ``[risk]`` limits the ``[account]`` profile derived (:mod:`engine.risk.profiles`),
with the account's :class:`engine.risk.account_rules.AccountRules` attached. The simulated modes
(backtest, walk-forward folds, optimize trials, replay) get it from :func:`engine.parts.sim_parts`,
which also hands the rules to the simulated venue (its MLL liquidation); paper and live from
:class:`engine.runtime.live.LiveSession` (rules state persisted beside the risk state). The
engine modules reach it through ``engine.risk.build`` because none may import this one.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

from engine.backtest.runner import BacktestResult, run_backtest, slice_dates
from engine.broker.base import BrokerConnection
from engine.config import Settings
from engine.runtime.session import Session, SessionConfig, make_signal_source

from engine.risk.build import build_risk as risk_manager  # noqa: E402 - the one risk path (docstring)

MODES = ("backtest", "replay", "paper", "live")
"""The modes, in the order of the table above."""

DEMO_START = date(2025, 11, 3)
DEMO_END = date(2025, 11, 7)
DEMO_PACE_NY = (9 * 3600 + 25 * 60, 16 * 3600 + 15 * 60)
"""The demo paces the bars closing in (09:25, 16:15] New York (the cash session, with its open
and the EOD flat in view) at the chosen speed; every other bar, each night included, runs at
full speed (seconds of the New York day, :attr:`engine.runtime.session.SessionConfig.pace_window_ny`)."""
"""The generated market's default span (a replay without a bars file: the bare ``mes-console``)."""


# ----------------------------------------------------------------------------- backtest
def backtest(bars, signals, settings: Settings, **options: Any) -> BacktestResult:
    """The backtest mode: :func:`engine.backtest.runner.run_backtest` (``bars``:
    :class:`engine.data.bars.Bars`; ``signals``: :class:`engine.strategy.base.StrategySignals` of
    the same length; ``options``: its keyword arguments, e.g. ``fill_model``, ``fast``,
    ``research``, ``progress``). Raises :class:`engine.backtest.runner.BacktestError`."""
    return run_backtest(bars, signals, settings, **options)


# ----------------------------------------------------------------------------- replay
def replay_bars(settings: Settings, *, data: Path | None, start: str | None, end: str | None,
                seed: int = 0):
    """The replay's market-data source → ``(bars, pace_from_ns, label)``: a bars file sliced to
    ``start``..``end`` (UTC dates, inclusive; pacing from the first bar, label ``"replay"``), or
    without ``data`` the embedded generated MES market (:func:`engine.market.generate_bars`,
    ``seed``; default span :data:`DEMO_START`..:data:`DEMO_END`, warm-up over the first overnight
    session at full speed, pacing from 09:25 New York of the first day, label ``"demo"``).
    Raises the loader's errors naming the file, :class:`BacktestError` for an empty range."""
    if data is not None:
        from engine.data import load_bars

        return slice_dates(load_bars(data), start, end), 0, "replay"
    from engine.calendar import RTH_OPEN_NY, ny_to_ns
    from engine.market import generate_bars

    d0 = date.fromisoformat(start) if start else DEMO_START
    d1 = date.fromisoformat(end) if end else (d0 + timedelta(days=4) if start else DEMO_END)
    bars = generate_bars(d0, d1, seed=seed, symbol=settings.instrument.symbol)
    return bars, ny_to_ns(d0, RTH_OPEN_NY) - 5 * 60 * 1_000_000_000, "demo"


def replay(settings: Settings, bars, *, model: str | Path | None = None, speed: float | None = None,
           report: Path | None = None, ring=None, pace_from_ns: int = 0, mode_label: str = "replay",
           risk=None, journal: Path | None = None, strategy=None) -> Session:
    """The replay mode over ``bars``: the signal source (``model`` checkpoint, or the rule-based
    baseline, :func:`engine.runtime.session.make_signal_source`) and the :class:`Session` on the
    simulated pieces; ``strategy``: a loaded strategy
    (:class:`engine.strategy.loader.LoadedStrategy`) instead of the model/baseline. ``speed``:
    simulated seconds per real second (None = as fast as possible); ``report``: the JSON
    session report's path; ``journal``: the trade journal it writes (None = none). The demo
    (``mode_label`` ``"demo"``) is paced only inside :data:`DEMO_PACE_NY`: every overnight
    session runs at full speed. Raises the checkpoint loader's errors and
    :class:`engine.runtime.session.SessionError` for empty bars or a journal that cannot be
    opened."""
    src = make_signal_source(settings, bars, model, strategy=strategy)
    cfg = SessionConfig(mode=mode_label, speed=speed, report_path=report, pace_from_ns=pace_from_ns,
                        pace_window_ny=DEMO_PACE_NY if mode_label == "demo" else None,
                        journal_path=journal)
    return Session(settings, bars, src, cfg, risk=risk, ring=ring)


# ----------------------------------------------------------------------------- paper / live
BrokerFactory = Callable[..., BrokerConnection]
"""``factory(settings, wall_clock, alerts, gateway_url) →`` :class:`engine.broker.base.BrokerConnection`
(unconnected; the session connects at start-up): the broker venue the kernel trades through, its
market feed, its reconcile and its account identity. ``gateway_url`` None = the configured API."""


def projectx_connection(settings: Settings, wall, alerts, gateway_url: str | None) -> BrokerConnection:
    """The ProjectX adapter, the first :data:`BrokerFactory`:
    :class:`engine.broker.projectx.connection.ProjectXConnection` on the gateway's venue (native
    OCO brackets, market depth) at ``gateway_url`` or ``[projectx] api_url``. Raises
    ``ValueError`` for missing credentials or bad settings."""
    from engine.broker.projectx.connection import ProjectXConnection

    return ProjectXConnection.from_settings(settings, wall, base_url=gateway_url, native_oco=True,
                                            on_alert=alerts.send, market_depth=True)


def live_session(settings: Settings, *, mode: str, model: Path | None, json_report: Path | None,
                 gateway_url: str | None, ring=None, state_dir: Path | None = None,
                 connect: BrokerFactory = projectx_connection, strategy=None, **cfg_overrides: Any):
    """The paper/live mode: a :class:`engine.runtime.live.LiveSession` (not started) on the
    broker connection ``connect`` makes. ``gateway_url`` (paper, a local or practice gateway) →
    the engine clock follows the exchange timestamps of the market data; otherwise the wall
    clock. ``strategy``: a loaded strategy instead of ``model``. ``cfg_overrides``:
    :class:`engine.runtime.live.LiveConfig` fields. The alert router is
    the session's (closed with it). Raises :class:`engine.runtime.session.SessionError` /
    ``ValueError`` naming the problem (the alert router closed)."""
    from engine.alerts import AlertRouter
    from engine.clock import LiveClock
    from engine.runtime.live import LiveConfig, LiveSession

    wall = LiveClock()
    alerts = AlertRouter(settings.alerts, wall)
    try:
        broker = connect(settings, wall, alerts, gateway_url)
        cfg = LiveConfig(mode=mode, clock="exchange" if gateway_url else "wall",
                         report_path=json_report, state_dir=state_dir, **cfg_overrides)
        session = LiveSession(settings, broker, cfg, model_path=model, wall_clock=wall, alerts=alerts,
                              ring=ring, strategy=strategy)
    except BaseException:
        alerts.close(1.0)
        raise
    session._own_alerts = True
    return session


__all__ = ["MODES", "risk_manager", "backtest", "replay_bars", "replay", "live_session", "projectx_connection", "BrokerFactory",
           "DEMO_START", "DEMO_END"]
