"""Bring your own strategy (issue 25): a strategy file written in a temporary directory runs
through backtest, optimize (its declared parameters searched), backtest --walk-forward, a replay
(trade for trade equal to the backtest) and a paper session on the fake gateway; every bad-file
case is one line naming the file, the class and the problem; a strategy that raises mid-session
pauses entries with the error shown while protection stays; `strategy new` output runs through
backtest unchanged. Real data, short ranges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine import compose
from engine.backtest.runner import slice_dates
from engine.config import Settings
from engine.data import load_bars
from engine.strategy.loader import StrategyError, load_strategy
from mes_console.cli import app
from mes_console.commands.common import guarded

ROOT = Path(__file__).resolve().parents[1]

CHANNEL = '''
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.strategy.api import IntParam, StrategyBase, make_signals


class Channel(StrategyBase):
    """Close above the highest high of the previous `lookback` bars: long; below the lowest low: short."""

    name = "channel"
    version = "3"
    params = (IntParam("lookback", 10, 60, 20, step=5),)
    warmup = 61

    def signals(self, bars):
        n, k = len(bars), self.lookback
        state = np.zeros(n, np.int8)
        prev = np.zeros(n, np.int8)
        if n > k:
            hh = sliding_window_view(bars.high, k)[:-1].max(axis=1)
            ll = sliding_window_view(bars.low, k)[:-1].min(axis=1)
            state[k:] = np.where(bars.close[k:] > hh, 1, np.where(bars.close[k:] < ll, -1, 0))
            prev[k + 1:] = state[k:-1]
            prev[k] = state[k]
        return make_signals(np.where((state != 0) & (state != prev), state, 0), 0.7)
'''


def _cli(argv, capsys) -> tuple[int, str, str]:
    rc = guarded(app, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def week(es_1m_path):
    return slice_dates(load_bars(es_1m_path), "2025-10-06", "2025-10-10")


@pytest.fixture()
def channel_file(tmp_path) -> Path:
    p = tmp_path / "channel.py"
    p.write_text(CHANNEL)
    return p


@pytest.fixture(autouse=True)
def _state_dir(tmp_path, monkeypatch):
    """Check records and reports under the test's folder, not the user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def _key(trades):
    return [(t.entry_ts, t.exit_ts, t.direction, t.contracts, t.entry_price, t.exit_price,
             round(t.net_pnl, 9), t.exit_reason) for t in trades]


