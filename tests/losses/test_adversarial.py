"""Adversarial and feature-matching losses on small hand-computed tensors."""

from __future__ import annotations

import pytest
import torch

from audioenc.losses.adversarial import (
    discriminator_adversarial_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


# Two scales of logits (the per-scale means differ, so averaging over scales is visible).
FAKE = [t(0.5, -1.0, 2.0, 0.5), t(3.0, -1.0)]
REAL = [t(1.5, 0.0, -0.5, 2.0), t(0.25, 1.0)]


@pytest.mark.parametrize(
    "kind, expected",
    [
        # hinge: -mean; scale 1: -(2.0/4) = -0.5, scale 2: -(2.0/2) = -1.0; mean -0.75.
        ("hinge", -0.75),
        # mse: mean (1-x)^2; scale 1: (0.25+4+1+0.25)/4 = 1.375, scale 2: (4+4)/2 = 4; mean 2.6875.
        ("mse", 2.6875),
        # hinge2: mean relu(1-x); scale 1: (0.5+2+0+0.5)/4 = 0.75, scale 2: (0+2)/2 = 1; mean 0.875.
        ("hinge2", 0.875),
    ],
)
def test_generator_losses_by_hand(kind, expected):
    assert generator_adversarial_loss(FAKE, kind=kind).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "kind, expected",
    [
        # hinge: scale 1: real mean relu(1-r) = (0+1+1.5+0)/4 = 0.625, fake mean relu(1+f) =
        # (1.5+0+3+1.5)/4 = 1.5 -> 2.125; scale 2: (0.75+0)/2 = 0.375 + (4+0)/2 = 2 -> 2.375;
        # mean over scales 2.25.
        ("hinge", 2.25),
        ("hinge2", 2.25),  # same discriminator terms as hinge (upstream too)
        # mse: scale 1: (0.25+1+2.25+1)/4 = 1.125 + (0.25+1+4+0.25)/4 = 1.375 -> 2.5;
        # scale 2: (0.5625+0)/2 = 0.28125 + (9+1)/2 = 5 -> 5.28125; mean 3.890625.
        ("mse", 3.890625),
    ],
)
def test_discriminator_losses_by_hand(kind, expected):
    assert discriminator_adversarial_loss(REAL, FAKE, kind=kind).item() == pytest.approx(expected, abs=1e-12)


REAL_FEATURES = [[t(1.0, -2.0), torch.tensor([[2.0, 2.0], [0.0, 4.0]], dtype=torch.float64)], [t(0.5, -0.5, 1.0, 0.0)]]
FAKE_FEATURES = [[t(0.0, 0.0), torch.tensor([[1.0, 2.0], [0.0, 2.0]], dtype=torch.float64)], [t(0.0, 0.5, 1.0, 1.0)]]


def test_feature_matching_by_hand():
    # Scale 1: layer a |d| = (1+2)/2 = 1.5, layer b (1+0+0+2)/4 = 0.75 -> mean 1.125.
    # Scale 2: (0.5+1+0+1)/4 = 0.625. Mean over scales: (1.125 + 0.625)/2 = 0.875.
    assert feature_matching_loss(REAL_FEATURES, FAKE_FEATURES).item() == pytest.approx(0.875, abs=1e-12)
    # Relative: divide by mean|real| per layer: 1.5/1.5 = 1, 0.75/2 = 0.375 -> 0.6875;
    # 0.625/0.5 = 1.25. Mean: (0.6875 + 1.25)/2 = 0.96875.
    value = feature_matching_loss(REAL_FEATURES, FAKE_FEATURES, relative=True)
    assert value.item() == pytest.approx(0.96875, abs=1e-12)


def test_relative_feature_matching_gradient_by_hand():
    fake = [[f.clone().requires_grad_(True) for f in layers] for layers in FAKE_FEATURES]
    feature_matching_loss(REAL_FEATURES, fake, relative=True).backward()
    # d/d fake of scale 2: sign(fake - real) / (4 elements * 0.5 mean|real| * 1 layer * 2 scales).
    torch.testing.assert_close(fake[1][0].grad, t(-0.25, 0.25, 0.0, 0.25))


def test_identical_features_and_zero_logits():
    assert feature_matching_loss(REAL_FEATURES, REAL_FEATURES, relative=True).item() == 0.0
    zeros = [torch.zeros(3), torch.zeros(2, 2)]
    # hinge at D = 0: relu(1) + relu(1) = 2 per scale; generator -0 = 0.
    assert discriminator_adversarial_loss(zeros, zeros).item() == 2.0
    assert generator_adversarial_loss(zeros).item() == 0.0


def test_mismatched_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown kind 'wgan'"):
        generator_adversarial_loss(FAKE, kind="wgan")
    with pytest.raises(ValueError, match="unknown kind"):
        discriminator_adversarial_loss(REAL, FAKE, kind="bce")
    with pytest.raises(ValueError, match="2 scales of real logits but 1 of fake"):
        discriminator_adversarial_loss(REAL, FAKE[:1])
    with pytest.raises(ValueError, match="non-empty list"):
        generator_adversarial_loss([])
    with pytest.raises(ValueError, match="non-empty list"):
        generator_adversarial_loss(torch.zeros(3))
    with pytest.raises(ValueError, match="is empty"):
        generator_adversarial_loss([torch.zeros(0)])
    with pytest.raises(ValueError, match="2 real and 1 fake"):
        feature_matching_loss(REAL_FEATURES, FAKE_FEATURES[:1])
    with pytest.raises(ValueError, match="scale 0 has 2 real and 1 fake layers"):
        feature_matching_loss(REAL_FEATURES, [FAKE_FEATURES[0][:1], FAKE_FEATURES[1]])
    with pytest.raises(ValueError, match=r"scale 1, layer 0: real \(4,\) and fake \(3,\) differ"):
        feature_matching_loss(REAL_FEATURES, [FAKE_FEATURES[0], [t(0.0, 0.0, 0.0)]])
