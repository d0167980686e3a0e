"""Long work launched from the console (R-UI-3, R-UI-4): a backtest or a training run, with
progress, returned as the console's immutable result types.

Both run the same engine code as the CLI (``mes-console backtest`` / ``train``); they block the
calling thread, so the console calls them from a worker thread. Progress is reported through the
``on_progress`` callback on that same thread.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

from engine.config import Settings, resolve_dir
from engine.runtime.snapshot import (
    BacktestParams, BacktestResult, FoldRow, GoLiveRow, Progress, ProgressCallback, TradeRow, TrainingParams,
    TrainingResult, WalkForwardRun, money,
)

ARCHS = ("mlp", "lstm", "hybrid", "transformer")
"""Model architectures a walk-forward can train (:mod:`engine.ml.models`)."""


def _bars_for(settings: Settings, data: str, start: date | None, end: date | None, seed: int):
    """Bars of a file (sliced to [start, end], UTC dates of the bar open) or of the embedded
    generator (``"demo"``: the given CME trading days, default the five days from 2025-11-03)."""
    if data == "demo":
        from engine.market import generate_bars

        d0 = start or date(2025, 11, 3)
        d1 = end or (d0 + timedelta(days=4))
        return generate_bars(d0, d1, seed=seed, symbol=settings.instrument.symbol)
    from engine.backtest.runner import slice_dates
    from engine.data import load_bars

    from engine.data.gate import check_bars

    bars = slice_dates(load_bars(Path(data).expanduser()), start.isoformat() if start else None,
                       end.isoformat() if end else None)
    # the validation gate of the CLI commands: DataError for non-finite prices, unsorted rows,
    # or (with [data] strict) any validation error
    return check_bars(bars, strict=settings.data.strict).bars


def _fmt(v) -> str:
    """A metric for the console's table: floats to cents, never ``-0.00`` (a drawdown of
    -0.001 $ is 0.00)."""
    if isinstance(v, float):
        return f"{0.0 if round(v, 2) == 0 else v:,.2f}"
    return str(v)


def run_backtest_for_console(settings: Settings, params: BacktestParams,
                             on_progress: ProgressCallback) -> BacktestResult:
    """Backtest with the kernel over the requested bars; report saved under the reports dir.
    Raises the engine's errors (bad file, empty range, checkpoint mismatch) unchanged."""
    from engine.backtest.metrics import result_metrics
    from engine.backtest.report import summary_text, verdict_text, write_report
    from engine.backtest.runner import run_backtest
    from engine.strategy.baseline import BreakoutBaseline
    from engine.strategy.model import ModelStrategy

    from engine.strategy.console import is_strategy_spec

    settings = _with_params(settings, params)
    on_progress(Progress(0, 1, "loading bars"))
    bars = _bars_for(settings, params.data, params.start, params.end, params.seed)
    if is_strategy_spec(params.model):   # a strategy file/module/entry point (engine.strategy.loader)
        from engine.strategy.loader import load_strategy

        strat: Any = load_strategy(params.model)
    else:
        strat = (BreakoutBaseline(lookback=settings.backtest.baseline_lookback) if params.model in ("", "baseline")
                 else ModelStrategy(params.model))
    on_progress(Progress(0, len(bars), f"signals: {strat.name}"))
    model_note = None
    if isinstance(strat, ModelStrategy):  # the checkpoint's threshold, or why it abstains (issue 24)
        from engine.strategy.model import apply_threshold, threshold_note

        cal = strat.calibration()
        settings = apply_threshold(settings, cal)
        model_note = threshold_note(settings, cal)
    sig = strat.signals(bars)
    res = run_backtest(bars, sig, settings, fill_model=params.fill_model, strategy_name=strat.name,
                       progress=lambda done, total: on_progress(Progress(done, total, "backtest")),
                       research=params.research)
    if res.account is not None:  # the account profile's pass probability (issue 23)
        from engine.research.montecarlo import result_pass_probability

        res.account["pass_probability"] = result_pass_probability(res, settings, n_paths=10_000, seed=0)
    m = result_metrics(res)
    stamp = f"{strat.name}-{params.fill_model}-{int(bars.ts[0]) // 1_000_000_000}"
    out = resolve_dir(settings.paths.reports_dir, "reports") / stamp
    write_report(res, out, m, bars=bars, notes=[model_note] if model_note else None)
    keys = ("net_pnl", "trades", "win_rate", "profit_factor", "expectancy", "sharpe", "sortino",
            "max_drawdown", "commission", "slippage")
    metrics = tuple((k, _fmt(m[k])) for k in keys if k in m)
    eq = [res.starting_balance]
    for t in res.records:
        eq.append(eq[-1] + t.net_pnl)
    rows = tuple(_trade_rows(res.records))
    on_progress(Progress(len(bars), len(bars), f"done: {len(rows)} trades, net {money(m.get('net_pnl', 0.0), sign=True)}"))
    lines = ((verdict_text(res.account).splitlines() if res.account else []) + summary_text(res, metrics=m).splitlines()
             + ([model_note] if model_note else []))
    return BacktestResult(metrics, tuple(eq), rows, str(out), tuple(lines))


