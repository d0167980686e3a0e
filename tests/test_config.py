"""Settings: defaults equal the shipped config.toml, errors name key/value/allowed, secrets masked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError, Settings, default_toml, load_settings, mask

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_toml_equals_defaults() -> None:
    assert (ROOT / "config.toml").read_text() == default_toml()
    s = load_settings(ROOT / "config.toml", use_user_file=False, env={})
    assert s == Settings()


def test_every_section0_number_is_present() -> None:
    s = Settings()
    assert (s.risk.daily_loss_limit, s.risk.daily_drawdown_limit, s.risk.max_risk_per_trade) == (50, 75, 25)
    assert s.risk.consecutive_loss_pauses == [[3, 900], [5, 1800]]
    assert (s.risk.kill_switch_loss, s.risk.min_account_balance, s.risk.account_drawdown_limit) == (300, 700, 200)
    assert 2 * (s.costs.commission_per_side + s.costs.exchange_fee_per_side) == pytest.approx(0.84)
    assert s.signal.min_confidence == 0.60
    assert s.account.starting_capital == 1000
    assert (s.slippage.market_ticks, s.slippage.thin_ticks) == (1, 2)
    assert (s.slippage.high_vol_min_ticks, s.slippage.high_vol_max_ticks, s.slippage.limit_ticks) == (2, 4, 0)
    assert s.latency.decision_budget_ms == 10 and s.latency.features_budget_ms == 5
    assert s.eod.reduce_size_multiplier == 0.5


def _assert_refused(tmp_path: Path, body: str, needles: list[str]) -> None:
    """A config file holding ``body`` raises ConfigError: one line naming the file and holding
    every one of ``needles``."""
    p = tmp_path / "bad.toml"
    p.write_text(body)
    with pytest.raises(ConfigError) as exc:
        load_settings(p, use_user_file=False, env={})
    msg = str(exc.value)
    assert str(p) in msg and "\n" not in msg
    for n in needles:
        assert n in msg, msg


@pytest.mark.parametrize(
    "body, needles",
    [
        ("[risk]\ndaily_loss_limit = \"fifty\"\n", ["[risk] daily_loss_limit", "'fifty'", "expected a number"]),
        ("[risk]\ndaily_los_limit = 50\n", ["unknown key [risk] daily_los_limit", "daily_loss_limit"]),
        ("[riskk]\nx = 1\n", ["unknown section [riskk]"]),
        ("[signal]\nmin_confidence = 1.5\n", ["[signal] min_confidence", "1.5", "≤ 1.0"]),
        ("[backtest]\nfill_model = \"magic\"\n", ["[backtest] fill_model", "'magic'", "'conservative'"]),
        ("[stops]\nfixed_ticks = 8.5\n", ["[stops] fixed_ticks", "expected an integer"]),
        ("[risk]\nbalance_tiers = [[1000.0, 1, 0.02], [700.0, 2, 0.02]]\n", ["balance_tiers", "ascend"]),
        ("[secrets]\nprojectx_api_key = \"x\"\n", ["unknown section [secrets]"]),
        ("[projectx]\nprojectx_api_key = \"x\"\n", ["environment variable PROJECTX_API_KEY"]),
        ("[risk\n", ["not valid TOML"]),
    ],
)
def test_bad_config_names_key_value_and_allowed(tmp_path: Path, body: str, needles: list[str]) -> None:
    _assert_refused(tmp_path, body, needles)


def test_override_and_secrets_from_env(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[risk]\ndaily_loss_limit = 40\n")
    s = load_settings(p, use_user_file=False, env={"PROJECTX_API_KEY": "supersecretkey123", "PROJECTX_USERNAME": "bob"})
    assert s.risk.daily_loss_limit == 40.0 and isinstance(s.risk.daily_loss_limit, float)
    assert s.secrets.projectx_api_key == "supersecretkey123"
    assert "supersecret" not in repr(s.secrets) and "supersecret" not in str(s.to_dict())
    assert s.sources == (str(p),)
    assert mask("") == "(unset)" and mask("short") == "****"


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "mes_console.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_cli_config_show_masks_and_check_fails_on_wrong_type(tmp_path: Path) -> None:
    import json

    r = _cli("config", "show", "--json", env_extra={"PROJECTX_API_KEY": "abcdefghijklmnopXYZ"})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["secrets"]["projectx_api_key"] == "****XYZ"
    assert "abcdefghijklmnop" not in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nmax_risk_per_trade = \"25\"\n")
    r = _cli("config", "check", "--config", str(bad))
    assert r.returncode == 3
    assert "max_risk_per_trade" in r.stderr and "'25'" in r.stderr


def test_eod_offsets_must_be_ordered(tmp_path) -> None:
    from engine.config import ConfigError

    p = tmp_path / "c.toml"
    p.write_text("[eod]\nno_new_min = 40.0\n")
    with pytest.raises(ConfigError, match=r"\[eod\] reduce_min = 30.0, no_new_min = 40.0.*reduce_min ≥ no_new_min ≥ exit_min"):
        load_settings(p, use_user_file=False, env={})
    p.write_text('[eod]\nprofile = "nasdaq"\n')
    with pytest.raises(ConfigError, match="topstepx"):
        load_settings(p, use_user_file=False, env={})


@pytest.mark.parametrize(
    "body, needles",
    [
        ("[risk]\nkill_switch_loss = nan\n", ["[risk] kill_switch_loss", "nan", "finite"]),
        ("[risk]\ndaily_loss_limit = inf\n", ["[risk] daily_loss_limit", "inf", "finite"]),
        ("[risk]\ndaily_drawdown_limit = -inf\n", ["[risk] daily_drawdown_limit", "finite"]),
        ("[risk]\nconfidence_multipliers = [[0.6, 0.5], [1.5, 1.0]]\n",
         ["[risk] confidence_multipliers", "row 2", "confidence from 1.5", "≤ 1.0"]),
        ("[risk]\nconfidence_multipliers = [[0.6, -5.0]]\n",
         ["[risk] confidence_multipliers", "row 1", "size multiplier -5.0", "> 0.0"]),
        ("[risk]\nconfidence_multipliers = [[0.6, nan]]\n", ["[risk] confidence_multipliers", "finite"]),
        ("[risk]\nbalance_tiers = [[700.0, \"one\", 0.02]]\n",
         ["[risk] balance_tiers", "row 1", "max contracts 'one'", "must be a number"]),
        ("[risk]\nbalance_tiers = [[700.0, 1]]\n", ["[risk] balance_tiers", "row 1", "expected [balance from $"]),
        ("[risk]\nconsecutive_loss_pauses = [[\"three\", 900]]\n",
         ["[risk] consecutive_loss_pauses", "losses 'three'"]),
        ("[risk]\nconsecutive_loss_pauses = [3, 900]\n", ["[risk] consecutive_loss_pauses", "row 1 3"]),
        ("[projectx]\ngeneral_rate = [200, \"x\"]\n", ["[projectx] general_rate", "seconds 'x'"]),
        ("[databento]\nsymbols = [nan]\n", ["[databento] symbols", "finite"]),
        ("[risk]\ndaily_loss_limit = 5000.0\n",
         ["[risk] daily_loss_limit", "5000.0", "smaller than [account] starting_capital = 1000.0"]),
        ("[risk]\nmin_account_balance = 1200.0\n", ["[risk] min_account_balance", "below [account] starting_capital"]),
        ("[risk]\nmax_risk_per_trade = 60.0\n", ["[risk] max_risk_per_trade", "≤ [risk] daily_loss_limit"]),
        ("[risk]\ndaily_loss_limit = 400.0\ndaily_drawdown_limit = 450.0\n",
         ["[risk] daily_loss_limit", "≤ [risk] kill_switch_loss"]),
        ("[risk]\nkill_switch_loss = 0.0\n", ["[risk] kill_switch_loss", "> 0"]),
    ],
)
def test_schema_refuses_non_finite_shapes_and_incoherent_limits(tmp_path: Path, body: str, needles: list[str]) -> None:
    _assert_refused(tmp_path, body, needles)


def test_bom_tolerated_and_coherent_big_account_accepted(tmp_path: Path) -> None:
    p = tmp_path / "bom.toml"
    p.write_bytes(b"\xef\xbb\xbf[risk]\ndaily_loss_limit = 40.0\n")
    assert load_settings(p, use_user_file=False, env={}).risk.daily_loss_limit == 40.0
    q = tmp_path / "big.toml"
    q.write_text("[account]\nstarting_capital = 100000.0\n[risk]\ndaily_loss_limit = 4000.0\n"
                 "kill_switch_loss = 9000.0\nbalance_tiers = [[700.0, 1, 0.02], [3000.0, 5, 0.015]]\n")
    s = load_settings(q, use_user_file=False, env={})
    assert s.risk.kill_switch_loss == 9000.0
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"[account]\nname = \"caf\xe9\"\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(bad, use_user_file=False, env={})


def test_cli_config_check_keeps_the_section_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nbalance_tiers = [[700.0, \"one\", 0.02]]\n")
    r = _cli("config", "check", "--config", str(bad))
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "[risk] balance_tiers" in r.stderr, r.stderr
    nan = tmp_path / "nan.toml"
    nan.write_text("[risk]\nkill_switch_loss = nan\n")
    r = _cli("config", "check", "--config", str(nan))
    assert r.returncode == 3 and "[risk] kill_switch_loss" in r.stderr, r.stderr
