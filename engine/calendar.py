"""CME sessions: New York time, trading-day labels, RTH/ETH, holidays, early closes, EOD phases.

Rules and sources:
- Globex sessions of the CME equity index futures (open, close, holidays, early closes) come from
  the ``CME_Equity`` calendar of ``pandas_market_calendars``, with two documented corrections
  where it disagrees with CME Group's published hours (checked against real bars): early closes
  at 13:15 NY (12:15 CT), not 13:00, and the one-off session of 2025-01-09
  (:data:`CME_SPECIAL_SESSIONS`).
  A session opens at 18:00 New York the evening before its trading day and closes at 17:00 New
  York (earlier on early-close days); 17:00-18:00 is the daily maintenance halt.
- Session hours per era (:mod:`engine.data.eras`, dates and sources there): from trade date
  2012-11-19 to 2021-06-25 a normal session closed at 17:15 New York and halted 16:15-16:30 New
  York inside the session; the library gives today's hours for those dates, so the table
  corrects the close and adds the halt (``halt_start``/``halt_end``). A bar inside the halt is
  outside the session (``in_session`` False) but the bars either side belong to the same session.
- The trading-day label of a timestamp is the New York calendar date, plus one day at or after
  18:00 New York (CME convention: the trading day starts the evening before). Sunday-evening bars
  belong to Monday.
- RTH (regular trading hours) is the cash equity session that the index futures follow:
  09:30-16:00 New York, from the ``XNYS`` calendar (13:00 on its early closes). A day on which
  the NYSE is closed (Thanksgiving, Good Friday, ...) has no RTH even when Globex trades.
- EOD phases (REQUIREMENTS §0, :func:`eod_schedule`): offsets before the venue's flat deadline.
  Default profile ``topstepx``: flat 5 min before min(15:10 CT, the exchange close), so 15:35
  reduce size, 15:50 no new positions, 16:00 aggressive exits, 16:05 flat (New York) on full
  days and 12:40 / 12:55 / 13:05 / 13:10 before a 13:15 early close. Profile ``fixed_ny``: the
  older fixed 16:00 / 16:15 / 16:25 / 16:30 New York times. In an era with an in-session halt
  (16:15-16:30 NY until 2021-06-25) the halt start counts as the close for both profiles, so a
  position is never carried through the halt (``fixed_ny``: 15:15 / 15:30 / 15:40 / 15:45).

All timestamps are ``int64`` UTC nanoseconds since the epoch. Trading days are ``int32`` days
since 1970-01-01 (``numpy.datetime64[D]`` compatible).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numba
import numpy as np

from engine.clock import NS  # nanoseconds per second: one definition

NY = ZoneInfo("America/New_York")
UTC = timezone.utc

MINUTE_NS = 60 * NS
HOUR_NS = 3600 * NS
DAY_NS = 86_400 * NS

SESSION_START_NY = time(18, 0)
"""The CME trading day starts at 18:00 New York the evening before."""

RTH_OPEN_NY = time(9, 30)
RTH_CLOSE_NY = time(16, 0)

PHASE_NAMES: tuple[str, ...] = ("normal", "reduce", "no_new", "exit", "flat", "closed")
"""The EOD phases in order, the one table: the risk manager and the stop rules use the names,
the kernel and the backtest the integer codes (:data:`PHASE_CODES`, the index here); entries need
a phase before ``no_new``, positions are closed from ``exit``."""
PHASE_CODES: dict[str, int] = {name: i for i, name in enumerate(PHASE_NAMES)}
P_NO_NEW, P_EXIT = PHASE_CODES["no_new"], PHASE_CODES["exit"]

EOD_PHASES: tuple[tuple[str, time], ...] = (
    ("reduce", time(16, 0)),
    ("no_new", time(16, 15)),
    ("exit", time(16, 25)),
    ("flat", time(16, 30)),
)
"""EOD phase names (in order) and their New York times in the ``fixed_ny`` profile; the times
in force come from :func:`eod_schedule`."""
assert tuple(n for n, _ in EOD_PHASES) == PHASE_NAMES[1:5], "EOD_PHASES must follow PHASE_NAMES"

_NORMAL_GLOBEX_CLOSE_NY = time(17, 0)


class CalendarError(ValueError):
    """A date outside the calendar's range or an impossible request."""


