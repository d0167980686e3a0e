"""Quit dialog: what to do with the session (and an open position) before leaving."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from screens.confirm import BoxModal, modal_css


SIMULATED_MODES = ("demo", "replay", "backtest")
"""Modes without a broker: nothing keeps working once the session has ended."""


class QuitScreen(BoxModal[str | None]):
    """Dismisses with ``"flatten"``, ``"keep_protected"`` or None (cancel).

    With an open position the operator must choose: ``f`` flatten then quit, ``k`` keep the
    position with its OCO bracket working at the broker and quit (demo/replay: the simulated
    session ends with the position open; no broker keeps anything). Flat: ``y`` quits. The
    position shown follows the session while the dialog is open (:meth:`update_position`,
    called by the App on every snapshot): the choices follow it too."""

    DEFAULT_CSS = modal_css("QuitScreen", 64)
    BINDINGS = [
        Binding("f", "choose('flatten')", "Flatten & quit"),
        Binding("k", "choose('keep_protected')", "Keep protected & quit"),
        Binding("y", "flat_yes", "Quit", show=False),
        Binding("escape,n,c", "choose(None)", "Cancel"),
    ]

    def __init__(self, position_text: str, has_position: bool, mode: str = "live") -> None:
        super().__init__()
        self.position_text = position_text
        self.has_position = has_position
        self.mode = mode

    def box(self) -> ComposeResult:
        yield Static("[b]Quit the session?[/b]")
        yield Static(self.position_text, id="quit-position", markup=False)
        yield Static(self._choices(), id="quit-choices")

    def _choices(self) -> str:
        if not self.has_position:
            return "[b]y[/b] quit    [b]esc[/b] cancel"
        keep = ("keep the position and quit (simulated: no broker, the session ends with it open)"
                if self.mode in SIMULATED_MODES else
                "keep position protected (OCO stays at the broker) and quit")
        return f"[b]f[/b] flatten and quit\n[b]k[/b] {keep}\n[b]esc[/b] cancel"

    def update_position(self, position_text: str, has_position: bool) -> None:
        """The session's position now (its text and whether it is open)."""
        if (position_text, has_position) == (self.position_text, self.has_position):
            return
        self.position_text, self.has_position = position_text, has_position
        if self.is_mounted:
            self.query_one("#quit-position", Static).update(position_text)
            self.query_one("#quit-choices", Static).update(self._choices())

    def action_choose(self, policy: str | None) -> None:
        if policy == "keep_protected" and not self.has_position:
            return
        self.dismiss(policy)

    def action_flat_yes(self) -> None:
        if not self.has_position:
            self.dismiss("flatten")
