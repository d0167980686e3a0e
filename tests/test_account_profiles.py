"""Issue 23: the account's rules in every mode. Profiles derive the engine's limits; the same
AccountRules reach the risk manager in backtest and replay; the simulated venue liquidates at
the MLL and fails the account; a verdict in every report; the Monte Carlo pass probability."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from engine import compose
from engine.backtest.runner import run_backtest, slice_dates
from engine.calendar import calendar_for
from engine.clock import SimClock
from engine.config import ConfigError, load_settings
from engine.data import load_bars
from engine.instruments import spec as instrument_spec
from engine.market.inputs import prepare_market
from engine.research.montecarlo import PathRules, bootstrap_index, pass_probability, run_paths
from engine.risk.account_rules import PROFILES, AccountRules
from engine.risk.build import build_risk
from engine.risk.profiles import derived_limits, effective_profile, limit_sources
from engine.strategy.baseline import BreakoutBaseline
from engine.venue.base import Bracket
from engine.venue.sim import SimVenue
from mes_console.cli import app

P50 = PROFILES["topstepx-50k"]


def _settings(tmp_path, text: str, name: str = "c.toml"):
    f = tmp_path / name
    f.write_text(text)
    return load_settings(f, use_user_file=False, env={})


# ----------------------------------------------------------------------------- profiles and config
def test_profile_sets_the_account_and_derives_every_engine_limit(tmp_path) -> None:
    none = load_settings(None, use_user_file=False, env={})
    assert none.account.starting_capital == 1000.0 and none.risk.daily_loss_limit == 50.0   # §0 unchanged
    s = _settings(tmp_path, '[account]\nrules = "topstepx-50k"\n')
    r = s.risk
    assert s.account.starting_capital == 50_000.0
    # §0 scaled by 2000 / 300; the account-level limits sit at the MLL so that it can fire
    assert (r.daily_loss_limit, r.daily_drawdown_limit, r.max_risk_per_trade) == (333.33, 500.0, 166.67)
    assert (r.kill_switch_loss, r.min_account_balance, r.account_drawdown_limit) == (2000.0, 48_000.0, 2000.0)
    # a [risk] key in a file wins; an [account] override changes the profile and what derives from it
    s = _settings(tmp_path, '[account]\nrules = "topstepx-100k"\nmll_allowance = 2400.0\nprofit_target = 5000.0\n'
                  '[risk]\ndaily_loss_limit = 300.0\n')
    p = effective_profile(s.account)
    assert (p.account_size, p.mll_allowance, p.profit_target) == (100_000.0, 2400.0, 5000.0)
    assert s.risk.daily_loss_limit == 300.0 and s.risk.kill_switch_loss == 2400.0
    assert s.risk.min_account_balance == 97_600.0
    src = {k: why for k, _, why in limit_sources(s)}
    assert src["risk.daily_loss_limit"] == "config file [risk]"
    assert src["risk.kill_switch_loss"].startswith("derived: = MLL allowance")
    assert src["mll_allowance"] == "[account] mll_allowance"
    # the venue's daily loss limit is tighter than §0's scaled one: it sets the engine's
    lim = derived_limits(effective_profile(_settings(
        tmp_path, '[account]\nrules = "topstepx-50k"\npersonal_daily_loss_limit = 250.0\n').account))
    assert lim["daily_loss_limit"][0] == 250.0 and lim["max_risk_per_trade"][0] == 166.67
    xfa = effective_profile(_settings(tmp_path, '[account]\nrules = "topstepx-xfa-50k"\n').account)
    assert xfa.profit_target == 0 and xfa.max_contracts == 2 and xfa.kind == "xfa"
    with pytest.raises(ConfigError, match=r"\[account\] rules"):
        _settings(tmp_path, '[account]\nrules = "topstepx-75k"\n')


def test_config_show_prints_the_effective_limits_and_their_rule(tmp_path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[account]\nrules = "topstepx-50k"\n')
    r = CliRunner().invoke(app, ["config", "show", "--config", str(f), "--json"])
    assert r.exit_code == 0, r.stderr
    rows = {x["key"]: x for x in json.loads(r.stdout)["account_limits"]}
    assert rows["risk.account_drawdown_limit"]["value"] == 2000.0
    assert rows["risk.account_drawdown_limit"]["set_by"].startswith("derived")
    assert rows["profit_target"]["value"] == 3000.0 and rows["starting_capital"]["set_by"] == "profile topstepx-50k"


# ----------------------------------------------------------------------------- planted paths
def test_mll_trails_only_end_of_day_highs_through_the_risk_manager() -> None:
    """The level moves at the day roll (the risk manager hands its equity to the rules), never
    on an intraday high, and stops at the starting balance."""
    s = load_settings(None, use_user_file=False, env={})
    s = dataclasses.replace(s, account=dataclasses.replace(s.account, rules="topstepx-50k", starting_capital=50_000.0))
    t0 = int(np.datetime64("2025-10-07T15:00:00", "ns").astype(np.int64))
    day = 86_400 * 10**9
    cal = calendar_for(t0 - 5 * day, t0 + 10 * day)
    rm = build_risk(s, SimClock(t0), cal, instrument_spec("MES"))
    rules = rm.account_rules
    assert isinstance(rules, AccountRules)
    rm.on_mark(50_000.0, t0)
    assert rules.liquidation_level == 48_000.0
    rm.on_mark(51_500.0, t0 + 60 * 10**9)             # an intraday high: the level stays
    assert rules.liquidation_level == 48_000.0
    rm.on_trade_closed(900.0, t0 + 120 * 10**9)        # the day ends at 50,900
    rm.on_mark(50_900.0, t0 + day)                     # next trading day: trails to 48,900
    assert rules.liquidation_level == 48_900.0
    rm.on_trade_closed(2_500.0, t0 + day + 60 * 10**9)  # 53,400 at the end of the day
    rm.on_mark(53_400.0, t0 + 2 * day)
    assert rules.liquidation_level == 50_000.0         # 51,400 would pass the start: locked


def _venue(lows, highs, opens=None, closes=None):
    n = len(lows)
    ts = np.arange(n, dtype=np.int64) * 60 * 10**9 + int(np.datetime64("2025-10-07T14:00:00", "ns").astype(np.int64))
    o = np.asarray(opens if opens is not None else [6000.0] * n)
    c = np.asarray(closes if closes is not None else [6000.0] * n)
    return SimVenue(ts, o, np.asarray(highs, float), np.asarray(lows, float), c, bar_ns=60 * 10**9, tick_size=0.25,
                    point_value=5.0, cost_per_side=0.42, slip_ticks=np.ones(n), starting_balance=50_000.0)


def test_an_intrabar_breach_liquidates_at_the_level_and_fails_the_account() -> None:
    """A long of 10 MES filled at 6000.25 (one tick of slippage) with its stop 50 points away:
    the level 48,000 is 1,995.80 below the balance after the entry's $4.20 of costs, i.e. at
    6000.25 − 1995.80 / 50 = 5960.334 points; the bar that dips to 5950 (and closes back at
    6000) liquidates at the level's tick 5960.25 less one tick of slippage, before the stop."""
    v = _venue(lows=[5999.0, 5950.0, 5990.0], highs=[6001.0, 6001.0, 6001.0])
    rules = AccountRules(P50, "MES", entry_cap=False)
    rules.on_balance("2025-10-07", 50_000.0)
    v.guard = rules
    v.place(1, 10, "market", tag="e", bracket=Bracket(stop_ticks=200, target_ticks=200))
    v.process_bar(0)                                     # filled at 6000.25 (1 tick slippage)
    assert v.pos == 10 and not v.liquidations
    v.process_bar(1)
    assert v.pos == 0 and len(v.liquidations) == 1
    ts, px, ref, lvl = v.liquidations[0]
    level_px = 6000.25 + (48_000.0 - (50_000.0 - 4.2)) / 50.0
    assert lvl == 48_000.0 and ref == np.floor(level_px / 0.25) * 0.25 and level_px - ref < 0.25
    assert px == ref - 0.25                              # the bar's modelled slippage, adverse
    f = rules.verdict(v.balance)
    assert f["status"] == "failed" and f["rule"] == "MLL" and f["level"] == 48_000.0
    assert rules.cap_entry(1, 10.0, 49_000.0, 49_000.0)[0] == 0   # no further trade
    assert not v.has_working()                          # the target leg went with the stop leg (OCO)
    # a short: the bar's HIGH is the adverse extreme; a bar that opens beyond the level fills at its open
    vs = _venue(lows=[5999.0, 6045.0], highs=[6001.0, 6060.0], opens=[6000.0, 6050.0], closes=[6000.0, 6055.0])
    rs = AccountRules(P50, "MES", entry_cap=False)
    rs.on_balance("2025-10-07", 50_000.0)
    vs.guard = rs
    vs.place(-1, 10, "market", tag="e", bracket=Bracket(stop_ticks=400, target_ticks=200))
    vs.process_bar(0)                                    # sold at 5999.75
    vs.process_bar(1)                                    # level at 5999.75 + 39.916 = 6039.67: the open 6050 is beyond
    (_, px, ref, _), = vs.liquidations
    assert ref == 6050.0 and px == 6050.25 and vs.pos == 0 and rs.verdict(vs.balance)["status"] == "failed"
    # the stop lies before the level: the stop fills, no liquidation
    v2 = _venue(lows=[5999.0, 5950.0], highs=[6001.0, 6001.0])
    r2 = AccountRules(P50, "MES")
    r2.on_balance("2025-10-07", 50_000.0)
    v2.guard = r2
    v2.place(1, 10, "market", tag="e", bracket=Bracket(stop_ticks=16, target_ticks=200))
    v2.process_bar(0)
    v2.process_bar(1)
    assert v2.pos == 0 and not v2.liquidations and r2.verdict(v2.balance)["status"] == "open"


