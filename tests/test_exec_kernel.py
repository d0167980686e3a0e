"""The kernel with the SimVenue and the real risk manager on real bars: a stop that cannot be
placed closes the position at once; a HALT flattens with reason "risk"; a signal exit and a
reversal go through the signal generator."""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.backtest.runner import prepare_market, slice_dates
from engine.calendar import calendar_for
from engine.clock import SimClock
from engine.config import Settings
from engine.data.io import load_bars
from engine.instruments import spec as ispec
from engine.kernel import BarInput, TradingKernel
from engine.risk import RiskManager
from engine.venue.sim import SimVenue


def _setup(path):
    bars = slice_dates(load_bars(path), "2025-06-02", "2025-06-03")
    s = Settings()
    s = dataclasses.replace(s, account=dataclasses.replace(s.account, starting_capital=5000.0),
                            stops=dataclasses.replace(s.stops, method="fixed", fixed_ticks=10, max_stop_ticks=40,
                                                          breakeven_after_ticks=0))
    mk = prepare_market(bars, s, "realistic")
    sp = ispec("MES")
    v = SimVenue(bars.ts, bars.open, bars.high, bars.low, bars.close, bar_ns=bars.bar_ns, tick_size=sp.tick_size,
                 point_value=sp.point_value, cost_per_side=0.42, slip_ticks=mk.slip, fill_model="realistic")
    clock = SimClock(int(bars.ts[0]))
    risk = RiskManager(s, clock, calendar_for(int(bars.ts[0]), int(bars.ts[-1])), sp)
    k = TradingKernel(s, v, risk, sp, bar_ns=bars.bar_ns, starting_balance=5000.0)
    return bars, mk, v, clock, k


