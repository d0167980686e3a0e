"""What the console's long-work screens (backtest, training, optimize) share: the form's look
and fields, the parsers of its values, the progress message, and :class:`JobScreen`, the one
place that starts the work off the UI thread and reports its end.

A job screen's work runs in a Textual thread worker of group :attr:`JobScreen.GROUP`
(``exit_on_error=False``): the UI thread stays free, the App's priority bindings (the kill
switch) work meanwhile, and a failure is shown on the screen (status ``FAILED: …`` and a
notification) instead of ending the App."""

from __future__ import annotations

import threading
from datetime import date

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer, Input, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState

from engine.runtime.snapshot import Progress
from mes_console.widgets.contain import ContainedScreen
from mes_console.widgets.panes import HeaderBar

FORM_CSS = """
.form { height: auto; }
.form Label { width: auto; padding: 0 1 0 0; }
.form Input { border: none; height: 1; width: 1fr; margin: 0 1 0 0; background: $boost; }
.form Input:focus { border: none; background: $accent 30%; text-style: bold; }
#status { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
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


def field(label: str, value: str = "", **kw) -> list[Widget]:
    """A labelled form field: ``[Label(label), FormInput(value, **kw)]`` (``id``, ``placeholder``,
    ``tooltip``, ``suggester`` as :class:`textual.widgets.Input` takes them)."""
    return [Label(label), FormInput(value, **kw)]


def parse_number(text: str, field: str, kind: type):
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


def parse_windows(text: str) -> tuple[bool, int, int, int]:
    """``"6/1/1"`` → (True, train, validation, test months) of a walk-forward; ``"none"``/``"off"``
    /empty → (False, 6, 1, 1): off (one split of those months where the caller needs one).
    Raises ValueError with the expected form."""
    text = text.strip().lower()
    if text in ("none", "off", "no", ""):
        return False, 6, 1, 1
    parts = text.split("/")
    try:
        a, b, c = (int(x) for x in parts)
    except ValueError:
        raise ValueError(f"walk-forward: {text!r}: expected train/val/test months like 6/1/1, or off") from None
    if min(a, b, c) < 1:
        raise ValueError(f"walk-forward: {text!r}: every window must be ≥ 1 month")
    return True, a, b, c


class JobScreen(ContainedScreen):
    """A form that starts one piece of long work at a time (enter in a field or ctrl+g), shows
    its progress in ``#status`` and its result; escape goes back to the session.

    Subclasses set :attr:`GROUP` (the worker group, also the word of the failure notice) and
    :attr:`BUSY` (the warning when a run is already going), and implement :meth:`params` (the
    form → the work's parameters; ValueError naming a bad field), :meth:`start` (begin the
    worker, in group :attr:`GROUP`) and :meth:`show` (the worker's result). ``stop_flag`` is
    cleared at each start; work that can stop early watches it (:meth:`action_stop`)."""

    GROUP = "job"
    BUSY = "work is already running"
    STOPPING = "stopping…"
    HEADING = "[b]Job[/b]  enter runs, esc back"
    READY = "ready"
    BINDINGS = [Binding("escape", "back", "Back"), Binding("ctrl+g", "run", "Run")]

    def __init__(self) -> None:
        super().__init__()
        self.stop_flag = threading.Event()

    def compose(self) -> ComposeResult:
        """The session's header, :attr:`HEADING`, the form rows (:meth:`form`), the progress bar
        (``#progress``), the status line (``#status``), the results (:meth:`results`), the keys."""
        yield HeaderBar(id="header")
        yield Static(self.HEADING, id="title")
        for row in self.form():
            yield Horizontal(*row, classes="form")
        bar = ProgressBar(total=None, show_eta=False, id="progress")
        bar.display = False   # no animated "--%" before the first run (shown by action_run)
        yield bar
        yield Static(self.READY, id="status")
        yield from self.results()
        yield Footer()

    def form(self) -> list[list[Widget]]:
        """The form's rows, each a list of widgets (see :func:`field`)."""
        raise NotImplementedError

    def results(self) -> ComposeResult:
        """The widgets below the status line."""
        raise NotImplementedError

    def on_screen_resume(self) -> None:
        self.query_one(HeaderBar).snapshot = getattr(self.app, "snapshot", None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()

    def running(self) -> bool:
        return any(w.is_running for w in self.workers if w.group == self.GROUP)

    def action_run(self) -> None:
        if self.running():
            self.notify(self.BUSY, severity="warning")
            return
        try:
            params = self.params()
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        self.stop_flag.clear()
        self.query_one("#progress", ProgressBar).display = True
        self.start(params)

    def on_unmount(self) -> None:
        """The App is ending: stop the work (a walk-forward's process is killed at once; a study
        ends after its running trial) so that nothing runs on unseen."""
        self.stop_flag.set()

    def action_stop(self) -> None:
        """Ask the running work to stop (it ends at its next check of ``stop_flag``)."""
        if self.running():
            self.stop_flag.set()
            self.query_one("#status", Static).update(self.STOPPING)

    def params(self):
        raise NotImplementedError

    def start(self, params) -> None:
        raise NotImplementedError

    def show(self, result) -> None:
        raise NotImplementedError

    def ended(self) -> None:
        """Called when the worker ends in any state, before :meth:`show` or the failure."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != self.GROUP:
            return
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.ended()
        if event.state == WorkerState.SUCCESS:
            self.show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            err = event.worker.error
            self.query_one("#status", Static).update(f"FAILED: {err}")
            self.notify(f"{self.GROUP} failed: {err}", severity="error", timeout=8)

    def action_back(self) -> None:
        self.app.pop_screen()
