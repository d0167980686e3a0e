"""Backtest report files (R-BT-2, R-BT-3) written to an output directory:

- ``trades.csv``: the trade log (one row per round trip, :data:`runner.TRADE_COLUMNS`);
- ``equity.csv``: per bar: UTC time, equity, drawdown (dollars);
- ``metrics.json``: every metric of :func:`metrics.compute_metrics` plus run facts;
- ``report.md``: the metrics table and P&L by New York hour;
- ``equity.png``: equity and drawdown chart; ``pnl_by_hour.png``: net P&L by NY hour
  (matplotlib, Agg backend).
All files are written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from engine.backtest.metrics import compute_metrics, drawdown


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


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


def write_report(result, out_dir: str | Path, metrics: dict | None = None) -> dict:
    """Write the report files for a :class:`runner.BacktestResult`; returns {name: path}.
    Raises ``OSError`` naming the directory when it cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = metrics or compute_metrics(result.trades, result.equity, result.day, result.starting_balance, result.ts)
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
           "alerts": [list(a) for a in result.alerts][:100]}
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
    fig.tight_layout()
    p = out / "equity.png"
    _atomic(p, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    paths["equity_png"] = p
    fig, ax = plt.subplots(figsize=(8, 3))
    hrs = m["pnl_by_hour_ny"]
    ax.bar(list(hrs.keys()), list(hrs.values()), color=["tab:green" if v >= 0 else "tab:red" for v in hrs.values()])
    ax.set_xlabel("exit hour (New York)")
    ax.set_ylabel("net P&L ($)")
    fig.tight_layout()
    p = out / "pnl_by_hour.png"
    _atomic(p, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    paths["pnl_by_hour_png"] = p
    lines = [f"# Backtest report: {result.strategy}", "",
             f"fill model {result.fill_model}; {result.bars:,} bars; {result.steps:,} kernel steps; "
             f"{result.elapsed_s:.2f} s", "", "| metric | value |", "|---|---|"]
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
    return paths
