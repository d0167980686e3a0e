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
    assert "Tue 15:50:00 NY" in text  # 2025-03-04 20:50 UTC = 15:50 EST


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
    assert "pause -0:01:00" in text and "breakers: spread" in text


def test_formatters():
    assert render.fmt_ms(None) == "n/a" and render.fmt_ms(850) == "850ms"
    assert render.fmt_ms(12_300) == "12.3s" and render.fmt_ms(302_000) == "5m02s"
    assert render.fmt_countdown(3723) == "-1:02:03" and render.fmt_countdown(0) == "passed"
    assert render.money(-3.5) == "-$3.50" and render.money(1234) == "+$1,234.00"
    assert render.sparkline([1, 2, 3, 4], 3) == "▁▄█"
    rows = render.bar_chart([0, 1], 2, 2)
    assert len(rows) == 2 and rows[0][1] == "█" and rows[0][0] == " "
