"""Adversarial and feature-matching losses over a multi-scale discriminator's outputs.

A multi-scale discriminator returns, for K scales, logits ``D_k(x)`` (any shape) and feature maps
``D_k^l(x)``, l = 1..L_k (see ``audioenc.models.discriminators``). The losses below average over
scales, as audiocraft's ``AdversarialLoss`` does with its default ``normalize=True`` (sum over
scales, divided by K):

Generator (``generator_adversarial_loss``), on the logits of the estimate ŷ:

    hinge:  (1/K) Σ_k mean(-D_k(ŷ))
    mse:    (1/K) Σ_k mean((1 - D_k(ŷ))²)
    hinge2: (1/K) Σ_k mean(max(0, 1 - D_k(ŷ)))

Discriminator (``discriminator_adversarial_loss``), on the logits of the reference x and of ŷ:

    hinge, hinge2: (1/K) Σ_k [mean(max(0, 1 - D_k(x))) + mean(max(0, 1 + D_k(ŷ)))]
    mse:           (1/K) Σ_k [mean((1 - D_k(x))²) + mean(D_k(ŷ)²)]

(hinge and hinge2 differ only in the generator term, as upstream.)

Feature matching (``feature_matching_loss``), the generator's ℓ_feat:

    plain:    (1/K) Σ_k (1/L_k) Σ_l mean|D_k^l(x) - D_k^l(ŷ)|
    relative: (1/K) Σ_k (1/L_k) Σ_l mean|D_k^l(x) - D_k^l(ŷ)| / mean|D_k^l(x)|

The relative form is the EnCodec paper's Eq. 3 (each layer's L1 divided by the mean magnitude of
the reference's features); audiocraft computes that scale but never applies it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

ADVERSARIAL_KINDS: tuple[str, ...] = ("hinge", "mse", "hinge2")


def _check_kind(kind: str, who: str) -> None:
    if kind not in ADVERSARIAL_KINDS:
        raise ValueError(f"{who}: unknown kind {kind!r}; choose one of {', '.join(ADVERSARIAL_KINDS)}.")


def _check_logits(logits: Sequence[torch.Tensor], name: str, who: str) -> None:
    if isinstance(logits, torch.Tensor) or len(logits) == 0:
        raise ValueError(f"{who}: {name} must be a non-empty list of per-scale tensors (one per scale).")
    for index, logit in enumerate(logits):
        if not isinstance(logit, torch.Tensor):
            raise ValueError(f"{who}: {name}[{index}] is a {type(logit).__name__}, expected a tensor.")
        if logit.numel() == 0:
            raise ValueError(
                f"{who}: {name}[{index}] is empty (shape {tuple(logit.shape)}); was the audio shorter "
                "than the discriminator's FFT?"
            )


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor], kind: str = "hinge") -> torch.Tensor:
    """Generator loss on the discriminator's logits for the estimate (lower fools it more).

    Args:
        fake_logits: one tensor per scale, ``D_k(ŷ)`` of any shape (``[B, 1, frames, freq]``).
        kind: ``"hinge"``, ``"mse"`` or ``"hinge2"`` (formulas in the module docstring).

    Returns:
        Scalar, the mean over scales.
    """
    who = "generator_adversarial_loss"
    _check_kind(kind, who)
    _check_logits(fake_logits, "fake_logits", who)
    total = fake_logits[0].new_zeros(())
    for logit in fake_logits:
        if kind == "hinge":
            term = -logit.mean()
        elif kind == "mse":
            term = (1 - logit).pow(2).mean()
        else:  # hinge2
            term = F.relu(1 - logit).mean()
        total = total + term
    return total / len(fake_logits)


def discriminator_adversarial_loss(
    real_logits: Sequence[torch.Tensor],
    fake_logits: Sequence[torch.Tensor],
    kind: str = "hinge",
) -> torch.Tensor:
    """Discriminator loss: push reference logits up (towards ≥ 1) and estimate logits down.

    Args:
        real_logits: ``D_k(x)`` per scale for the reference audio.
        fake_logits: ``D_k(ŷ)`` per scale for the estimate (detached from the generator).
        kind: ``"hinge"``, ``"mse"`` or ``"hinge2"``.

    Returns:
        Scalar, the mean over scales of (real term + fake term).
    """
    who = "discriminator_adversarial_loss"
    _check_kind(kind, who)
    _check_logits(real_logits, "real_logits", who)
    _check_logits(fake_logits, "fake_logits", who)
    if len(real_logits) != len(fake_logits):
        raise ValueError(
            f"{who}: {len(real_logits)} scales of real logits but {len(fake_logits)} of fake logits; "
            "both must come from the same discriminator."
        )
    total = real_logits[0].new_zeros(())
    for real, fake in zip(real_logits, fake_logits):
        if kind == "mse":
            term = (1 - real).pow(2).mean() + fake.pow(2).mean()
        else:  # hinge, hinge2
            term = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        total = total + term
    return total / len(real_logits)


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]],
    fake_features: Sequence[Sequence[torch.Tensor]],
    relative: bool = False,
    eps: float = 1e-12,
) -> torch.Tensor:
    """L1 distance between the discriminator's layer activations for reference and estimate.

    Args:
        real_features: per scale, the list of layer activations for the reference audio. Compute
            them without gradient (``torch.no_grad()``) in the generator step: they do not depend on
            the generator.
        fake_features: the same structure for the estimate.
        relative: divide each layer's L1 by ``mean|real|`` (EnCodec Eq. 3). The divisor is
            detached (a fixed scale per layer) and floored at ``eps``.
        eps: floor of the divisor; only matters when a reference layer is all zeros.

    Returns:
        Scalar, averaged over layers within each scale, then over scales.
    """
    who = "feature_matching_loss"
    if len(real_features) == 0 or len(real_features) != len(fake_features):
        raise ValueError(
            f"{who}: need the same non-zero number of scales, got {len(real_features)} real and "
            f"{len(fake_features)} fake."
        )
    total = None
    for scale, (real_layers, fake_layers) in enumerate(zip(real_features, fake_features)):
        if isinstance(real_layers, torch.Tensor) or isinstance(fake_layers, torch.Tensor):
            raise ValueError(f"{who}: scale {scale} must be a list of layer tensors, got a single tensor.")
        if len(real_layers) == 0 or len(real_layers) != len(fake_layers):
            raise ValueError(
                f"{who}: scale {scale} has {len(real_layers)} real and {len(fake_layers)} fake layers; "
                "need the same non-zero number."
            )
        scale_total = None
        for layer, (real, fake) in enumerate(zip(real_layers, fake_layers)):
            if real.shape != fake.shape:
                raise ValueError(
                    f"{who}: scale {scale}, layer {layer}: real {tuple(real.shape)} and fake "
                    f"{tuple(fake.shape)} differ; were both computed on audio of the same shape?"
                )
            if real.numel() == 0:
                raise ValueError(f"{who}: scale {scale}, layer {layer} is empty (shape {tuple(real.shape)}).")
            # mean|fake - real| as a 1-norm: one reduction pass without an |.| temporary (the maps are
            # large: ~475 M values per estimate at [32, 1, 24000]); accumulated in float32 or wider.
            dtype = torch.promote_types(fake.dtype, torch.float32)
            term = torch.linalg.vector_norm(fake - real, ord=1, dtype=dtype) / real.numel()
            if relative:
                divisor = torch.linalg.vector_norm(real.detach(), ord=1, dtype=dtype) / real.numel()
                term = term / divisor.clamp(min=eps)
            scale_total = term if scale_total is None else scale_total + term
        scale_mean = scale_total / len(real_layers)
        total = scale_mean if total is None else total + scale_mean
    return total / len(real_features)


__all__ = [
    "ADVERSARIAL_KINDS",
    "discriminator_adversarial_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
]