def _trade_rows(records) -> list[TradeRow]:
    """Kernel trade records → the console's :class:`TradeRow` (P&L in dollars after costs)."""
    return [TradeRow(t.entry_ts, t.exit_ts, "LONG" if t.direction > 0 else "SHORT", t.contracts,
                     t.entry_price, t.exit_price, t.net_pnl, t.exit_reason) for t in records]


def _with_params(settings: Settings, params: BacktestParams) -> Settings:
    """The settings with the backtest screen's parameters applied (None keeps the setting).
    Raises ValueError naming a parameter out of range."""
    import dataclasses

    stops, signal = settings.stops, settings.signal
    if params.max_stop_ticks is not None:
        if not 1 <= params.max_stop_ticks <= 400:
            raise ValueError(f"max stop: {params.max_stop_ticks} ticks is not within 1..400")
        stops = dataclasses.replace(stops, max_stop_ticks=int(params.max_stop_ticks),
                                    min_stop_ticks=min(stops.min_stop_ticks, int(params.max_stop_ticks)))
    if params.reward_risk is not None:
        if not 1.0 <= params.reward_risk <= 3.0:
            raise ValueError(f"reward:risk {params.reward_risk:g} is not within 1..3 (R-RISK-3)")
        stops = dataclasses.replace(stops, reward_risk=float(params.reward_risk))
    if params.min_confidence is not None:
        if not 0.0 <= params.min_confidence <= 1.0:
            raise ValueError(f"min confidence {params.min_confidence:g} is not within 0..1")
        # an explicit threshold wins over the checkpoint's own (engine.strategy.model.apply_threshold)
        signal = dataclasses.replace(signal, min_confidence=float(params.min_confidence), model_threshold="config")
    return dataclasses.replace(settings, stops=stops, signal=signal)


class WorkFailed(RuntimeError):
    """The work process (training, walk-forward backtest) reported an error (its one-line
    description) or died."""


TrainingFailed = WorkFailed
"""The name the training screen and its tests know."""


class WorkStopped(RuntimeError):
    """The operator stopped the work (its ``stop`` event was set); its process was ended."""


def run_training_for_console(settings: Settings, params: TrainingParams,
                             on_progress: ProgressCallback, *, in_process: bool = False) -> TrainingResult:
    """Walk-forward (or single-fold) training; the checkpoint goes to the models dir. Progress:
    one :class:`Progress` per epoch with train/validation loss and validation accuracy.

    By default the training runs in a separate process (:func:`_in_child`) so that its Python
    work never competes for the GIL with the live session's engine thread or the console's UI
    thread (architecture §7); this call blocks its own (worker) thread, relaying the child's
    progress to ``on_progress``. ``in_process=True`` trains on the calling thread.
    Raises :class:`WorkFailed` with the child's error, or when the child dies."""
    if in_process:
        return _train_for_console(settings, params, on_progress)
    return _in_child("train", settings, params, on_progress)


