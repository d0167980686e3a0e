"""Model features (R-FEAT-1 … 4): one feature set, defined once, two evaluation paths.

* :func:`feature_set_for` picks the feature set of a bar size and volume availability.
* :meth:`FeatureSet.batch` computes the whole history at once (training, backtest).
* :meth:`FeatureSet.stream` gives a :class:`FeatureStream` that takes one closed bar at a time
  (live) with bounded memory.

Both paths run the same compiled per-bar update (``engine.features._kernel.step``): the batch
path is a loop over it, the streaming path one call per bar. There is no second implementation
of any feature that could drift; parity, no-lookahead and completed-HTF-only behaviour are tested
on the real data files. Every formula is written down in specs/features.md.

Example::

    fs = feature_set_for(bars.bar_ns, bars.has_volume)
    X = fs.batch(bars)                   # float64 (n, len(fs.names)), NaN before warm-up
    s = fs.stream()
    row = s.update(ts, o, h, l, c, v)    # float64 (len(fs.names),) for the bar that just closed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.calendar import CalendarError, CmeCalendar, calendar_for
from engine.data.bars import Bars
from engine.features import _kernel as K
from engine.clock import NS  # nanoseconds per second: one definition

FEATURES_VERSION = "features-v1"
"""Bumped whenever any formula, parameter or name changes; stored in model manifests."""


HTF_LADDER_NS: tuple[int, ...] = tuple(
    s * NS for s in (60, 300, 600, 900, 1800, 3600, 7200, 14400)
)
"""Candidate higher timeframes: 1 m, 5 m, 10 m, 15 m, 30 m, 1 h, 2 h, 4 h."""


class FeatureError(ValueError):
    """Input the feature engine refuses (bad bar size, unsorted or overlapping bars, NaN prices,
    missing volume, a manifest that disagrees). The message names the row / field / key."""


def htf_for(bar_ns: int) -> tuple[int, int]:
    """The two higher timeframes (UTC ns) of a base bar size.

    Rule: H1 is the smallest ladder entry (:data:`HTF_LADDER_NS`) that is ≥ 5 × the bar size and
    a whole multiple of it; H2 is the smallest ladder entry ≥ 3 × H1 that is a whole multiple of
    H1. This gives 1 m / 5 m for 1-second bars and 5 m / 15 m for 1-minute bars (R-FEAT-1);
    5 s → 1 m / 5 m, 15 s and 30 s → 5 m / 15 m, 5 m → 30 m / 2 h, 10 m → 1 h / 4 h.

    Raises :class:`FeatureError` for a non-positive bar size or one with no fitting pair
    (bars longer than 10 minutes).
    """
    bar_ns = int(bar_ns)
    if bar_ns <= 0:
        raise FeatureError(f"bar_ns must be > 0 (got {bar_ns}); features need a fixed bar size")
    h1 = next((h for h in HTF_LADDER_NS if h >= 5 * bar_ns and h % bar_ns == 0), None)
    h2 = None if h1 is None else next(
        (h for h in HTF_LADDER_NS if h >= 3 * h1 and h % h1 == 0), None
    )
    if h1 is None or h2 is None:
        raise FeatureError(
            f"no higher-timeframe pair for bar size {bar_ns / NS:g} s: supported bar sizes divide "
            "a ladder entry of 1m..4h with H1 ≥ 5 bars and H2 ≥ 3 × H1 (up to 10-minute bars)"
        )
    return h1, h2


def _tf_label(ns: int) -> str:
    s = ns // NS
    if s % 3600 == 0:
        return f"{s // 3600}h"
    if s % 60 == 0:
        return f"{s // 60}m"
    return f"{s}s"


def _full_names(bar_ns: int, has_volume: bool) -> list[str]:
    h1, h2 = htf_for(bar_ns)
    a = "vwap" if has_volume else "twap"
    names = [f"ret_{p}" for p in K.RET_PERIODS]
    names += [f"ema_dist_{p}" for p in K.EMA_PERIODS]
    names += [
        f"{a}_dist", f"{a}_slope_{K.ANCHOR_SLOPE_BARS}", "to_rth_close", "tod_sin", "tod_cos",
        f"atr_pct_{K.ATR_BARS}", f"rsi_{K.RSI_BARS}", "macd_hist",
        f"stoch_k_{K.STOCH_K_BARS}", f"stoch_d_{K.STOCH_D_BARS}",
        "bar_dir", "body_ratio", "upper_wick", "lower_wick",
    ]
    for h in (h1, h2):
        t = _tf_label(h)
        names += [f"htf_{t}_trend", f"htf_{t}_mom", f"htf_{t}_vol"]
    assert len(names) == K.N_BASE
    if has_volume:
        names += [f"vol_delta_{K.VOL_BARS}", f"obv_roc_{K.VOL_BARS}", f"vol_rel_{K.VOL_BARS}"]
        assert len(names) == K.N_FULL
    return names


@dataclass(frozen=True)
class FeatureSet:
    """The feature configuration of one bar size (frozen, hashable; equal configs compare equal).

    Attributes:
        bar_ns: base bar length, UTC ns (60_000_000_000 for 1-minute bars).
        has_volume: whether the volume features exist (vol_delta, obv_roc, vol_rel, and VWAP
            instead of the equal-weighted TWAP).
        names: ordered, unique feature names; column ``j`` of every output is ``names[j]``.
        htf_ns: the two higher timeframes (UTC ns), see :func:`htf_for`.
        warmup: number of bars after which every feature is valid: the row of bar index
            ``warmup - 1`` (0-based) and every later row is finite, except ``to_rth_close`` on
            the rare bars outside every Globex session (NaN: undefined there).
        version: :data:`FEATURES_VERSION`.
    """

    bar_ns: int
    has_volume: bool
    names: tuple[str, ...] = field(init=False, compare=False)
    htf_ns: tuple[int, int] = field(init=False, compare=False)
    warmup: int = field(init=False, compare=False)
    version: str = field(init=False, compare=False, default=FEATURES_VERSION)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bar_ns", int(self.bar_ns))
        object.__setattr__(self, "has_volume", bool(self.has_volume))
        h1, h2 = htf_for(self.bar_ns)
        object.__setattr__(self, "htf_ns", (h1, h2))
        object.__setattr__(self, "names", tuple(_full_names(self.bar_ns, self.has_volume)))
        base = max(max(K.EMA_PERIODS), max(K.RET_PERIODS) + 1, K.VOL_BARS + 1,
                   K.MACD_SLOW + K.MACD_SIGNAL - 1, K.STOCH_K_BARS + K.STOCH_D_BARS - 1)
        # HTF: HTF_VOL + 1 completed HTF closes; N consecutive bars span ≥ N·bar/H buckets of
        # which all but the last are complete, hence (HTF_VOL + 2) · H2 / bar bars suffice.
        htf = (K.HTF_VOL + 2) * (h2 // self.bar_ns)
        object.__setattr__(self, "warmup", int(max(base, htf)))
        object.__setattr__(self, "version", FEATURES_VERSION)

    @property
    def n_features(self) -> int:
        return len(self.names)

    # -------------------------------------------------------------- manifest
    def to_manifest(self) -> dict[str, Any]:
        """JSON-ready description for model checkpoints (R-ML-5)."""
        return {
            "version": self.version,
            "bar_ns": self.bar_ns,
            "has_volume": self.has_volume,
            "htf_ns": list(self.htf_ns),
            "warmup": self.warmup,
            "names": list(self.names),
        }

    @classmethod
    def from_manifest(cls, d: dict[str, Any]) -> "FeatureSet":
        """Rebuild from :meth:`to_manifest` output; refuses (:class:`FeatureError`, naming the
        key and both values) a manifest whose version, names, order, HTF or warm-up disagree
        with what this engine computes for that bar size."""
        for key in ("version", "bar_ns", "has_volume", "htf_ns", "warmup", "names"):
            if key not in d:
                raise FeatureError(f"feature manifest lacks key {key!r}")
        fs = cls(int(d["bar_ns"]), bool(d["has_volume"]))
        mine = fs.to_manifest()
        for key in ("version", "htf_ns", "warmup"):
            theirs = [int(x) for x in d[key]] if key == "htf_ns" else d[key]
            if theirs != mine[key]:
                raise FeatureError(
                    f"feature manifest {key!r} is {d[key]!r}, this engine has {mine[key]!r}"
                )
        names = list(d["names"])
        if names != mine["names"]:
            missing = [n for n in mine["names"] if n not in names]
            extra = [n for n in names if n not in mine["names"]]
            first = next(
                (i for i, (a, b) in enumerate(zip(names, mine["names"])) if a != b),
                min(len(names), len(mine["names"])),
            )
            raise FeatureError(
                f"feature manifest names disagree with this engine: first difference at column "
                f"{first}; missing {missing}, unexpected {extra}"
            )
        return fs

    # -------------------------------------------------------------- batch
    def batch(self, bars: Bars) -> np.ndarray:
        """Features of every bar of a history: float64 ``(len(bars), len(self.names))``.

        Row ``i`` uses bars ``0..i`` only (R-FEAT-3). NaN before each feature's warm-up and
        where a feature is undefined. Refuses (:class:`FeatureError`) bars of another bar size,
        unsorted or overlapping timestamps, non-finite or non-positive prices, and — for a
        volume feature set — bars without volume or with a NaN/negative volume (row named).
        A feature set without volume ignores any volume the bars carry.
        """
        if int(bars.bar_ns) != self.bar_ns:
            raise FeatureError(
                f"bars have bar_ns {bars.bar_ns}, the feature set is for {self.bar_ns}"
            )
        n = len(bars)
        k = len(self.names)
        if n == 0:
            return np.empty((0, k), np.float64)
        ts = np.ascontiguousarray(bars.ts, dtype=np.int64)
        cols = [np.ascontiguousarray(getattr(bars, c), dtype=np.float64)
                for c in ("open", "high", "low", "close")]
        vol = np.ascontiguousarray(bars.volume, dtype=np.float64)
        _check_batch(ts, cols, vol, self.bar_ns, self.has_volume, bars.source or bars.symbol)
        cal = calendar_for(int(ts[0]), int(ts[-1]))
        lab = cal.label(ts)
        t = cal.table
        ist, st, rb, hr = K.new_state()
        return K.batch_kernel(
            ts, cols[0], cols[1], cols[2], cols[3], vol if self.has_volume else cols[3],
            lab.ny_seconds, lab.trading_day, lab.session, t.rth_open, t.rth_close, t.close,
            K.TOD_TABLE, self.bar_ns, self.htf_ns[0], self.htf_ns[1], self.has_volume,
            ist, st, rb, hr,
        )

    def stream(self) -> "FeatureStream":
        """A fresh incremental evaluator of this feature set (see :class:`FeatureStream`)."""
        return FeatureStream(self)


def _check_batch(ts, cols, vol, bar_ns: int, has_volume: bool, src: str) -> None:
    where = f" in {src}" if src else ""
    d = np.diff(ts)
    bad = np.flatnonzero(d < bar_ns)
    if bad.size:
        i = int(bad[0]) + 1
        raise FeatureError(
            f"bar timestamps{where} must increase by at least bar_ns={bar_ns}: row {i} "
            f"(ts {int(ts[i])}) follows ts {int(ts[i - 1])}"
        )
    for name, a in zip(("open", "high", "low", "close"), cols):
        bad = np.flatnonzero(~(np.isfinite(a) & (a > 0)))
        if bad.size:
            raise FeatureError(f"{name}{where} is non-finite or ≤ 0 at row {int(bad[0])}: {a[bad[0]]}")
    if has_volume:
        bad = np.flatnonzero(~(np.isfinite(vol) & (vol >= 0)))
        if bad.size:
            raise FeatureError(
                f"volume{where} is NaN/negative at row {int(bad[0])} ({vol[bad[0]]}) but the "
                "feature set uses volume; use feature_set_for(bar_ns, has_volume=False)"
            )


class FeatureStream:
    """Incremental evaluator: one closed bar in, that bar's feature row out.

    Memory is bounded (fixed ring buffers of 64 base bars and 16 closes per higher timeframe),
    whatever the number of bars fed. The values equal :meth:`FeatureSet.batch` over the same
    bars from the same first bar (tested to 1e-9 relative on real data); in a live session,
    warm it with history (ideally starting at a Globex session open) and then feed live bars.
    """

    def __init__(self, fs: FeatureSet) -> None:
        self.fs = fs
        self._ist, self._st, self._rb, self._hr = K.new_state()
        self._k = len(fs.names)
        self._cal: CmeCalendar | None = None
        self._last_ts: int | None = None
        self._n = 0

    @property
    def ready(self) -> bool:
        """True once ``warmup`` bars have been fed: the last returned row is fully valid."""
        return self._n >= self.fs.warmup

    @property
    def n_bars(self) -> int:
        return self._n

    def update(self, ts_ns: int, open: float, high: float, low: float, close: float,
               volume: float = float("nan")) -> np.ndarray:
        """Feed the bar that just closed and get its features: float64 ``(len(names),)``.

        ``ts_ns`` is the bar OPEN time in UTC ns; prices in points; volume in contracts
        (required, finite and ≥ 0, when the feature set has volume; ignored otherwise).
        Raises :class:`FeatureError` for a bar that does not follow the previous one by at
        least ``bar_ns``, or a non-finite/non-positive price, or a missing volume; the state is
        left unchanged then.
        """
        ts = int(ts_ns)
        fs = self.fs
        if self._last_ts is not None and ts - self._last_ts < fs.bar_ns:
            raise FeatureError(
                f"bar ts {ts} does not follow the previous bar ts {self._last_ts} by "
                f"bar_ns={fs.bar_ns}"
            )
        o, h, l, c = float(open), float(high), float(low), float(close)
        if not (o > 0 and h > 0 and l > 0 and c > 0) or not np.isfinite(o + h + l + c):
            raise FeatureError(f"bar ts {ts}: non-finite or non-positive price {(o, h, l, c)}")
        v = float(volume)
        if fs.has_volume:
            if not (v >= 0) or v == float("inf"):
                raise FeatureError(f"bar ts {ts}: volume {v} is NaN/negative but the feature set "
                                   "uses volume")
        else:
            v = 0.0
        cal = self._cal
        try:
            if cal is None:
                raise CalendarError("no calendar yet")
            lab = cal.label_one(ts)
        except CalendarError:
            cal = self._cal = calendar_for(ts)
            lab = cal.label_one(ts)
        t = cal.table
        res = np.empty(self._k, np.float64)
        K.step(self._ist, self._st, self._rb, self._hr, ts, o, h, l, c, v, lab[1], lab[0],
               lab[4], t.rth_open, t.rth_close, t.close, K.TOD_TABLE, fs.bar_ns, fs.htf_ns[0],
               fs.htf_ns[1], fs.has_volume, res)
        self._last_ts = ts
        self._n += 1
        return res


def feature_set_for(bar_ns: int, has_volume: bool) -> FeatureSet:
    """The feature set of a bar size (UTC ns) with or without volume (R-FEAT-1, R-FEAT-4).

    Raises :class:`FeatureError` for a bar size without a higher-timeframe pair (see
    :func:`htf_for`)."""
    return FeatureSet(int(bar_ns), bool(has_volume))


__all__ = [
    "FEATURES_VERSION",
    "FeatureError",
    "FeatureSet",
    "FeatureStream",
    "feature_set_for",
    "htf_for",
]
