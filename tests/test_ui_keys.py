"""Pilot tests of every console key at 80×24 (R-UI-2), on the real replay session
(``tests/ui_support.py``: kernel, risk manager and simulated venue at a fixed engine time)."""

from __future__ import annotations

import io
import threading

from mes_console.app import EngineEvent, MesConsoleApp, run_console
from textual.widgets import Input

from screens.backtest import BacktestScreen
from screens.confirm import ConfirmScreen, TypeToConfirmScreen
from screens.help import HelpScreen
from screens.quit import QuitScreen
from screens.training import TrainingScreen
from tests.ui_support import advance, audit_actions, make_session, open_position, ui_settings

SIZE = (80, 24)


def make_runtime(gate=None, settings=None):
    return make_session(settings, gate=gate)


async def test_pause_resume_toggles():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert audit_actions(rt)[-1] == "pause" and app.snapshot.header.paused
        assert "PAUSED" in str(app.query_one("#header").render())
        await pilot.press("p")
        assert audit_actions(rt)[-1] == "resume" and not app.snapshot.header.paused


async def test_flatten_asks_once_and_n_or_escape_cancels():
    rt = make_runtime()
    open_position(rt)
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("f", "escape")
        assert rt.kernel.oco.pos != 0  # n and escape both cancelled
        n_trades = len(rt.kernel.trades)
        await pilot.press("f", "y")
        await pilot.pause()
        advance(rt, 120)  # the simulated venue fills the market exit at the next bar
        assert rt.kernel.oco.pos == 0 and len(rt.kernel.trades) == n_trades + 1
        assert rt.kernel.trades[-1].exit_reason == "flatten"
        await pilot.pause(0.2)
        assert app.snapshot.position.side == "FLAT"


async def test_halt_needs_no_confirmation():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+k")
        assert app.screen is app.screen_stack[0]  # no dialog
        assert app.snapshot.header.trading_state == "HALTED"
        assert audit_actions(rt)[-1] == "halt"


async def test_halt_works_inside_a_yes_no_modal():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state == "HALTED"
        # the halt flattens already: the flatten question (its position text now stale) is closed
        assert not isinstance(app.screen, ConfirmScreen)


async def test_halt_beats_a_focused_text_field():
    rt = make_runtime()
    rt.halt("first")
    rt.reset_halt("RESET")
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        rt.halt("again")
        await pilot.pause()
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, TypeToConfirmScreen)
        rt.reset_halt("RESET")  # back to ACTIVE while the text field has focus
        await pilot.press("R", "E", "ctrl+k")  # Input binds ctrl+k itself; the priority binding wins
        assert rt.snapshot().header.trading_state == "HALTED"
        assert audit_actions(rt)[-1] == "halt"


async def test_reset_halt_requires_the_typed_phrase():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")  # not halted: refused with a note, no dialog
        assert not isinstance(app.screen, TypeToConfirmScreen)
        await pilot.press("ctrl+k", "ctrl+r")
        assert isinstance(app.screen, TypeToConfirmScreen)
        await pilot.press(*"reset", "enter")  # wrong case: refused by the runtime
        await pilot.pause()
        assert app.snapshot.header.trading_state == "HALTED"
        await pilot.press("ctrl+r", *"RESET", "enter")
        await pilot.pause()
        assert app.snapshot.header.trading_state in ("ACTIVE", "REDUCING")
        await pilot.press("ctrl+k", "ctrl+r", "escape")
        assert app.snapshot.header.trading_state == "HALTED"


async def test_backtest_runs_in_a_worker_and_halt_works_meanwhile():
    gate = threading.Event()
    rt = make_runtime(gate)
    app = MesConsoleApp(rt)
    try:
        await _backtest_while_halting(app, rt, gate)
    finally:
        gate.set()  # never leave the worker thread blocked


