"""Several machines on one study: a real PostgreSQL server (the system's postgresql package,
installed by .ci/run), two `mes-console optimize` worker processes on one study, one killed
mid-run with SIGKILL; the other finishes, every trial is recorded once, the killed worker's
trial is marked FAIL (heartbeats) and the study resumes to its target."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest


ROOT = Path(__file__).resolve().parents[1]


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: install the postgresql package (.ci/run does)")
    return found


@pytest.fixture(scope="module")
def pg_url():
    d = tempfile.mkdtemp(prefix="mes-pg-", dir="/tmp")
    pre: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres user
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        pre = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(d, "data")
    subprocess.run(pre + [_pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    port = "54391"
    subprocess.run(pre + [_pg_bin("pg_ctl"), "-D", data, "-w", "-l", os.path.join(d, "log"), "-o",
                          f"-k {d} -c listen_addresses= -p {port}", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={d}&port={port}"
    finally:
        subprocess.run(pre + [_pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def data(es_1m_summer_path):
    return es_1m_summer_path


def _worker(data, url, trials, tmp, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "mes_console.cli", "optimize", "--data", str(data), "--holdout-months", "1",
           "--storage", url, "--study", "pg", "--trials", str(trials), "--workers", "1", "--sampler", "random",
           "--write-config", str(tmp / "best.toml"), "--json", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_one_killed_then_resume(pg_url, data, tmp_path):
    a = _worker(data, pg_url, 10, tmp_path, "--seed", "1")
    b = _worker(data, pg_url, 10, tmp_path, "--seed", "2")
    deadline = time.time() + 120
    study = None
    while time.time() < deadline:  # until both processes have finished a trial
        time.sleep(0.5)
        if a.poll() is not None or b.poll() is not None:
            raise AssertionError(f"a worker ended early: {a.poll()} {b.poll()} {a.stderr.read() if a.poll() is not None else ''}")
        try:
            study = optuna.load_study(study_name="pg", storage=pg_url)
        except KeyError:
            continue
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len({t.user_attrs.get("worker") for t in done}) == 2:
            break
    assert study is not None, (a.poll(), b.poll())
    os.kill(b.pid, signal.SIGKILL)
    killed_at = time.time()
    out, err = a.communicate(timeout=240)
    b.communicate()
    assert a.returncode == 0, err
    trials = optuna.load_study(study_name="pg", storage=pg_url).trials
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 10
    assert len({t.number for t in trials}) == len(trials)          # every trial recorded once
    assert len({t._trial_id for t in trials}) == len(trials)
    # resume after the heartbeat grace period: the killed worker's RUNNING trial becomes FAIL
    time.sleep(max(0.0, 13 - (time.time() - killed_at)))
    r = _worker(data, pg_url, len(done) + 3, tmp_path, "--seed", "3")
    out, err = r.communicate(timeout=240)
    assert r.returncode == 0, err
    trials = optuna.load_study(study_name="pg", storage=pg_url).trials
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == len(done) + 3
    assert optuna.trial.TrialState.RUNNING not in states
    assert len({t.number for t in trials}) == len(trials)
