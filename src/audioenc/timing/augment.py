"""Weak-label training as the field does it: batch augmentations and a mean teacher, each a setting, all off.

Every transform works on a padded training batch of raw log-mel features ``x`` ``[B, M, F]`` (``M`` mel
bands, ``F`` frames, natural-log power: ``x = ln(mel power + 1e-10)``, :mod:`audioenc.timing.features`)
with its real-frame mask ``[B, F]``, clip labels ``y`` ``[B, K]`` and, where a caller has them, frame
(strong) targets ``[B, K, F]`` on the same frame grid. In the order :func:`augment_batch` applies them:

1. **Gain** (``gain_db = G``): each clip gets ``g ~ U(-G, G)`` dB. A dB offset multiplies the power by
   ``10^(g / 10)``, so on natural-log features it is the additive constant ``g * ln(10) / 10``
   (~0.230 per dB), added on real frames only. Labels unchanged.
2. **Time shift** (``shift_frames = S``): each clip is rolled by ``s ~ U{-S..S}`` frames *within its own
   length*: ``x'[t] = x[(t - s) mod L]``. A roll, not a pad-shift: an event pushed past the end comes
   back at the start, so every clip label stays true; frame targets are rolled by the same ``s``.
3. **Mixup** (``mixup_alpha = a``): clip ``b`` is mixed with clip ``perm[b]`` of the same batch at
   ``lam_b ~ Beta(a, a)``. The mix is of *power*, as two sounds add (DESED_task mixes mel power before
   its log): ``x' = ln(lam e^x_b + (1 - lam) e^x_perm) = logaddexp(x_b + ln lam, x_perm + ln(1 - lam))``.
   Labels are mixed with the same weight, ``y' = lam y_b + (1 - lam) y_perm`` (DESED_task's default
   "soft" labels; frame targets likewise). Why soft and not the max ("hard", ``max(y_b, y_perm)``): a
   clip that is 10 % of a dog bark is a weak dog clip, and the BCE with a soft target asks for exactly
   that score; hard labels would train the model to call a barely audible event certain, which
   inflates clip scores of faint events and hurts the calibration the thresholds are chosen on.
   Padded frames of the shorter clip are filled with the band means before mixing (an average
   background, not ``ln 1 = 0``); the mixed clip's real frames are the union of both.
4. **SpecAugment** masks, after the mix so they hide part of the mixture: ``time_masks`` spans of
   ``w ~ U{0..time_mask_frames}`` real frames and ``freq_masks`` bands of ``w ~ U{0..freq_mask_bands}``
   mel bands per clip, filled with the per-band training mean (which the CRNN's input normalisation
   maps to exactly 0, SpecAugment's zero on normalised features). Masks touch the features only:
   no label changes (a masked event is still in the clip; frame targets keep their time axis).

**Mean teacher** (``mean_teacher``; Tarvainen & Valpola 2017, the DCASE task 4 baseline): a teacher, a
copy of the student updated after every optimizer step as an exponential moving average of its
parameters, ``theta_t <- alpha theta_t + (1 - alpha) theta_s`` (``ema_decay = alpha``; buffers such as
batch-norm statistics are copied from the student). The student's loss adds a consistency term::

    loss = BCE(clip scores, y) + w(step) * [ MSE(p_s, p_t) + MSE_real frames(f_s, f_t) ]
    w(step) = consistency_weight * exp(-5 (1 - min(1, step / rampup steps))^2)

with clip (``p``) and frame (``f``) probabilities of student and teacher (teacher without gradient, the
same augmented batch, as DESED_task does). The consistency clips are unlabeled clips when the caller
passes some (the DESED layout names them: ``unlabeled_folder`` in a DESED_task recipe; today's
:mod:`audioenc.audio.desed` does not read that key, so the workflow passes none) and the labeled batch
otherwise. ``keep_teacher``: the teacher, not the student, is validated each epoch and kept.

Randomness: every draw comes from a ``numpy.random.Generator`` seeded from the run's seed
(:func:`augment_generator`), apart from the two models' dropout (torch's global generator, seeded
by the caller), so a seed reproduces a run. With every option off the caller does not use this
module at all and training is bit-identical to training without it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from audioenc.timing.fitting import clip_bce, collate_padded
from audioenc.validation import bounded

LN_PER_DB = math.log(10.0) / 10.0
"""Natural-log change of a power for one dB: ``ln(10) / 10`` (~0.2303)."""

SEED_OFFSET = 7919
"""Added to the run's seed for the augmentation generator, so its draws are not those of the batch order."""