def test_profit_target_with_a_big_best_day_stays_open_until_the_share_falls() -> None:
    """``on_balance(day, b)`` at a day's first event hands over the previous day's end balance."""
    r = AccountRules(P50, "MES")
    r.on_balance("2025-10-06", 50_000.0)
    r.on_balance("2025-10-07", 52_500.0)                # the 6th made +2,500
    r.on_balance("2025-10-08", 53_100.0)                # the 7th +600: profit 3,100 ≥ 3,000, best 81 % > 50 %
    v = r.verdict(53_100.0)
    assert v["status"] == "open" and v["to_target"] < 0 and v["best_day_share"] == pytest.approx(2500 / 3100)
    r.on_balance("2025-10-09", 54_100.0)                # the 8th +1,000: 2,500 / 4,100 = 61 %
    assert r.verdict(54_100.0)["status"] == "open"
    r.on_balance("2025-10-10", 55_100.0)                # the 9th +1,000: 2,500 / 5,100 = 49 % ≤ 50 %: passed
    v = r.verdict(55_100.0)
    assert v["status"] == "passed" and v["date"] == "2025-10-09" and v["trading_days"] == 4
    assert v["best_day_share"] == pytest.approx(2500 / 5100) and v["best_day_share"] <= 0.5 and v["profit"] == 5100.0
    r.on_balance("2025-10-13", 40_000.0)                # after a pass the verdict is frozen
    assert r.verdict(40_000.0)["status"] == "passed" and r.guard_level() == -np.inf


