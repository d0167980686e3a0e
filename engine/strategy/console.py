"""A loaded strategy in the console's Backtest screen: the Model field takes a strategy spec
(``file.py:Class``, ``package.module:Class``, an entry-point name) besides a checkpoint or
``baseline``; with Walk-fwd on, the walk-forward optimization of its declared parameters
(:func:`engine.strategy.walkforward.strategy_walk_forward`) instead of one model per fold.

:func:`is_strategy_spec` tells the two apart; :func:`strategy_walk_forward_for_console` returns
the console's :class:`engine.runtime.snapshot.WalkForwardRun` (a fold's "accuracy" column is its
trade win rate) and writes the report files of ``backtest --walk-forward --strategy --out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.strategy.loader import BUILTINS, _entry_points


def is_strategy_spec(text: str) -> bool:
    """True for ``random``, a ``*.py`` path (with or without ``:Class``), ``module:Class`` or a
    registered entry-point name; False for ``baseline``/empty (the session's baseline) and for an
    existing directory (a checkpoint)."""
    t = (text or "").strip()
    if not t or t == "baseline" or Path(t).expanduser().is_dir():
        return False
    return t in BUILTINS or ".py" in t or ":" in t or t in _entry_points()


def found_specs() -> list[str]:
    """``--strategy`` specs of the strategies found (:func:`engine.strategy.loader.discover`),
    for the screens' suggestions."""
    from engine.strategy.loader import default_dirs, discover

    return [r["spec"] for r in discover(default_dirs())]


def strategy_walk_forward_for_console(settings: Any, params: Any, on_progress: Any, bars: Any, out: Path):
    """The Walk-fwd run of a strategy spec (``params.model``) over ``bars``: → WalkForwardRun.
    Raises :class:`engine.strategy.loader.StrategyError` / ``ValueError``."""
    from engine.runtime.snapshot import BacktestResult, FoldRow, Progress, WalkForwardRun
    from engine.runtime.work import _trade_rows, stitched_rows, write_walk_forward_report
    from engine.strategy.loader import load_strategy
    from engine.strategy.walkforward import strategy_walk_forward, walk_forward_doc

    st = load_strategy(params.model)
    n = {"folds": 1}

    def progress(ev: dict) -> None:
        if ev["event"] == "plan":
            n["folds"] = max(1, int(ev["folds"]))
            on_progress(Progress(0, 2 * n["folds"], str(ev["note"]), folds=n["folds"]))
        elif ev["event"] == "fold_done":
            f = int(ev["fold"])
            on_progress(Progress(f + 1, 2 * n["folds"], f"fold {f + 1}/{n['folds']} optimized: {ev['params']}",
                                 fold=f, folds=n["folds"]))
        elif ev["event"] == "backtest_fold":
            d = int(ev["done"])
            on_progress(Progress(n["folds"] + d, 2 * n["folds"], f"fold {d}/{n['folds']} backtested",
                                 fold=d - 1, folds=n["folds"]))

    r = strategy_walk_forward(bars, settings, st, fill_model=params.fill_model, on_progress=progress)
    folds = []
    for c, fm, res in zip(r.chosen, r.wf.fold_metrics, r.wf.folds):
        tr = res.trades
        win = float((tr["net_pnl"] > 0).mean()) if len(tr) else 0.0
        folds.append(FoldRow(int(c["fold"]) + 1, int(c["test"]["start_ns"]), int(c["test"]["end_ns"]),
                             int(fm["trades"]), float(fm["net_pnl"]), float(fm["sharpe"]),
                             float(fm["max_drawdown"]), win))
    checks, m, records, eq, metrics = stitched_rows(r, settings)
    write_walk_forward_report(r, walk_forward_doc(r, params.fill_model, params.data), out)
    rows = tuple(_trade_rows(records))
    chosen = "; ".join(f"fold {c['fold'] + 1}: " + ", ".join(f"{k}={v}" for k, v in c["params"].items())
                       for c in r.chosen)
    bt = BacktestResult(metrics, tuple(eq), rows, str(out), (f"{st.label()}", f"chosen per fold: {chosen}"))
    on_progress(Progress(2 * n["folds"], 2 * n["folds"], f"done: {len(records)} trades, net ${m.get('net_pnl', 0.0):,.2f}",
                         folds=n["folds"]))
    return WalkForwardRun(bt, tuple(folds), checks, bool(r.go_live["pass"]), r.note)


__all__ = ["is_strategy_spec", "found_specs", "strategy_walk_forward_for_console"]
