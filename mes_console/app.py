"""The operator console: a Textual App over a session runtime (R-UI-1 … R-UI-6).

Data flow (architecture §7): the engine never calls into the UI. The App polls
``runtime.snapshot()`` every ``1 / settings.ui.refresh_hz`` seconds into the ``snapshot``
reactive; the panes ``data_bind`` to it and redraw only their changed part. New
:class:`SessionEvent` records in the snapshot (fills, state changes, alerts) become
:class:`EngineEvent` messages, coalesced per kind (``can_replace``), shown as notifications.
Commands go back only through :class:`engine.runtime.snapshot.RuntimeCommands`.

Keys (``settings.ui``, binding ids in brackets; see :data:`KEY_IDS`): pause/resume [pause],
flatten with a y/n modal [flatten], kill switch with no confirmation, a priority binding that
works on every screen and inside modals [halt], reset a halt by typing RESET [reset], backtest
screen [backtest], training screen [train], optimize screen (``o``) [optimize], help [help], quit
asking what to do with an open position [quit]; ``l`` cycles the log level filter. On the job
screens enter or ctrl+g runs the form and ctrl+s stops a running walk-forward or study (backtest
and optimize screens; also in the command palette there). ``inherit_bindings=False``: Textual's
ctrl+q / ctrl+c never quit silently.

:func:`run_console` wraps ``App.run``: any exit that is not an answered quit dialog (a crash, a
dropped terminal, SIGHUP) calls ``runtime.ui_lost(settings.ui.on_disconnect, reason)``.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any, Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Static
from textual.worker import Worker

from engine.config import Settings, resolve_dir
from engine.runtime.snapshot import (
    RESET_PHRASE,
    RuntimeCommandError,
    RuntimeCommands,
    SessionEvent,
    SessionSnapshot,
)
from mes_console.widgets.panes import (
    EodPane,
    EquityPane,
    HeaderBar,
    LogPane,
    ModelPane,
    PositionPane,
    QuotePane,
    RiskPane,
)
from mes_console.widgets.contain import describe, log, log_worker_failure, report
from mes_console.widgets.render import LEVELS, render_position
from mes_console.widgets.render import money as money_text
from engine.runtime.snapshot import money as snapshot_money
from screens.backtest import BacktestScreen
from screens.confirm import ConfirmScreen, TypeToConfirmScreen
from screens.help import HelpScreen
from screens.jobs import JobScreen
from screens.optimize import OptimizeScreen
from screens.quit import QuitScreen
from screens.training import TrainingScreen

KEY_IDS = {
    "pause": "key_pause",
    "flatten": "key_flatten",
    "halt": "key_halt",
    "reset": "key_reset",
    "backtest": "key_backtest",
    "train": "key_train",
    "help": "key_help",
    "quit": "key_quit",
}
"""Binding id → ``settings.ui`` field holding its key."""

HALT_REASON = "operator kill switch"


class EngineEvent(Message):
    """A discrete session event for the UI; a queued one of the same kind is replaced by a
    newer one (a burst of fills shows the latest; every one is in the log pane)."""

    def __init__(self, event: SessionEvent) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EngineEvent) and message.event.kind == self.event.kind


class MesConsoleApp(App, inherit_bindings=False):
    """The console. ``runtime``: anything implementing ``RuntimeCommands``."""

    TITLE = "mes-console"
    ENABLE_COMMAND_PALETTE = True
    """ctrl+p opens Textual's command palette with the console's own commands only
    (:meth:`get_system_commands`); Textual's immediate "Quit" is not offered."""
    MIN_SIZE = (80, 24)
    """Below this the panes are replaced by a message (the session and the keys go on)."""
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]
    """A terminal of 34 rows or more (Textual adds ``-tall`` to the screen) gives the position
    and risk row the room for every line it can show: the account profile's MLL and verdict, the
    lockouts, a pause, the breakers (6 rows at 80×24: the risk pane's last lines are cut there)."""
    CSS = """
    Screen { layout: vertical; }
    #row1 { height: 7; }
    #row2 { height: 8; }
    Screen.-tall #row2 { height: 12; }
    #row3 { height: 1fr; }
    QuotePane { width: 1fr; min-width: 24; max-width: 40; }
    ModelPane { width: 1fr; min-width: 28; max-width: 44; }
    EodPane { width: 1fr; min-width: 28; }
    PositionPane { width: 1fr; min-width: 40; }
    RiskPane { width: 1fr; min-width: 40; }
    LogPane { width: 2fr; }
    EquityPane { width: 1fr; min-width: 30; }
    #too-small { display: none; height: 1fr; content-align: center middle; text-style: bold; }
    Screen.too-small #row1, Screen.too-small #row2, Screen.too-small #row3 { display: none; }
    Screen.too-small #too-small { display: block; }
    """
    BINDINGS = [
        Binding("ctrl+k", "halt", "HALT", priority=True, id="halt"),
        Binding("p", "pause", "Pause", id="pause"),
        Binding("f", "flatten", "Flat", id="flatten"),
        Binding("ctrl+r", "reset", "Reset", id="reset"),
        Binding("b", "open_screen('backtest')", "Backtest", id="backtest"),
        Binding("t", "open_screen('train')", "Train", id="train"),
        Binding("o", "open_screen('optimize')", "Optimize", show=False, id="optimize"),
        Binding("l", "log_level", "Logs", show=False, id="log_level"),
        # priority: "?" opens help even when a form field has focus (it is never valid input there)
        Binding("question_mark", "help", "Help", priority=True, id="help"),
        Binding("q", "quit_session", "Quit", id="quit"),
    ]

    snapshot: reactive[SessionSnapshot | None] = reactive(None, always_update=False)

    def __init__(self, runtime: RuntimeCommands, settings: Settings | None = None) -> None:
        super().__init__()
        self.runtime = runtime
        self.settings = settings or Settings()
        ui = self.settings.ui
        self.set_keymap({bid: getattr(ui, field) for bid, field in KEY_IDS.items()})
        self.quit_applied = False
        self.hangup = False
        self._last_event_seq: int | None = None
        self._poll_error = ""
        self.crash_file = ""
        self._too_small_text = ""

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header").data_bind(MesConsoleApp.snapshot)
        with Horizontal(id="row1"):
            yield QuotePane(id="quote").data_bind(MesConsoleApp.snapshot)
            yield ModelPane(id="model").data_bind(MesConsoleApp.snapshot)
            yield EodPane(id="eod").data_bind(MesConsoleApp.snapshot)
        with Horizontal(id="row2"):
            yield PositionPane(id="position").data_bind(MesConsoleApp.snapshot)
            yield RiskPane(id="risk").data_bind(MesConsoleApp.snapshot)
        with Horizontal(id="row3"):
            yield LogPane(id="logs").data_bind(MesConsoleApp.snapshot)
            yield EquityPane(id="equity").data_bind(MesConsoleApp.snapshot)
        yield Static("", id="too-small")
        yield Footer(show_command_palette=False)  # ^p is in the help; the room is for q Quit

    def on_resize(self, event) -> None:
        """Below :attr:`MIN_SIZE` the main screen shows one clear message instead of panes
        that would silently lose rows and columns; the session and every key go on."""
        self._too_small_message(event.size.width, event.size.height)

    def _too_small_message(self, w: int, h: int) -> None:
        """Show or hide the "too small" message for a ``w``×``h`` terminal. It is the operator's
        only status line at that size, so it is rebuilt on every snapshot too
        (:meth:`watch_snapshot`): the trading state it names is always the current one."""
        small = w < self.MIN_SIZE[0] or h < self.MIN_SIZE[1]
        main = self.screen_stack[0] if self.screen_stack else None
        if main is None:
            return
        main.set_class(small, "too-small")
        if small:
            snap = self.snapshot
            state = snap.header.trading_state if snap is not None else "?"
            if snap is not None and snap.header.paused and state == "ACTIVE":
                state = "PAUSED"
            text = (f"Terminal {w}×{h} is too small: the console needs at least "
                    f"{self.MIN_SIZE[0]}×{self.MIN_SIZE[1]}.\nTrading goes on ({state}). "
                    f"ctrl+k halts, q quits.")
            if text != self._too_small_text:
                self._too_small_text = text
                main.query_one("#too-small", Static).update(text)

    def get_system_commands(self, screen):
        """The command palette (ctrl+p): the console's commands, each through
        :meth:`run_action` like its key (so a failure is contained the same way)."""
        from textual.app import SystemCommand

        ui = self.settings.ui
        rows = [
            ("HALT (kill switch)", f"halt trading now, no confirmation ({ui.key_halt})", "halt"),
            ("Pause / resume", f"stop or restart new entries ({ui.key_pause})", "pause"),
            ("Flatten", f"close the position at market, asks y/n ({ui.key_flatten})", "flatten"),
            ("Reset halt", f"lift a halt, type {RESET_PHRASE} ({ui.key_reset})", "reset"),
            ("Backtest screen", f"run a backtest or a walk-forward ({ui.key_backtest})", "open_screen('backtest')"),
            ("Training screen", f"train a model ({ui.key_train})", "open_screen('train')"),
            ("Optimize screen", "run an Optuna study of the strategy's parameters (o)", "open_screen('optimize')"),
            ("Log level", "cycle the log pane's level filter (l)", "log_level"),
            ("Help", "the keys in force (?)", "help"),
            ("Quit", f"quit, asks what to do with an open position ({ui.key_quit})", "quit_session"),
        ]
        for title, help_text, action in rows:
            yield SystemCommand(title, help_text, lambda a=action: self.run_action(a))
        if any(getattr(b, "action", None) == "stop" for b in getattr(screen, "BINDINGS", [])):
            # the backtest and optimize screens: stop their running walk-forward or study
            yield SystemCommand("Stop the running job", "stop the walk-forward or study on this screen (ctrl+s)",
                                lambda s=screen: self.run_action("stop", default_namespace=s))

    def on_mount(self) -> None:
        if hasattr(signal, "SIGHUP") and not self.is_headless:
            # A dropped SSH terminal: leave through run_console's safe policy.
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_hangup)
        tc = self.settings.training
        self.install_screen(BacktestScreen(self.runtime, self.settings.backtest.fill_model,
                                           f"{tc.train_months}/{tc.val_months}/{tc.test_months}"), name="backtest")
        self.install_screen(TrainingScreen(self.runtime, self.settings.training.arch,
                                           self.settings.training.epochs), name="train")
        self.install_screen(OptimizeScreen(self.settings), name="optimize")
        self.poll()
        self.set_interval(1.0 / self.settings.ui.refresh_hz, self.poll, name="snapshot-poll")

    def _on_hangup(self) -> None:
        self.hangup = True
        self.exit(return_code=129)

    def on_unmount(self) -> None:
        if hasattr(signal, "SIGHUP") and not self.is_headless:
            try:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            except RuntimeError:
                pass

    # ------------------------------------------------------------------ containment
    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """Every key binding and palette command goes through here: an action that raises is
        reported (notified + logged) instead of ending the App; the session is unaffected."""
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except Exception as exc:
            report(self, f"command {action if isinstance(action, str) else action!r}", exc)
            return True

    def _handle_exception(self, error: Exception) -> None:
        """What escapes every containment ends the App (Textual's rule), but without a
        traceback on the operator's terminal: the traceback is logged and written to
        ``crash_file`` (in the log directory); :func:`run_console` prints one line naming it."""
        self._return_code = 1
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        log.critical("console crashed: %s", describe(error), exc_info=error)
        try:
            import traceback

            from engine.logs import REDACT

            path = resolve_dir(self.settings.paths.log_dir, "log") / f"console-crash-{os.getpid()}.txt"
            path.write_text(REDACT.redact("".join(traceback.format_exception(error))))   # no secret in it
            self.crash_file = str(path)
        except Exception:
            self.crash_file = ""
        self._close_messages_no_wait()

    async def _on_message(self, message: Message) -> None:
        """The App's own handlers (engine events, worker reports) are contained the same way."""
        try:
            await super()._on_message(message)
        except Exception as exc:
            report(self, f"console ({message.handler_name})", exc)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Logs a failed App worker (every worker runs with ``exit_on_error=False``; the
        contained screens log theirs the same way and show the failure in their status line)."""
        log_worker_failure(event)

    # ------------------------------------------------------------------ polling
    def poll(self) -> None:
        """Pull one snapshot (UI thread). A failing ``snapshot()`` is shown in the header and
        retried at the next tick; the runtime keeps managing the session meanwhile."""
        try:
            snap = self.runtime.snapshot()
        except Exception as exc:  # shown, not hidden: the header turns into an error banner
            msg = f"snapshot failed: {type(exc).__name__}: {exc}"
            if msg != self._poll_error:
                self._poll_error = msg
                self.query_one(HeaderBar).error = msg[:60]
                self.notify(msg, severity="error", timeout=10)
            return
        if self._poll_error:
            self._poll_error = ""
            self.query_one(HeaderBar).error = ""
        if self.snapshot is None or snap.seq != self.snapshot.seq:
            try:
                self.snapshot = snap  # panes contain their own draw errors
            except Exception as exc:  # a watcher outside the panes: shown, the poll goes on
                report(self, "snapshot update", exc)
        last = self._last_event_seq
        if last is None:
            self._last_event_seq = max((e.seq for e in snap.events), default=0)
            return
        for ev in snap.events:
            if ev.seq > last:
                self.post_message(EngineEvent(ev))
                self._last_event_seq = ev.seq

    def on_engine_event(self, message: EngineEvent) -> None:
        """Fills go to the position pane's "last" line (frequent, and in the log); state
        changes and alerts become short notifications."""
        ev = message.event
        if ev.kind == "fill":
            self.query_one(PositionPane).last_fill = ev.message
        else:  # one toast at a time: a burst never stacks over the risk and position panes
            self.clear_notifications()
            self.notify(ev.message, title=ev.kind, severity=ev.severity, timeout=4)

    def watch_snapshot(self, snap: SessionSnapshot | None) -> None:
        """Feed the header of the backtest and training screens (their own compose), and keep an
        open flatten question's position text current."""
        w, h = self.size.width, self.size.height
        if self.screen_stack and (w < self.MIN_SIZE[0] or h < self.MIN_SIZE[1]
                                  or self.screen_stack[0].has_class("too-small")):
            self._too_small_message(w, h)
        screen = self.screen if self.screen_stack else None
        if isinstance(screen, ConfirmScreen) and screen.refresh_text is not None and screen.is_mounted:
            screen.query_one("#question", Static).update(screen.refresh_text(snap))
        if isinstance(screen, QuitScreen) and snap is not None:
            screen.update_position(render_position(snap.position).plain, snap.position.side != "FLAT")
        for name in ("backtest", "train", "optimize"):
            try:
                screen = self.get_screen(name)
            except KeyError:
                continue
            if screen.is_mounted:
                for header in screen.query(HeaderBar):
                    header.snapshot = snap

    # ------------------------------------------------------------------ commands
    def _command(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run a runtime command; a refusal (RuntimeCommandError) is shown, not raised."""
        try:
            fn(*args)
        except RuntimeCommandError as exc:
            self.notify(str(exc), severity="error", timeout=6)
            return False
        self.poll()
        return True

    def action_halt(self) -> None:
        """Kill switch: no confirmation, works everywhere (priority binding). An open flatten
        question is closed: the halt flattens already, and its position text is now stale."""
        self._command(self.runtime.halt, HALT_REASON)  # the state event notifies
        if isinstance(self.screen, ConfirmScreen):
            self.screen.dismiss(False)

    def _fresh(self) -> SessionSnapshot | None:
        """Poll now so that a command decides on the current state, not the last tick's."""
        self.poll()
        return self.snapshot

    def action_pause(self) -> None:
        snap = self._fresh()
        if snap is not None and snap.header.paused:
            self._command(self.runtime.resume)
        else:
            self._command(self.runtime.pause)

    def action_flatten(self) -> None:
        snap = self._fresh()

        def done(yes: bool | None) -> None:
            if yes:
                self._command(self.runtime.flatten)

        def question(snap: SessionSnapshot | None) -> str:
            pos = "" if snap is None else render_position(snap.position).plain.splitlines()[0]
            return f"[b]Flatten?[/b] Close the position at market.\n{pos}"

        self.push_screen(ConfirmScreen(question(snap), refresh=question), done)

    def action_reset(self) -> None:
        snap = self._fresh()
        if snap is not None and snap.header.trading_state != "HALTED":
            self.notify("not halted: nothing to reset", severity="warning")
            return

        def done(text: str | None) -> None:
            if text is None:
                return
            if self._command(self.runtime.reset_halt, text):
                self.notify("halt reset (audited)", severity="warning")

        reason = "" if snap is None else snap.risk.reason
        self.push_screen(TypeToConfirmScreen(f"[b]Reset the halt?[/b] Reason: {reason}", RESET_PHRASE), done)

    def action_open_screen(self, name: str) -> None:
        """Show the installed job screen ``name`` (backtest, train, optimize); from another job
        screen it replaces that one (the stack stays main + one)."""
        current = self.screen
        target = self.get_screen(name)
        if current is target:
            return
        if isinstance(current, JobScreen):
            self.pop_screen()
        self.push_screen(name)

    def action_help(self) -> None:
        ui = self.settings.ui
        shown = lambda key: self.get_key_display(Binding(key, ""))  # noqa: E731 - "?" not question_mark
        rows = [
            (shown(ui.key_halt), "HALT (kill switch), no confirmation, every screen"),
            (shown(ui.key_pause), "pause / resume new entries"),
            (shown(ui.key_flatten), "flatten the position (y/n)"),
            (shown(ui.key_reset), f"reset a halt (type {RESET_PHRASE})"),
            (shown(ui.key_backtest), "backtest screen"),
            (shown(ui.key_train), "training screen"),
            (shown("o"), "optimize screen (an Optuna study)"),
            ("l", "log level filter"),
            (shown(ui.key_help), "this help"),
            (shown(ui.key_quit), "quit (asks about an open position)"),
            (shown("ctrl+p"), "command palette (every command above)"),
            (f"enter / {shown('ctrl+g')}", "run the form (backtest, training, optimize screens)"),
            ("tab/shift+tab", "next / previous field"),
            (shown("ctrl+s"), "stop a walk-forward or study (backtest/optimize)"),
            ("escape", "back / cancel"),
        ]
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)  # "?" toggles
        else:
            self.push_screen(HelpScreen(rows))

    def action_log_level(self) -> None:
        pane = self.query_one(LogPane)
        pane.min_level = LEVELS[(LEVELS.index(pane.min_level) + 1) % 4]

    def action_quit_session(self) -> None:
        if isinstance(self.screen, QuitScreen):
            return
        snap = self._fresh()
        has_pos = snap is not None and snap.position.side != "FLAT"
        text = "flat" if snap is None else render_position(snap.position).plain

        def done(policy: str | None) -> None:
            if policy is None:
                return
            if self._command(self.runtime.quit, policy):
                self.quit_applied = True
                self.exit(0)

        mode = snap.header.mode if snap is not None else "live"
        self.push_screen(QuitScreen(text, has_pos, mode), done)


