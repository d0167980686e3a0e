"""Backtest runner: the trading kernel driven by a SimClock and a SimVenue over bars (R-BT-1).

Per stepped bar ``i``: :func:`engine.step.step_bar`, the one per-bar step of every mode (the
clock moves to the bar's close, open + bar length; the venue processes bar ``i``: market orders
at its open, then stops, then limits; the kernel takes one step,
:meth:`engine.kernel.TradingKernel.step`), on the batch market inputs of
:func:`engine.market.inputs.prepare_market`. ``fast=True`` steps only the bars where
something can happen (see :mod:`engine.backtest.fast`); ``fast=False`` steps every bar. Both give
the same trades (tested on real data, ``tests/test_backtest_real.py`` and
``tests/test_backtest_skip_latch.py``).

EOD: the EOD phase of each bar's close comes from the CME calendar and the ``[eod]`` profile
(:func:`engine.calendar.eod_schedule`; DST and early closes): entries need a phase before
``no_new`` (15:50 NY on a full day under the topstepx profile), positions are closed at market
from ``exit`` (16:00 NY) and so fill by the next bar's open, flat by 16:05 NY (TopstepX: 16:10).
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backtest.fast import equity_pass, scan_position
from engine.clock import perf_ns
from engine.execution.orders import OrderStatus
from engine.kernel import BarInput, SkipAheadRisk, TradeRecord, entry_window
from engine.market.inputs import MarketInputError, MarketInputs, prepare_market
from engine.parts import sim_parts
from engine.step import step_bar
from engine.strategy.base import StrategySignals

TRADE_COLUMNS = [
    "entry_time", "exit_time", "direction", "entry_price", "exit_price", "contracts",
    "gross_pnl", "commission", "slippage", "net_pnl", "exit_reason", "confidence",
    "predicted_class", "risk_dollars", "stop_ticks", "entry_bar", "exit_bar", "entry_ts", "exit_ts",
]


class BacktestError(MarketInputError):
    """Impossible backtest input (empty range, unknown fill model, mismatched signals)."""


@dataclass
class BacktestResult:
    """Output of :func:`run_backtest`. ``trades``: pandas DataFrame (:data:`TRADE_COLUMNS`);
    ``equity``: float64 (n,) dollars at each bar close; ``ts``: int64 bar open times."""

    trades: Any  # pandas DataFrame
    records: list
    equity: np.ndarray
    ts: np.ndarray
    day: np.ndarray
    starting_balance: float
    fill_model: str
    strategy: str
    steps: int
    bars: int
    elapsed_s: float
    alerts: list = field(default_factory=list)
    refused: dict = field(default_factory=dict)
    risk_audit: list = field(default_factory=list)
    halts: list = field(default_factory=list)
    research: bool = False
    account: dict | None = None
    """The account profile's verdict (:meth:`engine.risk.account_rules.AccountRules.verdict`:
    ``status`` passed / failed / open and its facts, ``failures``, ``liquidations``); None
    with ``[account] rules = "none"``."""

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def run_backtest(bars, signals: StrategySignals, settings, *, fill_model: str | None = None,
                 fast: bool = True, strategy_name: str = "", risk: SkipAheadRisk | None = None, progress=None,
                 native_oco: bool = True, market: MarketInputs | None = None,
                 research: bool | None = None) -> BacktestResult:
    """Run the kernel over ``bars`` with precomputed ``signals``.

    Args:
        bars: :class:`engine.data.bars.Bars`. signals: :class:`StrategySignals` of the same length.
        settings: :class:`engine.config.Settings`. fill_model: default ``backtest.fill_model``.
        fast: skip bars where nothing can happen (identical results).
        risk: a risk manager (default: ``engine.risk.RiskManager`` in memory).
        progress: optional callback ``(done_bars, total_bars)``.
        research: research mode (None = ``backtest.research``): each account-level halt
            (account drawdown, kill switch, minimum balance) is recorded and lifted at the next
            RTH open, so a losing strategy can be studied over the whole span; daily limits and
            pauses apply unchanged. Only used to build the default risk manager.
    The result's ``halts`` lists every halt, daily block and pause (``RiskManager.halt_log``);
    ``refused`` counts the refused entries by reason.
    Raises :class:`BacktestError` for mismatched lengths or an empty series.
    """
    fill_model = fill_model or settings.backtest.fill_model
    n = len(bars)
    if len(signals.direction) != n:
        raise BacktestError(f"signals have {len(signals.direction)} rows, bars {n}")
    if n == 0:
        raise BacktestError("no bars to backtest")
    t0 = perf_ns()
    research = bool(settings.backtest.research if research is None else research)
    parts = sim_parts(bars, settings, fill_model, market=market, native_oco=native_oco, risk=risk,
                      research=research)
    mk, spec, start_bal, venue, clock, k = parts.market, parts.spec, parts.start_balance, parts.venue, parts.clock, parts.kernel
    risk = parts.risk
    rk: SkipAheadRisk = risk  # the skip-ahead's questions go to the same object
    guard: Any = venue.guard  # the account's venue rules (the MLL liquidation), or None
    # issue 26: an event blackout that flattens / moves the stop acts on an open position at its
    # start; the skip-ahead with a position never jumps over that bar
    lk_next: Any = getattr(risk, "next_lockout_action_ns", None)

    d = np.ascontiguousarray(signals.direction, dtype=np.int8)
    conf = np.asarray(signals.confidence, dtype=np.float64)
    cls = np.asarray(signals.pred_class)
    # the bars where a flat kernel could enter: the signal rules' confidence gate and the
    # kernel's entry window (EOD phase, session), asked of their owners over whole arrays
    actionable = k.signals.actionable(d, conf)
    flat_idx = np.flatnonzero(actionable & entry_window(k.trade_session, mk.phase, mk.is_rth, mk.in_session))
    # plain lists: the skip-ahead bisects them a few thousand times (numpy's per-call overhead
    # on a scalar search costs more than the search)
    flat_targets, flat_close = flat_idx.tolist(), mk.close_ts[flat_idx].tolist()
    n_targets = len(flat_targets)
    st = settings.stops
    trail_on = st.breakeven_after_ticks > 0 or st.trailing_ticks > 0
    lookback = int(st.structure_lookback)
    swing = st.method == "structure"  # only the structure stop reads the recent highs/lows
    H, L, C, O, V = bars.high, bars.low, bars.close, bars.open, bars.volume
    close_ts, phase = mk.close_ts, mk.phase
    atr_a, atrn_a, avgv_a, rth_a, ins_a, day_a = mk.atr, mk.atr_normal, mk.avg_volume, mk.is_rth, mk.in_session, mk.day
    spr_a = mk.spread if mk.spread is not None else np.broadcast_to(np.float64(np.nan), (n,))
    # the per-bar reads go through memoryviews: indexing one returns the Python int / float /
    # bool at about half the cost of ``ndarray.item(i)`` (a method call per value)
    mO, mH, mL, mC, mV = _mv(O), _mv(H), _mv(L), _mv(C), _mv(V)
    m_close_ts, m_phase, m_atr, m_atrn, m_avgv = _mv(close_ts), _mv(phase), _mv(atr_a), _mv(atrn_a), _mv(avgv_a)
    m_rth, m_ins, m_day, m_spr = _mv(rth_a), _mv(ins_a), _mv(day_a), _mv(spr_a)
    m_d, m_conf, m_cls = _mv(d), _mv(conf), _mv(cls)
    pv = spec.point_value
    i = 0
    next_report = 0
    report_every = max(1, n // 200)
    # The run allocates many small objects (orders, events, records) that it mostly keeps; a
    # cyclic-GC pass over the whole process heap (pandas and all), which those allocations
    # trigger, would cost as much as the loop itself, and nothing here forms reference cycles
    # that need collecting (timeit disables the collector for the same reason). The collector is
    # off for the loop and the outputs, and its state is restored before returning.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while i < n:
            if progress is not None and i >= next_report:
                progress(i, n)
                next_report = i + report_every
            now = m_close_ts[i]
            lo = (i - lookback + 1 if i >= lookback else 0) if swing else 0
            step_bar(clock, venue, k, BarInput(
                i, now, mO[i], mH[i], mL[i], mC[i], m_atr[i], m_rth[i], m_ins[i],
                m_phase[i], m_day[i], m_d[i], m_conf[i], m_cls[i], m_atrn[i], mV[i],
                m_avgv[i], H[lo:i + 1] if swing else None, L[lo:i + 1] if swing else None, m_spr[i]))
            if not fast or k.busy():
                i += 1
                continue
            pos = k.position
            if pos == 0:
                # the next bar at which an entry could be approved: after the exit cooldown, any
                # pause / daily block, and the day roll when the daily-loss room is below the
                # smallest possible risk per contract (refusals change nothing while flat); none
                # when halted, manually paused or below the minimum balance
                t_min = rk.next_entry_possible_ns(now)
                if t_min is None:
                    i = n
                    continue
                t_sig = k.signals.next_entry_ns()
                if t_sig is not None:
                    t_min = max(t_min, t_sig)
                j = max(bisect_left(flat_targets, i + 1), bisect_left(flat_close, t_min))
                i = flat_targets[j] if j < n_targets else n
                continue
            # with a position: the next bar where a bracket leg, the trailing rule, the EOD
            # phase, an opposite signal or the risk manager's equity band can act
            eq_lo, eq_hi = rk.quiet_equity_band()
            sp, tp = k.stop_target()
            side = 1 if pos > 0 else -1
            if guard is not None:  # the scan also stops at the bar that reaches the MLL's price
                lvl: float = guard.guard_level()
                if lvl > -1e300:
                    px = venue.avg + (lvl - venue.balance) / (pos * pv)
                    sp = px if sp != sp else (max(sp, px) if side > 0 else min(sp, px))
            i = int(scan_position(i + 1, int(phase[i]), side, sp, tp, k.best_price, trail_on, H, L, C, phase, d,
                                  actionable, k.cash, k.oco.avg, pos * pv, eq_hi, eq_lo))
            if lk_next is not None:
                t_act = lk_next(now)
                if t_act is not None:
                    i = min(i, int(np.searchsorted(close_ts, t_act)))
        if progress is not None:
            progress(n, n)
        elapsed = (perf_ns() - t0) / 1e9
        account: dict | None = None
        if guard is not None:
            account = _account_verdict(guard, venue, k.trades, risk.balance, k.last_equity)
            if account.get("status") == "open":
                from engine.risk.account_rules import stall_doc

                account.update(stall_doc(k.trades, mk.day, k.stats.entries_refused))
        cols = trade_columns(k.trades)
        equity = equity_curve(k.trades, C, start_bal, pv, n, cols)
        return BacktestResult(
            trades=trades_frame(k.trades, cols), records=list(k.trades), equity=equity, ts=bars.ts,
            day=mk.day, starting_balance=start_bal, fill_model=fill_model, strategy=strategy_name,
            steps=k.stats.steps, bars=n, elapsed_s=elapsed, alerts=list(k.stats.alerts),
            refused=dict(k.stats.entries_refused), risk_audit=list(getattr(risk, "audit_records", [])),
            halts=[dict(h) for h in getattr(risk, "halt_log", [])], research=research, account=account,
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def _account_verdict(guard: Any, venue: Any, trades: list[TradeRecord], balance: float,
                     equity: float) -> dict:
    """The run's account verdict (``guard.verdict``) with the venue's MLL liquidations (UTC ns,
    fill price, reference price, level $); each trade the venue liquidated gets the exit reason
    ``mll_liquidation``."""
    from engine.risk.account_rules import liquidation_doc

    v = dict(guard.verdict(balance, equity))
    v["liquidations"] = liquidation_doc(trades, list(venue.liquidations))
    return v


def _mv(a: np.ndarray) -> Any:
    """``a.data``: a memoryview of the 1-D array ``a`` (any numeric or bool dtype; a read-only
    broadcast view works too) whose items are the Python int / float / bool of the values.
    Typed Any: the kernel's :class:`BarInput` checks each value's type as it is built."""
    return a.data


def trade_columns(trades: list[TradeRecord]) -> dict[str, list]:
    """The trade log transposed: one plain list per :class:`TradeRecord` field (in the record's
    order), each of length ``len(trades)``. A typed loop (compiled with the kernel by mypyc,
    setup.py): it reads the records' native fields directly, where ``operator.attrgetter`` pays a
    generic attribute lookup per field and record."""
    entry_ts: list[int] = []
    exit_ts: list[int] = []
    entry_bar: list[int] = []
    exit_bar: list[int] = []
    direction: list[int] = []
    entry_price: list[float] = []
    exit_price: list[float] = []
    contracts: list[int] = []
    gross_pnl: list[float] = []
    commission: list[float] = []
    slippage: list[float] = []
    net_pnl: list[float] = []
    exit_reason: list[str] = []
    confidence: list[float] = []
    predicted_class: list[int] = []
    risk_dollars: list[float] = []
    stop_ticks: list[int] = []
    for t in trades:
        entry_ts.append(t.entry_ts)
        exit_ts.append(t.exit_ts)
        entry_bar.append(t.entry_bar)
        exit_bar.append(t.exit_bar)
        direction.append(t.direction)
        entry_price.append(t.entry_price)
        exit_price.append(t.exit_price)
        contracts.append(t.contracts)
        gross_pnl.append(t.gross_pnl)
        commission.append(t.commission)
        slippage.append(t.slippage)
        net_pnl.append(t.net_pnl)
        exit_reason.append(t.exit_reason)
        confidence.append(t.confidence)
        predicted_class.append(t.predicted_class)
        risk_dollars.append(t.risk_dollars)
        stop_ticks.append(t.stop_ticks)
    return {"entry_ts": entry_ts, "exit_ts": exit_ts, "entry_bar": entry_bar, "exit_bar": exit_bar,
            "direction": direction, "entry_price": entry_price, "exit_price": exit_price,
            "contracts": contracts, "gross_pnl": gross_pnl, "commission": commission,
            "slippage": slippage, "net_pnl": net_pnl, "exit_reason": exit_reason,
            "confidence": confidence, "predicted_class": predicted_class,
            "risk_dollars": risk_dollars, "stop_ticks": stop_ticks}


def equity_curve(trades: list[TradeRecord], close: np.ndarray, start: float, pv: float, n: int,
                 columns: dict[str, list] | None = None) -> np.ndarray:
    """Equity at every bar close (dollars, float64 (n,)): starting balance + net P&L of the
    trades closed by that bar + open P&L at the close (at the entry fill price; costs of an open
    trade are booked at its exit). One compiled pass (:func:`engine.backtest.fast.equity_pass`).
    ``columns``: :func:`trade_columns` of ``trades`` when the caller has it already.

    Raises ``ValueError`` when the trades are not one position at a time in bar order (an exit
    before its entry, or an entry before the previous exit): the pass relies on it."""
    cols = trade_columns(trades) if columns is None else columns
    entry_bar, exit_bar = np.array(cols["entry_bar"], np.int64), np.array(cols["exit_bar"], np.int64)
    bad = np.flatnonzero(exit_bar < entry_bar)
    if bad.size == 0:
        bad = np.flatnonzero(entry_bar[1:] < exit_bar[:-1]) + 1
    if bad.size:
        t = int(bad[0])
        raise ValueError(f"equity_curve: trade {t} (bars {entry_bar[t]}..{exit_bar[t]}) overlaps or "
                         "precedes the trade before it; trades must be one position at a time")
    return equity_pass(np.ascontiguousarray(close, dtype=np.float64), float(start), float(pv), int(n),
                       entry_bar, exit_bar, np.array(cols["entry_price"], np.float64),
                       np.array(cols["direction"], np.float64), np.array(cols["contracts"], np.float64),
                       np.array(cols["net_pnl"], np.float64))


_FRAME_DTYPES = {"entry_ts": np.int64, "exit_ts": np.int64, "entry_bar": np.int64, "exit_bar": np.int64,
                 "direction": np.int64, "contracts": np.int64, "predicted_class": np.int64,
                 "stop_ticks": np.int64}


def trades_frame(trades: list[TradeRecord], columns: dict[str, list] | None = None):
    """Trade log as a pandas DataFrame with :data:`TRADE_COLUMNS` (times tz-aware UTC; direction
    "long"/"short"; prices float64 points, money float64 dollars, bars/ticks/contracts int64).
    ``columns``: :func:`trade_columns` of ``trades`` when the caller has it already. No trades
    give an empty table with the same dtypes (a walk-forward stitches fold tables together)."""
    import pandas as pd

    cols = trade_columns(trades) if columns is None else columns
    rows = {}
    for c in TRADE_COLUMNS:
        if c in ("entry_time", "exit_time"):
            rows[c] = pd.to_datetime(np.array(cols[c[:-4] + "ts"], dtype=np.int64), unit="ns", utc=True)
        elif c == "direction":
            rows[c] = pd.array(np.where(np.array(cols[c], dtype=np.int64) > 0, "long", "short"), dtype="str")
        elif c == "exit_reason":
            rows[c] = pd.array(np.array(cols[c], dtype=object), dtype="str")
        else:
            rows[c] = np.array(cols[c], dtype=_FRAME_DTYPES.get(c, np.float64))
    return pd.DataFrame(rows, copy=False)


def slice_dates(bars, start: str | None, end: str | None):
    """Bars with open time in [start, end] (ISO dates, New York calendar days of the trading
    day are NOT used: plain UTC dates, end inclusive). Raises :class:`BacktestError` when empty."""
    import pandas as pd

    lo, hi = 0, len(bars)
    if start:
        lo = int(np.searchsorted(bars.ts, pd.Timestamp(start, tz="UTC").value))
    if end:
        hi = int(np.searchsorted(bars.ts, (pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)).value))
    if hi <= lo:
        raise BacktestError(f"no bars between {start or 'the start'} and {end or 'the end'}")
    return bars.slice(lo, hi)


__all__ = ["run_backtest", "prepare_market", "MarketInputs", "MarketInputError", "BacktestResult", "BacktestError", "equity_curve",
           "trades_frame", "trade_columns", "slice_dates", "TRADE_COLUMNS", "OrderStatus"]
