"""Bar validation with a report (R-DATA-2).

Kinds, their severity and the rule behind each (``specs/data.md`` explains the choices):

=================== ======== ==============================================================
kind                severity rule
=================== ======== ==============================================================
non_finite          error    an OHLC price is NaN/inf, or the volume is inf
non_positive        error    an OHLC price ≤ 0 (index futures never trade at or below zero)
ohlc_relation       error    not (low ≤ min(open, close) and max(open, close) ≤ high), 1e-9 pt
off_tick            error    a price off the tick grid (0.25 pt, tolerance 1e-9 pt)
duplicate_ts        error    ts[i] == ts[i-1]
unsorted_ts         error    ts[i] < ts[i-1]
negative_volume     error    volume < 0
single_trade_range  error    volume == 1 and high > low: one trade prints one price, so a bar of
                             one contract cannot have a range (the vendor's volume or prices are
                             wrong); counted exactly, bar by bar
in_maintenance_halt error    bar opens inside the daily maintenance halt (17:00-18:00 New York;
                             17:15-18:00 and the 16:15-16:30 trading halt in the 2012-11-19 ..
                             2021-06-25 era, :mod:`engine.data.eras`)
on_holiday          error    bar opens on a weekday CME does not trade (exchange holiday)
outside_session     error    any other bar outside a Globex session (weekend, after an early
                             close); a timezone error in the source shows up here
gap_in_session      warning  time inside a Globex session with no bar, ≥ ``min_gap_ns``
                             (default one bar for bars of ≥ 1 minute, 60 s for shorter bars,
                             where quiet seconds without trades are normal)
implausible_jump    warning  see :data:`JUMP_RULE`
=================== ======== ==============================================================

``report.ok`` is False when an error kind occurs, and also for warnings when ``strict=True``;
a file with no bars is never OK (problem ``no_bars``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from engine.data.bars import NS, Bars
from engine.data.errors import DataError

ROW_KINDS = ("ohlc_relation", "non_finite", "non_positive", "off_tick", "duplicate_ts",
             "unsorted_ts", "negative_volume", "single_trade_range")
SESSION_KINDS = ("in_maintenance_halt", "on_holiday", "outside_session")
WARNING_KINDS = ("gap_in_session", "implausible_jump")
KINDS = ROW_KINDS + SESSION_KINDS + WARNING_KINDS
SEVERITY = {k: ("warning" if k in WARNING_KINDS else "error") for k in KINDS}

TICK_SIZE = 0.25
TICK_TOLERANCE = 1e-9
MAX_EXAMPLES = 5
LONG_GAP_NS = 30 * 60 * NS

JUMP_ATR_BARS = 100
JUMP_ATR_MULT = 20.0
JUMP_MIN_FRACTION = 0.004
JUMP_LIMIT_FRACTION = 0.07
JUMP_WARMUP_BARS = 20
JUMP_REVERT = 0.75
JUMP_RULE = (
    "Flag the signature of a bad print, not a big move. Within one session, with L = "
    f"{JUMP_ATR_MULT:g} × ATR (EWMA of the true range over {JUMP_ATR_BARS} in-session bars; "
    "NOT widened after a hole or a halt: a bad print is judged against the surrounding bars "
    "whatever the time gap) and F = "
    f"{JUMP_MIN_FRACTION:.1%} of the price, a bar is an implausible jump when (b) its close moves "
    "more than both L and F from the previous close and the next bar undoes at least "
    f"{JUMP_REVERT:.0%} of that move (a one-bar excursion), or (c) its high or low sticks out "
    "beyond the body and the previous close by more than both L and F (a lone wick). Anywhere, "
    f"also across sessions, a move larger than {JUMP_LIMIT_FRACTION:.0%} of the price between "
    "consecutive bars is flagged (the CME equity-index overnight price limit). News moves that "
    "persist (CPI, NFP, FOMC) and session-to-session gaps, including the roll gaps of an "
    "unadjusted continuous series, are real and not flagged; targets never span sessions anyway."
)


@dataclass
class KindResult:
    """Result of one check: ``count`` bars (or gaps), ``severity`` error|warning, ``examples``
    (first few, dicts with ``row``, ``ts_utc``, ``ts_ny`` and a detail) and ``detail`` extras."""

    count: int = 0
    severity: str = "error"
    examples: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """What :func:`validate` found. ``kinds`` maps every kind in :data:`KINDS` (plus kinds that
    could not be checked, absent) to a :class:`KindResult`; ``notes`` says what was skipped."""

    source: str
    rows: int
    bar_ns: int
    strict: bool
    kinds: dict[str, KindResult]
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Kinds with a non-zero count that make the data invalid (errors; warnings too in
        strict mode)."""
        out = [k for k, r in self.kinds.items()
               if r.count and (r.severity == "error" or self.strict)]
        return (["no_bars"] + out) if self.rows == 0 else out

    @property
    def warnings(self) -> list[str]:
        return [k for k, r in self.kinds.items() if r.count and r.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self) -> None:
        """Raise :class:`DataError` listing the problem kinds (what train/backtest call)."""
        if not self.ok:
            parts = [f"{k} ×{self.kinds[k].count}" if k in self.kinds else k
                     for k in self.problems]
            raise DataError("invalid data: " + ", ".join(parts) + " (run `mes-console data "
                            "validate` for examples)", path=self.source or None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "rows": self.rows, "bar_ns": self.bar_ns,
            "strict": self.strict, "ok": self.ok, "problems": self.problems,
            "warnings": self.warnings,
            "kinds": {k: {"count": r.count, "severity": r.severity, "examples": r.examples,
                          **({"detail": r.detail} if r.detail else {})}
                      for k, r in self.kinds.items()},
            "notes": self.notes,
            "jump_rule": JUMP_RULE,
        }


