"""Verified checkpoints (R-ML-5): a directory holding ``weights.safetensors`` and ``manifest.json``.

``manifest.json`` is ``{"format": "mes-console-checkpoint/1", "body": {...}, "checksums":
{"weights_sha256": ..., "body_sha256": ...}}``. ``body`` holds the architecture and
hyper-parameters, the feature set manifest (ordered names, bar size), the scaler (mean/std), the
bar size, the target definition, the class-conditional moves, the training data range and content
hash, the metrics and the package version. ``body_sha256`` is the SHA-256 of the canonical JSON of
``body`` (sorted keys, no spaces), so any edited byte of the body — or of the weights file — is
detected. Weights are loaded with ``safetensors`` (no pickle, no code execution).

Writing is atomic: a temporary sibling directory is filled, fsynced and renamed over the target
with ``os.replace`` (an existing checkpoint at the target is replaced as a whole;
:func:`engine.atomic.atomic_directory`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file, save_file
from torch import nn

from engine import __version__
from engine.atomic import atomic_directory
from engine.ml.models import build_model
from engine.ml.scaler import StandardScaler

FORMAT = "mes-console-checkpoint/1"
WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or does not match the running engine; names the cause."""


def canonical_json(obj: Any) -> bytes:
    """The bytes hashed for ``body_sha256``: sorted keys, compact separators, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bars_content_hash(bars: Any) -> str:
    """SHA-256 over the bytes of ts/open/high/low/close/volume (little-endian) and ``bar_ns``."""
    h = hashlib.sha256()
    for name in ("ts", "open", "high", "low", "close", "volume"):
        h.update(np.ascontiguousarray(getattr(bars, name)).astype(np.dtype(getattr(bars, name).dtype).newbyteorder("<")).tobytes())
    h.update(str(int(bars.bar_ns)).encode())
    return h.hexdigest()


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if np.isfinite(f) else None
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def save_checkpoint(path: str | Path, *, arch: str, hparams: dict, model: nn.Module,
                    scaler: StandardScaler, feature_manifest: dict, bar_ns: int, target: dict,
                    class_moves: dict, training: dict, metrics: dict, extra: dict | None = None,
                    calibration: dict | None = None) -> Path:
    """Write the checkpoint directory ``path`` atomically and return it.

    ``feature_manifest`` is ``FeatureSet.to_manifest()`` (must contain ``names``); ``target`` e.g.
    ``{"lookahead_bars", "lookahead_s", "threshold_ticks", "tick_size"}``; ``class_moves`` from
    training (ticks); ``training`` the data range/hash and parameters; ``metrics`` any JSON-able
    dict (NaN → null); ``calibration``: the validation fit of :func:`engine.ml.training.calibrate_model`
    (``temperature``, ``threshold`` or ``abstain`` with its ``reason`` and validation ``table``),
    stored as ``body["calibration"]``. Raises ``CheckpointError`` on an inconsistent input.
    """
    path = Path(path)
    names = list(feature_manifest.get("names", ()))
    if not names:
        raise CheckpointError("feature manifest has no 'names'")
    if scaler is None:
        raise CheckpointError("refusing to save a checkpoint without a scaler")
    if len(scaler.mean) != len(names):
        raise CheckpointError(f"scaler has {len(scaler.mean)} features, feature set {len(names)}")
    body = _jsonable({
        "arch": arch, "hparams": hparams, "n_features": len(names),
        "feature_names": names, "feature_set": feature_manifest, "scaler": scaler.to_manifest(),
        "bar_ns": int(bar_ns), "target": target, "class_moves": class_moves,
        "training": training, "metrics": metrics, "package_version": __version__,
        **({"extra": extra} if extra else {}),
        **({"calibration": calibration} if calibration else {}),
    })
    with atomic_directory(path) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT, "arch": arch})
        doc = {"format": FORMAT, "body": body,
               "checksums": {"weights_sha256": sha256_file(tmp / WEIGHTS),
                             "body_sha256": hashlib.sha256(canonical_json(body)).hexdigest()}}
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
    return path


@dataclass
class Checkpoint:
    """A verified, loaded checkpoint: the manifest body, the model (eval mode, CPU) and the scaler."""

    path: Path
    body: dict
    model: nn.Module
    scaler: StandardScaler
    checksums: dict

    @property
    def arch(self) -> str:
        return self.body["arch"]

    @property
    def hparams(self) -> dict:
        return self.body["hparams"]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.body["feature_names"])

    @property
    def bar_ns(self) -> int:
        return int(self.body["bar_ns"])

    @property
    def calibration(self) -> dict:
        """The validation calibration record ({} for a checkpoint written before issue 24)."""
        return dict(self.body.get("calibration") or {})

    @property
    def temperature(self) -> float:
        """Logits are divided by this before the softmax (1.0 = uncalibrated)."""
        t = self.calibration.get("temperature")
        return float(t) if isinstance(t, (int, float)) and t > 0 else 1.0


def read_manifest(path: str | Path, *, verify: bool = True) -> dict:
    """The parsed ``manifest.json`` of checkpoint ``path``; with ``verify`` both checksums are
    checked. Raises :class:`CheckpointError` naming the file and the problem."""
    path = Path(path)
    mpath = path / MANIFEST
    wpath = path / WEIGHTS
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory")
    if not mpath.is_file():
        raise CheckpointError(f"{mpath}: manifest missing")
    if not wpath.is_file():
        raise CheckpointError(f"{wpath}: weights file missing")
    try:
        doc = json.loads(mpath.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{mpath}: manifest is not valid JSON ({exc}); the file was changed or damaged") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{mpath}: format {doc.get('format') if isinstance(doc, dict) else None!r}, expected {FORMAT!r}")
    for key in ("body", "checksums"):
        if not isinstance(doc.get(key), dict):
            raise CheckpointError(f"{mpath}: '{key}' missing")
    if verify:
        ck = doc["checksums"]
        got_b = hashlib.sha256(canonical_json(doc["body"])).hexdigest()
        if got_b != ck.get("body_sha256"):
            raise CheckpointError(f"{mpath}: manifest body checksum mismatch (recorded {ck.get('body_sha256')}, "
                                  f"computed {got_b}): the manifest was changed after it was written")
        got_w = sha256_file(wpath)
        if got_w != ck.get("weights_sha256"):
            raise CheckpointError(f"{wpath}: weights checksum mismatch (recorded {ck.get('weights_sha256')}, "
                                  f"computed {got_w}): the weights file was changed or damaged")
    return doc


def compare_feature_sets(recorded: dict, names_rec: list, running: Any, where: str) -> None:
    """Raise :class:`CheckpointError` naming the first difference between the checkpoint's feature
    set and the running one (``bar_ns``, ``names``, then any other manifest key)."""
    if int(running.bar_ns) != int(recorded.get("bar_ns", -1)):
        raise CheckpointError(f"{where}: bar size differs: checkpoint bar_ns={recorded.get('bar_ns')}, "
                              f"engine bar_ns={int(running.bar_ns)}")
    names_run = list(running.names)
    if names_run != list(names_rec):
        missing = [n for n in names_rec if n not in names_run]
        extra = [n for n in names_run if n not in names_rec]
        if missing or extra:
            detail = f"checkpoint has {missing} that the engine lacks; engine has {extra} that the checkpoint lacks"
        else:
            pos = next(i for i, (a, b) in enumerate(zip(names_rec, names_run)) if a != b)
            detail = f"same names in a different order: position {pos} is {names_rec[pos]!r} in the checkpoint, {names_run[pos]!r} in the engine"
        raise CheckpointError(f"{where}: feature names differ from the running feature set: {detail}")
    run_m = _jsonable(running.to_manifest())
    for key in sorted(set(run_m) | set(recorded)):
        if run_m.get(key) != recorded.get(key):
            raise CheckpointError(f"{where}: feature set field {key!r} differs: checkpoint "
                                  f"{recorded.get(key)!r}, engine {run_m.get(key)!r}")


def load_checkpoint(path: str | Path, expected_feature_set: Any = None) -> Checkpoint:
    """Load and verify checkpoint ``path``.

    Refuses (``CheckpointError`` with the difference named): a missing file, a changed byte in the
    weights or manifest body (checksums), a missing or malformed scaler, a manifest whose feature
    names disagree with its own scaler/network size, and — when ``expected_feature_set`` (the
    running ``FeatureSet``) is given — renamed, reordered, added or removed features, a different
    bar size, or any other difference of the feature set manifest.
    """
    path = Path(path)
    doc = read_manifest(path, verify=True)
    body = doc["body"]
    where = str(path)
    for key in ("arch", "hparams", "feature_names", "feature_set", "bar_ns", "target", "class_moves"):
        if key not in body:
            raise CheckpointError(f"{where}: manifest body lacks {key!r}")
    names = body["feature_names"]
    if list(body["feature_set"].get("names", [])) != list(names):
        raise CheckpointError(f"{where}: manifest feature_names and feature_set.names differ")
    if "scaler" not in body or body["scaler"] is None:
        raise CheckpointError(f"{where}: scaler missing: refusing to feed unscaled features to the model")
    try:
        scaler = StandardScaler.from_manifest(body["scaler"], len(names))
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    if int(body["feature_set"].get("bar_ns", body["bar_ns"])) != int(body["bar_ns"]):
        raise CheckpointError(f"{where}: feature_set.bar_ns and bar_ns differ")
    if expected_feature_set is not None:
        compare_feature_sets(body["feature_set"], names, expected_feature_set, where)
    try:
        model = build_model(body["arch"], len(names), body["hparams"])
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    state = load_file(str(path / WEIGHTS))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: weights do not fit the {body['arch']} network: {exc}") from None
    model.eval()
    return Checkpoint(path, body, model, scaler, doc["checksums"])
