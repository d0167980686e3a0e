"""The console on the REAL session runtime (kernel, risk manager, simulated venue) at 80×24:
keys reach the kernel, and the panes show the kernel's state."""

from __future__ import annotations

from datetime import date, time

from engine.calendar import ny_to_ns
from engine.config import Settings
from mes_console.app import MesConsoleApp
from mes_console.commands.run import build_replay_session
from screens.confirm import ConfirmScreen, TypeToConfirmScreen

SIZE = (80, 24)


def _session():
    s = Settings()
    sess = build_replay_session(s, data=None, start="2025-11-03", end="2025-11-04", speed=None,
                                model=None, report=None)
    return s, sess


def _step_until_position(sess, limit=3000) -> None:
    for _ in range(limit):
        if sess.kernel.oco.pos != 0:
            return
        assert sess.step(), "data ended before the baseline opened a position"
    raise AssertionError("no position within the step limit")


async def test_keys_drive_the_real_kernel() -> None:
    settings, sess = _session()
    sess.advance_to(ny_to_ns(date(2025, 11, 3), time(9, 45)))
    _step_until_position(sess)
    app = MesConsoleApp(sess, settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert app.snapshot.position.side in ("LONG", "SHORT")
        assert app.snapshot.position.all_protected and app.snapshot.position.stop.state == "WORKING"
        assert "baseline" in app.snapshot.model.label
        # pause → REDUCING in the risk manager; resume
        await pilot.press("p")
        await pilot.pause(0.2)
        assert sess.risk.snapshot().manual_pause and sess.snapshot().risk.state == "REDUCING"
        await pilot.press("p")
        await pilot.pause(0.2)
        assert not sess.risk.snapshot().manual_pause
        # flatten with one confirmation: the kernel sends the exit, the next bar fills it
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause(0.2)
        sess.step()
        sess.step()
        assert sess.kernel.oco.pos == 0 and sess.kernel.trades[-1].exit_reason == "flatten"
        # kill switch from inside a modal (help), then the typed reset
        await pilot.press("question_mark")
        assert app.screen is not app.screen_stack[0]
        await pilot.press("ctrl+k")
        await pilot.pause(0.2)
        assert sess.snapshot().risk.state == "HALTED"
        await pilot.press("escape")
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, TypeToConfirmScreen)
        await pilot.press(*"RESET", "enter")
        await pilot.pause(0.3)
        assert sess.snapshot().risk.state != "HALTED"