def run_walk_forward_for_console(settings: Settings, params: BacktestParams, on_progress: ProgressCallback,
                                 *, stop: threading.Event | None = None,
                                 in_process: bool = False) -> WalkForwardRun:
    """``backtest --walk-forward`` for the console: per fold train the fold's model
    (:func:`engine.backtest.walkforward.model_walk_forward`, windows ``params.walk_forward``
    months, scaled to days on short data) and backtest its out-of-sample test window; stitched
    equity, per-fold rows and the R-BT-4 go-live table.

    Progress: ``total`` = 2 × folds (each fold trained, then each fold backtested), ``fold`` /
    ``folds`` set. Runs in a separate process like the training (``in_process=True``: on the
    calling thread); ``stop`` set → the process is ended and :class:`WorkStopped` raised.
    Raises :class:`WorkFailed` (bad data, data too short for one fold, bad parameter)."""
    if params.walk_forward is None:
        raise ValueError("run_walk_forward_for_console: params.walk_forward is None (a plain backtest)")
    if in_process:
        return _walk_forward_for_console(settings, params, on_progress)
    return _in_child("walk_forward", settings, params, on_progress, stop)


def _in_child(job: str, settings: Settings, params, on_progress: ProgressCallback,
              stop: threading.Event | None = None):
    """Run ``_JOBS[job](settings, params, progress)`` in a child Python process and relay its
    progress to ``on_progress`` on this thread; return its result. ``stop`` set → the child is
    killed and :class:`WorkStopped` raised. Raises :class:`WorkFailed` with the child's error,
    or when it dies."""
    import os
    import pickle
    import subprocess
    import sys
    import tempfile

    # A plain subprocess (not multiprocessing): the console's terminal driver replaces
    # sys.stderr, which multiprocessing's resource tracker needs as a real file descriptor.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", "from engine.runtime.work import _child_main; "
                                 "_child_main()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        assert proc.stdin is not None and proc.stdout is not None  # both are pipes
        if stop is not None:
            threading.Thread(target=_kill_on_stop, args=(proc, stop), daemon=True,
                             name=f"{job}-stop").start()
        try:
            proc.stdin.write(pickle.dumps((job, settings, params)))
            proc.stdin.close()
            while True:
                try:
                    kind, payload = pickle.load(proc.stdout)
                except EOFError:
                    proc.wait(10)
                    if stop is not None and stop.is_set():
                        raise WorkStopped("stopped by the operator") from None
                    err.seek(0)
                    tail = " ".join(err.read().decode(errors="replace").split()[-40:])
                    raise WorkFailed(f"the {job.replace('_', '-')} process ended without a result "
                                     f"(exit code {proc.returncode}){': ' + tail if tail else ''}") from None
                if kind == "progress":
                    on_progress(payload)
                elif kind == "result":
                    return payload
                else:
                    raise WorkFailed(payload)
        finally:
            if proc.poll() is None:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _kill_on_stop(proc, stop: threading.Event) -> None:
    """Kill ``proc`` as soon as ``stop`` is set (checked every 0.2 s while it runs)."""
    while proc.poll() is None:
        if stop.wait(0.2):
            proc.kill()
            return


def _child_main() -> None:
    """Entry point of the work process: (job, settings, params) pickled on stdin; progress, then
    one ``result`` or ``error``, pickled on the original stdout (anything the libraries print
    goes to stderr instead)."""
    import os
    import pickle
    import sys

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    job, settings, params = pickle.load(sys.stdin.buffer)

    def send(kind: str, payload) -> None:
        pickle.dump((kind, payload), out)
        out.flush()

    try:
        send("result", _JOBS[job](settings, params, lambda p: send("progress", p)))
    except BaseException as exc:  # reported to the console, never lost
        send("error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")


