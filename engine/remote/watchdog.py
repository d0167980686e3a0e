"""Dead-man watchdog and heartbeat of a paper/live session (issue 26).

:meth:`Watchdog.tick` runs on the engine thread at every turn of the session loop
(``LiveSession._timers``) and measures everything on ITS clock (the session's wall clock by
default; a test injects a :class:`engine.clock.SimClock` and advances it: no sleeps):

- **bar loop silent**: no bar closed (``session.i`` unchanged) for ``bar_silence_s``;
- **market feed silent**: no quote or trade processed (``session.data_seen`` unchanged) for
  ``feed_silence_s``;
- **protection unconfirmed**: a position open for ``protection_s`` without a stop the BROKER has
  accepted (status accepted / partially filled, covering the whole position) and without a
  closing order in flight.

The two silences count only during trading hours: the market time (the engine clock plus the
silence so far, since an exchange clock stops with the feed) lies inside a Globex session of the
CME calendar. Each condition raises one ``critical`` alert (kind ``watchdog``) when it starts and
an ``info`` one when it clears; with ``flatten_on_alarm`` the session is also flattened
(``session.flatten()``, as the console's key: protection stays until flat). A heartbeat
(``info``, kind ``heartbeat``: state, position, today's P&L, bars) goes out every
``heartbeat_min`` minutes. The watchdog never raises into the session: a failure is logged.
"""

from __future__ import annotations

from typing import Any

from engine.clock import NS_PER_SECOND
from engine.logs import get_logger

log = get_logger("watchdog")

_CONFIRMED = ("ACCEPTED", "PARTIALLY_FILLED")
"""Order statuses the broker has acknowledged (engine.execution.orders.OrderStatus names)."""


class Watchdog:
    """The dead-man watchdog of one session (module docstring).

    Args:
        cfg: :class:`engine.config.WatchdogConfig`.
        alerts: an :class:`engine.alerts.AlertRouter` (anything with ``send(priority, kind, text)``).
        clock: what the bounds are measured on (``monotonic_ns()``); the session's wall clock.
    """

    def __init__(self, cfg: Any, alerts: Any, clock: Any) -> None:
        self.cfg = cfg
        self.alerts = alerts
        self.clock = clock
        self.enabled = bool(cfg.enabled)
        self._bar_i = -1
        self._bar_t = 0
        self._data_n = -1
        self._data_t = 0
        self._unprot_t: int | None = None
        self._hb_next: int | None = None
        self.active: dict[str, str] = {}
        """The conditions firing now: name (``bar``, ``feed``, ``protection``) → message."""
        self.fired: list[tuple[int, str, str]] = []
        """Every alarm raised: (clock ns, condition, message)."""
        self.heartbeats = 0
        self.ticks = 0
        """Checks made (tests wait on it)."""

    def _now(self) -> int:
        return int(self.clock.monotonic_ns())

    def tick(self, session: Any) -> None:
        """One check (engine thread). Never raises."""
        if not self.enabled:
            return
        self.ticks += 1
        try:
            self._tick(session)
        except Exception:
            log.exception("watchdog check failed")

    def _tick(self, s: Any) -> None:
        now = self._now()
        if s.i != self._bar_i:
            self._bar_i, self._bar_t = s.i, now
        if s.data_seen != self._data_n:
            self._data_n, self._data_t = s.data_seen, now
        kernel = s.kernel
        if kernel is None or s.last_data_ts is None:
            return  # not trading yet: nothing to watch
        trading = self._trading_hours(s, now)
        c = self.cfg
        self._cond(s, "bar", trading and now - self._bar_t >= c.bar_silence_s * NS_PER_SECOND,
                   lambda: f"no bar closed for {(now - self._bar_t) / NS_PER_SECOND:.0f} s "
                           f"(bound {c.bar_silence_s:g} s) during trading hours")
        self._cond(s, "feed", trading and now - self._data_t >= c.feed_silence_s * NS_PER_SECOND,
                   lambda: f"market feed silent for {(now - self._data_t) / NS_PER_SECOND:.0f} s "
                           f"(bound {c.feed_silence_s:g} s) during trading hours")
        o = kernel.oco
        unprot = o.pos != 0 and not o.exiting() and not _stop_confirmed(o)
        if unprot and self._unprot_t is None:
            self._unprot_t = now
        elif not unprot:
            self._unprot_t = None
        t0 = self._unprot_t
        self._cond(s, "protection", t0 is not None and now - t0 >= c.protection_s * NS_PER_SECOND,
                   lambda: f"position {o.pos:+d} without a broker-confirmed stop for "
                           f"{(now - (t0 or now)) / NS_PER_SECOND:.0f} s (bound {c.protection_s:g} s)")
        self._heartbeat(s, now)

    def _trading_hours(self, s: Any, now: int) -> bool:
        cal = s.cal
        if cal is None:
            return False
        silent = now - min(self._bar_t, self._data_t)
        t = int(s.clock.now_ns()) + max(0, silent)
        try:
            return bool(cal.label_one(t)[2])
        except Exception:  # past the calendar's span: say trading (an alarm beats silence)
            return True

    def _cond(self, s: Any, name: str, firing: bool, message: Any) -> None:
        if firing and name not in self.active:
            text = message()
            self.active[name] = text
            self.fired.append((self._now(), name, text))
            flat = " Flattening (watchdog flatten_on_alarm)." if self.cfg.flatten_on_alarm else ""
            log.critical("watchdog: %s", text)
            self.alerts.send("critical", "watchdog", f"{text}.{flat}")
            if self.cfg.flatten_on_alarm:
                s.flatten()
        elif not firing and name in self.active:
            text = self.active.pop(name)
            log.warning("watchdog cleared: %s", text)
            self.alerts.send("info", "watchdog", f"cleared: {text}")

    def _heartbeat(self, s: Any, now: int) -> None:
        every = float(self.cfg.heartbeat_min) * 60 * NS_PER_SECOND
        if every <= 0:
            return
        if self._hb_next is None:
            self._hb_next = now + int(every)
            return
        if now < self._hb_next:
            return
        self._hb_next = now + int(every)
        self.heartbeats += 1
        self.alerts.send("info", "heartbeat", heartbeat_text(s))


def _stop_confirmed(o: Any) -> bool:
    """A stop the broker has accepted covers the whole position."""
    st = o.stop
    if st is None:
        return False
    name = getattr(st.status, "name", str(st.status))
    return name in _CONFIRMED and st.remaining >= abs(o.pos)


def heartbeat_text(s: Any) -> str:
    """One line: mode, state, position, today's P&L, bars processed."""
    snap = s.snapshot()
    if snap is None:
        return f"alive: {s.i} bars"
    p, h = snap.position, snap.header
    pos = "flat" if p.side == "FLAT" else f"{p.side} {p.size} @ {p.avg_price:.2f}"
    pnl = p.realized_usd + p.unrealized_usd
    return f"alive: {h.mode} {h.trading_state}, {pos}, today ${pnl:+,.2f}, {s.i} bars"
