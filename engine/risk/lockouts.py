"""Discipline lockouts (issue 26): rules a trader sets against himself, checked by the risk manager
so they apply alike in backtest, optimize, replay, paper and live (one kernel).

- **max trades per day**: after ``max_trades_per_day`` round trips in a CME trading day (18:00 NY
  roll) no new entry until the next day (TSXBot's trades-per-day cap).
- **daily profit lock**: once the day's P&L (equity − the day's start equity, dollars after
  costs) reaches ``daily_profit_lock``, no new entry for the rest of the day.
- **consistency share**: the account's consistency rule (the best day stays below a share of the
  profit target, Topstep help centre article 4405772379155): an entry is sized down, or refused,
  so that a win at its target cannot take the day's P&L past ``consistency_share ×
  consistency_target`` (stopping BEFORE the day would exceed it); once the day reaches it, no new
  entry for the rest of the day.
- **blocked windows**: New York wall-time windows ``[from, to)`` every day, and the first
  ``after_open_minutes`` after each RTH open (09:30 NY, from the CME calendar, DST-correct).
- **economic-calendar blackout**: events from a user file (:func:`load_events`, ``.csv`` or
  ``.ics``, with an importance); no entries from ``T − events_before_min`` to
  ``T + events_after_min`` for events of at least ``events_min_importance``. With
  ``events_action = "flatten"`` an open position is closed at ``T − before``; with
  ``"breakeven"`` its stop moves to the entry price (rounded outward to the tick grid) at
  ``T − before`` (a price already through the entry closes the position: a stop cannot be
  placed through the market).

Every window is half-open ``[start, end)`` in UTC ns. Refusal reasons start with ``lockout``
(the backtest counts them in its limits rows and report). Rules and sources: ``specs/remote.md``.
"""

from __future__ import annotations

import csv
import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from engine.calendar import MINUTE_NS, NY, CmeCalendar, day_date, ny_datetime

IMPORTANCE = {"low": 0, "medium": 1, "high": 2}
"""Importance names → rank (``events_min_importance``)."""


class EventsFileError(ValueError):
    """The economic-calendar file is unreadable; names the file and the row / line."""


@dataclass(frozen=True)
class Event:
    """One scheduled release: ``ts_ns`` UTC ns, ``name``, ``importance`` low/medium/high."""

    ts_ns: int
    name: str
    importance: str


def _parse_csv_time(text: str) -> int:
    """``YYYY-MM-DD HH:MM[:SS]`` (New York wall time) or ISO 8601 with an offset/``Z`` → UTC ns."""
    t = text.strip().replace("Z", "+00:00")
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=NY)
    return int(round(dt.timestamp())) * 1_000_000_000


