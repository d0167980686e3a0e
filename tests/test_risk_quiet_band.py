"""RiskManager's quiet band (the on_mark / _check_limits shortcut): a manager that takes it and
one that never does (every mark runs the full peak and latch checks) end every random sequence
of marks, trade closes, day rolls and entry requests in the same state, with the same halts,
blocks and decisions; research mode included (account halts lifted at the next RTH open)."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import date, time

import pytest

from engine.calendar import calendar_for, ny_to_ns
from engine.clock import SimClock
from engine.config import Settings
from engine.instruments import spec
from engine.risk import RiskManager

MIN = 60 * 1_000_000_000
T0 = ny_to_ns(date(2025, 3, 10), time(9, 31))
CAL = calendar_for(T0 - 86_400 * 10**9, T0 + 40 * 86_400 * 10**9)
MES = spec("MES")


class NoBand(RiskManager):
    """Never quiet: every mark and limit check takes the full path."""

    def _mark_band(self) -> tuple[float, float]:
        return math.inf, -math.inf


def _settings(research_limits: bool) -> Settings:
    s = Settings()
    R = dataclasses.replace
    if research_limits:  # small limits so that every latch trips within a few hundred events
        return R(s, risk=R(s.risk, kill_switch_loss=60.0, account_drawdown_limit=45.0, daily_loss_limit=25.0,
                           daily_drawdown_limit=20.0, min_account_balance=960.0))
    return s


@pytest.mark.parametrize("seed,research,tight", [(1, False, False), (2, False, True), (3, True, True),
                                                 (4, True, False), (5, True, True)])
def test_quiet_band_changes_nothing(seed, research, tight):
    s = _settings(tight)
    a = RiskManager(s, SimClock(T0), CAL, MES, research=research)
    b = NoBand(s, SimClock(T0), CAL, MES, research=research)
    rng = random.Random(seed)
    now = T0
    open_pnl = 0.0
    quiet = 0
    for step in range(1500):
        now += rng.choice([MIN, MIN, MIN, 5 * MIN, 90 * MIN])  # crosses sessions and day rolls
        kind = rng.random()
        if kind < 0.70:  # a mark: the open position's P&L walks
            open_pnl += rng.gauss(0.0, 3.0)
            eq = a.balance + open_pnl
            band = a._band
            quiet += band is not None and band[0] < eq <= band[1]
            a.on_mark(eq, now)
            b.on_mark(b.balance + open_pnl, now)
        elif kind < 0.85:  # the trade closes
            pnl = round(open_pnl + rng.gauss(0.0, 2.0), 2)
            open_pnl = 0.0
            a.on_trade_closed(pnl, now)
            b.on_trade_closed(pnl, now)
        else:  # an entry request and the skip-ahead's questions
            da = a.evaluate_entry(1, 0.75, 5000.0, 1.3, None, None, now, True)
            db = b.evaluate_entry(1, 0.75, 5000.0, 1.3, None, None, now, True)
            assert repr(da) == repr(db), f"step {step}"  # repr: NaN fields equal (compiled floats are not one NaN object)
            if open_pnl == 0.0:
                assert a.next_entry_possible_ns(now) == b.next_entry_possible_ns(now), f"step {step}"
        assert a.state_dict() == b.state_dict(), f"step {step}"
        assert a.halt_log == b.halt_log, f"step {step}"
        assert a.state(now) == b.state(now), f"step {step}"
        assert a.quiet_equity_band() == b.quiet_equity_band(), f"step {step}"
    print("quiet marks", quiet, "halts", len(a.halt_log))
    assert quiet > 50  # the shortcut was taken (the comparison is not vacuous)
    if tight:
        kinds = {h["kind"] for h in a.halt_log}
        assert {"daily_loss", "daily_drawdown"} & kinds, kinds  # the latches were reached