def test_user_file_backtest_equals_replay_trade_for_trade(channel_file, week, es_1m_path, capsys, tmp_path) -> None:
    spec = f"{channel_file}:Channel"
    s = Settings()
    st = load_strategy(spec, {"lookback": "25"})
    assert st.params == {"lookback": 25} and st.version == "3" and st.window == 62
    bt = compose.backtest(week, st.signals(week), s)
    sess = compose.replay(s, week, strategy=st)
    assert sess.run() == 0
    assert len(bt.records) >= 10
    assert _key(sess.kernel.trades) == _key(bt.records)       # the trailing window = the batch
    assert "channel v3" in sess.report()["signals"]
    # the same strategy through the CLI: backtest (version and parameters in the report) ...
    rc, out, err = _cli(["backtest", "--data", es_1m_path, "--start", "2025-10-06", "--end", "2025-10-10",
                         "--strategy", spec, "--param", "lookback=25", "--json", "--out", tmp_path / "rep"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["metrics"]["trades"] == len(bt.records) and doc["strategy"] == "channel"
    assert doc["strategy_info"]["params"] == {"lookback": 25} and doc["strategy_info"]["version"] == "3"
    assert "never passed the lookahead check on 60-second bars" in " ".join(err.split())
    assert "channel v3" in (tmp_path / "rep" / "report.md").read_text()
    # ... and a headless replay with its session report
    rep = tmp_path / "replay.json"
    r = subprocess.run([sys.executable, "-m", "mes_console.cli", "run", "--data", str(es_1m_path), "--start",
                        "2025-10-06", "--end", "2025-10-10", "--speed", "max", "--no-tui", "--strategy", spec,
                        "--param", "lookback=25", "--json-report", str(rep)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(rep.read_text())["trades_count"] == len(bt.records)


def test_optimize_searches_declared_parameters(channel_file, es_1m_path, capsys, tmp_path) -> None:
    rc, out, err = _cli(["optimize", "--data", es_1m_path, "--start", "2025-06-02", "--end", "2025-07-20",
                         "--holdout-months", "1", "--strategy", f"{channel_file}:Channel", "--trials", "4",
                         "--workers", "1", "--sampler", "random", "--storage", f"sqlite:///{tmp_path / 'o.db'}",
                         "--write-config", tmp_path / "best.toml", "--json"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert "strategy.lookback" in doc["space"] and "stop_ticks" in doc["space"]
    assert "baseline_lookback" not in doc["space"]
    lb = doc["best"]["params"]["strategy.lookback"]
    assert 10 <= lb <= 60 and lb % 5 == 0
    assert doc["strategy"]["params"] == {"lookback": lb}
    assert f"--param lookback={lb}" in doc["reproduce"]


def test_walk_forward_reoptimizes_per_fold(channel_file, es_1m_path, capsys) -> None:
    rc, out, err = _cli(["backtest", "--walk-forward", "--data", es_1m_path, "--start", "2025-06-02", "--end",
                         "2025-07-31", "--strategy", f"{channel_file}:Channel", "--trials", "3", "--json"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert len(doc["folds"]) >= 2
    for f in doc["folds"]:
        assert set(f["params"]) == {"lookback"} and f["test"]["start"] >= f["val"]["end"][:10]
    assert doc["metrics"]["trades"] == sum(f["trades"] for f in doc["folds"]) > 0
    assert set(doc["go_live"]["checks"]) >= {"sharpe", "calmar", "trades_per_fold"}


def test_strategy_walk_forward_carries_the_account_verdict(channel_file, es_1m_path, tmp_path, capsys) -> None:
    """Issue 23 in a strategy's walk-forward: one attempt per fold, the stitched record and the
    pass probability, as the model walk-forward reports them (and fold numbers from 1)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[account]\nrules = "topstepx-50k"\n')
    argv = ["--config", str(cfg), "backtest", "--walk-forward", "--data", es_1m_path, "--start", "2025-06-02",
            "--end", "2025-07-31", "--strategy", f"{channel_file}:Channel", "--trials", "3", "--monte-carlo", "200"]
    rc, out, err = _cli([*argv, "--json"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    acc = doc["account"]
    assert acc["profile"] == "topstepx-50k" and len(acc["folds"]) == len(doc["folds"])
    assert acc["stitched"]["status"] in ("open", "passed", "failed")
    assert acc["pass_probability"]["paths"] == 200
    rc, out, err = _cli(argv, capsys)
    assert rc == 0, err
    assert "account topstepx-50k: folds passed" in out and "P(pass)" in out
    assert "fold 1: chosen" in err and "fold 0:" not in err


def test_paper_session_on_the_fake_gateway(channel_file, topstepx_path, tmp_path) -> None:
    from engine.broker.fake import load_bars_frame
    from tests.paper_support import feed_when_subscribed
    from tests.px_fixtures import ThreadedGateway

    user, key = "paper-user", "px-paper-key-5e4d3c2b1a09f8"
    frame = load_bars_frame(topstepx_path, start="2025-09-04T14:00:00+00:00", max_rows=40)
    gt = ThreadedGateway(frame, 0.0, username=user, api_key=key)
    stop = threading.Event()
    th = feed_when_subscribed(gt, stop)   # a bar every 25 ms once the session subscribed
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[projectx]\nstale_feed_s = 0.5\n[paths]\nstate_dir = "{tmp_path / "st"}"\n')
        rep = tmp_path / "r.json"
        r = subprocess.run([sys.executable, "-m", "mes_console.cli", "run", "--mode", "paper", "--gateway-url", gt.url,
                            "--no-tui", "--json-report", str(rep), "--config", str(cfg), "--strategy",
                            f"{channel_file}:Channel", "--param", "lookback=10"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120,
                           env={**os.environ, "PROJECTX_USERNAME": user, "PROJECTX_API_KEY": key,
                                "PYTHONPATH": str(ROOT)})
    finally:
        stop.set()
        th.join(5)
        gt.close()
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    doc = json.loads(rep.read_text())
    assert doc["mode"] == "paper" and doc["bars"] >= 20 and "channel v3" in doc["signals"]
    # the journal records which strategy (and version) the session ran
    import sqlite3

    journal = next((tmp_path / "xdg-data").rglob("journal.sqlite3"))
    with sqlite3.connect(journal) as db:
        msgs = [m for (m,) in db.execute("SELECT message FROM events")]
    assert any(m.startswith("signals: strategy channel v3") for m in msgs), msgs[:5]


# ----------------------------------------------------------------------------- lookahead
LEAK = '''
import numpy as np
from engine.strategy.api import make_signals


class PeekNext:
    name = "peek"

    def signals(self, bars):
        c = bars.close
        d = np.zeros(len(c), np.int8)
        d[:-1] = np.sign(c[1:] - c[:-1])      # the NEXT bar's close: lookahead
        return make_signals(d, 0.7)
'''


def test_analyze_lookahead_flags_a_planted_leak(tmp_path, es_1m_path, capsys) -> None:
    f = tmp_path / "leak.py"
    f.write_text(LEAK)
    rc, out, err = _cli(["analyze", "lookahead", "--data", es_1m_path, "--start", "2025-10-06", "--end",
                         "2025-10-07", "--strategy", f"{f}:PeekNext", "--points", "10", "--json"], capsys)
    assert rc == 1, err
    doc = json.loads(out)
    bars = slice_dates(load_bars(es_1m_path), "2025-10-06", "2025-10-07")
    first_cut = min(b["cut"] for b in doc["first"])
    assert doc["first"][0]["bar"] == first_cut - 1        # the last bar before the first cut
    assert doc["first"][0]["time"].startswith(str(np.datetime64(int(bars.ts[first_cut - 1]), "ns"))[:16].replace("T", " "))
    rc, out, _ = _cli(["analyze", "lookahead", "--data", es_1m_path, "--start", "2025-10-06", "--end",
                       "2025-10-07", "--strategy", f"{f}:PeekNext", "--points", "10"], capsys)
    assert rc == 1 and "FAIL" in out and f"bar {first_cut - 1} at" in out


@pytest.mark.parametrize("spec,data", [
    ("baseline", "1m"),
    ("examples/strategies/opening_range.py:OpeningRangeBreakout", "1m"),
    ("examples/strategies/vwap_reversion.py:VwapReversion", "5m"),
])
def test_analyze_lookahead_passes_the_baseline_and_the_examples(spec, data, es_1m_path, es_5m_path, capsys) -> None:
    path = es_1m_path if data == "1m" else es_5m_path
    arg = str(ROOT / spec) if "/" in spec else spec
    rc, out, err = _cli(["analyze", "lookahead", "--data", path, "--start", "2025-10-06", "--end", "2025-10-17",
                         "--strategy", arg, "--points", "12", "--json"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["pass"] and doc["cuts"] == 12 and doc["offending"] == 0
    # the pass is recorded: backtest no longer warns on this bar size
    rc, _, err = _cli(["backtest", "--data", path, "--start", "2025-10-06", "--end", "2025-10-07", "--strategy",
                       arg, "--json"], capsys)
    assert rc == 0 and "lookahead" not in err


def test_analyze_lookahead_passes_the_model(es_1m_path, tmp_path_factory, capsys) -> None:
    import dataclasses

    from engine.instruments import spec
    from engine.ml.pipeline import train_from_bars
    from engine.ml.training import TrainParams

    s = Settings()
    bars = slice_dates(load_bars(es_1m_path), "2025-07-01", "2025-09-30")
    tc = dataclasses.replace(s.training, train_months=1, val_months=1, test_months=1)
    ck = train_from_bars(bars, out_dir=tmp_path_factory.mktemp("models"), arch="mlp", walk_forward=False,
                         params=TrainParams.from_config(tc, epochs=1), training_cfg=tc, target_cfg=s.target,
                         tick_size=spec("MES").tick_size, name="tiny").checkpoint
    rc, out, err = _cli(["analyze", "lookahead", "--data", es_1m_path, "--start", "2025-10-06", "--end",
                         "2025-10-07", "--model", ck, "--points", "6", "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["pass"]


def test_analyze_warmup_reports_the_history_needed(es_1m_path, capsys) -> None:
    rc, out, err = _cli(["analyze", "warmup", "--data", es_1m_path, "--start", "2025-10-06", "--end", "2025-10-10",
                         "--strategy", "baseline", "--samples", "20", "--json"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    # the 30-bar channel plus the previous bar's state: more than 30 bars, at most the declared 31 + 1
    assert 30 < doc["needed"] <= 32 and doc["declared"] == 31 and doc["ok"]


# ----------------------------------------------------------------------------- bad files
BAD = {
    "import error": ("import numpy as np\nimport no_such_module_xyz\n", "import failed: ModuleNotFoundError"),
    "missing method": ("class Bad:\n    name = 'bad'\n    def signal(self, bars):\n        return None\n",
                       "missing method signals"),
    "wrong length": ("import numpy as np\nfrom engine.strategy.api import make_signals\nclass Bad:\n    name = 'bad'\n"
                     "    def signals(self, bars):\n        return make_signals(np.zeros(len(bars) - 1, np.int8))\n",
                     "direction of shape"),
    "wrong dtype": ("import numpy as np\nfrom engine.strategy.base import StrategySignals\nclass Bad:\n    name = 'bad'\n"
                    "    def signals(self, bars):\n        n = len(bars)\n"
                    "        return StrategySignals(np.zeros(n), np.full(n, np.nan), np.full(n, -1, np.int8))\n",
                    "direction has dtype float64"),
    "NaN directions": ("import numpy as np\nfrom engine.strategy.base import StrategySignals\nclass Bad:\n"
                       "    name = 'bad'\n    def signals(self, bars):\n        n = len(bars)\n        d = np.zeros(n)\n"
                       "        d[7] = np.nan\n"
                       "        return StrategySignals(d, np.full(n, np.nan), np.full(n, -1, np.int8))\n",
                       "direction is NaN at bar 7"),
    "exception inside signals": ("class Bad:\n    name = 'bad'\n    def signals(self, bars):\n"
                                 "        return 1 / 0\n", "signals() raised ZeroDivisionError: division by zero (line 4)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_strategy_file_is_one_line_naming_file_class_problem(case, tmp_path, es_1m_path, capsys) -> None:
    src, problem = BAD[case]
    f = tmp_path / "bad.py"
    f.write_text(src)
    rc, out, err = _cli(["backtest", "--data", es_1m_path, "--start", "2025-10-06", "--end", "2025-10-06",
                         "--strategy", f"{f}:Bad"], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("warning", "data "))]
    assert rc == 3, err
    errs = [ln for ln in lines if ln.startswith("error:")]
    assert len(errs) == 1 and "Traceback" not in err + out, err
    line = errs[0]
    assert str(f) in line and problem in line, line
    if case != "import error":
        assert f"{f}:Bad" in line


# ----------------------------------------------------------------------------- mid-session failure
FLAKY = '''
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from engine.strategy.api import IntParam, StrategyBase, make_signals

FAIL_FROM = [None]


class Flaky(StrategyBase):
    name = "flaky"
    params = (IntParam("lookback", 5, 50, 10),)
    warmup = 12

    def signals(self, bars):
        if FAIL_FROM[0] is not None and int(bars.ts[-1]) >= FAIL_FROM[0]:
            raise RuntimeError("feed of my indicator broke")
        n, k = len(bars), self.lookback
        d = np.zeros(n, np.int8)
        if n > k:
            hh = sliding_window_view(bars.high, k)[:-1].max(axis=1)
            d[k:] = np.where(bars.close[k:] > hh, 1, 0)
        return make_signals(d, 0.7)
'''


def test_strategy_raising_mid_session_pauses_entries_and_keeps_protection(tmp_path, week) -> None:
    from engine.runtime.session import Session, SessionConfig, make_signal_source

    f = tmp_path / "flaky.py"
    f.write_text(FLAKY)
    st = load_strategy(f"{f}:Flaky")
    mod = sys.modules[type(st.impl).__module__]
    s = Settings()
    sess = Session(s, week, make_signal_source(s, week, None, strategy=st), SessionConfig())
    while sess.kernel.oco.pos == 0:
        assert sess.step()
    n_trades = len(sess.kernel.trades)
    mod.FAIL_FROM[0] = int(week.ts[sess.i])      # raises from the next bar on
    assert sess.step()
    snap = sess.snapshot()
    assert snap.header.paused and snap.risk.state == "REDUCING"
    assert "flaky.py:Flaky: signals() raised RuntimeError: feed of my indicator broke" in snap.risk.reason
    assert str(f) in sess.signals.error
    assert any("strategy error" in e.message and e.severity == "error" for e in snap.events)
    assert snap.position.side != "FLAT" and snap.position.all_protected       # protection stays
    assert snap.position.stop is not None and snap.position.stop.state == "WORKING"
    assert sess.signals.last == (0, sess.signals.last[1], -1)                 # no signal used
    for _ in range(400):
        sess.step()
    assert len(sess.kernel.trades) <= n_trades + 1        # the open trade may close; nothing new enters
    assert sess.kernel.oco.pos == 0
    alerts = [e for e in sess.snapshot().events if e.kind == "alert" and "strategy error" in e.message]
    assert len(alerts) == 1     # once, not once per failing bar


def test_builtin_with_params_and_unknown_spec_are_refused() -> None:
    with pytest.raises(StrategyError, match="declares no parameters"):
        load_strategy("baseline", {"lookback": 5})
    with pytest.raises(StrategyError, match="mes_console.strategies"):
        load_strategy("no-such-strategy")


# ----------------------------------------------------------------------------- scaffold
def test_strategy_new_output_runs_unchanged_through_backtest(tmp_path, es_1m_path, capsys) -> None:
    rc, out, err = _cli(["strategy", "new", "my_breakout", "--out", tmp_path / "strats"], capsys)
    assert rc == 0, err
    f = tmp_path / "strats" / "my_breakout.py"
    assert f.exists() and (tmp_path / "strats" / "test_my_breakout.py").exists()
    rc, out, err = _cli(["backtest", "--data", es_1m_path, "--start", "2025-10-06", "--end", "2025-10-08",
                         "--strategy", f"{f}:MyBreakout", "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["metrics"]["trades"] > 0
    rc, out, err = _cli(["strategy", "new", "my_breakout", "--out", tmp_path / "strats"], capsys)
    assert rc == 3 and "exists" in err
    rc, out, err = _cli(["strategy", "list", "--dir", tmp_path / "strats", "--json"], capsys)
    rows = json.loads(out)
    assert {"baseline", "random"} <= {r["spec"] for r in rows}
    assert f"{tmp_path / 'strats' / 'my_breakout.py'}:MyBreakout" in {r["spec"] for r in rows}
    # the generated test passes as written
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(tmp_path / "strats" / "test_my_breakout.py")], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT),
                                         "MES_BARS": str(es_1m_path)})
    assert r.returncode == 0, r.stdout[-2000:]


def test_module_and_entry_point_specs_load(tmp_path, monkeypatch, week) -> None:
    from importlib.metadata import EntryPoint

    from engine.strategy import loader

    pkg = tmp_path / "my_strats"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "chan.py").write_text(CHANNEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    a = load_strategy("my_strats.chan:Channel", {"lookback": 15})
    assert a.where == "my_strats.chan:Channel" and a.params == {"lookback": 15}
    ep = EntryPoint(name="my_channel", value="my_strats.chan:Channel", group=loader.ENTRY_POINT_GROUP)
    monkeypatch.setattr(loader, "_entry_points", lambda: {"my_channel": ep})
    b = load_strategy("my_channel", {"lookback": 15})
    assert b.name == "channel" and b.version == "3"
    assert np.array_equal(a.signals(week).direction, b.signals(week).direction)
    assert {"spec": "my_channel", "name": "my_channel", "kind": "entry point",
            "where": "my_strats.chan:Channel"} in loader.discover([])
    with pytest.raises(StrategyError, match="my_strats.chan:Nope: no class 'Nope'.*Channel"):
        load_strategy("my_strats.chan:Nope")


def test_console_backtest_and_walk_forward_take_a_strategy(channel_file, es_1m_path, tmp_path) -> None:
    """The Backtest screen's work: its Model field names a strategy file (plain and Walk-fwd)."""
    import dataclasses
    from datetime import date

    from engine.runtime.snapshot import BacktestParams
    from engine.runtime.work import run_backtest_for_console, run_walk_forward_for_console

    s = Settings()
    s = dataclasses.replace(s, paths=dataclasses.replace(s.paths, reports_dir=str(tmp_path / "reports")))
    spec = f"{channel_file}:Channel"
    p = BacktestParams(data=str(es_1m_path), start=date(2025, 10, 6), end=date(2025, 10, 10), model=spec)
    r = run_backtest_for_console(s, p, lambda _p: None)
    week = slice_dates(load_bars(es_1m_path), "2025-10-06", "2025-10-10")
    want = compose.backtest(week, load_strategy(spec).signals(week), s)
    assert len(r.trades) == len(want.records) > 0
    p = dataclasses.replace(p, start=date(2025, 6, 2), end=date(2025, 7, 31), walk_forward=(6, 1, 1))
    wf = run_walk_forward_for_console(s, p, lambda _p: None, in_process=True)
    assert len(wf.folds) >= 2 and wf.go_live and "chosen per fold" in wf.backtest.limits[-1]
    assert (Path(wf.backtest.report_path) / "walk_forward.json").exists()


async def test_console_shows_the_strategy_error_and_keeps_running(tmp_path, week) -> None:
    """In the console: a strategy raising mid-session pauses entries (header PAUSED, risk pane
    reason, an error line in the log pane) while the position keeps its bracket; the app runs on."""
    from engine.runtime.session import Session, SessionConfig, make_signal_source
    from mes_console.app import MesConsoleApp

    f = tmp_path / "flaky.py"
    f.write_text(FLAKY)
    st = load_strategy(f"{f}:Flaky")
    from engine.logs import RingHandler, install, reset

    s = Settings()
    ring = RingHandler(500)
    reset()
    install([ring])
    sess = Session(s, week, make_signal_source(s, week, None, strategy=st), SessionConfig(), ring=ring)
    while sess.kernel.oco.pos == 0:
        assert sess.step()
    app = MesConsoleApp(sess, s)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert "flaky" in str(app.query_one("#model").render())
        sys.modules[type(st.impl).__module__].FAIL_FROM[0] = int(week.ts[sess.i])
        sess.step()
        sess.step()
        await pilot.pause(0.3)
        assert "PAUSED" in str(app.query_one("#header").render())
        risk = " ".join(str(app.query_one("#risk").render()).split())
        assert "strategy error" in risk
        logs = " ".join(str(app.query_one("#logs").render()).split())
        assert "E alert: strategy error: flaky.py:Flaky" in logs          # the pane is narrow: its start
        assert "feed of my indicator broke" in app.snapshot.risk.reason
        assert any("feed of my indicator broke" in e.message for e in app.snapshot.events)
        assert app.snapshot.position.side != "FLAT" and app.snapshot.position.all_protected
        assert app.is_running
    reset()


def test_bare_console_takes_a_strategy_and_names_a_bad_one(tmp_path, capsys, monkeypatch) -> None:
    """`mes-console --strategy SPEC`: the demo session's signal source (checked before any
    console starts: a bad file is one line, exit 3)."""
    from mes_console.commands import run as run_cmd

    f = tmp_path / "bad.py"
    f.write_text(BAD["missing method"][0])
    rc, _, err = _cli(["--strategy", f"{f}:Bad"], capsys)
    assert rc == 3 and "missing method signals" in err and str(f) in err
    good = tmp_path / "channel.py"
    good.write_text(CHANNEL)
    seen = {}
    monkeypatch.setattr(run_cmd, "run_tui", lambda session, settings: seen.setdefault("label", session.signals.label) and 0)
    rc, _, err = _cli(["--strategy", f"{good}:Channel"], capsys)
    assert rc == 0, err
    assert seen["label"].startswith("strategy channel v3")


async def test_optimize_screen_strategy_field(tmp_path, es_1m_path) -> None:
    """The Optimize screen's Strategy field: the strategies found as suggestions; a bad file is
    one line in a notification (nothing starts, the console runs on); a good one is searched."""
    import dataclasses

    from engine.config import OptimizeConfig
    from engine.data import save_bars
    from mes_console.app import MesConsoleApp
    from screens.optimize import OptimizeScreen
    from tests.ui_support import make_session, ui_settings

    b = load_bars(es_1m_path)
    data = save_bars(slice_dates(b, "2025-06-02", "2025-07-20"), tmp_path / "early-summer.parquet")
    base = ui_settings()
    s = dataclasses.replace(base, paths=dataclasses.replace(base.paths, data_dir=str(tmp_path),
                                                            reports_dir=str(tmp_path / "rep")),
                            optimize=dataclasses.replace(OptimizeConfig(), holdout_months=1, min_trades=0))
    bad = tmp_path / "bad.py"
    bad.write_text(BAD["missing method"][0])
    good = tmp_path / "channel.py"
    good.write_text(CHANNEL)
    app = MesConsoleApp(make_session(s), s)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        screen = app.screen
        assert isinstance(screen, OptimizeScreen)
        assert any(x.endswith("opening_range.py:OpeningRangeBreakout") for x in screen.strategies)
        screen.query_one("#data").value = str(data)
        screen.query_one("#trials").value = "3"
        screen.query_one("#sampler").value = "random"
        screen.query_one("#strategy").value = f"{bad}:Bad"
        screen.query_one("#data").focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        notes = [" ".join(str(n.message).split()) for n in app._notifications]
        assert any("missing method signals" in n and str(bad) in n for n in notes), notes
        assert screen.result is None and not screen.running()
        screen.query_one("#strategy").value = f"{good}:Channel"
        screen.query_one("#data").focus()
        await pilot.press("enter")
        for _ in range(600):
            await pilot.pause(0.1)
            if screen.result is not None:
                break
        r = screen.result
        assert r is not None and "strategy.lookback" in r["best"]["params"]
        assert r["strategy"]["name"] == "channel"