async def _backtest_while_halting(app, rt, gate):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        assert isinstance(app.screen, BacktestScreen)
        await pilot.press("enter")
        await pilot.pause(0.3)
        screen = app.screen
        workers = [w for w in screen.workers if w.group == "backtest"]
        assert workers and workers[0].is_running  # held by the gate
        screen.query_one("#trades").focus()  # out of the text fields, letters reach the App
        await pilot.press("p")  # keys still reach the session while the backtest runs
        assert audit_actions(rt)[-1] == "pause"
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state == "HALTED"
        gate.set()
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert screen.result is not None and len(screen.result.trades) > 0
        assert screen.query_one("#metrics").row_count == len(screen.result.metrics)
        assert "entries refused" in str(screen.query_one("#limits").render())
        assert screen.query_one("#trades").row_count == len(screen.result.trades)
        await pilot.press("escape")
        assert not isinstance(app.screen, BacktestScreen)
        await pilot.press("b")  # the installed screen keeps its results
        assert app.screen.result is screen.result


async def test_backtest_bad_input_is_refused_not_crashing():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        screen = app.screen
        screen.query_one("#data").value = "/nonexistent/bars.parquet"
        screen.query_one("#data").focus()
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert "FAILED" in str(screen.query_one("#status").render())
        assert app.is_running
        screen.query_one("#start").value = "2025-13-01"
        screen.query_one("#start").focus()
        await pilot.press("enter")
        assert screen.result is None


async def test_backtest_screen_parameters_and_halts_on_real_bars(es_1m_path):
    """Real ES bars, December 2024: with the shipped limits the baseline halts on the account
    drawdown and the screen says when and why; research on records it and goes on; the
    parameter fields reach the run and a bad one is refused naming the field."""
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("b")
        screen = app.screen
        for k, v in (("data", str(es_1m_path)), ("start", "2024-12-03"), ("end", "2024-12-31")):
            screen.query_one(f"#{k}").value = v
        screen.query_one("#data").focus()
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        halted = [x for x in screen.result.limits if x.startswith("halted ")]
        assert halted and "account drawdown" in halted[0] and "no trades after" in halted[0]
        status = str(screen.query_one("#status").render())
        assert "halted 2024-12-" in status and "no trades after" in status
        assert str(screen.query_one("#limits").render()).startswith("halted 2024-12-")
        first = screen.result
        screen.query_one("#research").value = "on"
        screen.query_one("#stop").value = "6"
        screen.query_one("#data").focus()
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert screen.result is not first and screen.result.limits[0].startswith("research mode ON")
        assert len(screen.result.trades) > len(first.trades)
        screen.query_one("#rr").value = "x"
        await pilot.press("enter")
        await pilot.pause()
        assert screen.result.limits[0].startswith("research mode ON")  # the bad field ran nothing
        assert app.is_running


async def test_training_screen_runs_and_shows_checkpoint_row():
    rt = make_runtime()
    app = MesConsoleApp(rt, ui_settings())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        assert isinstance(app.screen, TrainingScreen)
        screen = app.screen
        screen.query_one("#epochs").value = "2"
        screen.query_one("#wf").value = "2/1/1"
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert screen.result is not None, str(screen.query_one("#status").render())
        folds = {h[0] for h in screen.result.history}
        assert len(screen.result.history) == 2 * len(folds)  # 2 epochs per fold
        table = screen.query_one("#results")
        assert table.get_row_at(table.row_count - 1)[0] == "checkpoint"
        table.focus()
        await pilot.press("b")  # switch straight to the backtest screen
        assert isinstance(app.screen, BacktestScreen)
        assert len(app.screen_stack) == 2


async def test_help_opens_and_closes():
    app = MesConsoleApp(make_runtime())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark", "question_mark")  # "?" toggles
        assert not isinstance(app.screen, HelpScreen)


async def test_question_mark_opens_help_from_a_focused_form_field():
    app = MesConsoleApp(make_runtime())
    async with app.run_test(size=SIZE) as pilot:
        for key in ("b", "t"):
            await pilot.press("escape", key)
            screen = app.screen
            field = screen.focused
            assert isinstance(field, Input)
            before = field.value
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen) and field.value == before  # nothing typed
            await pilot.press("escape")
            assert app.screen is screen


async def test_command_palette_offers_the_console_commands_only():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles[0].startswith("HALT") and "Quit" in titles and "Theme" not in titles
        await pilot.press("ctrl+p")
        assert app.screen.__class__.__name__ == "CommandPalette"
        await pilot.press("ctrl+k")  # the kill switch works inside the palette too
        assert rt.snapshot().header.trading_state == "HALTED"
        await pilot.press(*"pause", "enter")
        await pilot.pause(0.3)
        assert app.screen is app.screen_stack[0]


