"""Fault containment (issue 10): a failing pane render, plot render, screen handler, key action
or worker is caught where it happens, shown and logged; the App, the session and the kill switch
go on. On the real replay session."""

from __future__ import annotations


from mes_console.app import MesConsoleApp
from mes_console.widgets.panes import ModelPane
from screens.backtest import BacktestScreen
from screens.training import TrainingScreen
from tests.ui_support import audit_actions, make_session, ui_settings

SIZE = (80, 24)


class _Boom(Exception):
    pass


async def test_failing_pane_render_is_contained(monkeypatch):
    rt = make_session()

    def bad_draw(self, snap):
        raise _Boom("model pane exploded")

    monkeypatch.setattr(ModelPane, "draw", bad_draw)
    app = MesConsoleApp(rt, ui_settings())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert app.is_running
        assert "pane error: _Boom: model pane exploded" in str(app.query_one("#model").render())
        assert "B/A" in str(app.query_one("#quote").render())  # the other panes draw on
        assert any("model pane exploded" in r[3] for r in rt.ring.records)
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state == "HALTED"


async def test_failing_worker_is_reported_and_the_session_goes_on():
    rt = make_session()

    def bad_backtest(params, on_progress):
        raise _Boom("backtest worker exploded")

    rt.run_backtest = bad_backtest
    app = MesConsoleApp(rt, ui_settings())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "enter")
        screen = app.screen
        await screen.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert app.is_running and isinstance(app.screen, BacktestScreen)
        assert "FAILED" in str(screen.query_one("#status").render())
        assert any("backtest worker exploded" in r[3] for r in rt.ring.records)
        await pilot.press("ctrl+k")
        assert audit_actions(rt)[-1] == "halt"


async def test_failing_screen_handler_and_plot_render_are_contained(monkeypatch):
    rt = make_session()
    app = MesConsoleApp(rt, ui_settings())

    def bad_params(self):
        raise _Boom("training form exploded")

    monkeypatch.setattr(TrainingScreen, "params", bad_params)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t", "enter")  # Input.Submitted handler raises inside the screen
        await pilot.pause(0.2)
        assert app.is_running and isinstance(app.screen, TrainingScreen)
        plot = app.screen.query_one("#curves")
        plot.plt.plot([0.0], [float("nan")], label="x")  # plotext IndexError on an all-NaN series
        plot.refresh()
        await pilot.pause(0.2)
        assert app.is_running
        assert "plot error: IndexError" in str(plot.render())
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state == "HALTED"
        msgs = [r[3] for r in rt.ring.records]
        assert any("training form exploded" in m for m in msgs)


async def test_failing_key_action_is_contained():
    rt = make_session()

    def bad_pause():
        raise _Boom("pause exploded")

    rt.pause = bad_pause
    app = MesConsoleApp(rt, ui_settings())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await pilot.pause(0.2)
        assert app.is_running
        await pilot.press("ctrl+k")
        assert rt.snapshot().header.trading_state == "HALTED"


def test_training_progress_without_figures_never_reaches_the_plot():
    """The cause of the training-screen crash: progress events without figures (plan, loading,
    fold summaries) were plotted as NaN points. Now only epoch figures are curve points."""
    import math

    from engine.runtime.snapshot import Progress
    from screens.backtest import LongWorkProgress

    screen = TrainingScreen(make_session())
    updates: list[str] = []

    class _W:
        def update(self, *a, **k):
            updates.append(str(a[0]) if a else "")

    screen.query_one = lambda *a, **k: _W()  # type: ignore[method-assign]
    screen._plot = lambda: None  # type: ignore[method-assign]
    screen.on_long_work_progress(LongWorkProgress(Progress(0, 1, "loading bars")))
    screen.on_long_work_progress(LongWorkProgress(Progress(0, 3, "plan", folds=3)))
    screen.on_long_work_progress(LongWorkProgress(
        Progress(1, 2, "fold 0", (("train_loss", 1.1), ("val_loss", 1.0), ("val_acc", 0.4)), fold=0, folds=3)))
    assert len(screen.history) == 1 and all(math.isfinite(x) for x in screen.history[0])
    assert "fold 1/3 epoch 1/2" in updates[-1]


def test_training_process_errors_come_back_as_one_line():
    """Console training runs in its own process; its failure is raised here, not lost."""
    import pytest

    from engine.runtime.snapshot import TrainingParams
    from engine.runtime.work import TrainingFailed

    rt = make_session()
    seen = []
    with pytest.raises(TrainingFailed, match="nonexistent-bars.parquet"):
        rt.run_training(TrainingParams(data="/nonexistent-bars.parquet", epochs=1), seen.append)
    assert [p.message for p in seen] == ["loading bars"]