# ----------------------------------------------------------------------------- Monte Carlo
RULES = PathRules(start=50_000.0, allowance=2_000.0, lock=50_000.0, target=3_000.0, consistency_share=0.5)
PNL = np.array([2000.0, -2500.0, 1200.0])
LOW = np.array([0.0, -2500.0, -300.0])


def test_monte_carlo_matches_the_nine_enumerated_paths() -> None:
    """Days A +2000, B −2500 (low −2500), C +1200 (low −300), two-day paths, by hand:
    AA passed day 2 (profit 4000, best 2000 = 50 %); AB failed day 2 (level 50,000 after the
    52,000 close, 52,000 − 2,500 below it); AC open (3,200 but best 2,000 = 62 %); B* failed
    day 1 (47,500 ≤ 48,000); CA open (3,200, 62 %); CB failed day 2 (level 49,200, 48,700);
    CC open (2,400 < 3,000). → P(pass) 1/9, P(fail) 5/9, open 3/9; median days to fail 1."""
    idx = np.array([[a, b] for a in range(3) for b in range(3)])
    outcome, days = run_paths(PNL[idx], LOW[idx], RULES)
    assert outcome.tolist() == [1, -1, 0, -1, -1, -1, 0, -1, 0]
    assert days.tolist() == [2, 2, 0, 1, 1, 1, 0, 2, 0]
    mc = pass_probability(PNL, LOW, RULES, n_paths=90_000, horizon=2, block=1, seed=3,
                          economics=(50.0, 40.0, 3000.0))
    assert mc["p_pass"] == pytest.approx(1 / 9, abs=0.006) and mc["p_fail"] == pytest.approx(5 / 9, abs=0.006)
    assert mc["median_days_to_fail"] == 1.0 and mc["median_days_to_pass"] == 2.0
    assert mc["provisional"] and mc["traded_days"] == 3
    assert mc["expected_value"] == pytest.approx(mc["p_pass"] * 3000 - 50 - mc["p_fail"] * 40)
    assert mc == pass_probability(PNL, LOW, RULES, n_paths=90_000, horizon=2, block=1, seed=3,
                                  economics=(50.0, 40.0, 3000.0))  # seeded: the same answer
    # blocks are runs of consecutive days (circular)
    ix = bootstrap_index(10, 50, 12, 4, 1)
    d = np.diff(ix[:, :4], axis=1) % 10
    assert ix.shape == (50, 12) and (d == 1).all()