@dataclass(frozen=True)
class AugmentSettings:
    """Weak-label training options (module docstring); each 0/False is off, each switchable alone.

    Attributes:
        mixup_alpha: Beta(a, a) parameter of mixup (0: off; DESED_task uses 0.2).
        time_masks: time masks per clip (0: off).
        time_mask_frames: widest time mask in feature frames.
        freq_masks: frequency masks per clip (0: off).
        freq_mask_bands: widest frequency mask in mel bands.
        shift_frames: largest random roll in feature frames (0: off).
        gain_db: largest random gain in dB (0: off).
        mean_teacher: train with a mean teacher and a consistency loss.
        ema_decay: the teacher's EMA decay alpha (DESED_task: 0.999).
        consistency_weight: the consistency loss's weight after ramp-up (DESED_task: 2).
        rampup_epochs: epochs over which the weight ramps up.
        keep_teacher: validate and keep the teacher instead of the student.
    """

    mixup_alpha: float = bounded(0.0, minimum=0)
    time_masks: int = bounded(0, minimum=0, integer=True)
    time_mask_frames: int = bounded(20, minimum=1, integer=True)
    freq_masks: int = bounded(0, minimum=0, integer=True)
    freq_mask_bands: int = bounded(8, minimum=1, integer=True)
    shift_frames: int = bounded(0, minimum=0, integer=True)
    gain_db: float = bounded(0.0, minimum=0)
    mean_teacher: bool = False
    ema_decay: float = bounded(0.999, minimum=0, maximum=1)
    consistency_weight: float = bounded(2.0, minimum=0)
    rampup_epochs: float = bounded(5.0, minimum=0)
    keep_teacher: bool = False

    @property
    def transforms(self) -> bool:
        """Whether any batch transform is on."""
        return (
            self.mixup_alpha > 0
            or self.time_masks > 0
            or self.freq_masks > 0
            or self.shift_frames > 0
            or (self.gain_db > 0)
        )

    @property
    def active(self) -> bool:
        """Whether anything here changes training (else the plain clip loss is used)."""
        return self.transforms or self.mean_teacher


def augment_generator(seed: int) -> np.random.Generator:
    """The augmentation draws' generator for a run's ``seed``."""
    return np.random.default_rng(seed + SEED_OFFSET)


# =========================================================================== transforms