async def test_terminal_too_small_shows_a_message_and_keys_still_work():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=(70, 20)) as pilot:
        await pilot.pause(0.2)
        msg = app.query_one("#too-small")
        assert msg.display and "70×20 is too small" in str(msg.render())
        assert not app.query_one("#row1").display
        assert "Trading goes on (ACTIVE)" in str(msg.render())
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state == "HALTED"
        await pilot.pause(0.2)
        # the operator's only status line at this size follows the session, not only resizes
        assert "Trading goes on (HALTED)" in str(msg.render()) and "ACTIVE" not in str(msg.render())
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert not msg.display and app.query_one("#row1").display


async def test_log_level_filter_cycles():
    app = MesConsoleApp(make_runtime())
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("#logs")
        assert pane.min_level == "INFO"
        await pilot.press("l")
        assert pane.min_level == "WARNING"
        assert "WARNING" in pane.border_title


async def test_quit_when_flat_asks_then_quits():
    rt = make_runtime()
    assert rt.kernel.oco.pos == 0
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("k")  # keep-protected makes no sense when flat: ignored
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitScreen) and not rt._stop.is_set()
        await pilot.press("q", "y")
        await pilot.pause()
    assert rt._quit_policy == "flatten" and rt._stop.is_set() and app.quit_applied


async def test_quit_with_a_position_offers_keep_protected():
    rt = make_runtime()
    open_position(rt)
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen) and app.screen.has_position
        await pilot.press("k")
        await pilot.pause()
    assert rt._quit_policy == "keep_protected"
    rt.shutdown(rt._quit_policy)  # what the engine thread does after a quit
    assert rt.kernel.oco.pos != 0 and rt.snapshot().position.all_protected


async def test_quit_dialog_follows_the_position_and_names_no_broker_in_the_demo():
    """The quit dialog's position is the session's, live: a position closed while it is open
    turns it into the flat question; in the demo (no broker) ``k`` does not claim that an OCO
    stays at a broker."""
    rt = make_runtime()
    open_position(rt)
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        screen = app.screen
        assert isinstance(screen, QuitScreen) and screen.has_position
        choices = str(screen.query_one("#quit-choices").render())
        assert "at the broker" not in choices and "simulated" in choices
        rt.flatten()
        while rt.kernel.oco.pos != 0:   # the simulated venue fills the exit at the next bar
            assert rt.step()
        rt._publish()
        app.poll()
        await pilot.pause()
        assert not screen.has_position and str(screen.query_one("#quit-position").render()).startswith("FLAT")
        assert "y" in str(screen.query_one("#quit-choices").render())
        await pilot.press("y")
        await pilot.pause()
    assert rt._quit_policy == "flatten" and app.quit_applied


async def test_pause_while_halted_is_refused_and_the_session_goes_on():
    """p after ctrl+k: the risk rules refuse a pause while HALTED; the engine answers with a
    warning event instead of ending the session (found at 70x20: "ENDED: error:
    RiskActionError")."""
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+k")
        await pilot.press("p")
        await pilot.pause()
        snap = rt.snapshot()
        assert snap.header.trading_state == "HALTED" and not snap.header.ended
        assert any(e.message.startswith("pause refused:") for e in snap.events)
        assert rt.step()   # the session still steps


async def test_job_screens_no_bar_before_a_run_and_a_cut_status_ends_in_an_ellipsis():
    """Training, backtest and optimize: no animated "--%" bar before the first run; a status
    longer than the screen (a walk-forward's plan note, a study's windows) ends in "…"."""
    app = MesConsoleApp(make_runtime())
    async with app.run_test(size=SIZE) as pilot:
        for key in ("t", "b", "o"):
            await pilot.press(key)
            await pilot.pause()
            screen = app.screen
            assert not screen.query_one("#progress").display, key
            status = screen.query_one("#status")
            status.update("plan: 3 folds of 6/1/1 months, " + "x" * 120)
            await pilot.pause()
            line = status.render_line(0).text.rstrip()
            assert line.endswith("…") and len(line) <= SIZE[0], (key, line)
            await pilot.press("escape")


