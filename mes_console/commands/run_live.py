"""``mes-console run --mode paper|live``: a trading session through the ProjectX Gateway, in the
console or headless (R-LIVE-1 … 6).

- ``--mode paper --gateway-url http://127.0.0.1:PORT``: a local gateway (``mes-console
  fake-gateway``) replaying history. The engine clock follows the exchange timestamps of the
  market data (``clock="exchange"``, see :mod:`engine.runtime.live`); the session ends with code 0
  when the replayed feed stops (2 × ``[projectx] stale_feed_s`` of silence).
- ``--mode paper`` without ``--gateway-url``: the configured API (a practice account), wall clock.
- ``--mode live``: the configured API, wall clock. Headless it needs
  ``--i-understand-this-trades-real-money``; in the console the operator types ``LIVE`` in a
  type-to-confirm dialog before anything connects. Otherwise exit code 3, nothing traded.

Credentials: ``PROJECTX_USERNAME`` / ``PROJECTX_API_KEY`` (environment only; never logged).
Headless logs are JSON lines on stdout; SIGINT/SIGTERM → orderly shutdown (the kernel closes its
position, ``venue.flatten`` cancels every working order, risk state saved, report written).

Exit codes: 0 ended (operator quit or end of a replayed feed); 1 unhandled error (halted and
flattened first); 3 bad arguments, settings, credentials, model, a held account lock or a failed
connection (nothing traded); 4 SIGINT/SIGTERM after an orderly shutdown.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

from mes_console.commands.common import EXIT_USAGE, err_console, fail
from mes_console.commands.drive import run_headless, run_tui

LIVE_REFUSED = ("--mode live trades real money: headless it needs the explicit flag "
                "--i-understand-this-trades-real-money")


def build_live_session(settings, *, mode: str, model: Optional[Path], json_report: Optional[Path],
                       gateway_url: Optional[str], ring=None, state_dir: Optional[Path] = None,
                       **cfg_overrides):
    """The (unstarted) :class:`LiveSession` for ``mode``, built by the composition root
    (:func:`engine.compose.live_session` on the ProjectX :class:`engine.broker.base.BrokerConnection`; ``gateway_url`` → exchange
    clock, otherwise the configured API on the wall clock). Raises
    :class:`engine.runtime.session.SessionError` / ``ValueError`` naming the problem."""
    from engine.compose import live_session

    return live_session(settings, mode=mode, model=model, json_report=json_report, gateway_url=gateway_url,
                        ring=ring, state_dir=state_dir, **cfg_overrides)


def _confirm_live_in_console() -> bool:
    """A small Textual app with the console's type-to-confirm modal: True when the operator
    typed ``LIVE``."""
    from textual.app import App

    from engine.runtime.live import LIVE_PHRASE
    from screens.confirm import TypeToConfirmScreen

    class ConfirmLive(App[bool]):
        def on_mount(self) -> None:
            def done(text: str | None) -> None:
                self.exit(text == LIVE_PHRASE)

            self.push_screen(TypeToConfirmScreen(
                "LIVE TRADING: this session sends orders to a REAL-MONEY TopstepX account.",
                LIVE_PHRASE), done)

    return bool(ConfirmLive().run())


def execute_live(ctx, settings, *, mode: str, model: Optional[Path] = None, no_tui: bool = False,
                 json_report: Optional[Path] = None, gateway_url: Optional[str] = None,
                 confirm_live: bool = False, strategy=None) -> int:
    """Body of ``run --mode paper|live`` (module docstring). Returns the exit code. ``strategy``:
    a loaded strategy (``--strategy``); live refuses one whose streaming ``update`` has not
    passed ``analyze streaming`` and warns without a lookahead pass (on ``[live] bar_s`` bars)."""
    from engine import logs
    from engine.config import ConfigError
    from engine.runtime.session import SessionError

    if mode == "live":
        if gateway_url:
            fail("--gateway-url is for --mode paper (a local or practice gateway); live uses the "
                 "configured [projectx] api_url", code=EXIT_USAGE)
        if no_tui and not confirm_live:
            fail(LIVE_REFUSED, code=EXIT_USAGE)
        if not no_tui and not _confirm_live_in_console():
            fail("live trading not confirmed (type LIVE to confirm): nothing traded", code=EXIT_USAGE)
    if strategy is not None and mode == "live":
        _check_live_strategy(settings, strategy)
    sec = settings.secrets
    if not sec.projectx_username or not sec.projectx_api_key:
        fail("ProjectX credentials missing: set PROJECTX_USERNAME and PROJECTX_API_KEY", code=EXIT_USAGE)
    logs.REDACT.add(sec.projectx_api_key)
    ring = logs.RingHandler(500)
    logs.reset()
    handlers: list[logging.Handler] = [logs.json_handler(sys.stdout), ring] if no_tui else [ring]
    try:   # rotating JSON log files in [paths] log_dir (same lines as the headless stdout)
        from engine.config import resolve_dir

        handlers.append(logs.file_handler(resolve_dir(settings.paths.log_dir, "log")))
    except OSError as exc:
        fail(f"log directory {settings.paths.log_dir or '(platformdirs user log dir)'}: {exc}", code=EXIT_USAGE)
    logs.install(handlers)
    # The broker layer logs under ``engine.broker``: same handlers (JSON lines headless, the
    # console's ring otherwise: nothing may write to the terminal textual draws on).
    eng = logging.getLogger("engine")
    eng.setLevel(logging.INFO)
    eng.propagate = False
    for h in handlers:
        eng.addHandler(h)
    # Every record carries the session's engine clock: held until it starts (a paper session's
    # exchange clock: its first market event), released on any way out (engine.logs).
    try:
        with logs.holding():
            try:
                session = build_live_session(settings, mode=mode, model=model, json_report=json_report,
                                             gateway_url=gateway_url, ring=ring,
                                             **({"strategy": strategy} if strategy is not None else {}))
            except (ConfigError, SessionError, ValueError, OSError) as exc:
                fail(str(exc), code=EXIT_USAGE)
            logs.set_clock(session.clock.now_ns)
            if not no_tui:
                err_console.print(f"connecting to {gateway_url or settings.projectx.api_url} ({mode})…")
            try:
                session.startup()
            except SessionError as exc:
                session.shutdown()
                fail(str(exc), code=EXIT_USAGE)
            logs.poll()   # the clock started in startup(): release the held records now
            if no_tui:
                return run_headless(session)
            return run_tui(session, settings)
    finally:
        for h in handlers:
            eng.removeHandler(h)


def _check_live_strategy(settings, strategy) -> None:
    """``run --mode live --strategy``: warn without a recorded lookahead pass on the session's
    bar size; refuse (exit 3) a strategy with a streaming ``update`` that has no recorded
    batch = streaming pass (``mes-console analyze streaming``)."""
    from engine.runtime.live import LiveConfig
    from engine.strategy.analysis import CheckRecords, lookahead_warning
    from mes_console.commands.strategy import warn

    bar_s = int(LiveConfig(mode="live").bar_s)
    w = lookahead_warning(strategy, settings, bar_s)
    if w:
        warn(w)
    if strategy.has_update and not CheckRecords.for_settings(settings).passed(strategy, "streaming", bar_s):
        fail(f"{strategy.where}: its streaming update() has not passed the batch = streaming check on {bar_s}-second "
             f"bars: run mes-console analyze streaming --strategy {strategy.spec} --data FILE; nothing traded",
             code=EXIT_USAGE)
