"""The risk manager's compiled fast paths keep the rules: the native half-to-even rounding of
the stop rules equals Python's ``round``; the typed state restores exactly what the store holds
and refuses a stored value of the wrong type (naming the key); ``settings`` cannot be swapped
under the typed copies the hot paths read; the band property reflects on_mark's cache."""

from __future__ import annotations

import json
import math
from datetime import date, time

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from engine.calendar import calendar_for, ny_to_ns
from engine.clock import SimClock
from engine.config import Settings
from engine.instruments import spec
from engine.risk import RiskManager
from engine.risk.stops import _round_half_even, price_to_tick_index
from engine.risk.store import RiskStateError, RiskStateStore

T0 = ny_to_ns(date(2025, 3, 10), time(9, 31))
CAL = calendar_for(T0 - 86_400 * 10**9, T0 + 10 * 86_400 * 10**9)
MES = spec("MES")


@hsettings(max_examples=500, deadline=None)
@given(st.one_of(st.floats(min_value=0.0, max_value=1e9, allow_nan=False),
                 st.integers(min_value=0, max_value=10**9).map(lambda k: k + 0.5),
                 st.floats(min_value=-1e6, max_value=0.0, allow_nan=False)))
def test_round_half_even_is_round(q):
    assert _round_half_even(q) == round(q)
    assert type(_round_half_even(q)) is int


def test_ties_round_to_even_on_the_tick_grid():
    assert [_round_half_even(x) for x in (0.5, 1.5, 2.5, 3.5, 20001.5, 20002.5)] == [0, 2, 2, 4, 20002, 20002]
    assert price_to_tick_index(5000.125, 0.25, 0) == round(5000.125 / 0.25)  # a half tick: to even


def _store_with(tmp_path, **changes):
    store = RiskStateStore(tmp_path)
    rm = RiskManager(Settings(), SimClock(T0), CAL, MES, store)
    rm.on_trade_closed(-3.5, T0)
    rm.save()
    raw = json.loads(store.path.read_text())
    raw["state"].update(changes)
    store.path.write_text(json.dumps(raw))
    return store, rm


def test_restore_round_trips_every_key(tmp_path):
    store, rm = _store_with(tmp_path)
    rm2 = RiskManager(Settings(), SimClock(T0), CAL, MES, store)
    assert rm2.state_dict() == rm.state_dict() == json.loads(store.path.read_text())["state"]
    assert rm2.balance == rm.balance == 1000.0 - 3.5


@pytest.mark.parametrize("key,value", [("balance", "1000"), ("trades_today", 1.5), ("halt", [1]),
                                       ("pause_reason", None), ("trading_day", True)])
def test_restore_refuses_a_wrong_type(tmp_path, key, value):
    store, _ = _store_with(tmp_path, **{key: value})
    with pytest.raises(RiskStateError, match=f"risk state key '{key}'"):
        RiskManager(Settings(), SimClock(T0), CAL, MES, store)


def test_restore_accepts_an_int_balance_and_an_older_state(tmp_path):
    store, _ = _store_with(tmp_path, balance=990)
    raw = json.loads(store.path.read_text())
    del raw["state"]["broker_booked"], raw["state"]["broker_since_ns"]
    store.path.write_text(json.dumps(raw))
    rm = RiskManager(Settings(), SimClock(T0), CAL, MES, store)
    assert rm.balance == 990.0 and rm.state_dict()["broker_booked"] == []


def test_settings_are_read_only():
    rm = RiskManager(Settings(), SimClock(T0), CAL, MES)
    with pytest.raises(AttributeError):
        rm.settings = Settings()  # type: ignore[misc]


def test_band_property_follows_the_cache():
    rm = RiskManager(Settings(), SimClock(T0), CAL, MES)
    assert rm._band is None
    rm.on_mark(rm.balance, T0)
    lo, hi = rm._band
    assert lo < rm.balance <= hi and math.isfinite(lo)
    rm.on_trade_closed(1.0, T0 + 60 * 10**9)  # any change of the counters: stale
    assert rm._band is None
