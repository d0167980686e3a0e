"""Training on arrays (R-ML-3) and walk-forward evaluation (R-ML-4).

Inputs are the RAW feature matrix ``X`` ``(n, k)`` float64 (NaN in warm-up rows), the labels
``y`` ``(n,)`` int8 (0 DOWN, 1 FLAT, 2 UP, -1 none), the forward move ``moves`` ``(n,)`` float64 in
ticks (NaN where there is no label) and the bar-open times ``ts`` ``(n,)`` int64 UTC ns.

Training: scaler fitted on the training rows only; class weights ``n / (3 · count_c)`` from the
training labels; class-weighted cross-entropy; AdamW; cosine learning-rate decay per step; early
stopping on the (class-weighted) validation loss with ``patience`` epochs, restoring the best
weights; seeds for torch and numpy; ``torch.use_deterministic_algorithms(True, warn_only=True)``
while training; one torch thread on CPU (``TrainParams.threads``); CUDA when available, else CPU. Progress goes to ``on_progress(event: dict)``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from engine.ml.metrics import (CLASS_NAMES, baseline_metrics, classification_metrics, log_loss, majority_class,
                               persistence_predictions)
from engine.ml.models import build_model, is_sequence, resolve_hparams
from engine.ml.scaler import StandardScaler
from engine.ml.splits import Fold, WalkForwardPlan

ProgressCallback = Callable[[dict], None]


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings (defaults from ``engine.config.TrainingConfig``)."""

    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 7
    device: str | None = None  # None = "cuda" if available else "cpu"
    threads: int = 1           # torch intra-op threads while training on CPU (see train_model)

    @classmethod
    def from_config(cls, tc: Any, **overrides: Any) -> "TrainParams":
        """From an ``engine.config.TrainingConfig``; keyword overrides win when not None."""
        base = dict(epochs=tc.epochs, batch_size=tc.batch_size, learning_rate=tc.learning_rate,
                    patience=tc.patience, seed=tc.seed)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


@dataclass
class TrainedModel:
    """A fitted network plus everything needed to reproduce its inputs and outputs."""

    arch: str
    hparams: dict
    model: nn.Module
    scaler: StandardScaler
    class_weights: np.ndarray          # (3,) float64
    class_moves: dict                  # {"mean": [3 floats, ticks], "std": [3 floats, ticks], "count": [3 ints]}
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    stopped_early: bool = False
    temperature: float = 1.0           # confidence calibration fitted on validation (engine.ml.calibration)
    calibration: dict = field(default_factory=dict)  # temperature fit + entry threshold choice


