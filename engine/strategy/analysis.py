"""Lookahead and warm-up analysis of a strategy's batch signals, and the record of checks passed.

:func:`lookahead` (freqtrade's ``lookahead-analysis`` is the anchor): the signals of the whole
series against the signals of the same series truncated at ``points`` cut points (evenly spaced
from the declared warm-up to the end); a bar whose direction (or, for a signal, confidence by
more than ``atol``) changes when LATER bars are removed used the future. The first offending
bars are named (index and UTC time).

:func:`warmup` (freqtrade's ``recursive-analysis``): at ``samples`` bars spread over the second
half of the data, the signal computed on only the last ``h`` bars of history against the signal
on the whole history, for growing ``h``; the smallest ``h`` from which every sample agrees (and
keeps agreeing for every longer history tried) is the bars of history the signals need.

:class:`CheckRecords`: the checks a strategy has passed, by identity
(:meth:`engine.strategy.loader.LoadedStrategy.identity`: file, class, version, file hash,
parameters) and bar size, in ``<state dir>/strategy_checks.json`` (written atomically).
``backtest`` and ``run --mode live`` warn when no lookahead pass is recorded for the bar size;
``run --mode live`` refuses a strategy with a streaming ``update`` that has no recorded
batch = streaming pass (``analyze streaming``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.strategy.loader import LoadedStrategy

WARMUP_STEPS = (2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000)
"""History lengths (bars) :func:`warmup` tries."""


def _iso(ts: int) -> str:
    import pandas as pd

    return str(pd.Timestamp(int(ts), tz="UTC"))


def lookahead(strategy: LoadedStrategy, bars, *, points: int = 20, atol: float = 1e-6,
              first: int = 5) -> dict:
    """See the module docstring. Returns ``{"bars", "cuts", "offending" (count),
    "first": [{"bar", "time", "full", "truncated", "cut"}] (up to ``first``), "pass"}``.
    Raises :class:`engine.strategy.loader.StrategyError` from the strategy."""
    n = len(bars)
    full = strategy.signals(bars)
    lo = max(strategy.warmup + 2, 2)
    if n <= lo:
        raise ValueError(f"lookahead: {n} bars, need more than the warm-up ({lo})")
    cuts = sorted({int(c) for c in np.linspace(lo, n - 1, max(int(points), 1))})
    bad: dict[int, dict] = {}
    for c in cuts:
        part = strategy.signals(bars.slice(0, c))
        d0, d1 = full.direction[:c], part.direction
        c0, c1 = np.nan_to_num(full.confidence[:c]), np.nan_to_num(part.confidence)
        on = (d0 != 0) | (d1 != 0)
        diff = np.flatnonzero((d0 != d1) | (on & (np.abs(c0 - c1) > atol)))
        for i in diff[:first]:
            i = int(i)
            if i not in bad:
                bad[i] = {"bar": i, "time": _iso(bars.ts[i]), "full": [int(d0[i]), float(c0[i])],
                          "truncated": [int(d1[i]), float(c1[i])], "cut": c}
    rows = [bad[k] for k in sorted(bad)][:first]
    return {"bars": n, "cuts": len(cuts), "offending": len(bad), "first": rows, "pass": not bad}


def warmup(strategy: LoadedStrategy, bars, *, samples: int = 30) -> dict:
    """See the module docstring (half the samples are bars with a signal in the whole-history
    run, the rest evenly spread). Returns ``{"bars", "samples", "needed" (bars of history, or
    None when even the longest tried differs), "declared", "tried": {h: samples differing},
    "ok" (declared ≥ needed)}``."""
    n = len(bars)
    full = strategy.signals(bars)
    k = max(int(samples), 2)
    on = np.flatnonzero(full.direction[n // 2:] != 0) + n // 2       # bars with a signal matter most
    picked = on[np.linspace(0, len(on) - 1, min(k // 2, len(on))).astype(int)] if len(on) else np.zeros(0, int)
    ends = sorted({int(e) for e in np.linspace(n // 2, n - 1, k - len(picked))} | {int(e) for e in picked})
    def differing(h: int) -> int:
        n_bad = 0
        for e in ends:
            if e - h + 1 < 0:
                continue
            s = strategy.signals(bars.slice(e - h + 1, e + 1))
            a, b = int(s.direction[-1]), int(full.direction[e])
            if a != b or (a != 0 and abs(float(s.confidence[-1]) - float(full.confidence[e])) > 1e-6):
                n_bad += 1
        return n_bad

    tried: dict[int, int] = {}
    for h in WARMUP_STEPS:
        if h >= n // 2:
            break
        tried[h] = differing(h)
    needed = None
    last_bad = 1
    for h in sorted(tried, reverse=True):
        if tried[h]:
            last_bad = h
            break
        needed = h
    if needed is not None:   # bisect between the longest differing and the shortest agreeing history
        lo, hi = last_bad, needed
        while hi - lo > 1:
            mid = (lo + hi) // 2
            tried[mid] = differing(mid)
            lo, hi = (lo, mid) if not tried[mid] else (mid, hi)
        needed = hi
    declared = strategy.warmup
    return {"bars": n, "samples": len(ends), "needed": needed, "declared": declared, "tried": tried,
            "ok": needed is not None and declared + 1 >= needed}


def bar_seconds(bars) -> int:
    """The bars' size in whole seconds (the key of the check records)."""
    return int(bars.bar_ns) // 1_000_000_000


class CheckRecords:
    """The analysis checks passed (module docstring), in ``path`` (JSON)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_settings(cls, settings: Any) -> "CheckRecords":
        from engine.config import resolve_dir

        return cls(resolve_dir(settings.paths.state_dir, "state") / "strategy_checks.json")

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable strategy check records: {exc}") from None

    def record(self, strategy: LoadedStrategy, kind: str, bar_s: int, result: dict) -> None:
        """Store ``result`` of check ``kind`` (``lookahead`` / ``streaming``) on ``bar_s``-second bars."""
        from engine.atomic import atomic_write_text

        doc = self._read()
        doc.setdefault(strategy.identity(), {}).setdefault(kind, {})[str(int(bar_s))] = {
            "pass": bool(result.get("pass")), "bars": int(result.get("bars", 0))}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(doc, indent=1, sort_keys=True), mode=0o644)

    def passed(self, strategy: LoadedStrategy, kind: str, bar_s: int) -> bool:
        """True when a pass of check ``kind`` on ``bar_s``-second bars is recorded for this
        strategy's identity. Raises ``ValueError`` naming an unreadable records file."""
        rec = self._read().get(strategy.identity(), {}).get(kind, {}).get(str(int(bar_s)))
        return bool(rec and rec.get("pass"))


def lookahead_warning(strategy: LoadedStrategy, settings: Any, bar_s: int) -> str | None:
    """The warning of ``backtest`` / ``run --mode live`` when ``strategy`` (not a built-in) has
    no recorded lookahead pass on ``bar_s``-second bars, else None."""
    if strategy.where.startswith("builtin:"):
        return None
    try:
        if CheckRecords.for_settings(settings).passed(strategy, "lookahead", bar_s):
            return None
    except ValueError as exc:
        return str(exc)
    return (f"strategy {strategy.name} v{strategy.version} has never passed the lookahead check on "
            f"{bar_s}-second bars: run mes-console analyze lookahead --strategy {strategy.spec} --data FILE")


__all__ = ["lookahead", "warmup", "CheckRecords", "lookahead_warning", "bar_seconds", "WARMUP_STEPS"]
