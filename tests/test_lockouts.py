"""Discipline lockouts (issue 26) on the real 1-minute year: a backtest with each lockout on
differs from one without exactly where the lockout applies (max trades per day, daily profit
lock, a blocked window after the open, an FOMC blackout from the shipped calendar, with the
flatten and break-even actions); the events file loaders and their errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.backtest.report import summary_text
from engine.backtest.runner import run_backtest, slice_dates
from engine.calendar import calendar_for, ny_datetime, ny_to_ns
from engine.config import ConfigError, Settings, load_settings
from engine.data.io import load_bars
from engine.risk.lockouts import EventsFileError, Lockouts, load_events
from engine.strategy import strategy_by_name

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "examples" / "calendar" / "us_macro_2024-12_2025-12.csv"
COLS = ["entry_ts", "exit_ts", "direction", "contracts", "entry_price", "exit_price", "net_pnl", "exit_reason"]


def _settings(lockouts: dict | None = None, **extra) -> Settings:
    """A large account with the account-level halts and the consecutive-loss pauses out of the
    way, so each trading day is independent of the others (the daily limits reset each day)."""
    s = Settings()
    rep = {"account": dataclasses.replace(s.account, starting_capital=100_000.0),
           "risk": dataclasses.replace(s.risk, kill_switch_loss=1e9, account_drawdown_limit=1e9,
                                       consecutive_loss_pauses=[], daily_loss_limit=5_000.0,
                                       daily_drawdown_limit=5_000.0),
           "lockouts": dataclasses.replace(s.lockouts, **(lockouts or {}))}
    for k, v in extra.items():
        rep[k] = dataclasses.replace(getattr(s, k), **v)
    return dataclasses.replace(s, **rep)


@pytest.fixture(scope="module")
def part(es_1m_path):
    # two weeks around the 2025-01-29 FOMC statement (14:00 NY)
    return slice_dates(load_bars(es_1m_path), "2025-01-21", "2025-01-31")


@pytest.fixture(scope="module")
def sig(part):
    return strategy_by_name("random", seed=5, p=0.05).signals(part)


@pytest.fixture(scope="module")
def base(part, sig):
    return run_backtest(part, sig, _settings(), fill_model="conservative")


def _days(trades: pd.DataFrame) -> dict:
    day = [ny_datetime(int(t)).date() for t in trades.entry_ts]
    return {d: g[COLS].reset_index(drop=True) for d, g in trades.assign(_d=day).groupby("_d")}


def _lockout_refusals(res) -> int:
    return sum(n for r, n in res.refused.items() if r.startswith("lockout"))


def test_max_trades_per_day_keeps_exactly_the_first_n_trades_of_each_day(part, sig, base):
    n = 3
    res = run_backtest(part, sig, _settings({"max_trades_per_day": n}), fill_model="conservative")
    b, lk = _days(base.trades), _days(res.trades)
    assert set(lk) == set(b)
    capped = [d for d in b if len(b[d]) > n]
    assert len(capped) >= 3, "the random strategy must exceed the cap on several days"
    for d in b:
        pd.testing.assert_frame_equal(lk[d], b[d].iloc[:n].reset_index(drop=True))
    locks = [h for h in res.halts if h["kind"] == "lockout"]
    reached = [d for d in b if len(b[d]) >= n]  # the lock starts with the n-th round trip
    assert len(locks) == len(reached) and all(h["reason"].startswith("lockout max trades: 3 trades") for h in locks)
    assert any(x.startswith(f"lockouts max trades {len(reached)} (first ") for x in summary_text(res).splitlines())


def test_daily_profit_lock_stops_the_day_after_the_trade_that_reaches_it(part, sig, base):
    lock = 15.0
    res = run_backtest(part, sig, _settings({"daily_profit_lock": lock}), fill_model="conservative")
    b, lk = _days(base.trades), _days(res.trades)
    hit = 0
    for d in b:
        cum = b[d].net_pnl.cumsum().to_numpy()
        k = int(np.argmax(cum >= lock)) if (cum >= lock).any() else len(cum) - 1
        hit += bool((cum >= lock).any()) and k < len(cum) - 1
        pd.testing.assert_frame_equal(lk[d], b[d].iloc[:k + 1].reset_index(drop=True))
    assert hit >= 1, "the lock must cut at least one day"
    assert sum(h["reason"].startswith("lockout profit lock") for h in res.halts) >= hit


def test_consistency_share_stops_before_the_day_would_exceed_it(part, sig, base):
    """share × target = $20: an entry whose win at its target could take the day past $20 is
    sized down or refused, so no day ends a trade above $20; each day is the baseline's until its
    first entry that could have crossed (target = floor(2.0 × stop ticks) ≤ 16 ticks, $20 a
    contract, with the shipped reward:risk 2.0 and 8-tick stop cap), and the lock changed some day."""
    cap = 20.0
    res = run_backtest(part, sig, _settings({"consistency_share": 0.5, "consistency_target": 40.0}),
                       fill_model="conservative")
    b, lk = _days(base.trades), _days(res.trades)
    changed = 0
    for d in b:
        got = lk.get(d, b[d].iloc[:0])
        assert (got.net_pnl.cumsum() <= cap + 1e-6).all(), (d, got.net_pnl.cumsum().max())
        before = b[d].net_pnl.cumsum().shift(fill_value=0.0)
        risky = (before + b[d].contracts * 20.0 - 0.84 * b[d].contracts > cap - 1e-9).to_numpy()
        k = int(np.argmax(risky)) if risky.any() else len(risky)
        pd.testing.assert_frame_equal(got.iloc[:k].reset_index(drop=True), b[d].iloc[:k].reset_index(drop=True))
        changed += not got.reset_index(drop=True).equals(b[d])
    assert changed >= 1
    assert max(float(b[d].net_pnl.cumsum().max()) for d in b) > cap, "the baseline has a day above the cap"
    assert any(h["reason"].startswith("lockout") and "consistency 50% of $40" in h["reason"] for h in res.halts) \
        or any("consistency 50% of $40" in r for r in res.refused)


def test_first_minutes_after_the_open_blocked_days_without_such_entries_unchanged(part, sig, base):
    mins = 20
    res = run_backtest(part, sig, _settings({"after_open_minutes": mins}), fill_model="conservative")
    b, lk = _days(base.trades), _days(res.trades)
    cal = calendar_for(int(part.ts[0]), int(part.ts[-1]))
    touched = 0
    for d in b:
        o = int(cal.table.rth_open[cal.session_row(d)])
        in_win = lambda t: (t.entry_ts >= o) & (t.entry_ts < o + mins * 60_000_000_000)  # noqa: E731
        assert not in_win(lk.get(d, b[d].iloc[:0])).any(), d
        if in_win(b[d]).any():
            touched += 1
        else:
            pd.testing.assert_frame_equal(lk[d], b[d])
    assert touched >= 3
    assert _lockout_refusals(res) > 0
    assert sum(h["kind"] == "lockout" for h in res.halts) >= touched


def test_fomc_blackout_from_the_shipped_calendar_only_changes_the_event_day(part, sig, base):
    t = ny_to_ns(pd.Timestamp("2025-01-29").date(), pd.Timestamp("14:00").time())
    lo, hi = t - 60 * 60_000_000_000, t + 30 * 60_000_000_000
    cfg = {"events_file": str(EVENTS), "events_before_min": 60.0, "events_after_min": 30.0}
    res = run_backtest(part, sig, _settings(cfg), fill_model="conservative")
    b, lk = _days(base.trades), _days(res.trades)
    fomc = pd.Timestamp("2025-01-29").date()
    b_in = b[fomc][(b[fomc].entry_ts >= lo) & (b[fomc].entry_ts < hi)]
    assert len(b_in) >= 1, "the baseline trades inside the blackout"
    lk_day = lk[fomc]
    assert not ((lk_day.entry_ts >= lo) & (lk_day.entry_ts < hi)).any()
    # before the blackout the day is the same
    pd.testing.assert_frame_equal(lk_day[lk_day.entry_ts < lo].reset_index(drop=True),
                                  b[fomc][b[fomc].entry_ts < lo].reset_index(drop=True))
    for d in b:
        if d != fomc:
            pd.testing.assert_frame_equal(lk[d], b[d])
    assert any(r.startswith("lockout event: FOMC statement at 2025-01-29 14:00 NY") for r in res.refused)


@pytest.mark.parametrize("action", ["flatten", "breakeven"])
def test_event_action_acts_on_the_open_position_at_t_minus_before_fast_equals_bar_by_bar(part, action):
    """The FOMC statement (14:00 NY) with ``before`` chosen so that T - before falls one minute
    into a baseline position that lasts longer: with ``flatten`` that position is closed on the
    bar closing at T - before; with ``breakeven`` its stop moves to the entry then. The skip-ahead
    gives the same trades as the bar-by-bar run."""
    sig = strategy_by_name("random", seed=5, p=0.05).signals(part)
    t = ny_to_ns(pd.Timestamp("2025-01-29").date(), pd.Timestamp("14:00").time())
    wide = {"stops": {"breakeven_after_ticks": 0, "reward_risk": 3.0}}
    b = run_backtest(part, sig, _settings(**wide), fill_model="conservative")
    m = 60_000_000_000
    cand = b.trades[(b.trades.entry_ts < t - 2 * m) & (b.trades.exit_ts - b.trades.entry_ts >= 3 * m)
                    & (b.trades.entry_ts > t - 120 * m)]
    assert len(cand) >= 1, "a baseline position of 3+ minutes in the two hours before the event"
    tr = cand.iloc[-1]
    lo = int(tr.entry_ts) + m
    before = (t - lo) / m
    cfg = {"events_file": str(EVENTS), "events_before_min": before, "events_after_min": 30.0, "events_action": action}
    s1 = _settings(cfg, **wide)
    fast = run_backtest(part, sig, s1, fill_model="conservative", fast=True)
    slow = run_backtest(part, sig, s1, fill_model="conservative", fast=False)
    pd.testing.assert_frame_equal(fast.trades, slow.trades)
    # the days before the event are the same
    pd.testing.assert_frame_equal(fast.trades[fast.trades.entry_ts < int(tr.entry_ts)][COLS].reset_index(drop=True),
                                  b.trades[b.trades.entry_ts < int(tr.entry_ts)][COLS].reset_index(drop=True))
    got = fast.trades[fast.trades.entry_ts == int(tr.entry_ts)].iloc[0]
    assert not (fast.trades.entry_ts.between(lo, t + 30 * m - 1)).any()
    if action == "flatten":
        # flattened at the next bar's open after the bar closing at T - before
        assert lo <= got.exit_ts <= lo + m and got.exit_ts < tr.exit_ts
        assert got.exit_reason == "lockout"        # named for what closed it, not the EOD exit
    else:
        side = 1 if got.direction == "long" else -1
        tick = 0.25
        be = np.ceil(got.entry_price / tick) * tick if side > 0 else np.floor(got.entry_price / tick) * tick
        # closed no worse than the break-even stop and its modelled slippage, or at once when the
        # price was already through the entry at T - before
        assert got.exit_ts >= lo
        assert side * (got.exit_price - be) >= -4 * tick or got.exit_ts <= lo + m
        assert (got.exit_ts, got.exit_price) != (tr.exit_ts, tr.exit_price)


def test_events_loaders_csv_ics_and_errors(tmp_path):
    ev = load_events(EVENTS)
    names = {e.name.split(" (")[0] for e in ev}
    assert {"FOMC statement", "CPI", "NFP"} <= names
    assert ny_datetime(ev[0].ts_ns).strftime("%Y-%m-%d %H:%M") == "2024-12-06 08:30"
    fomc = [e for e in ev if e.name == "FOMC statement"]
    assert len(fomc) == 9 and all(ny_datetime(e.ts_ns).strftime("%H:%M") == "14:00" for e in fomc)
    ics = load_events(ROOT / "examples" / "calendar" / "fomc_2025.ics")
    assert [ny_datetime(e.ts_ns).strftime("%Y-%m-%d %H:%M") for e in ics] == [
        "2025-01-29 14:00", "2025-03-19 14:00", "2025-05-07 14:00"]
    bad = tmp_path / "bad.csv"
    bad.write_text("time,event,importance\n2025-01-01 08:30,X,huge\n")
    with pytest.raises(EventsFileError, match=r"bad.csv: line 2: importance 'huge'"):
        load_events(bad)
    bad.write_text("time,event,importance\nyesterday,X,high\n")
    with pytest.raises(EventsFileError, match="line 2: time 'yesterday'"):
        load_events(bad)
    with pytest.raises(EventsFileError, match="cannot read"):
        load_events(tmp_path / "missing.csv")


def test_config_rows_and_status_lines(tmp_path, part):
    p = tmp_path / "c.toml"
    p.write_text('[lockouts]\nblocked_windows = [["15:00", "14:00"]]\n')
    with pytest.raises(ConfigError, match=r"blocked_windows row 1 .*from must be before to"):
        load_settings(p, use_user_file=False)
    p.write_text('[lockouts]\nblocked_windows = [["9h30", "10:00"]]\n')
    with pytest.raises(ConfigError, match="HH:MM"):
        load_settings(p, use_user_file=False)
    bad = tmp_path / "events.csv"
    bad.write_text("time,event,importance\n2025-01-29 14:00,FOMC,critical\n")
    p.write_text(f'[lockouts]\nevents_file = "{bad}"\n')
    with pytest.raises(ConfigError, match=r"\[lockouts\] events_file: .*events.csv: line 2: importance 'critical'"):
        load_settings(p, use_user_file=False)
    cal = calendar_for(int(part.ts[0]), int(part.ts[-1]))
    s = _settings({"max_trades_per_day": 2, "blocked_windows": [["12:00", "13:00"]], "events_file": str(EVENTS)})
    lk = Lockouts(s.lockouts, cal)
    noon = ny_to_ns(pd.Timestamp("2025-01-29").date(), pd.Timestamp("12:30").time())
    st = lk.status(noon, 2, 0.0)
    assert st[0] == "LOCKED trades 2/2 today"
    assert st[1].startswith("LOCKED window: blocked window 12:00-13:00 NY until 2025-01-29 13:00 NY")
    assert st[2].startswith("ok event: next FOMC statement at 2025-01-29 14:00 NY from 2025-01-29 13:55 NY")


def test_lockouts_in_the_report_the_limits_rows_and_the_risk_pane(part, sig, tmp_path):
    """The backtest's report.md and limits rows (summary_text) list the lockouts; the risk
    manager's snapshot carries one line per lockout and the risk pane renders them."""
    from engine.backtest.report import write_report
    from engine.runtime.snapshot import RiskView
    from mes_console.widgets.render import render_risk

    cfg = {"max_trades_per_day": 15, "events_file": str(EVENTS), "events_before_min": 60.0,
           "events_after_min": 30.0}
    res = run_backtest(part, sig, _settings(cfg), fill_model="conservative")
    rows = summary_text(res).splitlines()
    line = next(x for x in rows if x.startswith("lockouts "))
    assert "event 1" in line and "max trades" in line
    paths = write_report(res, tmp_path / "rep")
    md = next(p for p in paths.values() if str(p).endswith(".md"))
    assert line in Path(md).read_text()
    # the risk manager's snapshot and the pane
    from engine.clock import SimClock
    from engine.instruments import spec
    from engine.risk import RiskManager

    t = ny_to_ns(pd.Timestamp("2025-01-29").date(), pd.Timestamp("13:30").time())
    rm = RiskManager(_settings(cfg), SimClock(t), calendar_for(t), spec("MES"))
    snap = rm.snapshot()
    assert snap.lockouts[0] == "ok trades 0/15 today"
    assert snap.lockouts[1].startswith("LOCKED event: FOMC statement at 2025-01-29 14:00 NY until 2025-01-29 14:30 NY")
    d = rm.evaluate_entry(1, 0.9, 6000.0, 2.0, None, None, t, True)
    assert not d.approved and d.reason.startswith("lockout event: FOMC statement")
    view = RiskView("ACTIVE", "", 0.0, 50.0, 0.0, 75.0, 0, 300.0, 300.0, lockouts=snap.lockouts)
    text = render_risk(view, t, width=60).plain
    assert "ok trades 0/15 today" in text and "LOCKED event: FOMC statement" in text
