"""The validation gate in front of every consumer of a bar file (train, backtest, optimize,
replay, the fake gateway): one function, :func:`check_bars`, no CLI code.

Rules (``specs/data.md``, "Validation gate"):

1. Always refused, with a one-line :class:`DataError` naming file, row and column: no bars at
   all, a non-finite price (NaN/±inf in open/high/low/close) and a timestamp that is not
   strictly after the one before (duplicate or unsorted rows). No consumer can work on these:
   an inf high makes the ATR inf for the rest of the run, a backwards timestamp stops the clock.
2. Everything else the validator reports (:func:`engine.data.validate.validate`) is summarised;
   with ``repair=True`` the bars flagged by an error kind or as an implausible jump are dropped
   (counted per kind), and the rest is validated again.
3. With ``strict=True`` any remaining error kind refuses (:class:`DataRefused`). Warnings (gaps,
   implausible jumps) never refuse: gaps are normal in real vendor data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.data.bars import Bars
from engine.data.errors import DataError
from engine.data.validate import (KINDS, SEVERITY, TICK_SIZE, ValidationReport,
                                  first_bad_row, validate)

REPAIR_KINDS = tuple(k for k in KINDS if SEVERITY[k] == "error") + ("implausible_jump",)
"""Kinds whose bars ``repair`` drops (every error kind, and bad prints)."""


class DataRefused(DataError):
    """Strict mode: the data has validation errors (the message lists kind × count)."""


@dataclass
class GateResult:
    """What :func:`check_bars` let through.

    Attributes:
        bars: the bars to use (the input, or a copy without the dropped rows when repaired).
        report: validation report of ``bars`` (after repair, when repaired).
        before: report of the input when repaired, else None.
        dropped: kind → number of bars dropped by repair (a bar with several kinds counts once,
            under its first kind in :data:`REPAIR_KINDS` order).
        strict / repair: the options used.
    """

    bars: Bars
    report: ValidationReport
    before: ValidationReport | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    strict: bool = False
    repair: bool = False

    @property
    def errors(self) -> dict[str, int]:
        return {k: r.count for k, r in self.report.kinds.items()
                if r.count and r.severity == "error"}

    @property
    def warnings(self) -> dict[str, int]:
        return {k: r.count for k, r in self.report.kinds.items()
                if r.count and r.severity == "warning"}

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: ``source``, ``rows``, ``errors``/``warnings`` (kind → count),
        ``dropped`` (kind → bars, repair only), ``rows_before`` (repair only), ``strict``,
        ``repair``, ``ok`` (no error kind left)."""
        doc: dict[str, Any] = {"source": self.report.source, "rows": self.report.rows,
                               "errors": self.errors, "warnings": self.warnings,
                               "strict": self.strict, "repair": self.repair,
                               "ok": not self.errors}
        if self.repair:
            doc["dropped"] = dict(self.dropped)
            doc["rows_before"] = self.before.rows if self.before is not None else self.report.rows
        return doc

    def lines(self) -> list[str]:
        """Human summary, one line per fact (the CLI prints them on stderr)."""
        src = self.report.source or "bars"
        out = []
        if self.repair:
            total = sum(self.dropped.values())
            what = ", ".join(f"{k} ×{v:,}" for k, v in self.dropped.items()) or "nothing"
            out.append(f"data {src}: repair dropped {total:,} of {self.before.rows:,} bars "
                       f"({what})" if self.before is not None else f"data {src}: repair: {what}")
        if self.errors:
            out.append(f"data {src}: {self.report.rows:,} bars with validation errors: "
                       + ", ".join(f"{k} ×{v:,}" for k, v in self.errors.items())
                       + " (run `mes-console data validate` for examples; --strict refuses, "
                         "--repair drops them)")
        if self.warnings:
            out.append(f"data {src}: warnings: "
                       + ", ".join(f"{k} ×{v:,}" for k, v in self.warnings.items()))
        if not out:
            out.append(f"data {src}: {self.report.rows:,} bars, validation OK")
        return out


