"""Bars → features → labels → walk-forward training → verified checkpoint.

This is what ``mes-console train`` and the training screen call. Features come from
``engine.features.feature_set_for(bars.bar_ns, bars.has_volume)`` (volume features only where the
bars have volume; the manifest lists the names used), labels from ``engine.data.make_target``
with the lookahead of ``engine.data.target_lookahead_bars`` and the instrument's tick size.

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
from engine.ml.training import (ProgressCallback, TrainParams, WalkForwardResult, pick_device,
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


def build_dataset(bars: Any, *, target_cfg: Any, tick_size: float, feature_set: Any = None) -> Dataset:
    """Features and labels of ``bars`` (see module docstring). Raises the data/feature errors of
    the modules it calls (bad bars are named there)."""
    from engine.data import make_target, target_lookahead_bars
    from engine.features import feature_set_for

    fs = feature_set or feature_set_for(bars.bar_ns, bars.has_volume)
    X = fs.batch(bars)
    h = int(target_lookahead_bars(bars.bar_ns, target_cfg))
    thr = int(target_cfg.threshold_ticks)
    y = make_target(bars, lookahead_bars=h, threshold_ticks=thr, tick_size=tick_size)
    moves = np.full(len(bars), np.nan)
    c = np.asarray(bars.close, np.float64)
    if len(c) > h:
        moves[:-h] = np.round((c[h:] - c[:-h]) / tick_size)
    moves[y < 0] = np.nan
    return Dataset(X, y, moves, np.asarray(bars.ts, np.int64), fs, h, thr, float(tick_size), int(bars.bar_ns))


@dataclass
class TrainReport:
    """What ``train_from_bars`` did: the checkpoint path and a JSON-ready summary."""

    checkpoint: Path
    summary: dict
    result: WalkForwardResult


def train_from_bars(bars: Any, *, out_dir: str | Path, arch: str, walk_forward: bool,
                    params: TrainParams, training_cfg: Any, target_cfg: Any, tick_size: float,
                    hparams: dict | None = None, data_path: str = "", name: str | None = None,
                    on_progress: ProgressCallback | None = None) -> TrainReport:
    """Train (walk-forward or the most recent fold only), save the checkpoint under ``out_dir``
    (``<name or arch-<bar>-<last bar date>>``) and return the report. Progress events: see
    :func:`engine.ml.training.run_walk_forward`, plus ``{"event": "plan", ...}`` first."""
    hp = resolve_hparams(arch, hparams)
    ds = build_dataset(bars, target_cfg=target_cfg, tick_size=tick_size)
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
                           arch=arch, hparams=hp, params=params, on_progress=on_progress)
    final = res.final
    last = res.folds[-1].fold
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
              "classes": ["DOWN", "FLAT", "UP"]}
    path = save_checkpoint(Path(out_dir) / ckpt_name, arch=arch, hparams=final.hparams, model=final.model,
                           scaler=final.scaler, feature_manifest=ds.feature_set.to_manifest(),
                           bar_ns=ds.bar_ns, target=target, class_moves=final.class_moves,
                           training=training, metrics=summary)
    doc = {"checkpoint": str(path), "arch": arch, "package_version": __version__, "target": target,
           "training": {k: v for k, v in training.items() if k != "history"}, "walk_forward": summary}
    return TrainReport(path, doc, res)
