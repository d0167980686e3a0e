"""Pure text renderers for the console panes: snapshot views in, rich ``Text`` out.

Kept free of widgets so they can be unit-tested and reused by a headless status line. Every
indicator is carried by words and reverse video, never by colour alone (NO_COLOR, R-UI-6).
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from rich.text import Text

from engine.runtime.snapshot import (
    BrokerView,
    EodView,
    HeaderView,
    LogLine,
    ModelView,
    PositionView,
    QuoteView,
    RiskView,
)

NY = ZoneInfo("America/New_York")
BLOCKS = "▁▂▃▄▅▆▇█"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_NO = {name: i for i, name in enumerate(LEVELS)}
EOD_LABELS = {"reduce": "16:00 size×½", "no_new": "16:15 no new", "exit": "16:25 exit", "flat": "16:30 flat"}


def ny_time(ts_ns: int, fmt: str = "%H:%M:%S") -> str:
    """UTC ns → New York wall time text."""
    return datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).astimezone(NY).strftime(fmt)


def fmt_ms(ms: float | None) -> str:
    """Milliseconds as ``850ms`` / ``12.3s`` / ``5m02s``; ``n/a`` for None."""
    if ms is None:
        return "n/a"
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def fmt_countdown(seconds: float) -> str:
    """Seconds until an instant as ``-1:02:03`` (to come) or ``done``."""
    if seconds <= 0:
        return "passed"
    s = int(seconds)
    return f"-{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def price(p: float | None) -> str:
    return "-" if p is None else f"{p:.2f}"


def money(x: float) -> str:
    return f"{'-' if x < 0 else '+'}${abs(x):,.2f}"


def sparkline(values, width: int) -> str:
    """One row of block characters for the last ``width`` values (scaled min→max)."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return BLOCKS[3] * len(vals)
    return "".join(BLOCKS[min(7, int((v - lo) / (hi - lo) * 7.999))] for v in vals)


def bar_chart(values, width: int, height: int) -> list[str]:
    """A ``height``-row block chart of the last ``width`` values, top row first."""
    vals = list(values)[-width:]
    if not vals:
        return [""] * height
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    levels = [int(round((v - lo) / span * (height * 8 - 1))) + 1 for v in vals]
    rows = []
    for r in range(height - 1, -1, -1):
        line = []
        for lv in levels:
            fill = lv - r * 8
            line.append(" " if fill <= 0 else BLOCKS[min(fill, 8) - 1])
        rows.append("".join(line))
    return rows


def meter(used: float, limit: float, width: int = 10) -> str:
    """``[####......]`` filled by used/limit (clipped)."""
    frac = 0.0 if limit <= 0 else max(0.0, min(1.0, used / limit))
    n = int(round(frac * width))
    return "[" + "#" * n + "." * (width - n) + "]"


def render_header(h: HeaderView, stale: bool, error: str = "") -> Text:
    t = Text()
    t.append(f" {h.mode.upper()} ", style="reverse bold")
    t.append(f" {h.symbol} {h.account} ")
    state_style = "reverse bold" if h.trading_state != "ACTIVE" else "bold"
    t.append(f" {h.trading_state} ", style=state_style)
    if h.paused:
        t.append(" PAUSED ", style="reverse")
    t.append(f" {ny_time(h.clock_ns, '%a %H:%M:%S')} NY ")
    t.append(f" data {fmt_ms(h.data_age_ms)}")
    if stale:
        t.append(" STALE DATA ", style="reverse bold blink")
    if error:
        t.append(f" ENGINE: {error} ", style="reverse bold")
    return t


def render_quote(q: QuoteView, width: int = 24) -> Text:
    t = Text()
    t.append(f"B/A {price(q.bid)}/{price(q.ask)}\n")
    spread = "-" if q.spread_ticks is None else f"{q.spread_ticks:.0f}t"
    t.append(f"Last {price(q.last)} sprd {spread}\n")
    t.append(sparkline(q.recent, width) + "\n")
    if q.bid_levels or q.ask_levels:
        bs, as_ = (q.bid_levels[:1] or [(None, 0)])[0][1], (q.ask_levels[:1] or [(None, 0)])[0][1]
        t.append(f"L2 size {bs:.0f} x {as_:.0f}\n")
    t.append(f"age {fmt_ms(q.quote_age_ms)}")
    if q.stale:
        t.append("  STALE", style="reverse bold")
    return t


def render_model(m: ModelView) -> Text:
    t = Text()
    if m.is_baseline:
        t.append("RULE-BASED BASELINE\n", style="bold")
    else:
        t.append(f"model {m.label}"[:24] + "\n")
    if m.probs:
        t.append(" ".join(f"{c[0]} {p:.2f}" for c, p in zip(m.classes, m.probs)) + "\n")
    else:
        t.append("no prediction yet\n")
    if m.confidence is not None:
        ok = m.confidence >= m.threshold
        t.append(f"conf {m.confidence:.2f} {'>=' if ok else '< '} {m.threshold:.2f} ")
        t.append(m.signal if ok else "NO TRADE", style="reverse" if ok else "")
        t.append("\n")
    else:
        t.append("conf n/a\n")
    lat = "n/a" if m.inference_us is None else f"{m.inference_us:.0f}us"
    t.append(f"age {fmt_ms(m.prediction_age_ms)} inf {lat}")
    return t


