"""Losing sequences on real 1-minute bars: a random-side bracket strategy driven through the risk
manager; the trade log is then checked independently against the §0 rules (consecutive-loss
pauses, daily loss until the next 09:30 NY, no entry from 16:15, flat by 16:30, ≤ $25 risk)."""

from __future__ import annotations

import dataclasses
from datetime import date, time

import numpy as np
import pandas as pd

from engine.calendar import calendar_for, day_date, ny_datetime, ny_to_ns
from engine.clock import SimClock
from engine.config import Settings
from engine.instruments import spec
from engine.risk import RiskManager

NS = 1_000_000_000
MIN = 60 * NS
RT_COST = 0.84


def test_losing_sequences_on_real_bars(es_1m_path):
    df = pd.read_parquet(es_1m_path)
    ts = df["ts_event"].dt.as_unit("ns").astype("int64").to_numpy()
    lo, hi = ny_to_ns(date(2025, 6, 2), time(0)), ny_to_ns(date(2025, 8, 30), time(0))
    m = (ts >= lo) & (ts < hi)
    ts = ts[m]
    o, h, l, c = (df[k].to_numpy()[m] for k in ("open", "high", "low", "close"))
    cal = calendar_for(ts[0], ts[-1])
    lab = cal.label(ts)
    tr = np.maximum(h - l, np.maximum(abs(h - np.roll(c, 1)), abs(l - np.roll(c, 1))))
    atr = pd.Series(tr).rolling(14).mean().to_numpy()
    s = Settings()
    s = dataclasses.replace(
        s, account=dataclasses.replace(s.account, starting_capital=3000.0),
        risk=dataclasses.replace(s.risk, kill_switch_loss=1e6, account_drawdown_limit=1e6),
        stops=dataclasses.replace(s.stops, reward_risk=1.0, breakeven_after_ticks=0))
    clock = SimClock(int(ts[0]))
    rm = RiskManager(s, clock, cal, spec("MES"), cap_to_daily_room=False)
    rng = np.random.default_rng(11)
    pos = None
    trades = []      # (entry_ns, exit_ns, pnl, contracts, risk, trading_day)
    reasons = set()
    for i in range(len(ts)):
        now = int(ts[i]) + MIN                      # bar close
        clock.advance_to(now)
        if pos is not None:
            side, entry, stop, target, n, t_in, risk = pos
            hit_stop = (l[i] <= stop) if side == 1 else (h[i] >= stop)
            hit_tgt = (h[i] >= target) if side == 1 else (l[i] <= target)
            exit_px = None
            if hit_stop:                            # pessimistic: stop first, gaps fill at the open
                exit_px = min(o[i], stop) if side == 1 else max(o[i], stop)
            elif hit_tgt:
                exit_px = target
            elif rm.must_flatten(now) or not lab.in_session[min(i + 1, len(ts) - 1)]:
                exit_px = c[i]
            if exit_px is not None:
                pnl = side * (exit_px - entry) * 5.0 * n - RT_COST * n
                rm.on_trade_closed(pnl, now)
                trades.append((t_in, now, pnl, n, risk, int(lab.trading_day[i])))
                pos = None
            else:
                rm.on_mark(rm.balance + side * (c[i] - entry) * 5.0 * n, now)
        if pos is None and lab.is_rth[i] and np.isfinite(atr[i]) and rng.random() < 0.2:
            side = int(rng.choice([-1, 1]))
            d = rm.evaluate_entry(side, 0.75, float(c[i]), float(atr[i]), None, None, now, True)
            if d.approved:
                assert d.risk_dollars <= 25.0
                pos = (side, float(c[i]), d.stop_price, d.target_price, d.contracts, now, d.risk_dollars)
            else:
                reasons.add(d.reason.split(":")[0].split(" (")[0])
    assert pos is None and len(trades) > 300

    # ---- independent checks of the trade log
    streak, last_exit, pause_to = 0, 0, 0
    day_pnl: dict[int, float] = {}
    blocked_until = 0
    fired_pause = fired_daily = 0
    for t_in, t_out, pnl, n, risk, tday in trades:
        assert t_in >= pause_to, f"entry {ny_datetime(t_in)} inside a loss pause until {ny_datetime(pause_to)}"
        assert t_in >= blocked_until, f"entry {ny_datetime(t_in)} inside the daily block"
        tin_day = cal.trading_day_of(t_in)
        eod = cal.eod_times(tin_day)
        assert t_in < eod["no_new"] and t_out <= eod["flat"]
        assert 0 < risk <= 25.0
        streak = streak + 1 if pnl < 0 else 0
        if streak >= 3:
            pause_to = t_out + (1800 if streak >= 5 else 900) * NS
            fired_pause += 1
        d = int(cal.label(np.asarray([t_out])).trading_day[0])
        day_pnl[d] = day_pnl.get(d, 0.0) + pnl
        if day_pnl[d] <= -50.0 and blocked_until < t_out:
            nxt = next(x for x in cal.trading_days(day_date(d + 1), day_date(d + 10))
                       if cal.table.rth_open[cal.session_row(x)] >= 0)
            blocked_until = int(cal.table.rth_open[cal.session_row(nxt)])
            fired_daily += 1
    assert fired_pause > 5 and fired_daily > 3, (fired_pause, fired_daily)
    assert "daily loss limit" in reasons
    assert any("consecutive losses" in r for r in reasons)