def add_gain(features: torch.Tensor, mask: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """``x + g * ln(10) / 10`` on real frames: ``features`` ``[B, M, F]``, ``mask`` ``[B, F]``, ``gain_db`` ``[B]``."""
    return features + (gain_db.to(features.dtype) * LN_PER_DB)[:, None, None] * mask[:, None, :]


def roll_within_length(tensor: torch.Tensor, lengths: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll ``tensor`` ``[B, C, F]`` by ``shifts[b]`` frames within each row's first ``lengths[b]`` frames:
    ``out[b, :, t] = tensor[b, :, (t - s_b) mod L_b]`` for ``t < L_b``; padded frames stay where they are."""
    frames = tensor.shape[-1]
    steps = torch.arange(frames)[None, :]
    lengths = lengths[:, None].clamp_min(1)
    index = torch.where(steps < lengths, (steps - shifts[:, None]) % lengths, steps)
    return tensor.gather(2, index[:, None, :].expand(-1, tensor.shape[1], -1))


def mix_clips(
    features: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    order: torch.Tensor,
    fill: torch.Tensor,
    frame_targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mixup of row ``b`` with row ``order[b]`` at weight ``weights[b]`` (module docstring, step 3).

    Args: ``features`` ``[B, M, F]``, ``mask`` ``[B, F]``, ``labels`` ``[B, K]``, ``weights`` ``[B]`` in
    ``[0, 1]``, ``order`` ``[B]`` (a permutation), ``fill`` ``[M]`` (the band means, for padded frames),
    ``frame_targets`` ``[B, K, F]`` or None.

    Returns:
        ``(features, mask, labels, frame_targets)`` mixed; the mask is the union of both clips'.
    """
    filled = torch.where(mask[:, None, :], features, fill[None, :, None].to(features.dtype))
    lam = weights.to(features.dtype)
    # ln(lam e^a + (1 - lam) e^b); log(0) = -inf is exact for lam in {0, 1} (logaddexp(-inf, v) = v)
    mixed = torch.logaddexp(filled + torch.log(lam)[:, None, None], filled[order] + torch.log1p(-lam)[:, None, None])
    new_mask = mask | mask[order]
    mixed = mixed * new_mask[:, None, :]

    def mix(values: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (values.dim() - 1)
        return lam.view(shape) * values + (1 - lam).view(shape) * values[order]

    return mixed, new_mask, mix(labels), None if frame_targets is None else mix(frame_targets)


def mask_spans(
    features: torch.Tensor, spans: Sequence[Sequence[tuple[int, int]]], fill: torch.Tensor, axis: str
) -> torch.Tensor:
    """Fill ``spans[b]`` = ``[(start, width), ...]`` of row ``b`` with ``fill`` ``[M]`` (the band means):
    ``axis="freq"`` masks mel bands ``[start, start + width)``, ``axis="time"`` frames. Returns a new
    ``[B, M, F]`` tensor; labels are never touched."""
    out = features.clone()
    for row, row_spans in enumerate(spans):
        for start, width in row_spans:
            if width <= 0:
                continue
            if axis == "freq":
                out[row, start : start + width, :] = fill[start : start + width, None]
            else:
                out[row, :, start : start + width] = fill[:, None]
    return out


def _draw_spans(rng: np.random.Generator, count: int, widest: int, sizes: Sequence[int]) -> list[list[tuple[int, int]]]:
    """``count`` spans per row of width ``U{0..widest}`` (at most the row's size) at a uniform start."""
    spans = []
    for size in sizes:
        row = []
        for _ in range(count):
            width = int(rng.integers(0, min(widest, size) + 1))
            row.append((int(rng.integers(0, size - width + 1)), width))
        spans.append(row)
    return spans


def augment_batch(
    features: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    settings: AugmentSettings,
    rng: np.random.Generator,
    fill: torch.Tensor,
    frame_targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gain, time shift, mixup, then masks, each only when its setting is on (module docstring).

    Shapes as :func:`mix_clips`; returns ``(features, mask, labels, frame_targets)``.
    """
    batch = features.shape[0]
    lengths = mask.sum(dim=1)
    if settings.gain_db > 0:
        features = add_gain(features, mask, torch.from_numpy(rng.uniform(-settings.gain_db, settings.gain_db, batch)))
    if settings.shift_frames > 0:
        shifts = torch.from_numpy(rng.integers(-settings.shift_frames, settings.shift_frames + 1, batch))
        features = roll_within_length(features, lengths, shifts)
        if frame_targets is not None:
            frame_targets = roll_within_length(frame_targets, lengths, shifts)
    if settings.mixup_alpha > 0 and batch > 1:
        weights = torch.from_numpy(rng.beta(settings.mixup_alpha, settings.mixup_alpha, batch))
        order = torch.from_numpy(rng.permutation(batch))
        features, mask, labels, frame_targets = mix_clips(features, mask, labels, weights, order, fill, frame_targets)
        labels = labels.to(torch.float32)
        lengths = mask.sum(dim=1)
    if settings.freq_masks > 0:
        sizes = [features.shape[1]] * batch
        features = mask_spans(
            features, _draw_spans(rng, settings.freq_masks, settings.freq_mask_bands, sizes), fill, "freq"
        )
    if settings.time_masks > 0:
        sizes = [int(length) for length in lengths]
        features = mask_spans(
            features, _draw_spans(rng, settings.time_masks, settings.time_mask_frames, sizes), fill, "time"
        )
    return features, mask, labels, frame_targets


# =========================================================================== mean teacher


def make_teacher(student: nn.Module) -> nn.Module:
    """The teacher: a copy of the student without gradients."""
    teacher = copy.deepcopy(student)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``theta_t <- decay * theta_t + (1 - decay) * theta_s`` for every parameter; buffers copied."""
    for mine, theirs in zip(teacher.parameters(), student.parameters()):
        mine.mul_(decay).add_(theirs.detach(), alpha=1 - decay)
    for mine, theirs in zip(teacher.buffers(), student.buffers()):
        mine.copy_(theirs)


def consistency_loss(student: object, teacher: object) -> torch.Tensor:
    """``MSE(clip) + MSE(frames over real frames)`` between two :class:`~audioenc.timing.fitting.ClipModelOutput`
    (teacher detached): zero when they agree."""
    clip = nn.functional.mse_loss(student.clip_scores, teacher.clip_scores.detach())
    real = student.mask[:, None, :].to(student.frame_scores.dtype)
    squares = (student.frame_scores - teacher.frame_scores.detach()) ** 2 * real
    frames = squares.sum() / (real.sum() * student.frame_scores.shape[1]).clamp_min(1)
    return clip + frames


def rampup(step: int, rampup_steps: float) -> float:
    """``exp(-5 (1 - min(1, step / rampup_steps))^2)`` (1 at once when ``rampup_steps`` is 0)."""
    if rampup_steps <= 0:
        return 1.0
    progress = min(1.0, step / rampup_steps)
    return math.exp(-5.0 * (1.0 - progress) ** 2)


# =========================================================================== the batch loss


def augmented_clip_loss(
    model: nn.Module,
    inputs: Sequence[np.ndarray],
    targets: np.ndarray,
    settings: AugmentSettings,
    rng: np.random.Generator,
    *,
    teacher: nn.Module | None = None,
    steps_per_epoch: int = 1,
    unlabeled: Sequence[np.ndarray] | None = None,
) -> Callable[[list[int]], torch.Tensor]:
    """``rows -> loss``: the clip BCE of ``model`` on augmented rows of ``inputs`` ``[M, F_i]`` / ``targets``
    ``[N, K]``, plus the ramped consistency with ``teacher`` when given (on as many ``unlabeled`` clips,
    drawn from ``rng``, when given; else on the labeled batch). ``fill`` is the model's ``feature_mean``."""
    step = [0]

    def loss(rows: list[int]) -> torch.Tensor:
        batch, mask = collate_padded([inputs[row] for row in rows])
        labels = torch.from_numpy(targets[rows])
        fill = model.feature_mean.detach()
        if settings.transforms:
            batch, mask, labels, _ = augment_batch(batch, mask, labels, settings, rng, fill)
        output = model(batch, mask)
        total = clip_bce(output.clip_scores, labels)
        if teacher is not None:
            if unlabeled:
                picked = rng.integers(0, len(unlabeled), len(rows))
                other, other_mask = collate_padded([unlabeled[row] for row in picked])
                if settings.transforms:
                    other, other_mask, _, _ = augment_batch(
                        other, other_mask, torch.zeros(len(rows), targets.shape[1]), settings, rng, fill
                    )
                student_output = model(other, other_mask)
            else:
                other, other_mask, student_output = batch, mask, output
            teacher.train()
            with torch.no_grad():
                teacher_output = teacher(other, other_mask)
            weight = settings.consistency_weight * rampup(step[0], settings.rampup_epochs * steps_per_epoch)
            total = total + weight * consistency_loss(student_output, teacher_output)
        step[0] += 1
        return total

    return loss


__all__ = [
    "LN_PER_DB",
    "AugmentSettings",
    "add_gain",
    "augment_batch",
    "augment_generator",
    "augmented_clip_loss",
    "consistency_loss",
    "ema_update",
    "make_teacher",
    "mask_spans",
    "mix_clips",
    "rampup",
    "roll_within_length",
]
