"""The one per-bar feature update, shared by the batch loop and the streaming object.

:func:`step` advances a bounded state by one closed bar and writes the full feature row. The
batch path (:func:`batch_kernel`) is nothing but a loop calling :func:`step` over a history; the
streaming path (:class:`engine.features.FeatureStream`) calls the same :func:`step` once per
bar. There is no second implementation of any formula, so batch and streaming
cannot drift apart; parity is still tested on real data (tests/test_features_parity.py).

Every formula is documented in specs/features.md. Column order of the full row is ``FULL_NAMES``;
a :class:`~engine.features.FeatureSet` selects a subset (volume columns only with volume) and
renames the anchored-average columns (``vwap_*`` with volume, ``twap_*`` without).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# ---------------------------------------------------------------- fixed parameters (bars)
RET_PERIODS = (1, 5, 10, 30, 60)
EMA_PERIODS = (9, 21, 50, 200)
ANCHOR_SLOPE_BARS = 10
ATR_BARS = 14
RSI_BARS = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
STOCH_K_BARS, STOCH_D_BARS = 14, 3
VOL_BARS = 30
HTF_EMA = 10  # HTF trend: close vs EMA of the last completed HTF closes
HTF_MOM = 5  # HTF momentum: return over 5 completed HTF bars
HTF_VOL = 10  # HTF volatility: std of the last 10 HTF log returns
RTH_MINUTES = 390.0  # 09:30-16:00 New York, the normaliser of to_rth_close

RING = 64  # base-series ring length (power of two, > 60 the longest base lookback)
RMASK = RING - 1
HRING = 16  # completed-HTF-close ring length (> HTF_VOL + 1)
HMASK = HRING - 1

# ---------------------------------------------------------------- full row layout
C_RET = 0  # 5 columns
C_EMA = 5  # 4 columns
C_ANCHOR = 9
C_ANCHOR_SLOPE = 10
C_TO_CLOSE = 11
C_TOD_SIN = 12
C_TOD_COS = 13
C_ATR = 14
C_RSI = 15
C_MACD = 16
C_STOCH_K = 17
C_STOCH_D = 18
C_DIR = 19
C_BODY = 20
C_UWICK = 21
C_LWICK = 22
C_HTF = 23  # 2 timeframes x (trend, mom, vol)
N_BASE = 29  # columns of every feature set; the volume columns follow only with volume
C_VDELTA = 29
C_OBV = 30
C_VREL = 31
N_FULL = 32

# ---------------------------------------------------------------- state layout
# ist (int64): counters and keys
I_N, I_LAST_TS, I_SEG_DAY, I_SEG_RTH, I_SEG_COUNT = 0, 1, 2, 3, 4
I_HTF = 5  # per timeframe j: +3j bucket end ns, +3j+1 finalised flag, +3j+2 completed count
I_HH_POS, I_LL_POS = 11, 12  # bar index of the 14-bar highest high / lowest low
N_IST = 13
# st (float64): smoothed values
S_EMA = 0  # 4 EMAs
S_EMA_FAST, S_EMA_SLOW, S_MACD_SIG = 4, 5, 6
S_ATR, S_GAIN, S_LOSS = 7, 8, 9
S_SUM_PW, S_SUM_W, S_OBV, S_PREV_C = 10, 11, 12, 13
S_HTF = 14  # per timeframe j: +4j ema, +4j+1 trend, +4j+2 mom, +4j+3 vol
S_HH, S_LL = 22, 23  # 14-bar highest high / lowest low
N_ST = 24
# rb rows (float64, (N_RB, RING))
R_CLOSE, R_HIGH, R_LOW, R_ANCHOR, R_K, R_VOL, R_SVOL, R_OBV = 0, 1, 2, 3, 4, 5, 6, 7
N_RB = 8

NAN = np.nan


def new_state() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh state arrays ``(ist int64 (N_IST,), st float64 (N_ST,), rb float64 (N_RB, RING),
    hr float64 (2, 2, HRING))``; bounded, independent of the history length. ``hr[j, 0]`` holds
    the completed closes of timeframe ``j``, ``hr[j, 1]`` their natural logs."""
    return (
        np.zeros(N_IST, np.int64),
        np.zeros(N_ST, np.float64),
        np.full((N_RB, RING), np.nan),
        np.full((2, 2, HRING), np.nan),
    )