def _train_for_console(settings: Settings, params: TrainingParams,
                       on_progress: ProgressCallback) -> TrainingResult:
    import dataclasses

    from engine.instruments import spec
    from engine.ml.pipeline import train_from_bars
    from engine.ml.training import TrainParams

    on_progress(Progress(0, 1, "loading bars"))
    if params.data == "demo":
        bars = _bars_for(settings, "demo", date(2025, 1, 2), date(2025, 6, 30), 0)
    else:
        bars = _bars_for(settings, params.data, None, None, 0)
    tc = dataclasses.replace(settings.training, train_months=params.train_months,
                             val_months=params.val_months, test_months=params.test_months)
    tp = TrainParams.from_config(tc, epochs=params.epochs)
    state = {"folds": 0}
    history: list[tuple[int, int, float, float, float]] = []

    def progress(ev: dict) -> None:
        kind = ev.get("event")
        if kind == "plan":
            state["folds"] = int(ev.get("folds", 0))
            on_progress(Progress(0, max(1, state["folds"]), ev.get("note", "plan"), folds=state["folds"]))
        elif kind == "epoch":
            history.append((int(ev["fold"]), int(ev["epoch"]), float(ev["train_loss"]),
                            float(ev["val_loss"]), float(ev["val_acc"])))
            on_progress(Progress(int(ev["epoch"]), int(ev["epochs"]), f"fold {int(ev['fold']) + 1}",
                                 (("train_loss", float(ev["train_loss"])), ("val_loss", float(ev["val_loss"])),
                                  ("val_acc", float(ev["val_acc"]))),
                                 fold=int(ev["fold"]), folds=state["folds"]))
        elif kind == "fold_done":
            on_progress(Progress(int(ev["fold"]), max(1, state["folds"]),
                                 f"fold {int(ev['fold']) + 1} test acc {ev['test_acc']:.3f} "
                                 f"(majority {ev['majority_acc']:.3f})", fold=int(ev["fold"]),
                                 folds=state["folds"]))

    out = resolve_dir(settings.paths.models_dir, "models")
    rep = train_from_bars(bars, out_dir=out, arch=params.arch, walk_forward=params.walk_forward,
                          params=tp, training_cfg=tc, target_cfg=settings.target,
                          tick_size=spec(settings.instrument.symbol).tick_size,
                          data_path=params.data, on_progress=progress, settings=settings)
    wf = rep.summary.get("walk_forward", {})
    rows: list[tuple[str, str]] = [("checkpoint", str(rep.checkpoint))]
    for k, v in (wf.get("combined") or wf).items() if isinstance(wf, dict) else []:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            rows.append((k, f"{v:.4f}" if isinstance(v, float) else str(v)))
    return TrainingResult(tuple(rows[:14]), str(rep.checkpoint), tuple(history))


