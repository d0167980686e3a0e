"""Backtest report files (R-BT-2, R-BT-3) written to an output directory:

- ``trades.csv``: the trade log (one row per round trip, :data:`runner.TRADE_COLUMNS`);
- ``equity.csv``: per bar: UTC time, equity, drawdown (dollars);
- ``metrics.json``: every metric of :func:`metrics.compute_metrics` plus run facts;
- ``report.md``: the metrics table and P&L by New York hour;
- ``equity.png``: equity and drawdown chart; ``pnl_by_hour.png``: net P&L by NY hour
  (matplotlib, Agg backend);
- the trade analytics (:func:`write_analytics`): ``tables/*.csv`` (P&L by day, week, month,
  hour, weekday, exit reason and confidence bucket; per-trade MAE/MFE and holding time;
  streaks), ``daily_pnl_hist.png``, ``mae_mfe.png`` and the self-contained ``report.html``.
All files are written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path
from engine.backtest.metrics import drawdown, result_metrics
from engine.runtime.snapshot import money


def _atomic(path: Path, write) -> None:
    """``write(tmp_path)`` then the temporary file replaces ``path`` (:func:`engine.atomic.atomic_path`)."""
    with atomic_path(path) as tmp:
        write(tmp)


def _save_png(fig, path: Path) -> Path:
    """Lay out, write ``fig`` as a 90-dpi PNG atomically, close it; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    _atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return path


