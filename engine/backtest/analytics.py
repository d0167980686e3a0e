"""Trade analytics of a backtest or walk-forward run (issue 24; freqtrade's per-period and
exit-reason breakdowns, backtesting.py's stats, quantstats' tearsheet tables).

:func:`trade_analytics` returns JSON-ready summary figures and tables (pandas DataFrames):

- ``by_day`` / ``by_week`` / ``by_month`` / ``by_weekday``: trades grouped by the CME trading day
  of their EXIT bar (18:00 New York rule, ``BacktestResult.day``), its ISO week (``2025-W03``),
  month (``2025-01``) and weekday (Mon … Sun); ``by_hour``: by the New York hour of the exit.
  Columns: ``trades``, ``net_pnl`` ($), ``gross_pnl`` ($), ``win_rate`` (net > 0), ``avg_pnl`` ($).
- ``by_exit_reason``: the same columns plus ``avg_holding_min`` per exit reason
  (target / stop / eod_flatten / lockout / signal / risk).
- ``by_confidence``: the same columns by the model confidence at entry, buckets
  ``[0, .4) [.4, .5) … [.9, 1]`` and ``none`` (rule strategies without a confidence).
- ``trades``: per trade: entry/exit time (UTC), direction, contracts, net $, exit reason,
  confidence, ``holding_min`` (exit − entry, minutes), ``mae_ticks`` / ``mfe_ticks`` (maximum
  adverse / favourable excursion from the entry price, ticks ≥ 0) and ``mae_usd`` / ``mfe_usd``
  (× tick value × contracts). The excursions are read from the bars' high/low from the entry
  bar to the exit bar inclusive and bounded by the exit: a losing exit caps the adverse
  excursion at its own distance (the exit bar's range beyond a stop fill is not the trade's), a
  winning exit inside the entry bar caps the favourable one; never less than the exit's own
  distance. Bounds: the entry bar may include prices before the fill.
- ``streaks``: the lengths of every run of consecutive winning / losing trades (count of runs
  by length).
Summary: trades, net $, exposure (share of the bars from entry bar to exit bar, and of the run's
time, with a position), holding time (mean / median / max minutes), the longest winning and
losing streaks and the current one, the average MAE / MFE.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONF_EDGES = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0000001)
TABLES = ("by_day", "by_week", "by_month", "by_hour", "by_weekday", "by_exit_reason", "by_confidence",
          "trades", "streaks")


def _group(df, key: str):
    import pandas as pd

    if not len(df):
        return pd.DataFrame(columns=[key, "trades", "net_pnl", "gross_pnl", "win_rate", "avg_pnl"])
    g = df.groupby(key, sort=True)
    out = pd.DataFrame({"trades": g.size(), "net_pnl": g["net_pnl"].sum().round(2),
                        "gross_pnl": g["gross_pnl"].sum().round(2),
                        "win_rate": g["net_pnl"].apply(lambda x: float((x > 0).mean())).round(4),
                        "avg_pnl": g["net_pnl"].mean().round(2)})
    return out.reset_index()


def _excursions(tr, bars, tick_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(MAE ticks, MFE ticks) per trade from ``bars`` high/low between the entry and exit bars."""
    n = len(tr)
    mae, mfe = np.full(n, np.nan), np.full(n, np.nan)
    if bars is None or not n:
        return mae, mfe
    bts = np.asarray(bars.ts)
    hi, lo = np.asarray(bars.high, np.float64), np.asarray(bars.low, np.float64)
    i0 = np.searchsorted(bts, tr["entry_ts"].to_numpy(np.int64), side="right") - 1
    i1 = np.searchsorted(bts, tr["exit_ts"].to_numpy(np.int64), side="right") - 1
    px = tr["entry_price"].to_numpy(np.float64)
    xp = tr["exit_price"].to_numpy(np.float64)
    why = tr["exit_reason"].astype(str).to_numpy()
    d = np.array([1 if str(x).lower() in ("long", "1", "buy") else -1 for x in tr["direction"]], np.int64)
    for k in range(n):
        a, b = max(int(i0[k]), 0), max(int(i1[k]), int(i0[k]), 0)
        move = d[k] * (xp[k] - px[k]) / tick_size       # the exit's own excursion, ticks
        fav, adv = max(move, 0.0), max(-move, 0.0)
        if b > a:                                        # bars held whole: their full range
            up = (float(hi[a:b].max()) - px[k]) / tick_size
            down = (px[k] - float(lo[a:b].min())) / tick_size
            f, v = (up, down) if d[k] > 0 else (down, up)
            fav, adv = max(fav, f), max(adv, v)
        # the exit bar: a stop fill ends the adverse side at its price, a target fill the
        # favourable side; the other side may have been reached before the fill (bar range);
        # market exits fill at the open, so that bar adds nothing beyond the exit price
        if why[k] in ("stop", "target"):
            up = (float(hi[b]) - px[k]) / tick_size
            down = (px[k] - float(lo[b])) / tick_size
            f, v = (up, down) if d[k] > 0 else (down, up)
            if why[k] == "stop":
                fav = max(fav, f)
            else:
                adv = max(adv, v)
        mfe[k], mae[k] = max(fav, 0.0), max(adv, 0.0)
    return mae, mfe