_TOD_ANGLE = 2.0 * np.pi * np.arange(86_400, dtype=np.float64) / 86_400.0
TOD_TABLE = np.ascontiguousarray(np.stack([np.sin(_TOD_ANGLE), np.cos(_TOD_ANGLE)]))
"""(2, 86400) float64: sin and cos of 2π · (New York second of the day) / 86400; both paths
look the time-of-day features up here (one definition, no per-bar trigonometry)."""


@numba.njit(cache=True)
def _htf_push(j, close, ist, st, hr):  # pragma: no cover - compiled
    cnt = ist[I_HTF + 3 * j + 2]
    hr[j, 0, cnt & HMASK] = close
    hr[j, 1, cnt & HMASK] = math.log(close)
    cnt += 1
    ist[I_HTF + 3 * j + 2] = cnt
    base = S_HTF + 4 * j
    if cnt == 1:
        st[base] = close
    else:
        st[base] += (2.0 / (HTF_EMA + 1.0)) * (close - st[base])
    st[base + 1] = close / st[base] - 1.0 if cnt >= HTF_EMA else NAN
    st[base + 2] = (close / hr[j, 0, (cnt - 1 - HTF_MOM) & HMASK] - 1.0
                    if cnt >= HTF_MOM + 1 else NAN)
    if cnt >= HTF_VOL + 1:
        m = 0.0
        for q in range(HTF_VOL):
            m += hr[j, 1, (cnt - 1 - q) & HMASK] - hr[j, 1, (cnt - 2 - q) & HMASK]
        m /= HTF_VOL
        ss = 0.0
        for q in range(HTF_VOL):
            d = hr[j, 1, (cnt - 1 - q) & HMASK] - hr[j, 1, (cnt - 2 - q) & HMASK] - m
            ss += d * d
        st[base + 3] = math.sqrt(ss / HTF_VOL)
    else:
        st[base + 3] = NAN


@numba.njit(cache=True, inline="always")
def _track_extreme(st, ist, rb, s_k, i_k, r_k, n, x, highest):  # pragma: no cover - compiled
    """The STOCH_K_BARS-bar highest (``highest``) or lowest value of ring row ``r_k`` after bar
    ``n`` with value ``x``: kept in ``st[s_k]``, its bar index in ``ist[i_k]``. The window is
    rescanned only when the extreme leaves it (max and min are exact, so this equals a full scan)."""
    if n == 0 or (x >= st[s_k] if highest else x <= st[s_k]):
        st[s_k] = x
        ist[i_k] = n
    elif n - ist[i_k] >= STOCH_K_BARS:
        best = x
        at = n
        for q in range(1, STOCH_K_BARS):
            xq = rb[r_k, (n - q) & RMASK]
            if (xq > best) if highest else (xq < best):
                best = xq
                at = n - q
        st[s_k] = best
        ist[i_k] = at


