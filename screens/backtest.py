"""Backtest launcher (R-UI-3, R-BT-4): choose data, date range, model, fill model and the
strategy's parameters; run off the UI thread with progress; show the metrics table, the equity
curve and the trade list.

The Model field also takes a strategy (``path/file.py:Class``, ``package.module:Class``, an
entry-point name; the strategies found are its suggestions and listed in its tooltip).

With the walk-forward switch on (``Walk-fwd`` = train/val/test months, e.g. ``6/1/1``; ``off`` = a
plain backtest) the run is ``backtest --walk-forward``: per fold the fold's model (``[training]
arch``, or the Model field when it names an architecture) is trained and its out-of-sample test
window backtested (:meth:`RuntimeCommands.run_walk_forward`, a separate process); progress per
fold; ctrl+s stops it. The screen then shows a row per fold (test window, trades, net $, Sharpe),
the R-BT-4 go-live table with each criterion passed or failed, and the stitched out-of-sample
equity; the report files of ``backtest --walk-forward --out DIR`` (``walk_forward.json``,
``trades.csv``, ``equity.csv``) are written to a directory under the reports dir (platformdirs
data dir unless ``[paths] reports_dir``), named in the status line and in full below the tables.

The run goes through ``RuntimeCommands`` in a thread worker (``exit_on_error=False``, see
:class:`screens.jobs.JobScreen`): progress arrives as coalesced messages, errors as a
notification, and the session keeps running meanwhile."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import DataTable, Input, ProgressBar, Static

from engine.runtime.snapshot import BacktestParams, BacktestResult, RuntimeCommands, WalkForwardRun
from engine.runtime.work import ARCHS, WorkStopped
from mes_console.widgets.contain import SafePlot
from mes_console.widgets.render import ny_time
from screens.jobs import (
    FORM_CSS, FormInput, JobScreen, LongWorkProgress, field, parse_day, parse_number, parse_windows,
)

__all__ = ["BacktestScreen", "FILL_MODELS", "FORM_CSS", "FormInput", "LongWorkProgress", "parse_day"]

FILL_MODELS = ("conservative", "optimistic", "realistic")


class BacktestScreen(JobScreen):
    """Enter in any field runs the backtest; escape goes back to the session; ctrl+s stops a
    walk-forward."""

    DEFAULT_CSS = FORM_CSS + """
    BacktestScreen #results { height: 2fr; min-height: 9; }
    BacktestScreen.walk-forward #results { height: 1fr; min-height: 6; }
    BacktestScreen #metrics { width: 30; height: 100%; }
    BacktestScreen #equity { width: 1fr; height: 100%; }
    BacktestScreen #trades { height: 1fr; min-height: 3; }
    BacktestScreen #wfbox { height: 1fr; display: none; }
    BacktestScreen #folds { height: auto; }
    BacktestScreen #start, BacktestScreen #end { width: 15; }
    BacktestScreen #fill { width: 17; }
    BacktestScreen #limits { height: auto; max-height: 3; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    BINDINGS = [Binding("ctrl+s", "stop", "Stop")]
    GROUP = "backtest"
    HEADING = "[b]Backtest[/b]  enter runs, ctrl+s stops, esc back"
    READY = "ready: enter runs"
    BUSY = "a backtest is already running"
    STOPPING = "stopping the walk-forward…"

    def __init__(self, runtime: RuntimeCommands, default_fill: str = "conservative", windows: str = "6/1/1") -> None:
        super().__init__()
        self.runtime = runtime
        self.default_fill = default_fill
        self.windows = windows
        """The walk-fwd field's suggestion: ``[training]`` train/val/test months."""
        self.result: BacktestResult | None = None
        self.stoppable = False
        self.walk_forward: WalkForwardRun | None = None
        """The last walk-forward's folds and go-live table (None after a plain backtest)."""
        from engine.strategy.console import found_specs

        self.strategies = tuple(dict.fromkeys(("baseline", *found_specs())))
        """The Model field's suggestions: the strategies found (``mes-console strategy list``)."""

    def form(self) -> list[list[Widget]]:
        return [
            [*field("Data", "demo", id="data", tooltip="a bars parquet file, or demo (generated)"),
             *field("Model", "baseline", id="model", suggester=SuggestFromList(self.strategies),
                    tooltip="a checkpoint, baseline, or a strategy (path/file.py:Class, package.module:Class, an "
                    "entry-point name); walk-forward: an architecture (mlp, lstm, hybrid, transformer), baseline = "
                    "[training] arch, or a strategy (its declared parameters re-optimized per fold). Found: "
                    + ", ".join(self.strategies)),
             *field("Walk-fwd", "off", id="wf", suggester=SuggestFromList(("off", self.windows)),
                    tooltip="off, or train/val/test months (e.g. 6/1/1): one model per fold, "
                    "backtested on its out-of-sample window, and the go-live check")],
            [*field("From", "2025-03-03", id="start"), *field("To", "2025-03-14", id="end"),
             *field("Fill", self.default_fill, id="fill", suggester=SuggestFromList(FILL_MODELS)),
             *field("Epochs", "", id="epochs", placeholder="cfg",
                    tooltip="walk-forward: maximum epochs per fold model; empty = [training] epochs")],
            [*field("Max stop t", "", id="stop", placeholder="cfg", tooltip="[stops] max_stop_ticks; empty = settings"),
             *field("R:R", "", id="rr", placeholder="cfg", tooltip="[stops] reward_risk 1-3; empty = settings"),
             *field("Conf", "", id="conf", placeholder="cfg", tooltip="[signal] min_confidence; empty = settings"),
             *field("Research", "off", id="research", suggester=SuggestFromList(("on", "off")),
                    tooltip="on: record account-level halts and resume at the next RTH open")],
        ]

    def results(self) -> ComposeResult:
        yield Static("", id="limits")
        with Horizontal(id="results"):
            yield DataTable(id="metrics", show_cursor=False)
            yield SafePlot(id="equity")
        with VerticalScroll(id="wfbox"):
            yield Static("", id="folds")
        yield DataTable(id="trades", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#metrics", DataTable).add_columns("metric", "value")
        self.query_one("#trades", DataTable).add_columns("entry NY", "side", "qty", "entry", "exit", "P&L", "why")
        plt = self.query_one("#equity", SafePlot).plt
        plt.title("equity $ by exit date")
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
        wf, tr, va, te = parse_windows(self.query_one("#wf", Input).value)
        model = self.query_one("#model", Input).value.strip() or "baseline"
        from engine.strategy.console import is_strategy_spec

        if wf and model not in ARCHS + ("baseline",) and not is_strategy_spec(model):
            raise ValueError(f"model: {model!r}: a walk-forward trains its own model per fold; give an "
                             f"architecture ({', '.join(ARCHS)}), baseline for [training] arch, or a strategy "
                             "(file.py:Class) whose parameters it re-optimizes per fold")
        epochs = parse_number(self.query_one("#epochs", Input).value, "epochs", int)
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs: {epochs}: a whole number ≥ 1")
        return BacktestParams(
            data=self.query_one("#data", Input).value.strip() or "demo",
            start=parse_day(self.query_one("#start", Input).value, "from"),
            end=parse_day(self.query_one("#end", Input).value, "to"),
            model=model,
            fill_model=fill,
            max_stop_ticks=parse_number(self.query_one("#stop", Input).value, "max stop ticks", int),
            reward_risk=parse_number(self.query_one("#rr", Input).value, "R:R", float),
            min_confidence=parse_number(self.query_one("#conf", Input).value, "confidence", float),
            research=research == "on",
            walk_forward=(tr, va, te) if wf else None,
            epochs=epochs,
        )

    def start(self, params: BacktestParams) -> None:
        kind = f"walk-forward {'/'.join(map(str, params.walk_forward))} " if params.walk_forward else ""
        self.query_one("#status", Static).update(f"running {kind}{params.data} {params.start}..{params.end}")
        self.query_one("#progress", ProgressBar).update(total=1, progress=0)
        self.stoppable = params.walk_forward is not None
        if params.walk_forward:
            self._run_walk_forward(params)
        else:
            self._run(params)

    def action_stop(self) -> None:
        if self.running() and not self.stoppable:
            self.notify("a plain backtest cannot be stopped; it ends in seconds", severity="warning")
            return
        super().action_stop()

    @work(thread=True, exit_on_error=False, group="backtest", exclusive=False)
    def _run(self, params: BacktestParams) -> BacktestResult:
        return self.runtime.run_backtest(params, lambda p: self.post_message(LongWorkProgress(p)))

    @work(thread=True, exit_on_error=False, group="backtest", exclusive=False)
    def _run_walk_forward(self, params: BacktestParams) -> WalkForwardRun | None:
        """The walk-forward in its own process (this thread only relays); None when stopped."""
        try:
            return self.runtime.run_walk_forward(params, lambda p: self.post_message(LongWorkProgress(p)),
                                                 self.stop_flag)
        except WorkStopped:
            return None

    def on_long_work_progress(self, message: LongWorkProgress) -> None:
        p = message.progress
        self.query_one("#progress", ProgressBar).update(total=p.total, progress=p.done)
        self.query_one("#status", Static).update(f"{p.done}/{p.total} {p.message}")

    def show(self, result: BacktestResult | WalkForwardRun | None) -> None:
        if result is None:
            self.query_one("#status", Static).update("stopped: the walk-forward was ended before its last fold")
            return
        wf = result if isinstance(result, WalkForwardRun) else None
        result = wf.backtest if wf is not None else result
        assert isinstance(result, BacktestResult)
        self.result, self.walk_forward = result, wf
        m = self.query_one("#metrics", DataTable)
        m.clear()
        for name, value in result.metrics:
            m.add_row(name, value)
        self.show_limits(result.limits)
        plot = self.query_one("#equity", SafePlot)
        plt = plot.plt
        plt.clear_data()
        plt.title(f"out-of-sample equity $, {len(wf.folds)} folds stitched" if wf else "equity $ by exit date")
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
        t.display = wf is None
        self.query_one("#wfbox").display = wf is not None
        self.set_class(wf is not None, "walk-forward")  # the fold and go-live tables get half
        if wf is not None:
            self.query_one("#folds", Static).update(walk_forward_tables(wf))
            failed = sum(not c.passed for c in wf.go_live)
            verdict = "PASS" if wf.go_live_pass else f"NO ({failed}/{len(wf.go_live)} failed)"
            head = f"done: {len(wf.folds)} folds, {len(result.trades)} trades · go live: {verdict} · "
            path = result.report_path
            room = max((self.size.width or 80) - 1 - len(head) - len("saved "), 12)
            if len(path) > room:  # one status line: keep the report directory's name (in full below)
                name = path.rsplit("/", 1)[-1]
                path = "…/" + name if len(name) + 2 <= room else "…" + path[-(room - 1):]
            self.query_one("#status", Static).update(head + (f"saved {path}" if path else "report not saved"))
            if result.report_path:  # the whole path once, wrapped (the status line keeps its end)
                self.notify(f"walk-forward report saved in {result.report_path}", timeout=10)
            return
        # one status line at 80 columns: the account verdict first (it is what a Combine trader
        # looks for), then where the report went, cut at its start (the file name end stays)
        head = f"done: {len(result.trades)} trades{account_status(result.limits)}"
        path = result.report_path
        room = 79 - len(head) - len(" · saved ")
        if len(path) > room:
            path = "…" + path[-(room - 1):] if room >= 16 else ""   # too little room: the notification has it
        where = (f" · saved {path}" if path else " · report saved") if result.report_path else " · report not saved"
        if len(head) + len(where) > 79 and result.report_path and not path:
            where = " · saved" if len(head) + 8 <= 79 else ""   # the notification names it
        halted = next((x for x in result.limits if x.startswith("halted ")), "")
        if halted and "no trades after" in halted:  # the run stopped early: say so where it is seen
            where = f" · {halted.split(': ', 1)[0]}, no trades after"
        self.query_one("#status", Static).update(head + where)
        if result.report_path and not path:  # no room for it in the status line: the whole path once
            self.notify(f"backtest report saved in {result.report_path}", timeout=10)

    def show_limits(self, lines: tuple[str, ...]) -> None:
        """What limited the run, at most three lines of the screen's width (each ends in an
        ellipsis when cut; the whole text is in the report): the account-level halts (the first,
        and how many), a stalled account (``STALLED: …``: it stopped trading), the blocks and
        pauses, the refused entries."""
        from rich.text import Text

        halts = [x for x in lines if x.startswith("halted ")]
        keep = []
        if halts:
            more = f" (+{len(halts) - 1} more)" if len(halts) > 1 else ""
            keep.append(halts[0] + more)
        keep += [x for x in lines if x.startswith("STALLED")]
        keep += [x for x in lines if x.startswith(("research mode", "no account-level", "daily loss blocks",
                                                   "lockouts", "entries refused"))]
        text = Text("\n".join(keep[:3]), no_wrap=True, overflow="ellipsis")
        widget = self.query_one("#limits", Static)
        widget.update(text)
        widget.display = bool(keep)


def account_status(lines: tuple[str, ...]) -> str:
    """The account verdict and pass probability for the status line (issue 23), from the run's
    limit lines (:func:`engine.backtest.report.verdict_text` first): `` · FAILED on 2024-12-19 by
    MLL · P(pass) 3.1%``; "" without an account profile."""
    out = ""
    v = next((x for x in lines if x.startswith("account ")), "")
    if v:
        head = v.split(": ", 2)
        out += " · " + (head[1].split(" (", 1)[0] if len(head) > 1 else v)
        if head[1:2] == ["OPEN"]:
            if any(x.startswith("STALLED") for x in lines):
                out += ", STALLED"
            out += " (account " + head[0].split(" ", 1)[-1] + ")"
        out = out.split(", balance")[0]
    p = next((x for x in lines if x.startswith("P(pass)")), "")
    if p:
        out += " · " + p.split(",", 1)[0]
    return out


def walk_forward_tables(wf: WalkForwardRun):
    """The folds (test window, trades, net $ after costs, Sharpe, out-of-sample accuracy), the
    stitched total and the R-BT-4 go-live table with each criterion passed or failed, as rich
    renderables that wrap to the screen's width (80 columns included)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    folds = Table(title="walk-forward folds (out-of-sample)", box=None, padding=(0, 1), title_justify="left",
                  title_style="bold")
    for col in ("fold", "test window (UTC)", "trades", "net $", "Sharpe", "acc"):
        folds.add_column(col, justify="left" if col.startswith("test") else "right", no_wrap=True)
    for f in wf.folds:
        folds.add_row(str(f.fold), fold_window(f.start_ns, f.end_ns), str(f.trades), f"{f.net_pnl:+,.2f}",
                      f"{f.sharpe:.2f}", f"{100 * f.accuracy:.1f}%")
    m = dict(wf.backtest.metrics)
    if wf.folds:
        folds.add_row("all", fold_window(wf.folds[0].start_ns, wf.folds[-1].end_ns), m.get("trades", "0"),
                      m.get("net_pnl", "0.00"), m.get("sharpe", "0.00"),
                      f"{100 * float(m['oos_accuracy']):.1f}%" if "oos_accuracy" in m else "", style="bold")
    gate = Table(title="go-live check (R-BT-4)", box=None, padding=(0, 1), title_justify="left",
                 title_style="bold")
    gate.add_column("criterion", no_wrap=True)
    gate.add_column("value", ratio=1)
    gate.add_column("threshold")
    gate.add_column("result", no_wrap=True)
    for c in wf.go_live:
        gate.add_row(c.criterion, c.value, c.threshold,
                     Text("pass", style="bold green") if c.passed else Text("FAIL", style="bold red"))
    verdict = Text("go live: PASS" if wf.go_live_pass else "go live: NO, at least one criterion failed",
                   style="bold")
    parts = [folds, Text(""), gate, verdict]
    if wf.note:
        parts.append(Text(wf.note, style="dim"))
    if wf.backtest.report_path:
        parts.append(Text(f"report: {wf.backtest.report_path} (walk_forward.json, trades.csv, equity.csv)",
                          style="dim"))
    return Group(*parts)


def fold_window(start_ns: int, end_ns: int) -> str:
    """A test window ``[start, end)`` of bar open times as ``2025-09-19 21:59→09-26 21:59`` (UTC;
    the end's year only when it differs)."""
    import pandas as pd

    a, b = pd.Timestamp(int(start_ns), tz="UTC"), pd.Timestamp(int(end_ns), tz="UTC")
    return f"{a:%Y-%m-%d %H:%M}→{b:%m-%d %H:%M}" if a.year == b.year else f"{a:%Y-%m-%d %H:%M}→{b:%Y-%m-%d %H:%M}"
