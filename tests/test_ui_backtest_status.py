"""The backtest screen's status line at 80 columns names the account verdict first (issue 23: it
was appended after the report path and cut to "· O…"), then the report path cut at its start."""

from __future__ import annotations

from engine.runtime.snapshot import BacktestResult, TradeRow
from mes_console.app import MesConsoleApp
from screens.backtest import BacktestScreen
from tests.ui_support import make_session, ui_settings


async def test_status_line_keeps_the_verdict_and_the_report_name_at_80_columns() -> None:
    s = ui_settings()
    rt = make_session(s)
    app = MesConsoleApp(rt, s)
    report = "/root/.local/share/mes-console/reports/baseline-conservative-1740956400"
    limits = ("account topstepx-50k: OPEN: profit -$1,195.55, $4,195.55 to the target $3,000.00; "
              "$804.45 above the MLL $48,000.00",
              "P(pass) 0.0%, P(fail) 48.0%, open 52.0% over 10,000 paths of 10 trading days (block 5, seed 0)",
              "no account-level halt")
    trade = TradeRow(0, 60 * 10**9, "LONG", 1, 5000.0, 4998.0, -11.59, "stop")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        screen = pilot.app.screen
        assert isinstance(screen, BacktestScreen)
        screen.show(BacktestResult((("trades", "1"),), (1000.0, 988.41), (trade,), report, limits))
        await pilot.pause()
        status = str(screen.query_one("#status").render())
        assert status == "done: 1 trades · OPEN (account topstepx-50k) · P(pass) 0.0% · report saved", status
        notes = [n.message for n in pilot.app._notifications]
        assert f"backtest report saved in {report}" in notes, notes
        # an open account that stopped trading says so first
        stalled = limits[:1] + ("STALLED: no trade in the last 257 trading days (last on 2024-12-13); the MLL entry "
                                "cap refused 5,496 entries: the account is open because it stopped trading",) + limits[1:]
        screen.show(BacktestResult((("trades", "1"),), (1000.0, 988.41), (trade,), report, stalled))
        await pilot.pause()
        status = str(screen.query_one("#status").render())
        assert status.startswith("done: 1 trades · OPEN, STALLED (account topstepx-50k) · P(pass) 0.0%"), status
        assert len(status) <= 80, status
        pane = str(screen.query_one("#limits").render()).splitlines()
        assert pane[0].startswith("STALLED: no trade in the last 257 trading days"), pane   # first, cut at the width
        # without an account profile the path's end fits
        screen.show(BacktestResult((("trades", "1"),), (1000.0, 988.41), (trade,), report, limits[2:]))
        await pilot.pause()
        status = str(screen.query_one("#status").render())
        assert status.startswith("done: 1 trades · saved …") and status.endswith(report[-20:]), status
        assert len(status) < 80, status
        # one notification per run whose path did not fit (the two with an account), none for this one
        assert [n.message for n in pilot.app._notifications].count(f"backtest report saved in {report}") == 2
