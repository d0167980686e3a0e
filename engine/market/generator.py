"""The embedded demo market: realistic, seeded MES bars for any date range.

``generate_bars`` produces 1-minute or 1-second OHLCV bars that look and behave like CME MES
futures, so that the bare ``mes-console`` command can run a full replay session with no data
files, credentials or network. It is a statistical model, not a replay of real prices.

Model (see ``specs/market_generator.md`` for the numbers and their sources):

* Timestamps: one bar every ``bar_ns`` from each Globex session's open to its close, taken from
  the CME session table (``engine.calendar``): weekends, holidays, the 17:00-18:00 New York
  halt and early closes have no bars.
* Returns: ``r_t = s(t) * sqrt(h_t) * z_t`` where ``s(t)`` is an intraday volatility profile
  (30-minute New York buckets, U-shaped over RTH, low overnight, calibrated on the real ES
  1-minute file), ``h_t`` a GARCH(1,1) variance (volatility clustering) times a per-day
  log-normal level, and ``z_t`` Student-t (4 degrees of freedom, unit variance) innovations.
* Bars: each bar is a continuous latent log-price path of ``SUBSTEPS`` steps; open, high, low
  and close are its first, max, min and last points rounded to the 0.25-point tick grid, so
  ``low <= open, close <= high`` holds exactly and every price is on the grid.
* Volume: the same intraday profile raised to a power, times log-normal noise and a term in the
  bar's absolute return (busy bars trade more); whole contracts, float64.

Everything is deterministic for a given ``(start, end, bar_ns, seed, start_price)``.
"""

from __future__ import annotations

from datetime import date
from datetime import time as _time

import numba
import numpy as np

from engine.calendar import CmeCalendar, calendar_for, day_number, ny_to_ns
from engine.data.bars import Bars
from engine.clock import NS  # nanoseconds per second: one definition

TICK = 0.25
"""MES tick size, index points."""

SUBSTEPS = 8
"""Latent path steps per bar (for the high/low)."""

# Median 1-minute high-low range, ticks, of the real ES file es_1m_2024-12-03_2025-12-15 in each
# 30-minute bucket of the New York day (index 0 = 00:00-00:30). Buckets 34-35 are the daily
# halt (17:00-18:00) and carry no bars. Calibration script: specs/market_generator.md.
_RANGE_PROFILE_TICKS = np.array(
    [2, 2, 3, 3, 4, 4, 6, 5, 5, 4, 4, 4, 4, 4, 5, 5, 5, 6,
     6, 15, 13, 11, 10, 10, 9, 9, 9, 8, 9, 8, 8, 11, 5, 3,
     3, 3, 5, 3, 4, 3, 4, 4, 3, 3, 3, 2, 2, 2],
    dtype=np.float64,
)
# Median ES volume per minute (contracts) in the same buckets, from the real 5-minute file
# (es_5m_..., volume / 5). The generator uses it for the shape, scaled by MES_VOLUME_FACTOR.
_VOLUME_PROFILE = np.array(
    [59, 53, 67, 75, 114, 120, 227, 180, 228, 159, 145, 142, 152, 164, 219, 240, 323, 500,
     658, 4391, 3529, 2891, 2474, 2207, 1945, 1755, 1757, 1711, 1800, 1697, 1874, 3327, 812, 256,
     150, 150, 150, 86, 96, 86, 128, 101, 101, 93, 79, 65, 67, 56],
    dtype=np.float64,
)
MES_VOLUME_FACTOR = 0.7
"""MES contracts per ES contract traded (assumption: MES average daily volume is roughly 0.7 of
ES in contracts)."""

# Per-bar standard deviation of the log return, per tick of median range, for 1-minute bars.
# Calibrated so that the generated median RTH 1-minute range is ~10 ticks and the median RTH
# absolute 1-minute return ~1.6 bp at a 6000-point price (see the spec for the check).
_SIGMA_PER_RANGE_TICK = 0.33e-4

EXCURSION = 0.25
"""Mean-reverting intrabar excursion of the high/low beyond the latent path, in per-bar standard
deviations times an exponential draw (real bars range wider than their close-to-close moves)."""

GARCH_ALPHA = 0.08
GARCH_BETA = 0.91
"""GARCH(1,1) on the de-seasonalised unit-variance shocks: h = (1-a-b) + a z² h + b h."""

DAY_VOL_SIGMA = 0.30
"""Standard deviation of the per-day log volatility level (quiet and busy days)."""

T_DOF = 4.0
"""Student-t degrees of freedom of the innovations (fat tails)."""

ETH_BOOST = 1.3
"""Volatility multiplier of bars outside RTH relative to their range profile (calibration)."""

ALLOWED_BAR_NS = (NS, 60 * NS)
_NOON = _time(12, 0)


class GeneratorError(ValueError):
    """An impossible request to the market generator (bad bar size, empty range, bad price)."""


