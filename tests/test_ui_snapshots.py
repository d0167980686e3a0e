"""Snapshot tests of the console screens at 80×24 with a fixed simulated engine clock.

Regenerate after a reviewed change with ``pytest tests/test_ui_snapshots.py --snapshot-update``."""

from __future__ import annotations

from mes_console.app import MesConsoleApp
from tests.ui_support import make_runtime

SIZE = (80, 24)


def test_main_screen(snap_compare):
    assert snap_compare(MesConsoleApp(make_runtime()), terminal_size=SIZE)


def test_backtest_screen(snap_compare):
    async def run(pilot):
        await pilot.press("b", "enter")
        await pilot.app.screen.workers.wait_for_complete()
        await pilot.pause(0.2)

    assert snap_compare(MesConsoleApp(make_runtime()), terminal_size=SIZE, run_before=run)


def test_training_screen(snap_compare):
    async def run(pilot):
        pilot.app.screen  # main
        await pilot.press("t")
        pilot.app.screen.query_one("#epochs").value = "8"
        await pilot.press("enter")
        await pilot.app.screen.workers.wait_for_complete()
        await pilot.pause(0.2)

    assert snap_compare(MesConsoleApp(make_runtime()), terminal_size=SIZE, run_before=run)


def test_main_screen_position_halted(snap_compare):
    from tests.ui_support import open_position

    rt = make_runtime()
    open_position(rt)
    rt.halt("operator kill switch")
    assert snap_compare(MesConsoleApp(rt), terminal_size=SIZE)
