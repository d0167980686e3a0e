"""Quit dialog: what to do with the session (and an open position) before leaving."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from screens.confirm import BoxModal, modal_css


class QuitScreen(BoxModal[str | None]):
    """Dismisses with ``"flatten"``, ``"keep_protected"`` or None (cancel).

    With an open position the operator must choose: ``f`` flatten then quit, ``k`` keep the
    position with its OCO bracket working at the broker and quit. Flat: ``y`` quits."""

    DEFAULT_CSS = modal_css("QuitScreen", 64)
    BINDINGS = [
        Binding("f", "choose('flatten')", "Flatten & quit"),
        Binding("k", "choose('keep_protected')", "Keep protected & quit"),
        Binding("y", "flat_yes", "Quit", show=False),
        Binding("escape,n,c", "choose(None)", "Cancel"),
    ]

    def __init__(self, position_text: str, has_position: bool) -> None:
        super().__init__()
        self.position_text = position_text
        self.has_position = has_position

    def box(self) -> ComposeResult:
        yield Static("[b]Quit the session?[/b]")
        yield Static(self.position_text)
        if self.has_position:
            yield Static("[b]f[/b] flatten and quit\n[b]k[/b] keep position protected (OCO stays at "
                         "the broker) and quit\n[b]esc[/b] cancel")
        else:
            yield Static("[b]y[/b] quit    [b]esc[/b] cancel")

    def action_choose(self, policy: str | None) -> None:
        if policy == "keep_protected" and not self.has_position:
            return
        self.dismiss(policy)

    def action_flat_yes(self) -> None:
        if not self.has_position:
            self.dismiss("flatten")
