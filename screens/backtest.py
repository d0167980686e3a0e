"""Backtest launcher (R-UI-3): choose data, date range, model and fill model; run off the UI
thread with progress; show the metrics table, the equity curve and the trade list.

The run goes through ``RuntimeCommands.run_backtest`` in a thread worker
(``exit_on_error=False``): progress arrives as coalesced messages, errors as a notification,
and the session keeps running meanwhile."""

from __future__ import annotations

from datetime import date

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Footer, Input, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState

from mes_console.widgets.contain import ContainedScreen, SafePlot
from mes_console.widgets.panes import HeaderBar
from engine.runtime.snapshot import BacktestParams, BacktestResult, Progress, RuntimeCommands
from mes_console.widgets.render import ny_time

FILL_MODELS = ("conservative", "optimistic", "realistic")

FORM_CSS = """
.form { height: auto; }
.form Label { width: auto; padding: 0 1 0 0; }
.form Input { border: none; height: 1; width: 1fr; margin: 0 1 0 0; background: $boost; }
.form Input:focus { border: none; background: $accent 30%; text-style: bold; }
#status { height: 1; }
ProgressBar { height: 1; }
"""


class FormInput(Input):
    """A form field where ``?`` opens the help instead of being typed (no field of these forms
    takes a "?"; Textual drops the App's printable-key bindings while a text field has focus)."""

    async def _on_key(self, event) -> None:
        if event.key == "question_mark":
            event.stop()
            event.prevent_default()
            await self.app.run_action("help")
            return
        await super()._on_key(event)


class LongWorkProgress(Message):
    """Progress of a backtest or training run; a newer one replaces a queued older one."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LongWorkProgress)


def _number(text: str, field: str, kind: type):
    """A form number, or None when empty (= the session's setting); ValueError names the field."""
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{field}: {text!r} is not a number") from None


def parse_day(text: str, field: str) -> date | None:
    """``YYYY-MM-DD`` → date; empty → None. Raises ValueError naming the field."""
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field}: {text!r} is not a date (YYYY-MM-DD)") from None


