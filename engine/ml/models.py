"""PyTorch 3-class classifiers (R-ML-1).

Every model maps scaled features to 3 logits, class order DOWN=0, FLAT=1, UP=2 (R-DATA-5).
Inputs (float32):

* ``mlp``:         ``(batch, k)``
* ``lstm``, ``hybrid``, ``transformer``: ``(batch, seq_len, k)``; the last time step is the bar
  being predicted, earlier steps are the ``seq_len - 1`` bars before it.

Softmax is applied only at inference (:mod:`engine.ml.predictor`); training uses
``CrossEntropyLoss`` on the raw logits. :func:`build_model` is the only constructor used by
training and by checkpoint loading, so an architecture name plus its hyper-parameters fully
determine the network (no pickled code anywhere).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ARCHS = ("mlp", "lstm", "hybrid", "transformer")
SEQUENCE_ARCHS = ("lstm", "hybrid", "transformer")
N_CLASSES = 3

# default hyper-parameters per architecture (the manifest stores the effective ones)
DEFAULT_HPARAMS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": [64, 32], "dropout": 0.1},
    "lstm": {"hidden": 32, "layers": 1, "dropout": 0.1, "seq_len": 32},
    "hybrid": {"channels": 32, "kernel": 3, "hidden": 32, "cell": "gru", "dropout": 0.1, "seq_len": 32},
    "transformer": {"d_model": 32, "heads": 4, "layers": 2, "ff": 64, "dropout": 0.1, "seq_len": 32},
}


class MLP(nn.Module):
    """Feed-forward: Linear → ReLU → Dropout per hidden layer, then Linear to 3 logits."""

    def __init__(self, n_features: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(h)
        layers.append(nn.Linear(width, N_CLASSES))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, k) -> (B, 3)
        return self.net(x)


class _RecurrentClassifier(nn.Module):
    """Base of the recurrent models: the recurrent output's last time step → Dropout → Linear →
    3 logits. The submodules keep the names ``drop`` and ``head`` (checkpoints store them)."""

    drop: nn.Dropout
    head: nn.Linear

    def _init_head(self, hidden: int, dropout: float) -> None:
        self.drop = nn.Dropout(float(dropout))
        self.head = nn.Linear(int(hidden), N_CLASSES)

    def _last_step_logits(self, out: torch.Tensor) -> torch.Tensor:  # (B, T, hidden) -> (B, 3)
        return self.head(self.drop(out[:, -1, :]))


class LSTMNet(_RecurrentClassifier):
    """LSTM over the window; the last hidden state → Linear → 3 logits."""

    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float, seq_len: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, int(hidden), num_layers=int(layers), batch_first=True,
                            dropout=float(dropout) if int(layers) > 1 else 0.0)
        self._init_head(hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, k) -> (B, 3)
        out, _ = self.lstm(x)
        return self._last_step_logits(out)


class HybridNet(_RecurrentClassifier):
    """Causal 1-D convolution over time (local patterns) → GRU or LSTM → Linear → 3 logits."""

    def __init__(self, n_features: int, channels: int, kernel: int, hidden: int, cell: str,
                 dropout: float, seq_len: int) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"hybrid cell {cell!r}: allowed 'gru' or 'lstm'")
        self.pad = int(kernel) - 1
        self.conv = nn.Conv1d(n_features, int(channels), int(kernel))
        self.act = nn.ReLU()
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(int(channels), int(hidden), batch_first=True)
        self._init_head(hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, k) -> (B, 3)
        z = x.transpose(1, 2)                                  # (B, k, T)
        z = nn.functional.pad(z, (self.pad, 0))                # causal: only past steps
        z = self.act(self.conv(z)).transpose(1, 2)             # (B, T, C)
        out, _ = self.rnn(z)
        return self._last_step_logits(out)


class TransformerNet(nn.Module):
    """Linear embedding + learned positions → TransformerEncoder → last step → 3 logits."""

    def __init__(self, n_features: int, d_model: int, heads: int, layers: int, ff: int,
                 dropout: float, seq_len: int) -> None:
        super().__init__()
        self.embed = nn.Linear(n_features, int(d_model))
        self.pos = nn.Parameter(torch.zeros(1, int(seq_len), int(d_model)))
        nn.init.normal_(self.pos, std=1.0 / math.sqrt(int(d_model)))
        layer = nn.TransformerEncoderLayer(int(d_model), int(heads), int(ff), float(dropout),
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, int(layers), enable_nested_tensor=False)
        self.head = nn.Linear(int(d_model), N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, k) -> (B, 3)
        t = x.shape[1]
        z = self.embed(x) + self.pos[:, -t:, :]
        z = self.encoder(z)
        return self.head(z[:, -1, :])


def is_sequence(arch: str) -> bool:
    """True for the architectures that take ``(batch, seq_len, k)`` windows."""
    check_arch(arch)
    return arch in SEQUENCE_ARCHS


def check_arch(arch: str) -> None:
    """Raise ``ValueError`` naming the allowed values for an unknown architecture."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}: allowed {', '.join(ARCHS)}")


def resolve_hparams(arch: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Default hyper-parameters of ``arch`` updated with ``overrides``.

    Raises ``ValueError`` for an unknown architecture or an unknown hyper-parameter name.
    """
    check_arch(arch)
    hp = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_HPARAMS[arch].items()}
    for k, v in (overrides or {}).items():
        if k not in hp:
            raise ValueError(f"{arch}: unknown hyper-parameter {k!r}; known: {', '.join(hp)}")
        hp[k] = list(v) if isinstance(v, (list, tuple)) else v
    return hp


def build_model(arch: str, n_features: int, hparams: dict[str, Any]) -> nn.Module:
    """The network for ``arch`` with ``n_features`` inputs and the given (complete) hyper-parameters.

    Raises ``ValueError`` for an unknown architecture or a missing/unknown hyper-parameter.
    """
    check_arch(arch)
    if n_features < 1:
        raise ValueError(f"n_features must be ≥ 1, got {n_features}")
    expected = set(DEFAULT_HPARAMS[arch])
    if set(hparams) != expected:
        raise ValueError(f"{arch}: hyper-parameters {sorted(hparams)} differ from {sorted(expected)}")
    cls = {"mlp": MLP, "lstm": LSTMNet, "hybrid": HybridNet, "transformer": TransformerNet}[arch]
    return cls(n_features, **hparams)
