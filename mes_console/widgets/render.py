"""Pure text renderers for the console panes: snapshot views in, rich ``Text`` out.

Kept free of widgets so they can be unit-tested and reused by a headless status line. Every
indicator is carried by words and reverse video; colour is added on top with a meaning (green
gain / LONG, red loss / SHORT / HALTED, yellow REDUCING) and never carries it alone: under
``NO_COLOR`` the same words remain (R-UI-6).

Every time shown is the engine clock (the snapshot's ``clock_ns``), in New York time; times that
could be ambiguous over a multi-day replay carry the date.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from rich.text import Text

from engine.runtime.snapshot import money as snapshot_money
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
EOD_WORDS = {"reduce": "size×½", "no_new": "no new", "exit": "exit", "flat": "flat"}
"""What each EOD phase does; its clock time always comes from the snapshot (the calendar and the
risk manager), never from here."""

GAIN, LOSS = "green", "red"
STATE_STYLE = {"ACTIVE": "bold green", "REDUCING": "reverse bold yellow", "HALTED": "reverse bold red"}
SIDE_STYLE = {"LONG": "bold green", "SHORT": "bold red", "FLAT": "bold"}


def pnl_style(x: float) -> str:
    """Colour of a dollar amount: green gain, red loss, none at zero (the sign says it too)."""
    return GAIN if x > 0 else LOSS if x < 0 else ""


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells with an ellipsis when it does not fit."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


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
    """Seconds until an instant as ``in 1:02:03`` (to come) or ``passed`` (never negative)."""
    if seconds <= 0:
        return "passed"
    s = int(seconds)
    return f"in {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def price(p: float | None) -> str:
    return "-" if p is None else f"{p:.2f}"


def money(x: float) -> str:
    """Signed dollars (``+$3.25``, ``-$12.09``): :func:`engine.runtime.snapshot.money`, the one
    money formatter of the console, the session log and the summary."""
    return snapshot_money(x, sign=True)


def sparkline(values, width: int) -> str:
    """One row of block characters for the last ``width`` values (scaled min→max)."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return BLOCKS[3] * len(vals)
    return "".join(BLOCKS[min(7, int((v - lo) / (hi - lo) * 7.999))] for v in vals)


def resample(values, width: int) -> list[float]:
    """At most ``width`` values spread evenly over the whole series (first and last kept)."""
    vals = list(values)
    n = len(vals)
    if n <= width or width < 2:
        return vals[-max(width, 1):] if width < 2 else vals
    return [vals[round(i * (n - 1) / (width - 1))] for i in range(width)]


def bar_chart(values, width: int, height: int, lo: float | None = None, hi: float | None = None) -> list[str]:
    """A ``height``-row block chart of the last ``width`` values, top row first, scaled to
    [``lo``, ``hi``] (default: the values' min and max)."""
    vals = list(values)[-width:]
    if not vals:
        return [""] * height
    lo = min(vals) if lo is None else lo
    hi = max(vals) if hi is None else hi
    span = (hi - lo) or 1.0
    levels = [max(1, int(round((v - lo) / span * (height * 8 - 1))) + 1) for v in vals]
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


def equity_chart(equity, width: int, height: int, min_span_usd: float = 20.0) -> list[str]:
    """Rows of an equity chart with a dollar axis: ``$hi┤`` on the top row, ``$lo┤`` on the
    bottom one, the whole series resampled to the width left. The vertical span is at least
    ``min_span_usd`` dollars (centred), so a few dollars of noise never fill the pane."""
    vals = list(equity)
    if not vals or height < 1:
        return []
    lo, hi = min(vals), max(vals)
    if hi - lo < min_span_usd:
        mid = (hi + lo) / 2
        lo, hi = mid - min_span_usd / 2, mid + min_span_usd / 2
    labels = [f"{hi:,.0f}", f"{lo:,.0f}"]
    lw = max(len(x) for x in labels) + 1
    w = max(4, width - lw - 1)
    rows = bar_chart(resample(vals, w), w, height, lo, hi)
    out = []
    for r, row in enumerate(rows):
        label = labels[0] if r == 0 else labels[1] if r == len(rows) - 1 else ""
        out.append(f"{('$' + label) if label else '':>{lw}}┤{row}")
    return out


def render_header(h: HeaderView, stale: bool, error: str = "") -> Text:
    t = Text()
    t.append(f" {h.mode.upper()} ", style="reverse bold")
    if h.mode == "demo":
        t.append(" generated market", style="italic")
    if h.speed:
        t.append(f" {h.speed}")
    t.append(f" {h.symbol} {h.account} ")
    if h.ended:
        t.append(f" ENDED: {h.ended} ", style="reverse bold")
    else:
        t.append(f" {h.trading_state} ", style=STATE_STYLE.get(h.trading_state, "reverse bold"))
    if h.paused:
        t.append(" PAUSED ", style="reverse")
    t.append(f" {ny_time(h.clock_ns, '%a %m-%d %H:%M:%S')} NY ")
    t.append(f" data {fmt_ms(h.data_age_ms)}")
    if stale:
        t.append(" STALE DATA ", style="reverse bold blink")
    if error:
        t.append(f" ENGINE: {error} ", style="reverse bold")
    return t


