"""Optimize screen (R-BT-6 in the console): start an Optuna study off the UI thread, show the
trials as they finish (best so far, a plot of the objective over trials) and stop it.

The study is :func:`engine.research.optimize.optimize_study` with one worker in a thread worker
(``exit_on_error=False``); ``s`` / the Stop button sets a ``threading.Event`` that ends the study
after the running trial (the held-out report and the config file are still written). The app's
halt key is a priority binding and works on this screen too. The Strategy field: ``baseline`` or a
strategy whose declared parameters are searched with the risk ones (the strategies found are its
suggestions and listed in its tooltip; a bad file is a one-line notification, nothing starts).
"""

from __future__ import annotations

import math

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, ProgressBar, Static

from engine.runtime.snapshot import money
from mes_console.widgets.contain import SafePlot
from screens.jobs import FORM_CSS, JobScreen, field

SAMPLERS = ("tpe", "random", "grid")


class StudyProgress(Message):
    """Progress of the study (posted from the worker thread)."""

    def __init__(self, event: dict) -> None:
        super().__init__()
        self.event = event


class OptimizeScreen(JobScreen):
    DEFAULT_CSS = FORM_CSS + """
    OptimizeScreen #plot { height: 1fr; }
    OptimizeScreen #table { height: 8; }
    OptimizeScreen #stop { min-width: 8; }
    """
    BINDINGS = [Binding("ctrl+s", "stop", "Stop")]
    GROUP = "optimize"
    HEADING = "[b]Optimize[/b]  enter runs, ctrl+s stops, esc back"
    BUSY = "a study is already running"
    STOPPING = "stopping after the running trial…"

    def __init__(self, settings, data: str = "") -> None:
        super().__init__()
        self.settings = settings
        self.default_data = data
        self.values: list[tuple[int, float]] = []
        self.result: dict | None = None
        from engine.strategy.console import found_specs

        self.strategies = tuple(s for s in dict.fromkeys(("baseline", *found_specs())) if s != "random")
        """The Strategy field's suggestions: the strategies found (``mes-console strategy list``)."""

    def form(self) -> list[list[Widget]]:
        oc = self.settings.optimize
        return [[*field("Data", self.default_data, id="data", placeholder="bars file (parquet/CSV/DBN)"),
                 *field("Sampler", oc.sampler, id="sampler", suggester=SuggestFromList(SAMPLERS))],
                [*field("Trials", str(oc.trials), id="trials"),
                 *field("Study", "", id="study", placeholder="optimize-<file>"),
                 *field("Strategy", "baseline", id="strategy", suggester=SuggestFromList(self.strategies),
                        tooltip="baseline, or a strategy whose declared parameters are searched with the risk "
                        "ones (path/file.py:Class, package.module:Class, an entry-point name). Found: "
                        + ", ".join(self.strategies)),
                 Button("Stop", id="stop", variant="error", disabled=True)]]

    def results(self) -> ComposeResult:
        yield SafePlot(id="plot")
        yield DataTable(id="table", show_cursor=False)

    def on_mount(self) -> None:
        self.query_one("#table", DataTable).add_columns("trial", "value", "best so far")
        self.query_one("#plot", SafePlot).plt.title("objective per trial")
        self.query_one("#data", Input).focus()

    def params(self) -> dict:
        data = self.query_one("#data", Input).value.strip()
        if not data:
            raise ValueError("data: give a bars file")
        sampler = self.query_one("#sampler", Input).value.strip()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: {sampler!r} is not one of {', '.join(SAMPLERS)}")
        tr = self.query_one("#trials", Input).value.strip()
        if not tr.isdigit() or int(tr) < 1:
            raise ValueError(f"trials: {tr!r}: a whole number ≥ 1")
        strategy = self.query_one("#strategy", Input).value.strip() or "baseline"
        loaded = None
        if strategy != "baseline":
            from engine.strategy.loader import load_strategy

            loaded = load_strategy(strategy)   # StrategyError (a ValueError): one line naming the file
        return {"data": data, "sampler": sampler, "trials": int(tr),
                "study": self.query_one("#study", Input).value.strip() or None, "strategy": loaded}

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            self.action_stop()

    def start(self, p: dict) -> None:
        self.values.clear()
        self.query_one("#table", DataTable).clear()
        self.query_one("#stop", Button).disabled = False
        self.query_one("#status", Static).update(f"starting a {p['sampler']} study on {p['data']}")
        self._run(p)

    @work(thread=True, exit_on_error=False, group="optimize")
    def _run(self, p: dict) -> dict:
        from engine.research.optimize import optimize_study

        return optimize_study(self.settings, p["data"], sampler=p["sampler"], trials=p["trials"], workers=1,
                              study=p["study"], stop_flag=self.stop_flag, strategy=p.get("strategy"),
                              on_start=lambda st: self.post_message(StudyProgress({"start": st})),
                              on_progress=lambda ev: self.post_message(StudyProgress(ev)))

    def on_study_progress(self, message: StudyProgress) -> None:
        ev = message.event
        status = self.query_one("#status", Static)
        if "start" in ev:
            st = ev["start"]
            self.query_one("#progress", ProgressBar).update(total=st["trials"], progress=0)
            v = st["windows"]["validation"]
            status.update(f"study {st['study']}: validation {v[0]}…{v[1]}, {st['validation_bars']:,} bars")
            return
        table = self.query_one("#table", DataTable)
        for number, value in ev["last"]:
            self.values.append((number, value))
            best = max(v for _, v in self.values)
            table.add_row(str(number), _fmt(value), _fmt(best))
        self.query_one("#progress", ProgressBar).update(total=ev["target"], progress=ev["complete"])
        if ev["best_value"] is not None:
            status.update(f"{ev['complete']}/{ev['target']} trials · best {_fmt(ev['best_value'])} {ev['best_params']}")
        self._plot()

    def _plot(self) -> None:
        plot = self.query_one("#plot", SafePlot)
        plt = plot.plt
        plt.clear_data()
        pts = [(n, v) for n, v in self.values if v > -1e8]  # trials with too few trades are left out
        if pts:
            plt.scatter([n for n, _ in pts], [v for _, v in pts], marker="dot", label="trial")
            best, run = [], -math.inf
            for _, v in pts:
                run = max(run, v)
                best.append(run)
            plt.plot([n for n, _ in pts], best, marker="braille", label="best so far")
        plot.refresh()

    def ended(self) -> None:
        self.query_one("#stop", Button).disabled = True

    def show(self, r: dict) -> None:
        self.result = r
        h = r["holdout"]["metrics"]
        n = int((r.get("trials") or {}).get("COMPLETE", 0))
        word = f"stopped after {n} trials" if self.stop_flag.is_set() else "done"
        self.query_one("#status", Static).update(
            f"{word}: best {r['best']['params']} · held out net {money(h['net_pnl'], sign=True)} over {h['trades']} trades · "
            f"DSR {r['dsr']['dsr']:.2f} · PBO {r['pbo']['pbo']:.2f} · config {r['config']}")


def _fmt(v: float) -> str:
    return "too few trades" if v <= -1e8 else f"{v:.4g}"