async def test_ctrl_q_and_ctrl_c_do_not_quit():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q", "ctrl+c")
        await pilot.pause()
        assert app.is_running and not rt._stop.is_set()


async def test_keys_come_from_settings():
    settings = ui_settings(key_pause="x", key_halt="f9")
    rt = make_runtime(settings=settings)
    app = MesConsoleApp(rt, settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert "pause" not in audit_actions(rt)
        await pilot.press("x")
        assert audit_actions(rt)[-1] == "pause"
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state != "HALTED"
        await pilot.press("f")
        await pilot.press("f9")  # configured halt key, inside the flatten dialog
        assert rt.snapshot().header.trading_state == "HALTED"


async def test_engine_events_arrive_as_messages():
    rt = make_runtime()
    seen: list = []
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await pilot.pause(0.2)
        rt.pause()
        await pilot.pause(0.3)
    kinds = [m.event.kind for m in seen if isinstance(m, EngineEvent)]
    assert kinds == ["state"]


async def test_clock_panes_follow_the_engine_clock():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        header = app.query_one("#header")
        assert "15:47:00" in str(header.render())
        eod = str(app.query_one("#eod").render())
        name, ts = next((n, t) for n, t in rt.snapshot().eod.times if t > rt.clock.now_ns())
        left = (ts - rt.clock.now_ns()) // 10**9
        assert f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}" in eod
        advance(rt, 150)
        await pilot.pause(0.3)
        assert "15:49:00" in str(header.render())
        left -= 120
        assert f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}" in str(app.query_one("#eod").render())


class _Boom(Exception):
    pass


def test_crash_applies_the_disconnect_policy():
    """An exception that escapes every containment (here a timer callback on the App's own
    loop) ends the console; ``run_console`` applies ``on_disconnect`` and prints what it did."""
    for policy in ("protect", "flatten"):
        rt = make_runtime()
        open_position(rt)
        settings = ui_settings(on_disconnect=policy)

        def boom():
            raise _Boom("timer callback exploded")

        async def pilot_fn(pilot):
            pilot.app.set_timer(0.01, boom)
            await pilot.pause(0.3)
            if pilot.app._exception is None:  # not contained: the App must have crashed
                pilot.app.exit(0)  # (else: the test fails instead of hanging)

        out = io.StringIO()
        code = run_console(rt, settings, headless=True, size=SIZE, auto_pilot=pilot_fn, out=out)
        assert code != 0
        text = out.getvalue()
        assert "console crashed: _Boom: timer callback exploded" in text
        assert f"on_disconnect={policy}" in text
        halted = rt.snapshot().header.trading_state == "HALTED"
        assert halted == (policy == "flatten")
        assert ("trading state HALTED" in text) == (policy == "flatten")
        if policy == "flatten":
            advance(rt, 120)  # the exit fills at the next bar
            assert rt.kernel.oco.pos == 0
        else:
            assert rt.kernel.oco.pos != 0 and rt._quit_policy == "keep_protected"
            assert "position LONG" in text or "position SHORT" in text
            assert "stop" in text and "WORKING" in text


def test_clean_quit_does_not_trigger_the_disconnect_policy():
    rt = make_runtime()

    async def pilot_fn(pilot):
        await pilot.press("q", "y")

    out = io.StringIO()
    assert run_console(rt, headless=True, size=SIZE, auto_pilot=pilot_fn, out=out) == 0
    assert rt._quit_policy == "flatten" and out.getvalue() == ""
    assert "halt" not in audit_actions(rt)


async def test_end_of_replay_is_announced_and_summarised():
    from mes_console.app import session_summary

    rt = make_runtime()
    assert rt.run() == 0  # to the end of the data (max speed, this thread)
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        header = str(app.query_one("#header").render())
        assert "ENDED: end of data" in header and "ACTIVE" not in header
    assert any(e.kind == "state" and e.message.startswith("session ended: end of data")
               for e in rt.snapshot().events)
    text = session_summary(rt)
    n = len(rt.kernel.trades)
    net = sum(t.net_pnl for t in rt.kernel.trades)
    assert text.startswith("session ended: end of data")
    assert f"trades {n}, net P&L {'-' if net < 0 else '+'}${abs(net):,.2f}" in text
    assert "halts 0" in text and "position at end +0" in text and "report: not written" in text


