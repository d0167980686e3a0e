"""Bars → features → labels → walk-forward training → verified checkpoint.

This is what ``mes-console train`` and the training screen call. Features come from
``engine.features.feature_set_for(bars.bar_ns, bars.has_volume)`` (volume features only where the
bars have volume; the manifest lists the names used), labels from ``engine.data.make_target``
with the lookahead of ``engine.data.target_lookahead_bars`` and the instrument's tick size
(``[target] kind = "direction"``), or from the bracket outcome of the kernel's own stop/target
rules net of costs (``kind = "bracket"``, triple barrier, :func:`engine.data.target.bracket_outcomes`);
``[target] mode = "meta"`` labels only the rule strategy's signals (meta-labeling).

Every training report carries, per fold and combined, the out-of-sample expectancy after costs
(ticks and $ per contract) of the trades the model would have taken: a signal where the
predicted side's probability is at least ``[signal] min_confidence`` and the kernel allows an
entry (session, EOD phase), scored with the bracket outcome of that bar
(:func:`engine.data.target.trade_expectancy`), next to the rule strategy's trades on the same
test rows.

Without walk-forward only the most recent fold is trained (same windows as the last
walk-forward fold). The saved model is always the most recent fold's model: its test month is
genuinely out-of-sample, and the manifest carries every fold's metrics and the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import __version__
from engine.ml.checkpoint import bars_content_hash, save_checkpoint
from engine.ml.models import is_sequence, resolve_hparams
from engine.ml.splits import plan_walk_forward
from engine.ml.training import (ProgressCallback, TrainParams, WalkForwardTraining, pick_device,
                                run_walk_forward, valid_sequence_ends)


@dataclass
class Dataset:
    """Aligned arrays of one bar series (``n`` rows): RAW features ``X`` (n, k) float64, labels
    ``y`` int8 (-1 none), forward ``moves`` float64 ticks (NaN where unlabelled), ``ts`` int64 UTC
    ns bar-open times, plus the feature set and target definition used."""

    X: np.ndarray
    y: np.ndarray
    moves: np.ndarray
    ts: np.ndarray
    feature_set: Any
    lookahead_bars: int
    threshold_ticks: int
    tick_size: float
    bar_ns: int
    kind: str = "direction"           # [target] kind
    mode: str = "direct"              # [target] mode
    horizon_bars: int = 0             # bracket time limit (bars)
    outcomes: Any = None              # engine.data.target.BracketOutcomes (scoring, bracket labels)
    primary_side: Any = None          # int8 (n,) rule strategy's side (+1/-1/0)
    entry_ok: Any = None              # bool (n,): the kernel would allow an entry at this close


def primary_strategy(settings: Any):
    """The rule strategy of the meta-label mode and of the trade baselines: ``[backtest]
    strategy`` (only ``baseline`` has a side to meta-label; ``random`` is refused)."""
    from engine.strategy import BreakoutBaseline

    if settings.backtest.strategy != "baseline":
        raise ValueError(f"[backtest] strategy = {settings.backtest.strategy!r}: the meta-label and the trade "
                         "baseline need the rule strategy 'baseline'")
    return BreakoutBaseline(lookback=settings.backtest.baseline_lookback)


def build_dataset(bars: Any, *, target_cfg: Any, tick_size: float, feature_set: Any = None,
                  settings: Any = None) -> Dataset:
    """Features, labels and the bracket outcomes of ``bars`` (see module docstring).

    ``settings`` (:class:`engine.config.Settings`; default: the built-in defaults with
    ``target_cfg``) gives the stop/target rules, costs, slippage and session of the bracket
    outcomes. Raises the data/feature errors of the modules it calls (bad bars are named there)
    and ``ValueError`` for ``mode = "meta"`` with ``kind = "direction"`` (a meta-label is a trade
    outcome: it needs the bracket target)."""
    import dataclasses

    from engine.market.inputs import prepare_market
    from engine.config import Settings
    from engine.data import make_target, target_lookahead_bars
    from engine.data.target import bracket_outcomes, make_bracket_target
    from engine.features import feature_set_for
    from engine.calendar import P_NO_NEW

    s = settings if settings is not None else Settings()
    s = dataclasses.replace(s, target=target_cfg)
    kind, mode = getattr(target_cfg, "kind", "direction"), getattr(target_cfg, "mode", "direct")
    if mode == "meta" and kind != "bracket":
        raise ValueError('[target] mode = "meta" needs kind = "bracket": a meta-label is the outcome of the trade')
    fs = feature_set or feature_set_for(bars.bar_ns, bars.has_volume)
    X = fs.batch(bars)
    h = int(target_lookahead_bars(bars.bar_ns, target_cfg))
    H = int(getattr(target_cfg, "time_limit_bars", 0)) or h
    thr = int(target_cfg.threshold_ticks)
    mk = prepare_market(bars, s, s.backtest.fill_model)
    out = bracket_outcomes(bars, s, horizon_bars=H, market=mk)
    primary = primary_strategy(s).signals(bars).direction
    ts_mode = s.session.trade_session
    sess = mk.is_rth if ts_mode == "rth" else (mk.in_session & ~mk.is_rth if ts_mode == "eth" else mk.in_session)
    entry_ok = np.asarray(sess, bool) & (mk.phase < P_NO_NEW)
    moves = np.full(len(bars), np.nan)
    if kind == "direction":
        y = make_target(bars, lookahead_bars=h, threshold_ticks=thr, tick_size=tick_size)
        c = np.asarray(bars.close, np.float64)
        if len(c) > h:
            moves[:-h] = np.round((c[h:] - c[:-h]) / tick_size)
    else:
        y = make_bracket_target(out, primary if mode == "meta" else None)
        # signed net result in ticks: UP → the long's, DOWN → minus the short's, FLAT → their mean
        moves = np.where(y == 2, out.long_ticks, np.where(y == 0, -out.short_ticks,
                                                          (out.long_ticks - out.short_ticks) / 2))
    moves[y < 0] = np.nan
    return Dataset(X, y, moves, np.asarray(bars.ts, np.int64), fs, h, thr, float(tick_size), int(bars.bar_ns),
                   kind, mode, H, out, primary, entry_ok)


def model_sides(ds: Dataset, rows: np.ndarray, probs: np.ndarray, min_confidence: float) -> np.ndarray:
    """Side (+1/-1/0, int8 (n,)) of the trades the model takes at ``rows`` given their class
    probabilities ``probs`` (m, 3): direct mode, the arg-max class when it is UP/DOWN with a
    probability ≥ ``min_confidence``; meta mode, the rule strategy's side when the probability of
    taking it (:func:`engine.data.target.meta_take_probability`) is ≥ ``min_confidence``. Only where the kernel allows an entry."""
    side = np.zeros(len(ds.y), np.int8)
    rows = np.asarray(rows, np.int64)
    if ds.mode == "meta":
        from engine.data.target import meta_take_probability

        ps = ds.primary_side[rows]
        p = np.nan_to_num(meta_take_probability(probs, ps), nan=0.0)
        side[rows] = np.where(p >= min_confidence, ps, 0)
    else:
        c = probs.argmax(1)
        conf = probs.max(1)
        side[rows] = np.where((conf >= min_confidence) & (c != 1), c - 1, 0)
    side[~ds.entry_ok] = 0
    return side


def trading_score(ds: Dataset, rows: np.ndarray, probs: np.ndarray, min_confidence: float) -> dict:
    """Out-of-sample expectancy after costs of the model's trades at ``rows`` (see
    :func:`engine.data.target.trade_expectancy`): ``model`` at ``min_confidence``, ``model_any``
    at any confidence (the arg-max / meta side alone), and ``rule``: the rule strategy's signals
    on every entry-allowed bar of the span of ``rows``."""
    from engine.data.target import trade_expectancy

    rows = np.asarray(rows, np.int64)
    model = trade_expectancy(ds.outcomes, model_sides(ds, rows, probs, min_confidence), rows)
    if len(rows):
        lo, hi = int(rows.min()), int(rows.max()) + 1
        window = np.arange(lo, hi)
    else:
        window = rows
    rule_side = np.where(ds.entry_ok, ds.primary_side, 0)
    rule = trade_expectancy(ds.outcomes, rule_side, window)
    anyc = trade_expectancy(ds.outcomes, model_sides(ds, rows, probs, 0.0), rows)
    return {"min_confidence": float(min_confidence), "horizon_bars": int(ds.horizon_bars),
            "model": model, "model_any": anyc, "rule": rule}


def select_threshold(ds: Dataset, rows: np.ndarray, probs: np.ndarray) -> dict:
    """The entry threshold of a model chosen on its validation ``rows`` with their calibrated
    ``probs`` (m, 3) by after-cost expectancy (:func:`engine.ml.calibration.choose_threshold`;
    the trades of :func:`model_sides`, scored with the bracket outcomes of ``ds``)."""
    from engine.data.target import trade_expectancy
    from engine.ml.calibration import choose_threshold

    rows = np.asarray(rows, np.int64)
    return choose_threshold(lambda thr: trade_expectancy(ds.outcomes, model_sides(ds, rows, probs, thr), rows))


def scorer(ds: Dataset, default_threshold: float):
    """``score(rows, probs, threshold=default)`` for :func:`engine.ml.training.run_walk_forward`:
    :func:`trading_score` at the fold's chosen threshold; None (the model abstains) takes no trade."""
    def score(rows: np.ndarray, probs: np.ndarray, threshold: float | None = default_threshold) -> dict:
        out = trading_score(ds, rows, probs, 2.0 if threshold is None else float(threshold))
        if threshold is None:
            out["abstain"] = True
        return out
    return score


