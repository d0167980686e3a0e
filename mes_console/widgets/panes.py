"""Main-screen panes. Each pane holds a ``snapshot`` reactive bound to the App's
(``data_bind``) and redraws only when its own part of the snapshot changed."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from engine.runtime.snapshot import SessionSnapshot
from engine.runtime.snapshot import money as snapshot_money
from mes_console.widgets import render
from mes_console.widgets.contain import describe, report


class Pane(Static):
    """Base: a bordered Static redrawn from a :class:`SessionSnapshot`."""

    DEFAULT_CSS = """
    Pane { border: round $primary; padding: 0 0; height: 100%; }
    """
    TITLE = ""
    snapshot: reactive[SessionSnapshot | None] = reactive(None, layout=False)

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self.border_title = self.TITLE
        self._key: object = None
        self._error = ""

    def key_of(self, snap: SessionSnapshot) -> object:
        """What this pane depends on; the pane redraws only when it changes."""
        return snap

    def draw(self, snap: SessionSnapshot):
        raise NotImplementedError

    def on_resize(self) -> None:
        self._key = None
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snap: SessionSnapshot | None) -> None:
        """Redraw from ``snap`` when this pane's part changed. A failing ``key_of``/``draw`` is
        contained here: the pane shows ``pane error: ...``, the error is logged once, and the
        next snapshot tries again (the other panes and the session are not affected)."""
        if snap is None:
            return
        try:
            key = self.key_of(snap)
            if key == self._key:
                return
            self._key = key
            content = self.draw(snap)
        except Exception as exc:
            msg = describe(exc)
            self._key = None
            if msg != self._error:
                self._error = msg
                report(self, f"pane {self.TITLE or type(self).__name__}", exc)
            self.update(Text(f"pane error: {msg}", style="reverse"))
            return
        self._error = ""
        self.update(content)


class HeaderBar(Pane):
    DEFAULT_CSS = "HeaderBar { border: none; height: 1; dock: top; background: $panel; }"
    error: reactive[str] = reactive("")

    def key_of(self, snap):
        return (snap.header, snap.quote.stale, self.error)

    def draw(self, snap):
        return render.render_header(snap.header, snap.quote.stale, self.error)

    def watch_error(self, _old: str, _new: str) -> None:
        if self.snapshot is not None:
            self._key = None
            self.watch_snapshot(self.snapshot)
        elif self.error:
            self.update(f"ENGINE: {self.error}")


class QuotePane(Pane):
    TITLE = "Quote"

    def key_of(self, snap):
        return (snap.quote, self.content_size.width)

    def draw(self, snap):
        return render.render_quote(snap.quote, width=max(8, self.content_size.width or 20))


class ModelPane(Pane):
    TITLE = "Model"

    def key_of(self, snap):
        return (snap.model, self.content_size.width)

    def draw(self, snap):
        return render.render_model(snap.model, self.content_size.width or 24)


class EodPane(Pane):
    TITLE = "EOD (engine clock)"

    def key_of(self, snap):
        return (snap.eod, snap.header.clock_ns // 1_000_000_000)

    def draw(self, snap):
        return render.render_eod(snap.eod, snap.header.clock_ns)


class PositionPane(Pane):
    TITLE = "Position & OCO"
    last_fill: reactive[str] = reactive("")
    """The latest fill message (set by the App from fill events; shown instead of a toast)."""

    def key_of(self, snap):
        return (snap.position, self.last_fill, self.content_size.width)

    def draw(self, snap):
        t = render.render_position(snap.position)
        if self.last_fill:
            width = max(10, self.content_size.width or 38)
            pad = "\n" * max(1, 6 - len(t.plain.splitlines()))
            t.append(pad + render.fit("last: " + " ".join(self.last_fill.split()), width))
        return t

    def watch_last_fill(self, _old: str, _new: str) -> None:
        if self.snapshot is not None:
            self.watch_snapshot(self.snapshot)


class RiskPane(Pane):
    TITLE = "Risk"

    def key_of(self, snap):
        return (snap.risk, snap.header.clock_ns // 1_000_000_000 if snap.risk.pause_until_ns else 0,
                self.content_size.width, self.content_size.height)

    def draw(self, snap):
        return render.render_risk(snap.risk, snap.header.clock_ns, max(20, self.content_size.width or 38),
                                  self.content_size.height or None)


class LogPane(Pane):
    TITLE = "Logs"
    min_level: reactive[str] = reactive("INFO")

    def key_of(self, snap):
        return (snap.logs[-8:], self.min_level, self.content_size.height)

    def draw(self, snap):
        self.border_title = f"Logs >={self.min_level} (l)"
        return render.render_logs(snap.logs, self.min_level, max(1, self.content_size.height or 5),
                                  width=max(10, self.content_size.width or 48))

    def watch_min_level(self, _old: str, _new: str) -> None:
        self._key = None
        if self.snapshot is not None:
            self.watch_snapshot(self.snapshot)


class EquityPane(Pane):
    """Equity now, today's P&L, the whole session's equity with a dollar axis, the broker line.

    Today's P&L has ONE definition, shared with the position pane: realized since the CME
    trading day began (the risk manager's ``daily_realized_pnl``, after costs) plus the open
    position's P&L after the costs it has paid (its entry commission): equity now minus equity
    at the day's start, the figure of the day-loss meter."""

    TITLE = "Equity / broker"

    def key_of(self, snap):
        return (snap.equity, snap.position.realized_usd, snap.position.unrealized_usd, snap.broker,
                snap.header.clock_ns // 1_000_000_000, self.content_size.width, self.content_size.height)

    def draw(self, snap):
        w = max(12, self.content_size.width or 28)
        h = max(3, self.content_size.height or 5)
        t = Text(no_wrap=True, overflow="ellipsis")
        eq = snap.equity
        today = snap.position.realized_usd + snap.position.unrealized_usd
        if eq:
            t.append(f"{snapshot_money(eq[-1])} today ")
            t.append(render.money(today), style=render.pnl_style(today))
            t.append("\n")
            broker_rows = 2 if snap.broker.detail else 1
            for row in render.equity_chart(eq, w, max(1, h - 1 - broker_rows)):
                t.append(row + "\n")
        else:
            t.append("no equity yet\n")
        t.append_text(render.render_broker(snap.broker, snap.header.clock_ns))
        return t