def session_summary(session: Any) -> str:
    """What the operator reads after the console has closed: why the session ended, trades,
    net P&L, halts, the position left and where the report went (``session.report()``,
    ``session.cfg.report_path``)."""
    try:
        rep = session.report()
    except Exception as exc:  # the summary must not hide the exit code
        return f"session summary unavailable: {describe(exc)}"
    audit = getattr(getattr(session, "risk", None), "audit_records", [])
    halts = [r for r in audit if r.get("action") == "halt"
             and not str(r.get("reason", "")).endswith("(already halted)")]
    risk = rep.get("risk") or {}
    halted = isinstance(risk, dict) and bool(risk.get("halt"))
    cfg = getattr(session, "cfg", None)
    path = getattr(session, "report_written", None) or getattr(cfg, "report_path", None)
    journal = getattr(cfg, "journal_path", None)
    lines = [
        f"session ended: {rep.get('exit_reason') or 'stopped'}",
        f"  trades {rep.get('trades_count', 0)}, net P&L {money_text(rep.get('net_pnl', 0.0))} "
        f"(commission {snapshot_money(rep.get('commission', 0.0))}), equity "
        f"{snapshot_money(rep.get('ending_equity', 0.0))}",
        f"  halts {len(halts)}{' (halted at the end)' if halted else ''}; position at end "
        f"{rep.get('position_at_end', 0):+d}",
        f"  report: {path if path else 'not written (use --json-report PATH)'}",
    ]
    if journal:
        lines.append(f"  journal: {journal} (mes-console journal --sim)")
    return "\n".join(lines)


