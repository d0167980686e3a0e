"""Pane renderers: indicators are words / reverse video (NO_COLOR), numbers formatted right."""

from __future__ import annotations

from engine.runtime.snapshot import HeaderView, OrderLegView, PositionView, QuoteView, RiskView
from mes_console.widgets import render


def test_unprotected_position_is_shouted_in_words():
    stop = OrderLegView("stop", 5990.0, 8.0, "WORKING")
    ok = PositionView("LONG", 2, 5992.0, -5.0, 0.0, stop, None, True)
    bad = PositionView("LONG", 2, 5992.0, -5.0, 0.0, None, None, False)
    assert "ALL PROTECTED" in render.render_position(ok).plain
    text = render.render_position(bad).plain
    assert "UNPROTECTED CONTRACTS" in text and "stop   MISSING" in text
    assert "flat: nothing at risk" in render.render_position(
        PositionView("FLAT", 0, None, 0.0, 12.5, None, None, True)).plain


def test_header_shows_state_pause_stale_and_error():
    h = HeaderView("replay", "ACC-1", "REDUCING", True, 1_741_121_400_000_000_000, 1500.0)
    text = render.render_header(h, stale=True, error="boom").plain
    for word in ("REPLAY", "ACC-1", "REDUCING", "PAUSED", "STALE DATA", "ENGINE: boom", "1.5s", "NY"):
        assert word in text
    assert "Tue 03-04 15:50:00 NY" in text  # 2025-03-04 20:50 UTC = 15:50 EST, with the date


def test_quote_stale_and_unknown_values():
    q = QuoteView(None, None, None, None, (), None, stale=True)
    text = render.render_quote(q).plain
    assert "B/A -/-" in text and "age n/a" in text and "STALE" in text


def test_risk_meters_and_pause_countdown():
    r = RiskView("HALTED", "kill switch", 25.0, 50.0, 80.0, 75.0, 3, 12.0, 300.0, ("spread",), 160 * 10**9)
    text = render.render_risk(r, now_ns=100 * 10**9).plain
    assert "HALTED kill switch" in text
    assert "[#####.....] 25/50" in text
    assert "[##########] 80/75" in text  # clipped at the limit
    assert "pause in 0:01:00" in text and "breakers: spread" in text


def test_formatters():
    assert render.fmt_ms(None) == "n/a" and render.fmt_ms(850) == "850ms"
    assert render.fmt_ms(12_300) == "12.3s" and render.fmt_ms(302_000) == "5m02s"
    assert render.fmt_countdown(3723) == "in 1:02:03" and render.fmt_countdown(0) == "passed"
    assert render.fmt_countdown(-18720) == "passed"  # never a negative countdown
    assert render.money(-3.5) == "-$3.50" and render.money(1234) == "+$1,234.00"
    assert render.sparkline([1, 2, 3, 4], 3) == "▁▄█"
    rows = render.bar_chart([0, 1], 2, 2)
    assert len(rows) == 2 and rows[0][1] == "█" and rows[0][0] == " "


def test_ended_session_and_demo_are_announced_in_the_header():
    h = HeaderView("demo", "SIM", "ACTIVE", False, 1_741_121_400_000_000_000, 0.0, speed="60x",
                   ended="end of data")
    text = render.render_header(h, stale=False).plain
    assert "DEMO" in text and "generated market" in text and "60x" in text
    assert "ENDED: end of data" in text and "ACTIVE" not in text


def test_halted_reason_is_not_doubled_and_long_text_ends_in_an_ellipsis():
    r = RiskView("HALTED", "HALTED: operator kill switch", 0, 50, 0, 75, 0, 300, 300)
    first = render.render_risk(r, 0, width=38).plain.splitlines()[0]
    assert first == "HALTED operator kill switch"
    r = RiskView("HALTED", "x" * 80, 0, 50, 0, 75, 0, 300, 300)
    first = render.render_risk(r, 0, width=38).plain.splitlines()[0]
    assert len(first) == 38 and first.endswith("…")
    from engine.runtime.snapshot import LogLine

    lines = (LogLine(1_741_121_400_000_000_000, "INFO", "mes.session", "y" * 100),)
    text = render.render_logs(lines, "INFO", 5, width=40).plain
    assert text.startswith("03-04 15:50 I ") and len(text) == 40 and text.endswith("…")


def test_model_pane_never_says_no_prediction_beside_a_confidence():
    from engine.runtime.snapshot import ModelView

    m = ModelView("rule-based baseline", True, confidence=0.70, threshold=0.60, signal="LONG")
    text = render.render_model(m).plain
    assert "no prediction yet" not in text and "conf 0.70 >= 0.60 LONG" in text
    assert "no prediction yet" in render.render_model(ModelView("x", True)).plain


def test_closed_legs_carry_no_distance():
    filled = OrderLegView("stop", 5990.0, 954.0, "FILLED")
    text = render.render_position(PositionView("FLAT", 0, None, 0.0, -5.0, filled, None, True)).plain
    assert "954t" not in text and "stop" not in text
    working = OrderLegView("stop", 5990.0, 8.0, "WORKING")
    assert "8t WORKING" in render.render_position(
        PositionView("LONG", 1, 5992.0, 0.0, 0.0, working, None, True)).plain


