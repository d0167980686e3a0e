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

from typing import Any

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
    from engine.data.validate import require_clean_rows
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
    out: dict[str, Any] = {CLASS_NAMES[k]: int(cnt[k + 1]) for k in (DOWN, FLAT, UP)}
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


# ---------------------------------------------------------------------------------------------
# The bracket outcome (triple barrier) and the meta-label
# ---------------------------------------------------------------------------------------------

OUT_NONE, OUT_STOP, OUT_TARGET, OUT_TIME = 0, 1, 2, 3
"""How a simulated bracket ended: no outcome (no label), stop, target, time limit."""


class BracketOutcomes:
    """Per-bar outcome of a bracket entered at the close of each bar, long and short.

    Arrays of length n (one per bar ``t``; the decision is taken at the close of ``t`` as the
    kernel does, the market entry fills at the open of ``t + 1``):

    - ``long_ticks`` / ``short_ticks``: float64 net result in ticks per contract AFTER costs
      (entry and exit slippage in ticks, commission + exchange fees converted to ticks); NaN where
      there is no outcome (the time limit leaves the session or crosses a gap, the ATR is not yet
      defined, or the end of the data);
    - ``long_how`` / ``short_how``: int8 :data:`OUT_STOP` / :data:`OUT_TARGET` / :data:`OUT_TIME`
      (0 = none);
    - ``long_exit`` / ``short_exit``: int64 index of the exit bar (-1 = none);
    - ``stop_ticks``: int32 stop distance used (ticks; the target is ``floor(reward_risk × stop)``);
    - ``tick_value``: dollars per tick per contract, ``horizon``: the time limit in bars.
    """

    def __init__(self, long_ticks, short_ticks, long_how, short_how, long_exit, short_exit,
                 stop_ticks, tick_value: float, horizon: int) -> None:
        self.long_ticks, self.short_ticks = long_ticks, short_ticks
        self.long_how, self.short_how = long_how, short_how
        self.long_exit, self.short_exit = long_exit, short_exit
        self.stop_ticks = stop_ticks
        self.tick_value = float(tick_value)
        self.horizon = int(horizon)

    def __len__(self) -> int:
        return len(self.long_ticks)

    def side_ticks(self, side: np.ndarray) -> np.ndarray:
        """Net ticks per bar of the bracket on ``side`` (int (n,): +1 long, -1 short, 0 → NaN)."""
        side = np.asarray(side)
        return np.where(side > 0, self.long_ticks, np.where(side < 0, self.short_ticks, np.nan))


def bracket_outcomes(bars: Bars, settings, *, horizon_bars: int, fill_model: str | None = None,
                     market=None) -> BracketOutcomes:
    """Simulate, at every bar, the bracket the kernel would place, long and short (triple barrier).

    The three barriers (López de Prado, *Advances in Financial Machine Learning*, 2018, ch. 3.4,
    "the triple-barrier method") are the kernel's own: the stop distance of
    :func:`engine.risk.stops.initial_stop_ticks` without the EOD tightening (``[stops]`` method
    atr / fixed / structure, rounded up to whole ticks, clamped to [min_stop_ticks,
    max_stop_ticks]), the target ``floor(reward_risk × stop)`` ticks, and a time limit of
    ``horizon_bars`` bars after the entry bar. Entry: market at the open of bar ``t + 1`` plus the
    bar's slippage (``engine.venue.sim.slippage_ticks`` of the fill model, adverse); stop exits
    fill at the stop (or at the open when the bar gaps through it) minus the slippage; target
    exits fill at the target (limit, ``slippage.limit_ticks``); time-limit exits at the close of
    the last bar minus the slippage. A bar that touches both the stop and the target counts as a
    stop (the conservative fill model's rule). Costs: ``2 × (commission + exchange fee)`` per
    contract, converted to ticks. Breakeven and trailing are NOT simulated (an approximation,
    stated here: the kernel's trade may exit at breakeven where this label holds a loss or a
    time-limit exit).

    No outcome (NaN) where bar ``t + horizon`` is not in the same Globex session as ``t``, or the
    window crosses a gap (missing bar), or the ATR is undefined, or past the end of the data.

    Args:
        bars: :class:`Bars` with a known bar size. settings: :class:`engine.config.Settings`.
        horizon_bars: time limit ≥ 1 bar. fill_model: default ``backtest.fill_model``.
        market: a :class:`engine.market.inputs.MarketInputs` of ``bars`` (computed when not given).
    Raises:
        DataError: bad horizon or bar size.
    """
    from engine.market.inputs import prepare_market
    from engine.instruments import spec as instrument_spec

    if horizon_bars < 1:
        raise DataError(f"bracket time limit must be ≥ 1 bar, got {horizon_bars}")
    if bars.bar_ns <= 0:
        raise DataError("bar size unknown (0): cannot tell gaps from contiguous bars", path=bars.source or None)
    fill_model = fill_model or settings.backtest.fill_model
    mk = market if market is not None else prepare_market(bars, settings, fill_model)
    sp = instrument_spec(settings.instrument.symbol)
    st = settings.stops
    method = {"atr": 0, "fixed": 1, "structure": 2}[st.method]
    cost_ticks = 2.0 * (settings.costs.commission_per_side + settings.costs.exchange_fee_per_side) / sp.tick_value
    from engine.data.sessions import session_labels

    lab = session_labels(bars)
    lt, st_, lh, sh, lx, sx, stop_t = _brackets(np.ascontiguousarray(bars.ts, np.int64), bars.open, bars.high, bars.low, bars.close,
                    lab.session, np.asarray(mk.atr, np.float64), np.asarray(mk.slip, np.float64),
                    np.int64(horizon_bars), np.int64(bars.bar_ns), float(sp.tick_size), method,
                    float(st.atr_multiplier), int(st.fixed_ticks), int(st.structure_lookback),
                    int(st.min_stop_ticks), int(st.max_stop_ticks), float(st.reward_risk),
                    float(settings.slippage.limit_ticks) if fill_model != "optimistic" else 0.0, float(cost_ticks))
    return BracketOutcomes(lt, st_, lh, sh, lx, sx, stop_t, tick_value=sp.tick_value, horizon=horizon_bars)