def pick_device(device: str | None = None) -> torch.device:
    """``cuda`` when available (or asked), else ``cpu``. Asking for ``cuda`` without it raises."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed numpy's global generator and torch (CPU and CUDA)."""
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def class_weights_from(y_train: np.ndarray) -> np.ndarray:
    """``n / (3 · count_c)`` per class (balanced weights). Raises when a class is absent."""
    counts = np.bincount(np.asarray(y_train, np.int64), minlength=3)[:3]
    if (counts == 0).any():
        missing = [CLASS_NAMES[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"training split has no {', '.join(missing)} labels: cannot weight classes")
    return counts.sum() / (3.0 * counts)


def class_moves_from(y_train: np.ndarray, moves_train: np.ndarray) -> dict:
    """Class-conditional mean and std of the forward move (ticks) on the training rows (R-ML-2)."""
    y = np.asarray(y_train, np.int64)
    m = np.asarray(moves_train, np.float64)
    if not np.isfinite(m).all():
        raise ValueError("training moves contain NaN/inf on labelled rows")
    mean, std, count = [], [], []
    for c in range(3):
        mc = m[y == c]
        mean.append(float(mc.mean()) if len(mc) else 0.0)
        std.append(float(mc.std()) if len(mc) else 0.0)
        count.append(int(len(mc)))
    return {"mean": mean, "std": std, "count": count}


def sequence_windows(end_idx: np.ndarray, seq_len: int) -> np.ndarray:
    """``(m, seq_len)`` int64 row indices of the windows ending at ``end_idx`` (oldest first)."""
    return np.asarray(end_idx, np.int64)[:, None] + np.arange(-seq_len + 1, 1, dtype=np.int64)[None, :]


def valid_sequence_ends(finite_rows: np.ndarray, seq_len: int) -> np.ndarray:
    """Bool ``(n,)``: True where the ``seq_len`` rows ending here are all finite."""
    f = np.asarray(finite_rows, bool).astype(np.int64)
    c = np.concatenate([[0], np.cumsum(f)])
    n = len(f)
    ok = np.zeros(n, bool)
    if n >= seq_len:
        ok[seq_len - 1:] = (c[seq_len:] - c[:n - seq_len + 1]) == seq_len
    return ok


class _Batcher:
    """Builds model inputs from the scaled matrix for a set of row indices (no copies of X)."""

    def __init__(self, Xs: torch.Tensor, seq_len: int | None) -> None:
        self.Xs = Xs
        self.seq_len = seq_len

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        if self.seq_len is None:
            return self.Xs[rows]
        offs = torch.arange(-self.seq_len + 1, 1, device=rows.device)
        return self.Xs[rows[:, None] + offs[None, :]]


def _eval(model: nn.Module, batcher: _Batcher, rows: torch.Tensor, y: torch.Tensor, loss_fn,
          chunk: int = 16384) -> tuple[float, np.ndarray]:
    model.eval()
    tot = 0.0
    probs = []
    with torch.inference_mode():
        for i in range(0, len(rows), chunk):
            r = rows[i:i + chunk]
            logits = model(batcher(r))
            tot += float(loss_fn(logits, y[i:i + chunk])) * len(r)
            probs.append(torch.softmax(logits, dim=1).double().cpu().numpy())
    return tot / max(1, len(rows)), (np.concatenate(probs) if probs else np.zeros((0, 3)))


def train_model(X: np.ndarray, y: np.ndarray, moves: np.ndarray, train_idx: np.ndarray,
                val_idx: np.ndarray, *, arch: str = "mlp", hparams: dict | None = None,
                params: TrainParams = TrainParams(), on_progress: ProgressCallback | None = None,
                fold: int = 0) -> TrainedModel:
    """Fit one model on rows ``train_idx`` with early stopping on rows ``val_idx``.

    ``X`` raw features ``(n, k)``; rows named in the index arrays must be finite (and for sequence
    models the ``seq_len`` rows ending there too) and labelled. Raises ``ValueError`` otherwise.
    Emits ``{"event": "epoch", "fold", "epoch", "epochs", "train_loss", "val_loss", "val_acc",
    "lr", "best"}`` after each epoch and ``{"event": "done", "fold", "best_epoch", ...}`` at the end.
    """
    hp = resolve_hparams(arch, hparams)
    seq_len = int(hp["seq_len"]) if is_sequence(arch) else None
    X = np.asarray(X, np.float64)
    y = np.asarray(y)
    train_idx = np.asarray(train_idx, np.int64)
    val_idx = np.asarray(val_idx, np.int64)
    for name, idx in (("train", train_idx), ("val", val_idx)):
        if len(idx) == 0:
            raise ValueError(f"{name} split is empty")
        if (y[idx] < 0).any():
            raise ValueError(f"{name} split contains unlabelled rows")
        rows = sequence_windows(idx, seq_len).ravel() if seq_len else idx
        if seq_len and rows.min() < 0:
            raise ValueError(f"{name} split has a row without {seq_len - 1} earlier rows for its window")
        if not np.isfinite(X[rows]).all():
            raise ValueError(f"{name} split contains rows (or window rows) with NaN/inf features")

    seed_everything(params.seed)
    device = pick_device(params.device)
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cpu":
        # These networks are small: per-op overhead dominates and extra intra-op threads spin
        # (measured 10x slower with 2 threads than with 1 on a busy 2-core machine).
        torch.set_num_threads(max(1, int(params.threads)))
    try:
        scaler = StandardScaler.fit(X[train_idx])
        Xs = np.nan_to_num(scaler.transform(X), nan=0.0)   # NaN rows are never selected (checked above)
        Xt = torch.from_numpy(Xs).to(device)
        yt = torch.from_numpy(y.astype(np.int64)).to(device)
        batcher = _Batcher(Xt, seq_len)
        cw = class_weights_from(y[train_idx])
        model = build_model(arch, X.shape[1], hp).to(device)
        loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(cw, dtype=torch.float32, device=device))
        opt = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
        steps_per_epoch = max(1, -(-len(train_idx) // params.batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=params.epochs * steps_per_epoch,
                                                           eta_min=params.learning_rate * 0.05)
        gen = torch.Generator().manual_seed(params.seed)
        tr_rows = torch.from_numpy(train_idx).to(device)
        va_rows = torch.from_numpy(val_idx).to(device)
        y_val = yt[va_rows]
        best_state, best_loss, best_epoch, bad = None, float("inf"), 0, 0
        history: list[dict] = []
        stopped = False
        for epoch in range(1, params.epochs + 1):
            model.train()
            perm = torch.randperm(len(train_idx), generator=gen).to(device)
            tot, seen = 0.0, 0
            for i in range(0, len(perm), params.batch_size):
                batch = tr_rows[perm[i:i + params.batch_size]]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(batcher(batch)), yt[batch])
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss.detach()) * len(batch)
                seen += len(batch)
            val_loss, val_probs = _eval(model, batcher, va_rows, y_val, loss_fn)
            val_acc = float((val_probs.argmax(1) == y[val_idx]).mean())
            improved = val_loss < best_loss - 1e-6
            if improved:
                best_loss, best_epoch, bad = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
            ev = {"event": "epoch", "fold": fold, "epoch": epoch, "epochs": params.epochs,
                  "train_loss": tot / max(1, seen), "val_loss": val_loss, "val_acc": val_acc,
                  "lr": float(opt.param_groups[0]["lr"]), "best": improved}
            history.append(ev)
            if on_progress:
                on_progress(dict(ev))
            if bad >= params.patience:
                stopped = True
                break
        if best_state is None:   # every epoch's validation loss was NaN/inf: nothing to keep
            raise ValueError(f"fold {fold}: the validation loss was never finite "
                             f"(last {history[-1]['val_loss'] if history else 'none'})")
        model.load_state_dict(best_state)
        model.eval()
        model.cpu()
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)
    tm = TrainedModel(arch, hp, model, scaler, cw, class_moves_from(y[train_idx], moves[train_idx]),
                      history, best_epoch, best_loss, stopped)
    if on_progress:
        on_progress({"event": "done", "fold": fold, "best_epoch": best_epoch, "best_val_loss": best_loss,
                     "stopped_early": stopped, "epochs_run": len(history)})
    return tm


