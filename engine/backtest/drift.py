"""Drift report (issue 26): a paper/live session from the journal against the kernel re-run on the
bars that session saw, trade by trade.

The re-run: the bars recorded in the journal (``bars`` table: the warm-up history and every bar
the session stepped), the session's settings (the report's ``settings``, else the caller's), the
same signals (the rule-based baseline of ``[backtest] baseline_lookback``, or a model checkpoint)
with entries masked over the warm-up bars (the session traded none there), through the one kernel
with the simulated venue's fill model (``[backtest] fill_model``, conservative by default).

Trades are matched by entry bar and side. For every pair: entry and exit price differences in
ticks (adverse > 0), the modelled slippage of each fill against the bar's open (entries) and the
fill models' stop/target level, the exit time difference (seconds) and exit reasons, and the P&L
difference (live − model, dollars after costs) explained by cause: ``entry_price``,
``exit_price`` (same exit bar and reason), ``exit_timing`` (another exit bar or reason: the
operator's flatten, a stop hit on another bar), ``size`` (contracts) and ``costs``. A trade in
only one of the two is listed with the reason: the other side was in a position (which), was in
its warm-up, or was flat and did not enter (risk state diverged, or no signal). The causes add
up to the total P&L difference exactly (``other`` holds any rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.calendar import ny_datetime

CAUSES = ("entry_price", "exit_price", "exit_timing", "size", "costs", "live_only", "model_only", "other")


@dataclass
class DriftRow:
    """One line of the report. ``kind``: ``matched``, ``live_only`` or ``model_only``; times UTC
    ns; prices points; ``*_ticks`` adverse-positive tick differences (live − model); ``pnl``
    dollars; ``causes`` cause → dollars of (live − model) net P&L."""

    kind: str
    entry_ts: int
    side: int
    live: dict | None
    model: dict | None
    entry_ticks: float = math.nan
    exit_ticks: float = math.nan
    live_entry_slip_ticks: float = math.nan
    model_entry_slip_ticks: float = math.nan
    exit_time_s: float = math.nan
    reason: str = ""
    causes: dict = field(default_factory=dict)

    def text(self) -> str:
        t = ny_datetime(self.entry_ts).strftime("%m-%d %H:%M")
        side = "long " if self.side > 0 else "short"
        if self.kind == "matched":
            a, b = self.live or {}, self.model or {}
            d = a["net_pnl"] - b["net_pnl"]
            return (f"{t} {side} entry {a['entry_price']:.2f} vs {b['entry_price']:.2f} ({self.entry_ticks:+.0f}t; "
                    f"slip {self.live_entry_slip_ticks:+.0f}t live / {self.model_entry_slip_ticks:+.0f}t model) · "
                    f"exit {a['exit_price']:.2f} {a['exit_reason']} vs {b['exit_price']:.2f} {b['exit_reason']} "
                    f"({self.exit_ticks:+.0f}t, {self.exit_time_s:+.0f} s) · P&L {a['net_pnl']:+.2f} vs "
                    f"{b['net_pnl']:+.2f} ({d:+.2f})" + (f" · {self.reason}" if self.reason else ""))
        x = self.live if self.kind == "live_only" else self.model
        assert x is not None
        who = "live only" if self.kind == "live_only" else "model only"
        return (f"{t} {side} {who}: {x['entry_price']:.2f} → {x['exit_price']:.2f} {x['exit_reason']} "
                f"P&L {x['net_pnl']:+.2f} · {self.reason}")


@dataclass
class DriftReport:
    """The comparison (module docstring). ``totals``: cause → dollars (live − model);
    ``live_net``/``model_net`` dollars after costs over the session's span."""

    session_id: int
    rows: list[DriftRow]
    live_net: float
    model_net: float
    totals: dict
    fill_model: str
    bars: int
    warm_bars: int

    def counts(self) -> dict:
        out = {"matched": 0, "live_only": 0, "model_only": 0}
        for r in self.rows:
            out[r.kind] += 1
        return out

    def line(self) -> str:
        """The one-line summary (the console prints it at the end of a session)."""
        c = self.counts()
        top = sorted(((k, v) for k, v in self.totals.items() if abs(v) >= 0.005), key=lambda kv: -abs(kv[1]))[:3]
        causes = ", ".join(f"{k} {v:+.2f}" for k, v in top) or "none"
        return (f"drift vs {self.fill_model} model: live ${self.live_net:+,.2f} vs ${self.model_net:+,.2f} "
                f"({self.live_net - self.model_net:+,.2f}); {c['matched']} matched, {c['live_only']} live only, "
                f"{c['model_only']} model only; by cause: {causes}")

    def to_dict(self) -> dict:
        return {"session": self.session_id, "fill_model": self.fill_model, "bars": self.bars,
                "warm_bars": self.warm_bars, "live_net": self.live_net, "model_net": self.model_net,
                "difference": self.live_net - self.model_net, "totals": self.totals, "counts": self.counts(),
                "rows": [{"kind": r.kind, "entry_ts": r.entry_ts,
                          "entry_ny": ny_datetime(r.entry_ts).strftime("%Y-%m-%d %H:%M"), "side": r.side,
                          "live": r.live, "model": r.model, "entry_ticks": _num(r.entry_ticks),
                          "exit_ticks": _num(r.exit_ticks), "live_entry_slip_ticks": _num(r.live_entry_slip_ticks),
                          "model_entry_slip_ticks": _num(r.model_entry_slip_ticks),
                          "exit_time_s": _num(r.exit_time_s), "reason": r.reason, "causes": r.causes}
                         for r in self.rows]}


