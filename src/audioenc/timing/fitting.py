"""The one training loop of the timing half, and what every model there shares.

Every model of :mod:`audioenc.timing` — the weak-label CRNN, the probe head, the adapted top
block, the workflow's pooling-neutral scorer and learned pooling parameters, the short demo's
beep scorer — trains through :func:`fit_clip_model`::

    for epoch in 1..E:
        for batch in batches(epoch):                 # shuffled clips, or random draws
            loss = batch_loss(batch)                  # e.g. clip BCE of the pooled scores
            zero_grad; backward; clip ||g||_2 <= c; Adam step; schedule step
        validation loss -> keep the state of the lowest one (best, not last)

Clip loss (:func:`clip_bce`), for pooled clip scores ``p`` ``[B, K]`` and multi-hot clip labels
``y`` ``[B, K]``::

    BCE = -mean_{b,k} [ y log p' + (1 - y) log(1 - p') ],   p' = clamp(p, 1e-6, 1 - 1e-6)

The clamp matters: max and linear-softmax pooling reach exactly 0 or 1, where the log is -inf.

Cosine schedule (:class:`FitSettings` ``final_lr_factor = f``): the learning rate at step ``s``
of ``S`` is ``lr * (f + (1 - f) * (1 + cos(pi * s / S)) / 2)``, from ``lr`` down to ``f * lr``.

Randomness: the caller seeds torch's global generator (weights, dropout); batch order draws from
its own generator (:func:`shuffled_batches`, :func:`random_batches`), so the same seed gives the
same model on CPU with a fixed thread count.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from audioenc.errors import UserError

CLAMP = 1e-6
"""Clip scores are clamped to ``[CLAMP, 1 - CLAMP]`` before the log of the BCE."""


# =========================================================================== what models return


@dataclass(frozen=True)
class ClipModelOutput:
    """What a clip model of the timing half returns for a batch.

    Attributes:
        frame_scores: per-class probabilities ``[batch, classes, frames]``.
        clip_scores: pooled probabilities ``[batch, classes]``.
        embeddings: the frame embeddings the scores are read from ``[batch, E, frames]``.
        mask: real (not padded) frames ``[batch, frames]``.
    """

    frame_scores: torch.Tensor
    clip_scores: torch.Tensor
    embeddings: torch.Tensor
    mask: torch.Tensor


@dataclass(frozen=True)
class Predictions:
    """Scores of a model on a set of clips.

    Attributes:
        frame_scores: ``[classes, frames]`` per file, cropped to the clip's own frames.
        clip_scores: ``[classes]`` per file.
        frame_rate: frames per second of ``frame_scores`` (frame ``j`` spans ``[j, j+1) / rate``).
        classes: class order of the rows.
        threshold: the decision threshold of the frame scores (a frame is active strictly
            above it; :mod:`audioenc.timing.postprocess` chooses it on validation).
    """

    frame_scores: dict[str, np.ndarray]
    clip_scores: dict[str, np.ndarray]
    frame_rate: float
    classes: tuple[str, ...]
    threshold: float = 0.5

    def restricted_to(self, classes: Sequence[str]) -> Predictions:
        """The rows of ``classes`` only, in that order."""
        rows = [self.classes.index(name) for name in classes]
        return Predictions(
            {f: s[rows] for f, s in self.frame_scores.items()},
            {f: s[rows] for f, s in self.clip_scores.items()},
            self.frame_rate,
            tuple(classes),
            self.threshold,
        )

    def stacked_clip_scores(self, files: Sequence[str]) -> np.ndarray:
        """Clip scores ``[len(files), classes]`` in the order of ``files``."""
        return np.stack([self.clip_scores[name] for name in files])


@dataclass
class TrainingHistory:
    """Per-epoch record of :func:`fit_clip_model`.

    Attributes:
        train_loss: mean training loss over the batches of each epoch.
        valid_loss: validation loss after each epoch (empty without validation).
        valid_accuracy: share of correct (clip, class) decisions at 0.5 on validation.
        seconds: wall time of each epoch.
        best_epoch: 0-based epoch whose weights were kept (lowest validation loss); -1 when
            the starting weights were kept (``include_start``) or there was no validation.
        pooling: the name of the run (the pooling rule, or ``probe/<rule>``...).
        seed: the seed used.
        stopped: why training ended: ``max_epochs``, ``patience`` (no new best validation loss
            for that many epochs) or ``budget`` (the wall-clock budget would be overrun).
    """

    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    valid_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    pooling: str = ""
    seed: int = 0
    stopped: str = "max_epochs"

    @property
    def still_improving(self) -> bool:
        """Stopped by the epoch limit or the budget while the validation loss was still falling
        (its best among the last two epochs): more training would likely help."""
        return (
            self.stopped != "patience"
            and bool(self.valid_loss)
            and self.best_epoch >= 0
            and self.best_epoch >= len(self.valid_loss) - 2
        )

    def as_dict(self) -> dict:
        """Plain-JSON form (with ``still_improving``)."""
        return {**asdict(self), "still_improving": self.still_improving}


# =========================================================================== batches


def collate_padded(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``[channels, frames_i]`` arrays to ``[B, channels, max frames]`` with a ``[B, max]``
    mask (True on real frames)."""
    longest = max(item.shape[-1] for item in arrays)
    batch = torch.zeros(len(arrays), arrays[0].shape[0], longest)
    mask = torch.zeros(len(arrays), longest, dtype=torch.bool)
    for row, item in enumerate(arrays):
        batch[row, :, : item.shape[-1]] = torch.from_numpy(item)
        mask[row, : item.shape[-1]] = True
    return batch, mask


