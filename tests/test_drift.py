"""``drift`` (issue 26) on a paper session over the fake gateway (real TopstepX bars): the bars
the session saw are in the journal; the kernel re-run on them with the conservative fill model
reports the fake's known fill differences trade by trade (market entries at the ask + 1 tick /
the bid - 1 tick against the model's bar open + slippage), and finds the planted difference (an
operator flatten in the middle of a trade)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backtest.drift import drift_session
from engine.broker.fake import load_bars_frame
from engine.config import Settings
from engine.journal import Journal
from tests.paper_support import paper_session, paper_settings, subscribed, wait_until

ROOT = Path(__file__).resolve().parents[1]
USER, KEY = "drift-user", "px-drift-key-1a2b3c4d5e"
START = "2025-09-04T12:00:00+00:00"
N_BARS = 330
TICK = 0.25


@pytest.fixture(scope="module")
def paper(topstepx_path, tmp_path_factory):
    """A paper session over N_BARS real bars; in its 4th round trip the operator flattens (the
    planted difference). Returns (journal path, planted entry ts)."""
    from tests.px_fixtures import ThreadedGateway

    frame = load_bars_frame(topstepx_path, start=START, max_rows=N_BARS)
    state = tmp_path_factory.mktemp("drift-state")
    gt = ThreadedGateway(frame, 0.0, username=USER, api_key=KEY)
    settings = paper_settings(state, USER, KEY)
    sess, venue = paper_session(gt, settings, state, USER, KEY, N_BARS, min_reconcile_wall_s=0.5, feed_end_s=1.0)
    journal = state / "journal.sqlite3"
    sess.watchdog = None
    ex = gt.gw.exchange
    planted = None
    try:
        sess.start()
        wait_until(lambda: subscribed(gt), 30)
        held = 0
        for k in range(4 * N_BARS):
            gt.call(ex.step)
            wait_until(lambda: sess.data_seen >= 2 * (k + 1) and sess.venue.fills >= len(ex.trades)
                  and all(c.outbox.empty() for c in gt.gw.connections) and venue.user_events.empty(),
                  why=lambda: (k, sess.data_seen, sess.exit_reason))
            kern = sess.kernel
            if planted is None and kern is not None and len(kern.trades) >= 3 and kern.oco.pos != 0:
                held += 1
                if held == 4:   # a step into the 4th trade: the operator flattens
                    planted = int(kern.book.entry_ts) if hasattr(kern.book, "entry_ts") else -1
                    sess.flatten()
                    wait_until(lambda: sess.kernel.oco.pos == 0 or sess.kernel.oco.exiting(), 10)
        sess.finished.wait(30)
    finally:
        sess.stop("test over")
        sess.finished.wait(10)
        gt.close()
    assert planted is not None, "the session never held a 4th position"
    return journal, sess


def test_drift_lists_the_fakes_fill_differences_and_the_planted_flatten(paper):
    journal, sess = paper
    j = Journal(journal, readonly=True)
    try:
        rep = drift_session(j, None, Settings())
    finally:
        j.close()
    live = sess.kernel.trades
    assert len(live) >= 5
    c = rep.counts()
    assert c["matched"] >= 4
    matched = [r for r in rep.rows if r.kind == "matched"]
    # the fake's known entry fills: a buy at the ask (last + 1 tick) + 1 tick, a sell at the
    # bid (last) - 1 tick; the re-run's conservative model at the bar open + its slippage
    for r in matched:
        want = 2 if r.side > 0 else 1
        assert r.live_entry_slip_ticks == pytest.approx(want), r.text()
        assert r.model_entry_slip_ticks >= -1e-9, r.text()   # the model never fills better than the open
        assert r.entry_ticks == pytest.approx(r.live_entry_slip_ticks - r.model_entry_slip_ticks), r.text()
    # the planted difference: the operator's flatten, found and explained
    flat = [r for r in matched if r.live["exit_reason"] == "flatten"]
    assert len(flat) == 1, [r.text() for r in rep.rows]
    f = flat[0]
    assert f.model["exit_reason"] in ("stop", "target", "signal", "eod_flatten")
    assert "exit flatten at" in f.reason and "operator" in f.reason
    assert "exit_timing" in f.causes and f.causes["exit_timing"] != 0
    # the causes add up to the whole difference
    assert sum(rep.totals.values()) == pytest.approx(rep.live_net - rep.model_net, abs=1e-6)
    assert rep.live_net == pytest.approx(sum(t.net_pnl for t in live))
    assert rep.line().startswith("drift vs conservative model: live $")
    print("\n".join(r.text() for r in rep.rows))
    print(rep.line())


def test_drift_cli_json(paper):
    journal, _ = paper
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "mes_console.cli", "drift", "--path", str(journal), "--json"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["counts"]["matched"] >= 4 and any(x["live"] and x["live"]["exit_reason"] == "flatten"
                                                 for x in doc["rows"])
    bad = subprocess.run([sys.executable, "-m", "mes_console.cli", "drift", "--path", str(journal), "--session", "99"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 3 and bad.stderr.startswith("error:") and "no session 99" in bad.stderr  # bad input (README)


def test_no_drift_line_for_a_demo_or_replay(tmp_path) -> None:
    """A demo/replay journals its fills (sim journal) but is the kernel itself: its end of session
    prints no drift line (it printed 'drift: not computed ... no recorded bars'); a paper session
    whose journal cannot be read says why."""
    from types import SimpleNamespace

    from mes_console.commands.drive import _drift_line

    where = (tmp_path / "missing.sqlite3", 1)
    for mode in ("demo", "replay"):
        assert _drift_line(SimpleNamespace(cfg=SimpleNamespace(mode=mode), settings=None), where) is None
    line = _drift_line(SimpleNamespace(cfg=SimpleNamespace(mode="paper"), settings=None), where)
    assert line is not None and line.startswith("drift: not computed")
