"""Resampling bars to larger bars and aggregating ticks (R-DATA-4).

Rules:
- A target bar opens at ``floor(ts / bar_ns) * bar_ns`` (UTC ns). Because New York is a whole
  number of hours from UTC, every grid of up to 15 minutes is also aligned in New York time.
- open = first, high = max, low = min, close = last source bar of the group; volume = sum of the
  known (non-NaN) volumes, NaN when all are unknown.
- A group never spans two CME trading days (labels from :mod:`engine.calendar`): a bar that would
  straddle the 17:00 close / 18:00 open or a session boundary is split there.
- Only the source bars of a group contribute and a target bar is stamped with its OPEN time, so
  a consumer that treats a bar as known at ``ts + bar_ns`` sees nothing from the future. A target
  bar whose source bars are partly missing (a hole in the data) is built from what exists; the
  validator reports the holes.
- The target size must be a whole multiple of the source size and at most 15 minutes.
"""

from __future__ import annotations

import re

import numba
import numpy as np

from engine.data.bars import NS, Bars
from engine.data.errors import DataError

MAX_BAR_NS = 15 * 60 * NS
"""Largest target bar size (15 minutes; R-DATA-4)."""

_UNITS = {"s": NS, "sec": NS, "m": 60 * NS, "min": 60 * NS, "h": 3600 * NS, "d": 86_400 * NS}


def parse_bar_size(text: str | int) -> int:
    """``"1s"``, ``"15s"``, ``"1m"``, ``"5min"``, ``"1h"`` (or an int of ns) → ns.
    Raises :class:`DataError` for anything else."""
    if isinstance(text, (int, np.integer)):
        if text <= 0:
            raise DataError(f"bar size must be positive, not {text}")
        return int(text)
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]+)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise DataError(f"bad bar size {text!r}; use e.g. 1s, 15s, 1m, 5m, 15m")
    ns = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if ns <= 0:
        raise DataError(f"bar size must be positive, not {text!r}")
    return ns


def format_bar_size(bar_ns: int) -> str:
    """ns → ``"1s"`` / ``"5m"`` / ``"1h"`` / ``"1d"`` (or ``"<n>ns"``); ``"ticks"`` for 0."""
    if bar_ns == 0:
        return "ticks"
    for unit, ns in (("d", 86_400 * NS), ("h", 3600 * NS), ("m", 60 * NS), ("s", NS)):
        if bar_ns % ns == 0:
            return f"{bar_ns // ns}{unit}"
    return f"{bar_ns}ns"


def resample(bars: Bars, bar_ns: int | str) -> Bars:
    """Resample sorted, finite bars to ``bar_ns`` (int ns or a size such as ``"5m"``).

    Returns:
        New Bars (same symbol and source) with ``bar_ns`` set; length ≤ the input's.

    Raises:
        DataError: target not a multiple of the source size, larger than 15 min or smaller than
            the source; source of unknown size (ticks: use ``ticks_to_bars``); unsorted or
            duplicate timestamps or non-finite prices (naming file, row and column).
    """
    from engine.data.validate import require_clean_rows
    from engine.data.sessions import session_labels

    target = parse_bar_size(bar_ns)
    src = int(bars.bar_ns)
    if src <= 0:
        raise DataError("source bar size unknown (0): tick data must go through ticks_to_bars",
                        path=bars.source or None)
    if target > MAX_BAR_NS:
        raise DataError(f"target bar size {format_bar_size(target)} is larger than 15m")
    if target < src or target % src:
        raise DataError(f"target bar size {format_bar_size(target)} is not a whole multiple of "
                        f"the source size {format_bar_size(src)}", path=bars.source or None)
    require_clean_rows(bars, "bars for resampling")
    if len(bars) == 0:
        return Bars(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                    bars.symbol, target, bars.source)
    day = session_labels(bars).trading_day.astype(np.int64)
    o, h, l_, c, v, t = _resample(bars.ts, bars.open, bars.high, bars.low, bars.close,
                                  bars.volume, day, np.int64(target))
    return Bars(t, o, h, l_, c, v, symbol=bars.symbol, bar_ns=target, source=bars.source)


@numba.njit(cache=True, nogil=True)
def _resample(ts, o, h, l, c, v, key, bar_ns):  # pragma: no cover - compiled
    n = ts.shape[0]
    oo = np.empty(n, np.float64)
    hh = np.empty(n, np.float64)
    ll = np.empty(n, np.float64)
    cc = np.empty(n, np.float64)
    vv = np.empty(n, np.float64)
    tt = np.empty(n, np.int64)
    g = -1
    cur_b = np.int64(-1)
    cur_k = np.int64(-1)
    for i in range(n):
        b = (ts[i] // bar_ns) * bar_ns
        if g < 0 or b != cur_b or key[i] != cur_k:
            g += 1
            cur_b = b
            cur_k = key[i]
            tt[g] = b
            oo[g] = o[i]
            hh[g] = h[i]
            ll[g] = l[i]
            cc[g] = c[i]
            vv[g] = v[i]
        else:
            if h[i] > hh[g]:
                hh[g] = h[i]
            if l[i] < ll[g]:
                ll[g] = l[i]
            cc[g] = c[i]
            if not np.isnan(v[i]):
                if np.isnan(vv[g]):
                    vv[g] = v[i]
                else:
                    vv[g] += v[i]
    m = g + 1
    return oo[:m].copy(), hh[:m].copy(), ll[:m].copy(), cc[:m].copy(), vv[:m].copy(), tt[:m].copy()


def ticks_agg(ts: np.ndarray, price: np.ndarray, size: np.ndarray, bar_ns) -> tuple:
    """Trade prints → OHLCV bars on the ``bar_ns`` grid: the bar aggregator :func:`_resample`
    with every print as a one-price bar (open = high = low = close = price) and one group key,
    so there is one aggregation loop. ``ts`` int64 UTC ns (non-decreasing), ``price`` float64
    points, ``size`` float64 contracts (NaN = unknown) → ``(open, high, low, close, volume,
    bar open ts)``."""
    key = np.zeros(ts.shape[0], np.int64)
    return _resample(ts, price, price, price, price, size, key, np.int64(bar_ns))
