"""Modelled top of book for bar data that carries no quotes (demo, replay, backtest).

Bars hold OHLCV only, so the bid/ask shown in the console and fed to the spread breaker
(REQUIREMENTS R-RISK-5) in replay and backtest come from this one documented model. Paper and
live use the broker's real quotes instead.

Model (MES/ES, CME Globex): the outright front month quotes a one-tick market almost all the
time in RTH and most of the night; the book thins and widens in ETH when volatility is high and
in any session when volatility is extreme. So, with ``ratio = ATR / normal ATR``:

- 1 tick normally;
- 2 ticks in ETH when ``ratio >= high_vol_atr_ratio`` (``[slippage] high_vol_atr_ratio``, 1.5);
- 3 ticks in any session when ``ratio >= volatility_breaker_ratio`` (``[risk]``, 3.0).

A NaN ratio (ATR still warming up) counts as normal. The last trade (the bar's close) is taken
to sit on the bid: ``bid = close``, ``ask = close + spread × tick``.
"""

from __future__ import annotations

import numba
import numpy as np


def spread_ticks(is_rth, atr, atr_normal, high_vol_ratio: float, extreme_ratio: float) -> np.ndarray:
    """Vectorised modelled spread in ticks.

    ``is_rth``: bool (n,); ``atr``, ``atr_normal``: float64 (n,) points. Returns float64 (n,)
    ticks (1, 2 or 3). Same rule as :func:`spread_ticks_one`.
    """
    is_rth = np.ascontiguousarray(is_rth, dtype=np.bool_)
    atr = np.ascontiguousarray(atr, dtype=np.float64)
    atr_normal = np.ascontiguousarray(atr_normal, dtype=np.float64)
    if not (is_rth.shape == atr.shape == atr_normal.shape and is_rth.ndim == 1):
        raise ValueError(f"spread_ticks: shapes {is_rth.shape}, {atr.shape}, {atr_normal.shape} must be one (n,)")
    return _spread_pass(is_rth, atr, atr_normal, float(high_vol_ratio), float(extreme_ratio))


@numba.njit(cache=True, error_model="numpy")
def _spread_pass(is_rth, atr, atr_normal, high_vol_ratio, extreme_ratio):  # pragma: no cover - compiled
    """:func:`spread_ticks` in one compiled pass (IEEE division: x / 0 is ±inf or NaN, both
    counted as a ratio of 0, as the vectorised rule did)."""
    n = is_rth.shape[0]
    out = np.empty(n)
    for i in range(n):
        r = atr[i] / atr_normal[i]
        if not np.isfinite(r):
            r = 0.0
        v = 1.0
        if not is_rth[i] and r >= high_vol_ratio:
            v = 2.0
        if r >= extreme_ratio:
            v = 3.0
        out[i] = v
    return out


def spread_ticks_one(is_rth: bool, atr: float, atr_normal: float, high_vol_ratio: float,
                     extreme_ratio: float) -> float:
    """Modelled spread in ticks for one bar (streaming path; equals :func:`spread_ticks`)."""
    ratio = atr / atr_normal if atr_normal and atr_normal > 0 else float("nan")
    if not np.isfinite(ratio):
        return 1.0
    if ratio >= extreme_ratio:
        return 3.0
    if not is_rth and ratio >= high_vol_ratio:
        return 2.0
    return 1.0


def quote_from_close(close: float, spread: float, tick_size: float) -> tuple[float, float]:
    """Modelled ``(bid, ask)`` in points for a bar that closed at ``close`` with ``spread`` ticks."""
    return close, close + spread * tick_size