def frame_statistics(arrays: Iterable[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``[D]`` over every frame of ``[D, F_i]`` arrays (float64 sums):
    the input normalisation of every model here (log-mel bands, embedding dimensions)."""
    total = squares = 0.0
    count = 0
    for item in arrays:
        total = total + item.astype(np.float64).sum(axis=1)
        squares = squares + (item.astype(np.float64) ** 2).sum(axis=1)
        count += item.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def shuffled_batches(
    count: int, batch_size: int, generator: torch.Generator, min_size: int = 1
) -> Callable[[int], Iterator[list[int]]]:
    """Epoch batches: a fresh permutation of ``count`` rows per epoch, cut into ``batch_size``
    pieces; a last piece smaller than ``min_size`` is left out (its rows come back next epoch;
    batch norm needs two clips)."""

    def batches(epoch: int) -> Iterator[list[int]]:
        order = torch.randperm(count, generator=generator).tolist()
        for start in range(0, count, batch_size):
            rows = order[start : start + batch_size]
            if len(rows) >= min_size:
                yield rows

    return batches


def random_batches(count: int, batch_size: int, generator: torch.Generator) -> Callable[[int], Iterator[list[int]]]:
    """One batch per epoch of ``min(batch_size, count)`` rows drawn with replacement: for models
    trained a fixed number of steps (then an "epoch" is one step)."""

    def batches(epoch: int) -> Iterator[list[int]]:
        yield torch.randint(count, (min(batch_size, count),), generator=generator).tolist()

    return batches


def batches_per_epoch(count: int, batch_size: int, min_size: int = 1) -> int:
    """Batches :func:`shuffled_batches` yields per epoch."""
    return count // batch_size + (1 if count % batch_size >= min_size else 0)


# =========================================================================== loss and read-out


def clip_bce(clip_scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Clamped binary cross-entropy of clip scores ``[B, K]`` against labels ``[B, K]`` (module docstring)."""
    return nn.functional.binary_cross_entropy(clip_scores.clamp(CLAMP, 1 - CLAMP), targets)


def frame_bce(
    frame_scores: torch.Tensor,
    targets: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Clamped binary cross-entropy of frame scores ``[B, K, F]`` against frame targets ``[B, K, F]``
    (optional element ``weight``): the mean over all elements, or with ``mask`` ``[B, F]`` over the
    real frames only."""
    loss = nn.functional.binary_cross_entropy(
        frame_scores.clamp(CLAMP, 1 - CLAMP), targets, weight=weight, reduction="none"
    )
    if mask is None:
        return loss.mean()
    return (loss * mask[:, None, :]).sum() / (mask.sum() * frame_scores.shape[1])


def clip_scores(model: nn.Module, inputs: Sequence[np.ndarray], batch_size: int = 1) -> np.ndarray:
    """Clip scores ``[clips, K]`` float32 in eval mode without gradients.

    ``batch_size=1`` runs one clip per forward pass (no padding: exact for any top block);
    larger batches pad and mask (exact for models whose scores do not depend on their batch).
    """
    model.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch, mask = collate_padded(inputs[start : start + batch_size])
            rows.append(model(batch, mask).clip_scores.numpy())
    return np.concatenate(rows).astype(np.float32)


def validation_loss(
    model: nn.Module, inputs: Sequence[np.ndarray], targets: np.ndarray, batch_size: int = 1
) -> tuple[float, float]:
    """``(clip BCE, accuracy of the (clip, class) decisions at 0.5)`` on validation clips."""
    scores = clip_scores(model, inputs, batch_size)
    loss = float(clip_bce(torch.from_numpy(scores), torch.from_numpy(targets)))
    return loss, float(np.mean((scores >= 0.5) == (targets >= 0.5)))


def predict_frames(
    model: nn.Module, inputs: Mapping[str, np.ndarray], frame_rate: float, classes: Sequence[str], batch_size: int = 1
) -> Predictions:
    """Frame ``[K, F]`` and clip ``[K]`` scores per file (sorted by name), eval mode, no grad;
    each clip's frame scores are cropped to its real frames."""
    model.eval()
    names = sorted(inputs)
    frame_scores, clip_scores_by_file = {}, {}
    with torch.no_grad():
        for start in range(0, len(names), batch_size):
            chunk = names[start : start + batch_size]
            output = model(*collate_padded([inputs[name] for name in chunk]))
            for row, name in enumerate(chunk):
                frames = int(output.mask[row].sum())
                frame_scores[name] = output.frame_scores[row, :, :frames].numpy().astype(np.float64)
                clip_scores_by_file[name] = output.clip_scores[row].numpy().astype(np.float64)
    return Predictions(frame_scores, clip_scores_by_file, float(frame_rate), tuple(classes))


# =========================================================================== the loop


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_clip_model` trains.

    Attributes:
        epochs: the most passes (with :func:`random_batches`: steps).
        patience: with validation, stop after this many epochs without a lower validation loss
            (None: run every epoch).
        budget_seconds: stop before an epoch that would end past this wall time (None: no
            budget). A budget makes the epoch count depend on the machine's speed.
        clip_norm: largest gradient 2-norm over the trained parameters (None: no clipping).
        final_lr_factor: cosine decay of every group's learning rate to this share of it over
            ``total_steps`` (None: constant learning rate).
        total_steps: steps the cosine spans (needed with ``final_lr_factor``).
        include_start: the starting weights compete on validation loss (``best_epoch = -1``
            when no epoch beats them): fine-tuning a working model must not end below it.
    """

    epochs: int
    patience: int | None = None
    budget_seconds: float | None = None
    clip_norm: float | None = None
    final_lr_factor: float | None = None
    total_steps: int = 0
    include_start: bool = False


Validation = Callable[[nn.Module], tuple[float, float]]
"""``model -> (validation loss, validation accuracy)``, e.g. a closure over :func:`validation_loss`."""


def _check_finite_training(name: str, epoch: int, what: str, finite: bool) -> None:
    """Stop training with one message once the loss or the weights stop being finite: every later step
    would only spread NaN (and the next forward pass fails deep inside a loss function, naming nothing)."""
    if not finite:
        raise UserError(
            f"training {name or 'a model'}: its {what} became non-finite (NaN or infinity) in epoch "
            f"{epoch + 1}; check the learning rate settings (weak.learning_rate, probe.learning_rate) "
            "and the clips' values, then run again."
        )


def fit_clip_model(
    model: nn.Module,
    parameter_groups: list[dict[str, Any]],
    batches: Callable[[int], Iterable[Any]],
    batch_loss: Callable[[Any], torch.Tensor],
    settings: FitSettings,
    *,
    validate: Validation | None = None,
    name: str = "",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    after_step: Callable[[], None] | None = None,
    kept: nn.Module | None = None,
) -> TrainingHistory:
    """Train ``model`` with Adam over ``parameter_groups`` (the loop of the module docstring).

    Args:
        model: put in train mode for each epoch; left in eval mode with the best weights.
        parameter_groups: Adam's groups (``params``, ``lr``); parameters absent from them
            never change (a frozen encoder is simply not listed).
        batches: ``epoch -> batches`` (:func:`shuffled_batches`, :func:`random_batches`).
        batch_loss: ``batch -> scalar loss`` (runs the model).
        settings: epochs, clipping, schedule, whether the start competes.
        validate: scores the model after each epoch; the state with the lowest validation
            loss is restored at the end. None: the last state is kept.
        name, seed: recorded in the history.
        log: one line per epoch.
        after_step: called after every optimizer step (e.g. a mean teacher's EMA update).
        kept: the module that is validated and whose best state is kept, loaded into ``model`` at
            the end (e.g. the mean teacher, a copy of ``model``); None: ``model`` itself.

    Returns:
        The :class:`TrainingHistory`.
    """
    optimizer = torch.optim.Adam(parameter_groups)
    schedule = None
    if settings.final_lr_factor is not None:
        floor, total = settings.final_lr_factor, max(1, settings.total_steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
    trained = [parameter for group in parameter_groups for parameter in group["params"]]
    history = TrainingHistory(pooling=name, seed=seed)
    best_state, best_loss = None, math.inf
    judged = model if kept is None else kept
    fit_started = time.perf_counter()
    if settings.include_start and validate is not None:
        best_loss = validate(judged)[0]
        best_state, history.best_epoch = copy.deepcopy(judged.state_dict()), -1
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        model.train()
        losses = []
        for batch in batches(epoch):
            loss = batch_loss(batch)
            _check_finite_training(name, epoch, "loss", bool(torch.isfinite(loss.detach()).all()))
            optimizer.zero_grad()
            loss.backward()
            if settings.clip_norm is not None:
                nn.utils.clip_grad_norm_(trained, settings.clip_norm)
            optimizer.step()
            _check_finite_training(name, epoch, "weights", all(bool(torch.isfinite(p).all()) for p in trained))
            if schedule is not None:
                schedule.step()
            if after_step is not None:
                after_step()
            losses.append(float(loss.detach()))
        history.train_loss.append(float(np.mean(losses)))
        if validate is not None:
            valid_loss, valid_accuracy = validate(judged)
            history.valid_loss.append(valid_loss)
            history.valid_accuracy.append(valid_accuracy)
        history.seconds.append(time.perf_counter() - started)
        if validate is not None and history.valid_loss[-1] < best_loss:
            best_loss, best_state, history.best_epoch = (
                history.valid_loss[-1],
                copy.deepcopy(judged.state_dict()),
                epoch,
            )
        if log is not None:
            valid = (
                f", valid loss {history.valid_loss[-1]:.4f}, valid accuracy {history.valid_accuracy[-1]:.3f}"
                if validate is not None
                else ""
            )
            log(
                f"[{name}] epoch {epoch + 1}/{settings.epochs}: train loss {history.train_loss[-1]:.4f}{valid} "
                f"({history.seconds[-1]:.1f} s)"
            )
        if epoch + 1 < settings.epochs:
            if (
                validate is not None
                and settings.patience is not None
                and epoch - history.best_epoch >= settings.patience
            ):
                history.stopped = "patience"
                break
            elapsed = time.perf_counter() - fit_started
            if settings.budget_seconds is not None and elapsed + history.seconds[-1] > settings.budget_seconds:
                history.stopped = "budget"
                break
    if best_state is None and kept is not None:
        best_state = kept.state_dict()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def clip_label_loss(
    model: nn.Module, inputs: Sequence[np.ndarray], targets: np.ndarray
) -> Callable[[list[int]], torch.Tensor]:
    """``rows -> clip BCE`` of ``model`` on those rows of ``inputs`` ``[D, F_i]`` / ``targets`` ``[N, K]``
    (padded and masked): the batch loss of every clip-label model."""

    def loss(rows: list[int]) -> torch.Tensor:
        batch, mask = collate_padded([inputs[row] for row in rows])
        return clip_bce(model(batch, mask).clip_scores, torch.from_numpy(targets[rows]))

    return loss


__all__ = [
    "CLAMP",
    "ClipModelOutput",
    "FitSettings",
    "Predictions",
    "TrainingHistory",
    "Validation",
    "batches_per_epoch",
    "clip_bce",
    "clip_label_loss",
    "clip_scores",
    "collate_padded",
    "fit_clip_model",
    "frame_bce",
    "frame_statistics",
    "predict_frames",
    "random_batches",
    "shuffled_batches",
    "validation_loss",
]
