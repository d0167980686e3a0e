"""Long work launched from the console (R-UI-3, R-UI-4): a backtest or a training run, with
progress, returned as the console's immutable result types.

Both run the same engine code as the CLI (``mes-console backtest`` / ``train``); they block the
calling thread, so the console calls them from a worker thread. Progress is reported through the
``on_progress`` callback on that same thread.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from engine.config import Settings, resolve_dir
from engine.runtime.snapshot import (
    BacktestParams, BacktestResult, Progress, ProgressCallback, TradeRow, TrainingParams,
    TrainingResult,
)


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

    bars = slice_dates(load_bars(Path(data).expanduser()), start and start.isoformat(),
                       end and end.isoformat())
    # the validation gate of the CLI commands: DataError for non-finite prices, unsorted rows,
    # or (with [data] strict) any validation error
    return check_bars(bars, strict=settings.data.strict).bars


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def run_backtest_for_console(settings: Settings, params: BacktestParams,
                             on_progress: ProgressCallback) -> BacktestResult:
    """Backtest with the kernel over the requested bars; report saved under the reports dir.
    Raises the engine's errors (bad file, empty range, checkpoint mismatch) unchanged."""
    from engine.backtest.metrics import compute_metrics
    from engine.backtest.report import summary_text, write_report
    from engine.backtest.runner import run_backtest
    from engine.strategy.baseline import BreakoutBaseline
    from engine.strategy.model import ModelStrategy

    settings = _with_params(settings, params)
    on_progress(Progress(0, 1, "loading bars"))
    bars = _bars_for(settings, params.data, params.start, params.end, params.seed)
    strat = (BreakoutBaseline(lookback=settings.backtest.baseline_lookback) if params.model in ("", "baseline")
             else ModelStrategy(params.model))
    on_progress(Progress(0, len(bars), f"signals: {strat.name}"))
    sig = strat.signals(bars)
    res = run_backtest(bars, sig, settings, fill_model=params.fill_model, strategy_name=strat.name,
                       progress=lambda done, total: on_progress(Progress(done, total, "backtest")),
                       research=params.research)
    m = compute_metrics(res.trades, res.equity, res.day, res.starting_balance, res.ts)
    stamp = f"{strat.name}-{params.fill_model}-{int(bars.ts[0]) // 1_000_000_000}"
    out = resolve_dir(settings.paths.reports_dir, "reports") / stamp
    write_report(res, out, m)
    keys = ("net_pnl", "trades", "win_rate", "profit_factor", "expectancy", "sharpe", "sortino",
            "max_drawdown", "commission", "slippage")
    metrics = tuple((k, _fmt(m[k])) for k in keys if k in m)
    eq = [res.starting_balance]
    for t in res.records:
        eq.append(eq[-1] + t.net_pnl)
    rows = tuple(TradeRow(t.entry_ts, t.exit_ts, "LONG" if t.direction > 0 else "SHORT", t.contracts,
                          t.entry_price, t.exit_price, t.net_pnl, t.exit_reason) for t in res.records)
    on_progress(Progress(len(bars), len(bars), f"done: {len(rows)} trades, net ${m.get('net_pnl', 0.0):,.2f}"))
    return BacktestResult(metrics, tuple(eq), rows, str(out), tuple(summary_text(res).splitlines()))


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
        signal = dataclasses.replace(signal, min_confidence=float(params.min_confidence))
    return dataclasses.replace(settings, stops=stops, signal=signal)


class TrainingFailed(RuntimeError):
    """The training process reported an error (its one-line description) or died."""


def run_training_for_console(settings: Settings, params: TrainingParams,
                             on_progress: ProgressCallback, *, in_process: bool = False) -> TrainingResult:
    """Walk-forward (or single-fold) training; the checkpoint goes to the models dir. Progress:
    one :class:`Progress` per epoch with train/validation loss and validation accuracy.

    By default the training runs in a separate process (``multiprocessing`` spawn) so that its
    Python work never competes for the GIL with the live session's engine thread or the
    console's UI thread (architecture §7); this call blocks its own (worker) thread, relaying
    the child's progress to ``on_progress``. ``in_process=True`` trains on the calling thread.
    Raises :class:`TrainingFailed` with the child's error, or when the child dies."""
    if in_process:
        return _train_for_console(settings, params, on_progress)
    import os
    import pickle
    import subprocess
    import sys
    import tempfile

    # A plain subprocess (not multiprocessing): the console's terminal driver replaces
    # sys.stderr, which multiprocessing's resource tracker needs as a real file descriptor.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", "from engine.runtime.work import _training_main; "
                                 "_training_main()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        try:
            proc.stdin.write(pickle.dumps((settings, params)))
            proc.stdin.close()
            while True:
                try:
                    kind, payload = pickle.load(proc.stdout)
                except EOFError:
                    proc.wait(10)
                    err.seek(0)
                    tail = " ".join(err.read().decode(errors="replace").split()[-40:])
                    raise TrainingFailed(f"the training process ended without a result (exit code "
                                         f"{proc.returncode}){': ' + tail if tail else ''}") from None
                if kind == "progress":
                    on_progress(payload)
                elif kind == "result":
                    return payload
                else:
                    raise TrainingFailed(payload)
        finally:
            if proc.poll() is None:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _training_main() -> None:
    """Entry point of the training process: (settings, params) pickled on stdin; progress, then
    one ``result`` or ``error``, pickled on the original stdout (anything the libraries print
    goes to stderr instead)."""
    import os
    import pickle
    import sys

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    settings, params = pickle.load(sys.stdin.buffer)

    def send(kind: str, payload) -> None:
        pickle.dump((kind, payload), out)
        out.flush()

    try:
        send("result", _train_for_console(settings, params, lambda p: send("progress", p)))
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
            on_progress(Progress(int(ev["epoch"]), int(ev["epochs"]), f"fold {ev['fold']}",
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


__all__ = ["TrainingFailed", "run_backtest_for_console", "run_training_for_console"]