def require_usable(bars: Bars) -> None:
    """Rule 1: raise :class:`DataError` (one line: file, row, column, why) for an empty series, a
    non-finite price or a non-increasing timestamp."""
    if len(bars) == 0:
        raise DataError("no bars (0 rows): nothing to validate or trade",
                        path=bars.source or None)
    row, column, why = first_bad_row(bars)
    if row >= 0:
        raise DataError(f"{why}; refusing these bars (fix the file, e.g. sort it and drop the "
                        "row; `mes-console data validate` lists every problem)",
                        path=bars.source or None, row=row, column=column)


def flagged_rows(bars: Bars, report: ValidationReport | None = None,
                 tick_size: float = TICK_SIZE) -> dict[str, np.ndarray]:
    """Kind → bool mask of the bars flagged by that kind, for every kind in
    :data:`REPAIR_KINDS` that the report (computed when not given) found. Same rules as the
    validator (the row kinds are recomputed vectorized; session kinds from the session labels;
    jumps from the validator's own pass)."""
    from engine.calendar import calendar_for
    from engine.data.sessions import session_labels
    from engine.data.validate import _jump_mask, _session_masks, _off_grid

    rep = report if report is not None else validate(bars, tick_size=tick_size)
    o, h, lo, c, v = bars.open, bars.high, bars.low, bars.close, bars.volume
    masks: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        body_lo, body_hi = np.minimum(o, c), np.maximum(o, c)
        rows = {
            "ohlc_relation": (lo > body_lo + 1e-9) | (h < body_hi - 1e-9) | (lo > h + 1e-9),
            "non_finite": ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c))
            | np.isinf(v),
            "non_positive": (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            "off_tick": _off_grid(o, tick_size) | _off_grid(h, tick_size)
            | _off_grid(lo, tick_size) | _off_grid(c, tick_size),
            "negative_volume": v < 0,
            "single_trade_range": (v == 1.0) & (h > lo),
        }
    for k in REPAIR_KINDS:
        r = rep.kinds.get(k)
        if r is None or not r.count:
            continue
        if k in rows:
            masks[k] = rows[k]
        elif k in ("duplicate_ts", "unsorted_ts"):
            continue  # refused by require_usable before any repair
        elif k == "implausible_jump":
            masks[k] = _jump_mask(bars)
        else:
            lab = session_labels(bars)
            cal = calendar_for(int(bars.ts.min()), int(bars.ts.max()))
            masks[k] = _session_masks(bars, lab, cal)[k]
    return masks


def check_bars(bars: Bars, *, strict: bool = False, repair: bool = False,
               tick_size: float = TICK_SIZE) -> GateResult:
    """Run the gate over ``bars`` (see the module docstring for the three rules).

    Args:
        bars: the loaded (and sliced) bars.
        strict: refuse when an error kind remains (after repair, when repairing).
        repair: drop the bars flagged by :data:`REPAIR_KINDS` and validate again.
        tick_size: price grid, points (0.25 for ES/MES).

    Returns:
        :class:`GateResult` with the bars to use and the report.

    Raises:
        DataError: empty series, non-finite price, duplicate/unsorted timestamp (always), or no
            bar left after repair.
        DataRefused: ``strict`` and an error kind remains.
    """
    require_usable(bars)
    rep = validate(bars, tick_size=tick_size)
    res = GateResult(bars, rep, strict=strict, repair=repair)
    if repair:
        masks = flagged_rows(bars, rep, tick_size)
        drop = np.zeros(len(bars), bool)
        for k, m in masks.items():
            new = m & ~drop
            if new.any():
                res.dropped[k] = int(new.sum())
            drop |= m
        if drop.any():
            kept = bars.take(~drop)
            if len(kept) == 0:
                raise DataError("repair would drop every bar", path=bars.source or None)
            res = GateResult(kept, validate(kept, tick_size=tick_size), before=rep,
                             dropped=res.dropped, strict=strict, repair=repair)
        else:
            res.before = rep
    if strict and res.errors:
        raise DataRefused("strict: validation errors " + ", ".join(
            f"{k} ×{v:,}" for k, v in res.errors.items()) + "; nothing was run (see `mes-console "
            "data validate`; --repair drops the flagged bars)", path=bars.source or None)
    return res
