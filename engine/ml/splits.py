"""Walk-forward windows by calendar months, purged and embargoed (R-ML-4).

Windows are anchored at the END of the data so that the last fold tests on the most recent
month: for fold ``j`` (0 = oldest) of ``F`` folds, with ``end`` = close of the last bar,

    test  = [end - (F-1-j)·roll - test,  end - (F-1-j)·roll)
    val   = [test.start - val, test.start)
    train = [val.start - train, val.start)

Month arithmetic is calendar months in UTC (``pandas.DateOffset``). ``F`` is the largest number
of folds whose first train window starts at or after the first bar.

Short data: when the span is shorter than ``train + val + test`` months, every length (train,
val, test, roll) is scaled by ``span / (train + val + test + 2·roll)`` and expressed in whole
days, at least 3 (so that a window can never fall entirely in a weekend or holiday closure), which
gives three folds when the data is long enough for that minimum; :attr:`WalkForwardPlan.note` says so in words.

Purging (label overlap): a row ``t`` of a window ``[a, b)`` is dropped when its label horizon
reaches the next window, i.e. when ``ts[t] + lookahead_ns >= b`` (the label compares the close of
``t`` with the close of the bar opening ``lookahead_ns`` later). Embargo: the first
``embargo_ns`` of each validation and test window are dropped as well, so that no evaluated row
sits right against the data a model was fitted or selected on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class Window:
    """Half-open UTC ns range ``[start, end)``."""

    start: int
    end: int

    def to_dict(self) -> dict:
        return {"start_ns": int(self.start), "end_ns": int(self.end),
                "start": str(pd.Timestamp(self.start, tz="UTC")), "end": str(pd.Timestamp(self.end, tz="UTC"))}


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: windows, row indices (into the full arrays) and purge counts."""

    number: int
    train: Window
    val: Window
    test: Window
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    purged: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"fold": self.number, "train": self.train.to_dict(), "val": self.val.to_dict(),
                "test": self.test.to_dict(), "rows": {"train": int(len(self.train_idx)),
                "val": int(len(self.val_idx)), "test": int(len(self.test_idx))}, "purged": dict(self.purged)}


@dataclass(frozen=True)
class WalkForwardPlan:
    """The folds plus the window lengths actually used and a note when they were scaled."""

    folds: list[Fold]
    lengths: dict
    scaled: bool
    note: str


def _shift(ts_ns: int, months: int = 0, days: int = 0) -> int:
    t = pd.Timestamp(ts_ns, tz="UTC")
    if months:
        t = t + pd.DateOffset(months=months)
    if days:
        t = t + pd.Timedelta(days=days)
    return int(t.value)


def plan_walk_forward(ts: np.ndarray, usable: np.ndarray, *, bar_ns: int, lookahead_bars: int,
                      train_months: int = 6, val_months: int = 1, test_months: int = 1,
                      roll_months: int = 1, embargo_bars: int | None = None,
                      max_folds: int | None = None) -> WalkForwardPlan:
    """Plan the folds over bar-open times ``ts`` (int64 UTC ns, ascending).

    ``usable`` (bool ``(n,)``) marks rows with finite features and a label; only those rows enter
    the index arrays. ``lookahead_bars`` is the label horizon; ``embargo_bars`` defaults to it.
    ``max_folds`` keeps only the most recent folds. Raises ``ValueError`` when the data is too short
    for even one fold with rows in every split (the message gives the span and the lengths).
    """
    ts = np.asarray(ts, np.int64)
    usable = np.asarray(usable, bool)
    if len(ts) != len(usable) or len(ts) < 2:
        raise ValueError(f"walk-forward: ts has {len(ts)} rows, usable {len(usable)}")
    if np.any(np.diff(ts) <= 0):
        raise ValueError("walk-forward: timestamps must be strictly ascending")
    lookahead_ns = int(lookahead_bars) * int(bar_ns)
    embargo_ns = (int(lookahead_bars) if embargo_bars is None else int(embargo_bars)) * int(bar_ns)
    first, end = int(ts[0]), int(ts[-1]) + int(bar_ns)
    span_days = (end - first) / NS_PER_DAY
    need = train_months + val_months + test_months
    scaled = _shift(end, months=-need) < first
    if not scaled:
        def back(t, n):  # n months earlier
            return _shift(t, months=-n)
        unit = "months"
        L: dict[str, int] = {"train": train_months, "val": val_months, "test": test_months, "roll": roll_months}
        note = (f"walk-forward windows: train {train_months} / val {val_months} / test {test_months} "
                f"months, roll {roll_months} month(s)")
    else:
        f = span_days / (need + 2 * roll_months)
        unit = "days"
        L = {"val": max(3, int(val_months * f)), "test": max(3, int(test_months * f)),
             "roll": max(3, int(roll_months * f))}
        # the train window gives way to the 3-day minimums so that three folds still fit
        L["train"] = max(3, min(int(train_months * f), int(span_days) - L["val"] - L["test"] - 2 * L["roll"]))

        def back(t, n):
            return _shift(t, days=-n)
        note = (f"data spans {span_days:.1f} days, shorter than the {need} months of train "
                f"{train_months} / val {val_months} / test {test_months}: windows scaled to train "
                f"{L['train']} / val {L['val']} / test {L['test']} days, roll {L['roll']} days")
    folds_rev = []
    k = 0
    while max_folds is None or k < max_folds:
        test_end = back(end, k * L["roll"]) if k else end
        test_start = back(test_end, L["test"])
        val_start = back(test_start, L["val"])
        train_start = back(val_start, L["train"])
        if train_start < first:
            break
        folds_rev.append((Window(train_start, val_start), Window(val_start, test_start), Window(test_start, test_end)))
        k += 1
    if not folds_rev:
        raise ValueError(f"walk-forward: {span_days:.1f} days of data cannot hold one fold of {dict(unit=unit, **L)}")
    folds = []
    for j, (tr, va, te) in enumerate(reversed(folds_rev)):
        purged = {}
        idx = {}
        for name, w, emb in (("train", tr, 0), ("val", va, embargo_ns), ("test", te, embargo_ns)):
            inside = (ts >= w.start) & (ts < w.end) & usable
            crosses = inside & (ts + lookahead_ns >= w.end)
            embargoed = inside & ~crosses & (ts < w.start + emb)
            keep = inside & ~crosses & ~embargoed
            purged[name] = {"label_overlap": int(crosses.sum()), "embargo": int(embargoed.sum())}
            idx[name] = np.flatnonzero(keep)
        if min(len(v) for v in idx.values()) == 0:
            raise ValueError(f"walk-forward fold {j}: an empty split after purging "
                             f"(rows train {len(idx['train'])}, val {len(idx['val'])}, test {len(idx['test'])})")
        folds.append(Fold(j, tr, va, te, idx["train"], idx["val"], idx["test"], purged))
    return WalkForwardPlan(folds, {"unit": unit, **L}, scaled, note)