@numba.njit(cache=True, nogil=True)
def _one_side(side, t, e, h, ts, o, hi, lo, c, slip, stop_t, tgt_t, tick, limit_slip, cost):  # pragma: no cover
    entry = o[t + 1] + side * slip[t + 1] * tick
    stop = entry - side * stop_t * tick
    target = entry + side * tgt_t * tick
    for j in range(t + 1, e + 1):
        if side > 0:
            if lo[j] <= stop:
                px = min(o[j], stop) if j > t + 1 else stop
                return (px - slip[j] * tick - entry) / tick - cost, 1, j
            if hi[j] >= target:
                return (target - limit_slip * tick - entry) / tick - cost, 2, j
        else:
            if hi[j] >= stop:
                px = max(o[j], stop) if j > t + 1 else stop
                return (entry - px - slip[j] * tick) / tick - cost, 1, j
            if lo[j] <= target:
                return (entry - target - limit_slip * tick) / tick - cost, 2, j
    px = c[e] - side * slip[e] * tick
    return side * (px - entry) / tick - cost, 3, e


@numba.njit(cache=True, nogil=True)
def _brackets(ts, o, hi, lo, c, session, atr, slip, h, bar_ns, tick, method, atr_mult, fixed,
              lookback, min_t, max_t, rr, limit_slip, cost):  # pragma: no cover
    n = ts.shape[0]
    # row 0 the long bracket, row 1 the short one
    result = np.full((2, n), np.nan)
    how_out = np.zeros((2, n), np.int8)
    exit_at = np.full((2, n), -1, np.int64)
    stops = np.zeros(n, np.int32)
    for t in range(n - h - 1):
        e = t + 1 + h  # entry at bar t+1's open, time limit h bars later
        if session[t] < 0 or session[e] != session[t] or ts[e] - ts[t] != (h + 1) * bar_ns:
            continue
        for row in range(2):
            side = 1 - 2 * row
            if method == 0:
                a = atr[t]
                if not (a > 0):
                    break
                k = int(np.ceil(a * atr_mult / tick - 1e-9))
            elif method == 1:
                k = fixed
            else:
                if t + 1 < lookback:
                    break
                entry_i = int(np.round(c[t] / tick))
                if side > 0:
                    m = lo[t + 1 - lookback]
                    for q in range(t + 2 - lookback, t + 1):
                        m = min(m, lo[q])
                    k = entry_i - (int(np.floor(m / tick + 1e-6)) - 1)
                else:
                    m = hi[t + 1 - lookback]
                    for q in range(t + 2 - lookback, t + 1):
                        m = max(m, hi[q])
                    k = (int(np.ceil(m / tick - 1e-6)) + 1) - entry_i
            k = min(max(k, min_t), max_t)
            tg = int(np.floor(rr * k + 1e-9))
            v, how, x = _one_side(side, t, e, h, ts, o, hi, lo, c, slip, k, tg, tick, limit_slip, cost)
            stops[t] = k
            result[row, t], how_out[row, t], exit_at[row, t] = v, how, x
    return result[0], result[1], how_out[0], how_out[1], exit_at[0], exit_at[1], stops