def _iso(ts: int) -> tuple[str, str]:
    from engine.calendar import ny_datetime
    from engine.clock import to_datetime

    return (to_datetime(int(ts)).strftime("%Y-%m-%d %H:%M:%S"),
            ny_datetime(int(ts)).strftime("%Y-%m-%d %H:%M:%S %Z"))


def _example(bars: Bars, row: int, **extra: Any) -> dict[str, Any]:
    utc, ny = _iso(bars.ts[row])
    return {"row": int(row), "ts_utc": utc, "ts_ny": ny,
            "ohlcv": [_num(getattr(bars, k)[row]) for k in ("open", "high", "low", "close",
                                                            "volume")], **extra}


def _num(x: float) -> float | str | None:
    """JSON-safe number: None for NaN (unknown), 'inf'/'-inf' strings for infinities."""
    x = float(x)
    if np.isnan(x):
        return None
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def validate(bars: Bars, *, strict: bool = False, tick_size: float = TICK_SIZE,
             min_gap_ns: int | None = None) -> ValidationReport:
    """Check every bar (compiled single passes) and return a :class:`ValidationReport`.

    Args:
        bars: any Bars; unsorted input is checked for row kinds and session kinds, the gap and
            jump checks need sorted time and are skipped (with a note) otherwise.
        strict: warnings (gaps, implausible jumps) count as problems too.
        tick_size: price grid in points (0.25 for ES/MES/NQ/MNQ).
        min_gap_ns: smallest hole reported as a gap (default: one bar for bars ≥ 1 min, else 60 s).
    """
    n = len(bars)
    kinds = {k: KindResult(severity=SEVERITY[k]) for k in KINDS}
    rep = ValidationReport(bars.source, n, int(bars.bar_ns), strict, kinds)
    if n == 0:
        rep.notes.append("no bars")
        return rep
    counts, ex = _row_checks(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                             float(tick_size), TICK_TOLERANCE, MAX_EXAMPLES)
    for j, k in enumerate(ROW_KINDS):
        kinds[k].count = int(counts[j])
        kinds[k].examples = [_example(bars, int(r)) for r in ex[j] if r >= 0]
    sorted_ok = counts[ROW_KINDS.index("unsorted_ts")] == 0
    if bars.bar_ns >= 86_400 * NS:
        for k in SESSION_KINDS + WARNING_KINDS:
            del kinds[k]
        rep.notes.append("daily (or longer) bars: session, gap and jump checks do not apply")
        return rep
    from engine.calendar import calendar_for
    from engine.data.sessions import session_labels

    lab = session_labels(bars)
    cal = calendar_for(int(bars.ts.min()), int(bars.ts.max()))
    _session_kinds(bars, lab, cal, kinds)
    from engine.calendar import day_date
    from engine.data.eras import FIRST_ERA_DAY

    if day_date(int(lab.trading_day.min())) < FIRST_ERA_DAY:
        rep.notes.append(f"bars before {FIRST_ERA_DAY.isoformat()}: the session hours are the "
                         "calendar library's, not checked against real bars (engine/data/eras.py)"
                         "; session findings there may be wrong")
    if not sorted_ok:
        for k in WARNING_KINDS:
            del kinds[k]
        rep.notes.append("timestamps unsorted: gap and jump checks skipped")
        return rep
    if bars.bar_ns <= 0:
        del kinds["gap_in_session"]
        rep.notes.append("bar size unknown: gap check skipped")
    else:
        if min_gap_ns is None:
            min_gap_ns = bars.bar_ns if bars.bar_ns >= 60 * NS else 60 * NS
        _gap_kind(bars, cal, int(min_gap_ns), kinds["gap_in_session"])
    _jump_kind(bars, lab, kinds["implausible_jump"])
    return rep


