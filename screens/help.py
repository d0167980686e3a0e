"""Help: the keys in force (from ``settings.ui``) and what each does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from mes_console.widgets.contain import ContainedModal
from textual.widgets import Static

from screens.confirm import modal_css


class HelpScreen(ContainedModal[None]):
    DEFAULT_CSS = modal_css("HelpScreen", 72)
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        text = "\n".join(f"[b]{k:<14}[/b] {d}" for k, d in self.rows)
        with Vertical():
            yield Static("[b]Keys[/b] (configurable in config.toml \\[ui])\n")
            yield Static(text, markup=True)
            yield Static("\nThe kill switch works on every screen, also inside dialogs.\nesc closes.")

    def action_close(self) -> None:
        self.dismiss(None)
