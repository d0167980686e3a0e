"""Pilot tests of the backtest screen's walk-forward switch (issue 16 item 5, R-BT-4) on the real
replay session and real ES bars: per fold a model is trained and its out-of-sample window
backtested in a separate process while the UI stays responsive (the halt key works), the screen
shows a row per fold, the go-live table and the stitched equity, and ctrl+s stops a run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest

from engine.runtime.work import ARCHS
from mes_console.app import MesConsoleApp
from screens.backtest import BacktestScreen, fold_window
from tests.ui_support import audit_actions, make_session, walk_forward_settings

CRITERIA = ["sharpe", "calmar", "oos_accuracy", "trades_per_fold", "risk_limits_exercised"]


def _app():
    """A real session and the console on :func:`walk_forward_settings`."""
    s = walk_forward_settings()
    rt = make_session(s)
    return rt, MesConsoleApp(rt, s)


async def _walk_forward_form(pilot, es_1m_path, epochs: str) -> BacktestScreen:
    """Open the backtest screen with the walk-forward switch on (1/1/1 months, scaled to days on
    these six weeks of real ES bars) and ``epochs`` per fold model."""
    await pilot.press("b")
    screen = pilot.app.screen
    assert isinstance(screen, BacktestScreen)
    _fill(screen, data=str(es_1m_path), start="2025-09-01", end="2025-10-10", wf="1/1/1", epochs=epochs)
    return screen


def _fill(screen, **fields) -> None:
    for k, v in fields.items():
        screen.query_one(f"#{k}").value = v
    screen.query_one("#data").focus()


async def _wait_status(pilot, screen, predicate, tries: int = 600) -> str:
    for _ in range(tries):
        await pilot.pause(0.1)
        text = str(screen.query_one("#status").render())
        if predicate(text):
            return text
    raise AssertionError(f"status never matched: {text!r}")


def test_console_architectures_are_the_models():
    from engine.ml.models import ARCHS as MODEL_ARCHS

    assert ARCHS == MODEL_ARCHS


async def test_walk_forward_switch_runs_folds_shows_go_live_and_halt_works(es_1m_path):
    rt, app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _walk_forward_form(pilot, es_1m_path, epochs="1")
        seen: list[str] = []   # every progress message the run posts (the status shows the latest)
        run = rt.run_walk_forward
        rt.run_walk_forward = lambda params, on_progress, stop: run(  # type: ignore[method-assign]
            params, lambda p: (seen.append(p.message), on_progress(p)), stop)
        notes: list[str] = []
        notify = app.notify
        app.notify = lambda message, **kw: (notes.append(str(message)), notify(message, **kw))[1]  # type: ignore[method-assign]
        await pilot.press("enter")
        for _ in range(50):
            if screen.running():
                break
            await pilot.pause(0.02)
        assert screen.running()
        await pilot.press("ctrl+k")  # the kill switch works while the folds train in their own process
        assert rt.snapshot().header.trading_state == "HALTED" and audit_actions(rt)[-1] == "halt"
        assert screen.running()
        await screen.workers.wait_for_complete()
        await pilot.pause()
        # progress per fold arrived meanwhile
        assert any("fold 1/" in m for m in seen) and any("fold 2/" in m for m in seen), seen
        wf = screen.walk_forward
        assert wf is not None, str(screen.query_one("#status").render())
        assert len(wf.folds) >= 2
        assert [c.criterion for c in wf.go_live] == CRITERIA
        assert wf.go_live_pass == all(c.passed for c in wf.go_live)
        trades = screen.result.trades
        assert sum(f.trades for f in wf.folds) == len(trades) > 0
        assert dict(screen.result.metrics)["trades"] == str(len(trades))
        # each fold's net $ is the sum of its own out-of-sample trades (after costs)
        for f in wf.folds:
            own = [t.pnl_usd for t in trades if f.start_ns <= t.entry_ns < f.end_ns]
            assert len(own) == f.trades and abs(sum(own) - f.net_pnl) < 0.01
        assert abs(screen.result.equity[-1] - screen.result.equity[0] - sum(f.net_pnl for f in wf.folds)) < 0.01
        trades_per_fold = next(c for c in wf.go_live if c.criterion == "trades_per_fold")
        assert trades_per_fold.value == " ".join(str(f.trades) for f in wf.folds)
        text = _plain(screen.query_one("#folds").content)
        for c in wf.go_live:
            assert c.criterion in text
        assert text.count("FAIL") == sum(not c.passed for c in wf.go_live)
        assert fold_window(wf.folds[0].start_ns, wf.folds[0].end_ns) in text and "go live:" in text
        status = str(screen.query_one("#status").render())
        assert status.startswith(f"done: {len(wf.folds)} folds, {len(trades)} trades · go live: ")
        # the CLI's walk-forward report files (backtest --walk-forward --out DIR), in the reports dir
        report = Path(screen.result.report_path)
        assert report.parent == Path(app.settings.paths.reports_dir) and report.name.startswith("walk-forward-mlp-1-1-1-")
        assert f"saved …/{report.name}" in status and len(status) < 120, status
        assert str(report) in text  # in full below the tables, and in a notification
        assert f"walk-forward report saved in {report}" in notes, notes
        doc = json.loads((report / "walk_forward.json").read_text())
        assert [f["trades"] for f in doc["folds"]] == [f.trades for f in wf.folds]
        assert doc["arch"] == "mlp" and doc["go_live"]["pass"] == wf.go_live_pass
        assert doc["metrics"]["trades"] == len(trades)
        csv = pd.read_csv(report / "trades.csv")
        assert len(csv) == len(trades) and abs(csv["net_pnl"].sum() - sum(f.net_pnl for f in wf.folds)) < 0.01
        eq = pd.read_csv(report / "equity.csv")
        assert abs(eq["equity"].iloc[-1] - screen.result.equity[-1]) < 0.01
        assert screen.query_one("#wfbox").display and not screen.query_one("#trades").display
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        screen.show(wf)  # at 80 columns the status stays one line, ending in the directory's name
        status = str(screen.query_one("#status").render())
        assert len(status) < 80 and status.endswith(report.name[-12:]) and " · saved …" in status, status
        # back to a plain backtest: the fold tables give way to the trade list
        _fill(screen, data="demo", start="2025-03-03", end="2025-03-05", wf="off")
        await pilot.press("enter")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert screen.walk_forward is None and screen.query_one("#trades").display
        assert not screen.query_one("#wfbox").display
        assert app.is_running


async def test_walk_forward_stops_on_ctrl_s_and_bad_fields_are_refused(es_1m_path):
    rt, app = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _walk_forward_form(pilot, es_1m_path, epochs="50")
        screen.query_one("#model").value = "checkpoint.pt"
        await pilot.press("enter")
        await pilot.pause()
        assert not screen.running()  # a walk-forward trains its own models: a checkpoint is refused
        screen.query_one("#model").value = "mlp"
        screen.query_one("#wf").value = "1/x/1"
        await pilot.press("enter")
        await pilot.pause()
        assert not screen.running()
        screen.query_one("#wf").value = "1/1/1"
        await pilot.press("enter")
        await _wait_status(pilot, screen, lambda t: "training: epoch" in t)
        await pilot.press("ctrl+s")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert str(screen.query_one("#status").render()).startswith("stopped")
        assert screen.walk_forward is None and screen.result is None
        assert _work_processes() == []
        await pilot.press("ctrl+k")
        assert audit_actions(rt)[-1] == "halt"
        await pilot.press("enter")  # run again, then leave the console while it trains
        await _wait_status(pilot, screen, lambda t: "training: epoch" in t)
        assert len(_work_processes()) == 1
    for _ in range(50):  # the App's end stops the work: its process does not run on unseen
        if not _work_processes():
            break
        await asyncio.sleep(0.1)
    assert _work_processes() == []


def _work_processes() -> list:
    """Live child processes of this test that run console work (engine.runtime.work)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and "_child_main" in " ".join(p.cmdline())]


def _plain(renderable) -> str:
    from rich.console import Console

    c = Console(width=120, record=True, color_system=None)
    c.print(renderable)
    return c.export_text()


def test_walk_forward_report_writer_names_the_directory_it_cannot_write(tmp_path):
    from types import SimpleNamespace

    from engine.runtime.work import WALK_FORWARD_FILES, write_walk_forward_report

    r = SimpleNamespace(wf=SimpleNamespace(trades=pd.DataFrame({"fold": [0], "net_pnl": [1.5]}),
                                           ts=[1_733_237_040_000_000_000], equity=[100_001.5]))
    files = write_walk_forward_report(r, {"folds": []}, tmp_path / "ok")
    assert sorted(files) == sorted(WALK_FORWARD_FILES) and all(Path(p).is_file() for p in files.values())
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(OSError, match="a-file: cannot write the walk-forward report"):
        write_walk_forward_report(r, {}, blocked)