def _num(x: float) -> float | None:
    return None if x != x else float(x)


class DriftError(ValueError):
    """The session cannot be compared (no such session, no recorded bars)."""


def _trade_dict(t: Any) -> dict:
    g: Any = t.get if isinstance(t, dict) else (lambda k, d=None: getattr(t, k, d))
    ent = g("entry_ns")
    if ent is None:
        ent = g("entry_ts")
    ex = g("exit_ns")
    if ex is None:
        ex = g("exit_ts")
    return {"entry_ts": int(ent), "exit_ts": int(ex), "direction": int(g("direction")),
            "contracts": int(g("contracts")), "entry_price": float(g("entry_price")),
            "exit_price": float(g("exit_price")), "commission": float(g("commission") or 0.0),
            "net_pnl": float(g("net_pnl")), "exit_reason": str(g("exit_reason"))}


def compare(session_id: int, live_trades: list, model_trades: list, bars: Any, warm: int, *, tick: float,
            point_value: float, bar_ns: int, fill_model: str) -> DriftReport:
    """Match ``live_trades`` (journal rows) with ``model_trades`` (:class:`TradeRecord` of the
    re-run) over ``bars`` (the recorded bars; the first ``warm`` are warm-up). See the module
    docstring. Entry bars are the bars whose OPEN time equals the entry fill's bar."""
    live = sorted((_trade_dict(t) for t in live_trades), key=lambda d: d["entry_ts"])
    first_live = int(bars.ts[warm]) if len(bars.ts) > warm else 0
    model = sorted((_trade_dict(t) for t in model_trades if int(t.entry_ts) >= first_live),
                   key=lambda d: d["entry_ts"])

    def bar_of(ts: int) -> int:
        return int(ts) // bar_ns * bar_ns

    def key(d: dict) -> tuple[int, int]:
        return bar_of(d["entry_ts"]), d["direction"]

    mk = {key(d): d for d in model}
    lk = {key(d): d for d in live}
    ts_list = bars.ts

    def open_at(ts: int) -> float:
        j = int(np.searchsorted(ts_list, bar_of(ts)))
        return float(bars.open[j]) if j < len(ts_list) and int(ts_list[j]) == bar_of(ts) else math.nan

    def holding(trades: list, ts: int) -> dict | None:
        """The trade of ``trades`` open when an entry filled at ``ts`` (entered before, not yet out)."""
        for d in trades:
            if d["entry_ts"] < ts <= d["exit_ts"]:
                return d
        return None

    rows: list[DriftRow] = []
    totals = dict.fromkeys(CAUSES, 0.0)
    for k in sorted(set(mk) | set(lk)):
        a, b = lk.get(k), mk.get(k)
        side = k[1]
        if a is not None and b is not None:
            q = a["contracts"]
            e_t = side * (a["entry_price"] - b["entry_price"]) / tick
            x_t = -side * (a["exit_price"] - b["exit_price"]) / tick
            op = open_at(a["entry_ts"])
            same_exit = bar_of(a["exit_ts"]) == bar_of(b["exit_ts"]) and a["exit_reason"] == b["exit_reason"]
            per_b = (b["net_pnl"] + b["commission"]) / b["contracts"]   # model's gross per contract
            causes = {"entry_price": -e_t * tick * point_value * q}
            exit_d = -x_t * tick * point_value * q
            causes["exit_price" if same_exit else "exit_timing"] = exit_d
            causes["size"] = (q - b["contracts"]) * per_b
            causes["costs"] = -(a["commission"] - b["commission"])
            diff = a["net_pnl"] - b["net_pnl"]
            causes["other"] = diff - sum(causes.values())
            why = ""
            if not same_exit:
                why = (f"exit {a['exit_reason']} at {ny_datetime(a['exit_ts']).strftime('%H:%M')} vs "
                       f"{b['exit_reason']} at {ny_datetime(b['exit_ts']).strftime('%H:%M')}")
                if a["exit_reason"] in ("flatten", "risk"):
                    why += " (operator or risk action in the session)"
            r = DriftRow("matched", a["entry_ts"], side, a, b, e_t, x_t,
                         side * (a["entry_price"] - op) / tick if op == op else math.nan,
                         side * (b["entry_price"] - op) / tick if op == op else math.nan,
                         (a["exit_ts"] - b["exit_ts"]) / 1e9, why, causes)
        elif a is not None:
            r = _unmatched("live_only", a, holding(model, a["entry_ts"]), "the model",
                           "risk state or signal diverged")
        else:
            assert b is not None
            r = _unmatched("model_only", b, holding(live, b["entry_ts"]), "the session",
                           "risk state, operator pause or halt diverged")
        for c, v in r.causes.items():
            totals[c] += float(v)
        rows.append(r)
    live_net = float(sum(d["net_pnl"] for d in live))
    model_net = float(sum(d["net_pnl"] for d in model))
    return DriftReport(session_id, rows, live_net, model_net, totals, fill_model, len(bars.ts) - warm, warm)


