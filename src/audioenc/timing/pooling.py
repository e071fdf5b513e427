"""Pooling rules: frame scores ``[batch, classes, frames]`` -> clip scores ``[batch, classes]``.

Every rule here is a weighted average over time of the frame probabilities ``y_t`` (in
[0, 1]) of one class,

    clip = sum_t w_t * y_t,    w_t >= 0,    sum_t w_t = 1,

and they differ only in the weights (Wang, Li & Metze 2019, "A comparison of five multiple
instance learning pooling functions for sound event detection with weak labeling"; McFee,
Salamon & Bello 2018, "Adaptive pooling operators for weakly labeled sound event detection"):

================ ========================================= =====================================
name             weights ``w_t``                           clip score
================ ========================================= =====================================
mean             1 / F                                     mean_t y_t
max              one-hot at argmax_t y_t                   max_t y_t
linear_softmax   y_t / sum_s y_s                           sum_t y_t^2 / sum_t y_t
exp_softmax      exp(y_t) / sum_s exp(y_s)                 sum_t y_t e^{y_t} / sum_t e^{y_t}
attention        softmax over TIME of a learned            sum_t w_t y_t
                 per-class score v_k . h_t + b_k
autopool         softmax over time of alpha_k * y_t        sum_t y_t softmax_t(alpha_k y)_t
                 (alpha_k learned per class)
================ ========================================= =====================================

What the weights mean for timing: with mean pooling a clip label can only be reached by
raising *every* frame (the frame scores smear over the clip); max pools pass gradient to a
single frame; linear softmax lets loud frames dominate while quiet frames are free to stay
near zero, which is why it localises events best of these in Wang et al.

The attention rule normalises over time — per class, the weights of the frames sum to one.
The DESED task 4 baseline's attention normalises over *classes* instead (DESED_task issue
#55), which makes a clip score depend on the other classes' evidence; not here.

AutoPool interpolates: alpha = 0 gives mean pooling, alpha -> +inf gives max pooling
(alpha -> -inf gives min). Its alpha starts at ``alpha_init`` (0, as in McFee et al.).

All modules take an optional ``mask`` ``[batch, frames]`` (True = real frame) so that clips
of different lengths padded into one batch pool only over their own frames, and an optional
``features`` ``[batch, in_features, frames]`` used by the attention rule.
"""

from __future__ import annotations

import torch
from torch import nn

_EPSILON = 1e-7


def _check(frame_scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Validate shapes; return the mask as ``[batch, 1, frames]`` bool (all True if None)."""
    if frame_scores.dim() != 3:
        raise ValueError(f"frame scores must be [batch, classes, frames], got shape {tuple(frame_scores.shape)}")
    batch, _, frames = frame_scores.shape
    if mask is None:
        return torch.ones(batch, 1, frames, dtype=torch.bool, device=frame_scores.device)
    if mask.shape != (batch, frames):
        raise ValueError(f"mask must be [batch, frames] = {(batch, frames)}, got {tuple(mask.shape)}")
    mask = mask.to(torch.bool)
    if not bool(mask.any(dim=1).all()):
        raise ValueError("mask leaves a clip without any frame; every clip needs at least one real frame")
    return mask[:, None, :]


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis (time) with masked frames given weight exactly zero."""
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)