def _step(bars, mk, v, clock, k, i, d=0, conf=np.nan):
    clock.advance_to(int(mk.close_ts[i]))
    v.process_bar(i)
    lo = max(0, i - 9)
    return k.step(BarInput(i, int(mk.close_ts[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i],
                           mk.atr[i], bool(mk.is_rth[i]), bool(mk.in_session[i]), int(mk.phase[i]), int(mk.day[i]),
                           d, conf, 2 if d > 0 else 0, mk.atr_normal[i], np.nan, np.nan,
                           bars.high[lo:i + 1], bars.low[lo:i + 1]))


def _rth_bar(mk, after=0, bars=None):
    """An RTH bar (after the first ``after``); with ``bars``: one whose next 8 bars stay within
    2.25 points of the next open, so that a 10-tick stop / 15-tick target bracket survives."""
    cand = np.flatnonzero(mk.is_rth & (mk.phase == 0))[after:]
    if bars is None:
        return int(cand[0])
    for i in cand:
        o = bars.open[i + 1]
        if bars.high[i + 1:i + 9].max() - o < 2.25 and o - bars.low[i + 1:i + 9].min() < 2.25:
            return int(i)
    raise AssertionError("no calm bar found")


def test_rejected_stop_closes_position_at_once(es_1m_path):
    bars, mk, v, clock, k = _setup(es_1m_path)
    i = _rth_bar(mk, 30, bars)
    for j in range(i):
        _step(bars, mk, v, clock, k, j)
    v.fail_next_stop = True
    _step(bars, mk, v, clock, k, i, 1, 0.75)
    assert k.oco.entry is not None and k.position == 0
    _step(bars, mk, v, clock, k, i + 1)  # entry fills at the open, the stop is rejected → exit sent
    assert any(kind == "stop_rejected" for _, kind, _ in k.stats.alerts)
    assert k.oco.close_reason == "risk" and k.oco._closing_live()
    _step(bars, mk, v, clock, k, i + 2)  # the exit fills at the next open
    assert k.position == 0 and len(k.trades) == 1 and k.trades[0].exit_reason == "risk"


def test_halt_flattens_and_opposite_signal_reverses(es_1m_path):
    bars, mk, v, clock, k = _setup(es_1m_path)
    i = _rth_bar(mk, 30, bars)
    for j in range(i):
        _step(bars, mk, v, clock, k, j)
    _step(bars, mk, v, clock, k, i, 1, 0.75)
    _step(bars, mk, v, clock, k, i + 1)
    assert k.position > 0
    sig = _step(bars, mk, v, clock, k, i + 2, -1, 0.8)  # opposite signal → reversal
    assert sig.value == "reverse_to_short"
    _step(bars, mk, v, clock, k, i + 3)  # exit fills; flat → re-enter short
    assert k.trades[-1].exit_reason == "signal"
    _step(bars, mk, v, clock, k, i + 4)
    assert k.position < 0
    k.risk.halt("test", "tester")
    _step(bars, mk, v, clock, k, i + 5)
    _step(bars, mk, v, clock, k, i + 6)
    assert k.position == 0 and k.trades[-1].exit_reason == "risk"
    _step(bars, mk, v, clock, k, i + 7, 1, 0.9)  # HALTED: entries refused
    assert k.oco.entry.status.value == "filled" and k.position == 0
    assert any(r.startswith("HALTED") for r in k.stats.entries_refused)


def test_day_floor_tightens_the_stop_after_an_open_profit(es_1m_path):
    """The day's peak rises with an open profit; the stop then never sits where a stop-out (worst-
    case 4 ticks of slippage, exit costs) would leave the equity more than the daily drawdown
    limit ($75) below that peak."""
    bars, mk, v, clock, k = _setup(es_1m_path)
    i = _rth_bar(mk, 30, bars)
    for j in range(i):
        _step(bars, mk, v, clock, k, j)
    _step(bars, mk, v, clock, k, i, 1, 0.75)
    _step(bars, mk, v, clock, k, i + 1)
    assert k.position > 0
    sp0 = k.stop_target()[0]
    floor_before = k._day_floor_stop(1, k.oco.avg, k.position)
    assert floor_before < sp0  # a fresh day: the initial stop fits the room
    k.risk.on_mark(k.cash + 70.0, int(mk.close_ts[i + 1]))  # the day's peak $70 above the cash
    floor = k._day_floor_stop(1, k.oco.avg, k.position)
    # a stop-out at floor − 4 ticks − exit costs leaves equity ≥ peak − $75
    assert k.cash + (floor - 1.0 - k.oco.avg) * 5.0 * k.position - 0.42 * k.position >= k.cash + 70.0 - 75.0 - 1e-6
    assert floor > sp0
    _step(bars, mk, v, clock, k, i + 2)
    sp = k.stop_target()[0]
    assert (k.oco.close_reason == "risk") or (sp == sp and sp >= floor - 1e-9)


def _same(a, b) -> bool:
    return a == b or (a != a and b != b)  # NaN defaults compare equal here


def test_explicit_inits_match_the_dataclass_fields():
    """BarInput, TradeRecord and Order write their __init__ by hand (mypyc compiles it; the
    dataclass-generated one is a Python function): it must take every field, by position and by
    keyword, in field order, with the fields' defaults, so that dataclasses.replace (the live
    session's heartbeat bar) and every caller see the dataclass they declare."""
    from engine.execution.orders import Order, OrderStatus
    from engine.kernel import TradeRecord

    for cls in (BarInput, TradeRecord, Order):
        fs = dataclasses.fields(cls)
        kinds = {"str": lambda j: f"v{j}", "float": lambda j: j + 0.5, "float | None": lambda j: j + 0.5,
                 "bool": lambda j: j % 2 == 0, "OrderStatus": lambda j: OrderStatus.ACCEPTED,
                 "list": lambda j: [j]}
        # f.type: the annotation's text (pure Python) or the class mypyc resolved it to (compiled;
        # `float | None` and `Any` then read as `type`: any value goes, a float here)
        kinds["type"] = kinds["float"]
        values = [kinds.get(f.type if isinstance(f.type, str) else f.type.__name__, lambda j: j)(j)
                  for j, f in enumerate(fs)]
        by_pos = cls(*values)
        by_kw = cls(**{f.name: v for f, v in zip(fs, values)})
        for f, v in zip(fs, values):
            assert getattr(by_pos, f.name) == v == getattr(by_kw, f.name), (cls.__name__, f.name)
        assert by_pos == by_kw
        required = [v for f, v in zip(fs, values)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        bare = cls(*required)
        for f in fs:
            if f.default is not dataclasses.MISSING:
                assert _same(getattr(bare, f.name), f.default), (cls.__name__, f.name)
            elif f.default_factory is not dataclasses.MISSING:
                assert getattr(bare, f.name) == f.default_factory(), (cls.__name__, f.name)
        moved = dataclasses.replace(by_pos, **{fs[1].name: values[0]})
        assert getattr(moved, fs[1].name) == values[0] and getattr(moved, fs[0].name) == values[0]
    a, b = Order("o1", "t1", 1, 1, "market"), Order("o2", "t2", 1, 1, "market")
    a.history.append(("x", 0))
    assert b.history == []  # a new list per order, never a shared default
