"""The compiled per-bar slippage pass behind :func:`engine.venue.sim.slippage_ticks` (numba).

Its own module because engine/venue/sim.py is compiled by mypyc (setup.py), and a mypyc-compiled
function cannot be given to ``numba.njit``. Inputs: bool/float64 arrays of shape (n,), ticks and
a ratio as floats; output: float64 ticks, shape (n,). The rule is documented at ``slippage_ticks``.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _slippage_pass(is_rth, atr, atr_normal, market, thin, hv_min, hv_max, hv_ratio):  # pragma: no cover
    n = is_rth.shape[0]
    out = np.empty(n)
    for i in range(n):
        v = market if is_rth[i] else thin
        an = atr_normal[i]
        if an > 0:
            r = atr[i] / an
            if r >= hv_ratio:  # False for NaN
                t = min(max(np.rint(hv_min * r / hv_ratio), hv_min), hv_max)
                if t > v:
                    v = t
        out[i] = v
    return out
