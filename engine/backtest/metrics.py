"""Backtest metrics (R-BT-3) and drawdown analysis (R-BT-2).

Ratios come from DOLLARS, never from compounded equity returns (issue 24: a research run whose
equity fell below zero showed Sharpe +1.0 on a $6,316 loss):

- Daily P&L: the change of bar-close equity over each CME trading day (18:00 NY rule; the first
  day against the starting balance), dollars. Days without bars are absent (no zero-filling);
  days with bars but no trade count with $0.
- Daily return r_d = daily P&L / C, where C = ``starting_balance`` (the account's capital,
  ``[account] starting_capital``), fixed: no compounding, so the sign of every ratio is the sign
  of the net P&L (Σ daily P&L = final equity − C).
- Sharpe = mean(r) / std(r, ddof=1) × √252. Sortino = mean(r) / DD × √252 with the downside
  deviation DD = √(mean(min(r, 0)²)) over all days (target 0). These are exactly
  ``empyrical.sharpe_ratio`` / ``empyrical.sortino_ratio`` of r (cross-checked in
  tests/test_metrics_dollars.py). Both 0 when the denominator is 0 or fewer than 2 days.
- Annual return = mean(r) × 252 (simple, on C); Calmar = annual P&L / max drawdown $
  = mean(daily P&L) × 252 / max drawdown $ (0 when there is no drawdown). Same sign as the net.
- Max drawdown: the largest fall of bar-close equity from its running peak, in dollars and as a
  fraction of the peak; duration in bars and seconds from the peak to the recovery (or to the
  end when it never recovers).
- Halted runs (an account-level halt not lifted, ``halt_ns``): every ratio is given twice,
  labelled: over the SPAN (every trading day of the data, the days after the halt with $0) and
  over the days UNTIL THE HALT (``*_until_halt``); ``halted_at`` (NY text), ``halt_day``,
  ``untraded_days`` (trading days after the halt's day) and ``days_span`` name what was measured.
- Win: net P&L > 0; loss: net P&L < 0. Profit factor = Σ wins / |Σ losses| (inf with no loss).
- P&L by hour: net P&L summed by the New York hour of the exit.
"""

from __future__ import annotations

import math

import numpy as np

ANNUAL_DAYS = 252
ACCOUNT_HALT_KINDS = ("account_drawdown", "kill_switch", "min_balance")


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


def daily_pnl(equity: np.ndarray, day: np.ndarray, starting_balance: float) -> tuple[np.ndarray, np.ndarray]:
    """(trading days int32 (d,), dollar P&L of each day float64 (d,)): the change of the last
    bar-close equity of each day, the first day against ``starting_balance``."""
    days, deq = daily_equity(equity, day)
    if not len(deq):
        return days, np.zeros(0)
    return days, np.diff(np.concatenate([[float(starting_balance)], np.asarray(deq, np.float64)]))


def dollar_ratios(pnl: np.ndarray, capital: float, max_dd: float) -> dict:
    """Sharpe, Sortino, Calmar and the simple annual return of daily dollar P&L ``pnl`` (float
    (d,)) on the account's ``capital`` ($) with max drawdown ``max_dd`` ($ ≥ 0); formulas in the
    module docstring. Every ratio has the sign of Σ pnl (0 when undefined)."""
    p = np.asarray(pnl, np.float64)
    cap = float(capital) if capital and capital > 0 else 1.0
    r = p / cap
    n = len(r)
    mean = float(r.mean()) if n else 0.0
    sd = float(r.std(ddof=1)) if n > 1 else 0.0
    down = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))) if n else 0.0
    root = math.sqrt(ANNUAL_DAYS)
    annual_pnl = float(p.mean()) * ANNUAL_DAYS if n else 0.0
    return {"sharpe": mean / sd * root if sd > 0 and n > 1 else 0.0,
            "sortino": mean / down * root if down > 0 and n > 1 else 0.0,
            "calmar": annual_pnl / max_dd if max_dd > 0 else 0.0,
            "annual_return_pct": mean * ANNUAL_DAYS * 100}


def account_halt_ns(halts: list, research: bool = False) -> int | None:
    """UTC ns of the account-level halt that stopped a run (the first of :data:`ACCOUNT_HALT_KINDS`
    in ``BacktestResult.halts`` that was never lifted), or None. Research runs lift every halt."""
    if research:
        return None
    for h in halts or []:
        if h.get("kind") in ACCOUNT_HALT_KINDS and h.get("resumed_ns") is None:
            return int(h["ts_ns"])
    return None


