"""Confirmation modals: a single-key y/n (flatten) and a type-to-confirm (reset a halt).

Escape always means "no". The App's priority bindings (the kill switch) still work while these
are open (a ModalScreen only cuts non-priority bindings)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ScreenResultType
from textual.widgets import Input, Static

from mes_console.widgets.contain import ContainedModal

def modal_css(name: str, width: int = 60) -> str:
    """CSS centring a modal's single Vertical box (DEFAULT_CSS is scoped to the class)."""
    return (f"{name} {{ align: center middle; }}\n"
            f"{name} > Vertical {{ width: {width}; height: auto; border: thick $warning; "
            "padding: 0 1; background: $surface; }\n")


class BoxModal(ContainedModal[ScreenResultType]):
    """A modal whose content is one centred box (:func:`modal_css`) of the widgets
    :meth:`box` yields."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield from self.box()

    def box(self) -> ComposeResult:
        raise NotImplementedError


class ConfirmScreen(BoxModal[bool]):
    """Question with single-key answers: ``y`` → True, ``n``/escape → False."""

    DEFAULT_CSS = modal_css("ConfirmScreen")
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel", show=False),
    ]

    def __init__(self, question: str, refresh=None) -> None:
        super().__init__()
        self.question = question
        self.refresh_text = refresh
        """Optional ``snapshot → question`` the App calls on every new snapshot, so the question
        never shows a position that has changed meanwhile."""

    def box(self) -> ComposeResult:
        yield Static(self.question, id="question")
        yield Static("[b]y[/b] yes    [b]n[/b] / [b]esc[/b] no")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class TypeToConfirmScreen(BoxModal[str | None]):
    """Asks the operator to type ``phrase``; dismisses with the typed text on Enter (the caller
    passes it to the runtime, which checks it) or None on escape."""

    DEFAULT_CSS = modal_css("TypeToConfirmScreen") + "TypeToConfirmScreen Input { width: 100%; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prompt: str, phrase: str) -> None:
        super().__init__()
        self.prompt = prompt
        self.phrase = phrase

    def box(self) -> ComposeResult:
        yield Static(self.prompt)
        yield Static(f"Type [b]{self.phrase}[/b] and press Enter (esc cancels):")
        # no placeholder: under NO_COLOR a dim "RESET" would look like text already typed
        yield Input(id="phrase")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
