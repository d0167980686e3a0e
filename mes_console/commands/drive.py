"""Driving a built session: headless with orderly signal handling, or under the console.
Shared by ``run`` (replay, paper) and ``run --mode live`` (:mod:`mes_console.commands.run_live`);
its own module so that neither command module imports the other."""

from __future__ import annotations

import signal


def run_headless(session, start_message: str = "") -> int:
    """Run ``session`` on this thread with SIGINT/SIGTERM mapped to an orderly shutdown; logs
    the start and the end (JSON lines). Returns the session's exit code. Shared by replay and
    paper/live."""
    from engine.logs import get_logger

    log = get_logger("run")

    def on_signal(signum, frame) -> None:
        name = signal.Signals(signum).name
        log.warning("%s received: orderly shutdown (cancel, flatten, save, report)", name)
        session.stop(f"{name} received", by_signal=True)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if start_message:
            log.info("session start: %s", start_message, extra={"event": "start"})
        code = session.run()
        rep = session.report()
        from engine.runtime.snapshot import money

        log.info("session end: %s; trades %d, net %s, position %+d", session.exit_reason,
                 rep.get("trades_count", 0), money(rep.get("net_pnl", 0.0), sign=True), rep.get("position_at_end", 0),
                 extra={"event": "end", "exit_code": code})
        return code
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_tui(session, settings, shutdown_wait_s: float = 60.0) -> int:
    """Start ``session`` on its engine thread and run the console until the operator quits;
    then stop the session and wait for its orderly shutdown. Shared by replay and paper/live."""
    from mes_console.app import run_console, session_summary
    from mes_console.commands.common import err_console

    session.start()
    try:
        return run_console(session, settings)
    finally:
        session.stop("console closed")
        session.finished.wait(shutdown_wait_s)
        err_console.print(session_summary(session), highlight=False, markup=False)