def describe_state(snap: SessionSnapshot | None) -> str:
    """One line: position (side, size, average), each bracket leg and its state, trading state.
    Used for what the operator reads on the terminal after the console has gone."""
    if snap is None:
        return "session state unknown (no snapshot)"
    p = snap.position
    pos = "flat" if p.side == "FLAT" else f"{p.side} {p.size} @ {p.avg_price:.2f}"
    legs = [f"{leg.kind} {leg.price:.2f} {leg.state}" for leg in (p.stop, p.target) if leg is not None]
    orders = ", ".join(legs) if legs else "no working orders"
    state = snap.header.trading_state + (f" ({snap.risk.reason})" if snap.risk.reason else "")
    return f"position {pos}; orders: {orders}; trading state {state}"


def _applied_snapshot(runtime: RuntimeCommands, after_seq: int, wait_s: float = 2.0) -> SessionSnapshot | None:
    """The first snapshot newer than ``after_seq`` (the engine thread applies commands at its
    next wake-up), or the latest one after ``wait_s`` seconds."""
    import time

    deadline = time.monotonic() + wait_s
    snap = None
    while True:
        try:
            snap = runtime.snapshot()
        except Exception:
            return snap
        if snap is not None and snap.seq > after_seq or time.monotonic() >= deadline:
            return snap
        time.sleep(0.05)