def render_eod(e: EodView, now_ns: int) -> Text:
    t = Text()
    t.append(f"phase {e.phase.upper()}  {e.trading_day[5:]}\n", style="bold")
    if not e.times:
        t.append("no session today")
        return t
    for i, (name, ts) in enumerate(e.times):
        label = f"{ny_time(ts, '%H:%M')} {EOD_LABELS.get(name, name)[6:]}"
        style = "reverse" if e.phase == name else ""
        t.append(f"{label:<15}{fmt_countdown((ts - now_ns) / 1e9):>10}", style=style)
        if i < len(e.times) - 1:
            t.append("\n")
    return t


def render_position(p: PositionView) -> Text:
    t = Text()
    if p.side == "FLAT":
        t.append("FLAT", style="bold")
        t.append(f"   realized today {money(p.realized_usd)}\n")
    else:
        t.append(f"{p.side} {p.size} @ {price(p.avg_price)}", style="bold")
        t.append(f"  uPnL {money(p.unrealized_usd)}\n")
        t.append(f"realized today {money(p.realized_usd)}\n")
    for leg in (p.stop, p.target):
        if leg is None:
            continue
        dist = "-" if leg.distance_ticks is None else f"{leg.distance_ticks:.0f}t"
        t.append(f"{leg.kind:<6} {leg.price:9.2f} {dist:>5} {leg.state}\n")
    if p.side != "FLAT" and p.stop is None:
        t.append("stop   MISSING\n", style="reverse bold")
    if p.all_protected:
        t.append("ALL PROTECTED" if p.side != "FLAT" else "flat: nothing at risk", style="bold")
    else:
        t.append(" UNPROTECTED CONTRACTS ", style="reverse bold blink")
    return t


def render_risk(r: RiskView, now_ns: int) -> Text:
    t = Text()
    t.append(f"{r.state}", style="reverse bold" if r.state != "ACTIVE" else "bold")
    if r.reason:
        t.append(f" {r.reason}"[:30])
    t.append("\n")
    t.append(f"day loss {meter(r.daily_loss_used_usd, r.daily_loss_limit_usd)} "
             f"{r.daily_loss_used_usd:.0f}/{r.daily_loss_limit_usd:.0f}\n")
    t.append(f"drawdown {meter(r.drawdown_usd, r.drawdown_limit_usd)} "
             f"{r.drawdown_usd:.0f}/{r.drawdown_limit_usd:.0f}\n")
    t.append(f"loss streak {r.consecutive_losses}  kill in ${r.kill_switch_distance_usd:,.0f}\n")
    if r.venue_rules and r.venue_distance_usd is not None:
        low = r.venue_distance_usd < 500.0
        t.append(f"MLL ${r.venue_liquidation_usd:,.0f} in ${r.venue_distance_usd:,.0f} max {r.venue_max_contracts}\n",
                 style="reverse bold" if low else "")
    if r.pause_until_ns is not None:
        t.append(f"pause {fmt_countdown((r.pause_until_ns - now_ns) / 1e9)} ", style="reverse")
    t.append("breakers: " + (", ".join(r.breakers) if r.breakers else "none"))
    return t


def render_broker(b: BrokerView, now_ns: int) -> Text:
    t = Text()
    if b.last_reconcile_ns is None:
        t.append("broker: never reconciled", style="reverse")
        return t
    age = (now_ns - b.last_reconcile_ns) / 1e6
    style = "" if b.result == "agree" else "reverse bold"
    t.append(f"broker {b.result.upper()}", style=style)
    t.append(f" {fmt_ms(age)} ago")
    if b.detail:
        t.append(f"\n{b.detail}")
    return t


def render_logs(lines: tuple[LogLine, ...], min_level: str, n: int, width: int = 48) -> Text:
    keep = [ln for ln in lines if _LEVEL_NO.get(ln.level, 1) >= _LEVEL_NO[min_level]][-n:]
    t = Text(no_wrap=True, overflow="ellipsis")
    for i, ln in enumerate(keep):
        style = "reverse" if ln.level in ("ERROR", "CRITICAL") else ("bold" if ln.level == "WARNING" else "")
        t.append(f"{ny_time(ln.ts_ns, '%H:%M')} {ln.level[0]} {ln.message}"[:width], style=style)
        if i < len(keep) - 1:
            t.append("\n")
    if not keep:
        t.append(f"(no records at {min_level} or above)")
    return t
