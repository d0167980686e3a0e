"""Training screen (R-UI-4): choose architecture, data and walk-forward windows; live
loss/accuracy plot and fold progress; results and the checkpoint path.

Runs ``RuntimeCommands.run_training`` in a thread worker (``exit_on_error=False``)."""

from __future__ import annotations

import math

from textual import work
from textual.app import ComposeResult
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import DataTable, Input, ProgressBar, Static

from engine.runtime.snapshot import RuntimeCommands, TrainingParams, TrainingResult
from engine.runtime.work import ARCHS
from mes_console.widgets.contain import SafePlot
from screens.jobs import FORM_CSS, JobScreen, LongWorkProgress, field, parse_windows

__all__ = ["ARCHS", "TrainingScreen", "parse_windows"]


class TrainingScreen(JobScreen):
    DEFAULT_CSS = FORM_CSS + """
    TrainingScreen #curves { height: 1fr; }
    TrainingScreen #results { height: 7; }
    """
    GROUP = "training"
    HEADING = "[b]Training[/b]  enter runs, esc back"
    BUSY = "training is already running"

    def __init__(self, runtime: RuntimeCommands, arch: str = "mlp", epochs: int = 20) -> None:
        super().__init__()
        self.runtime = runtime
        self.default_arch = arch
        self.default_epochs = epochs
        self.history: list[tuple[int, float, float, float]] = []
        self.result: TrainingResult | None = None

    def form(self) -> list[list[Widget]]:
        return [[*field("Arch", self.default_arch, id="arch", suggester=SuggestFromList(ARCHS)),
                 *field("Data", "demo", id="data")],
                [*field("Walk-fwd", "6/1/1", id="wf"), *field("Epochs", str(self.default_epochs), id="epochs")]]

    def results(self) -> ComposeResult:
        yield SafePlot(id="curves")
        yield DataTable(id="results", show_cursor=False)

    def on_mount(self) -> None:
        self.query_one("#results", DataTable).add_columns("result", "value")
        self.query_one("#curves", SafePlot).plt.title("loss / val accuracy")
        self.query_one("#arch", Input).focus()

    def params(self) -> TrainingParams:
        arch = self.query_one("#arch", Input).value.strip()
        if arch not in ARCHS:
            raise ValueError(f"architecture: {arch!r} is not one of {', '.join(ARCHS)}")
        wf, tr, va, te = parse_windows(self.query_one("#wf", Input).value)
        ep = self.query_one("#epochs", Input).value.strip()
        if not ep.isdigit() or int(ep) < 1:
            raise ValueError(f"epochs: {ep!r}: a whole number ≥ 1")
        return TrainingParams(arch=arch, data=self.query_one("#data", Input).value.strip() or "demo",
                              walk_forward=wf, train_months=tr, val_months=va, test_months=te, epochs=int(ep))

    def start(self, params: TrainingParams) -> None:
        self.history.clear()
        self.query_one("#status", Static).update(f"training {params.arch} on {params.data}")
        self._run(params)

    @work(thread=True, exit_on_error=False, group="training")
    def _run(self, params: TrainingParams) -> TrainingResult:
        return self.runtime.run_training(params, lambda p: self.post_message(LongWorkProgress(p)))

    def on_long_work_progress(self, message: LongWorkProgress) -> None:
        p = message.progress
        f = dict(p.figures)
        self.query_one("#progress", ProgressBar).update(total=p.total, progress=p.done)
        if "val_loss" not in f:  # plan / loading / fold summary: a status line, no curve point
            self.query_one("#status", Static).update(p.message)
            return
        fold = f"fold {p.fold + 1}/{p.folds} " if p.folds else ""  # progress folds count from 0
        self.history.append((len(self.history) + 1, f.get("train_loss", float("nan")),
                             f["val_loss"], f.get("val_acc", float("nan"))))
        acc = f" acc {f['val_acc']:.3f}" if "val_acc" in f else ""
        self.query_one("#status", Static).update(
            f"{fold}epoch {p.done}/{p.total} val loss {f['val_loss']:.3f}{acc}")
        self._plot()

    def _plot(self) -> None:
        """Redraw the curves. Only finite points are handed to plotext, and a series with none
        is left out: plotext 5.3 raises IndexError while drawing the legend of a series whose
        points are all NaN (the crash of issue 10, item 1)."""
        plot = self.query_one("#curves", SafePlot)
        plt = plot.plt
        plt.clear_data()
        for col, label in ((1, "train loss"), (2, "val loss"), (3, "val acc")):
            pts = [(h[0], h[col]) for h in self.history if math.isfinite(h[col])]
            if pts:
                plt.plot([x for x, _ in pts], [y for _, y in pts], label=label, marker="braille")
        plt.xlabel("epoch (all folds)")
        plot.refresh()

    def show(self, result: TrainingResult) -> None:
        self.result = result
        if result.history:  # the complete curves (live progress messages are coalesced)
            self.history = [(i + 1, h[2], h[3], h[4]) for i, h in enumerate(result.history)]
        self._plot()
        t = self.query_one("#results", DataTable)
        t.clear()
        for k, v in result.metrics:
            if k != "checkpoint":
                t.add_row(k, v)
        t.add_row("checkpoint", result.checkpoint_path or "(not saved)")  # last row, once
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=bar.total or 1, progress=bar.total or 1)
        self.query_one("#status", Static).update("done: " + (result.checkpoint_path or "no checkpoint saved"))
