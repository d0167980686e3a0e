"""Behaviour check for refactors: run the real-year backtests through the CLI, store their trade
tables and equity curves, and compare a later run with the stored one to the cent.

Runs (``python -m mes_console.cli backtest ... --out DIR``; the file
``../shared/data/es_1m_2024-12-03_2025-12-15.parquet`` or ``--data``):

- ``--strategy baseline`` and ``--strategy random`` (seed 7), each with ``--fill conservative``
  and ``--fill realistic``, each with and without ``--research``, skip-ahead (the default);
- the baseline once ``--bar-by-bar`` (conservative), which must equal its skip-ahead twin;
- ``--walk-forward --epochs 1`` on the 5-minute year file (conservative) unless ``--no-wf``, once
  with the default settings and once with ``[signal] min_confidence = 0.34``, ``[risk]
  confidence_multipliers = [[0.34, 1.0]]`` and ``--research`` (so that the fold models
  trade all year);
- ``run --mode replay --speed max --no-tui`` (the Session path, baseline signals) over
  2025-03-01..2025-05-31 of the 1-minute file: its report's trades become ``trades.csv`` and its
  ending equity ``equity.csv``.

Every run writes ``trades.csv`` and ``equity.csv``; ``compare`` reads both of each run and says
per run: identical (byte for byte), equal to the cent (every number within $0.005 / 0.005 points,
every other field equal), or the first differing row and column. Exit 0 when every run is equal
to the cent, 1 otherwise.

Usage::

    python bench/compare_outputs.py record /tmp/before
    python bench/compare_outputs.py compare /tmp/before /tmp/after   # records /tmp/after first
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"
YEAR_1M = DATA_DIR / "es_1m_2024-12-03_2025-12-15.parquet"
YEAR_5M = DATA_DIR / "es_5m_2024-12-03_2025-12-15.parquet"


def runs(data: Path, wf_data: Path, with_wf: bool) -> dict[str, list[str]]:
    """Run name -> CLI arguments after ``backtest``."""
    out: dict[str, list[str]] = {}
    for strat in ("baseline", "random"):
        for fill in ("conservative", "realistic"):
            for research in (False, True):
                name = f"{strat}-{fill}" + ("-research" if research else "")
                out[name] = ["--data", str(data), "--strategy", strat, "--fill", fill,
                             "--research" if research else "--no-research"]
    out["baseline-conservative-barbybar"] = ["--data", str(data), "--strategy", "baseline", "--fill",
                                             "conservative", "--no-research", "--bar-by-bar"]
    if with_wf:
        out["walkforward"] = ["--data", str(wf_data), "--walk-forward", "--epochs", "1", "--fill", "conservative"]
        out["walkforward-anyconf"] = out["walkforward"] + ["--config", "{anyconf}", "--research"]
    out["replay"] = ["run", "--mode", "replay", "--data", str(data), "--start", "2025-03-01", "--end", "2025-05-31",
                     "--speed", "max", "--no-tui", "--json-report", "{out}/report.json"]
    return out


def _replay_tables(d: Path) -> None:
    """trades.csv and equity.csv from a replay session's JSON report."""
    import json

    import pandas as pd

    rep = json.loads((d / "report.json").read_text())
    pd.DataFrame(rep["trades"]).to_csv(d / "trades.csv", index=False)
    pd.DataFrame({"ending_equity": [rep["ending_equity"]], "net_pnl": [rep["net_pnl"]]}).to_csv(
        d / "equity.csv", index=False)


def record(dest: Path, data: Path, wf_data: Path, with_wf: bool, only: str | None = None) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    dest.mkdir(parents=True, exist_ok=True)
    anyconf = dest / "anyconf.toml"
    anyconf.write_text("[signal]\nmin_confidence = 0.34\n\n[risk]\nconfidence_multipliers = [[0.34, 1.0]]\n")
    for name, args in runs(data, wf_data, with_wf).items():
        if only and name != only:
            continue
        d = dest / name
        d.mkdir(parents=True, exist_ok=True)
        args = [a.format(out=d, anyconf=anyconf) for a in args]
        if args[0] == "run":
            cmd = [sys.executable, "-m", "mes_console.cli", *args]
        else:
            cmd = [sys.executable, "-m", "mes_console.cli", "backtest", *args, "--out", str(d)]
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if p.returncode == 0 and args[0] == "run":
            _replay_tables(d)
        (d / "stdout.txt").write_text(p.stdout + p.stderr)
        print(f"{name}: exit {p.returncode}", flush=True)
        if p.returncode != 0:
            print(p.stderr[-2000:], file=sys.stderr)


def _compare_csv(a: Path, b: Path) -> str | None:
    """None when equal to the cent, else a one-line description of the first difference."""
    import numpy as np
    import pandas as pd

    if not a.exists() or not b.exists():
        return f"{a.name}: missing in {'before' if not a.exists() else 'after'}"
    if a.read_bytes() == b.read_bytes():
        return None
    x, y = pd.read_csv(a), pd.read_csv(b)
    if list(x.columns) != list(y.columns):
        return f"{a.name}: columns {list(x.columns)} vs {list(y.columns)}"
    if len(x) != len(y):
        return f"{a.name}: {len(x)} rows vs {len(y)}"
    for c in x.columns:
        if pd.api.types.is_numeric_dtype(x[c]) and pd.api.types.is_numeric_dtype(y[c]):
            u, v = x[c].to_numpy(np.float64), y[c].to_numpy(np.float64)
            bad = ~((np.abs(u - v) < 0.005) | (np.isnan(u) & np.isnan(v)))
        else:
            bad = (x[c].astype(str) != y[c].astype(str)).to_numpy()
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            return f"{a.name}: row {r} column {c}: {x[c].iloc[r]!r} vs {y[c].iloc[r]!r} ({int(bad.sum())} rows differ)"
    return "cent"


def compare(before: Path, after: Path) -> int:
    bad = 0
    for d in sorted(p for p in before.iterdir() if p.is_dir()):
        msgs = []
        for f in ("trades.csv", "equity.csv"):
            m = _compare_csv(d / f, after / d.name / f)
            if m is not None:
                msgs.append(m)
        diffs = [m for m in msgs if m != "cent"]
        if diffs:
            bad += 1
            print(f"{d.name}: DIFFERENT: " + "; ".join(diffs))
        else:
            n = sum(1 for _ in open(d / "trades.csv")) - 1
            print(f"{d.name}: {'equal to the cent' if msgs else 'identical'} ({n} trades)")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["record", "compare"])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=YEAR_1M)
    ap.add_argument("--wf-data", type=Path, default=YEAR_5M)
    ap.add_argument("--no-wf", action="store_true", help="skip the walk-forward runs")
    ap.add_argument("--only", help="record only this run (by name)")
    a = ap.parse_args()
    if a.action == "record":
        record(a.dirs[0], a.data, a.wf_data, not a.no_wf, a.only)
        return 0
    if len(a.dirs) != 2:
        ap.error("compare BEFORE AFTER")
    record(a.dirs[1], a.data, a.wf_data, not a.no_wf, a.only)
    return compare(a.dirs[0], a.dirs[1])


if __name__ == "__main__":
    sys.exit(main())