def render_quote(q: QuoteView, width: int = 24) -> Text:
    t = Text()
    t.append(f"B/A {price(q.bid)}/{price(q.ask)}\n"[:width + 1])
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


def render_model(m: ModelView, width: int = 24) -> Text:
    """The model pane, ``width`` cells wide: the label once ("model mlp-60s-20251215", cut
    with an ellipsis), probabilities or the baseline's rule state, confidence, age, latency."""
    t = Text()
    if m.is_baseline and m.label.startswith("strategy "):   # a loaded strategy (engine.strategy.runtime)
        t.append(m.label[:24] + "\n", style="bold")
    elif m.is_baseline:
        t.append("RULE-BASED BASELINE\n", style="bold")
    else:
        label = m.label if m.label.startswith("model ") else f"model {m.label}"
        t.append(fit(label, max(8, width)) + "\n")
    if m.probs:
        t.append(" ".join(f"{c[0]} {p:.2f}" for c, p in zip(m.classes, m.probs)) + "\n")
    elif m.confidence is not None:
        t.append("rule signal: no class probs\n")
    elif m.is_baseline and m.prediction_age_ms is not None:
        t.append("no rule signal this bar\n")
    else:
        t.append("no prediction yet\n")
    if m.confidence is not None:
        ok = m.confidence >= m.threshold
        t.append(f"conf {m.confidence:.2f} {'>=' if ok else '< '} {m.threshold:.2f} ")
        if ok and m.signal in ("LONG", "SHORT"):
            t.append(m.signal, style="reverse " + SIDE_STYLE[m.signal])
        else:
            t.append("NO TRADE")
        t.append("\n")
    else:
        t.append("conf n/a\n")
    lat = "n/a" if m.inference_us is None else f"{m.inference_us:.0f}us"
    t.append(f"age {fmt_ms(m.prediction_age_ms)} inf {lat}")
    return t


def render_eod(e: EodView, now_ns: int) -> Text:
    t = Text()
    day = e.trading_day
    try:  # the trading day with its weekday, short enough for one line at 80 columns
        from datetime import date as _date

        day = _date.fromisoformat(e.trading_day).strftime("%a %m-%d")
    except ValueError:
        pass
    t.append(f"{e.phase.upper()}  day {day}\n", style="bold")
    if not e.times:
        t.append("no session today")
        return t
    for i, (name, ts) in enumerate(e.times):
        label = f"{ny_time(ts, '%H:%M')} {EOD_WORDS.get(name, name)}"
        style = "reverse" if e.phase == name else ""
        t.append(f"{label:<13}{fmt_countdown((ts - now_ns) / 1e9):>11}", style=style)
        if i < len(e.times) - 1:
            t.append("\n")
    return t


LIVE_LEG_STATES = ("WORKING", "PENDING", "PARTIAL", "CANCELING")
"""Leg states that still protect (or may still fill); others are shown without a distance."""


def render_position(p: PositionView) -> Text:
    t = Text()
    if p.side == "FLAT":
        t.append("FLAT", style="bold")
        t.append("   realized today ")
        t.append(money(p.realized_usd), style=pnl_style(p.realized_usd))
        t.append("\n")
    else:
        t.append(f"{p.side} {p.size} @ {price(p.avg_price)}", style=SIDE_STYLE.get(p.side, "bold"))
        t.append("  uPnL ")
        t.append(money(p.unrealized_usd), style=pnl_style(p.unrealized_usd))
        t.append("\nrealized today ")
        t.append(money(p.realized_usd), style=pnl_style(p.realized_usd))
        t.append("\n")
    for leg in (p.stop, p.target):
        if leg is None or (p.side == "FLAT" and leg.state not in LIVE_LEG_STATES):
            continue  # a filled or cancelled leg of a closed position is history, not protection
        dist = "-" if leg.distance_ticks is None or leg.state not in LIVE_LEG_STATES else f"{leg.distance_ticks:.0f}t"
        t.append(f"{leg.kind:<6} {leg.price:9.2f} {dist:>5} {leg.state}\n")
    if p.side != "FLAT" and p.stop is None:
        t.append("stop   MISSING\n", style="reverse bold")
    if p.side != "FLAT" and p.exiting:
        t.append("CLOSING at market (exit in flight)", style="bold yellow")
    elif p.all_protected:
        t.append("ALL PROTECTED" if p.side != "FLAT" else "flat: nothing at risk", style="bold")
    else:
        t.append(" UNPROTECTED CONTRACTS ", style="reverse bold blink")
    return t


