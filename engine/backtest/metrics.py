"""Backtest metrics (R-BT-3) and drawdown analysis (R-BT-2).

Conventions:
- Daily returns: equity at the last bar of each CME trading day (18:00 NY rule) divided by the
  previous day's, minus 1 (the first day against the starting balance). Days without bars are
  absent (no zero-filling).
- Sharpe = mean(daily) / std(daily, ddof=1) × √252; Sortino = mean(daily) / downside deviation
  (root mean square of min(r, 0) over all days) × √252; both 0 when the denominator is 0.
- Annual return = (final / start)^(252 / days) − 1; Calmar = annual return / max drawdown
  (fraction of the peak equity); 0 when there is no drawdown.
- Max drawdown: the largest fall of bar-close equity from its running peak, in dollars and as a
  fraction of the peak; duration in bars and seconds from the peak to the recovery (or to the
  end when it never recovers).
- Win: net P&L > 0; loss: net P&L < 0. Profit factor = Σ wins / |Σ losses| (inf with no loss).
- P&L by hour: net P&L summed by the New York hour of the exit.
"""

from __future__ import annotations

import math

import numpy as np

ANNUAL_DAYS = 252


def drawdown(equity: np.ndarray, ts: np.ndarray | None = None, bar_ns: int = 60_000_000_000) -> dict:
    """Drawdown of an equity curve (dollars, float64 (n,)). Returns dict with ``series`` (dollars
    below the running peak, ≤ 0), ``max_dd`` (dollars, ≥ 0), ``max_dd_pct``, ``peak_bar``,
    ``trough_bar``, ``recovery_bar`` (-1 = not recovered), ``duration_bars``, ``duration_s``."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return {"series": eq, "max_dd": 0.0, "max_dd_pct": 0.0, "peak_bar": -1, "trough_bar": -1,
                "recovery_bar": -1, "duration_bars": 0, "duration_s": 0.0}
    peak = np.maximum.accumulate(eq)
    dd = eq - peak
    trough = int(np.argmin(dd))
    max_dd = float(-dd[trough])
    peak_bar = int(np.flatnonzero(eq[: trough + 1] == peak[trough])[0]) if max_dd > 0 else trough
    rec = np.flatnonzero(eq[trough:] >= peak[trough]) if max_dd > 0 else np.array([trough])
    recovery = int(trough + rec[0]) if rec.size else -1
    end = recovery if recovery >= 0 else len(eq) - 1
    dur_bars = end - peak_bar
    if ts is not None and len(ts):
        dur_s = (int(ts[end]) - int(ts[peak_bar])) / 1e9
    else:
        dur_s = dur_bars * bar_ns / 1e9
    # longest underwater stretch (bars) as well
    under = dd < 0
    longest = 0
    run = 0
    for u in under:
        run = run + 1 if u else 0
        longest = max(longest, run)
    return {"series": dd, "max_dd": max_dd, "max_dd_pct": max_dd / peak[trough] if peak[trough] > 0 else 0.0,
            "peak_bar": peak_bar, "trough_bar": trough, "recovery_bar": recovery,
            "duration_bars": int(dur_bars), "duration_s": float(dur_s), "longest_underwater_bars": longest}


def daily_equity(equity: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(trading days int32, equity at each day's last bar) for bars labelled with ``day``."""
    day = np.asarray(day)
    last = np.flatnonzero(np.concatenate([day[1:] != day[:-1], [True]])) if len(day) else np.array([], int)
    return day[last], np.asarray(equity)[last]


def _streaks(pnl: np.ndarray) -> tuple[int, int]:
    best_w = best_l = w = l = 0
    for p in pnl:
        if p > 0:
            w, l = w + 1, 0
        elif p < 0:
            w, l = 0, l + 1
        else:
            w = l = 0
        best_w, best_l = max(best_w, w), max(best_l, l)
    return best_w, best_l


