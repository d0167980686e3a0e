"""Order state table, signals, position book and reconciliation (R-EXE-1, R-EXE-2, R-EXE-4)."""

from __future__ import annotations

import pytest

from engine.config import SignalConfig
from engine.execution.orders import TRANSITIONS, IllegalTransition, Order, OrderStatus, check_transition
from engine.execution.position import PositionManager, ReconcileError
from engine.execution.signals import Signal, SignalGenerator
from engine.venue.base import VenueOrder, VenuePosition

S = OrderStatus
NS = 1_000_000_000


# ---------------------------------------------------------------- order state table
def test_every_state_has_a_row_and_terminal_states_are_closed():
    assert set(TRANSITIONS) == set(S)
    assert TRANSITIONS[S.FILLED] == frozenset()
    assert TRANSITIONS[S.REJECTED] == frozenset()
    assert TRANSITIONS[S.CANCELLED] == frozenset({S.FILLED, S.PARTIALLY_FILLED})


@pytest.mark.parametrize("old,new", [
    (S.PENDING_CANCEL, S.FILLED), (S.PENDING_CANCEL, S.PARTIALLY_FILLED), (S.CANCELLED, S.FILLED),
    (S.SUBMITTED, S.ACCEPTED), (S.ACCEPTED, S.PARTIALLY_FILLED), (S.PARTIALLY_FILLED, S.FILLED),
    (S.ACCEPTED, S.PENDING_CANCEL), (S.PENDING_CANCEL, S.CANCELLED), (S.SUBMITTED, S.REJECTED),
    (S.ACCEPTED, S.EXPIRED), (S.SUBMITTED, S.UNKNOWN), (S.UNKNOWN, S.FILLED),
])
def test_legal_transitions_including_races(old, new):
    check_transition("x", old, new)


@pytest.mark.parametrize("old,new", [
    (S.FILLED, S.CANCELLED), (S.REJECTED, S.ACCEPTED), (S.CANCELLED, S.ACCEPTED),
    (S.EXPIRED, S.FILLED), (S.FILLED, S.PARTIALLY_FILLED), (S.ACCEPTED, S.SUBMITTED),
    (S.ACCEPTED, S.REJECTED),
])
def test_illegal_transitions_raise_naming_the_order(old, new):
    with pytest.raises(IllegalTransition, match="order ord-7"):
        check_transition("ord-7", old, new)


def test_late_fill_after_confirmed_cancel_is_booked():
    o = Order("o1", "t1", 1, 2, "limit", 100.0)
    o.transition(S.ACCEPTED)
    o.transition(S.PENDING_CANCEL)
    o.apply_fill(1, 100.0)
    assert o.status is S.PARTIALLY_FILLED
    o.transition(S.CANCELLED)
    o.apply_fill(1, 100.5)
    assert o.status is S.FILLED and o.avg_fill == pytest.approx(100.25)
    with pytest.raises(IllegalTransition):
        o.apply_fill(1, 100.0)  # more than ordered


# ---------------------------------------------------------------- signals
def _gen(**kw):
    return SignalGenerator(SignalConfig(**kw), 60 * NS)


def test_signal_threshold_and_entries():
    g = _gen()
    assert g.decide(1, 0.59, 0, 0) is Signal.HOLD
    assert g.decide(0, 0.99, 0, 0) is Signal.HOLD
    assert g.decide(1, 0.60, 0, 0) is Signal.LONG_ENTRY
    assert g.decide(-1, 0.9, 0, 0) is Signal.SHORT_ENTRY
    assert g.decide(1, 0.9, 2, 0) is Signal.HOLD  # no duplicate entries
    assert g.decide(-1, 0.9, -1, 0) is Signal.HOLD


def test_exit_cooldown():
    g = _gen()
    g.on_exit(100 * NS)
    assert g.decide(1, 0.9, 0, 159 * NS) is Signal.HOLD
    assert g.decide(1, 0.9, 0, 160 * NS) is Signal.LONG_ENTRY


def test_reversal_cooldown_and_range_limit():
    g = _gen()
    t = 1000 * NS
    assert g.decide(-1, 0.9, 1, t) is Signal.REVERSE_TO_SHORT
    g.on_reversal(t)
    # within 30 s of the last reversal → exit instead of reversing
    assert g.decide(1, 0.9, -1, t + 29 * NS) is Signal.EXIT_SHORT
    assert g.decide(1, 0.9, -1, t + 30 * NS) is Signal.REVERSE_TO_LONG
    g.on_reversal(t + 30 * NS)
    # two reversals within one bar range (60 s): a third is refused even after the cooldown
    assert g.decide(-1, 0.9, 1, t + 59 * NS) is Signal.EXIT_LONG
    assert g.decide(-1, 0.9, 1, t + 90 * NS) is Signal.REVERSE_TO_SHORT


# ---------------------------------------------------------------- position book / reconcile
def test_position_book_pnl():
    p = PositionManager(5.0)
    assert p.on_fill(1, 2, 100.0, 0.84) == 0.0
    assert p.on_fill(1, 1, 101.0, 0.42) == 0.0
    assert p.avg_price == pytest.approx(100 + 1 / 3)
    assert p.unrealized(102.0) == pytest.approx((102 - (100 + 1 / 3)) * 3 * 5)
    pnl = p.on_fill(-1, 4, 103.0, 1.68)  # closes 3 and opens 1 short
    assert pnl == pytest.approx((103 - (100 + 1 / 3)) * 3 * 5)
    assert p.qty == -1 and p.avg_price == 103.0
    assert p.costs == pytest.approx(0.84 + 0.42 + 1.68)


def test_reconcile_modes_and_unknown_orders():
    p = PositionManager(5.0)
    p.on_fill(1, 1, 100.0)
    venue_pos = [VenuePosition("MES", 2, 100.0)]
    with pytest.raises(ReconcileError, match="local 1 @ 100.00, venue 2"):
        p.reconcile(venue_pos, [], "strict")
    r = p.reconcile(venue_pos, [], "warn")
    assert not r.ok and p.qty == 1 and not r.synced
    r = p.reconcile(venue_pos, [], "auto-sync")
    assert r.synced and p.qty == 2
    # a timed-out submission stays UNKNOWN (never resent) until the venue shows it
    o = Order("entry-9", "entry-9", 1, 1, "market")
    p.mark_unknown(o)
    assert o.status is S.UNKNOWN
    with pytest.raises(ReconcileError, match="unknown submissions"):
        p.reconcile(venue_pos, [], "strict")
    r = p.reconcile(venue_pos, [VenueOrder("V77", "entry-9", 1, 1, 0, "market", None, S.ACCEPTED)], "strict")
    assert r.ok and r.resolved_unknown == ["entry-9"] and o.order_id == "V77" and o.status is S.ACCEPTED
    with pytest.raises(ValueError, match="unknown reconcile mode"):
        p.reconcile([], [], "lenient")