def test_monte_carlo_bench_10000_paths_of_a_year_under_a_second() -> None:
    rng = np.random.default_rng(0)
    pnl = rng.normal(20.0, 400.0, 250)
    low = np.minimum(rng.normal(-200.0, 150.0, 250), 0.0)
    best = min(_timed(lambda: pass_probability(pnl, low, RULES, n_paths=10_000, horizon=252, seed=1))
               for _ in range(3))
    assert best <= 1.0, best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ----------------------------------------------------------------------------- real data
# The MLL-crossing tests below replay issue 23's hand replay of the baseline under a 50K Combine
# (fails 2024-12-19), made with the then-default `[stops] reward_risk = 1.5`: they pin it, as
# they are about the venue rules, not the bracket (with the shipped 2.0 the crossing is 2024-12-13)
COMBINE_RR15 = '[account]\nrules = "topstepx-50k"\nmll_entry_cap = false\n[stops]\nreward_risk = 1.5\n'
@pytest.fixture(scope="module")
def winter(es_1m_path):
    return slice_dates(load_bars(es_1m_path), "2024-12-03", "2025-01-10")


def test_real_year_combine_fails_on_the_crossing_day_and_none_keeps_trading(winter, tmp_path) -> None:
    """The baseline on the real bars under a 50K Combine without the engine's MLL entry cap:
    the equity reaches the MLL on 2024-12-19 (the issue's hand replay); the venue liquidates at
    the level within one tick plus the bar's modelled slippage; no trade after. The same bars
    and signals without venue rules (same capital, the account-level halts moved out of the
    way) keep trading, trade for trade the same until the liquidation."""
    s = _settings(tmp_path, COMBINE_RR15)
    sig = BreakoutBaseline(lookback=s.backtest.baseline_lookback).signals(winter)
    res = compose.backtest(winter, sig, s)
    v = res.account
    assert v["status"] == "failed" and v["rule"] == "MLL" and v["date"] == "2024-12-19", v
    (liq,) = v["liquidations"]
    last = res.records[-1]
    assert last.exit_reason == "mll_liquidation" and last.exit_ts == liq["ts_ns"]
    assert all(t.entry_ts <= liq["ts_ns"] for t in res.records)            # no trade after
    # the level's price for this position: equity = balance before + open P&L = 48,000
    before = res.starting_balance + sum(t.net_pnl for t in res.records[:-1]) - last.commission / 2
    assert liq["level"] == 48_000.0
    level_px = last.entry_price + (liq["level"] - before) / (last.direction * last.contracts * 5.0)
    slip = prepare_market(winter, s, s.backtest.fill_model).slip[last.exit_bar] * 0.25
    assert abs(liq["ref_price"] - level_px) <= 0.25 + 1e-9
    assert abs(last.exit_price - level_px) <= 0.25 + slip + 1e-9
    assert res.equity[last.exit_bar] <= 48_000.0 + 1e-6 < res.equity[last.exit_bar - 1]
    slow = compose.backtest(winter, sig, s, fast=False)                   # the skip-ahead skips no breach
    assert [(t.entry_ts, t.exit_ts, t.exit_price, t.exit_reason) for t in slow.records] == \
           [(t.entry_ts, t.exit_ts, t.exit_price, t.exit_reason) for t in res.records]
    assert slow.account == res.account
    none = _settings(tmp_path, '[account]\nrules = "none"\nstarting_capital = 50000.0\n[risk]\n'
                     'daily_loss_limit = 333.33\ndaily_drawdown_limit = 500.0\nmax_risk_per_trade = 166.67\n'
                     'kill_switch_loss = 20000.0\nmin_account_balance = 30000.0\naccount_drawdown_limit = 20000.0\n'
                     '[stops]\nreward_risk = 1.5\n', "none.toml")
    free = compose.backtest(winter, sig, none)
    assert free.account is None
    assert any(t.entry_ts > liq["ts_ns"] for t in free.records)
    k = len(res.records) - 1
    assert [(t.entry_ts, t.exit_ts, t.net_pnl) for t in free.records[:k]] == \
           [(t.entry_ts, t.exit_ts, t.net_pnl) for t in res.records[:k]]


