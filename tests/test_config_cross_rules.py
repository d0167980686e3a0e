"""Cross-field settings rules (issue 22 item 5): settings that contradict the venue, the kill
switch or themselves are refused by ``config check`` with exit 3, naming ``[section] key``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ('[account]\nrules = "topstepx-50k"\n[eod]\nprofile = "fixed_ny"\n', "[eod] profile"),
    ('[account]\nrules = "topstepx-xfa-100k"\n[eod]\nprofile = "fixed_ny"\n', "[eod] profile"),
    ('[ui]\nkey_halt = ""\n', "[ui] key_halt"),
    ('[ui]\nkey_halt = "q"\n', "[ui] key_halt"),
    ('[ui]\nkey_flatten = "ctrl+k"\n', "[ui] key_flatten"),
    ('[ui]\nkey_quit = " "\n', "[ui] key_quit"),
    ("[optimize]\nstop_ticks = [24, 4, 1]\n", "[optimize] stop_ticks"),
    ("[optimize]\nreward_risk = [1.0, 3.0, 0]\n", "[optimize] reward_risk"),
    ("[optimize]\nrisk_fraction = [0.01, 0.03, -0.005]\n", "[optimize] risk_fraction"),
    ('[projectx]\napi_url = "ftp://api.topstepx.com"\n', "[projectx] api_url"),
    ('[projectx]\nmarket_hub_url = "file:///etc/passwd"\n', "[projectx] market_hub_url"),
    ('[alerts]\nslack_webhook_url = "http://hooks.slack.com/x"\n', "[alerts] slack_webhook_url"),
    ("[training]\nlearning_rate = 0.0\n", "[training] learning_rate"),
    ("[training]\nepochs = 1180591620717411303424\n", "[training] epochs"),
]


@pytest.mark.parametrize("body,needle", CASES)
def test_contradicting_settings_refused_naming_the_key(tmp_path: Path, body: str, needle: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(body)
    with pytest.raises(ConfigError) as e:
        load_settings(p, use_user_file=False, env={})
    assert needle in str(e.value), str(e.value)


def test_coherent_settings_pass(tmp_path: Path) -> None:
    p = tmp_path / "ok.toml"
    p.write_text('[account]\nrules = "topstepx-50k"\n[eod]\nprofile = "topstepx"\n[optimize]\nstop_ticks = [8, 8, 1]\n'
                 '[projectx]\napi_url = "http://127.0.0.1:8765"\n[training]\nepochs = 500\n')
    s = load_settings(p, use_user_file=False, env={})
    assert s.optimize.stop_ticks == [8, 8, 1] and s.training.epochs == 500


def test_config_check_cli_names_the_key(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for i, (body, needle) in enumerate(CASES[:1] + CASES[9:10]):
        p = tmp_path / f"c{i}.toml"
        p.write_text(body)
        r = subprocess.run([sys.executable, "-m", "mes_console.cli", "config", "check", "--config", str(p)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
        assert needle in r.stderr, r.stderr
