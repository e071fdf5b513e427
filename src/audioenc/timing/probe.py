"""A probe head on frozen frame embeddings: does the encoder's frame sequence already carry the
events, with their timing?

:class:`ProbeHead` is the HEAR timestamp-probe protocol: a per-frame two-layer perceptron on the
frozen embeddings, a sigmoid per class and a pooling rule to clip scores, trained from clip
labels only (:func:`train_probe`). Per frame, so it sees only what the encoder kept at that
frame: the encoder's parameters never reach an optimizer, and its embeddings are computed once
under ``no_grad`` (:func:`audioenc.timing.encoders.encoder_embeddings`). The scratch baseline it
is compared with is :class:`audioenc.timing.weak.WeakCRNN` trained from random weights on the
same split and labels; light adaptation of the encoder's top block is
:mod:`audioenc.timing.adapt`.

An encoder that hands over a stack of ``L`` layers (a ``transformers`` snapshot with
``layer="all"``: embeddings ``[L·E, F]``, layer ``l`` in rows ``l·E .. (l+1)·E - 1``) is read
through :class:`LayerWeightedSum`, SUPERB's learned softmax-weighted sum of the layers, trained
jointly with the probe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from audioenc.timing.fitting import (
    ClipModelOutput,
    FitSettings,
    TrainingHistory,
    clip_label_loss,
    fit_clip_model,
    frame_statistics,
    shuffled_batches,
    validation_loss,
)
from audioenc.timing.pooling import make_pooling
from audioenc.validation import bounded


@dataclass(frozen=True)
class ProbeConfig:
    """Probe head and its training.

    Attributes:
        kind: ``frame`` — a per-frame hidden layer (the HEAR timestamp-probe protocol: it sees
            only what the encoder kept at each frame) — or ``conv``, a hidden layer over
            ``context_frames`` neighbouring frames (tells whether the timing is in the frame
            sequence rather than in single frames).
        context_frames: the ``conv`` probe's kernel, in frames (odd; centred).
        hidden: units of the hidden layer.
        dropout: dropout on the hidden layer while training.
        max_epochs: the most passes over the training clips.
        patience: epochs without a lower validation loss before stopping (None: never early).
        budget_seconds: wall-clock limit of one probe training (None: none).
        batch_size: clips per step.
        learning_rate: Adam step size of the probe.
        adapt_epochs: the most passes while adapting the top block(s) (stopped by ``patience``
            and ``budget_seconds`` too).
        adapt_lr_factor: the top block's learning rate relative to ``learning_rate``.
        adapt_top_layers: how many top layers adaptation unfreezes: transformer layers of a
            ``transformers`` snapshot, conv blocks of CREPE (of the five its embedding uses); the
            codec and the weak CRNN have one top block and accept 1 only.
    """

    kind: str = "frame"
    context_frames: int = bounded(5, minimum=1, integer=True)
    hidden: int = bounded(64, minimum=1, integer=True)
    dropout: float = bounded(0.1, minimum=0, below=1)
    max_epochs: int = bounded(60, minimum=1, integer=True)
    patience: int | None = bounded(8, minimum=1, integer=True)
    budget_seconds: float | None = bounded(None, minimum=0)
    batch_size: int = bounded(16, minimum=1, integer=True)
    learning_rate: float = bounded(3e-3, above=0)
    adapt_epochs: int = bounded(12, minimum=1, integer=True)
    adapt_lr_factor: float = bounded(0.1, above=0)
    adapt_top_layers: int = bounded(1, minimum=1, integer=True)

    @property
    def description(self) -> str:
        """Which probe, in words (the report states it)."""
        if self.kind == "conv":
            return (
                f"a temporal-context probe: a kernel-{self.context_frames} convolution over frames "
                f"({self.hidden} units), then a per-frame output layer"
            )
        return f"a per-frame probe: a two-layer perceptron on each frame ({self.hidden} units), the HEAR protocol"


class LayerWeightedSum(nn.Module):
    """SUPERB's learned softmax-weighted sum of ``L`` layers (s3prl's featurizer).

    Math, for a stack ``x`` ``[B, L·E, F]`` viewed as ``[B, L, E, F]`` (layer ``l`` = rows ``l·E ..
    (l+1)·E - 1``) and logits ``w`` ``[L]`` (initialised to 0: uniform weights ``1 / L``)::

        s = softmax(w)                        [L]
        y = sum_l s_l x_l                     [B, E, F]
        dy / dw_j = s_j (x_j - y)             (the softmax's Jacobian; what autograd computes)

    Which layers matter is read from ``s`` after training (:meth:`weights`).
    """

    def __init__(self, layers: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(layers))

    def weights(self) -> torch.Tensor:
        """``softmax(w)`` ``[L]``."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        layers = self.logits.shape[0]
        batch, rows, frames = stacked.shape
        if rows % layers:
            raise ValueError(f"a stack of {rows} rows does not split into {layers} layers")
        per_layer = stacked.reshape(batch, layers, rows // layers, frames)
        return (self.weights()[None, :, None, None] * per_layer).sum(dim=1)


@dataclass(frozen=True)
class LayerWeights:
    """The learned weight of each layer a probe read (:meth:`ProbeHead.layer_weights`).

    Attributes:
        layers: layer (hidden-state) indices, in the stack's order.
        weights: ``softmax(w)`` for each, summing to 1.
    """

    layers: tuple[int, ...]
    weights: tuple[float, ...]

    def to_json(self) -> list[dict]:
        """``[{"layer": l, "weight": s_l}, ...]``."""
        return [{"layer": layer, "weight": weight} for layer, weight in zip(self.layers, self.weights)]

    def sentence(self) -> str:
        """The weights in words, the largest named (for the report)."""
        largest = max(range(len(self.weights)), key=self.weights.__getitem__)
        listed = ", ".join(f"{layer}: {weight:.3f}" for layer, weight in zip(self.layers, self.weights))
        return (
            f"learned softmax weights over hidden states {self.layers[0]}-{self.layers[-1]} ({listed}); "
            f"largest on layer {self.layers[largest]} ({self.weights[largest]:.3f}, uniform would be "
            f"{1 / len(self.weights):.3f})"
        )


class ProbeHead(nn.Module):
    """A probe on frozen embeddings, pooled to clip scores.

    Math, for embeddings ``e`` ``[B, E, F]`` (train-set mean ``mu`` and std ``sigma`` per dim)::

        z = (e - mu) / sigma   (zero on padded frames)
        z = sum_l softmax(w)_l z_l         [B, E / L, F]    only for a stack of L > 1 layers
        h = ReLU(W1 * z + b1)              [B, hidden, F]   kernel 1 (per frame) or c frames (centred)
        y = sigmoid(W2 h + b2)             [B, K, F]        frame scores
        clip = pool(y, features=h, mask)   [B, K]           (a rule of audioenc.timing.pooling)

    Args:
        embedding_size: ``E``.
        classes: class names, in output order.
        pooling: pooling rule name.
        hidden: hidden units.
        dropout: dropout on ``h`` in training mode.
        context_frames: the first layer's kernel ``c`` (1: the per-frame HEAR probe; odd).
        layers: ``L``, layers stacked in the embeddings (``E = L · E_layer``); above 1 they are
            mixed by a :class:`LayerWeightedSum` trained with the probe. Each layer is standardised
            per dimension (the train-set ``mu``, ``sigma`` above) *before* the sum, so the weights
            compare layers rather than their scales: the role of s3prl's optional per-layer layer
            norm, done with the statistics every probe here already uses. With ``L = 1`` there is
            no sum and the probe is exactly the single-layer one.
    """

    def __init__(
        self,
        embedding_size: int,
        classes: Sequence[str],
        pooling: str,
        hidden: int = 64,
        dropout: float = 0.1,
        context_frames: int = 1,
        layers: int = 1,
    ) -> None:
        super().__init__()
        if context_frames < 1 or context_frames % 2 == 0:
            raise ValueError(
                f"context_frames={context_frames}: the probe's kernel must be a positive odd number of frames"
            )
        if layers < 1 or embedding_size % layers:
            raise ValueError(f"embeddings of {embedding_size} dims do not hold {layers} equal layers")
        self.classes = tuple(classes)
        self.pooling_name = pooling
        self.layers = layers
        self.register_buffer("embedding_mean", torch.zeros(embedding_size))
        self.register_buffer("embedding_std", torch.ones(embedding_size))
        # One layer: an identity without parameters, so the probe (and its state dict) is the single-layer one.
        self.layer_sum = LayerWeightedSum(layers) if layers > 1 else nn.Identity()
        self.hidden = nn.Conv1d(
            embedding_size // layers, hidden, kernel_size=context_frames, padding=context_frames // 2
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv1d(hidden, len(self.classes), kernel_size=1)
        self.pooling = make_pooling(pooling, len(self.classes), in_features=hidden)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension ``(e - mean) / std``, shapes ``[E]`` (std floored at 1e-5)."""
        self.embedding_mean.copy_(mean)
        self.embedding_std.copy_(std.clamp_min(1e-5))

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor | None = None) -> ClipModelOutput:
        if mask is None:
            mask = torch.ones(embeddings.shape[0], embeddings.shape[-1], dtype=torch.bool, device=embeddings.device)
        normalised = (embeddings - self.embedding_mean[:, None]) / self.embedding_std[:, None]
        normalised = (
            normalised * mask[:, None, :]
        )  # a kernel wider than 1 sees zeros past a clip's end, alone or padded
        normalised = self.layer_sum(normalised)
        hidden = self.dropout(torch.relu(self.hidden(normalised)))
        frame_scores = torch.sigmoid(self.head(hidden))
        clip_scores = self.pooling(frame_scores, hidden, mask)
        return ClipModelOutput(frame_scores=frame_scores, clip_scores=clip_scores, embeddings=hidden, mask=mask)

    def layer_weights(self) -> LayerWeights:
        """Each stacked layer's learned weight, layer ``l`` = the ``l``-th group of the embeddings (a
        snapshot's ``layer="all"`` stacks hidden states ``0 .. L - 1`` in order); ``(0,), (1.0,)`` for one layer."""
        if self.layers == 1:
            return LayerWeights((0,), (1.0,))
        weights = self.layer_sum.weights().detach().cpu().double().tolist()
        return LayerWeights(tuple(range(self.layers)), tuple(weights))


def probe_layers_text(probe: ProbeHead) -> str:
    """The probe's reading of a layer stack, as a clause for the report (``""`` for one layer)."""
    if probe.layers == 1:
        return ""
    return (
        f"; it reads a learned softmax-weighted sum of the {probe.layers} stacked hidden states (SUPERB's "
        "convention; each standardised per dimension on the training clips first), " + probe.layer_weights().sentence()
    )


def fit_on_clips(
    model: nn.Module,
    parameter_groups: list[dict],
    train_inputs: Sequence[np.ndarray],
    train_targets: np.ndarray,
    valid_inputs: Sequence[np.ndarray],
    valid_targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    name: str,
    patience: int | None = None,
    budget_seconds: float | None = None,
    include_start: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainingHistory:
    """Train ``model(inputs [B, D, F], mask [B, F]) -> ClipModelOutput`` on clip labels: shuffled
    batches, gradient norm clipped at 5, validation one clip per pass, best state kept, early stop
    after ``patience`` epochs without a new best or at the budget
    (:func:`~audioenc.timing.fitting.fit_clip_model`); dropout and batch order draw from ``seed``.
    With ``include_start`` the starting weights compete (fine-tuning must not end below them)."""
    if len(train_inputs) != len(train_targets) or len(valid_inputs) != len(valid_targets):
        raise ValueError("inputs and targets differ in length")
    torch.manual_seed(seed)
    return fit_clip_model(
        model,
        parameter_groups,
        shuffled_batches(len(train_inputs), batch_size, torch.Generator().manual_seed(seed)),
        clip_label_loss(model, train_inputs, train_targets),
        FitSettings(
            epochs, patience=patience, budget_seconds=budget_seconds, clip_norm=5.0, include_start=include_start
        ),
        validate=lambda trained: validation_loss(trained, valid_inputs, valid_targets),
        name=name,
        seed=seed,
        log=log,
    )


def train_probe(
    train_frames: Mapping[str, np.ndarray],
    train_targets: np.ndarray,
    valid_frames: Mapping[str, np.ndarray],
    valid_targets: np.ndarray,
    classes: Sequence[str],
    pooling: str,
    *,
    config: ProbeConfig = ProbeConfig(),
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    layers: int = 1,
) -> tuple[ProbeHead, TrainingHistory]:
    """Train a :class:`ProbeHead` on frozen embeddings ``[E, F]`` per file (dict order = target rows);
    ``layers > 1``: the embeddings stack that many layers, mixed by learned weights trained jointly."""
    first = next(iter(train_frames.values()))
    torch.manual_seed(seed)
    probe = ProbeHead(
        first.shape[0],
        classes,
        pooling,
        config.hidden,
        config.dropout,
        context_frames=config.context_frames if config.kind == "conv" else 1,
        layers=layers,
    )
    probe.set_normalization(*frame_statistics(train_frames.values()))
    history = fit_on_clips(
        probe,
        [{"params": list(probe.parameters()), "lr": config.learning_rate}],
        list(train_frames.values()),
        train_targets,
        list(valid_frames.values()),
        valid_targets,
        epochs=config.max_epochs,
        batch_size=config.batch_size,
        seed=seed,
        name=f"probe/{pooling}",
        patience=config.patience,
        budget_seconds=config.budget_seconds,
        log=log,
    )
    return probe, history


__all__ = [
    "LayerWeightedSum",
    "LayerWeights",
    "ProbeConfig",
    "ProbeHead",
    "fit_on_clips",
    "probe_layers_text",
    "train_probe",
]