def load_events(path: str | Path) -> list[Event]:
    """Read an economic calendar: ``.csv`` with a header ``time,event,importance`` (``#`` lines
    are comments; ``time`` New York wall time or ISO 8601 with an offset) or ``.ics`` (VEVENTs:
    ``DTSTART`` in UTC ``...Z``, with ``TZID=``, or floating = New York; ``SUMMARY``; the
    importance from ``X-IMPORTANCE`` or ``PRIORITY`` 1-4 high, 5 medium, 6-9 low, else high).

    Returns the events sorted by time. Raises :class:`EventsFileError` naming the file and the
    row for a missing file, a bad time or an unknown importance."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise EventsFileError(f"{p}: cannot read the events file: {exc.strerror or exc}") from None
    out = _load_ics(p, text) if p.suffix.lower() == ".ics" else _load_csv(p, text)
    return sorted(out, key=lambda e: e.ts_ns)


def _load_csv(p: Path, text: str) -> list[Event]:
    rows = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise EventsFileError(f"{p}: no header row (expected time,event,importance)")
    reader = csv.reader([line for _, line in rows])
    header = [h.strip().lower() for h in next(reader)]
    need = ("time", "event", "importance")
    if any(h not in header for h in need):
        raise EventsFileError(f"{p}: line {rows[0][0]}: header {header!r} lacks one of {list(need)}")
    it, ie, ii = (header.index(h) for h in need)
    out = []
    for (lineno, _), rec in zip(rows[1:], reader):
        if len(rec) < len(header):
            raise EventsFileError(f"{p}: line {lineno}: expected {len(header)} fields, got {len(rec)}")
        try:
            ts = _parse_csv_time(rec[it])
        except ValueError:
            raise EventsFileError(f"{p}: line {lineno}: time {rec[it]!r} is not YYYY-MM-DD HH:MM") from None
        imp = rec[ii].strip().lower()
        if imp not in IMPORTANCE:
            raise EventsFileError(f"{p}: line {lineno}: importance {rec[ii]!r}; allowed {list(IMPORTANCE)}")
        out.append(Event(ts, rec[ie].strip(), imp))
    return out


_ICS_DT = re.compile(r"^(\d{8})T(\d{4,6})(Z?)$")


def _load_ics(p: Path, text: str) -> list[Event]:
    # unfold continuation lines (RFC 5545 §3.1)
    lines: list[tuple[int, str]] = []
    for i, raw in enumerate(text.splitlines(), 1):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] = (lines[-1][0], lines[-1][1] + raw[1:])
        else:
            lines.append((i, raw))
    out: list[Event] = []
    cur: dict[str, Any] | None = None
    for lineno, line in lines:
        name, _, value = line.partition(":")
        key, *params = name.split(";")
        key = key.upper()
        if key == "BEGIN" and value.upper() == "VEVENT":
            cur = {"line": lineno}
        elif key == "END" and value.upper() == "VEVENT" and cur is not None:
            if "ts" not in cur:
                raise EventsFileError(f"{p}: line {cur['line']}: VEVENT without DTSTART")
            out.append(Event(cur["ts"], cur.get("name", "event"), cur.get("imp", "high")))
            cur = None
        elif cur is not None and key == "DTSTART":
            m = _ICS_DT.match(value.strip())
            if m is None:
                raise EventsFileError(f"{p}: line {lineno}: DTSTART {value!r} is not YYYYMMDDTHHMM[SS][Z]")
            d, t, z = m.groups()
            dt = datetime.strptime(d + t.ljust(6, "0"), "%Y%m%d%H%M%S")
            tz: Any = NY
            if z:
                tz = timezone.utc
            for prm in params:
                if prm.upper().startswith("TZID="):
                    from zoneinfo import ZoneInfo

                    try:
                        tz = ZoneInfo(prm[5:])
                    except Exception:
                        raise EventsFileError(f"{p}: line {lineno}: unknown time zone {prm[5:]!r}") from None
            cur["ts"] = int(round(dt.replace(tzinfo=tz).timestamp())) * 1_000_000_000
        elif cur is not None and key == "SUMMARY":
            cur["name"] = value.strip()
        elif cur is not None and key == "X-IMPORTANCE":
            imp = value.strip().lower()
            if imp not in IMPORTANCE:
                raise EventsFileError(f"{p}: line {lineno}: importance {value!r}; allowed {list(IMPORTANCE)}")
            cur["imp"] = imp
        elif cur is not None and key == "PRIORITY" and "imp" not in cur:
            try:
                n = int(value.strip())
            except ValueError:
                raise EventsFileError(f"{p}: line {lineno}: PRIORITY {value!r} is not 0-9") from None
            cur["imp"] = "high" if n <= 4 else ("medium" if n == 5 else "low")
    return out


class _Intervals:
    """Disjoint sorted half-open intervals ``[start, end)`` (UTC ns), each with a reason;
    overlapping inputs are merged (reasons joined)."""

    def __init__(self, items: list[tuple[int, int, str]]) -> None:
        merged: list[list[Any]] = []
        for a, b, why in sorted(items):
            if merged and a <= merged[-1][1]:
                m = merged[-1]
                m[1] = max(m[1], b)
                if why not in m[2]:
                    m[2] = f"{m[2]}; {why}"
            else:
                merged.append([a, b, why])
        self.starts: list[int] = [int(m[0]) for m in merged]
        self.ends: list[int] = [int(m[1]) for m in merged]
        self.reasons: list[str] = [str(m[2]) for m in merged]

    def find(self, now_ns: int) -> int:
        """Index of the interval containing ``now_ns``, or -1."""
        i = bisect_right(self.starts, now_ns) - 1
        return i if i >= 0 and now_ns < self.ends[i] else -1

    def next_start(self, now_ns: int) -> int | None:
        """The first interval start ≥ ``now_ns`` (UTC ns), or None."""
        i = bisect_right(self.starts, now_ns - 1)
        return self.starts[i] if i < len(self.starts) else None

    def __len__(self) -> int:
        return len(self.starts)


def _fmt(ts_ns: int) -> str:
    return ny_datetime(ts_ns).strftime("%Y-%m-%d %H:%M NY")


class Lockouts:
    """The ``[lockouts]`` rules of one risk manager, precomputed over the calendar's span.

    Args:
        cfg: :class:`engine.config.LockoutsConfig`.
        calendar: the manager's :class:`CmeCalendar` (RTH opens, trading days).
        events: the economic calendar (None: read ``cfg.events_file`` when set).

    Raises :class:`EventsFileError` for an unreadable events file."""

    def __init__(self, cfg: Any, calendar: CmeCalendar, events: list[Event] | None = None) -> None:
        self.max_trades = int(cfg.max_trades_per_day)
        locks = [float(cfg.daily_profit_lock)] if cfg.daily_profit_lock > 0 else []
        if cfg.consistency_share > 0 and cfg.consistency_target > 0:
            locks.append(float(cfg.consistency_share) * float(cfg.consistency_target))
        self.consistency_cap = (float(cfg.consistency_share) * float(cfg.consistency_target)
                                if cfg.consistency_share > 0 and cfg.consistency_target > 0 else math.inf)
        self.consistency_src = (f"consistency {cfg.consistency_share:.0%} of ${cfg.consistency_target:,.0f}"
                                if self.consistency_cap < math.inf else "")
        self.profit_lock = min(locks) if locks else math.inf
        self.profit_lock_src = ("" if not locks else
                                "daily_profit_lock" if locks[0] == self.profit_lock and cfg.daily_profit_lock > 0
                                else f"consistency {cfg.consistency_share:.0%} of ${cfg.consistency_target:,.0f}")
        t = calendar.table
        first, last = day_date(int(t.day[0])), day_date(int(t.day[-1]))
        win: list[tuple[int, int, str]] = []
        if cfg.after_open_minutes > 0:
            n = int(round(float(cfg.after_open_minutes) * MINUTE_NS))
            for o in t.rth_open.tolist():
                if o >= 0:
                    win.append((o, o + n, f"first {cfg.after_open_minutes:g} min after the RTH open"))
        for a, b in cfg.blocked_windows:
            ta, tb = _hm(a), _hm(b)
            d = first - timedelta(days=1)
            while d <= last:
                win.append((_wall_ns(d, ta), _wall_ns(d, tb), f"blocked window {a}-{b} NY"))
                d += timedelta(days=1)
        self.windows = _Intervals(win)
        if events is None:
            events = load_events(cfg.events_file) if cfg.events_file else []
        rank = IMPORTANCE[cfg.events_min_importance]
        before = int(round(float(cfg.events_before_min) * MINUTE_NS))
        after = int(round(float(cfg.events_after_min) * MINUTE_NS))
        self.events = [e for e in events if IMPORTANCE[e.importance] >= rank]
        self.blackouts = _Intervals([(e.ts_ns - before, e.ts_ns + after,
                                      f"{e.name} at {_fmt(e.ts_ns)}") for e in self.events])
        self.before_min, self.after_min = float(cfg.events_before_min), float(cfg.events_after_min)
        self.action = str(cfg.events_action)

    @property
    def active(self) -> bool:
        """Whether any lockout is configured."""
        return (self.max_trades > 0 or self.profit_lock < math.inf or len(self.windows) > 0
                or len(self.blackouts) > 0)

    def entry_block(self, now_ns: int, trades_today: int, day_pnl: float) -> str:
        """Why a new entry is locked out at ``now_ns`` (UTC ns), or "". ``trades_today``: round
        trips closed in the current trading day; ``day_pnl``: equity − the day's start equity
        (dollars)."""
        if self.max_trades > 0 and trades_today >= self.max_trades:
            return f"lockout max trades: {trades_today} trades today ≥ {self.max_trades} per day"
        if day_pnl >= self.profit_lock - 1e-9:
            return (f"lockout profit lock: day P&L ${day_pnl:,.2f} ≥ ${self.profit_lock:,.2f} "
                    f"({self.profit_lock_src})")
        i = self.windows.find(now_ns)
        if i >= 0:
            return f"lockout window: {self.windows.reasons[i]}"
        i = self.blackouts.find(now_ns)
        if i >= 0:
            return (f"lockout event: {self.blackouts.reasons[i]} (no entries {self.before_min:g} min before to "
                    f"{self.after_min:g} min after)")
        return ""

    def consistency_contracts(self, day_pnl: float, contracts: int, win_per_contract: float) -> tuple[int, str]:
        """The consistency share BEFORE the day would exceed it: the most contracts (≤
        ``contracts``) whose win at the target (``win_per_contract`` dollars after costs) keeps
        the day's P&L within ``consistency_share × consistency_target``, and why fewer ("" when
        all pass)."""
        cap = self.consistency_cap
        if cap == math.inf or win_per_contract <= 0:
            return contracts, ""
        n = int(math.floor((cap - day_pnl) / win_per_contract + 1e-9))
        if n >= contracts:
            return contracts, ""
        return max(n, 0), (f"lockout consistency: day P&L ${day_pnl:,.2f} + a target win of ${win_per_contract:,.2f} "
                           f"per contract would exceed ${cap:,.2f} ({self.consistency_src}): {max(n, 0)} of "
                           f"{contracts} contracts")

    def day_locked(self, trades_today: int, day_pnl: float) -> bool:
        """True when the day's own counters lock entries until the trading day rolls."""
        return (self.max_trades > 0 and trades_today >= self.max_trades) or day_pnl >= self.profit_lock - 1e-9

    def window_start(self, now_ns: int) -> int:
        """Start (UTC ns) of the window or blackout containing ``now_ns``; -1 when none."""
        for iv in (self.windows, self.blackouts):
            i = iv.find(now_ns)
            if i >= 0:
                return iv.starts[i]
        return -1

    def window_end(self, now_ns: int) -> int:
        """End (UTC ns) of the window or blackout containing ``now_ns``; ``now_ns`` when none."""
        t = now_ns
        for iv in (self.windows, self.blackouts):
            i = iv.find(t)
            if i >= 0:
                t = max(t, iv.ends[i])
        if t != now_ns:  # a window may end inside a blackout (or the reverse)
            return self.window_end(t)
        return t

    def event_position_action(self, now_ns: int) -> tuple[str, str]:
        """``(action, reason)`` for an OPEN position at ``now_ns``: ``("flatten" | "breakeven",
        why)`` inside an event blackout when ``events_action`` asks for it, else ``("", "")``."""
        if self.action == "block" or not len(self.blackouts):
            return "", ""
        i = self.blackouts.find(now_ns)
        if i < 0:
            return "", ""
        return self.action, f"lockout event {self.action}: {self.blackouts.reasons[i]}"

    def next_action_ns(self, now_ns: int) -> int | None:
        """The next blackout start after ``now_ns`` at which an open position is acted on
        (flatten / break-even), None when the action is ``block`` or none is left: the
        backtest's skip-ahead never jumps over it."""
        if self.action == "block":
            return None
        return self.blackouts.next_start(now_ns + 1)

    def status(self, now_ns: int, trades_today: int, day_pnl: float) -> tuple[str, ...]:
        """One line per configured lockout for the risk pane: ``LOCKED …`` when it refuses entries
        now, else the rule and, for windows/events, the next one (New York time)."""
        out: list[str] = []
        if self.max_trades > 0:
            tag = "LOCKED" if trades_today >= self.max_trades else "ok"
            out.append(f"{tag} trades {trades_today}/{self.max_trades} today")
        if self.profit_lock < math.inf:
            tag = "LOCKED" if day_pnl >= self.profit_lock - 1e-9 else "ok"
            out.append(f"{tag} profit lock ${self.profit_lock:,.0f} (day ${day_pnl:+,.2f})")
        for name, iv in (("window", self.windows), ("event", self.blackouts)):
            if not len(iv):
                continue
            i = iv.find(now_ns)
            if i >= 0:
                out.append(f"LOCKED {name}: {iv.reasons[i]} until {_fmt(iv.ends[i])}")
            else:
                nxt = iv.next_start(now_ns)
                j = iv.find(nxt) if nxt is not None else -1
                out.append(f"ok {name}: next {iv.reasons[j]} from {_fmt(nxt)}" if nxt is not None and j >= 0
                           else f"ok {name}: none left")
        return tuple(out)


def _wall_ns(d: date, t: time) -> int:
    """New York wall time on ``d`` → UTC ns (not through the cached ``ny_to_ns``: a thousand
    one-off dates would push the manager's hot entries out of its cache)."""
    return int(round(datetime.combine(d, t, tzinfo=NY).timestamp())) * 1_000_000_000


def _hm(text: str) -> time:
    h, m = str(text).split(":")
    return time(int(h), int(m))


def build_lockouts(settings: Any, calendar: CmeCalendar) -> Lockouts | None:
    """The manager's :class:`Lockouts`, or None when ``[lockouts]`` configures nothing."""
    lk = Lockouts(settings.lockouts, calendar)
    return lk if lk.active else None


__all__ = ["Event", "EventsFileError", "IMPORTANCE", "Lockouts", "build_lockouts", "load_events"]