@numba.njit(cache=True, inline="always")  # inlined into the batch loop (~15 % faster)
def step(ist, st, rb, hr, ts, o, h, l, c, v, ny_sec, trading_day, row, t_rth_open, t_rth_close,
         t_close, tod, bar_ns, h1_ns, h2_ns, use_vol, out):  # pragma: no cover - compiled
    """Advance the state by one closed bar and write the full feature row ``out`` (N_FULL,).

    ``ts`` bar open UTC ns; prices in points; ``v`` contracts (ignored unless ``use_vol``);
    ``ny_sec``, ``trading_day`` and ``row`` are the bar's session labels
    (:meth:`engine.calendar.CmeCalendar.label` / ``label_one``: seconds since New York midnight,
    CME trading day, session-table row or −1 outside every session); ``t_rth_open``,
    ``t_rth_close``, ``t_close`` the session table's columns (UTC ns, −1 = no RTH); ``tod`` is
    :data:`TOD_TABLE`. ``out`` (float64) has N_FULL
    columns with volume and N_BASE without: the volume columns come last and are written only
    when ``use_vol``."""
    n = ist[I_N]
    pos = n & RMASK
    cnt = n + 1
    prev_c = st[S_PREV_C]
    rb[R_CLOSE, pos] = c
    rb[R_HIGH, pos] = h
    rb[R_LOW, pos] = l

    # returns over 1/5/10/30/60 bars
    for q in range(5):
        k = RET_PERIODS[q]
        out[C_RET + q] = c / rb[R_CLOSE, (n - k) & RMASK] - 1.0 if n >= k else NAN

    # EMAs (seeded with the first close) as relative distance of the close
    for q in range(4):
        p = EMA_PERIODS[q]
        if n == 0:
            st[S_EMA + q] = c
        else:
            st[S_EMA + q] += (2.0 / (p + 1.0)) * (c - st[S_EMA + q])
        out[C_EMA + q] = c / st[S_EMA + q] - 1.0 if cnt >= p else NAN

    # MACD histogram / close
    if n == 0:
        st[S_EMA_FAST] = c
        st[S_EMA_SLOW] = c
    else:
        st[S_EMA_FAST] += (2.0 / (MACD_FAST + 1.0)) * (c - st[S_EMA_FAST])
        st[S_EMA_SLOW] += (2.0 / (MACD_SLOW + 1.0)) * (c - st[S_EMA_SLOW])
    macd = st[S_EMA_FAST] - st[S_EMA_SLOW]
    if n == 0:
        st[S_MACD_SIG] = macd
    else:
        st[S_MACD_SIG] += (2.0 / (MACD_SIGNAL + 1.0)) * (macd - st[S_MACD_SIG])
    out[C_MACD] = (macd - st[S_MACD_SIG]) / c if cnt >= MACD_SLOW + MACD_SIGNAL - 1 else NAN

    # ATR % (Wilder, seeded by the running mean of the first 14 true ranges)
    if n == 0:
        tr = h - l
    else:
        tr = max(h, prev_c) - min(l, prev_c)
    m = cnt if cnt < ATR_BARS else ATR_BARS
    st[S_ATR] += (tr - st[S_ATR]) / m
    out[C_ATR] = st[S_ATR] / c if cnt >= ATR_BARS else NAN

    # RSI (Wilder) as (RSI - 50) / 50 = (avg gain - avg loss) / (avg gain + avg loss)
    if n >= 1:
        d = c - prev_c
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        m = n if n < RSI_BARS else RSI_BARS
        st[S_GAIN] += (g - st[S_GAIN]) / m
        st[S_LOSS] += (lo - st[S_LOSS]) / m
    if n >= RSI_BARS:
        den = st[S_GAIN] + st[S_LOSS]
        out[C_RSI] = (st[S_GAIN] - st[S_LOSS]) / den if den > 0.0 else 0.0
    else:
        out[C_RSI] = NAN

    # stochastic %K (14) and %D (3-bar mean of %K) from the 14-bar highest high / lowest low
    _track_extreme(st, ist, rb, S_HH, I_HH_POS, R_HIGH, n, h, True)
    _track_extreme(st, ist, rb, S_LL, I_LL_POS, R_LOW, n, l, False)
    if cnt >= STOCH_K_BARS:
        hh = st[S_HH]
        ll = st[S_LL]
        kv = (c - ll) / (hh - ll) if hh > ll else 0.5
        out[C_STOCH_K] = kv
        rb[R_K, pos] = kv
    else:
        out[C_STOCH_K] = NAN
        rb[R_K, pos] = NAN
    if cnt >= STOCH_K_BARS + STOCH_D_BARS - 1:
        sk = 0.0
        for q in range(STOCH_D_BARS):
            sk += rb[R_K, (n - q) & RMASK]
        out[C_STOCH_D] = sk / STOCH_D_BARS
    else:
        out[C_STOCH_D] = NAN

    # bar microstructure
    rng = h - l
    out[C_DIR] = 1.0 if c > o else (-1.0 if c < o else 0.0)
    if rng > 0.0:
        out[C_BODY] = abs(c - o) / rng
        out[C_UWICK] = (h - max(o, c)) / rng
        out[C_LWICK] = (min(o, c) - l) / rng
    else:
        out[C_BODY] = 0.0
        out[C_UWICK] = 0.0
        out[C_LWICK] = 0.0

    # anchored average price: VWAP (volume weights) or TWAP (equal weights) of the typical price,
    # reset at the Globex session open and at the RTH open of that session
    if row >= 0:
        sess_day = trading_day
        rth_open = t_rth_open[row]
        ref_close = t_rth_close[row] if t_rth_close[row] >= 0 else t_close[row]
    else:
        sess_day = -1
        rth_open = -1
        ref_close = -1
    started = 1 if (sess_day >= 0 and rth_open >= 0 and ts >= rth_open) else 0
    if n == 0 or sess_day != ist[I_SEG_DAY] or started != ist[I_SEG_RTH]:
        ist[I_SEG_DAY] = sess_day
        ist[I_SEG_RTH] = started
        ist[I_SEG_COUNT] = 0
        st[S_SUM_PW] = 0.0
        st[S_SUM_W] = 0.0
    tp = (h + l + c) / 3.0
    w = v if use_vol else 1.0
    st[S_SUM_PW] += tp * w
    st[S_SUM_W] += w
    anchor = st[S_SUM_PW] / st[S_SUM_W] if st[S_SUM_W] > 0.0 else tp
    seg = ist[I_SEG_COUNT] + 1
    ist[I_SEG_COUNT] = seg
    rb[R_ANCHOR, pos] = anchor
    out[C_ANCHOR] = c / anchor - 1.0
    ms = seg - 1 if seg - 1 < ANCHOR_SLOPE_BARS else ANCHOR_SLOPE_BARS
    out[C_ANCHOR_SLOPE] = anchor / rb[R_ANCHOR, (n - ms) & RMASK] - 1.0

    # time: to the RTH close (normalised by 390 min) and time of day
    if sess_day >= 0:
        out[C_TO_CLOSE] = (ref_close - (ts + bar_ns)) / (RTH_MINUTES * 60e9)
    else:
        out[C_TO_CLOSE] = NAN
    out[C_TOD_SIN] = tod[0, ny_sec]
    out[C_TOD_COS] = tod[1, ny_sec]

    # volume features
    if use_vol:
        sv = v * (c - o) / rng if rng > 0.0 else 0.0
        if n >= 1:
            if c > prev_c:
                st[S_OBV] += v
            elif c < prev_c:
                st[S_OBV] -= v
        rb[R_VOL, pos] = v
        rb[R_SVOL, pos] = sv
        rb[R_OBV, pos] = st[S_OBV]
        if cnt >= VOL_BARS:
            sum_v = 0.0
            sum_sv = 0.0
            for q in range(VOL_BARS):
                sum_v += rb[R_VOL, (n - q) & RMASK]
                sum_sv += rb[R_SVOL, (n - q) & RMASK]
            out[C_VDELTA] = sum_sv / sum_v if sum_v > 0.0 else 0.0
            out[C_VREL] = v / (sum_v / VOL_BARS) - 1.0 if sum_v > 0.0 else 0.0
            if n >= VOL_BARS:  # OBV moved on the last 30 bars, whose volumes are sum_v
                dobv = st[S_OBV] - rb[R_OBV, (n - VOL_BARS) & RMASK]
                out[C_OBV] = dobv / sum_v if sum_v > 0.0 else 0.0
            else:
                out[C_OBV] = NAN
        else:
            out[C_VDELTA] = NAN
            out[C_VREL] = NAN
            out[C_OBV] = NAN

    # higher timeframes: only HTF bars whose interval [T, T+H) has ended by this bar's close
    for j in range(2):
        kb = I_HTF + 3 * j
        if n == 0 or ts >= ist[kb]:  # ist[kb]: end (UTC ns) of the current bucket [T, T+H)
            if n > 0 and ist[kb + 1] == 0:
                # the previous bucket ended without a bar closing at its end: it is complete
                # now, at the first bar past its end, with the close of its last bar
                _htf_push(j, prev_c, ist, st, hr)
            hns = h1_ns if j == 0 else h2_ns
            ist[kb] = (ts // hns + 1) * hns
            ist[kb + 1] = 0
        if ist[kb + 1] == 0 and ts + bar_ns >= ist[kb]:
            _htf_push(j, c, ist, st, hr)
            ist[kb + 1] = 1
        if ist[kb + 2] == 0:
            for q in range(3):
                out[C_HTF + 3 * j + q] = NAN
        else:
            for q in range(3):
                out[C_HTF + 3 * j + q] = st[S_HTF + 4 * j + 1 + q]

    st[S_PREV_C] = c
    ist[I_N] = cnt
    ist[I_LAST_TS] = ts


@numba.njit(cache=True)
def batch_kernel(ts, o, h, l, c, v, ny_sec, trading_day, row, t_rth_open, t_rth_close, t_close,
                 tod, bar_ns, h1_ns, h2_ns, use_vol, ist, st, rb, hr):  # pragma: no cover
    """Loop :func:`step` over a whole history; returns float64 (n, N_FULL or N_BASE)."""
    n = ts.shape[0]
    res = np.empty((n, N_FULL if use_vol else N_BASE), np.float64)
    for i in range(n):
        step(ist, st, rb, hr, ts[i], o[i], h[i], l[i], c[i], v[i], ny_sec[i], trading_day[i],
             row[i], t_rth_open, t_rth_close, t_close, tod, bar_ns, h1_ns, h2_ns, use_vol,
             res[i])
    return res