def _session_timestamps(start: date, end: date, bar_ns: int) -> tuple[np.ndarray, CmeCalendar]:
    cal = calendar_for(ny_to_ns(start, _NOON), ny_to_ns(end, _NOON))
    t = cal.table
    lo, hi = day_number(start), day_number(end)
    rows = np.nonzero((t.day >= lo) & (t.day <= hi))[0]
    if rows.size == 0:
        raise GeneratorError(f"no CME trading day between {start.isoformat()} and {end.isoformat()}")
    opens = t.open[rows]
    counts = (t.close[rows] - opens + bar_ns - 1) // bar_ns
    total = int(counts.sum())
    starts = np.repeat(opens, counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    ts = starts + (np.arange(total, dtype=np.int64) - first) * bar_ns
    return ts.astype(np.int64), cal


def generate_bars(
    start: date,
    end: date,
    bar_ns: int = 60 * NS,
    seed: int = 0,
    symbol: str = "MES",
    start_price: float = 6000.0,
) -> Bars:
    """Generate realistic MES bars for the CME trading days ``start`` .. ``end`` (inclusive).

    Args:
        start, end: first and last CME trading day (a trading day starts 18:00 New York the
            evening before; its bars begin then).
        bar_ns: bar length in ns: ``60_000_000_000`` (1 minute) or ``1_000_000_000`` (1 second).
        seed: random seed; the same arguments always give the same bars.
        symbol: label stored in :attr:`Bars.symbol`.
        start_price: first open, index points (rounded to the 0.25 grid).

    Returns:
        :class:`engine.data.bars.Bars` with ``ts`` int64 UTC ns bar open times (only inside CME
        sessions), OHLC float64 points on the 0.25 grid, ``volume`` float64 whole contracts,
        ``source = "generated:seed=<seed>"``.

    Raises:
        GeneratorError: ``bar_ns`` not 1 s or 60 s, ``end`` before ``start``, no trading day in
            the range, or a non-positive ``start_price``.

    Speed: a year of 1-minute bars (~350 k) takes well under a second after numba's first
    compile (cached on disk).
    """
    if bar_ns not in ALLOWED_BAR_NS:
        raise GeneratorError(f"bar_ns={bar_ns}: the generator makes 1-second ({NS}) or 1-minute ({60 * NS}) bars")
    if end < start:
        raise GeneratorError(f"end {end.isoformat()} is before start {start.isoformat()}")
    if not (start_price > 0 and np.isfinite(start_price)):
        raise GeneratorError(f"start_price={start_price!r}: must be a positive number of points")
    ts, cal = _session_timestamps(start, end, bar_ns)
    lab = cal.label(ts)
    bucket = (lab.ny_seconds // 1800).astype(np.int64)
    range_ticks = _RANGE_PROFILE_TICKS[bucket]
    # Globex trades on days without RTH (e.g. the day after Thanksgiving before 13:15): the cash
    # open spike does not happen then, so RTH-hour buckets fall back to the overnight level.
    rth_hours = (bucket >= 19) & (bucket <= 31)
    off_rth = rth_hours & ~lab.is_rth
    range_ticks = np.where(off_rth, 4.0, range_ticks)
    # Overnight bars move more per unit of range than RTH bars (fewer, larger ticks): ETH_BOOST.
    range_ticks = np.where(lab.is_rth, range_ticks, range_ticks * ETH_BOOST)
    scale = np.sqrt(bar_ns / (60 * NS))
    sigma = range_ticks * _SIGMA_PER_RANGE_TICK * scale

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(bar_ns // NS)]))
    n = ts.size
    ndays = int(lab.session.max() - lab.session.min() + 1)
    day_idx = (lab.session - lab.session.min()).astype(np.int64)
    day_level = np.exp(DAY_VOL_SIGMA * rng.standard_normal(ndays) - 0.5 * DAY_VOL_SIGMA**2)
    sigma = sigma * day_level[day_idx]
    z = rng.standard_t(T_DOF, size=(n, SUBSTEPS)) * np.sqrt((T_DOF - 2.0) / T_DOF)
    noise = rng.standard_normal(n)
    excursion = rng.standard_exponential((n, 2)) * EXCURSION
    o, h, l, c, absret = _simulate(sigma, z, excursion, np.log(round(start_price / TICK) * TICK),
                                   GARCH_ALPHA, GARCH_BETA, TICK)
    vshape = _VOLUME_PROFILE[bucket] * MES_VOLUME_FACTOR * (bar_ns / (60 * NS))
    vshape = np.where(off_rth, 150.0 * MES_VOLUME_FACTOR * (bar_ns / (60 * NS)), vshape)
    rel = absret / np.maximum(sigma, 1e-12)
    vol = vshape * np.exp(0.35 * noise - 0.06) * (0.6 + 0.4 * np.minimum(rel, 6.0))
    vol = np.maximum(np.round(vol), 1.0)
    return Bars(ts, o, h, l, c, vol.astype(np.float64), symbol=symbol, bar_ns=int(bar_ns),
                source=f"generated:seed={seed}")


@numba.njit(cache=True)
def _simulate(sigma, z, excursion, logp0, alpha, beta, tick):  # pragma: no cover - compiled
    n, m = z.shape
    o = np.empty(n)
    h = np.empty(n)
    l = np.empty(n)
    c = np.empty(n)
    absret = np.empty(n)
    var = 1.0
    omega = 1.0 - alpha - beta
    x = logp0
    inv_sqrt_m = 1.0 / np.sqrt(m)
    for i in range(n):
        sd = sigma[i] * np.sqrt(var)
        x0 = x
        hi = x
        lo = x
        shock = 0.0
        for k in range(m):
            step = z[i, k] * inv_sqrt_m
            shock += step
            x += sd * step
            if x > hi:
                hi = x
            if x < lo:
                lo = x
        var = omega + alpha * shock * shock * var + beta * var
        if var > 25.0:
            var = 25.0
        po = np.exp(x0)
        pc = np.exp(x)
        o[i] = np.round(po / tick) * tick
        c[i] = np.round(pc / tick) * tick
        h[i] = np.round(np.exp(hi + sd * excursion[i, 0]) / tick) * tick
        l[i] = np.round(np.exp(lo - sd * excursion[i, 1]) / tick) * tick
        absret[i] = abs(x - x0)
    return o, h, l, c, absret