def _unmatched(kind: str, x: dict, other: dict | None, who: str, flat_why: str) -> DriftRow:
    """A trade taken on one side only (``kind`` live_only / model_only), with why the other
    side (``who``) did not take it: it held ``other``, or it was flat and did not enter."""
    if other is not None:
        why = (f"{who} was in a {'long' if other['direction'] > 0 else 'short'} position "
               f"({ny_datetime(other['entry_ts']).strftime('%H:%M')}→"
               f"{ny_datetime(other['exit_ts']).strftime('%H:%M')})")
    else:
        why = f"{who} was flat and did not enter ({flat_why})"
    sign = 1.0 if kind == "live_only" else -1.0
    return DriftRow(kind, x["entry_ts"], x["direction"], x if kind == "live_only" else None,
                    x if kind == "model_only" else None, reason=why, causes={kind: sign * x["net_pnl"]})


def drift_session(journal: Any, session_id: int | None, settings: Any, *, model: Any = None,
                  fill_model: str | None = None) -> DriftReport:
    """Load session ``session_id`` (None: the newest paper/live session with recorded bars) from
    ``journal`` (:class:`engine.journal.Journal`), re-run the kernel on its bars and compare
    (module docstring). ``settings``: used when the session's report carries none. Raises
    :class:`DriftError` naming the problem."""
    import json

    from engine.backtest.runner import run_backtest
    from engine.config import _apply
    from engine.data.bars import Bars
    from engine.instruments import spec as instrument_spec
    from engine.strategy import ModelStrategy, strategy_by_name

    sessions = journal.by_session()
    if session_id is None:
        cands = [s["id"] for s in sessions if journal.bars(int(s["id"]))]
        if not cands:
            raise DriftError(f"journal {journal.path}: no session with recorded bars (sessions before issue 26 "
                             "did not record them)")
        session_id = int(cands[-1])
    row = next((s for s in sessions if int(s["id"]) == int(session_id)), None)
    if row is None:
        raise DriftError(f"journal {journal.path}: no session {session_id}")
    recs = journal.bars(int(session_id))
    if not recs:
        raise DriftError(f"journal {journal.path}: session {session_id} has no recorded bars")
    rep_text = journal._rows("SELECT report FROM sessions WHERE id = ?", (int(session_id),))[0]["report"]
    if rep_text:
        doc = json.loads(rep_text).get("settings")
        if doc:
            doc = {k: v for k, v in doc.items() if k not in ("secrets",)}
            settings = _apply(type(settings)(), doc, f"journal session {session_id} settings")
    sym = str(row["symbol"] or settings.instrument.symbol)
    ts = np.array([r["ts_ns"] for r in recs], dtype=np.int64)
    col = {k: np.array([float(r[k]) if r[k] is not None else math.nan for r in recs]) for k in
           ("open", "high", "low", "close", "volume")}
    bar_ns = int(np.min(np.diff(ts))) if len(ts) > 1 else 60_000_000_000
    bars = Bars(ts, col["open"], col["high"], col["low"], col["close"], col["volume"], sym, bar_ns,
                f"journal session {session_id}")
    warm = int(sum(1 for r in recs if r["warm"]))
    strat = ModelStrategy(model) if model is not None else strategy_by_name(
        "baseline", lookback=settings.backtest.baseline_lookback)
    import dataclasses

    sig = strat.signals(bars)
    d = np.array(sig.direction, copy=True)
    d[:warm] = 0   # the session never traded on its warm-up bars
    sig = dataclasses.replace(sig, direction=d)
    fill = fill_model or settings.backtest.fill_model
    res = run_backtest(bars, sig, settings, fill_model=fill, strategy_name=strat.name)
    sp = instrument_spec(sym)
    live = journal.trades(session=int(session_id))
    return compare(int(session_id), live, list(res.records), bars, warm, tick=float(sp.tick_size),
                   point_value=float(sp.point_value), bar_ns=bar_ns, fill_model=fill)