def _clean(v):
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _clean_doc(v):
    """:func:`_clean` through lists too (the account verdict's failures and liquidations)."""
    if isinstance(v, list):
        return [_clean_doc(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _clean_doc(x) for k, x in v.items()}
    return _clean(v)


ACCOUNT_KINDS = ("account_drawdown", "kill_switch", "min_balance")
_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _ny(ts_ns: int) -> str:
    from engine.calendar import ny_datetime

    return ny_datetime(int(ts_ns)).strftime("%Y-%m-%d %H:%M NY")


def refusal_kinds(refused: dict) -> dict:
    """Refusal counts grouped by the shape of their reason: every number of the reason replaced
    by ``#`` ("risk too small for one contract (0 after base): budget $#, # ticks × $# = $# per
    contract"), most frequent first. ``refused`` is :attr:`BacktestResult.refused` (reason → count)."""
    c: Counter = Counter()
    for reason, n in refused.items():
        c[_NUM.sub("#", str(reason))] += int(n)
    return dict(c.most_common())


def refusal_ranges(refused: dict) -> dict:
    """The kinds of :func:`refusal_kinds` as readable text: each ``#`` replaced by the amounts
    the reasons of that kind carried, one value when they all agree, else ``lo–hi`` (as printed
    in the reasons: "risk $12.50–$41.25 per contract (worst-case slippage) exceeds the
    $0.40–$9.90 left of the daily loss limit"). Returns text → count, most frequent first."""
    groups: dict[str, list[list[str]]] = {}
    first: dict[str, str] = {}
    counts: Counter = Counter()
    for reason, n in refused.items():
        text = str(reason)
        key = _NUM.sub("#", text)
        groups.setdefault(key, []).append(_NUM.findall(text))
        first.setdefault(key, text)
        counts[key] += int(n)
    out: dict = {}
    for key, n in counts.most_common():
        rows = groups[key]
        values = []
        for i in range(len(rows[0])):
            col = [r[i] for r in rows]
            lo = min(col, key=lambda v: float(v.replace(",", "")))
            hi = max(col, key=lambda v: float(v.replace(",", "")))
            values.append((lo, hi))
        text = first[key]
        it = iter(values)

        def ranged(m: re.Match) -> str:
            lo, hi = next(it)
            if float(lo.replace(",", "")) == float(hi.replace(",", "")):
                return lo
            unit = "$" if m.start() > 0 and text[m.start() - 1] == "$" else ""
            return f"{lo}–{unit}{hi}"

        out[_NUM.sub(ranged, text)] = n
    return out


def halts_doc(result) -> dict:
    """The halts, blocks, pauses and refusals of a run as one JSON-ready dict: ``research``
    (bool), ``halts`` (each with ``ts_ns``, ``kind``, ``reason``, ``resumed_ns`` and the NY times
    as text), ``halt_counts`` (kind → count), ``refused_total``, ``refused`` (reason → count) and
    ``refused_by_kind`` (:func:`refusal_kinds`)."""
    halts = []
    for h in getattr(result, "halts", []):
        d = dict(h)
        d["time_ny"] = _ny(h["ts_ns"])
        d["resumed_ny"] = _ny(h["resumed_ns"]) if h.get("resumed_ns") is not None else None
        halts.append(d)
    return {"research": bool(getattr(result, "research", False)), "halts": halts,
            "halt_counts": dict(Counter(h["kind"] for h in halts)),
            "refused_total": int(sum(result.refused.values())), "refused": dict(result.refused),
            "refused_by_kind": refusal_kinds(result.refused)}


def halt_measure_line(m: dict) -> str | None:
    """One line saying what a halted run's metrics measured (the span and the days until the
    halt, with their Sharpe, and the untraded remainder), or None for a run that was not stopped
    (``m``: :func:`engine.backtest.metrics.compute_metrics` with ``halt_ns``)."""
    if not m or not m.get("halted_at"):
        return None
    return (f"stopped by the halt of {m['halted_at']}: untraded remainder {m['untraded_days']} trading days; "
            f"Sharpe {m['sharpe_until_halt']:.2f} over the {m['days_until_halt']} days until the halt, "
            f"{m['sharpe']:.2f} over the span of {m['days_span']} days")


def summary_text(result, max_refusals: int = 5, metrics: dict | None = None) -> str:
    """Plain-text summary of what stopped or limited trading in a backtest, one fact a line
    (CLI output, report.md, the console's backtest screen):

    - research mode on/off and how many account-level halts it passed;
    - each account-level halt: ``halted 2024-12-09 14:02 NY: account drawdown $203.10 … ≥
      $200.00: manual review; no trades after`` (or ``; resumed 2024-12-10 09:30 NY``);
    - counts of daily-loss / daily-drawdown blocks and consecutive-loss pauses;
    - the discipline lockouts that started (``lockouts max trades 3, event 1 (first …)``);
    - the refused entries: total and the ``max_refusals`` most frequent kinds of reason.
    """
    doc = halts_doc(result)
    lines = []
    acct = [h for h in doc["halts"] if h["kind"] in ACCOUNT_KINDS]
    if doc["research"]:
        lines.append(f"research mode ON: {len(acct)} account-level halt(s) recorded and lifted at the "
                     "next RTH open (a live account would have stopped at the first)")
    for h in acct:
        tail = f"resumed {h['resumed_ny']}" if h["resumed_ny"] else "no trades after"
        lines.append(f"halted {h['time_ny']}: {h['reason']}; {tail}")
    if not acct:
        lines.append("no account-level halt")
    measured = halt_measure_line(metrics) if metrics is not None else None
    if measured:
        lines.append(measured)
    hc = doc["halt_counts"]
    lines.append(f"daily loss blocks {hc.get('daily_loss', 0)}, daily drawdown blocks "
                 f"{hc.get('daily_drawdown', 0)}, consecutive-loss pauses {hc.get('pause', 0)}")
    locks = [h for h in doc["halts"] if h["kind"] == "lockout"]  # issue 26: discipline lockouts
    if locks:
        kinds = Counter(str(h["reason"]).split(":", 1)[0] for h in locks)
        lines.append("lockouts " + ", ".join(f"{k.removeprefix('lockout ')} {n}" for k, n in sorted(kinds.items()))
                     + f" (first {locks[0]['time_ny']}: {locks[0]['reason']})")
    lines.append(f"entries refused: {doc['refused_total']}")
    for reason, n in list(refusal_ranges(doc["refused"]).items())[:max_refusals]:
        lines.append(f"  {n:>6} × {reason}")
    return "\n".join(lines)


def verdict_text(account: dict | None) -> str:
    """The account verdict as text, one fact a line (CLI, report.md, the console's backtest
    screen); ``account`` is :attr:`BacktestResult.account` (with ``pass_probability`` when a
    Monte Carlo ran). Empty for ``rules = "none"``."""
    if not account:
        return ""
    a, name = account, account.get("profile", "")
    st = a.get("status")
    if st == "failed":
        liq = [x for x in a.get("liquidations") or [] if x["ts_ns"] == a.get("ts_ns")]
        at = f"; liquidated at {liq[0]['price']:.2f}" if liq else ""
        tail = "; research mode went on with a new attempt" if a.get("research") else "; no trade after"
        lines = [f"account {name}: FAILED on {a['date']} by {a['rule']}: balance {money(a['balance'])}, "
                 f"level {money(a['level'])}{at}{tail}"]
    elif st == "passed":
        lines = [f"account {name}: PASSED on {a['date']} after {a['trading_days']} trading days: profit "
                 f"{money(a['profit'])} ≥ target {money(a['target'])}, best day {money(a['best_day'])} = "
                 f"{100 * a['best_day_share']:.1f}% of the profit"
                 + (f" ≤ {100 * a['consistency_share']:.0f}%" if a.get("consistency_share") else "")]
    else:
        tgt = (f"{money(a['to_target'])} to the target {money(a['target'])}" if a.get("to_target") is not None
               else "no profit target")
        share = a.get("best_day_share")
        sh = f"; best day {100 * share:.1f}% of the profit" if share is not None else ""
        lines = [f"account {name}: OPEN: profit {money(a['profit'])}, {tgt}; {money(a['to_mll'])} above the "
                 f"MLL {money(a['mll_level'])}{sh}"]
        if a.get("stalled"):
            since = f" (last on {a['last_trade_day']})" if a.get("last_trade_day") else ""
            lines.append(f"STALLED: no trade in the last {a['idle_days']} trading days{since}; the MLL entry cap "
                         f"refused {a['mll_refused']:,} entries: the account is open because it stopped trading "
                         "([account] mll_entry_cap = false lets the venue liquidate instead)")
    fails = a.get("failures") or []
    if fails and a.get("research"):
        lines.append(f"research mode: {len(fails)} failure(s), each followed by a new attempt:")
        lines += [f"  attempt {f['attempt']}: failed {f['date']} by {f['rule']}: balance {money(f['balance'])}, "
                  f"level {money(f['level'])}" for f in fails]
    mc = a.get("pass_probability")
    if mc:
        lines.append(pass_probability_text(mc))
    return "\n".join(lines)


def pass_probability_text(mc: dict) -> str:
    """One or two lines of a Monte Carlo pass probability
    (:func:`engine.research.montecarlo.pass_probability`'s dict)."""
    def med(x):
        return "-" if x is None else f"{x:g}"
    line = (f"P(pass) {100 * mc['p_pass']:.1f}%, P(fail) {100 * mc['p_fail']:.1f}%, open "
            f"{100 * mc['p_open']:.1f}% over {mc['paths']:,} paths of {mc['horizon_days']} trading days "
            f"(block {mc['block_days']}, seed {mc['seed']}); median days to pass "
            f"{med(mc['median_days_to_pass'])}, to fail {med(mc['median_days_to_fail'])}"
            + (f"; PROVISIONAL: {mc['traded_days']} traded days < 30" if mc["provisional"] else ""))
    if "expected_value" in mc:
        line += f"\nexpected value of an attempt: {money(mc['expected_value'])}"
    return line


def write_analytics(an: dict, out_dir: str | Path, *, title: str, metrics: dict, equity: np.ndarray,
                    ts: np.ndarray, notes: list[str] | None = None, equity_png: Path | None = None) -> dict:
    """Write the trade analytics (:func:`engine.backtest.analytics.trade_analytics`) of a run into
    ``out_dir``: ``tables/<name>.csv`` for every table, ``daily_pnl_hist.png`` (histogram of the
    daily net P&L), ``mae_mfe.png`` (MAE vs MFE per trade, winners green, losers red),
    ``pnl_by_hour.png`` (net P&L by NY exit hour), ``equity.png`` (equity and drawdown, unless
    ``equity_png`` is given) and ``report.html``: ONE self-contained file (images embedded as
    base64 PNG, no external resource) with ``title``, the run's trade count and net P&L, the
    ``notes`` (halts, refusals, abstain message), the metrics, the summary and every table.
    Returns {name: path}; files written atomically."""
    import base64
    import html as _html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    paths: dict = {}
    for name, t in an["tables"].items():
        p = out / "tables" / f"{name}.csv"
        _atomic(p, lambda tmp, t=t: t.to_csv(tmp, index=False))
        paths[f"table_{name}"] = p
    if equity_png is None:
        dd = drawdown(equity, ts)
        tt = pd.to_datetime(ts, utc=True)
        step = max(1, len(tt) // 5000)
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=[3, 1])
        a1.plot(tt[::step], equity[::step], lw=0.8)
        a1.set_ylabel("equity ($)")
        a1.set_title(f"{title} · net ${metrics.get('net_pnl', 0.0):,.2f}")
        a2.fill_between(tt[::step], dd["series"][::step], 0, color="tab:red", alpha=0.5)
        a2.set_ylabel("drawdown ($)")
        equity_png = _save_png(fig, out / "equity.png")
    paths["equity_png"] = equity_png
    by_day = an["tables"]["by_day"]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.hist(by_day["net_pnl"].to_numpy(np.float64) if len(by_day) else [0.0], bins=40, color="tab:blue")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("net P&L per trading day with trades ($)")
    ax.set_ylabel("days")
    paths["daily_pnl_hist_png"] = _save_png(fig, out / "daily_pnl_hist.png")
    tr = an["tables"]["trades"]
    fig, ax = plt.subplots(figsize=(6, 5))
    if len(tr):
        win = tr["net_pnl"].to_numpy(np.float64) > 0
        ax.scatter(tr["mae_ticks"][win], tr["mfe_ticks"][win], s=8, c="tab:green", label="winners")
        ax.scatter(tr["mae_ticks"][~win], tr["mfe_ticks"][~win], s=8, c="tab:red", label="losers")
        ax.legend()
    ax.set_xlabel("MAE (ticks)")
    ax.set_ylabel("MFE (ticks)")
    paths["mae_mfe_png"] = _save_png(fig, out / "mae_mfe.png")
    bh = an["tables"]["by_hour"]
    fig, ax = plt.subplots(figsize=(8, 3))
    vals = bh["net_pnl"].to_numpy(np.float64) if len(bh) else np.zeros(0)
    ax.bar(bh["hour_ny"].to_numpy() if len(bh) else [], vals, color=["tab:green" if v >= 0 else "tab:red" for v in vals])
    ax.set_xlabel("exit hour (New York)")
    ax.set_ylabel("net P&L ($)")
    paths["pnl_by_hour_png"] = _save_png(fig, out / "pnl_by_hour.png")

    def img(key: str) -> str:
        data = base64.b64encode(Path(paths[key]).read_bytes()).decode("ascii")
        return f'<img alt="{key}" src="data:image/png;base64,{data}">'

    esc = _html.escape
    sm = an["summary"]
    mrows = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(f'{v:,.4g}' if isinstance(v, float) else str(v))}</td></tr>"
                    for k, v in metrics.items() if not isinstance(v, dict))
    srows = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(str(v))}</td></tr>" for k, v in sm.items())
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f"<p class='headline'>{sm['trades']} trades · net P&amp;L ${sm['net_pnl']:,.2f}</p>"]
    if notes:
        parts.append("<pre>" + esc("\n".join(notes)) + "</pre>")
    parts += [img("equity_png"), img("daily_pnl_hist_png"), img("mae_mfe_png"), img("pnl_by_hour_png"),
              "<h2>Metrics</h2><table>", mrows, "</table><h2>Trade summary</h2><table>", srows, "</table>"]
    for name, t in an["tables"].items():
        shown = t.head(500) if name == "trades" else t
        more = f" (first 500 of {len(t)}; all in tables/trades.csv)" if len(t) > len(shown) else ""
        parts.append(f"<h2>{esc(name.replace('_', ' '))}{esc(more)}</h2>")
        parts.append(shown.to_html(index=False, na_rep="", float_format=lambda x: f"{x:,.2f}"))
    parts.append("</body></html>")
    p = out / "report.html"
    _atomic(p, lambda tmp: tmp.write_text("".join(parts), encoding="utf-8"))
    paths["html"] = p
    return paths