def result_metrics(res) -> dict:
    """:func:`compute_metrics` of a :class:`engine.backtest.runner.BacktestResult`, with the
    run's unlifted account-level halt (if any) labelled in the output."""
    return compute_metrics(res.trades, res.equity, res.day, res.starting_balance, res.ts,
                           halt_ns=account_halt_ns(getattr(res, "halts", []), bool(getattr(res, "research", False))))


def compute_metrics(trades, equity: np.ndarray, day: np.ndarray, starting_balance: float,
                    ts: np.ndarray | None = None, halt_ns: int | None = None) -> dict:
    """All R-BT-3 metrics as a flat dict of floats/ints (see module docstring). ``trades`` is
    the DataFrame of :func:`engine.backtest.runner.trades_frame`; ``equity`` float64 (n,) $ per
    bar close, ``day`` int32 (n,) CME trading day of each bar, ``ts`` int64 (n,) UTC ns;
    ``halt_ns``: UTC ns of an account-level halt that ended trading (:func:`account_halt_ns`)."""
    net = trades["net_pnl"].to_numpy(dtype=np.float64) if len(trades) else np.zeros(0)
    gross = trades["gross_pnl"].to_numpy(dtype=np.float64) if len(trades) else np.zeros(0)
    comm = float(trades["commission"].sum()) if len(trades) else 0.0
    slip = float(trades["slippage"].sum()) if len(trades) else 0.0
    days, pnl_d = daily_pnl(equity, day, starting_balance)
    final = float(equity[-1]) if len(equity) else starting_balance
    dd = drawdown(equity, ts)
    ratios = dollar_ratios(pnl_d, starting_balance, dd["max_dd"])
    wins, losses = net[net > 0], net[net < 0]
    pf = float(wins.sum() / -losses.sum()) if losses.size else (math.inf if wins.size else 0.0)
    sw, sl = _streaks(net)
    trade_days = len(days)
    active = pnl_d[pnl_d != 0]
    by_hour = {}
    if len(trades):
        hours = trades["exit_time"].dt.tz_convert("America/New_York").dt.hour.to_numpy()
        for h in range(24):
            m = hours == h
            if m.any():
                by_hour[h] = float(net[m].sum())
    out = {
        "trades": int(len(net)),
        "net_pnl": float(net.sum()),
        "gross_pnl": float(gross.sum()),
        "commission": comm,
        "slippage": slip,
        "total_costs": comm + slip,
        "final_equity": final,
        "return_pct": (final / starting_balance - 1.0) * 100 if starting_balance else 0.0,
        "annual_return_pct": ratios["annual_return_pct"],
        "sharpe": ratios["sharpe"],
        "sortino": ratios["sortino"],
        "calmar": ratios["calmar"],
        "annualisation": f"daily $ P&L / capital ${float(starting_balance):,.2f}, mean/std × sqrt({ANNUAL_DAYS})",
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
        "days_span": trade_days,
        "days_with_trades": int(len(np.unique(days[pnl_d != 0]))) if len(days) else 0,
        "winning_days_pct": float((active > 0).mean() * 100) if active.size else 0.0,
        "trades_per_day": float(len(net) / trade_days) if trade_days else 0.0,
        "halted_at": None,
        "pnl_by_hour_ny": by_hour,
    }
    out.update(_halt_block(days, pnl_d, day, ts, halt_ns, float(starting_balance), equity))
    return out


def _halt_block(days: np.ndarray, pnl_d: np.ndarray, day: np.ndarray, ts, halt_ns: int | None,
                capital: float, equity: np.ndarray) -> dict:
    """The labelled until-halt figures of a halted run (module docstring); {} without a halt."""
    if halt_ns is None or ts is None or not len(days):
        return {}
    from engine.calendar import ny_datetime

    i = int(np.searchsorted(np.asarray(ts), int(halt_ns), side="right")) - 1
    i = min(max(i, 0), len(day) - 1)
    hday = int(day[i])
    keep = days <= hday
    eq_until = np.asarray(equity)[: int(np.flatnonzero(np.asarray(day) <= hday)[-1]) + 1]
    r = dollar_ratios(pnl_d[keep], capital, drawdown(eq_until)["max_dd"])
    return {"halted_at": ny_datetime(int(halt_ns)).strftime("%Y-%m-%d %H:%M NY"), "halt_day": hday,
            "days_until_halt": int(keep.sum()), "untraded_days": int((~keep).sum()),
            "sharpe_until_halt": r["sharpe"], "sortino_until_halt": r["sortino"],
            "calmar_until_halt": r["calmar"], "annual_return_pct_until_halt": r["annual_return_pct"]}