def test_backtest_and_replay_agree_on_the_verdict_and_the_level(winter, tmp_path) -> None:
    s = _settings(tmp_path, '[account]\nrules = "topstepx-50k"\nmll_entry_cap = false\n')
    bars = slice_dates(winter, None, "2024-12-20")
    bt = compose.backtest(bars, BreakoutBaseline(lookback=s.backtest.baseline_lookback).signals(bars), s)
    sess = compose.replay(s, bars)
    assert sess.run() == 0
    rep = sess.report()["account"]
    assert bt.account is not None and rep is not None
    assert bt.account["status"] == "failed"
    assert (rep["status"], rep["date"], rep["rule"]) == (bt.account["status"], bt.account["date"], bt.account["rule"])
    assert rep["level"] == bt.account["level"] and rep["balance"] == pytest.approx(bt.account["balance"])
    assert rep["liquidations"] == bt.account["liquidations"]
    assert sess.kernel.trades[-1].exit_reason == bt.records[-1].exit_reason == "mll_liquidation"
    assert [(t.entry_ts, t.exit_ts, t.exit_price) for t in sess.kernel.trades] == \
           [(t.entry_ts, t.exit_ts, t.exit_price) for t in bt.records]
    view = sess.snapshot().risk                          # the risk pane's fields
    assert view.venue_rules == "topstepx-50k" and view.venue_status == "failed"
    assert view.venue_liquidation_usd == 48_000.0 and view.venue_target_usd == 3000.0