class Pooling(nn.Module):
    """Base class: ``forward(frame_scores, features=None, mask=None) -> [batch, classes]``.

    Subclasses define :meth:`weights` (``[batch, classes, frames]``, each row summing to one
    over time) and inherit ``forward = sum_t weights * frame_scores``.

    Attributes:
        needs_features: True when ``features`` must be passed (attention).
    """

    needs_features: bool = False

    @classmethod
    def from_sizes(cls, n_classes: int, in_features: int | None) -> Pooling:
        """The rule for ``n_classes`` classes over frame features of size ``in_features`` (fixed rules need neither)."""
        return cls()

    def weights(
        self, frame_scores: torch.Tensor, features: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pooling weights over time ``[batch, classes, frames]``; zero on masked frames."""
        raise NotImplementedError

    def forward(
        self, frame_scores: torch.Tensor, features: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Clip scores ``[batch, classes]`` from frame scores ``[batch, classes, frames]``."""
        return (self.weights(frame_scores, features, mask) * frame_scores).sum(dim=-1)


class MeanPooling(Pooling):
    """``clip = mean_t y_t`` over the real frames."""

    def weights(self, frame_scores, features=None, mask=None):
        mask = _check(frame_scores, mask).to(frame_scores.dtype).expand_as(frame_scores)
        return mask / mask.sum(dim=-1, keepdim=True)


class MaxPooling(Pooling):
    """``clip = max_t y_t`` over the real frames (gradient reaches the argmax frame only)."""

    def weights(self, frame_scores, features=None, mask=None):
        mask = _check(frame_scores, mask)
        index = frame_scores.masked_fill(~mask, float("-inf")).argmax(dim=-1, keepdim=True)
        return torch.zeros_like(frame_scores).scatter_(-1, index, 1.0)

    def forward(self, frame_scores, features=None, mask=None):
        mask = _check(frame_scores, mask)
        return frame_scores.masked_fill(~mask, float("-inf")).amax(dim=-1)


class LinearSoftmaxPooling(Pooling):
    """``clip = sum_t y_t^2 / sum_t y_t`` (weights ``y_t / sum y``), for ``y`` in [0, 1].

    The denominator is floored at 1e-7, so an all-zero class gives 0 instead of 0/0.
    """

    def weights(self, frame_scores, features=None, mask=None):
        mask = _check(frame_scores, mask)
        masked = frame_scores * mask
        return masked / masked.sum(dim=-1, keepdim=True).clamp_min(_EPSILON)

    def forward(self, frame_scores, features=None, mask=None):
        mask = _check(frame_scores, mask)
        masked = frame_scores * mask
        return (masked * masked).sum(dim=-1) / masked.sum(dim=-1).clamp_min(_EPSILON)


class ExpSoftmaxPooling(Pooling):
    """``clip = sum_t y_t e^{y_t} / sum_t e^{y_t}`` (weights ``softmax_t(y)``)."""

    def weights(self, frame_scores, features=None, mask=None):
        return _masked_softmax(frame_scores, _check(frame_scores, mask))


class AttentionPooling(Pooling):
    """Learned attention over time: ``w_{k,t} = softmax_t(v_k . h_t + b_k)``.

    ``h_t`` are the frame features ``[batch, in_features, frames]`` (for the CRNN: its
    recurrent outputs); ``v_k, b_k`` a per-class linear map (a 1x1 convolution). The softmax
    runs over **time** for each class, so ``sum_t w_{k,t} = 1`` for every class ``k``.
    """

    needs_features = True

    def __init__(self, n_classes: int, in_features: int) -> None:
        super().__init__()
        self.attention = nn.Conv1d(in_features, n_classes, kernel_size=1)

    @classmethod
    def from_sizes(cls, n_classes: int, in_features: int | None) -> AttentionPooling:
        if in_features is None:
            raise ValueError("attention pooling needs in_features (the size of the frame features it attends from)")
        return cls(n_classes, in_features)

    def weights(self, frame_scores, features=None, mask=None):
        mask = _check(frame_scores, mask)
        if features is None:
            raise ValueError("attention pooling needs the frame features [batch, in_features, frames]")
        if features.shape[0] != frame_scores.shape[0] or features.shape[-1] != frame_scores.shape[-1]:
            raise ValueError(
                f"features {tuple(features.shape)} must match frame scores {tuple(frame_scores.shape)} "
                "in batch and frames"
            )
        return _masked_softmax(self.attention(features), mask)


class AutoPool(Pooling):
    """``clip_k = sum_t y_{k,t} softmax_t(alpha_k y_{k,:})_t`` with ``alpha_k`` learned.

    ``alpha = 0`` is mean pooling, large ``alpha`` approaches max pooling (module docstring).
    """

    def __init__(self, n_classes: int, alpha_init: float = 0.0) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((n_classes,), float(alpha_init)))

    @classmethod
    def from_sizes(cls, n_classes: int, in_features: int | None) -> AutoPool:
        return cls(n_classes)

    def weights(self, frame_scores, features=None, mask=None):
        mask = _check(frame_scores, mask)
        if frame_scores.shape[1] != self.alpha.shape[0]:
            raise ValueError(f"AutoPool has {self.alpha.shape[0]} classes, frame scores have {frame_scores.shape[1]}")
        return _masked_softmax(self.alpha[None, :, None] * frame_scores, mask)


POOLINGS: dict[str, type[Pooling]] = {
    "mean": MeanPooling,
    "max": MaxPooling,
    "linear_softmax": LinearSoftmaxPooling,
    "exp_softmax": ExpSoftmaxPooling,
    "attention": AttentionPooling,
    "autopool": AutoPool,
}
"""Pooling rule name -> class, in the order reports list them."""

POOLING_NAMES: tuple[str, ...] = tuple(POOLINGS)
"""Names accepted by :func:`make_pooling`."""


def make_pooling(name: str, n_classes: int, in_features: int | None = None) -> Pooling:
    """Build a pooling module by name (one of :data:`POOLING_NAMES`).

    Args:
        name: pooling rule.
        n_classes: number of classes ``K`` (AutoPool's alphas, attention's outputs).
        in_features: feature size ``D`` of ``features`` ``[batch, D, frames]``; required for
            ``attention``, ignored by the others.
    """
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}; choose one of {', '.join(POOLING_NAMES)}")
    return POOLINGS[name].from_sizes(n_classes, in_features)