def run_console(runtime: RuntimeCommands, settings: Settings | None = None, *, headless: bool = False,
                size: tuple[int, int] | None = None, auto_pilot=None, out=None) -> int:
    """Run the console until the operator quits; returns the App's return code.

    Whatever ends the App other than an answered quit dialog (an unhandled exception, a lost
    terminal, SIGHUP) calls ``runtime.ui_lost(settings.ui.on_disconnect, reason)`` before this
    returns or re-raises, so positions are never left unmanaged (R-UI-6), then prints on
    ``out`` (default stderr), after Textual has given the terminal back, what the policy did:
    position, working orders, halted or not."""
    import sys

    settings = settings or Settings()
    app = MesConsoleApp(runtime, settings)
    reason = "console ended without a quit"

    try:
        app.run(headless=headless, size=size, auto_pilot=auto_pilot)
        if app.hangup:
            reason = "terminal hung up (SIGHUP)"
        elif app.return_code:
            err = getattr(app, "_exception", None)
            reason = f"console crashed: {describe(err)}" if err else f"console crashed (return code {app.return_code})"
    except BaseException as exc:
        reason = f"console crashed: {describe(exc)}"
        raise
    finally:
        if not app.quit_applied:
            policy = settings.ui.on_disconnect
            try:
                seq = runtime.snapshot().seq
            except Exception:
                seq = -1
            runtime.ui_lost(policy, reason)
            snap = _applied_snapshot(runtime, seq)
            did = ("HALTED, position being closed at market (flatten)" if policy == "flatten"
                   else "kept the position and its bracket working (protect)")
            stream = out or sys.stderr
            print(f"mes-console: {reason}", file=stream)
            if app.crash_file:
                print(f"traceback written to {app.crash_file}", file=stream)
            print(f"on_disconnect={policy}: {did}; {describe_state(snap)}", file=stream)
            stream.flush()
    return app.return_code or 0
