"""Session labels and RTH/ETH filters on Bars (R-DATA-3).

All rules live in :mod:`engine.calendar` (CME trading day from 18:00 New York the evening
before, RTH 09:30-16:00 New York on NYSE days with early closes, the 17:00-18:00 halt, holidays
from ``pandas_market_calendars``); this module only applies them to :class:`Bars` and caches the
result per series.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from engine.calendar import SessionLabels, calendar_for
from engine.data.bars import Bars
from engine.data.errors import DataError

_CACHE: "OrderedDict[int, tuple[np.ndarray, SessionLabels]]" = OrderedDict()
_CACHE_SIZE = 4


def session_labels(bars: Bars) -> SessionLabels:
    """Session labels for every bar (see :class:`engine.calendar.SessionLabels`: trading_day
    int32 days since epoch, ny_seconds int32, in_session bool, is_rth bool, session int32 row or
    -1), from ``calendar_for(ts[0], ts[-1]).label(ts)``.

    Cached on the identity of ``bars.ts`` (the last four series), so features, validation,
    target and filters label a series once. The labels of a bar depend on its OPEN time."""
    ts = bars.ts
    key = id(ts)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is ts:
        _CACHE.move_to_end(key)
        return hit[1]
    if len(ts) == 0:
        e = np.empty(0, np.int32)
        lab = SessionLabels(e, e, np.empty(0, bool), np.empty(0, bool), e)
    else:
        lab = calendar_for(int(ts.min()), int(ts.max())).label(ts)
    _CACHE[key] = (ts, lab)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return lab


def filter_session(bars: Bars, which: str) -> Bars:
    """Bars of one session part (copies).

    ``which``: ``"rth"`` keeps bars whose open time is inside RTH (09:30 ≤ New York time < RTH
    close, 16:00 or the NYSE early close, on NYSE trading days); ``"eth"`` keeps bars inside a
    Globex session but outside RTH. Bars outside every session (halt, weekend, holiday) are in
    neither. Raises :class:`DataError` for another ``which``."""
    lab = session_labels(bars)
    if which == "rth":
        return bars.take(lab.is_rth)
    if which == "eth":
        return bars.take(lab.in_session & ~lab.is_rth)
    raise DataError(f"session must be 'rth' or 'eth', not {which!r}")