def make_bracket_target(outcomes: BracketOutcomes, primary_side: np.ndarray | None = None) -> np.ndarray:
    """3-class target from bracket outcomes: int8 (n,) with DOWN=0 / FLAT=1 / UP=2, -1 = none.

    Direct mode (``primary_side`` None): UP where the LONG bracket ends net-positive after
    costs, DOWN where the SHORT bracket does, FLAT where neither does (both cannot: with the
    same stop distance and reward:risk ≥ 1 a long target is reached only after the short stop,
    and at the time limit both exit at the same close). Meta-label mode (López de Prado 2018,
    ch. 3.6 "meta-labeling"): ``primary_side`` (int (n,), +1/-1/0) is a rule strategy's signal;
    where it is non-zero the label is the signal's class (UP for a long, DOWN for a short) when
    that bracket ends net-positive, else FLAT (skip); rows without a primary signal get no label.
    """
    lt, st = outcomes.long_ticks, outcomes.short_ticks
    ok = np.isfinite(lt) & np.isfinite(st)
    y = np.full(len(lt), NO_LABEL, np.int8)
    if primary_side is None:
        y[ok] = FLAT
        y[ok & (lt > 0)] = UP
        y[ok & (st > 0)] = DOWN
        return y
    side = np.asarray(primary_side)
    if len(side) != len(lt):
        raise DataError(f"primary signal has {len(side)} rows, the outcomes {len(lt)}")
    on = ok & (side != 0)
    y[on] = FLAT
    y[on & (side > 0) & (lt > 0)] = UP
    y[on & (side < 0) & (st > 0)] = DOWN
    return y


def trade_expectancy(outcomes: BracketOutcomes, side: np.ndarray, rows: np.ndarray | None = None) -> dict:
    """Expectancy after costs of the brackets taken on ``side`` (+1/-1/0 per bar) at ``rows``.

    Two figures: ``per_signal`` scores every signalled bar (overlapping trades allowed) and
    ``one_at_a_time`` takes a signal only after the previous bracket has exited (the kernel holds
    one position at a time; its cooldowns and risk limits are not applied here). Each has
    ``trades``, ``mean_ticks``, ``std_ticks``, ``se_ticks`` (standard error), ``mean_usd`` (per
    contract, $), ``total_usd``, ``win_rate``. Rows without an outcome are not counted.
    """
    side = np.asarray(side)
    idx = np.arange(len(side)) if rows is None else np.asarray(rows, np.int64)
    idx = idx[side[idx] != 0]
    s_i = side[idx]
    v = np.where(s_i > 0, outcomes.long_ticks[idx], outcomes.short_ticks[idx])
    ok = np.isfinite(v)
    idx, v, s_i = idx[ok], v[ok], s_i[ok]
    ex = np.where(s_i > 0, outcomes.long_exit[idx], outcomes.short_exit[idx])
    keep = np.zeros(len(idx), bool)
    busy_until = -1
    for q in range(len(idx)):
        if idx[q] + 1 > busy_until:  # entry at the next bar's open, after the last exit bar
            keep[q] = True
            busy_until = int(ex[q])

    def stats(a):
        m = len(a)
        tv = outcomes.tick_value
        mean = float(a.mean()) if m else 0.0
        sd = float(a.std(ddof=1)) if m > 1 else 0.0
        return {"trades": int(m), "mean_ticks": mean, "std_ticks": sd,
                "se_ticks": sd / np.sqrt(m) if m > 1 else 0.0, "mean_usd": mean * tv,
                "total_usd": float(a.sum()) * tv, "win_rate": float((a > 0).mean()) if m else 0.0}

    return {"per_signal": stats(v), "one_at_a_time": stats(v[keep])}


def meta_take_probability(probs: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Probability of TAKING a rule signal under a meta-label model: ``P(side's class) /
    (P(side's class) + P(FLAT))`` (the opposite class cannot be the label of that row, so its mass
    is left out), float64 (m,); NaN where ``side`` is 0. ``probs`` (m, 3) DOWN/FLAT/UP."""
    probs = np.asarray(probs, np.float64)
    side = np.asarray(side)
    p_side = np.where(side > 0, probs[:, 2], np.where(side < 0, probs[:, 0], np.nan))
    den = p_side + probs[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((side != 0) & (den > 0), p_side / den, np.nan)
