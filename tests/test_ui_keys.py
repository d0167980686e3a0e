"""Pilot tests of every console key at 80×24 (R-UI-2), against the demo runtime."""

from __future__ import annotations

import dataclasses
import threading

from datetime import datetime
from zoneinfo import ZoneInfo

from engine.config import Settings, UiConfig
from mes_console.app import EngineEvent, MesConsoleApp, run_console
from screens.backtest import BacktestScreen
from screens.confirm import ConfirmScreen, TypeToConfirmScreen
from screens.help import HelpScreen
from screens.quit import QuitScreen
from screens.training import TrainingScreen
from tests.ui_support import make_runtime, open_position

SIZE = (80, 24)


async def test_pause_resume_toggles():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert rt.commands[-1] == "pause" and app.snapshot.header.paused
        assert "PAUSED" in str(app.query_one("#header").render())
        await pilot.press("p")
        assert rt.commands[-1] == "resume" and not app.snapshot.header.paused


async def test_flatten_asks_once_and_n_or_escape_cancels():
    rt = make_runtime()
    open_position(rt)
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen) and "flatten" not in rt.commands
        await pilot.press("f", "escape")
        assert "flatten" not in rt.commands
        await pilot.press("f", "y")
        await pilot.pause()
        assert rt.commands[-1] == "flatten"
        assert app.snapshot.position.side == "FLAT"


async def test_halt_needs_no_confirmation():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+k")
        assert app.screen is app.screen_stack[0]  # no dialog
        assert app.snapshot.header.trading_state == "HALTED"
        assert rt.commands[-1].startswith("halt:")


async def test_halt_works_inside_a_yes_no_modal():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state == "HALTED"
        assert isinstance(app.screen, ConfirmScreen)  # the dialog is still there, untouched


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
        assert rt.commands[-1].startswith("halt:")


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
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state == "HALTED"
        screen.query_one("#trades").focus()  # out of the text fields, letters reach the App
        await pilot.press("p")  # keys still reach the session while the backtest runs
        assert rt.commands[-1] == "pause"
        gate.set()
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert screen.result is not None and len(screen.result.trades) > 0
        assert screen.query_one("#metrics").row_count == len(screen.result.metrics)
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


async def test_training_screen_runs_and_shows_checkpoint_row():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        assert isinstance(app.screen, TrainingScreen)
        screen = app.screen
        screen.query_one("#epochs").value = "5"
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert screen.result is not None and len(screen.result.history) == 15  # 3 folds × 5
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
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("k")  # keep-protected makes no sense when flat: ignored
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitScreen) and rt.quit_policy is None
        await pilot.press("q", "y")
        await pilot.pause()
    assert rt.quit_policy == "flatten" and app.quit_applied


async def test_quit_with_a_position_offers_keep_protected():
    rt = make_runtime()
    open_position(rt)
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen) and app.screen.has_position
        await pilot.press("k")
        await pilot.pause()
    assert rt.quit_policy == "keep_protected"
    assert rt.snapshot().position.side != "FLAT"


async def test_ctrl_q_and_ctrl_c_do_not_quit():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q", "ctrl+c")
        await pilot.pause()
        assert app.is_running and rt.quit_policy is None


async def test_keys_come_from_settings():
    settings = dataclasses.replace(Settings(), ui=UiConfig(key_pause="x", key_halt="f9"))
    rt = make_runtime()
    app = MesConsoleApp(rt, settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert "pause" not in rt.commands
        await pilot.press("x")
        assert rt.commands[-1] == "pause"
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
        rt.pause()
        await pilot.pause(0.3)
    kinds = [m.event.kind for m in seen if isinstance(m, EngineEvent)]
    assert kinds == ["state"]


async def test_clock_panes_follow_the_engine_clock():
    rt = make_runtime()
    app = MesConsoleApp(rt)
    async with app.run_test(size=SIZE) as pilot:
        eod = app.query_one("#eod")
        assert "-0:12:30" in str(eod.render())
        rt.advance(150)
        await pilot.pause(0.3)
        assert "-0:10:00" in str(eod.render())
        assert "15:50:00" in str(app.query_one("#header").render())


class _Boom(Exception):
    pass


def test_crash_applies_the_disconnect_policy():
    for policy in ("protect", "flatten"):
        rt = make_runtime()
        open_position(rt)

        def boom():
            raise _Boom("pause handler exploded")

        rt.pause = boom  # an unexpected exception inside a key handler kills the App
        settings = dataclasses.replace(Settings(), ui=UiConfig(on_disconnect=policy))

        async def pilot_fn(pilot):
            await pilot.press("p")

        code = run_console(rt, settings, headless=True, size=SIZE, auto_pilot=pilot_fn)
        assert code != 0
        assert rt.ui_lost_policy == policy
        side = rt.snapshot().position.side
        assert (side == "FLAT") == (policy == "flatten")
        assert (rt.snapshot().header.trading_state == "HALTED") == (policy == "flatten")


def test_clean_quit_does_not_trigger_the_disconnect_policy():
    rt = make_runtime()

    async def pilot_fn(pilot):
        await pilot.press("q", "y")

    assert run_console(rt, headless=True, size=SIZE, auto_pilot=pilot_fn) == 0
    assert rt.quit_policy == "flatten" and rt.ui_lost_policy is None