def write_report(result, out_dir: str | Path, metrics: dict | None = None, *, bars=None,
                 analytics: dict | None = None, notes: list[str] | None = None) -> dict:
    """Write the report files for a :class:`runner.BacktestResult`; returns {name: path}:
    the files of the module docstring plus the trade analytics of :func:`write_analytics`
    (``analytics`` from :func:`engine.backtest.analytics.trade_analytics`, computed here from
    ``bars`` when not given; without bars MAE/MFE are left empty). ``notes``: extra lines for
    the HTML report (warnings, the model's abstain message).
    Raises ``OSError`` naming the directory when it cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = metrics or result_metrics(result)
    paths = {}
    p = out / "trades.csv"
    _atomic(p, lambda t: result.trades.to_csv(t, index=False))
    paths["trades"] = p
    dd = drawdown(result.equity, result.ts)
    eq_df = pd.DataFrame({"time": pd.to_datetime(result.ts, utc=True), "equity": result.equity,
                          "drawdown": dd["series"]})
    p = out / "equity.csv"
    _atomic(p, lambda t: eq_df.to_csv(t, index=False))
    paths["equity"] = p
    doc = {"strategy": result.strategy, "fill_model": result.fill_model, "bars": result.bars,
           "steps": result.steps, "elapsed_s": result.elapsed_s,
           "bars_per_second": result.bars_per_second, "metrics": _clean(m),
           "alerts": [list(a) for a in result.alerts][:100], **halts_doc(result),
           "account": _clean_doc(getattr(result, "account", None))}
    p = out / "metrics.json"
    _atomic(p, lambda t: t.write_text(json.dumps(doc, indent=2, allow_nan=False)))
    paths["metrics"] = p
    # charts
    t = pd.to_datetime(result.ts, utc=True)
    step = max(1, len(t) // 5000)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=[3, 1])
    a1.plot(t[::step], result.equity[::step], lw=0.8)
    a1.set_ylabel("equity ($)")
    a1.set_title(f"{result.strategy} · fill {result.fill_model} · net ${m['net_pnl']:,.2f}")
    a2.fill_between(t[::step], dd["series"][::step], 0, color="tab:red", alpha=0.5)
    a2.set_ylabel("drawdown ($)")
    paths["equity_png"] = _save_png(fig, out / "equity.png")
    fig, ax = plt.subplots(figsize=(8, 3))
    hrs = m["pnl_by_hour_ny"]
    ax.bar(list(hrs.keys()), list(hrs.values()), color=["tab:green" if v >= 0 else "tab:red" for v in hrs.values()])
    ax.set_xlabel("exit hour (New York)")
    ax.set_ylabel("net P&L ($)")
    paths["pnl_by_hour_png"] = _save_png(fig, out / "pnl_by_hour.png")
    lines = [f"# Backtest report: {result.strategy}", "",
             f"fill model {result.fill_model}; {result.bars:,} bars; {result.steps:,} kernel steps; "
             f"{result.elapsed_s:.2f} s", ""]
    if getattr(result, "account", None):
        lines += ["## Account verdict", "", "```", verdict_text(result.account), "```", ""]
    lines += ["## Halts, blocks and refusals", "", "```",
             summary_text(result, max_refusals=20, metrics=m), "```", "", "| metric | value |", "|---|---|"]
    for k, v in m.items():
        if k == "pnl_by_hour_ny":
            continue
        lines.append(f"| {k} | {v:,.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines += ["", "## Net P&L by hour (New York, exit time)", "", "| hour | net P&L |", "|---|---|"]
    lines += [f"| {h:02d} | {v:,.2f} |" for h, v in hrs.items()]
    lines += ["", "![equity](equity.png)", "", "![pnl by hour](pnl_by_hour.png)", ""]
    p = out / "report.md"
    _atomic(p, lambda tmp: tmp.write_text("\n".join(lines)))
    paths["report"] = p
    if analytics is None:
        from engine.backtest.analytics import trade_analytics

        analytics = trade_analytics(result.trades, result.ts, result.day, bars)
    more = write_analytics(analytics, out, title=f"Backtest report: {result.strategy} · fill {result.fill_model}",
                           metrics=m, equity=result.equity, ts=result.ts,
                           notes=(verdict_text(getattr(result, "account", None)).splitlines()
                                  + summary_text(result, max_refusals=20, metrics=m).splitlines() + list(notes or [])),
                           equity_png=paths["equity_png"])
    more.pop("pnl_by_hour_png", None)  # the same chart as above, written again from the table
    paths.update(more)
    return paths