@dataclass
class TrainReport:
    """What ``train_from_bars`` did: the checkpoint path and a JSON-ready summary."""

    checkpoint: Path
    summary: dict
    result: WalkForwardTraining


def train_from_bars(bars: Any, *, out_dir: str | Path, arch: str, walk_forward: bool,
                    params: TrainParams, training_cfg: Any, target_cfg: Any, tick_size: float,
                    hparams: dict | None = None, data_path: str = "", name: str | None = None,
                    on_progress: ProgressCallback | None = None, settings: Any = None) -> TrainReport:
    """Train (walk-forward or the most recent fold only), save the checkpoint under ``out_dir``
    (``<name or arch-<bar>-<last bar date>>``) and return the report. Progress events: see
    :func:`engine.ml.training.run_walk_forward`, plus ``{"event": "plan", ...}`` first."""
    hp = resolve_hparams(arch, hparams)
    from engine.config import Settings

    s = settings if settings is not None else Settings()
    ds = build_dataset(bars, target_cfg=target_cfg, tick_size=tick_size, settings=s)
    min_conf = float(s.signal.min_confidence)
    finite = np.isfinite(ds.X).all(axis=1)
    usable = (valid_sequence_ends(finite, int(hp["seq_len"])) if is_sequence(arch) else finite) & (ds.y >= 0)
    plan = plan_walk_forward(ds.ts, usable, bar_ns=ds.bar_ns, lookahead_bars=ds.lookahead_bars,
                             train_months=training_cfg.train_months, val_months=training_cfg.val_months,
                             test_months=training_cfg.test_months, roll_months=training_cfg.roll_months,
                             max_folds=None if walk_forward else 1)
    counts = np.bincount(ds.y[ds.y >= 0].astype(np.int64), minlength=3)
    if on_progress:
        on_progress({"event": "plan", "note": plan.note, "folds": len(plan.folds), "scaled": plan.scaled,
                     "rows": int(len(bars)), "usable_rows": int(usable.sum()),
                     "features": list(ds.feature_set.names), "has_volume": bool(ds.feature_set.has_volume),
                     "device": str(pick_device(params.device)),
                     "class_balance": {"DOWN": int(counts[0]), "FLAT": int(counts[1]), "UP": int(counts[2])}})
    res = run_walk_forward(ds.X, ds.y, ds.moves, ds.ts, plan, lookahead_ns=ds.lookahead_bars * ds.bar_ns,
                           arch=arch, hparams=hp, params=params, on_progress=on_progress,
                           score=scorer(ds, min_conf), select=lambda rows, probs: select_threshold(ds, rows, probs))
    final = res.final
    last = res.folds[-1].fold
    import dataclasses

    import pandas as pd

    day = pd.Timestamp(int(ds.ts[-1]), tz="UTC").strftime("%Y%m%d")
    ckpt_name = name or f"{arch}-{int(ds.bar_ns // 1_000_000_000)}s-{day}"
    summary = res.summary()
    training = {
        "data_path": str(data_path), "data_sha256": bars_content_hash(bars), "symbol": bars.symbol,
        "rows": int(len(bars)), "usable_rows": int(usable.sum()),
        "data_start_ns": int(ds.ts[0]), "data_end_ns": int(ds.ts[-1]),
        "data_start": str(pd.Timestamp(int(ds.ts[0]), tz="UTC")), "data_end": str(pd.Timestamp(int(ds.ts[-1]), tz="UTC")),
        "final_model_windows": {"train": last.train.to_dict(), "val": last.val.to_dict(), "test": last.test.to_dict()},
        "walk_forward": bool(walk_forward), "walk_forward_note": plan.note, "windows": plan.lengths,
        "class_balance": {"DOWN": int(counts[0]), "FLAT": int(counts[1]), "UP": int(counts[2])},
        "class_weights": [float(v) for v in final.class_weights],
        "params": {"epochs": params.epochs, "batch_size": params.batch_size, "learning_rate": params.learning_rate,
                   "weight_decay": params.weight_decay, "patience": params.patience, "seed": params.seed},
        "best_epoch": final.best_epoch, "history": final.history,
        "has_volume": bool(ds.feature_set.has_volume),
        "volume_features": "used" if ds.feature_set.has_volume else "dropped: the data has no volume",
    }
    target = {"lookahead_bars": ds.lookahead_bars, "lookahead_s": ds.lookahead_bars * ds.bar_ns / 1e9,
              "threshold_ticks": ds.threshold_ticks, "tick_size": ds.tick_size,
              "classes": ["DOWN", "FLAT", "UP"], "kind": ds.kind, "mode": ds.mode,
              "horizon_bars": ds.horizon_bars}
    if ds.kind == "bracket":
        target["bracket"] = {"stops": dataclasses.asdict(s.stops), "costs": dataclasses.asdict(s.costs),
                             "fill_model": s.backtest.fill_model}
    if ds.mode == "meta":
        target["primary"] = {"strategy": "baseline", "lookback": int(s.backtest.baseline_lookback)}
    path = save_checkpoint(Path(out_dir) / ckpt_name, arch=arch, hparams=final.hparams, model=final.model,
                           scaler=final.scaler, feature_manifest=ds.feature_set.to_manifest(),
                           bar_ns=ds.bar_ns, target=target, class_moves=final.class_moves,
                           training=training, metrics=summary,
                           calibration={**final.calibration, "val_window": last.val.to_dict()})
    doc = {"checkpoint": str(path), "arch": arch, "package_version": __version__, "target": target,
           "training": {k: v for k, v in training.items() if k != "history"}, "walk_forward": summary,
           "calibration": {k: v for k, v in final.calibration.items() if k != "table"}}
    return TrainReport(path, doc, res)
