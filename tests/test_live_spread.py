"""Paper/live feed the kernel the broker's quoted spread (issue 22 item 6): best ask − best bid in
ticks at each bar close, so the spread breaker works where it matters. Over loopback against
the fake gateway on real TopstepX bars, the fake's quoted spread widened by a fault."""

from __future__ import annotations

import math

from tests.test_live_account import T_MID, Run, _frames, _settings


def test_quoted_spread_reaches_the_kernel_and_trips_the_spread_breaker(topstepx_path, tmp_path) -> None:
    _, live = _frames(topstepx_path, T_MID, 40, 10)
    run = Run(live, _settings(tmp_path, warm_start=False), tmp_path)
    try:
        run.start()
        s, ex = run.sess, run.ex
        run.step(8)                                        # two bars at the normal 1-tick spread
        assert s._last_bar.spread == 1.0
        assert s.quoted_spread() == 1.0
        state, why = s.risk.state(s.clock.now_ns())
        assert "spread breaker" not in why
        ex.faults.spread_ticks = 3                         # a wide market: 3 ticks > the 2-tick pause
        run.step(8)
        assert s._last_bar.spread == 3.0
        state, why = s.risk.state(s.clock.now_ns())
        assert "spread breaker" in why and state.name == "REDUCING", (state, why)
        ex.faults.spread_ticks = 1                         # back to 1 tick ≤ the 1-tick resume
        run.step(8)
        state, why = s.risk.state(s.clock.now_ns())
        assert "spread breaker" not in why, why
    finally:
        run.close()


def test_no_quote_means_an_unknown_spread(tmp_path) -> None:
    from engine.config import Settings
    from engine.runtime.market_state import MarketState
    from engine.calendar import calendar_for

    now = 1_757_000_000_000_000_000
    cal = calendar_for(now - 7 * 86_400 * 10**9, now + 30 * 86_400 * 10**9)
    vals = iter([float("nan"), 3.0, 1.5, float("nan")])
    m = MarketState(cal, 60 * 10**9, 14, None, True, settings=Settings(), quoted_spread=lambda: next(vals))
    rows = [m.update(now + i * 60 * 10**9, 101.0, 99.0, 100.0, 10.0) for i in range(4)]
    sp = [r.spread for r in rows]
    assert math.isnan(sp[0]) and sp[1] == 3.0 and sp[2] == 3.0 and math.isnan(sp[3])   # hysteresis between 1 and 2