def test_backtest_json_prints_the_verdict_and_pass_probability(es_1m_path, tmp_path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[account]\nrules = "topstepx-50k"\n')
    r = CliRunner().invoke(app, ["backtest", "--data", str(es_1m_path), "--config", str(f), "--json",
                                 "--monte-carlo", "2000", "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    a = doc["account"]
    assert a["profile"] == "topstepx-50k" and a["status"] in ("passed", "failed", "open")
    mc = a["pass_probability"]
    assert mc["paths"] == 2000 and 0.0 <= mc["p_pass"] <= 1.0
    assert mc["p_pass"] + mc["p_fail"] + mc["p_open"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["account"]["status"] == a["status"]
    assert "## Account verdict" in (tmp_path / "rep" / "report.md").read_text()
    # shipped settings on the real year: a few bad days leave the account dollars above the MLL
    # and the engine's MLL entry cap refuses every later entry: open, but only because it stopped
    assert a["status"] == "open" and a["stalled"] and a["mll_refused"] > 1000 and a["idle_days"] > 200, a
    assert a["last_trade_day"] < "2025-01-01"
    assert f"STALLED: no trade in the last {a['idle_days']} trading days" in (tmp_path / "rep" / "report.md").read_text()
    r = CliRunner().invoke(app, ["backtest", "--data", str(es_1m_path), "--start", "2025-10-06", "--end",
                                 "2025-10-07", "--monte-carlo", "10"])
    assert r.exit_code == 3 and "account profile" in r.stderr


def test_optimize_pass_probability_on_sqlite_and_the_config_reproduces_the_verdict(es_1m_summer_path, tmp_path):
    f = tmp_path / "base.toml"
    f.write_text('[account]\nrules = "topstepx-50k"\nmll_entry_cap = false\n[optimize]\nmin_trades = 0\n')
    runner = CliRunner()
    r = runner.invoke(app, ["optimize", "--data", str(es_1m_summer_path), "--config", str(f), "--holdout-months", "1",
                            "--storage", f"sqlite:///{tmp_path / 'o.db'}", "--study", "acct", "--write-config",
                            str(tmp_path / "best.toml"), "--json", "--trials", "3", "--workers", "1", "--sampler",
                            "random", "--objective", "pass_probability"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    best = doc["best"]
    v = best["verdict"]
    assert v["status"] in ("passed", "failed", "open") and best["value"] == pytest.approx(v["p_pass"])
    # the written config, on the validation window in research mode (as the trial ran), gives the verdict
    lo, hi = doc["windows"]["validation"]
    r2 = runner.invoke(app, ["backtest", "--data", str(es_1m_summer_path), "--config", doc["config"], "--start", lo,
                             "--end", hi, "--research", "--json", "--monte-carlo", "2000"])
    assert r2.exit_code == 0, r2.stderr
    a = json.loads(r2.stdout)["account"]
    assert (a["status"], a.get("date"), a.get("rule")) == (v["status"], v["date"], v["rule"])
    assert a["pass_probability"]["p_pass"] == pytest.approx(v["p_pass"])


def test_walk_forward_folds_each_an_attempt_and_the_stitched_record(winter, tmp_path) -> None:
    """Each fold is one attempt from the starting balance (its own verdict); the stitched
    out-of-sample record is run against the same rules at the daily grain."""
    from types import SimpleNamespace

    from engine.backtest.walkforward import walk_forward_backtest

    s = _settings(tmp_path, COMBINE_RR15)
    edges = [np.datetime64(d, "ns").astype(np.int64) for d in ("2024-12-03", "2024-12-23", "2025-01-10")]
    folds = [SimpleNamespace(number=i, test=SimpleNamespace(start=int(a), end=int(b), to_dict=lambda: {}))
             for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]
    base = BreakoutBaseline(lookback=s.backtest.baseline_lookback)
    wf = walk_forward_backtest(winter, folds, lambda f, part: base.signals(part), s)
    acc = wf.account
    assert acc["profile"] == "topstepx-50k" and len(acc["folds"]) == 2
    assert acc["folds"][0]["status"] == "failed" and acc["folds"][0]["date"] == "2024-12-19"
    assert acc["folds_failed"] >= 1 and acc["stitched"]["status"] == "failed"
    none = _settings(tmp_path, '[account]\nrules = "none"\n', "n.toml")
    assert walk_forward_backtest(winter, folds[:1], lambda f, part: base.signals(part), none).account is None


def test_risk_pane_shows_profile_balance_mll_target_and_best_day() -> None:
    from engine.runtime.snapshot import RiskView
    from mes_console.widgets.render import render_risk

    r = RiskView("ACTIVE", "", 0.0, 333.0, 0.0, 500.0, 0, 2000.0, 2000.0, venue_rules="topstepx-50k",
                 venue_liquidation_usd=48_000.0, venue_distance_usd=2_120.0, venue_max_contracts=50,
                 venue_balance_usd=50_120.0, venue_profit_usd=1_200.0, venue_target_usd=3_000.0,
                 venue_best_day_share=0.75, venue_consistency_share=0.5, venue_status="open")
    text = render_risk(r, 0, width=80).plain
    assert "MLL $48,000 in $2,120 max 50" in text
    assert "topstepx-50k OPEN · bal $50,120 · target 40% of $3,000 · best day 75%/50%" in text


def test_research_mode_goes_on_after_a_failure_and_reports_each(winter, tmp_path) -> None:
    from engine.backtest.report import verdict_text

    s = _settings(tmp_path, COMBINE_RR15)
    res = compose.backtest(winter, BreakoutBaseline(lookback=s.backtest.baseline_lookback).signals(winter), s,
                           research=True)
    a = res.account
    first = a["failures"][0]
    assert a["research"] and a["status"] == "failed" and a["date"] == first["date"] == "2024-12-19"
    assert len(a["liquidations"]) == len([f for f in a["failures"] if f["rule"] == "MLL"])
    assert any(t.entry_ts > first["ts_ns"] for t in res.records)           # it went on trading
    text = verdict_text(a)
    assert text.startswith("account topstepx-50k: FAILED on 2024-12-19 by MLL")
    assert f"liquidated at {a['liquidations'][0]['price']:.2f}; research mode went on" in text
    assert f"research mode: {len(a['failures'])} failure(s)" in text and "attempt 1: failed 2024-12-19" in text


def test_stall_doc_calls_an_open_account_stalled_only_after_a_week_of_mll_refusals() -> None:
    """``stall_doc``: idle trading days after the last trade's exit day, entries refused by the
    MLL cap; stalled from :data:`STALL_DAYS` idle days with MLL refusals, never without them."""
    from types import SimpleNamespace

    from engine.risk.account_rules import STALL_DAYS, stall_doc

    day = np.repeat(np.arange(20_000, 20_012), 3)              # 12 trading days of 3 bars
    day = np.concatenate([[-1], day])                            # a bar outside a session
    mll = {"MLL: a stop-out of $26.68 would take the equity ...": 40, "spread breaker: 3 ticks > 2": 7}
    t = [SimpleNamespace(exit_bar=3 * (12 - STALL_DAYS))]         # the last exit on day 12 - STALL_DAYS
    doc = stall_doc(t, day, mll)
    assert doc == {"last_trade_day": "2024-10-10", "idle_days": STALL_DAYS, "mll_refused": 40, "stalled": True}
    assert not stall_doc([SimpleNamespace(exit_bar=3 * (13 - STALL_DAYS))], day, mll)["stalled"]   # one day short
    assert not stall_doc(t, day, {"spread breaker: 3 ticks > 2": 7})["stalled"]                  # not the MLL cap
    none = stall_doc([], day, mll)
    assert none["last_trade_day"] is None and none["idle_days"] == 12 and none["stalled"]
