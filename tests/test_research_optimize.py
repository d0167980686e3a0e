"""`mes-console optimize` end to end on a slice of the real ES year (SQLite storage, two worker
processes, resume, held-out report that `backtest --config` reproduces to the cent) and the
overfitting measures on matrices with a known answer."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from engine.research.overfit import deflated_sharpe_ratio, expected_max_sharpe, pbo_cscv, sharpe
from mes_console.cli import app


def test_pbo_is_a_coin_flip_on_noise_and_zero_with_real_skill():
    rng = np.random.default_rng(0)
    M = rng.normal(0, 1, (240, 60))
    assert 0.3 < pbo_cscv(M)["pbo"] < 0.7
    M[:, 7] += 0.6  # one trial with a real edge in every period
    r = pbo_cscv(M)
    assert r["pbo"] < 0.05 and r["blocks"] == 16


def test_dsr_deflates_the_best_of_many_lucky_trials():
    rng = np.random.default_rng(1)
    M = rng.normal(0, 1, (250, 200))
    srs = np.array([sharpe(M[:, j]) for j in range(M.shape[1])])
    best = int(np.argmax(srs))
    d = deflated_sharpe_ratio(M[:, best], srs)
    assert d["sharpe"] * 252 ** 0.5 > 1.5 and d["dsr"] < 0.9  # an annual Sharpe near 2, and luck
    assert deflated_sharpe_ratio(M[:, best], srs[[best]])["dsr"] > 0.95  # undeflated, it would pass
    assert expected_max_sharpe(1000, d["var_sharpe"]) > expected_max_sharpe(10, d["var_sharpe"]) > 0
    M[:, 3] += 0.5
    srs = np.array([sharpe(M[:, j]) for j in range(M.shape[1])])
    assert deflated_sharpe_ratio(M[:, 3], srs)["dsr"] > 0.95


@pytest.fixture(scope="module")
def data(es_1m_summer_path):
    return es_1m_summer_path


def _opt(data, tmp_path, *extra):
    return ["optimize", "--data", str(data), "--holdout-months", "1", "--storage",
            f"sqlite:///{tmp_path / 'o.db'}", "--study", "s", "--write-config", str(tmp_path / "best.toml"),
            "--json", *extra]


def test_optimize_two_workers_resume_and_reproduce(data, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, _opt(data, tmp_path, "--trials", "6", "--workers", "2", "--sampler", "random"))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["trials"]["COMPLETE"] == 6 and doc["speed"]["workers"] == 2  # exactly (issue 21: 10 ran 11)
    assert doc["windows"]["holdout"][0] > doc["windows"]["validation"][1]  # never seen by the search
    assert 0.0 <= doc["pbo"]["pbo"] <= 1.0 and doc["eligible_trials"] <= doc["dsr"]["n_trials"] == doc["trials"]["COMPLETE"]
    assert f"{doc['pbo']['combinations']} CSCV splits" in doc["pbo_meaning"]
    eff = doc["best"]["effective"]
    assert eff["stop_ticks"] == doc["best"]["params"]["stop_ticks"] and eff["max_stop_ticks"] == 8
    assert set(doc["best"]["activity"]) >= {"active_days", "days", "refused", "refused_share", "refusals"}
    rep = __import__("pathlib").Path(doc["report_dir"])
    for f in ("trials.csv", "importance.json", "importance.png", "slice.png"):
        assert (rep / f).stat().st_size > 0, f
    assert (rep / "slice.png").read_bytes()[:4] == b"\x89PNG"
    assert isinstance(doc["best"]["halts"], dict) and "halts" in doc["holdout"]
    st = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    nums = [t.number for t in st.trials]
    assert len(nums) == len(set(nums))
    workers = {t.user_attrs["worker"] for t in st.trials}
    assert len(workers) == 2  # two processes wrote trials
    # the config reproduces the held-out figures to the cent
    lo, hi = doc["windows"]["holdout"]
    r2 = runner.invoke(app, ["backtest", "--data", str(data), "--config", doc["config"], "--start", lo,
                             "--end", hi, "--json"])
    assert r2.exit_code == 0, r2.stderr
    bt = json.loads(r2.stdout)["metrics"]
    assert round(bt["net_pnl"], 2) == round(doc["holdout"]["metrics"]["net_pnl"], 2)
    assert bt["trades"] == doc["holdout"]["metrics"]["trades"]
    # resume: the same study goes on to 9 complete trials, earlier ones kept
    before = doc["trials"]["COMPLETE"]
    r3 = runner.invoke(app, _opt(data, tmp_path, "--trials", str(before + 3), "--workers", "1", "--sampler", "random"))
    assert r3.exit_code == 0, r3.stderr
    doc3 = json.loads(r3.stdout)
    assert doc3["trials"]["COMPLETE"] == before + 3 and doc3["speed"]["new_trials"] == 3
    # a changed set-up under the same name is refused, naming the key
    r4 = runner.invoke(app, _opt(data, tmp_path, "--trials", "20", "--objective", "net_pnl", "--sampler", "random"))
    assert r4.exit_code == 1 and "objective" in r4.stderr


def test_grid_sampler_from_flags_and_bad_space(data, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, _opt(data, tmp_path, "--sampler", "grid", "--trials", "4", "--workers", "1",
                                "--space", "stop_ticks=7:8:1", "--space", "reward_risk=1.5:2:0.5",
                                "--space", "risk_fraction=0.02", "--space", "baseline_lookback=30"))
    assert r.exit_code == 0, r.stderr
    st = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    combos = {(t.params["stop_ticks"], t.params["reward_risk"]) for t in st.trials}
    assert combos == {(7, 1.5), (7, 2.0), (8, 1.5), (8, 2.0)}
    bad = runner.invoke(app, _opt(data, tmp_path, "--space", "stop=1:2"))
    assert bad.exit_code == 3 and "unknown parameter 'stop'" in bad.stderr


def test_no_trial_with_enough_trades_leaves_dsr_and_pbo_undefined(data, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[optimize]\nmin_trades = 100000\n")
    runner = CliRunner()
    r = runner.invoke(app, _opt(data, tmp_path, "--trials", "2", "--workers", "1", "--sampler", "random",
                                "--config", str(cfg)))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["eligible_trials"] == 0 and doc["dsr"]["dsr"] is None and doc["pbo"]["pbo"] is None
    assert doc["best"]["value"] == -1e9
    r = runner.invoke(app, [a for a in _opt(data, tmp_path, "--trials", "2", "--sampler", "random",
                                            "--config", str(cfg)) if a != "--json"])
    assert r.exit_code == 0 and "no trial reached" in r.stdout


def test_a_trial_killed_before_its_first_heartbeat_is_failed_on_resume(tmp_path, monkeypatch):
    """Optuna's fail_stale_trials skips RUNNING trials with no heartbeat row (a worker killed
    between creating its trial and the first heartbeat); the resume marks them FAIL once they
    are older than the grace period, and leaves a trial with a live heartbeat alone."""
    import time

    import optuna

    from engine.research import optimize as opt

    storage = opt.make_storage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    orphan = storage.create_new_trial(study._study_id)
    alive = storage.create_new_trial(study._study_id)
    storage.record_heartbeat(alive)
    assert opt.fail_orphaned_trials(storage, study) == 0          # younger than the grace period
    time.sleep(2.1)  # SQLite's clock has whole seconds
    monkeypatch.setattr(opt, "GRACE_S", 1)
    assert opt.fail_orphaned_trials(storage, study) == 1
    states = {t._trial_id: t.state for t in study.get_trials(deepcopy=False)}
    assert states[orphan] == optuna.trial.TrialState.FAIL
    assert states[alive] == optuna.trial.TrialState.RUNNING


def test_a_stop_range_above_the_cap_is_refused_naming_both_keys(data, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, _opt(data, tmp_path, "--trials", "2", "--space", "stop_ticks=4:24:1"))
    assert r.exit_code == 3
    assert "--space stop_ticks high 24 > [stops] max_stop_ticks 8" in r.stderr and "Traceback" not in r.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("[optimize]\nstop_ticks = [4, 24, 1]\n")
    r = runner.invoke(app, _opt(data, tmp_path, "--trials", "2", "--config", str(cfg)))
    assert r.exit_code == 3 and "[optimize] stop_ticks high 24 > [stops] max_stop_ticks 8" in r.stderr
    # a risk fraction above the $ cap: the cap becomes part of the search, and the output says so
    cfg.write_text("[optimize]\nrisk_fraction = [0.01, 0.03, 0.005]\n")
    r = runner.invoke(app, _opt(data, tmp_path, "--trials", "2", "--config", str(cfg), "--sampler", "random",
                                "--study", "capped"))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["space"]["risk_fraction"]["high"] == 0.025
    assert doc["space_notes"] == ["risk_fraction 0.01…0.03 → 0.01…0.025: [risk] max_risk_per_trade $25.00 / "
                                  "[account] starting_capital $1,000.00 = 0.025 caps the budget, higher fractions "
                                  "would trade the same size"]
    # a written config whose fixed stop lies above its cap is refused by `config check`
    cfg.write_text("[stops]\nmethod = \"fixed\"\nfixed_ticks = 21\nmax_stop_ticks = 8\n")
    r = runner.invoke(app, ["config", "check", "--config", str(cfg)])
    assert r.exit_code != 0 and "fixed_ticks = 21" in r.output and "max_stop_ticks = 8" in r.output


def test_trials_with_different_reported_stops_never_trade_identically(data):
    """Each trial records the stop it traded with; two different stops inside the cap give
    different trade logs (the clamp made fixed 8, 21 and 24 byte-identical)."""
    from engine.config import Settings
    from engine.data import load_bars
    from engine.research.optimize import TrialRunner

    bars = load_bars(data)
    runner = TrialRunner(bars, Settings())
    runs = {st: runner.run({"stop_ticks": st, "reward_risk": 1.5, "risk_fraction": 0.02, "baseline_lookback": 30})
            for st in (5, 6, 8)}
    for st, r in runs.items():
        assert r["effective"]["stop_ticks"] == st and r["effective"]["stop_ticks_max"] <= st
        assert r["metrics"]["trades"] > 20
    pnl = {st: r["daily_pnl"] for st, r in runs.items()}
    assert pnl[5] != pnl[6] != pnl[8] and pnl[5] != pnl[8]