def render_account_line(r: RiskView, width: int = 38) -> str:
    """The account profile's line of the risk pane (issue 23): profile, verdict so far,
    balance, profit-target progress and the best day's share against the consistency share,
    fitted to ``width``."""
    bits = [f"{r.venue_rules} {r.venue_status.upper()}"]
    if r.venue_balance_usd is not None:
        bits.append(f"bal ${r.venue_balance_usd:,.0f}")
    if r.venue_target_usd > 0 and r.venue_profit_usd is not None:
        bits.append(f"target {100 * r.venue_profit_usd / r.venue_target_usd:.0f}% of ${r.venue_target_usd:,.0f}")
    if r.venue_best_day_share is not None:
        lim = f"/{100 * r.venue_consistency_share:.0f}%" if r.venue_consistency_share > 0 else ""
        bits.append(f"best day {100 * r.venue_best_day_share:.0f}%{lim}")
    return fit(" · ".join(bits), width)


def render_risk(r: RiskView, now_ns: int, width: int = 38, height: int | None = None) -> Text:
    """The risk pane: state and reason, the day-loss and drawdown meters, loss streak and
    kill-switch distance, the account profile's MLL and verdict, the lockouts, a pause and the
    breakers. ``height`` (the pane's rows): when the lines do not fit, the least telling ones
    go first ("breakers: none", then the unlocked lockout notes, the loss streak, the account
    line), never the state, a meter, the MLL, a LOCKED lockout, a pause or an active breaker."""
    lines: list[tuple[int, Text]] = []   # (priority: higher stays longer, the line)

    def add(prio: int, text: str, style: str = "") -> None:
        lines.append((prio, Text(text, style=style)))

    head = Text()
    head.append(f"{r.state}", style=STATE_STYLE.get(r.state, "reverse bold"))
    reason = r.reason
    if reason.upper().startswith(r.state + ":"):  # "HALTED: why" would read HALTED HALTED: why
        reason = reason[len(r.state) + 1:].strip()
    if reason:
        head.append(" " + fit(reason, width - len(r.state) - 1))
    lines.append((9, head))
    add(8, f"day loss {meter(r.daily_loss_used_usd, r.daily_loss_limit_usd)} "
           f"{r.daily_loss_used_usd:.0f}/{r.daily_loss_limit_usd:.0f}")
    add(8, f"drawdown {meter(r.drawdown_usd, r.drawdown_limit_usd)} "
           f"{r.drawdown_usd:.0f}/{r.drawdown_limit_usd:.0f}")
    add(4, f"loss streak {r.consecutive_losses}  kill in ${r.kill_switch_distance_usd:,.0f}")
    if r.venue_rules and r.venue_distance_usd is not None:
        low = r.venue_distance_usd < 500.0
        add(8, f"MLL ${r.venue_liquidation_usd:,.0f} in ${r.venue_distance_usd:,.0f} max {r.venue_max_contracts}",
            "reverse bold" if low else "")
        failed = r.venue_status == "failed"
        lines.append((9 if failed else 5, Text(render_account_line(r, width), style="reverse bold" if failed else "")))
    for line in r.lockouts:  # issue 26: discipline lockouts
        locked = line.startswith("LOCKED")
        add(8 if locked else 3, fit(line, width), "reverse" if locked else "")
    last = Text()
    if r.pause_until_ns is not None:
        last.append(f"pause {fmt_countdown((r.pause_until_ns - now_ns) / 1e9)} ", style="reverse")
    last.append("breakers: " + (", ".join(r.breakers) if r.breakers else "none"))
    lines.append((9 if (r.breakers or r.pause_until_ns is not None) else 1, last))
    if height is not None and len(lines) > height:
        keep = sorted(range(len(lines)), key=lambda i: (-lines[i][0], i))[:max(1, height)]
        lines = [lines[i] for i in sorted(keep)]
    return Text("\n").join(ln for _p, ln in lines)


def render_broker(b: BrokerView, now_ns: int) -> Text:
    t = Text()
    if b.last_reconcile_ns is None:
        t.append("broker: never reconciled", style="reverse")
        return t
    age = (now_ns - b.last_reconcile_ns) / 1e6
    style = "" if b.result == "agree" else "reverse bold"
    t.append(f"broker {b.result.upper()}", style=style)
    t.append(f" {fmt_ms(age)} ago")
    # in agreement the journal's day matters more than the detail; in a mismatch, the detail
    extra = [b.journal, b.detail] if b.result == "agree" else [b.detail, b.journal]
    for line in extra:
        if line:
            t.append(f"\n{line}")
    return t


def render_logs(lines: tuple[LogLine, ...], min_level: str, n: int, width: int = 48) -> Text:
    """The last ``n`` records at or above ``min_level``, one line each: engine-clock date and
    time (New York), level letter, message; a line too long ends in an ellipsis."""
    keep = [ln for ln in lines if _LEVEL_NO.get(ln.level, 1) >= _LEVEL_NO[min_level]][-n:]
    t = Text(no_wrap=True, overflow="ellipsis")
    for i, ln in enumerate(keep):
        style = ("reverse red" if ln.level in ("ERROR", "CRITICAL")
                 else ("bold yellow" if ln.level == "WARNING" else ""))
        t.append(fit(f"{ny_time(ln.ts_ns, '%m-%d %H:%M')} {ln.level[0]} {' '.join(ln.message.split())}", width),
                 style=style)
        if i < len(keep) - 1:
            t.append("\n")
    if not keep:
        t.append(f"(no records at {min_level} or above)")
    return t
