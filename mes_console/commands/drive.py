"""Driving a built session: headless with orderly signal handling, or under the console.
Shared by ``run`` (replay, paper) and ``run --mode live`` (:mod:`mes_console.commands.run_live`);
its own module so that neither command module imports the other."""

from __future__ import annotations

import signal


def _start_remote(session):
    """Issue 26: the remote control (Telegram) of ``session`` when ``[remote]`` turns it on, in
    the same process, console and headless alike; a bad setup (no token, no allowed chat) ends
    the session before it trades (exit code 3)."""
    from engine.remote import RemoteError, start_remote

    try:
        return start_remote(session, session.settings)
    except RemoteError as exc:
        from mes_console.commands.common import EXIT_USAGE, fail

        shutdown = getattr(session, "shutdown", None)
        if shutdown is not None:
            shutdown()
        fail(str(exc), code=EXIT_USAGE)


def _drift_line(session, where) -> str | None:
    """Issue 26: the session's drift line (``mes-console drift`` in one line) once it has ended,
    for a paper/live session that journaled its bars; None otherwise (a demo or replay runs the
    kernel itself on its bars: there is nothing to drift from). Never raises."""
    if where is None or getattr(getattr(session, "cfg", None), "mode", "") not in ("paper", "live"):
        return None
    try:
        from engine.backtest.drift import drift_session
        from engine.journal import Journal

        j = Journal(where[0], readonly=True)
        try:
            return drift_session(j, where[1], session.settings).line()
        finally:
            j.close()
    except Exception as exc:  # noqa: BLE001 - a summary line must not hide the session's exit
        return f"drift: not computed ({type(exc).__name__}: {exc})"


def _journal_of(session):
    j = getattr(session, "journal", None)
    sid = getattr(j, "session_id", None)
    return (j.path, sid) if j is not None and sid is not None else None


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

    remote = _start_remote(session)
    where = _journal_of(session)
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if start_message:
            log.info("session start: %s", start_message, extra={"event": "start"})
        code = session.run()
        line = _drift_line(session, where or _journal_of(session))
        if line:
            log.info("%s", line, extra={"event": "drift"})
        rep = session.report()
        from engine.runtime.snapshot import money

        log.info("session end: %s; trades %d, net %s, position %+d", session.exit_reason,
                 rep.get("trades_count", 0), money(rep.get("net_pnl", 0.0), sign=True), rep.get("position_at_end", 0),
                 extra={"event": "end", "exit_code": code})
        return code
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if remote is not None:
            remote.close()


def run_tui(session, settings, shutdown_wait_s: float = 60.0) -> int:
    """Start ``session`` on its engine thread and run the console until the operator quits;
    then stop the session and wait for its orderly shutdown. Shared by replay and paper/live."""
    from mes_console.app import run_console, session_summary
    from mes_console.commands.common import err_console

    remote = _start_remote(session)
    where = _journal_of(session)
    session.start()
    try:
        return run_console(session, settings)
    finally:
        session.stop("console closed")
        session.finished.wait(shutdown_wait_s)
        if remote is not None:
            remote.close()
        err_console.print(session_summary(session), highlight=False, markup=False)
        line = _drift_line(session, where or _journal_of(session))
        if line:
            err_console.print(line, highlight=False, markup=False)