def _session_masks(bars, lab, cal) -> dict[str, np.ndarray]:
    """Bool masks (length n) of the bars in the maintenance halt, on a holiday, or otherwise
    outside every session (the rules in the module docstring)."""
    n = len(bars)
    masks = {k: np.zeros(n, bool) for k in SESSION_KINDS}
    out = np.flatnonzero(~lab.in_session)
    if out.size == 0:
        return masks
    t = cal.table
    day = lab.trading_day[out]
    sec = lab.ny_seconds[out]
    pos = np.minimum(np.searchsorted(t.day, day), len(t) - 1)
    is_day = t.day[pos] == day
    weekday = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday → Monday = 0
    halt = (sec >= 17 * 3600) & (sec < 18 * 3600) & (weekday < 4)
    halt &= np.isin(day + 1, t.day) | is_day  # an exchange day follows/was the one halted
    if t.halt_start is not None:  # the in-session halt of an era (engine.data.eras)
        ts = bars.ts[out]
        halt |= is_day & (ts >= t.halt_start[pos]) & (ts < t.halt_end[pos])
    holiday = ~halt & ~is_day & (weekday < 5)
    rest = ~halt & ~holiday
    for k, m in (("in_maintenance_halt", halt), ("on_holiday", holiday), ("outside_session", rest)):
        masks[k][out[m]] = True
    return masks


def _session_kinds(bars, lab, cal, kinds) -> None:
    from engine.calendar import day_date

    for k, m in _session_masks(bars, lab, cal).items():
        rows = np.flatnonzero(m)
        kinds[k].count = int(rows.size)
        kinds[k].examples = [_example(bars, int(r)) for r in rows[:MAX_EXAMPLES]]
        if rows.size:
            days = np.unique(lab.trading_day[rows])
            kinds[k].detail = {"trading_days": [day_date(int(d)).isoformat() for d in days[:20]],
                               "n_trading_days": int(days.size)}


def _off_grid(p: np.ndarray, tick: float) -> np.ndarray:
    """Vectorized twin of the compiled off-tick test (same tolerance)."""
    r = p / tick
    return np.abs(r - np.round(r)) * tick > TICK_TOLERANCE


def _jump_mask(bars) -> np.ndarray:
    """Bool mask of the bars the implausible-jump rule flags (sorted bars)."""
    from engine.data.sessions import session_labels

    m = np.zeros(len(bars), bool)
    if len(bars) < 2 or np.any(np.diff(bars.ts) <= 0):
        return m
    rows, _ = _jump_rows(bars, session_labels(bars))
    m[rows] = True
    return m


