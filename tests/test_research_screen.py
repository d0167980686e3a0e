"""Pilot test of the optimize screen at 80×24: a study runs off the UI thread on a real ES slice,
trials appear as they finish, the halt key works meanwhile, and Stop ends the study early with
the held-out report and the config file written."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np

from engine.config import OptimizeConfig
from engine.data import load_bars, save_bars
from mes_console.app import MesConsoleApp
from screens.optimize import OptimizeScreen
from tests.ui_support import make_session, ui_settings


async def test_optimize_screen_runs_shows_trials_and_stops(es_1m_path, tmp_path):
    b = load_bars(es_1m_path)
    lo, hi = np.searchsorted(b.ts, [np.datetime64("2025-07-01", "ns").astype(np.int64),
                                    np.datetime64("2025-08-31", "ns").astype(np.int64)])
    data = save_bars(b.slice(int(lo), int(hi)), tmp_path / "summer.parquet")
    base = ui_settings()
    s = dataclasses.replace(base, paths=dataclasses.replace(base.paths, data_dir=str(tmp_path),
                                                            reports_dir=str(tmp_path / "rep")),
                            optimize=dataclasses.replace(OptimizeConfig(), holdout_months=1, min_trades=0))
    rt = make_session(s)
    app = MesConsoleApp(rt, s)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("o")
        screen = app.screen
        assert isinstance(screen, OptimizeScreen)
        screen.query_one("#data").value = str(data)
        screen.query_one("#trials").value = "500"
        screen.query_one("#sampler").value = "random"
        screen.query_one("#data").focus()
        await pilot.press("enter")
        for _ in range(300):  # until a few trials have finished
            await pilot.pause(0.1)
            if screen.query_one("#table").row_count >= 3:
                break
        assert screen.query_one("#table").row_count >= 3
        assert any(w.is_running for w in screen.workers if w.group == "optimize")
        await pilot.press("ctrl+k")  # the halt key works while the study runs
        assert rt.snapshot().header.trading_state == "HALTED"
        await pilot.press("ctrl+s")
        await screen.workers.wait_for_complete()
        await pilot.pause()
        r = screen.result
        assert r is not None and r["trials"]["COMPLETE"] < 500
        assert Path(r["config"]).is_file() and Path(r["config"]).parent == tmp_path / "rep"
        assert (tmp_path / "optuna.db").is_file()  # default storage under the data dir
        status = str(screen.query_one("#status").render())
        assert status.startswith(f"stopped after {r['trials']['COMPLETE']} trials:"), status  # not "done:"
        await asyncio.sleep(0)
