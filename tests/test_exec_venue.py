"""SimVenue fill rules (R-BT-1): next-open entries, fill models, the pessimistic intrabar rule,
gaps, slippage and costs. Small hand-made bars make each rule checkable to the cent."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import SlippageConfig
from engine.execution.orders import OrderStatus
from engine.venue.base import Bracket, FillEvent, OrderUpdate, VenueError
from engine.venue.sim import SimVenue, slippage_ticks

NS = 1_000_000_000
M = 60 * NS


def venue(rows, fill="realistic", slip=1.0, native=True):
    a = np.asarray(rows, dtype=np.float64)
    n = len(a)
    ts = np.arange(n, dtype=np.int64) * M + 1_700_000_000 * NS
    return SimVenue(ts, a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy(), a[:, 3].copy(), bar_ns=M,
                    tick_size=0.25, point_value=5.0, cost_per_side=0.42, slip_ticks=np.full(n, slip),
                    fill_model=fill, starting_balance=1000.0, native_oco=native)


def fills(v):
    return [e for e in v.poll_events() if isinstance(e, FillEvent)]


def test_market_entry_fills_at_next_open_with_slippage_and_bracket_attached():
    v = venue([[100, 101, 99, 100.5], [101, 101.5, 100.5, 101], [101, 101.25, 100.75, 101]])
    v.process_bar(0)
    v.place(1, 2, "market", tag="e1", bracket=Bracket(8, 12))
    assert not fills(v)  # nothing at the signal bar close
    v.process_bar(1)
    f = fills(v)
    assert len(f) == 1 and f[0].price == 101.25 and f[0].ref_price == 101.0 and f[0].qty == 2
    assert f[0].commission == pytest.approx(0.84)
    legs = [o for o in v.open_orders()]
    assert sorted((o.kind, o.price, o.qty) for o in legs) == [("limit", 104.25, 2), ("stop", 99.25, 2)]


def test_optimistic_fills_at_signal_close_without_slippage():
    v = venue([[100, 101, 99, 100.5], [101, 101.5, 100.5, 101]], fill="optimistic", slip=0.0)
    v.process_bar(0)
    v.place(-1, 1, "market", tag="e1")
    f = fills(v)
    assert len(f) == 1 and f[0].price == 100.5 and f[0].ts_ns == v.ts[0]  # stamped with the bar it filled in


def test_bar_touching_stop_and_target_fills_the_stop_only():
    v = venue([[100, 100, 100, 100], [100, 100, 100, 100], [100, 103, 97, 100]], slip=0.0)
    v.process_bar(0)
    v.place(1, 1, "market", tag="e", bracket=Bracket(8, 8))  # stop 98, target 102
    v.process_bar(1)
    v.poll_events()
    v.process_bar(2)
    ev = v.poll_events()
    f = [e for e in ev if isinstance(e, FillEvent)]
    assert len(f) == 1 and f[0].tag == "e:stop" and f[0].price == 98.0
    assert any(isinstance(e, OrderUpdate) and e.tag == "e:target" and e.status is OrderStatus.CANCELLED for e in ev)
    assert v.pos == 0 and not v.open_orders()


def test_conservative_target_needs_trade_through_realistic_touch():
    rows = [[100, 100, 100, 100], [100, 100, 100, 100], [100, 102, 99.5, 101]]  # high touches 102
    for model, expect in (("conservative", 0), ("realistic", 1)):
        v = venue(rows, fill=model, slip=0.0)
        v.process_bar(0)
        v.place(1, 1, "market", tag="e", bracket=Bracket(8, 8))
        v.process_bar(1)
        v.poll_events()
        v.process_bar(2)
        assert len(fills(v)) == expect, model


def test_gap_through_stop_fills_at_open_plus_slippage():
    v = venue([[100, 100, 100, 100], [100, 101, 99.5, 100], [97, 97.5, 96, 97]], slip=2.0)
    v.process_bar(0)
    v.place(1, 1, "market", tag="e", bracket=Bracket(8, 8))
    v.process_bar(1)
    entry = fills(v)[0]
    assert entry.price == 100.5  # 2 ticks slippage
    v.process_bar(2)
    f = fills(v)[0]
    assert f.ref_price == 97.0 and f.price == 96.5 and f.slippage_points == 0.5
    # balance: (96.5 - 100.5) × 5 − 2 × 0.42
    assert v.balance == pytest.approx(1000 - 20 - 0.84)


def test_no_fill_outside_the_bar_range():
    # 2 ticks of slippage would buy at 100.5 above the bar's high 100.25: it fills at the high;
    # the stop (98.25, 8 ticks below) gaps to an open of 97.75 whose low is 97.5: 2 ticks would
    # sell at 97.25, below the low: it fills at the low
    v = venue([[100, 100, 100, 100], [100, 100.25, 99.75, 100], [97.75, 98, 97.5, 97.75]], slip=2.0)
    v.process_bar(0)
    v.place(1, 1, "market", tag="e", bracket=Bracket(8, 8))
    v.process_bar(1)
    entry = fills(v)[0]
    assert entry.price == 100.25 and entry.ref_price == 100.0 and entry.slippage_points == 0.25
    v.process_bar(2)
    f = fills(v)[0]
    assert f.ref_price == 97.75 and f.price == 97.5 and f.slippage_points == 0.25
    # a market sell in the same conditions: at the low
    v2 = venue([[100, 100, 100, 100], [100, 100.25, 99.75, 100]], slip=2.0)
    v2.process_bar(0)
    v2.place(-1, 1, "market", tag="s")
    v2.process_bar(1)
    assert fills(v2)[0].price == 99.75


def test_non_native_both_legs_can_fill_and_modify_cancel_are_confirmed():
    v = venue([[100, 100, 100, 100], [100, 100, 100, 100]], slip=0.0, native=False)
    v.process_bar(0)
    sid = v.place(-1, 1, "stop", 98.0, tag="s")
    v.modify(sid, price=99.0)
    ev = v.poll_events()
    assert ev[-1].status is OrderStatus.ACCEPTED and ev[-1].price == 99.0
    v.cancel(sid)
    ev = v.poll_events()
    assert ev[-1].status is OrderStatus.CANCELLED
    with pytest.raises(VenueError, match="cancelled"):
        v.modify(sid, price=97.0)
    with pytest.raises(VenueError, match="needs a price"):
        v.place(1, 1, "limit", tag="x")


def test_order_ids_are_exact_and_unknown_ids_are_refused():
    """The venue finds an order by the exact id place() returned ("S{n}", kept in a list by
    number): any other string, even one naming the same number, is an unknown id."""
    v = venue([[100, 100, 100, 100], [100, 100, 100, 100]], slip=0.0, native=False)
    v.process_bar(0)
    a = v.place(-1, 1, "stop", 98.0, tag="a")
    b = v.place(1, 1, "limit", 97.0, tag="b")
    assert (a, b) == ("S1", "S2")
    v.modify(b, price=96.0)
    assert v.poll_events()[-1].order_id == b
    for bad in ("S0", "S3", "S01", "s1", "1", "", "S", "S-1", "S+1", "S 1", "S\u0661", "S1 ", "X2"):
        with pytest.raises(VenueError, match="unknown order id"):
            v.cancel(bad)
        with pytest.raises(VenueError, match="unknown order id"):
            v.modify(bad, price=95.0)
    v.cancel(a)
    assert v.poll_events()[-1].status is OrderStatus.CANCELLED
    v.cancel(a)  # a done order is still known: a second cancel does nothing
    assert not v.poll_events()


def test_slippage_model_rth_eth_and_high_volatility():
    cfg = SlippageConfig()
    is_rth = np.array([True, False, True, True, True])
    atr = np.array([1.0, 1.0, 1.5, 2.25, 10.0])
    norm = np.ones(5)
    out = slippage_ticks(is_rth, atr, norm, cfg, "realistic")
    assert out.tolist() == [1.0, 2.0, 2.0, 3.0, 4.0]
    assert slippage_ticks(is_rth, atr, norm, cfg, "optimistic").tolist() == [0.0] * 5
