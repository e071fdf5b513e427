"""The generator's loss table: built from the configuration, weights and order as the balancer needs them."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from audioenc.config import LossConfig
from audioenc.losses.table import GENERATOR_LOSSES, GeneratorView, LossTable


def test_the_table_has_every_configured_weight_in_order():
    table = LossTable.from_config(LossConfig(l1=0.5, mel=2.0, adv=0.0, feat=4.0), torch.nn.Identity())
    assert list(table.terms) == list(GENERATOR_LOSSES) == ["l1", "mel", "adv", "feat"]
    assert table.weights() == {"l1": 0.5, "mel": 2.0, "adv": 0.0, "feat": 4.0}
    assert table.weights(adversarial=False) == {"l1": 0.5, "mel": 2.0}
    assert table.needs_discriminator(True) and not table.needs_discriminator(False)


def test_reconstruction_terms_compute_without_the_discriminator():
    def fake_mel(audio, reconstruction):
        return (audio - reconstruction).abs().max()

    table = LossTable.from_config(LossConfig(), fake_mel)
    audio, reconstruction = torch.randn(2, 1, 50), torch.randn(2, 1, 50)
    values = table.compute(GeneratorView(audio, reconstruction), adversarial=False)
    assert set(values) == {"l1", "mel"}
    assert torch.equal(values["l1"], F.l1_loss(reconstruction, audio))
    assert torch.equal(values["mel"], fake_mel(audio, reconstruction))
