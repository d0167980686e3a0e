"""The venue's account rules (R-RISK-7, issue 14 item 1): TopstepX MLL trailing the end-of-day
high with its lock at the starting balance, micros 10:1, personal daily loss limit, the
consistency share; checked beside §0 in the risk manager, the tighter wins."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from engine.calendar import calendar_for
from engine.clock import SimClock
from engine.config import ConfigError, Settings, load_settings
from engine.instruments import spec as instrument_spec
from engine.risk import RiskManager
from engine.risk.account_rules import PROFILES, AccountRules, AccountRulesError, rules_from_settings

P50 = PROFILES["topstepx-50k"]


def test_mll_trails_end_of_day_high_and_locks_at_start(tmp_path) -> None:
    r = AccountRules(P50, "MES", tmp_path / "ar.json")
    r.on_balance("2025-10-06", 50_000.0)
    assert r.liquidation_level == 48_000.0
    r.on_balance("2025-10-06", 51_200.0)          # intraday high: the MLL does not move
    assert r.liquidation_level == 48_000.0
    r.on_balance("2025-10-07", 51_200.0)          # the day ended at 51,200: trails to 49,200
    assert r.liquidation_level == 49_200.0
    r.on_balance("2025-10-08", 50_100.0)          # a lower end of day never lowers it
    assert r.liquidation_level == 49_200.0
    r.on_balance("2025-10-09", 53_500.0)          # 53,500 − 2,000 = 51,500 > start: locked at 50,000
    assert r.liquidation_level == 50_000.0
    assert r.distance(50_750.0) == 750.0
    # persisted: a restart keeps the high
    r2 = AccountRules(P50, "MES", tmp_path / "ar.json")
    assert r2.eod_high == 53_500.0 and r2.liquidation_level == 50_000.0
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AccountRulesError, match="bad.json: unreadable"):
        AccountRules(P50, "MES", tmp_path / "bad.json")


def test_position_limit_micros_ten_to_one_and_mll_refusal() -> None:
    mes = AccountRules(P50, "MES")
    es = AccountRules(P50, "ES")
    assert (mes.max_contracts, es.max_contracts) == (50, 5)
    assert AccountRules(PROFILES["topstepx-150k"], "MES").max_contracts == 150
    assert mes.cap_entry(60, 10.0, 50_000.0, 50_000.0) == (50, "venue position limit 50 MES (topstepx-50k)")
    assert mes.cap_entry(3, 10.0, 50_000.0, 50_000.0, open_contracts=48)[0] == 2
    # 48,100 equity, level 48,000: $100 of room; $40/contract → 2 fit, $150 → none
    n, why = mes.cap_entry(5, 40.0, 48_100.0, 48_100.0)
    assert n == 2 and why.startswith("MLL:")
    n, why = mes.cap_entry(1, 150.0, 48_100.0, 48_100.0)
    assert n == 0 and "liquidation level $48,000.00" in why
    # exactly at the level is a breach: refused
    assert mes.cap_entry(1, 100.0, 48_100.0, 48_100.0)[0] == 0


def test_personal_daily_loss_limit_and_consistency() -> None:
    r = AccountRules(P50, "MES", personal_daily_loss_limit=300.0)
    r.on_balance("2025-10-06", 50_000.0)
    assert r.cap_entry(2, 100.0, 49_900.0, 49_900.0)[0] == 1        # $100 used, $200 room
    n, why = r.cap_entry(1, 100.0, 49_750.0, 49_800.0)               # $250 used incl. open loss
    assert n == 0 and why.startswith("personal daily loss limit $300.00")
    assert r.consistency_share(49_800.0) is None                   # no profit: no share
    r.on_balance("2025-10-07", 50_600.0)                           # best day so far +600
    r.on_balance("2025-10-08", 50_800.0)                           # +200 on the 7th
    assert r.consistency_share(50_900.0) == pytest.approx(600.0 / 900.0)


def _settings(**account) -> Settings:
    s = load_settings(None, use_user_file=False, env={})
    acc = dataclasses.replace(s.account, starting_capital=50_000.0, **account)
    risk = dataclasses.replace(s.risk, daily_loss_limit=5_000.0, daily_drawdown_limit=6_000.0, kill_switch_loss=8_000.0,
                               account_drawdown_limit=9_000.0, max_risk_per_trade=2_000.0)
    return dataclasses.replace(s, account=acc, risk=risk)


def test_risk_manager_refuses_an_entry_whose_stop_out_crosses_the_mll() -> None:
    """Beside §0 the venue's MLL wins when it is tighter: with $60 between the equity and the
    liquidation level an entry risking more is refused with the MLL reason; far from the
    level the §0 size stands."""
    s = _settings(rules="topstepx-50k")
    t0 = int(np.datetime64("2025-10-07T15:00:00", "ns").astype(np.int64))
    clock = SimClock(t0)
    cal = calendar_for(t0 - 5 * 86_400 * 10**9, t0 + 5 * 86_400 * 10**9)
    rm = RiskManager(s, clock, cal, instrument_spec("MES"))
    rm.account_rules = rules_from_settings(s, "MES")
    rm.account_rules.on_balance("2025-10-07", 50_000.0)
    highs = np.full(20, 6010.0)
    lows = np.full(20, 5990.0)
    d = rm.evaluate_entry(1, 0.75, 6000.0, 2.0, highs, lows, t0, True)
    assert d.approved and d.contracts >= 1, d
    far = d.contracts
    rm.set_balance(48_060.0, t0)                    # $60 above the 48,000 level: capped
    d = rm.evaluate_entry(1, 0.75, 6000.0, 2.0, highs, lows, t0, True)
    per = d.risk_dollars / d.contracts + 0.84       # stop-out $ per contract incl. a round trip's costs
    assert d.approved and d.contracts == int(60.0 // per) < far, d
    assert d.steps[-1][0] == "venue" and d.steps[-1][1].startswith("MLL:")
    rm.set_balance(48_010.0, t0)                    # $10 above: the stop-out would cross it
    d = rm.evaluate_entry(1, 0.75, 6000.0, 2.0, highs, lows, t0, True)
    assert not d.approved and d.reason.startswith("MLL: a stop-out"), d
    rm.account_rules = None                          # §0 alone would approve
    d0 = rm.evaluate_entry(1, 0.75, 6000.0, 2.0, highs, lows, t0, True)
    assert d0.approved, d0
    assert far >= d0.contracts >= 1


def test_config_keys_and_profile_choice(tmp_path) -> None:
    assert rules_from_settings(load_settings(None, use_user_file=False, env={}), "MES") is None
    f = tmp_path / "c.toml"
    f.write_text('[account]\nrules = "topstepx-25k"\n')
    with pytest.raises(ConfigError, match=r"\[account\] rules"):
        load_settings(f, use_user_file=False, env={})
    f.write_text('[account]\nrules = "topstepx-100k"\nmll_eod_high = 101500.0\n[live]\non_start_position = "adopt"\n')
    s = load_settings(f, use_user_file=False, env={})
    r = rules_from_settings(s, "MES")
    assert r.liquidation_level == 98_500.0 and r.max_contracts == 100
    assert s.live.on_start_position == "adopt"
    json.dumps(dataclasses.asdict(r.view(99_000.0, 99_000.0)))
