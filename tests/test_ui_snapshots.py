"""Snapshot tests of the console screens on the real replay session, stepped to a fixed
engine time (simulated clock), at 80×24 and 120×40.

Regenerate after a reviewed change with ``pytest tests/test_ui_snapshots.py --snapshot-update``
(review the HTML report of a failing run first)."""

from __future__ import annotations

import pytest

from mes_console.app import MesConsoleApp
from tests.ui_support import make_session, open_position, ui_settings, walk_forward_settings

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(autouse=True)
def fixed_latency(monkeypatch):
    """Latencies (the model pane's "inf 31us") are wall time: a fake monotonic counter that
    advances 1 µs per reading makes them the same on every run."""
    import itertools

    import engine.runtime.session as session_mod

    counter = itertools.count(0, 1_000)
    monkeypatch.setattr(session_mod, "perf_ns", lambda: next(counter))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_main_screen(snap_compare, size):
    assert snap_compare(MesConsoleApp(make_session(), ui_settings()), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_main_screen_position_halted(snap_compare, size):
    rt = make_session()
    open_position(rt)
    rt.halt("operator kill switch")
    assert snap_compare(MesConsoleApp(rt, ui_settings()), terminal_size=size)


def _fill_and_run(key: str, **fields):
    """A ``run_before`` that opens the screen of ``key``, fills ``fields`` (id → text), runs it
    and waits for the result, with no focus left (a blinking cursor would make the picture
    timing-dependent)."""
    async def run(pilot):
        await pilot.press(key)
        screen = pilot.app.screen
        for k, v in fields.items():
            screen.query_one(f"#{k}").value = v
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        screen.set_focus(None)
        await pilot.pause(0.3)

    return run


def test_backtest_screen(snap_compare):
    assert snap_compare(MesConsoleApp(make_session(), ui_settings()), terminal_size=(80, 24),
                        run_before=_fill_and_run("b", end="2025-03-07"))


def test_backtest_screen_walk_forward(snap_compare):
    """The walk-forward switch on generated data (deterministic: seeded market and models): the
    fold rows, the go-live table and the stitched out-of-sample equity at 120×40."""
    s = walk_forward_settings()
    run = _fill_and_run("b", start="2025-02-03", end="2025-03-14", wf="1/1/1", epochs="1")

    async def run_quiet(pilot):  # the report path's notification would cover the go-live table
        await run(pilot)
        pilot.app.clear_notifications()
        await pilot.pause(0.1)

    assert snap_compare(MesConsoleApp(make_session(s), s), terminal_size=(120, 40), run_before=run_quiet)


def test_training_screen(snap_compare):
    assert snap_compare(MesConsoleApp(make_session(), ui_settings()), terminal_size=(80, 24),
                        run_before=_fill_and_run("t", epochs="2", wf="2/1/1"))


def test_too_small_terminal(snap_compare):
    assert snap_compare(MesConsoleApp(make_session(), ui_settings()), terminal_size=(70, 20))