async def test_flatten_question_follows_the_position():
    rt = make_runtime()
    open_position(rt)
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        q = app.screen.query_one("#question")
        assert ("LONG" in str(q.render())) or ("SHORT" in str(q.render()))
        for _ in range(600):  # the bracket closes the position while the question is open
            if rt.kernel.oco.pos == 0:
                break
            rt.step()
        assert rt.kernel.oco.pos == 0
        await pilot.pause(0.3)
        assert "FLAT" in str(q.render())
        await pilot.press("n")


async def test_one_todays_pnl_on_every_pane_and_modelled_quotes():
    rt = make_runtime()
    open_position(rt)
    for _ in range(3):
        rt.step()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        p = app.snapshot.position
        today = p.realized_usd + p.unrealized_usd
        text = "-" if today < 0 else "+"
        assert f"today {text}${abs(today):,.2f}" in str(app.query_one("#equity").render())
        q = app.snapshot.quote
        assert q.bid == q.last and q.ask == q.bid + q.spread_ticks * 0.25 and q.spread_ticks in (1.0, 2.0, 3.0)
        assert f"B/A {q.bid:.2f}/{q.ask:.2f}" in str(app.query_one("#quote").render())


async def test_help_and_palette_name_every_binding():
    """The help lists every key bound on the App and on the job screens (with the keys from the
    settings, not the defaults), and the palette offers every App binding's action: adding a
    binding without documenting it fails here."""
    from textual.widgets import Static

    app = MesConsoleApp(make_runtime(), ui_settings(key_pause="x", key_backtest="B"))
    async with app.run_test(size=SIZE) as pilot:
        app_keys = {k: ab.binding for k, ab in app.screen.active_bindings.items() if ab.node is app}
        assert "x" in app_keys and "p" not in app_keys  # the keymap is in force
        ids = {b.id for b in app_keys.values()}
        assert {"halt", "pause", "optimize", "help", "quit", "log_level"} <= ids
        job_keys = {}
        for name in ("backtest", "train", "optimize"):
            await pilot.press("escape")
            await app.run_action(f"open_screen('{name}')")
            await pilot.pause()
            job_keys.update({k: ab.binding for k, ab in app.screen.active_bindings.items()
                             if ab.node is app.screen})
        assert "ctrl+s" in job_keys and "ctrl+g" in job_keys
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(str(w.render()) for w in app.screen.query(Static))
        keys_list = list(app.screen.query(Static))[1]
        rows = str(keys_list.render()).count("\n") + 1
        assert keys_list.size.height == rows  # at 80×24 no row wraps onto a second line
        shown = {app.get_key_display(b) for b in [*app_keys.values(), *job_keys.values()]}
        missing = [k for k in shown if k not in text]
        assert not missing, f"keys bound but not in the help: {missing}"
        assert "optimize screen" in text and "stop a walk-forward" in text
        palette = {c.callback.__defaults__[0] for c in app.get_system_commands(app.screen_stack[0])
                   if c.callback.__defaults__}
        assert {b.action for b in app_keys.values()} - {"command_palette"} <= palette  # not itself


async def test_palette_stops_a_job_on_the_screens_that_bind_ctrl_s():
    app = MesConsoleApp(make_runtime())
    async with app.run_test(size=SIZE) as pilot:
        titles = lambda: [c.title for c in app.get_system_commands(app.screen)]  # noqa: E731
        assert "Optimize screen" in titles() and "Stop the running job" not in titles()
        for key, has_stop in (("b", True), ("t", False), ("o", True)):
            await pilot.press("escape")
            await app.run_action(f"open_screen('{ {'b': 'backtest', 't': 'train', 'o': 'optimize'}[key]}')")
            await pilot.pause()
            assert ("Stop the running job" in titles()) is has_stop, key
        # on the optimize screen the palette's stop is ctrl+s: it sets the running job's stop flag
        screen = app.screen
        screen.running = lambda: True  # a study in progress (no real one needed for the flag)
        stop = next(c for c in app.get_system_commands(screen) if c.title == "Stop the running job")
        assert not screen.stop_flag.is_set()
        await stop.callback()
        assert screen.stop_flag.is_set() and "stopping" in str(screen.query_one("#status").render())
