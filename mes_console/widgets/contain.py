"""Fault containment for the console (issue 10, architecture §7).

Textual exits the whole App on any unhandled exception in a handler, a render, a timer or a
worker. Here that would take the operator's view of a live position with it, so every failure
below the App is caught where it happens, shown there and logged, and the session (its own
engine thread), the kernel and the kill switch go on:

- a pane whose ``draw`` raises shows ``pane error: <Type>: <message>`` in place of its content
  (:class:`engine`-side state is untouched) and retries at the next snapshot;
- a widget whose ``render`` raises (:class:`SafePlot` around textual-plotext) shows the error
  text instead of the plot;
- a screen whose message handler raises (:class:`ContainedScreen`) keeps running; the error is
  notified and logged;
- an action bound to a key that raises is notified and logged (``MesConsoleApp.run_action``);
- a worker that fails (``exit_on_error=False`` everywhere) is reported by the screen that owns it
  and logged once by the App.

Every contained error goes to the ``mes.console`` logger at ERROR with its traceback (the JSON
log of a headless run; the log pane shows the one-line message).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.message import Message
from textual.screen import ModalScreen, Screen, ScreenResultType
from textual_plotext import PlotextPlot

from engine.logs import get_logger

log = get_logger("console")


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line (the message cut at 120 characters)."""
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg[:120]}" if msg else type(exc).__name__


def report(node: Any, where: str, exc: BaseException) -> None:
    """Log ``exc`` with its traceback and notify the operator (if ``node`` is attached to an
    App). Never raises."""
    text = f"{where} failed: {describe(exc)}"
    try:
        log.error("%s (contained; the session goes on)", text, exc_info=exc)
    except Exception:  # pragma: no cover - logging must never raise here
        pass
    try:
        node.app.notify(f"{text}. The session goes on.", severity="error", timeout=8)
    except Exception:
        pass


def log_worker_failure(event: Any) -> None:
    """Log a failed worker (a ``Worker.StateChanged`` with state ERROR) with its traceback.
    Textual does not bubble this message, so each contained screen and the App call this."""
    from textual.worker import WorkerState

    if event.state == WorkerState.ERROR:
        err = event.worker.error
        log.error("worker %s failed: %s", event.worker.name or event.worker.group,
                  describe(err) if err else "?", exc_info=err)


class _Contained:
    """A screen whose message handlers cannot end the App: an exception in any ``on_*``
    handler of this screen is reported (:func:`report`) and the screen keeps processing
    messages. (Overrides Textual's ``_on_message``, the one place that invokes a node's
    handlers; ``tests/test_ui_isolation.py`` fails if that changes.)"""

    async def _on_message(self, message: Message) -> None:
        try:
            await super()._on_message(message)
        except Exception as exc:
            report(self, f"{type(self).__name__} ({message.handler_name})", exc)

    def on_worker_state_changed(self, event) -> None:
        log_worker_failure(event)


class ContainedScreen(_Contained, Screen[ScreenResultType]):
    """A full screen with contained handlers (see :class:`_Contained`)."""


class ContainedModal(_Contained, ModalScreen[ScreenResultType]):
    """A modal dialog with contained handlers (see :class:`_Contained`)."""


class SafePlot(PlotextPlot):
    """A textual-plotext plot whose ``render`` cannot end the App: a plotext error is shown in
    the plot's place and logged once per distinct message."""

    _last_error = ""

    def render(self):
        try:
            return super().render()
        except Exception as exc:
            msg = describe(exc)
            if msg != self._last_error:
                self._last_error = msg
                report(self, f"plot #{self.id}", exc)
            return Text(f"plot error: {msg}", style="reverse")