def ny_datetime(ts_ns: int) -> datetime:
    """UTC nanoseconds → aware datetime in America/New_York."""
    return datetime.fromtimestamp(ts_ns / NS, tz=UTC).astimezone(NY)


@functools.lru_cache(maxsize=4096)
def ny_to_ns(d: date, t: time) -> int:
    """A New York wall time on date ``d`` → UTC nanoseconds (DST-aware via zoneinfo). Cached:
    the same few wall times (18:00, 09:30, ...) are asked for day after day, twice per day."""
    dt = datetime.combine(d, t, tzinfo=NY)
    return int(round(dt.timestamp())) * NS


def day_number(d: date) -> int:
    """``date`` → days since 1970-01-01."""
    return (d - date(1970, 1, 1)).days


def day_date(n: int) -> date:
    """Days since 1970-01-01 → ``date``."""
    return date(1970, 1, 1) + timedelta(days=int(n))


@dataclass(frozen=True)
class SessionLabels:
    """Per-bar session labels, one entry per input timestamp (all arrays of length n).

    Attributes:
        trading_day: int32 CME trading-day label, days since epoch.
        ny_seconds: int32 seconds since New York midnight of the bar's own NY date.
        in_session: bool, inside a Globex session (not in the halt, weekend or a holiday).
        is_rth: bool, inside RTH (09:30 ≤ NY time < RTH close on a NYSE trading day).
        session: int32 row of the session table, -1 outside every session.
    """

    trading_day: np.ndarray
    ny_seconds: np.ndarray
    in_session: np.ndarray
    is_rth: np.ndarray
    session: np.ndarray


@dataclass(frozen=True)
class SessionTable:
    """One row per CME trading day; all ``int64`` UTC ns except ``day`` (int32 days since epoch).

    ``rth_open``/``rth_close`` are ``-1`` on days without RTH. ``eod`` has shape ``(n, 4)``:
    the UTC ns of the reduce / no_new / exit / flat phases. ``early_close`` marks sessions whose
    Globex close is before 17:00 New York. ``halt_start``/``halt_end`` (int64 UTC ns, ``-1`` when
    none) bound an in-session trading halt (16:15-16:30 New York in the 2012-11-19 ..
    2021-06-25 era, :mod:`engine.data.eras`).
    """

    day: np.ndarray
    open: np.ndarray
    close: np.ndarray
    rth_open: np.ndarray
    rth_close: np.ndarray
    eod: np.ndarray
    early_close: np.ndarray
    halt_start: np.ndarray
    halt_end: np.ndarray

    def __len__(self) -> int:
        return len(self.day)


