"""RiskManager: every §0 limit with exact numbers, pauses on a SimClock, daily blocks across a DST
weekend and an early-close day, kill switch + typed reset, breakers, EOD phases, fail-closed."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, time

import numpy as np
import pytest

from engine.calendar import calendar_for, ny_to_ns
from engine.clock import SimClock
from engine.config import Settings
from engine.instruments import spec
from engine.risk import RiskActionError, RiskManager, TradingState

MIN = 60 * 1_000_000_000
CAL = calendar_for(ny_to_ns(date(2025, 6, 1), time(12)))
MES = spec("MES")


def ny(y, m, d, hh, mm=0, ss=0):
    return ny_to_ns(date(y, m, d), time(hh, mm, ss))


def make(start_ns, settings=None, **kw):
    clock = SimClock(start_ns)
    return RiskManager(settings or Settings(), clock, CAL, MES, **kw), clock


def entry(rm, now, conf=0.75, atr=1.3, is_rth=True, side=1, price=5000.0):
    return rm.evaluate_entry(side, conf, price, atr, None, None, now, is_rth)


def with_risk(**kw):
    s = Settings()
    return dataclasses.replace(s, risk=dataclasses.replace(s.risk, **kw))


def test_plain_entry_is_approved_with_bracket():
    rm, _ = make(ny(2025, 3, 12, 10))
    d = entry(rm, ny(2025, 3, 12, 10))
    # ATR 1.3 → 8 ticks ($10) + $0.84 costs + 2 × 1 tick RTH slippage ($2.50) = $13.34 per
    # contract; $1,000 → budget $20 → 1 contract; target 2.0 (shipped reward:risk) × 8 = 16 ticks
    assert d.approved and d.contracts == 1 and d.reason == ""
    assert (d.stop_price, d.target_price) == (4998.0, 5004.0) and abs(d.risk_dollars - 13.34) < 1e-9
    assert rm.snapshot().state is TradingState.ACTIVE


def test_consecutive_loss_pauses_and_auto_resume_on_simclock():
    t0 = ny(2025, 3, 12, 10)
    rm, clock = make(t0)
    for i in range(2):
        rm.on_trade_closed(-3.0, t0 + i * MIN)
    assert entry(rm, t0 + 2 * MIN).approved
    rm.on_trade_closed(-3.0, t0 + 2 * MIN)                     # 3rd loss at 10:02 → 15 min
    d = entry(rm, t0 + 2 * MIN)
    assert not d.approved and "3 consecutive losses" in d.reason and "15 min" in d.reason
    clock.advance_to(t0 + 16 * MIN)
    snap = rm.snapshot()
    assert snap.state is TradingState.REDUCING and snap.pause_until_ns == t0 + 17 * MIN
    assert not entry(rm, t0 + 17 * MIN - 1).approved
    clock.advance_to(t0 + 17 * MIN)
    assert rm.snapshot().state is TradingState.ACTIVE          # auto-resume exactly at 10:17
    assert entry(rm, t0 + 17 * MIN).approved
    rm.on_trade_closed(-3.0, t0 + 20 * MIN)                    # 4th: streak ≥ 3 → 15 min again
    assert rm.snapshot().consecutive_losses == 4
    assert not entry(rm, t0 + 34 * MIN).approved and entry(rm, t0 + 35 * MIN).approved
    rm.on_trade_closed(-3.0, t0 + 40 * MIN)                    # 5th → 30 min
    d = entry(rm, t0 + 69 * MIN)
    assert not d.approved and "5 consecutive losses" in d.reason and "30 min" in d.reason
    assert entry(rm, t0 + 70 * MIN).approved
    rm.on_trade_closed(+4.0, t0 + 80 * MIN)                    # a win resets the streak
    assert rm.snapshot().consecutive_losses == 0
    rm.on_trade_closed(-3.0, t0 + 81 * MIN)
    assert entry(rm, t0 + 81 * MIN).approved


def test_daily_loss_blocks_until_next_rth_open_across_dst_weekend():
    # Friday 2025-03-07 (EST); DST starts Sunday 03-09; next RTH open Monday 09:30 EDT = 13:30 UTC
    t = ny(2025, 3, 7, 11)
    rm, clock = make(t)
    rm.on_trade_closed(-25.0, t)
    assert entry(rm, t + MIN).approved                         # $25 used: still room
    rm.on_trade_closed(-25.0, t + 2 * MIN)                      # exactly $50 → limit hit
    d = entry(rm, t + 3 * MIN)
    assert not d.approved and d.reason.startswith("daily loss limit: $50.00 lost")
    monday_open = ny(2025, 3, 10, 9, 30)
    assert monday_open == 1741613400 * 10**9                    # 13:30 UTC: EDT already
    assert not entry(rm, ny(2025, 3, 9, 19), is_rth=False, conf=0.9).approved   # Sunday ETH
    d = entry(rm, monday_open - 1)
    assert not d.approved and "daily loss limit" in d.reason
    clock.advance_to(ny(2025, 3, 10, 9))
    snap = rm.snapshot()
    assert snap.daily_block_until_ns == monday_open and snap.state is TradingState.REDUCING
    d = entry(rm, monday_open)
    assert d.approved, d.reason
    snap = rm.snapshot()
    assert snap.trading_day == "2025-03-10" and snap.daily_pnl == 0.0 and snap.balance == 950.0


def test_daily_loss_block_over_thanksgiving_to_early_close_day():
    # trip Wednesday 2025-11-26; Thursday has no RTH → next RTH open Friday 11-28 09:30 EST
    t = ny(2025, 11, 26, 10)
    rm, clock = make(t)
    rm.on_mark(1000.0, t)
    rm.on_mark(949.0, t + MIN)                                  # unrealized counts: $51 down
    assert "daily loss limit" in entry(rm, t + 2 * MIN).reason
    rm.on_mark(1000.0, t + 3 * MIN)                             # recovery does not lift the block
    assert not entry(rm, t + 4 * MIN).approved
    assert not entry(rm, ny(2025, 11, 27, 10), is_rth=False).approved
    assert "daily loss limit" in entry(rm, ny(2025, 11, 28, 9, 29)).reason
    assert entry(rm, ny(2025, 11, 28, 9, 30)).approved


def test_daily_drawdown_from_the_days_peak():
    t = ny(2025, 3, 12, 10)
    rm, _ = make(t)
    rm.on_mark(1060.0, t)
    rm.on_mark(1040.0, t + MIN)                                 # $20 below peak: $55 of room
    assert entry(rm, t + 2 * MIN).approved
    rm.on_mark(986.0, t + MIN)                                  # $74 below peak: no block yet, but
    d = entry(rm, t + 2 * MIN)                                  # a stop-out would breach $75
    assert not d.approved and "left of the daily drawdown limit" in d.reason
    rm.on_mark(985.0, t + 3 * MIN)                              # $75 below peak → stop for the day
    d = entry(rm, t + 4 * MIN)
    assert not d.approved and d.reason.startswith("daily drawdown: $75.00 below the day's peak $1,060.00")
    assert entry(rm, ny(2025, 3, 13, 9, 30)).approved


def test_account_drawdown_then_kill_switch_and_typed_reset(tmp_path):
    t = ny(2025, 3, 12, 10)
    rm, clock = make(t)
    rm.on_mark(1100.0, t)                                       # HWM 1,100
    rm.on_trade_closed(100.0, t)
    for k in range(1, 9):                                       # -25 × 8 = -200 from HWM
        rm.on_trade_closed(-25.0, t + k * 24 * 60 * MIN)
    snap = rm.snapshot()
    assert snap.state is TradingState.HALTED and "account drawdown $200.00" in snap.reason
    assert snap.balance == 900.0 and snap.cumulative_loss == 100.0 and snap.kill_switch_distance == 200.0
    later = t + 9 * 24 * 60 * MIN + MIN
    clock.advance_to(later)
    assert "HALTED" in entry(rm, later).reason
    assert rm.allow_order(reduces_exposure=True) == (True, "")
    assert rm.allow_order(reduces_exposure=False)[0] is False
    assert rm.flatten_reason(later).startswith("HALTED")
    with pytest.raises(RiskActionError, match="type RESET"):
        rm.reset_halt("alice", "reset")
    assert rm.snapshot().state is TradingState.HALTED
    rm.reset_halt("alice", "RESET")
    snap = rm.snapshot()
    assert snap.state is TradingState.ACTIVE and snap.hwm == 900.0
    # kill switch: cumulative loss $300 from the $1,000 start (reference not breached before)
    for k in range(8):
        rm.on_trade_closed(-25.0, later + (k + 1) * 24 * 60 * MIN)
    snap = rm.snapshot()
    assert snap.state is TradingState.HALTED and "kill switch: cumulative loss $300.00" in snap.reason
    actions = [a["action"] for a in rm.audit_records]
    assert actions == ["halt", "reset_refused", "reset_halt", "halt"]
    with pytest.raises(RiskActionError, match="not halted"):
        make(t)[0].reset_halt("bob", "RESET")


def test_min_balance():
    s = with_risk(account_drawdown_limit=1e6, kill_switch_loss=1e6, daily_loss_limit=1e6,
                  daily_drawdown_limit=1e6, consecutive_loss_pauses=[])
    t = ny(2025, 3, 12, 10)
    rm, _ = make(t, s)
    rm.on_trade_closed(-300.0, t)                               # exactly $700: allowed
    d = entry(rm, t + MIN)
    assert d.approved and d.contracts == 1                     # tier 1: 2 % of 700 = $14 → 1 × $10
    rm.on_trade_closed(-0.01, t + 2 * MIN)
    d = entry(rm, t + 3 * MIN)
    assert not d.approved and "below the minimum $700.00" in d.reason


def test_manual_pause_resume_halt_audited():
    t = ny(2025, 3, 12, 10)
    rm, clock = make(t)
    rm.pause("news at 10:30", "alice")
    assert rm.snapshot().state is TradingState.REDUCING
    assert "paused by alice: news at 10:30" == entry(rm, t).reason
    assert rm.allow_order(reduces_exposure=True)[0]
    clock.advance_to(t + MIN)
    rm.resume("alice")
    assert entry(rm, t + MIN).approved
    with pytest.raises(RiskActionError):
        rm.resume("alice")
    rm.halt("operator kill", "bob")
    with pytest.raises(RiskActionError):
        rm.pause("x", "alice")
    recs = rm.audit_records
    assert [(r["action"], r["operator"], r["ts_ns"]) for r in recs] == [
        ("pause", "alice", t), ("resume", "alice", t + MIN), ("halt", "bob", t + MIN)]


def test_breakers():
    t = ny(2025, 3, 12, 10)
    rm, _ = make(t)
    rm.on_market(t, 3.0, None, None, None, None)               # spread 3 > 2 → pause
    assert "spread breaker" in entry(rm, t).reason
    rm.on_market(t, 2.0, None, None, None, None)               # 2: not yet ≤ 1
    assert not entry(rm, t).approved
    rm.on_market(t, None, None, None, None, None)              # unknown spread keeps the pause
    assert not entry(rm, t).approved
    rm.on_market(t, 1.0, None, None, None, None)
    assert entry(rm, t).approved
    rm.on_market(t, 1.0, 3.3, 1.0, None, None)                 # ATR 3.3× normal → half budget
    d = entry(rm, t, atr=0.5)                                   # 4 ticks $5 + $0.84 + 2 × 4 ticks $10
    assert ("volatility", 0.5, 10.0) in d.steps and rm.snapshot().breakers == ("volatility:half",)
    assert not d.approved and "$15.84 per contract" in d.reason
    rm.on_market(t, 1.0, 3.0, 1.0, None, None)                 # exactly 3× is not above
    d = entry(rm, t, atr=0.5)
    assert d.approved and d.contracts == 1 and not any(st[0] == "volatility" for st in d.steps)
    rm.on_market(t, 1.0, 1.0, 1.0, 5.0, 100.0)                 # volume 5 % of average → pause
    assert "volume breaker" in entry(rm, t).reason
    rm.on_market(t, 1.0, 1.0, 1.0, float("nan"), 100.0)        # no volume data → not measured
    assert entry(rm, t).approved
    s = with_risk(volatility_action="pause", low_volume_action="reduce")
    rm2, _ = make(t, s)
    rm2.on_market(t, None, 4.0, 1.0, 5.0, 100.0)
    assert "volatility breaker" in entry(rm2, t).reason
    rm2.on_market(t, None, 1.0, 1.0, 5.0, 100.0)
    d = entry(rm2, t, atr=0.5)                                 # volume reduce → half budget
    assert d.contracts == 1 and ("volume", 0.5, 10.0) in d.steps


def test_session_and_confidence_refusals():
    t = ny(2025, 3, 12, 10)
    rm, _ = make(t)
    assert "outside RTH" in entry(rm, ny(2025, 3, 12, 3), is_rth=False).reason
    assert "confidence 0.590 below the minimum 0.60" == entry(rm, t, conf=0.59).reason
    # 4-tick stop: $5 + $0.84 + $2.50 = $8.34. 60 %: budget $10 → 1; 95 %: $40 → tier 2, $25 cap → 2
    assert entry(rm, t, conf=0.60, atr=0.5).contracts == 1
    assert entry(rm, t, conf=0.60).contracts == 0              # 8 ticks: $13.34 > $10
    assert entry(rm, t, conf=0.95, atr=0.5).contracts == 2
    assert "market closed" in entry(rm, ny(2025, 3, 12, 17, 30), is_rth=False).reason
    assert "market closed" in entry(rm, ny(2025, 3, 15, 12), is_rth=False).reason   # Saturday
    s = Settings()
    rm_eth, _ = make(t, dataclasses.replace(s, session=dataclasses.replace(s.session, trade_session="eth")))
    assert "inside RTH" in entry(rm_eth, t).reason
    assert entry(rm_eth, ny(2025, 3, 12, 3), is_rth=False).approved


def test_fail_closed():
    t = ny(2025, 3, 12, 10)
    rm, _ = make(t)
    d = entry(rm, t, atr=float("nan"))
    assert not d.approved and d.reason.startswith("risk check failed: StopError")

    class Broken:
        def __getattr__(self, name):
            raise RuntimeError("calendar exploded")
    rm.calendar = Broken()
    rm._day_hi = -1  # force a calendar lookup
    d = entry(rm, t)
    assert not d.approved and "calendar exploded" in d.reason


@pytest.mark.parametrize("day,utc_hour", [((2025, 3, 10), 20), ((2025, 11, 3), 21)])
def test_eod_phases_after_dst_changes(day, utc_hour):
    # topstepx profile: flat 16:05 NY (5 min before 15:10 CT), exit 16:00, no_new 15:50, reduce 15:35
    s = Settings()
    rm, _ = make(ny(*day, 10), dataclasses.replace(s, session=dataclasses.replace(s.session, trade_session="all")))
    base = ny(*day, 16)
    assert base == ny_to_ns(date(*day), time(16)) and (base // 10**9) % 86400 == utc_hour * 3600
    cases = [(ny(*day, 15, 34, 59), "normal"), (ny(*day, 15, 35), "reduce"), (ny(*day, 15, 49, 59), "reduce"),
             (ny(*day, 15, 50), "no_new"), (ny(*day, 16), "exit"), (ny(*day, 16, 5), "flat"),
             (ny(*day, 16, 59), "flat"), (ny(*day, 17), "closed"), (ny(*day, 18), "normal")]
    for ts, phase in cases:
        assert rm.eod_phase(ts) == phase, (ts, phase)
        assert rm.eod_phase(ts) == CAL.eod_phase(ts)
    assert not rm.must_flatten(ny(*day, 15, 59, 59)) and rm.must_flatten(ny(*day, 16))
    assert rm.flat_deadline_ns(ny(*day, 10)) == ny(*day, 16, 5)
    assert rm.next_phase(ny(*day, 15)) == ("reduce", ny(*day, 15, 35))
    # 15:35-15:50 the risk budget × 0.5; no entry from 15:50
    full = entry(rm, ny(*day, 15, 30), is_rth=True, atr=0.5)
    half = entry(rm, ny(*day, 15, 40), is_rth=True, atr=0.5)
    assert (full.contracts, half.contracts) == (2, 1) and ("eod", 0.5, 10.0) in half.steps
    d = entry(rm, ny(*day, 15, 50), is_rth=True)
    assert not d.approved and d.reason.startswith("EOD phase no_new")


@pytest.mark.parametrize("session", ["rth", "eth", "all"])
@pytest.mark.parametrize("profile", ["topstepx", "fixed_ny"])
def test_signal_at_1612_ny_refused_in_every_trade_session(session, profile):
    # TopstepX: flat by 15:10 CT = 16:10 NY, no new position after it; a 16:12 entry is refused
    # whatever the trade session (the fixed_ny profile's no_new phase starts 16:15: refused there
    # only because the venue deadline has passed is NOT its rule, so it is checked at 16:16).
    s = Settings()
    s = dataclasses.replace(s, session=dataclasses.replace(s.session, trade_session=session),
                            eod=dataclasses.replace(s.eod, profile=profile))
    d = (2025, 6, 4)  # a full Wednesday
    rm, _ = make(ny(*d, 10), s)
    t = ny(*d, 16, 12) if profile == "topstepx" else ny(*d, 16, 16)
    for is_rth in (False, True):
        dec = entry(rm, t, is_rth=is_rth)
        assert not dec.approved and dec.contracts == 0 and dec.reason.startswith("EOD phase"), dec.reason


def test_eod_phases_early_close_2025_11_28():
    # Globex closes 13:15 NY (12:15 CT) on the NYSE early close: flat 5 min before it (13:10),
    # exit 13:05, no_new 12:55, reduce 12:40.
    rm, clock = make(ny(2025, 11, 28, 9))
    d = (2025, 11, 28)
    assert [rm.eod_phase(ny(*d, h, m)) for h, m in [(12, 39), (12, 40), (12, 55), (13, 5), (13, 10), (13, 15)]] == [
        "normal", "reduce", "no_new", "exit", "flat", "closed"]
    assert rm.flat_deadline_ns(ny(*d, 10)) == ny(*d, 13, 10)
    assert entry(rm, ny(*d, 12, 45), atr=0.5).contracts == 1  # RTH still open: budget halved
    assert not entry(rm, ny(*d, 12, 55)).approved
    assert rm.must_flatten(ny(*d, 13, 5))
    clock.advance_to(ny(*d, 13))
    snap = rm.snapshot()
    assert (snap.eod_phase, snap.next_phase, snap.next_phase_ns) == ("no_new", "exit", ny(*d, 13, 5))
    assert rm.next_phase(ny(*d, 13, 30)) == ("open", ny(2025, 11, 30, 18))


def test_real_bars_sizing_never_exceeds_max_risk(es_1m_path):
    import pandas as pd

    df = pd.read_parquet(es_1m_path)
    ts = df["ts_event"].dt.as_unit("ns").astype("int64").to_numpy()
    lo, hi = ny(2025, 6, 2, 0), ny(2025, 8, 2, 0)
    m = (ts >= lo) & (ts < hi)
    ts = ts[m]
    h, l, c = (df[k].to_numpy()[m] for k in ("high", "low", "close"))
    tr = np.maximum(h - l, np.maximum(abs(h - np.roll(c, 1)), abs(l - np.roll(c, 1))))
    atr = pd.Series(tr).rolling(14).mean().to_numpy()
    labels = CAL.label(ts)
    rng = np.random.default_rng(7)
    # one manager per starting balance: tiers $700-1,000 (1, 2 %), $1,000+ (2), $2,000+ (4), $3,000+ (5, 1.5 %)
    tiers = {800.0: (1, 0.02), 1000.0: (2, 0.02), 2500.0: (4, 0.02), 3500.0: (5, 0.015)}
    rms = {}
    for bal in tiers:
        s = Settings()
        rms[bal] = make(lo, dataclasses.replace(s, account=dataclasses.replace(s.account, starting_capital=bal)))[0]
    n_ok = n_small = 0
    for i in np.nonzero(labels.is_rth)[0][::4]:
        if not np.isfinite(atr[i]):
            continue
        now = int(ts[i]) + MIN                                 # decision at the bar's close
        conf = float(rng.uniform(0.55, 1.0))
        side = int(rng.choice([-1, 1]))
        bal = float(rng.choice(list(tiers)))
        rm = rms[bal]
        d = rm.evaluate_entry(side, conf, float(c[i]), float(atr[i]), h[max(0, i - 10):i + 1],
                              l[max(0, i - 10):i + 1], now, bool(labels.is_rth[i]))
        assert d.risk_dollars <= 25.0
        assert d.approved == (d.contracts > 0)
        phase = rm.eod_phase(now)
        if conf < 0.60 or phase in ("no_new", "exit", "flat", "closed"):
            assert not d.approved
            continue
        ticks = min(max(math.ceil(atr[i] * 1.5 / 0.25 - 1e-9), 4), 8)
        cap, frac = tiers[bal]
        per = ticks * 1.25 + 0.84 + 2 * 1.25           # stop + round-trip costs + 1 tick a side (RTH)
        mult = 0.5 if conf < 0.7 else 1.0 if conf < 0.8 else 1.5 if conf < 0.9 else 2.0
        budget = min(25.0, bal * frac) * mult * (0.5 if phase == "reduce" else 1.0)
        want = min(math.floor(budget / per + 1e-9), cap, math.floor(25.0 / per + 1e-9))
        if want:  # a fresh day: $50 of room at the worst-case 4 ticks a side
            want = min(want, math.floor(50.0 / (ticks * 1.25 + 0.84 + 10.0) + 1e-9))
        assert d.contracts == want, (i, d, ticks, conf, bal)
        if want:
            assert abs(side * (c[i] - d.stop_price) / 0.25 - ticks) < 1e-6
            assert abs(d.risk_dollars - want * per) < 1e-6
            n_ok += 1
        else:
            assert d.reason.startswith("risk too small for one contract")
            n_small += 1
    assert n_ok > 1000 and n_small > 500, (n_ok, n_small)


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402


@hsettings(max_examples=300, deadline=None)
@given(balance=st.floats(500, 12_000), atr=st.floats(0.01, 30.0), conf=st.floats(0.0, 1.0),
       side=st.sampled_from([1, -1]), minute=st.integers(0, 24 * 60 - 1),
       method=st.sampled_from(["atr", "fixed", "structure"]), prior=st.floats(-60, 60),
       symbol=st.sampled_from(["MES", "ES", "MNQ"]))
def test_property_manager_never_risks_more_than_max(balance, atr, conf, side, minute, method, prior, symbol):
    s = Settings()
    s = dataclasses.replace(s, account=dataclasses.replace(s.account, starting_capital=balance),
                            stops=dataclasses.replace(s.stops, method=method),
                            session=dataclasses.replace(s.session, trade_session="all"))
    t0 = ny(2025, 11, 25, 0)
    now = t0 + minute * MIN
    rm = RiskManager(s, SimClock(t0), CAL, spec(symbol))
    rm.on_trade_closed(prior, t0)
    price = 5000.0 + (minute % 17) * 0.25
    highs = price + np.linspace(0.25, atr, 10)
    lows = price - np.linspace(0.25, atr, 10)
    d = rm.evaluate_entry(side, conf, price, atr, highs, lows, now, True)
    assert d.risk_dollars <= 25.0 + 1e-9
    assert d.approved == (d.contracts > 0)
    if d.approved:
        tick = spec(symbol).tick_size
        ticks = round(abs(price - d.stop_price) / tick)
        tv = spec(symbol).tick_value
        assert abs(d.risk_dollars - d.contracts * (ticks * tv + 0.84 + 2 * tv)) < 1e-6
        assert side * (price - d.stop_price) > 0 and side * (d.target_price - price) > 0
        assert conf >= 0.60 and rm.eod_phase(now) in ("normal", "reduce")
    else:
        assert d.reason
