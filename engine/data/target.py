"""The 3-class training target (R-DATA-5).

``move = close[t + h] - close[t]`` in points, ``h`` = lookahead in bars. With ``thr =
threshold_ticks × tick_size``: UP (2) when ``move ≥ thr``, DOWN (0) when ``move ≤ -thr``, else
FLAT (1). The comparison is made in whole ticks (``round(move / tick_size)``) so float noise in
back-adjusted prices never flips a class.

No label (-1) where the lookahead
- runs past the end of the series,
- crosses a gap (``ts[t+h] - ts[t] != h × bar_ns``: a missing bar inside the window), or
- leaves the session (bar t or bar t+h outside a Globex session, or in different sessions /
  CME trading days — the 17:00-18:00 halt, weekends, holidays).
"""

from __future__ import annotations

import numba
import numpy as np

from engine.data.bars import NS, Bars
from engine.data.errors import DataError

DOWN, FLAT, UP, NO_LABEL = 0, 1, 2, -1
CLASS_NAMES = {DOWN: "DOWN", FLAT: "FLAT", UP: "UP"}


def target_lookahead_bars(bar_ns: int, target_cfg) -> int:
    """Lookahead in bars from :class:`engine.config.TargetConfig`: ``lookahead_s`` for bars
    shorter than a minute, ``lookahead_minutes`` for bars of a minute or more.

    Raises:
        DataError: bar size not positive, or the lookahead not a whole number of bars.
    """
    bar_ns = int(bar_ns)
    if bar_ns <= 0:
        raise DataError(f"bar size must be positive to derive a lookahead, not {bar_ns}")
    if bar_ns < 60 * NS:
        horizon, name = int(target_cfg.lookahead_s) * NS, f"lookahead_s={target_cfg.lookahead_s}"
    else:
        horizon = int(target_cfg.lookahead_minutes) * 60 * NS
        name = f"lookahead_minutes={target_cfg.lookahead_minutes}"
    if horizon % bar_ns or horizon < bar_ns:
        raise DataError(f"target.{name} is not a whole number of {bar_ns / NS:g}-second bars")
    return horizon // bar_ns


def make_target(bars: Bars, *, lookahead_bars: int, threshold_ticks: int, tick_size: float,
                labels=None) -> np.ndarray:
    """3-class target per bar: ``int8`` array of length ``len(bars)`` with DOWN=0, FLAT=1,
    UP=2 and -1 = no label (see the module docstring for the rule).

    Args:
        lookahead_bars: h ≥ 1.
        threshold_ticks: ≥ 1; |move| ≥ this many ticks is UP/DOWN.
        tick_size: points per tick (0.25 for MES).
        labels: :class:`engine.calendar.SessionLabels` of ``bars`` (default:
            :func:`engine.data.session_labels`, cached).

    Raises:
        DataError: bad arguments, unknown bar size, unsorted/duplicate timestamps or
            non-finite prices (naming the row).
    """
    from engine.data.io import require_clean_rows
    from engine.data.sessions import session_labels

    if lookahead_bars < 1 or threshold_ticks < 1 or not tick_size > 0:
        raise DataError(f"need lookahead_bars ≥ 1, threshold_ticks ≥ 1, tick_size > 0; got "
                        f"{lookahead_bars}, {threshold_ticks}, {tick_size}")
    if bars.bar_ns <= 0:
        raise DataError("bar size unknown (0): cannot tell gaps from contiguous bars",
                        path=bars.source or None)
    require_clean_rows(bars, "bars for the target")
    lab = session_labels(bars) if labels is None else labels
    return _target(bars.ts, bars.close, lab.session, np.int64(lookahead_bars),
                   np.int64(lookahead_bars * bars.bar_ns), np.int64(threshold_ticks),
                   float(tick_size))


def class_balance(y: np.ndarray) -> dict:
    """``{"DOWN": n, "FLAT": n, "UP": n, "unlabelled": n, "labelled": n, "fractions":
    {"DOWN": f, ...}}`` (fractions of the labelled bars; 0 when there are none)."""
    y = np.asarray(y)
    cnt = np.bincount((y + 1).astype(np.int64), minlength=4)
    labelled = int(cnt[1:].sum())
    out = {CLASS_NAMES[k]: int(cnt[k + 1]) for k in (DOWN, FLAT, UP)}
    out["unlabelled"] = int(cnt[0])
    out["labelled"] = labelled
    out["fractions"] = {CLASS_NAMES[k]: (cnt[k + 1] / labelled if labelled else 0.0)
                        for k in (DOWN, FLAT, UP)}
    return out


@numba.njit(cache=True, nogil=True)
def _target(ts, close, session, h, span, thr, tick):  # pragma: no cover
    n = ts.shape[0]
    y = np.full(n, -1, np.int8)
    for t in range(n - h):
        j = t + h
        if session[t] < 0 or session[j] != session[t] or ts[j] - ts[t] != span:
            continue
        ticks = np.round((close[j] - close[t]) / tick)
        if ticks >= thr:
            y[t] = 2
        elif ticks <= -thr:
            y[t] = 0
        else:
            y[t] = 1
    return y
