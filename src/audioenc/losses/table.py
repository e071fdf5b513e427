"""The generator's losses as one table built from the configuration: name -> weight, computation, kind.

The trainer computes whatever the table lists and hands the table's weights to the
:class:`~audioenc.losses.balancer.Balancer`; a new loss is one entry of :data:`GENERATOR_LOSSES` and one
weight in :class:`~audioenc.config.LossConfig`. Adversarial entries read the discriminator's view of the
reconstruction, so they are left out while the generator warms up on reconstruction alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from audioenc.config import LossConfig
from audioenc.losses.adversarial import feature_matching_loss, generator_adversarial_loss


@dataclass
class GeneratorView:
    """What a generator loss reads for one batch.

    Attributes:
        audio: the target ``[B, C, T]``.
        reconstruction: the codec's output ``[B, C, T]`` (carries the generator's graph).
        fake_logits: the frozen discriminator's logits on the reconstruction, one tensor per scale.
        real_features, fake_features: its feature maps on the target and the reconstruction, per scale.
    """

    audio: torch.Tensor
    reconstruction: torch.Tensor
    fake_logits: list[torch.Tensor] | None = None
    real_features: list[list[torch.Tensor]] | None = None
    fake_features: list[list[torch.Tensor]] | None = None


LossFunction = Callable[[GeneratorView], torch.Tensor]
LossBuilder = Callable[[LossConfig, nn.Module], LossFunction]


@dataclass(frozen=True)
class LossTerm:
    """One row of the table: its balancer weight, its computation and whether it needs the discriminator."""

    weight: float
    compute: LossFunction
    adversarial: bool


def _time_l1(config: LossConfig, mel_loss: nn.Module) -> LossFunction:
    return lambda view: F.l1_loss(view.reconstruction, view.audio)


def _multiscale_mel(config: LossConfig, mel_loss: nn.Module) -> LossFunction:
    return lambda view: mel_loss(view.audio, view.reconstruction)


def _adversarial(config: LossConfig, mel_loss: nn.Module) -> LossFunction:
    kind = config.adversarial
    return lambda view: generator_adversarial_loss([x.to(view.audio.dtype) for x in view.fake_logits], kind=kind)


def _feature_matching(config: LossConfig, mel_loss: nn.Module) -> LossFunction:
    # Feature maps stay in the autocast dtype (a float32 copy of ~475 M values per estimate costs more
    # than the loss); the loss accumulates in float32 or wider.
    relative = config.relative_feature_matching
    return lambda view: feature_matching_loss(view.real_features, view.fake_features, relative=relative)


GENERATOR_LOSSES: dict[str, tuple[LossBuilder, bool]] = {
    "l1": (_time_l1, False),
    "mel": (_multiscale_mel, False),
    "adv": (_adversarial, True),
    "feat": (_feature_matching, True),
}
"""Loss name (its weight's key in ``LossConfig``) -> (builder, adversarial). The order is the computation's
and the balancer's."""


class LossTable:
    """The generator's losses of one run, in :data:`GENERATOR_LOSSES` order."""

    def __init__(self, terms: dict[str, LossTerm]) -> None:
        self.terms = terms

    @classmethod
    def from_config(cls, config: LossConfig, mel_loss: nn.Module) -> LossTable:
        """Every registered loss with its configured weight (``mel_loss``: the multi-scale mel module)."""
        return cls(
            {
                name: LossTerm(weight=getattr(config, name), compute=build(config, mel_loss), adversarial=adversarial)
                for name, (build, adversarial) in GENERATOR_LOSSES.items()
            }
        )

    def active(self, adversarial: bool) -> dict[str, LossTerm]:
        """The terms a step computes: all of them, or the non-adversarial ones during warm-up."""
        return {name: term for name, term in self.terms.items() if adversarial or not term.adversarial}

    def weights(self, adversarial: bool = True) -> dict[str, float]:
        """Balancer weights of :meth:`active` terms."""
        return {name: term.weight for name, term in self.active(adversarial).items()}

    def needs_discriminator(self, adversarial: bool) -> bool:
        return any(term.adversarial for term in self.active(adversarial).values())

    def compute(self, view: GeneratorView, adversarial: bool) -> dict[str, torch.Tensor]:
        """Scalar losses ``{name: tensor}`` of the active terms on ``view``."""
        return {name: term.compute(view) for name, term in self.active(adversarial).items()}
