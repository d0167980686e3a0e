"""Per-era Globex hours of the CME equity index futures (ES, MES, NQ, MNQ, YM, ...).

``pandas_market_calendars`` (``CME_Equity``) stays the source for holidays and early closes; it
gives today's 17:00 New York close for every date since 2012-11-19 and no in-session halt where
one existed. This table carries the normal daily close and the in-session trading halt of each
era, with the dates CME Group changed them. :class:`engine.calendar.CmeCalendar` applies it to
every normal (not early-close) session of the era.

All times are New York wall-clock times (CME publishes them in Chicago time, one hour earlier).
The session always opens at 18:00 New York the evening before its trading day in both eras.

Eras (first and last CME trading day, inclusive):

============ ============ ============= ================ =========================================
first day    last day     Globex close  in-session halt  source
============ ============ ============= ================ =========================================
2012-11-19   2021-06-25   17:15 NY      16:15-16:30 NY   CME Group notice "Equity Index Later
                                                         Close for CME Globex Trading Day, Daily
                                                         Price Limits": effective Sunday
                                                         2012-11-18 for trade date Monday
                                                         2012-11-19, the Globex day ends at
                                                         4:15 p.m. CT with a 15-minute halt
                                                         3:15-3:30 p.m. CT (reproduced e.g. by
                                                         daytradetowin.com, 2012, and eminiroom.
                                                         com, 2013-04-11)
2021-06-28   (open)       17:00 NY      none             CME Group: the 3:15-3:30 p.m. CT halt
                                                         ended and the close moved to 4:00 p.m.
                                                         CT from trade date Monday 2021-06-28;
                                                         the same date ends the break in
                                                         ``pandas_market_calendars`` CME_Equity
                                                         ``regular_market_times['break_end']``
============ ============ ============= ================ =========================================

Before 2012-11-19 the library's own hours are used unchanged (Globex from 15:30 CT the day before
to 15:15 CT); this project has not checked them against real bars, and :func:`era_of` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time


@dataclass(frozen=True)
class SessionEra:
    """One era of CME equity index Globex hours.

    Attributes:
        first_day: first CME trading day of the era (inclusive).
        last_day: last CME trading day (inclusive); None = still in force.
        close_ny: normal Globex close, New York time.
        halt_ny: in-session trading halt ``(start, end)``, New York time, or None.
        source: where the dates and hours come from.
    """

    first_day: date
    last_day: date | None
    close_ny: time
    halt_ny: tuple[time, time] | None
    source: str

    def covers(self, d: date) -> bool:
        return self.first_day <= d and (self.last_day is None or d <= self.last_day)


ERAS: tuple[SessionEra, ...] = (
    SessionEra(date(2012, 11, 19), date(2021, 6, 25), time(17, 15), (time(16, 15), time(16, 30)),
               "CME Group notice, effective trade date 2012-11-19: Globex day ends 4:15 p.m. CT, "
               "15-minute halt 3:15-3:30 p.m. CT"),
    SessionEra(date(2021, 6, 28), None, time(17, 0), None,
               "CME Group, from trade date 2021-06-28: close 4:00 p.m. CT, no 3:15-3:30 p.m. CT "
               "halt (pandas_market_calendars CME_Equity break_end table)"),
)
"""The per-era table, oldest first, without overlaps."""

FIRST_ERA_DAY = ERAS[0].first_day
"""Trading days before this use the calendar library's hours unchanged (unverified here)."""


def era_of(d: date) -> SessionEra | None:
    """The era of CME trading day ``d``, or None before :data:`FIRST_ERA_DAY` (library hours)."""
    for era in ERAS:
        if era.covers(d):
            return era
    return None
