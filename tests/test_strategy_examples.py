"""The example strategies under examples/strategies (opening-range breakout, VWAP reversion) on
real bars: checked signals where the rule says, no lookahead (tests/test_strategy_api.py runs
`analyze lookahead` on both), a replay equal to the backtest trade for trade (the declared
warm-up covers what a signal reads), declared parameters that change the signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import compose
from engine.backtest.runner import slice_dates
from engine.config import Settings
from engine.data import load_bars
from engine.strategy.loader import StrategyError, load_strategy

ROOT = Path(__file__).resolve().parents[1]
ORB = f"{ROOT / 'examples/strategies/opening_range.py'}:OpeningRangeBreakout"
VWAP = f"{ROOT / 'examples/strategies/vwap_reversion.py'}:VwapReversion"


@pytest.fixture(scope="module")
def week_1m(es_1m_path):
    return slice_dates(load_bars(es_1m_path), "2025-10-06", "2025-10-10")


@pytest.fixture(scope="module")
def weeks_5m(es_5m_path):
    return slice_dates(load_bars(es_5m_path), "2025-10-06", "2025-10-24")


def _ny(ts):
    return pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).tz_convert("America/New_York")


def test_opening_range_signals_after_the_range_and_replay_equals_backtest(week_1m) -> None:
    st = load_strategy(ORB, {"range_minutes": 15, "last_entry": 240})
    sig = st.signals(week_1m)
    on = np.flatnonzero(sig.direction != 0)
    assert len(on) >= 5
    t = _ny(week_1m.ts[on])
    mins = t.hour * 60 + t.minute
    assert (mins >= 9 * 60 + 45).all() and (mins + 1 <= 9 * 60 + 30 + 240).all()
    # a long closes above the day's opening-range high (the 15 one-minute bars from 09:30)
    i = int(on[np.flatnonzero(sig.direction[on] > 0)[0]])
    day = _ny(week_1m.ts).normalize() == _ny(week_1m.ts[i:i + 1]).normalize()[0]
    m = _ny(week_1m.ts).hour * 60 + _ny(week_1m.ts).minute
    rng = day & (m >= 570) & (m < 585)
    assert week_1m.close[i] > week_1m.high[rng].max()
    assert not np.array_equal(sig.direction, load_strategy(ORB, {"range_minutes": 45}).signals(week_1m).direction)
    s = Settings()
    bt = compose.backtest(week_1m, sig, s)
    sess = compose.replay(s, week_1m, strategy=st)
    assert sess.run() == 0
    assert [(x.entry_ts, x.direction, x.exit_ts, x.exit_reason) for x in sess.kernel.trades] == \
        [(x.entry_ts, x.direction, x.exit_ts, x.exit_reason) for x in bt.records]
    assert len(bt.records) >= 3


def test_vwap_reversion_needs_volume_and_fades_the_band(weeks_5m, week_1m) -> None:
    st = load_strategy(VWAP)
    sig = st.signals(weeks_5m)
    on = np.flatnonzero(sig.direction != 0)
    assert len(on) >= 5 and set(np.unique(sig.direction[on])) == {-1, 1}
    t = _ny(weeks_5m.ts[on])
    mins = t.hour * 60 + t.minute
    assert (mins >= 600).all() and (mins + 5 <= 15 * 60 + 30).all()
    assert (sig.confidence[on] == 0.70).all()
    wider = load_strategy(VWAP, {"band": 3.0}).signals(weeks_5m)
    assert (wider.direction != 0).sum() < len(on)
    with pytest.raises(StrategyError, match=r"VwapReversion: signals\(\) raised ValueError: needs volume"):
        st.signals(week_1m)
    with pytest.raises(StrategyError, match=r"parameter band = 9: outside 1..3"):
        load_strategy(VWAP, {"band": 9})


def test_streaming_update_equals_batch_and_live_needs_the_pass(week_1m, es_1m_path, tmp_path, monkeypatch, capsys) -> None:
    from engine.strategy.runtime import check_stream
    from mes_console.cli import app
    from mes_console.commands.common import guarded

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    st = load_strategy(ORB)
    r = check_stream(st, st.with_params(st.params), week_1m)
    assert r["pass"] and r["bars"] == len(week_1m)
    # a different rule in update() is found, bar by bar
    other = load_strategy(ORB, {"range_minutes": 30})
    bad = check_stream(st, other, week_1m)
    assert not bad["pass"] and bad["first"]
    live = ["run", "--mode", "live", "--no-tui", "--i-understand-this-trades-real-money", "--strategy", ORB]
    assert guarded(app, live) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "has not passed the batch = streaming check on 60-second bars" in err and "nothing traded" in err
    assert "never passed the lookahead check" in err
    assert guarded(app, ["analyze", "streaming", "--data", str(es_1m_path), "--start", "2025-10-06", "--end",
                         "2025-10-08", "--strategy", ORB]) == 0
    assert "batch = streaming: PASS" in capsys.readouterr().out
    monkeypatch.delenv("PROJECTX_USERNAME", raising=False)
    monkeypatch.delenv("PROJECTX_API_KEY", raising=False)
    assert guarded(app, live) == 3         # past the strategy check: now refused for the credentials
    err = capsys.readouterr().err
    assert "credentials missing" in err and "batch = streaming" not in err