def _jump_rows(bars, lab):
    return _jumps(bars.ts, bars.open, bars.high, bars.low, bars.close, lab.session,
                  np.int64(max(bars.bar_ns, 1)), JUMP_ATR_MULT, JUMP_MIN_FRACTION,
                  JUMP_LIMIT_FRACTION, 2.0 / (JUMP_ATR_BARS + 1), JUMP_WARMUP_BARS, JUMP_REVERT)


def _gap_kind(bars, cal, min_gap_ns, res: KindResult) -> None:
    seg_open, seg_close = cal.segments()
    span_end = int(bars.ts[-1]) + int(bars.bar_ns)
    (count, missing_ns, longest_s, longest_e, n_long, ex_s, ex_e) = _gaps(
        bars.ts, np.int64(bars.bar_ns), seg_open, seg_close, np.int64(min_gap_ns), np.int64(span_end),
        np.int64(LONG_GAP_NS), MAX_EXAMPLES)
    res.count = int(count)
    res.examples = []
    for s, e in zip(ex_s, ex_e):
        if s < 0:
            break
        res.examples.append(_gap_example(s, e, bars.bar_ns))
    if count:
        res.detail = {
            "missing_bars": int(missing_ns // bars.bar_ns),
            "longest": _gap_example(longest_s, longest_e, bars.bar_ns),
            "gaps_30min_or_longer": int(n_long),
            "min_gap_s": min_gap_ns / NS,
        }


def _gap_example(s: int, e: int, bar_ns: int) -> dict[str, Any]:
    su, sn = _iso(s)
    eu, en = _iso(e)
    return {"from_utc": su, "to_utc": eu, "from_ny": sn, "to_ny": en,
            "minutes": round(float(e - s) / (60 * NS), 2), "missing_bars": int((e - s) // bar_ns)}


def _jump_kind(bars, lab, res: KindResult) -> None:
    rows, ratios = _jump_rows(bars, lab)
    res.count = int(rows.size)
    res.examples = [
        _example(bars, int(r), prev_close=_num(bars.close[r - 1]),
                 move_points=float(max(abs(bars.high[r] - bars.close[r - 1]),
                                       abs(bars.low[r] - bars.close[r - 1]))),
                 move_over_atr=round(float(q), 1) if np.isfinite(q) else None)
        for r, q in zip(rows[:MAX_EXAMPLES], ratios[:MAX_EXAMPLES])]
    res.detail = {"rule": "see jump_rule"} if rows.size else {}


def gap_ranges(bars: Bars, *, min_gap_ns: int | None = None, limit: int = 10_000
               ) -> list[tuple[int, int]]:
    """Holes inside Globex sessions as ``[(start_ns, end_ns), ...]`` (UTC ns, end exclusive),
    in time order, at most ``limit``; the same rule as the ``gap_in_session`` check. Needs sorted
    bars of known size (else DataError)."""
    from engine.calendar import calendar_for

    if len(bars) == 0:
        return []
    if bars.bar_ns <= 0:
        raise DataError("bar size unknown: cannot find gaps", path=bars.source or None)
    if np.any(np.diff(bars.ts) <= 0):
        raise DataError("timestamps not ascending: cannot find gaps", path=bars.source or None)
    if min_gap_ns is None:
        min_gap_ns = bars.bar_ns if bars.bar_ns >= 60 * NS else 60 * NS
    seg_open, seg_close = calendar_for(int(bars.ts[0]), int(bars.ts[-1])).segments()
    res = _gaps(bars.ts, np.int64(bars.bar_ns), seg_open, seg_close, np.int64(min_gap_ns),
                np.int64(int(bars.ts[-1]) + bars.bar_ns), np.int64(LONG_GAP_NS), int(limit))
    return [(int(s), int(e)) for s, e in zip(res[5], res[6]) if s >= 0]


def first_bad_row(bars: Bars) -> tuple[int, str | None, str]:
    """``(row, column, why)`` of the first non-finite price or non-increasing timestamp, or
    ``(-1, None, "")`` when there is none (one compiled pass)."""
    code, row = _first_bad(bars.ts, bars.open, bars.high, bars.low, bars.close)
    if row < 0:
        return -1, None, ""
    col = ("open", "high", "low", "close", "ts", "ts")[code]
    why = ("non-finite price" if code < 4 else
           "duplicate timestamp" if code == 4 else "timestamps not ascending (unsorted)")
    return int(row), col, why


# --------------------------------------------------------------------------- compiled passes
@numba.njit(cache=True, nogil=True)
def _first_bad(ts, o, h, l, c):  # pragma: no cover
    n = ts.shape[0]
    for i in range(n):
        if not np.isfinite(o[i]):
            return 0, i
        if not np.isfinite(h[i]):
            return 1, i
        if not np.isfinite(l[i]):
            return 2, i
        if not np.isfinite(c[i]):
            return 3, i
        if i > 0:
            if ts[i] == ts[i - 1]:
                return 4, i
            if ts[i] < ts[i - 1]:
                return 5, i
    return -1, -1


@numba.njit(cache=True, nogil=True)
def _off(p, tick, tol):  # pragma: no cover
    r = p / tick
    return abs(r - np.round(r)) * tick > tol


@numba.njit(cache=True, nogil=True, inline="always")
def _hit(counts, ex, k, i, max_ex):  # pragma: no cover
    if counts[k] < max_ex:
        ex[k, counts[k]] = i
    counts[k] += 1


@numba.njit(cache=True, nogil=True)
def _row_checks(ts, o, h, l, c, v, tick, tol, max_ex):  # pragma: no cover
    counts = np.zeros(8, np.int64)
    ex = np.full((8, max_ex), -1, np.int64)
    n = ts.shape[0]
    for i in range(n):
        oi = o[i]
        hi = h[i]
        li = l[i]
        ci = c[i]
        finite = np.isfinite(oi) and np.isfinite(hi) and np.isfinite(li) and np.isfinite(ci)
        if not finite or np.isinf(v[i]):
            _hit(counts, ex, 1, i, max_ex)
        if finite:
            lo = oi if oi < ci else ci
            up = oi if oi > ci else ci
            if li > lo + 1e-9 or hi < up - 1e-9 or li > hi + 1e-9:
                _hit(counts, ex, 0, i, max_ex)
            if oi <= 0.0 or hi <= 0.0 or li <= 0.0 or ci <= 0.0:
                _hit(counts, ex, 2, i, max_ex)
            if _off(oi, tick, tol) or _off(hi, tick, tol) or _off(li, tick, tol) or _off(ci, tick, tol):
                _hit(counts, ex, 3, i, max_ex)
        if i > 0:
            if ts[i] == ts[i - 1]:
                _hit(counts, ex, 4, i, max_ex)
            elif ts[i] < ts[i - 1]:
                _hit(counts, ex, 5, i, max_ex)
        if v[i] < 0.0:
            _hit(counts, ex, 6, i, max_ex)
        if v[i] == 1.0 and finite and hi > li:
            _hit(counts, ex, 7, i, max_ex)
    return counts, ex


@numba.njit(cache=True, nogil=True, inline="always")
def _note_gap(acc, ex_s, ex_e, start, end, min_gap, long_gap):  # pragma: no cover
    # the hole [start, end) counts when it is at least min_gap long; acc holds
    # [count, missing ns, longest start, longest end, holes ≥ long_gap], ex_s/ex_e the first ones
    if end - start < min_gap:
        return
    acc[0] += 1
    acc[1] += end - start
    if end - start > acc[3] - acc[2]:
        acc[2] = start
        acc[3] = end
    if end - start >= long_gap:
        acc[4] += 1
    if acc[0] <= ex_s.shape[0]:
        ex_s[acc[0] - 1] = start
        ex_e[acc[0] - 1] = end


@numba.njit(cache=True, nogil=True)
def _gaps(ts, bar_ns, sopen, sclose, min_gap, span_end, long_gap, max_ex):  # pragma: no cover
    n = ts.shape[0]
    nrows = sopen.shape[0]
    acc = np.array([0, 0, -1, -1, 0], np.int64)
    ex_s = np.full(max_ex, -1, np.int64)
    ex_e = np.full(max_ex, -1, np.int64)
    r = 0
    while r < nrows and sclose[r] <= ts[0]:
        r += 1
    if r >= nrows:
        return acc[0], acc[1], acc[2], acc[3], acc[4], ex_s, ex_e
    cursor = ts[0] if ts[0] > sopen[r] else sopen[r]
    i = 0
    while i <= n:
        # the end of the data acts as a final "bar" at span_end that closes the last hole
        t = ts[i] if i < n else span_end
        while r < nrows and sclose[r] <= t:
            end = sclose[r] if sclose[r] < span_end else span_end
            _note_gap(acc, ex_s, ex_e, cursor, end, min_gap, long_gap)
            r += 1
            if r < nrows and sopen[r] > cursor:
                cursor = sopen[r]
        if r >= nrows or i == n:
            break
        if t >= sopen[r]:
            _note_gap(acc, ex_s, ex_e, cursor, t, min_gap, long_gap)
            if t + bar_ns > cursor:
                cursor = t + bar_ns
        i += 1
    return acc[0], acc[1], acc[2], acc[3], acc[4], ex_s, ex_e


@numba.njit(cache=True, nogil=True)
def _jumps(ts, o, h, l, c, session, bar_ns, mult, min_frac, limit_frac, alpha, warmup,
           revert):  # pragma: no cover
    n = ts.shape[0]
    rows = np.empty(n, np.int64)
    ratios = np.empty(n, np.float64)
    m = 0
    atr = 0.0
    seen = 0
    for i in range(1, n):
        pc = c[i - 1]
        if not (np.isfinite(pc) and np.isfinite(h[i]) and np.isfinite(l[i]) and np.isfinite(c[i])
                and np.isfinite(o[i])) or pc <= 0.0:
            continue
        a = abs(h[i] - pc)
        b = abs(l[i] - pc)
        tr = a if a > b else b
        same = session[i] >= 0 and session[i] == session[i - 1]
        flagged = False
        ratio = np.nan
        if tr > limit_frac * pc:
            flagged = True
        elif same and seen >= warmup and atr > 0.0:
            lim = mult * atr
            floor = min_frac * pc
            # (b) a close that jumps and is undone by the next bar (a bad print, not a move)
            d1 = c[i] - pc
            if abs(d1) > lim and abs(d1) > floor and i + 1 < n and session[i + 1] == session[i] \
                    and np.isfinite(c[i + 1]):
                d2 = c[i + 1] - c[i]
                if d2 * d1 < 0 and abs(d2) >= revert * abs(d1):
                    flagged = True
                    ratio = abs(d1) / atr
            # (c) a wick far beyond the body and the previous close
            top = max(o[i], c[i], pc)
            bot = min(o[i], c[i], pc)
            wick = max(h[i] - top, bot - l[i])
            if wick > lim and wick > floor:
                flagged = True
                ratio = wick / atr
        if flagged:
            rows[m] = i
            ratios[m] = ratio
            m += 1
        elif same:
            atr = tr if seen == 0 else atr + alpha * (tr - atr)
            seen += 1
    return rows[:m].copy(), ratios[:m].copy()


def require_clean_rows(bars: Bars, what: str = "bars") -> None:
    """Raise :class:`DataError` (naming source file, row and column) at the first non-finite
    price or non-ascending timestamp: the rows that resample/save/target cannot work on."""
    row, column, why = first_bad_row(bars)
    if row >= 0:
        raise DataError(f"{why}; refusing to use these {what} (run `mes-console data validate`)",
                        path=bars.source or None, row=row, column=column)