def predict_rows(tm: TrainedModel, X: np.ndarray, rows: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Softmax probabilities ``(m, 3)`` float64 for ``rows`` of the RAW matrix ``X`` (scaler applied;
    the logits divided by the model's calibrated ``temperature``)."""
    seq_len = int(tm.hparams["seq_len"]) if is_sequence(tm.arch) else None
    out = []
    tm.model.eval()
    with torch.inference_mode():
        for i in range(0, len(rows), chunk):
            r = np.asarray(rows[i:i + chunk], np.int64)
            xr = X[sequence_windows(r, seq_len)] if seq_len else X[r]
            xb = torch.from_numpy(tm.scaler.transform(xr))
            out.append(torch.softmax(tm.model(xb) / float(tm.temperature), dim=1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 3))


@dataclass
class FoldResult:
    """Out-of-sample record of one fold."""

    fold: Fold
    model: TrainedModel
    test_probs: np.ndarray            # (m, 3)
    metrics: dict                     # model metrics on the test rows
    baselines: dict                   # majority / persistence metrics on the same rows
    trading: dict | None = None       # out-of-sample expectancy after costs (``score`` of run_walk_forward)

    def summary(self) -> dict:
        return {**self.fold.describe(), "best_epoch": self.model.best_epoch,
                "best_val_loss": self.model.best_val_loss, "stopped_early": self.model.stopped_early,
                "class_weights": [float(v) for v in self.model.class_weights],
                "metrics": self.metrics, "baselines": self.baselines, "trading": self.trading}


@dataclass
class WalkForwardTraining:
    """Per-fold and combined out-of-sample results; ``final`` is the most recent fold's model."""

    plan: WalkForwardPlan
    folds: list[FoldResult]
    combined: dict

    @property
    def final(self) -> TrainedModel:
        return self.folds[-1].model

    def summary(self) -> dict:
        return {"note": self.plan.note, "lengths": self.plan.lengths, "scaled": self.plan.scaled,
                "folds": [f.summary() for f in self.folds], "combined": self.combined}


def evaluate_fold(tm: TrainedModel, X: np.ndarray, y: np.ndarray, ts: np.ndarray, fold: Fold,
                  lookahead_ns: int) -> FoldResult:
    """Score a trained model on the fold's test rows, with both baselines on the same rows."""
    rows = fold.test_idx
    probs = predict_rows(tm, X, rows)
    yt = y[rows].astype(np.int64)
    metrics = classification_metrics(yt, probs.argmax(1), probs)
    maj = majority_class(y[fold.train_idx])
    pers = persistence_predictions(ts, y, lookahead_ns, maj)[rows]
    prior = np.bincount(y[fold.train_idx].astype(np.int64), minlength=3)[:3] / len(fold.train_idx)
    return FoldResult(fold, tm, probs, metrics, baseline_metrics(yt, maj, pers, prior))


def run_walk_forward(X: np.ndarray, y: np.ndarray, moves: np.ndarray, ts: np.ndarray,
                     plan: WalkForwardPlan, *, lookahead_ns: int, arch: str = "mlp",
                     hparams: dict | None = None, params: TrainParams = TrainParams(),
                     on_progress: ProgressCallback | None = None,
                     score: Callable[..., dict] | None = None,
                     select: Callable[[np.ndarray, np.ndarray], dict] | None = None) -> WalkForwardTraining:
    """Train and test every fold of ``plan``; emits ``{"event": "fold_start"|"fold_done", ...}``
    besides the per-epoch events. The combined record scores every test row once (the earliest
    fold that tests it) against the baselines of the same folds. ``score(test_rows, probs)``,
    when given, adds a trading record (expectancy after costs) per fold (``FoldResult.trading``)
    and combined (``combined["trading"]``).

    Every fold's model is calibrated on its VALIDATION rows (temperature scaling,
    :func:`engine.ml.calibration.fit_temperature`; ``TrainedModel.temperature``); ``select(val_rows,
    calibrated val probs)``, when given, chooses the entry threshold there
    (:func:`engine.ml.calibration.choose_threshold`), recorded with the fit in
    ``TrainedModel.calibration``, and ``score`` is then called with that threshold as a third
    argument (None when the model abstains)."""
    results = []
    for fold in plan.folds:
        if on_progress:
            on_progress({"event": "fold_start", "fold": fold.number, "folds": len(plan.folds),
                         **fold.describe()})
        tm = train_model(X, y, moves, fold.train_idx, fold.val_idx, arch=arch, hparams=hparams,
                         params=params, on_progress=on_progress, fold=fold.number)
        calibrate_model(tm, X, y, fold.val_idx, select)
        fr = evaluate_fold(tm, X, y, ts, fold, lookahead_ns)
        if score is not None:
            fr.trading = (score(fold.test_idx, fr.test_probs, tm.calibration.get("threshold"))
                          if select is not None else score(fold.test_idx, fr.test_probs))
        results.append(fr)
        if on_progress:
            on_progress({"event": "fold_done", "fold": fold.number, "folds": len(plan.folds),
                         "trading": fr.trading, "test_acc": fr.metrics["accuracy"],
                         "majority_acc": fr.baselines["majority"]["accuracy"],
                         "persistence_acc": fr.baselines["persistence"]["accuracy"],
                         "log_loss": fr.metrics["log_loss"]})
    seen: set = set()
    yt_all, pr_all, maj_all, pers_all, prior_all, rows_all = [], [], [], [], [], []
    for fr in results:
        rows = fr.fold.test_idx
        keep = np.array([r not in seen for r in rows]) if seen else np.ones(len(rows), bool)
        seen.update(rows.tolist())
        maj = majority_class(y[fr.fold.train_idx])
        rows_all.append(rows[keep])
        yt_all.append(y[rows][keep].astype(np.int64))
        pr_all.append(fr.test_probs[keep])
        maj_all.append(np.full(int(keep.sum()), maj, np.int64))
        pers_all.append(persistence_predictions(ts, y, lookahead_ns, maj)[rows][keep])
        prior = np.bincount(y[fr.fold.train_idx].astype(np.int64), minlength=3)[:3] / len(fr.fold.train_idx)
        prior_all.append(np.tile(prior, (int(keep.sum()), 1)))
    yt = np.concatenate(yt_all)
    pr = np.concatenate(pr_all)
    combined = {"model": classification_metrics(yt, pr.argmax(1), pr),
                "majority": classification_metrics(yt, np.concatenate(maj_all)),
                "persistence": classification_metrics(yt, np.concatenate(pers_all)),
                "prior_log_loss": log_loss(yt, np.concatenate(prior_all))}
    if score is not None:
        combined["trading"] = (score(np.concatenate(rows_all), pr, results[-1].model.calibration.get("threshold"))
                               if select is not None else score(np.concatenate(rows_all), pr))
    return WalkForwardTraining(plan, results, combined)


def calibrate_model(tm: TrainedModel, X: np.ndarray, y: np.ndarray, val_idx: np.ndarray,
                    select: Callable[[np.ndarray, np.ndarray], dict] | None = None) -> dict:
    """Fit ``tm.temperature`` on the validation rows ``val_idx`` and, with ``select``, choose the
    entry threshold on the calibrated validation probabilities; sets and returns
    ``tm.calibration`` (``temperature``, ``nll_before``/``nll_after``, ``rows``, ``val_window``
    and, with ``select``, its ``threshold``/``abstain``/``reason``/``best``/``table``)."""
    from engine.ml.calibration import fit_temperature

    tm.temperature = 1.0
    raw = predict_rows(tm, X, val_idx)
    fit = fit_temperature(raw, y[val_idx])
    tm.temperature = float(fit["temperature"])
    cal: dict = dict(fit)
    if select is not None:
        from engine.ml.calibration import apply_temperature

        cal.update(select(np.asarray(val_idx, np.int64), apply_temperature(raw, tm.temperature)))
    tm.calibration = cal
    return cal