class BacktestScreen(ContainedScreen):
    """Enter in any field runs the backtest; escape goes back to the session."""

    DEFAULT_CSS = FORM_CSS + """
    BacktestScreen #results { height: 1fr; }
    BacktestScreen #metrics { width: 30; height: 100%; }
    BacktestScreen #equity { width: 1fr; height: 100%; }
    BacktestScreen #trades { height: 1fr; }
    BacktestScreen #limits { height: auto; max-height: 3; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    BINDINGS = [Binding("escape", "back", "Back"), Binding("ctrl+g", "run", "Run")]

    def __init__(self, runtime: RuntimeCommands, default_fill: str = "conservative") -> None:
        super().__init__()
        self.runtime = runtime
        self.default_fill = default_fill
        self.result: BacktestResult | None = None

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Static("[b]Backtest[/b]  enter runs, esc back", id="title")
        with Horizontal(classes="form"):
            yield Label("Data")
            yield FormInput("demo", id="data", tooltip="a bars parquet file, or demo (generated)")
            yield Label("Model")
            yield FormInput("baseline", id="model")
        with Horizontal(classes="form"):
            yield Label("From")
            yield FormInput("2025-03-03", id="start")
            yield Label("To")
            yield FormInput("2025-03-14", id="end")
            yield Label("Fill")
            yield FormInput(self.default_fill, id="fill", suggester=SuggestFromList(FILL_MODELS))
        with Horizontal(classes="form"):
            yield Label("Max stop t")
            yield FormInput("", id="stop", placeholder="cfg", tooltip="[stops] max_stop_ticks; empty = settings")
            yield Label("R:R")
            yield FormInput("", id="rr", placeholder="cfg", tooltip="[stops] reward_risk 1-3; empty = settings")
            yield Label("Conf")
            yield FormInput("", id="conf", placeholder="cfg", tooltip="[signal] min_confidence; empty = settings")
            yield Label("Research")
            yield FormInput("off", id="research", suggester=SuggestFromList(("on", "off")),
                            tooltip="on: record account-level halts and resume at the next RTH open")
        yield ProgressBar(total=1, show_eta=False, id="progress")
        yield Static("ready: enter runs", id="status")
        yield Static("", id="limits")
        with Horizontal(id="results"):
            yield DataTable(id="metrics", show_cursor=False)
            yield SafePlot(id="equity")
        yield DataTable(id="trades", cursor_type="row")
        yield Footer()

    def on_screen_resume(self) -> None:
        self.query_one(HeaderBar).snapshot = getattr(self.app, "snapshot", None)

    def on_mount(self) -> None:
        self.query_one("#metrics", DataTable).add_columns("metric", "value")
        self.query_one("#trades", DataTable).add_columns("entry NY", "side", "qty", "entry", "exit", "P&L", "why")
        plt = self.query_one("#equity", SafePlot).plt
        plt.title("equity $ by exit date")
        self.query_one("#progress", ProgressBar).display = False  # no animated "--%" before a run
        self.query_one("#limits", Static).display = False
        self.query_one("#data", Input).focus()

    def params(self) -> BacktestParams:
        """The form as :class:`BacktestParams`; raises ValueError naming a bad field."""
        fill = self.query_one("#fill", Input).value.strip()
        if fill not in FILL_MODELS:
            raise ValueError(f"fill model: {fill!r} is not one of {', '.join(FILL_MODELS)}")
        research = self.query_one("#research", Input).value.strip().lower() or "off"
        if research not in ("on", "off"):
            raise ValueError(f"research: {research!r} is not on or off")
        return BacktestParams(
            data=self.query_one("#data", Input).value.strip() or "demo",
            start=parse_day(self.query_one("#start", Input).value, "from"),
            end=parse_day(self.query_one("#end", Input).value, "to"),
            model=self.query_one("#model", Input).value.strip() or "baseline",
            fill_model=fill,
            max_stop_ticks=_number(self.query_one("#stop", Input).value, "max stop ticks", int),
            reward_risk=_number(self.query_one("#rr", Input).value, "R:R", float),
            min_confidence=_number(self.query_one("#conf", Input).value, "confidence", float),
            research=research == "on",
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()

    def action_run(self) -> None:
        if any(w.is_running for w in self.workers if w.group == "backtest"):
            self.notify("a backtest is already running", severity="warning")
            return
        try:
            params = self.params()
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        self.query_one("#status", Static).update(f"running {params.data} {params.start}..{params.end}")
        bar = self.query_one("#progress", ProgressBar)
        bar.display = True
        bar.update(total=1, progress=0)
        self._run(params)

    @work(thread=True, exit_on_error=False, group="backtest", exclusive=False)
    def _run(self, params: BacktestParams) -> BacktestResult:
        return self.runtime.run_backtest(params, lambda p: self.post_message(LongWorkProgress(p)))

    def on_long_work_progress(self, message: LongWorkProgress) -> None:
        p = message.progress
        self.query_one("#progress", ProgressBar).update(total=p.total, progress=p.done)
        self.query_one("#status", Static).update(f"{p.done}/{p.total} {p.message}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "backtest":
            return
        if event.state == WorkerState.SUCCESS:
            self.show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            err = event.worker.error
            self.query_one("#status", Static).update(f"FAILED: {err}")
            self.notify(f"backtest failed: {err}", severity="error", timeout=8)

    def show(self, result: BacktestResult) -> None:
        self.result = result
        m = self.query_one("#metrics", DataTable)
        m.clear()
        for name, value in result.metrics:
            m.add_row(name, value)
        self.show_limits(result.limits)
        plot = self.query_one("#equity", SafePlot)
        plt = plot.plt
        plt.clear_data()
        if result.trades:
            # x = days since the first entry (engine time), so a quiet week looks quiet
            t0 = result.trades[0].entry_ns
            xs = [0.0] + [(tr.exit_ns - t0) / 86_400e9 for tr in result.trades]
            plt.plot(xs, list(result.equity), marker="braille")
            plt.xlabel(f"days from {ny_time(t0, '%Y-%m-%d')}")
        plot.refresh()
        t = self.query_one("#trades", DataTable)
        t.clear()
        for tr in result.trades:
            t.add_row(ny_time(tr.entry_ns, "%Y-%m-%d %H:%M"), tr.side, tr.size, f"{tr.entry_price:.2f}",
                      f"{tr.exit_price:.2f}", f"{tr.pnl_usd:+.2f}", tr.reason)
        path = result.report_path
        if len(path) > 52:  # one status line at 80 columns: keep the file name end
            path = "…" + path[-51:]
        where = f" saved {path}" if path else " (report not saved)"
        halted = next((x for x in result.limits if x.startswith("halted ")), "")
        if halted and "no trades after" in halted:  # the run stopped early: say so where it is seen
            where = f" · {halted.split(': ', 1)[0]}, no trades after"
        self.query_one("#status", Static).update(f"done: {len(result.trades)} trades{where}")

    def show_limits(self, lines: tuple[str, ...]) -> None:
        """What limited the run, at most three lines of the screen's width (each ends in an
        ellipsis when cut; the whole text is in the report): the account-level halts (the first,
        and how many), the blocks and pauses, the refused entries."""
        from rich.text import Text

        halts = [x for x in lines if x.startswith("halted ")]
        keep = []
        if halts:
            more = f" (+{len(halts) - 1} more)" if len(halts) > 1 else ""
            keep.append(halts[0] + more)
        keep += [x for x in lines if x.startswith(("research mode", "no account-level", "daily loss blocks",
                                                   "entries refused"))]
        text = Text("\n".join(keep[:3]), no_wrap=True, overflow="ellipsis")
        widget = self.query_one("#limits", Static)
        widget.update(text)
        widget.display = bool(keep)

    def action_back(self) -> None:
        self.app.pop_screen()