def _streak_runs(net: np.ndarray) -> tuple[dict, dict, int]:
    """({length: runs} of winning streaks, same for losing, signed current streak)."""
    wins: dict = {}
    losses: dict = {}
    cur = 0
    for p in net:
        if p > 0:
            if cur < 0:
                losses[-cur] = losses.get(-cur, 0) + 1
                cur = 0
            cur += 1
        elif p < 0:
            if cur > 0:
                wins[cur] = wins.get(cur, 0) + 1
                cur = 0
            cur -= 1
        else:
            if cur > 0:
                wins[cur] = wins.get(cur, 0) + 1
            elif cur < 0:
                losses[-cur] = losses.get(-cur, 0) + 1
            cur = 0
    if cur > 0:
        wins[cur] = wins.get(cur, 0) + 1
    elif cur < 0:
        losses[-cur] = losses.get(-cur, 0) + 1
    return wins, losses, cur


def trade_analytics(trades: Any, ts: np.ndarray, day: np.ndarray, bars: Any = None, *, tick_size: float = 0.25,
                    tick_value: float = 1.25, bar_ns: int | None = None) -> dict:
    """The analytics of the module docstring. ``trades``: the trade DataFrame
    (:data:`engine.backtest.runner.TRADE_COLUMNS`, optionally ``fold``); ``ts`` / ``day``: the
    run's bar open times (int64 UTC ns) and CME trading days (``engine.calendar.day_number``);
    ``bars``: the bars the trades were made on (for MAE/MFE; None leaves them NaN); tick size
    (points) and tick value ($ per contract). Returns ``{"summary": dict, "tables": {name:
    DataFrame}}``."""
    import pandas as pd

    from engine.calendar import day_date

    tr = trades.reset_index(drop=True) if len(trades) else trades
    ts = np.asarray(ts, np.int64)
    day = np.asarray(day)
    n = len(tr)
    df = pd.DataFrame()
    if n:
        xi = np.clip(np.searchsorted(ts, tr["exit_ts"].to_numpy(np.int64), side="right") - 1, 0, len(ts) - 1)
        tday = [day_date(int(d)) for d in day[xi]]
        exit_ny = tr["exit_time"].dt.tz_convert("America/New_York")
        conf = tr["confidence"].to_numpy(np.float64)
        cb = np.digitize(np.nan_to_num(conf, nan=-1.0), CONF_EDGES) - 1
        labels = [f"{CONF_EDGES[i]:.1f}-{min(CONF_EDGES[i + 1], 1.0):.1f}" for i in range(len(CONF_EDGES) - 1)]
        df = pd.DataFrame({
            "net_pnl": tr["net_pnl"].to_numpy(np.float64), "gross_pnl": tr["gross_pnl"].to_numpy(np.float64),
            "day": [str(d) for d in tday],
            "week": [f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}" for d in tday],
            "month": [f"{d.year}-{d.month:02d}" for d in tday],
            "weekday": [f"{d.weekday()} {d.strftime('%a')}" for d in tday],
            "hour_ny": exit_ny.dt.hour.to_numpy(),
            "exit_reason": tr["exit_reason"].astype(str).to_numpy(),
            "confidence": [labels[i] if np.isfinite(c) and 0 <= i < len(labels) else "none" for c, i in zip(conf, cb)],
        })
    mae, mfe = _excursions(tr, bars, tick_size) if n else (np.zeros(0), np.zeros(0))
    hold = ((tr["exit_ts"].to_numpy(np.int64) - tr["entry_ts"].to_numpy(np.int64)) / 60e9) if n else np.zeros(0)
    contracts = tr["contracts"].to_numpy(np.float64) if n else np.zeros(0)
    per_trade = pd.DataFrame({
        "entry_time": tr["entry_time"] if n else [], "exit_time": tr["exit_time"] if n else [],
        "direction": tr["direction"] if n else [], "contracts": contracts,
        "net_pnl": tr["net_pnl"] if n else [], "exit_reason": tr["exit_reason"] if n else [],
        "confidence": tr["confidence"] if n else [], "holding_min": np.round(hold, 2),
        "mae_ticks": mae, "mfe_ticks": mfe, "mae_usd": np.round(mae * tick_value * contracts, 2),
        "mfe_usd": np.round(mfe * tick_value * contracts, 2)})
    if "fold" in tr.columns:
        per_trade.insert(0, "fold", tr["fold"].to_numpy())
    by_reason = _group(df, "exit_reason")
    if n:
        by_reason["avg_holding_min"] = by_reason["exit_reason"].map(
            pd.Series(hold).groupby(df["exit_reason"].to_numpy()).mean().round(2))
    by_weekday = _group(df, "weekday")
    if len(by_weekday):
        by_weekday["weekday"] = by_weekday["weekday"].str[2:]
    net = tr["net_pnl"].to_numpy(np.float64) if n else np.zeros(0)
    w, lo_, cur = _streak_runs(net)
    lens = sorted(set(w) | set(lo_))
    streaks = pd.DataFrame({"length": lens, "winning_runs": [w.get(k, 0) for k in lens],
                            "losing_runs": [lo_.get(k, 0) for k in lens]})
    # exposure: bars from the entry bar to the exit bar, and time in a position
    if n:
        i0 = np.searchsorted(ts, tr["entry_ts"].to_numpy(np.int64), side="right") - 1
        i1 = np.searchsorted(ts, tr["exit_ts"].to_numpy(np.int64), side="right") - 1
        held = np.zeros(len(ts) + 1, np.int64)
        np.add.at(held, np.clip(i0, 0, len(ts)), 1)
        np.add.at(held, np.clip(i1 + 1, 0, len(ts)), -1)
        exposure_bars = float((np.cumsum(held)[:-1] > 0).mean()) if len(ts) else 0.0
    else:
        exposure_bars = 0.0
    step = int(bar_ns) if bar_ns else (int(np.median(np.diff(ts))) if len(ts) > 1 else 60_000_000_000)
    span_ns = len(ts) * step
    summary = {
        "trades": int(n), "net_pnl": round(float(net.sum()), 2),
        "exposure_bars_pct": round(100 * exposure_bars, 2),
        "time_in_market_pct": round(100 * float(hold.sum() * 60e9) / span_ns, 2) if span_ns else 0.0,
        "holding_min_mean": round(float(hold.mean()), 2) if n else 0.0,
        "holding_min_median": round(float(np.median(hold)), 2) if n else 0.0,
        "holding_min_max": round(float(hold.max()), 2) if n else 0.0,
        "longest_win_streak": max(w) if w else 0, "longest_loss_streak": max(lo_) if lo_ else 0,
        "current_streak": int(cur),
        "mae_ticks_mean": round(float(np.nanmean(mae)), 2) if n and np.isfinite(mae).any() else None,
        "mfe_ticks_mean": round(float(np.nanmean(mfe)), 2) if n and np.isfinite(mfe).any() else None,
    }
    tables = {"by_day": _group(df, "day"), "by_week": _group(df, "week"), "by_month": _group(df, "month"),
              "by_hour": _group(df, "hour_ny"), "by_weekday": by_weekday, "by_exit_reason": by_reason,
              "by_confidence": _group(df, "confidence"), "trades": per_trade, "streaks": streaks}
    return {"summary": summary, "tables": tables}


def analytics_json(an: dict, max_trades: int | None = None) -> dict:
    """The analytics as a JSON-ready dict (``--json``): the summary and every table as a list of
    records (times as ISO text, NaN as null); ``max_trades`` caps the per-trade rows."""
    import json

    out: dict = {"summary": an["summary"], "tables": {}}
    for name, t in an["tables"].items():
        tt = t if (max_trades is None or name != "trades") else t.head(max_trades)
        out["tables"][name] = json.loads(tt.to_json(orient="records", date_format="iso"))
    return out
