"""The defaults study of issue 24 (specs/research.md "Defaults study"): which stop/target rule and
stop cap the shipped config should hold, chosen by a walk-forward on the real ES year.

Every candidate (stop rule × cap × reward:risk, within R-RISK-3) is run with the shipped rule
strategy (breakout baseline, ``[backtest] baseline_lookback``) and the shipped risk limits on
EVERY calendar month of the data separately: a fresh $1,000 account per month, research mode
(account-level halts recorded and lifted at the next RTH open), conservative fills, all costs.
Walk-forward: for each test month from the fourth on, the candidate with the highest net P&L over
the previous three months among those that kept trading there (at most half of the entry
attempts refused) is chosen and its result in the test month is the out-of-sample
figure. Printed: the per-candidate monthly table (CSV with --csv), the walk-forward choices, the
stitched out-of-sample totals of the selection and of each fixed candidate (the shipped defaults
among them), net of commission and slippage.

    python bench/defaults_study.py [--data PATH] [--csv OUT.csv]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.backtest.metrics import result_metrics  # noqa: E402
from engine.backtest.runner import run_backtest, slice_dates  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.data.io import load_bars  # noqa: E402
from engine.strategy import strategy_by_name  # noqa: E402


def _md(df: pd.DataFrame, index: bool = True) -> str:
    """A markdown table of ``df`` (no tabulate dependency)."""
    d = df.reset_index() if index else df
    cols = [str(c) for c in d.columns]
    fmt = lambda v: f"{v:,.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


def candidates() -> list[tuple[str, dict]]:
    out = []
    for rr in (1.0, 1.5, 2.0):
        for mult in (1.0, 1.5, 2.0):
            for cap in (8, 12):
                out.append((f"atr{mult:g}-cap{cap}-rr{rr:g}",
                            {"method": "atr", "atr_multiplier": mult, "max_stop_ticks": cap, "reward_risk": rr}))
        for fx in (8, 10, 12):
            out.append((f"fixed{fx}-rr{rr:g}", {"method": "fixed", "fixed_ticks": fx, "max_stop_ticks": max(8, fx),
                                                 "reward_risk": rr}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "es_1m_2024-12-03_2025-12-15.parquet"))
    ap.add_argument("--csv", default="")
    ap.add_argument("--train-months", type=int, default=3)
    a = ap.parse_args()
    bars = load_bars(a.data)
    base = Settings()
    first = pd.Timestamp(int(bars.ts[0]), tz="UTC")
    last = pd.Timestamp(int(bars.ts[-1]), tz="UTC")
    months = pd.period_range(first.tz_localize(None).to_period("M"), last.tz_localize(None).to_period("M"), freq="M")
    strat = strategy_by_name("baseline", lookback=base.backtest.baseline_lookback)
    rows = []
    t0 = time.time()
    parts = {}
    for m in months:
        lo, hi = str(m.start_time.date()), str(m.end_time.date())
        try:
            part = slice_dates(bars, lo, hi)
        except Exception:  # noqa: BLE001 - a month without bars
            continue
        parts[str(m)] = (part, strat.signals(part))
    for name, kw in candidates():
        s = dataclasses.replace(base, stops=dataclasses.replace(base.stops, **kw))
        for m, (part, sig) in parts.items():
            res = run_backtest(part, sig, s, research=True)
            mt = result_metrics(res)
            tr = res.trades
            rows.append({"candidate": name, "month": m, "trades": mt["trades"], "net_pnl": round(mt["net_pnl"], 2),
                         "costs": round(mt["total_costs"], 2), "win_rate": round(mt["win_rate"], 4),
                         "stop_ticks_median": float(np.median(tr["stop_ticks"])) if len(tr) else None,
                         "refused": int(sum(res.refused.values())), "halts": len(res.halts)})
        print(f"{name}: {sum(r['net_pnl'] for r in rows if r['candidate'] == name):,.2f} $ "
              f"({time.time() - t0:.0f} s)", file=sys.stderr)
    df = pd.DataFrame(rows)
    if a.csv:
        df.to_csv(a.csv, index=False)
    piv = df.pivot(index="month", columns="candidate", values="net_pnl")
    trd = df.pivot(index="month", columns="candidate", values="trades")
    ref = df.pivot(index="month", columns="candidate", values="refused")
    ms = list(piv.index)
    k = a.train_months
    picks = []
    for i in range(k, len(ms)):
        train = piv.iloc[i - k:i].sum()
        # a candidate must keep trading in the train window: most entry attempts refused (the
        # stop too wide for the $ risk budget once the balance dips) is "not trading", which
        # would otherwise win every comparison of losing settings
        t_, r_ = trd.iloc[i - k:i].sum(), ref.iloc[i - k:i].sum()
        ok = (r_ / (r_ + t_).clip(lower=1)) <= 0.5
        train = train[ok] if ok.any() else train
        best = str(train.idxmax())
        sub = df[(df.candidate == best) & (df.month == ms[i])].iloc[0]
        picks.append({"test_month": ms[i], "chosen": best, "train_net": round(float(train.max()), 2),
                      "oos_net": float(sub.net_pnl), "oos_trades": int(sub.trades)})
    pk = pd.DataFrame(picks)
    print("\n## walk-forward choices (train = previous %d months, by net P&L among candidates that kept trading)\n" % k)
    print(_md(pk, index=False))
    oos_months = [p["test_month"] for p in picks]
    sub = df[df.month.isin(oos_months)]
    tot = sub.groupby("candidate").agg(trades=("trades", "sum"), net_pnl=("net_pnl", "sum"), costs=("costs", "sum"),
                                       refused=("refused", "sum"), median_stop=("stop_ticks_median", "median"),
                                       losing_months=("net_pnl", lambda x: int((x < 0).sum())))
    tot["net_per_trade"] = (tot.net_pnl / tot.trades.clip(lower=1)).round(2)
    tot = tot.sort_values("net_pnl", ascending=False)
    print(f"\n## out-of-sample months {oos_months[0]} … {oos_months[-1]}: each candidate held fixed\n")
    print(_md(tot))
    print(f"\nwalk-forward selection out of sample: {pk.oos_trades.sum()} trades, net {pk.oos_net.sum():,.2f} $ "
          f"(costs included), {(pk.oos_net < 0).sum()} of {len(pk)} months losing")
    print(f"elapsed {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
