"""Models, training, walk-forward evaluation, verified checkpoints and inference (REQUIREMENTS §3).

Public API:
    build_model, ARCHS                              (models)
    StandardScaler                                  (scaler)
    plan_walk_forward, WalkForwardPlan, Fold        (splits)
    TrainParams, train_model, run_walk_forward      (training)
    classification_metrics, persistence_predictions (metrics)
    save_checkpoint, load_checkpoint, CheckpointError (checkpoint)
    Predictor, PredictionRecord, BatchPredictions   (predictor)
    train_from_bars                                 (pipeline: bars → features → labels → model)
"""

from engine.ml.checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_manifest, save_checkpoint
from engine.ml.metrics import CLASS_NAMES, classification_metrics, persistence_predictions
from engine.ml.models import ARCHS, build_model, is_sequence, resolve_hparams
from engine.ml.predictor import BatchPredictions, PredictionRecord, Predictor
from engine.ml.scaler import StandardScaler
from engine.ml.splits import Fold, WalkForwardPlan, plan_walk_forward
from engine.ml.training import TrainedModel, TrainParams, run_walk_forward, train_model

__all__ = [
    "ARCHS", "BatchPredictions", "CLASS_NAMES", "Checkpoint", "CheckpointError", "Fold",
    "PredictionRecord", "Predictor", "StandardScaler", "TrainParams", "TrainedModel",
    "WalkForwardPlan", "build_model", "classification_metrics", "is_sequence", "load_checkpoint",
    "persistence_predictions", "plan_walk_forward", "read_manifest", "resolve_hparams",
    "run_walk_forward", "save_checkpoint", "train_model",
]