class CmeCalendar:
    """Session calendar of the CME equity index futures over a span of years.

    Build once per span (cheap: ~50 ms for 30 years) with :func:`calendar_for`; every query is
    vectorized over ``int64`` UTC ns arrays or answered per timestamp by :meth:`session_at`.
    """

    def __init__(self, first_year: int, last_year: int) -> None:
        import pandas as pd
        import pandas_market_calendars as mcal

        if last_year < first_year:
            raise CalendarError(f"empty year span {first_year}..{last_year}")
        self.first_year = first_year
        self.last_year = last_year
        start, end = f"{first_year - 1}-12-01", f"{last_year + 1}-01-31"
        cme = mcal.get_calendar("CME_Equity").schedule(start, end)
        nyse_all = mcal.get_calendar("XNYS").schedule(start, end)
        cme = _apply_cme_corrections(cme, nyse_all, pd)
        cme, halt_s, halt_e = _apply_eras(cme, pd)
        nyse = nyse_all.reindex(cme.index)
        d_index = cme.index.tz_localize(None).normalize()

        def ny_wall(t: time) -> np.ndarray:
            wall = d_index + pd.Timedelta(hours=t.hour, minutes=t.minute)
            return wall.tz_localize(NY).tz_convert("UTC").as_unit("ns").asi8

        opens = cme.market_open.dt.as_unit("ns").astype("int64").to_numpy()
        closes = cme.market_close.dt.as_unit("ns").astype("int64").to_numpy()
        has_rth = nyse.market_open.notna().to_numpy()
        r_open = np.full(len(cme), -1, dtype=np.int64)
        r_close = np.full(len(cme), -1, dtype=np.int64)
        r_open[has_rth] = nyse.market_open[has_rth].dt.as_unit("ns").astype("int64").to_numpy()
        r_close[has_rth] = np.minimum(
            nyse.market_close[has_rth].dt.as_unit("ns").astype("int64").to_numpy(), closes[has_rth]
        )
        normal_close = ny_wall(_NORMAL_GLOBEX_CLOSE_NY)
        eod_ref = np.where(halt_s >= 0, halt_s, closes)  # the halt counts as the close (eras)
        days = (d_index.as_unit("ns").asi8 // DAY_NS).astype(np.int32)
        self._eod_ref = eod_ref
        eod = eod_schedule(days, eod_ref)  # the default profile; other profiles: eod_table()
        self.table = SessionTable(
            day=days,
            open=opens,
            close=closes,
            rth_open=r_open,
            rth_close=r_close,
            eod=eod,
            early_close=closes < normal_close,
            halt_start=halt_s,
            halt_end=halt_e,
        )
        # UTC offset table of America/New_York: transition instants and offsets (ns), found by
        # comparing the offset at every UTC hour of the span (DST changes happen on the hour).
        hours = pd.date_range(start, end, freq="h", tz="UTC")
        offs = (hours.tz_convert(NY).tz_localize(None).as_unit("ns").asi8 - hours.as_unit("ns").asi8)
        change = np.concatenate([[True], np.diff(offs) != 0])
        self._tz_trans = hours.as_unit("ns").asi8[change].astype(np.int64)
        self._tz_offset = offs[change].astype(np.int64)
        self._lo = int(hours[0].value)
        self._hi = int(hours[-1].value)
        self._day_to_row = {int(d): i for i, d in enumerate(self.table.day)}
        # label_one's caches: the current New York UTC-offset interval (lo, hi, offset ns) and
        # each trading day's (row, open, close, rth_open, rth_close, halt_start, halt_end)
        self._one_tz: tuple[int, int, int] | None = None
        self._one_rows: dict[int, tuple[int, int, int, int, int, int, int]] = {}
        self._eod_cache: dict[tuple, np.ndarray] = {}

    def eod_table(self, eod=None) -> np.ndarray:
        """EOD phase times of every session for an ``[eod]`` configuration
        (:class:`engine.config.EodConfig`; None = the defaults, which is ``table.eod``): int64
        UTC ns, shape (n, 4), columns reduce / no_new / exit / flat (see :func:`eod_schedule`).
        Cached per configuration; read-only."""
        key = _eod_key(eod)
        got = self._eod_cache.get(key)
        if got is None:
            got = self.table.eod if key == _eod_key(None) else eod_schedule(self.table.day, self._eod_ref, eod)
            got.setflags(write=False)
            self._eod_cache[key] = got
        return got

    # ------------------------------------------------------------------ conversions
    def _check_range(self, ts: np.ndarray) -> None:
        if ts.size and (ts.min() < self._lo or ts.max() > self._hi):
            raise CalendarError(
                f"timestamps outside the calendar span {self.first_year}..{self.last_year}"
            )

    def ny_offset_ns(self, ts: np.ndarray) -> np.ndarray:
        """UTC offset of New York at each UTC ns timestamp (int64 ns, −5 h or −4 h)."""
        ts = np.asarray(ts, dtype=np.int64)
        self._check_range(ts)
        return self._tz_offset[np.searchsorted(self._tz_trans, ts, side="right") - 1]

    def ny_local_ns(self, ts: np.ndarray) -> np.ndarray:
        """UTC ns → New York wall-clock ns (naive, as if New York were UTC)."""
        ts = np.asarray(ts, dtype=np.int64)
        return ts + self.ny_offset_ns(ts)

    # ------------------------------------------------------------------ labels
    def label(self, ts: np.ndarray) -> SessionLabels:
        """Session labels for an ``int64`` array of UTC ns bar timestamps (any order).

        Sorted input takes a compiled single pass (about 40 M bars/s); unsorted input takes the
        vectorized ``searchsorted`` path. Both give identical results (tested)."""
        ts = np.asarray(ts, dtype=np.int64)
        if ts.size > 1 and bool(np.all(ts[1:] >= ts[:-1])):
            self._check_range(ts[[0, -1]])
            t = self.table
            out = _label_sorted(
                ts, self._tz_trans, self._tz_offset, t.day, t.open, t.close, t.rth_open, t.rth_close,
                t.halt_start, t.halt_end
            )
            return SessionLabels(*out)
        return self._label_any(ts)

    def _label_any(self, ts: np.ndarray) -> SessionLabels:
        ts = np.asarray(ts, dtype=np.int64)
        local = self.ny_local_ns(ts)
        ny_day = local // DAY_NS
        ny_sec = (local - ny_day * DAY_NS) // NS
        trading_day = (ny_day + (ny_sec >= 18 * 3600)).astype(np.int32)
        t = self.table
        row = np.searchsorted(t.day, trading_day)
        row_c = np.minimum(row, len(t) - 1)
        found = t.day[row_c] == trading_day
        in_session = found & (ts >= t.open[row_c]) & (ts < t.close[row_c])
        in_session &= ~((ts >= t.halt_start[row_c]) & (ts < t.halt_end[row_c]))
        is_rth = in_session & (t.rth_open[row_c] >= 0) & (ts >= t.rth_open[row_c]) & (
            ts < t.rth_close[row_c]
        )
        session = np.where(in_session, row_c, -1).astype(np.int32)
        return SessionLabels(
            trading_day=trading_day,
            ny_seconds=ny_sec.astype(np.int32),
            in_session=in_session,
            is_rth=is_rth,
            session=session,
        )

    def label_one(self, ts_ns: int) -> tuple[int, int, bool, bool, int]:
        """Session labels of ONE UTC ns timestamp, for per-bar streaming (a few µs per call).

        Returns ``(trading_day, ny_seconds, in_session, is_rth, session_row)`` with exactly the
        meaning and values of :meth:`label` for that timestamp (tested to be equal on real data):
        trading_day in days since epoch, ny_seconds since New York midnight, session_row −1
        outside every session. Caches the current New York UTC-offset interval and each trading
        day's session row, so consecutive bars cost only integer arithmetic.

        Raises :class:`CalendarError` for timestamps outside the calendar span.
        """
        ts = int(ts_ns)
        tz = self._one_tz
        if tz is None or not (tz[0] <= ts < tz[1]):
            if ts < self._lo or ts > self._hi:
                raise CalendarError(
                    f"timestamp {ts} outside the calendar span {self.first_year}..{self.last_year}"
                )
            k = int(np.searchsorted(self._tz_trans, ts, side="right")) - 1
            lo = int(self._tz_trans[k])
            hi = int(self._tz_trans[k + 1]) if k + 1 < len(self._tz_trans) else self._hi + 1
            tz = (lo, hi, int(self._tz_offset[k]))
            self._one_tz = tz
        local = ts + tz[2]
        nyd = local // DAY_NS
        sec = (local - nyd * DAY_NS) // NS
        td = nyd + (1 if sec >= 18 * 3600 else 0)
        rows = self._one_rows
        info = rows.get(td)
        if info is None:
            r = self._day_to_row.get(td, -1)
            if r < 0:
                info = (-1, 0, 0, -1, -1, -1, -1)
            else:
                t = self.table
                info = (r, int(t.open[r]), int(t.close[r]), int(t.rth_open[r]), int(t.rth_close[r]),
                        int(t.halt_start[r]), int(t.halt_end[r]))
            rows[td] = info
        r, s_open, s_close, r_open, r_close, h_s, h_e = info
        if r >= 0 and s_open <= ts < s_close and not (h_s <= ts < h_e):
            is_rth = r_open >= 0 and r_open <= ts < r_close
            return td, sec, True, is_rth, r
        return td, sec, False, False, -1

    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """Trading segments ``(open, close)``, int64 UTC ns, sorted: one per session, two where an
        in-session halt splits it (``[open, halt_start)`` and ``[halt_end, close)``). The gap
        check walks these, so a halt is never reported as a gap."""
        t = self.table
        has = t.halt_start >= 0
        opens = np.concatenate([t.open, t.halt_end[has]])
        closes = np.concatenate([np.where(has, t.halt_start, t.close), t.close[has]])
        order = np.argsort(opens, kind="stable")
        return opens[order], closes[order]

    def trading_day_of(self, ts_ns: int) -> date:
        """The CME trading day a UTC ns instant belongs to (18:00 NY rule)."""
        return day_date(int(self.label(np.asarray([ts_ns])).trading_day[0]))

    def session_row(self, trading_day: date) -> int:
        """Row of ``trading_day`` in :attr:`table`; raises :class:`CalendarError` if the
        exchange does not trade that day (weekend or holiday)."""
        try:
            return self._day_to_row[day_number(trading_day)]
        except KeyError:
            raise CalendarError(f"{trading_day.isoformat()} is not a CME trading day") from None

    def is_trading_day(self, d: date) -> bool:
        return day_number(d) in self._day_to_row

    def trading_days(self, start: date, end: date) -> list[date]:
        """CME trading days from ``start`` to ``end`` inclusive."""
        lo, hi = day_number(start), day_number(end)
        return [day_date(d) for d in self.table.day if lo <= d <= hi]

    def eod_times(self, trading_day: date, eod=None) -> dict[str, int]:
        """EOD phase name → UTC ns for a trading day (``eod``: an EodConfig, None = defaults)."""
        row = self.session_row(trading_day)
        tab = self.eod_table(eod)
        return {name: int(tab[row, i]) for i, (name, _) in enumerate(EOD_PHASES)}

    def eod_phase(self, ts_ns: int, eod=None) -> str:
        """EOD phase at an instant: ``normal``, ``reduce``, ``no_new``, ``exit``, ``flat`` (from
        the flat time until the session closes), or ``closed`` outside every session
        (``eod``: an EodConfig, None = defaults)."""
        lab = self.label(np.asarray([ts_ns], dtype=np.int64))
        row = int(lab.session[0])
        if row < 0:
            return "closed"
        tab = self.eod_table(eod)
        phase = "normal"
        for i, (name, _) in enumerate(EOD_PHASES):
            if ts_ns >= tab[row, i]:
                phase = name
        return phase


CHICAGO = ZoneInfo("America/Chicago")

VENUE_FLAT_DEADLINES: dict[str, tuple[time, ZoneInfo]] = {
    # TopstepX: every position flat by 15:10 CT, no new position after it (Topstep help centre,
    # "Prohibited Conduct", article 8808125387923); Topstep itself auto-flattens at 15:08 CT
    # (Topstep blog "Trade Desk & Trade Flattening"). See ../shared/reference/topstepx-rules.md.
    "topstepx": (time(15, 10), CHICAGO),
}
"""Venue profile → (local wall time, time zone) by which every position must be flat."""

MAX_FLAT_NY = time(16, 30)
"""No venue's flat time is ever later than this (REQUIREMENTS §0)."""

EOD_OFFSET_KEYS = ("reduce_min", "no_new_min", "exit_min")


def _eod_key(eod) -> tuple:
    if eod is None:
        return ("topstepx", 5.0, 30.0, 15.0, 5.0)
    return (eod.profile, float(eod.margin_min), float(eod.reduce_min), float(eod.no_new_min),
            float(eod.exit_min))


def _wall_ns(days: np.ndarray, t: time, tz: ZoneInfo) -> np.ndarray:
    """UTC ns of wall time ``t`` in ``tz`` on each date (``days``: int days since epoch)."""
    import pandas as pd

    idx = pd.to_datetime(np.asarray(days, dtype="int64"), unit="D") + pd.Timedelta(hours=t.hour, minutes=t.minute)
    return idx.tz_localize(tz).tz_convert("UTC").as_unit("ns").asi8.astype(np.int64)


def eod_schedule(days: np.ndarray, closes: np.ndarray, eod=None) -> np.ndarray:
    """EOD phase times (REQUIREMENTS §0, R-RISK-4) for sessions given by their trading day
    (``days``: int32 days since epoch) and exchange (Globex) close (``closes``: int64 UTC ns).
    Returns int64 UTC ns, shape (n, 4): reduce / no_new / exit / flat.

    ``eod`` is an :class:`engine.config.EodConfig` (None = its defaults). Profiles:

    - ``topstepx`` (default): flat = min(15:10 CT on the trading day (the venue deadline,
      :data:`VENUE_FLAT_DEADLINES`), the day's exchange close, 16:30 NY) − ``margin_min``
      (5 min): 16:05 NY on full days, 13:10 NY before a 13:15 early close. The other phases sit
      ``exit_min`` (5), ``no_new_min`` (15) and ``reduce_min`` (30) minutes before flat: 16:00 /
      15:50 / 15:35 NY on full days. Computed in Chicago time, so DST changes move nothing.
    - ``fixed_ny``: the older fixed New York times 16:00 / 16:15 / 16:25 / 16:30, each moved on an
      early-close day to the same distance before the Globex close as before a 17:00 close
      (13:15 close → 12:15 / 12:30 / 12:40 / 12:45); ``margin_min`` and the offsets are unused.

    Because the deadline is derived from the close held in the session table, a table whose close
    changes (early closes, other eras' hours) moves the phases with it. Raises ``ValueError``
    when the offsets are not ordered ``reduce_min ≥ no_new_min ≥ exit_min ≥ 0``.
    """
    days = np.asarray(days)
    closes = np.asarray(closes, dtype=np.int64)
    profile, margin, reduce_m, no_new_m, exit_m = _eod_key(eod)
    out = np.empty((len(days), len(EOD_PHASES)), dtype=np.int64)
    if profile == "fixed_ny":
        normal_close = _wall_ns(days, _NORMAL_GLOBEX_CLOSE_NY, NY)
        for i, (_, t) in enumerate(EOD_PHASES):
            normal = _wall_ns(days, t, NY)
            out[:, i] = np.minimum(normal, closes - (normal_close - normal))
        return out
    if profile not in VENUE_FLAT_DEADLINES:
        raise ValueError(f"eod.profile {profile!r}: allowed {', '.join(['fixed_ny', *VENUE_FLAT_DEADLINES])}")
    if not (reduce_m >= no_new_m >= exit_m >= 0):
        raise ValueError(f"[eod] offsets must satisfy reduce_min ≥ no_new_min ≥ exit_min ≥ 0, got "
                         f"{reduce_m:g} / {no_new_m:g} / {exit_m:g}")
    t, tz = VENUE_FLAT_DEADLINES[profile]
    deadline = np.minimum(np.minimum(_wall_ns(days, t, tz), closes), _wall_ns(days, MAX_FLAT_NY, NY))
    flat = deadline - np.int64(round(margin * 60)) * NS
    out[:, 3] = flat
    for i, m in ((2, exit_m), (1, no_new_m), (0, reduce_m)):
        out[:, i] = flat - np.int64(round(m * 60)) * NS
    return out


CME_SPECIAL_SESSIONS: dict[date, time] = {
    # National Day of Mourning for President Carter: NYSE closed; CME equity index futures traded
    # the overnight session and halted at 08:30 CT / 09:30 ET (CME Group notice, 2025-01-02).
    # Both calendar libraries mark the day a full holiday.
    date(2025, 1, 9): time(9, 30),
}
"""One-off CME equity sessions the calendar libraries lack: trading day → Globex close (NY)."""

EARLY_CLOSE_NY = time(13, 15)
"""CME equity index futures close at 12:15 CT (13:15 NY) on NYSE early-close days (CME Group
holiday calendars); the libraries give 12:00 CT."""


def _apply_cme_corrections(cme, nyse, pd):
    """Layer two documented corrections over the ``CME_Equity`` schedule:
    1. On a NYSE early-close day (cash close before 16:00 NY) where the library closes Globex at
       13:00 NY, the equity index futures close at :data:`EARLY_CLOSE_NY` instead.
    2. :data:`CME_SPECIAL_SESSIONS` adds sessions the libraries miss (18:00 NY the evening before
       → the listed close)."""
    cme = cme.copy()
    nyse_close = nyse.market_close.reindex(cme.index)
    for idx in cme.index:
        nc = nyse_close.get(idx)
        if nc is None or pd.isna(nc):
            continue
        nc_ny = nc.tz_convert(NY)
        close_ny = cme.at[idx, "market_close"].tz_convert(NY)
        if (nc_ny.hour, nc_ny.minute) < (16, 0) and (close_ny.hour, close_ny.minute) == (13, 0):
            new = pd.Timestamp(datetime.combine(idx.date(), EARLY_CLOSE_NY, tzinfo=NY)).tz_convert("UTC")
            cme.at[idx, "market_close"] = new
    for d, close in CME_SPECIAL_SESSIONS.items():
        key = pd.Timestamp(d)
        if key in cme.index or not (cme.index.min() <= key <= cme.index.max()):
            continue
        prev = d - timedelta(days=1)
        row = {c: pd.NaT for c in cme.columns}
        row["market_open"] = pd.Timestamp(datetime.combine(prev, SESSION_START_NY, tzinfo=NY)).tz_convert("UTC")
        row["market_close"] = pd.Timestamp(datetime.combine(d, close, tzinfo=NY)).tz_convert("UTC")
        cme.loc[key] = row
    return cme.sort_index()


def _apply_eras(cme, pd):
    """Per-era hours (:mod:`engine.data.eras`) over the library schedule: on every trading day of
    an era whose library close is the normal 17:00 New York close, the close becomes the era's
    (17:15 until 2021-06-25) and the era's in-session halt is added when the session is open
    across it. Returns ``(schedule, halt_start, halt_end)``, the halts as int64 UTC ns (-1 none).
    Early-close days keep their (corrected) close and get no halt."""

    from engine.data.eras import ERAS

    cme = cme.copy()
    n = len(cme)
    hs = np.full(n, -1, dtype=np.int64)
    he = np.full(n, -1, dtype=np.int64)
    days = cme.index.tz_localize(None).normalize()
    close_ny = cme.market_close.dt.tz_convert(NY)
    normal = ((close_ny.dt.hour == _NORMAL_GLOBEX_CLOSE_NY.hour)
              & (close_ny.dt.minute == _NORMAL_GLOBEX_CLOSE_NY.minute)).to_numpy()

    def ny_wall(t: time) -> np.ndarray:
        wall = days + pd.Timedelta(hours=t.hour, minutes=t.minute)
        return wall.tz_localize(NY).tz_convert("UTC").as_unit("ns").asi8

    closes = cme.market_close.dt.as_unit("ns").astype("int64").to_numpy().copy()
    for era in ERAS:
        m = normal & np.asarray(days >= pd.Timestamp(era.first_day))
        if era.last_day is not None:
            m &= np.asarray(days <= pd.Timestamp(era.last_day))
        if not m.any():
            continue
        if era.close_ny != _NORMAL_GLOBEX_CLOSE_NY:
            closes[m] = ny_wall(era.close_ny)[m]
        if era.halt_ny is not None:
            hs[m] = ny_wall(era.halt_ny[0])[m]
            he[m] = ny_wall(era.halt_ny[1])[m]
    cme["market_close"] = pd.to_datetime(closes, utc=True)
    return cme, hs, he


@numba.njit(cache=True, nogil=True)
def _label_sorted(ts, tz_trans, tz_off, day, sopen, sclose, ropen, rclose, hstart,
                  hend):  # pragma: no cover
    n = ts.shape[0]
    trading_day = np.empty(n, np.int32)
    ny_seconds = np.empty(n, np.int32)
    in_session = np.zeros(n, np.bool_)
    is_rth = np.zeros(n, np.bool_)
    session = np.full(n, -1, np.int32)
    k = np.searchsorted(tz_trans, ts[0], side="right") - 1
    r = 0
    nrows = day.shape[0]
    for i in range(n):
        t = ts[i]
        while k + 1 < tz_trans.shape[0] and tz_trans[k + 1] <= t:
            k += 1
        local = t + tz_off[k]
        nyd = local // DAY_NS
        sec = (local - nyd * DAY_NS) // NS
        td = nyd + (1 if sec >= 18 * 3600 else 0)
        trading_day[i] = td
        ny_seconds[i] = sec
        while r < nrows and day[r] < td:
            r += 1
        if r < nrows and day[r] == td and t >= sopen[r] and t < sclose[r] and not (
                t >= hstart[r] and t < hend[r]):
            in_session[i] = True
            session[i] = r
            if ropen[r] >= 0 and t >= ropen[r] and t < rclose[r]:
                is_rth[i] = True
    return trading_day, ny_seconds, in_session, is_rth, session


@functools.lru_cache(maxsize=8)
def _calendar(first_year: int, last_year: int) -> CmeCalendar:
    return CmeCalendar(first_year, last_year)


def calendar_for(ts_min_ns: int, ts_max_ns: int | None = None) -> CmeCalendar:
    """A cached :class:`CmeCalendar` covering the given UTC ns span (whole years, with margin:
    the span is widened to whole years with a year of margin on each side)."""
    ts_max_ns = ts_min_ns if ts_max_ns is None else ts_max_ns
    y0 = datetime.fromtimestamp(ts_min_ns / NS, tz=UTC).year
    y1 = datetime.fromtimestamp(ts_max_ns / NS, tz=UTC).year
    return _calendar(y0 - 1, y1 + 1)
