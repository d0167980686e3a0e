"""Model strategy: a checkpoint's batch predictions as signals.

The CHECKPOINT decides the features: the feature set is rebuilt from the checkpoint's manifest
(:meth:`engine.features.FeatureSet.from_manifest`), not from the data. A volume-free model runs on
bars that carry volume (the volume is ignored); a model that needs volume features is refused on
bars without volume, naming the missing features. The whole series is predicted in one batch
(``Predictor.predict_bars``), never one call per bar.

Direct mode (``target.mode = "direct"`` in the manifest): direction is the arg-max class (-1 DOWN /
0 FLAT / +1 UP), confidence the max class probability. Meta-label mode (``"meta"``): the rule
strategy recorded in the manifest (the breakout baseline and its lookback) gives the side, and the
model's probability of taking it, P(side's class) / (P(side's class) + P(FLAT)), is the confidence (the kernel's confidence threshold
decides whether to take it, its confidence multipliers how big). Rows without a prediction
(warm-up) give no signal.

Threshold (issue 24): the checkpoint records the entry threshold chosen on the validation fold by
after-cost expectancy on calibrated confidences (:mod:`engine.ml.calibration`); with ``[signal]
model_threshold = "checkpoint"`` (the default) :func:`apply_threshold` makes it the run's
``min_confidence``. A checkpoint that ABSTAINS (no threshold with positive expectancy after costs
on validation) makes no trade under that default (the threshold becomes unreachable), and
:func:`threshold_note` is the line every caller prints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.strategy.base import StrategySignals


def checkpoint_feature_set(path: str | Path, bars=None):
    """The feature set recorded in checkpoint ``path`` (verified manifest). With ``bars``: refuses
    (``CheckpointError``) bars of another bar size, and bars without volume for a model that uses
    volume features (naming them)."""
    from engine.features import FeatureError, FeatureSet
    from engine.ml.checkpoint import CheckpointError, read_manifest

    body = read_manifest(path, verify=True)["body"]
    try:
        fs = FeatureSet.from_manifest(body["feature_set"])
    except (FeatureError, KeyError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if bars is not None:
        if int(bars.bar_ns) != fs.bar_ns:
            raise CheckpointError(f"{path}: the model was trained on {fs.bar_ns / 1e9:g}-second bars, "
                                  f"the data has {bars.bar_ns / 1e9:g}-second bars")
        if fs.has_volume and not bars.has_volume:
            from engine.features import feature_set_for

            missing = [n for n in fs.names if n not in feature_set_for(fs.bar_ns, False).names]
            raise CheckpointError(f"{path}: the model needs features {missing}, which need volume; "
                                  f"the data {bars.source or bars.symbol} has no volume")
    return fs


ABSTAIN_MIN_CONFIDENCE = 1.01
"""The ``min_confidence`` of a run whose model abstains: no probability reaches it."""


def checkpoint_calibration(path: str | Path) -> dict:
    """The checkpoint's validation calibration record (``temperature``, ``threshold``,
    ``abstain``, ``reason``, ``best``; {} for an older checkpoint without one)."""
    from engine.ml.checkpoint import read_manifest

    return dict(read_manifest(path, verify=False)["body"].get("calibration") or {})


def apply_threshold(settings, cal: dict):
    """Settings for trading a model whose calibration record is ``cal``: with ``[signal]
    model_threshold = "checkpoint"`` and a chosen threshold, ``[signal] min_confidence`` becomes
    it and the first ``[risk] confidence_multipliers`` step is lowered to it when above (below the
    first step no trade is sized); for a model that ABSTAINS, ``min_confidence`` becomes
    :data:`ABSTAIN_MIN_CONFIDENCE` (above any probability: no trade); otherwise (``"config"``, no
    record) the settings are returned unchanged."""
    import dataclasses

    if settings.signal.model_threshold != "checkpoint" or not cal:
        return settings
    if cal.get("abstain"):  # nothing reaches it: the run makes no trade and prints why
        return dataclasses.replace(settings, signal=dataclasses.replace(settings.signal,
                                                                          min_confidence=ABSTAIN_MIN_CONFIDENCE))
    thr = cal.get("threshold")
    if thr is None:
        return settings
    thr = float(thr)
    table = [list(r) for r in settings.risk.confidence_multipliers]
    if table and float(table[0][0]) > thr:
        table[0][0] = thr
    return dataclasses.replace(settings, signal=dataclasses.replace(settings.signal, min_confidence=thr),
                               risk=dataclasses.replace(settings.risk, confidence_multipliers=table))


def threshold_note(settings, cal: dict) -> str:
    """One line saying which entry threshold a model run uses and why (the abstain message with
    its validation figures when the model abstains)."""
    from engine.ml.calibration import abstain_text

    msg = abstain_text(cal)
    if msg:
        return msg
    if settings.signal.model_threshold == "checkpoint" and cal.get("threshold") is not None:
        return (f"entry threshold {float(cal['threshold']):.2f} from the checkpoint (calibrated, temperature "
                f"{float(cal.get('temperature', 1.0)):.3f}; {cal.get('reason', '')})")
    if not cal:
        return (f"entry threshold [signal] min_confidence {settings.signal.min_confidence:g}: the checkpoint "
                "records no validation calibration (trained before issue 24)")
    return f"entry threshold [signal] min_confidence {settings.signal.min_confidence:g} ([signal] model_threshold = \"config\")"


class ModelStrategy:
    """Signals from a model checkpoint at ``path`` (raises the checkpoint loader's errors)."""

    name = "model"

    def __init__(self, path: str | Path, predictor=None) -> None:
        self.path = Path(path)
        self._predictor = predictor

    def predictor_for(self, bars):
        if self._predictor is None:
            from engine.ml.predictor import Predictor

            self._predictor = Predictor.load(self.path, checkpoint_feature_set(self.path, bars))
        return self._predictor

    def calibration(self) -> dict:
        """:func:`checkpoint_calibration` of this strategy's checkpoint."""
        ck = getattr(self._predictor, "checkpoint", None)
        return dict(ck.body.get("calibration") or {}) if ck is not None else checkpoint_calibration(self.path)

    def signals(self, bars) -> StrategySignals:
        pr = self.predictor_for(bars)
        p = pr.predict_bars(bars)
        valid = np.asarray(p.valid, bool)
        ck = getattr(pr, "checkpoint", None)
        target = ck.body.get("target", {}) if ck is not None else {}
        if target.get("mode", "direct") == "meta":
            from engine.strategy.baseline import BreakoutBaseline

            prim = target.get("primary", {})
            side = BreakoutBaseline(lookback=int(prim.get("lookback", 30))).signals(bars).direction
            on = valid & (side != 0)
            from engine.data.target import meta_take_probability

            conf = np.where(on, meta_take_probability(np.nan_to_num(p.probs), side), np.nan)
            d = np.where(on, side, 0).astype(np.int8)
            cls = np.where(on, d + 1, -1).astype(np.int8)
            return StrategySignals(d, conf, cls)
        d = np.where(valid, p.direction, 0).astype(np.int8)
        conf = np.where(valid, p.confidence, np.nan)
        cls = np.where(valid, d + 1, -1).astype(np.int8)
        return StrategySignals(d, conf, cls)