def compute_metrics(trades, equity: np.ndarray, day: np.ndarray, starting_balance: float,
                    ts: np.ndarray | None = None) -> dict:
    """All R-BT-3 metrics as a flat dict of floats/ints (see module docstring). ``trades`` is
    the DataFrame of :func:`engine.backtest.runner.trades_frame`."""
    net = trades["net_pnl"].to_numpy(dtype=np.float64) if len(trades) else np.zeros(0)
    gross = trades["gross_pnl"].to_numpy(dtype=np.float64) if len(trades) else np.zeros(0)
    comm = float(trades["commission"].sum()) if len(trades) else 0.0
    slip = float(trades["slippage"].sum()) if len(trades) else 0.0
    days, deq = daily_equity(equity, day)
    prev = np.concatenate([[starting_balance], deq[:-1]])
    rets = deq / prev - 1.0 if len(deq) else np.zeros(0)
    sd = float(np.std(rets, ddof=1)) if len(rets) > 1 else 0.0
    mean = float(np.mean(rets)) if len(rets) else 0.0
    down = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2))) if len(rets) else 0.0
    sharpe = mean / sd * math.sqrt(ANNUAL_DAYS) if sd > 0 else 0.0
    sortino = mean / down * math.sqrt(ANNUAL_DAYS) if down > 0 else 0.0
    final = float(equity[-1]) if len(equity) else starting_balance
    ndays = max(len(deq), 1)
    growth = final / starting_balance if starting_balance > 0 else 0.0
    annual = growth ** (ANNUAL_DAYS / ndays) - 1.0 if growth > 0 else -1.0
    dd = drawdown(equity, ts)
    calmar = annual / dd["max_dd_pct"] if dd["max_dd_pct"] > 0 else 0.0
    wins, losses = net[net > 0], net[net < 0]
    pf = float(wins.sum() / -losses.sum()) if losses.size else (math.inf if wins.size else 0.0)
    sw, sl = _streaks(net)
    trade_days = len(np.unique(day)) if len(day) else 0
    by_day_pnl = np.diff(np.concatenate([[starting_balance], deq])) if len(deq) else np.zeros(0)
    active = by_day_pnl[by_day_pnl != 0]
    by_hour = {}
    if len(trades):
        hours = trades["exit_time"].dt.tz_convert("America/New_York").dt.hour.to_numpy()
        for h in range(24):
            m = hours == h
            if m.any():
                by_hour[h] = float(net[m].sum())
    return {
        "trades": int(len(net)),
        "net_pnl": float(net.sum()),
        "gross_pnl": float(gross.sum()),
        "commission": comm,
        "slippage": slip,
        "total_costs": comm + slip,
        "final_equity": final,
        "return_pct": (final / starting_balance - 1.0) * 100 if starting_balance else 0.0,
        "annual_return_pct": annual * 100,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar,
        "annualisation": f"daily returns × sqrt({ANNUAL_DAYS})",
        "max_drawdown": dd["max_dd"],
        "max_drawdown_pct": dd["max_dd_pct"] * 100,
        "max_drawdown_duration_bars": dd["duration_bars"],
        "max_drawdown_duration_days": dd["duration_s"] / 86400.0,
        "max_drawdown_recovered": dd["recovery_bar"] >= 0,
        "win_rate": float(len(wins) / len(net)) if len(net) else 0.0,
        "profit_factor": pf,
        "expectancy": float(net.mean()) if len(net) else 0.0,
        "gross_expectancy": float(gross.mean()) if len(gross) else 0.0,
        "avg_win": float(wins.mean()) if wins.size else 0.0,
        "avg_loss": float(losses.mean()) if losses.size else 0.0,
        "largest_win": float(wins.max()) if wins.size else 0.0,
        "largest_loss": float(losses.min()) if losses.size else 0.0,
        "max_win_streak": sw,
        "max_loss_streak": sl,
        "days": trade_days,
        "winning_days_pct": float((active > 0).mean() * 100) if active.size else 0.0,
        "trades_per_day": float(len(net) / trade_days) if trade_days else 0.0,
        "pnl_by_hour_ny": by_hour,
    }