def test_equity_chart_has_a_dollar_axis_over_the_whole_series():
    eq = [1000.0] * 500 + [831.95] * 10  # the drop is at the very end of a long session
    rows = render.equity_chart(eq, 28, 4)
    assert len(rows) == 4 and rows[0].startswith("$1,000┤") and rows[-1].strip().startswith("$832┤")
    assert all(len(r) <= 28 for r in rows)
    assert rows[0][-1] == " " and rows[0][7] != " "  # high at the start, low at the end
    flat = render.equity_chart([1000.0, 1004.0], 20, 3)  # $4 of noise does not fill the pane
    assert flat[0].startswith("$1,012┤") and flat[-1].strip().startswith("$992┤")


def test_semantic_colour_keeps_its_words_without_colour():
    from rich.console import Console

    p = PositionView("SHORT", 1, 6000.0, -12.5, 20.0, None, None, False)
    t = render.render_position(p)
    styles = {str(span.style) for span in t.spans}
    assert any("red" in st for st in styles) and any("green" in st for st in styles)
    out = Console(no_color=True, width=60, force_terminal=True, record=True)
    out.print(t)
    plain = out.export_text()
    assert "SHORT 1 @ 6000.00" in plain and "-$12.50" in plain and "+$20.00" in plain
    assert "UNPROTECTED CONTRACTS" in plain


def test_a_halt_shows_the_position_closing_not_protected():
    """Kill switch with an open position on the real session: the legs are being cancelled and
    a market exit is in flight; the pane says so instead of ALL PROTECTED, until flat."""
    from tests.ui_support import advance, make_session, open_position

    sess = make_session()
    open_position(sess)
    sess._publish()
    before = sess.snapshot().position
    assert not before.exiting and "ALL PROTECTED" in render.render_position(before).plain
    sess.halt("test kill switch")
    sess._apply_commands()
    sess._publish()
    p = sess.snapshot().position
    assert p.side != "FLAT" and p.exiting and p.all_protected
    text = render.render_position(p).plain
    assert "CLOSING at market" in text and "ALL PROTECTED" not in text
    advance(sess, 120)  # the exit fills at the next bar's open
    assert sess.snapshot().position.side == "FLAT" and not sess.snapshot().position.exiting


def test_model_label_once_and_cut_with_an_ellipsis():
    """A checkpoint's label reads "model NAME" once (the signal source already says "model"),
    cut to the pane's width with an ellipsis."""
    from engine.runtime.snapshot import ModelView

    first = render.render_model(ModelView("model mlp-60s-20251215", False), width=40).plain.splitlines()[0]
    assert first == "model mlp-60s-20251215"
    cut = render.render_model(ModelView("model mlp-60s-20251215", False), width=16).plain.splitlines()[0]
    assert cut == "model mlp-60s-2…" and len(cut) == 16


def test_today_pnl_is_equity_since_the_day_start_while_a_position_is_open():
    """One convention for money while a position is open: today's P&L (position pane and equity
    pane: realized today + uPnL) = equity now - equity at the day's start, the figure the
    day-loss meter measures; the entry commission is in all three (it was missing from today's
    P&L before issue 21)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from tests.ui_support import make_session, open_position

    sess = make_session(at=datetime(2025, 3, 3, 9, 35, tzinfo=ZoneInfo("America/New_York")))
    checked = 0
    for _ in range(3):
        open_position(sess)
        snap = sess.snapshot()
        assert snap.position.side != "FLAT"
        today = snap.position.realized_usd + snap.position.unrealized_usd
        day_start = sess.risk.state_dict()["day_start_equity"]
        assert abs(today - (sess.kernel.last_equity - day_start)) < 0.005
        assert abs(snap.risk.daily_loss_used_usd - max(0.0, -today)) < 0.005
        checked += 1
        while sess.kernel.oco.pos != 0:
            assert sess.step()
    assert checked == 3


def test_risk_pane_drops_the_least_telling_lines_when_short():
    """At 80x24 the risk pane has 6 rows; a 50K profile brings 8 lines. What goes is 'breakers:
    none' and then the loss streak; an active breaker, the MLL and the meters always stay."""
    kw = dict(venue_rules="topstepx-50k", venue_liquidation_usd=48_000.0, venue_distance_usd=2_000.0,
              venue_max_contracts=50, venue_balance_usd=50_000.0, venue_profit_usd=0.0,
              venue_target_usd=3_000.0, venue_status="open")
    calm = RiskView("ACTIVE", "", 0.0, 333.0, 0.0, 500.0, 0, 2000.0, 2000.0, **kw)
    full = render.render_risk(calm, 0, width=60).plain.splitlines()
    assert len(full) == 7 and full[-1] == "breakers: none"
    short = render.render_risk(calm, 0, width=60, height=6).plain.splitlines()
    assert short == full[:-1]
    hot = RiskView("ACTIVE", "", 0.0, 333.0, 0.0, 500.0, 0, 2000.0, 2000.0, ("spread",), **kw)
    lines = render.render_risk(hot, 0, width=60, height=6).plain.splitlines()
    assert len(lines) == 6 and lines[-1] == "breakers: spread"
    assert not any(ln.startswith("loss streak") for ln in lines)
    assert any(ln.startswith("MLL $48,000") for ln in lines) and lines[0] == "ACTIVE"