def _walk_forward_for_console(settings: Settings, params: BacktestParams,
                              on_progress: ProgressCallback) -> WalkForwardRun:
    import dataclasses

    from engine.backtest.walkforward import model_walk_forward
    from engine.ml.training import TrainParams

    assert params.walk_forward is not None
    from engine.strategy.console import is_strategy_spec

    strategy_wf = is_strategy_spec(params.model)   # walk-forward optimization of its declared parameters
    arch = params.model if params.model in ARCHS else settings.training.arch
    if params.model not in ARCHS + ("", "baseline") and not strategy_wf:
        raise ValueError(f"model: {params.model!r}: a walk-forward trains its own model per fold; give an "
                         f"architecture ({', '.join(ARCHS)}) or baseline for [training] arch")
    settings = _with_params(settings, params)
    tr_m, va_m, te_m = params.walk_forward
    settings = dataclasses.replace(
        settings, training=dataclasses.replace(settings.training, train_months=tr_m, val_months=va_m,
                                               test_months=te_m),
        backtest=dataclasses.replace(settings.backtest, research=params.research))
    on_progress(Progress(0, 1, "loading bars"))
    bars = _bars_for(settings, params.data, params.start, params.end, params.seed)
    n_folds, note = 1, ""
    if strategy_wf:
        out = resolve_dir(settings.paths.reports_dir, "reports") / (
            f"walk-forward-strategy-{tr_m}-{va_m}-{te_m}-{params.fill_model}-{int(bars.ts[0]) // 1_000_000_000}")
        return _strategy_walk_forward_for_console(settings, params, on_progress, bars, out)

    def progress(ev: dict) -> None:
        nonlocal n_folds, note
        k, n = ev.get("event"), n_folds
        if k == "plan":
            n_folds, note = max(1, int(ev["folds"])), str(ev.get("note", ""))
            on_progress(Progress(0, 2 * n_folds, note, folds=n_folds))
        elif k == "epoch":
            f = int(ev["fold"])
            on_progress(Progress(f, 2 * n, f"fold {f + 1}/{n} training: epoch {ev['epoch']}/{ev['epochs']} "
                                 f"val loss {float(ev['val_loss']):.3f}", fold=f, folds=n))
        elif k == "fold_done":
            f = int(ev["fold"])
            on_progress(Progress(f + 1, 2 * n, f"fold {f + 1}/{n} trained: test acc {ev['test_acc']:.3f}",
                                 fold=f, folds=n))
        elif k == "backtest_fold":
            d = int(ev["done"])
            on_progress(Progress(n + d, 2 * n, f"fold {d}/{n} backtested", fold=d - 1, folds=n))

    r = model_walk_forward(bars, settings, arch=arch, params=TrainParams.from_config(settings.training,
                                                                                       epochs=params.epochs),
                           fill_model=params.fill_model, on_progress=progress)
    training: Any = r.training  # engine.ml.training.WalkForwardTraining
    folds = tuple(FoldRow(int(fr.fold.number) + 1, int(fr.fold.test.start), int(fr.fold.test.end),
                          int(fm["trades"]), float(fm["net_pnl"]), float(fm["sharpe"]),
                          float(fm["max_drawdown"]), float(fr.metrics["accuracy"]))
                  for fm, fr in zip(r.wf.fold_metrics, training.folds))
    checks, m, records, eq, metrics = stitched_rows(r, settings)
    metrics = metrics + (("oos_accuracy", f"{r.oos_accuracy:.3f}"),)
    lines = [x for res in r.wf.folds for x in _limit_lines(res) if x.startswith(("halted ", "research mode"))]
    limits = tuple(dict.fromkeys(lines)) or ("no account-level halt in any fold",)
    limits = limits + tuple(r.abstain_lines())  # issue 24: a fold model that abstains says why
    # the report files of `backtest --walk-forward --out DIR`, in the reports dir (platformdirs
    # data dir unless [paths] reports_dir says otherwise)
    stamp = f"walk-forward-{arch}-{tr_m}-{va_m}-{te_m}-{params.fill_model}-{int(bars.ts[0]) // 1_000_000_000}"
    out = resolve_dir(settings.paths.reports_dir, "reports") / stamp
    write_walk_forward_report(r, walk_forward_doc(r, settings, params.fill_model, params.data, arch), out)
    bt = BacktestResult(metrics, tuple(eq), tuple(_trade_rows(records)), str(out), limits)
    on_progress(Progress(2 * n_folds, 2 * n_folds, f"done: {len(records)} trades, net {money(m.get('net_pnl', 0.0), sign=True)}",
                         folds=n_folds))
    return WalkForwardRun(bt, folds, checks, bool(r.go_live["pass"]), note)


def _strategy_walk_forward_for_console(settings: Any, params: Any, on_progress: Any, bars: Any, out: Path):
    """The Walk-fwd run of a strategy spec (``params.model``) over ``bars``
    (:func:`engine.strategy.walkforward.strategy_walk_forward`) → WalkForwardRun (a fold's
    "accuracy" is its trade win rate); the report files of ``backtest --walk-forward --strategy
    --out`` in ``out``. Raises :class:`engine.strategy.loader.StrategyError` / ``ValueError``."""
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
    on_progress(Progress(2 * n["folds"], 2 * n["folds"], f"done: {len(records)} trades, net {money(m.get('net_pnl', 0.0), sign=True)}",
                         folds=n["folds"]))
    return WalkForwardRun(bt, tuple(folds), checks, bool(r.go_live["pass"]), r.note)


def stitched_rows(r, settings: Settings):
    """The console rows of a walk-forward (``r``: its ``wf`` and ``go_live``): (go-live rows, the
    stitched metrics dict, every fold's trade records, equity after each trade in $ from the
    starting capital, the metrics table rows)."""
    checks = tuple(GoLiveRow(name, _check_value(c["value"]), str(c["threshold"]), bool(c["pass"]))
                   for name, c in r.go_live["checks"].items())
    m = r.wf.metrics or {}
    records = [t for res in r.wf.folds for t in res.records]
    eq = [float(settings.account.starting_capital)]
    for t in records:
        eq.append(eq[-1] + t.net_pnl)
    keys = ("net_pnl", "trades", "win_rate", "profit_factor", "expectancy", "sharpe", "calmar",
            "max_drawdown", "commission", "slippage")
    return checks, m, records, eq, tuple((k, _fmt(m[k])) for k in keys if k in m)


WALK_FORWARD_FILES = ("walk_forward.json", "trades.csv", "equity.csv")
"""The files of a walk-forward report (:func:`write_walk_forward_report`)."""


def walk_forward_doc(r, settings: Settings, fill_model: str, data: str, arch: str) -> dict:
    """The ``walk_forward.json`` document of a walk-forward backtest (``backtest --walk-forward``
    and the console's Walk-fwd field): data, arch, target, fill model, one entry per fold (test
    window, trades, net $, Sharpe, max drawdown $, accuracy, halts), the stitched out-of-sample
    metrics, the out-of-sample accuracy, the R-BT-4 go-live checks and the models' trading
    summary. ``r``: :class:`engine.backtest.walkforward.ModelWalkForward`."""
    from engine.backtest.report import _clean

    folds = []
    for fm, res, fr in zip(r.wf.fold_metrics, r.wf.folds, r.training.folds):
        folds.append({"fold": fr.fold.number, "test": fr.fold.test.to_dict(), "trades": int(fm["trades"]),
                      "net_pnl": fm["net_pnl"], "sharpe": fm["sharpe"], "max_drawdown": fm["max_drawdown"],
                      "accuracy": fr.metrics["accuracy"], "halts": len(getattr(res, "halts", [])),
                      "halted_at": fm.get("halted_at"), "untraded_days": int(fm.get("untraded_days", 0))})
    return {"data": data, "walk_forward": True, "arch": arch, "target": r.target, "fill_model": fill_model,
            "folds": folds, "metrics": _clean(r.wf.metrics), "oos_accuracy": r.oos_accuracy,
            "go_live": _clean(r.go_live), "training_trading": r.training.combined.get("trading"),
            "account": getattr(r.wf, "account", None)}


def write_walk_forward_report(r, doc: dict, out: Path) -> dict[str, str]:
    """Write a walk-forward report into directory ``out`` (created): ``walk_forward.json`` (``doc``,
    written atomically), ``trades.csv`` (every fold's out-of-sample trades, column ``fold``) and
    ``equity.csv`` (the stitched out-of-sample equity in $, ``ts`` UTC). Returns file name → path.
    Raises OSError naming ``out`` when a file cannot be written."""
    import json

    import pandas as pd

    try:
        out.mkdir(parents=True, exist_ok=True)
        r.wf.trades.to_csv(out / "trades.csv", index=False)
        pd.DataFrame({"ts": pd.to_datetime(r.wf.ts, utc=True), "equity": r.wf.equity}).to_csv(
            out / "equity.csv", index=False)
        tmp = out / "walk_forward.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
        tmp.replace(out / "walk_forward.json")
    except OSError as exc:
        raise OSError(f"{out}: cannot write the walk-forward report: {exc}") from exc
    return {k: str(out / k) for k in WALK_FORWARD_FILES}


def _check_value(v) -> str:
    """A go-live value as the CLI's table writes it: the limits dict as ``all`` or what was
    not exercised, a float to 3 decimals, a per-fold list as its items."""
    if isinstance(v, dict):
        missing = [k for k, ok in v.items() if not ok]
        return "all" if not missing else "not exercised: " + ", ".join(missing)
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return str(v)


def _limit_lines(res) -> list[str]:
    from engine.backtest.report import summary_text

    return summary_text(res).splitlines()


_JOBS: dict[str, Callable[[Settings, Any, ProgressCallback], Any]] = {"train": _train_for_console, "walk_forward": _walk_forward_for_console}
"""The work a child process can run (:func:`_child_main`)."""

__all__ = ["TrainingFailed", "WorkFailed", "WorkStopped", "run_backtest_for_console", "run_training_for_console",
           "run_walk_forward_for_console", "walk_forward_doc", "write_walk_forward_report", "WALK_FORWARD_FILES"]
