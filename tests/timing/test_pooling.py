"""Pooling rules against hand-computed values and their limits.

References: hand computations written out in each test (the formulas of Wang, Li & Metze 2019
and McFee et al. 2018, evaluated on two or three frames).
"""

from __future__ import annotations

import math

import pytest
import torch

from audioenc.timing.pooling import (
    POOLING_NAMES,
    AttentionPooling,
    AutoPool,
    make_pooling,
)

# One clip, two classes, three frames.
SCORES = torch.tensor([[[0.2, 0.6, 0.2], [0.5, 0.5, 0.0]]], dtype=torch.float64)


def test_mean_max_linear_exp_softmax_hand_values():
    # Hand computation, class 0 = (0.2, 0.6, 0.2), class 1 = (0.5, 0.5, 0.0):
    #   mean: 1.0/3 and 1.0/3;  max: 0.6 and 0.5
    #   linear softmax: (0.04+0.36+0.04)/1.0 = 0.44 and (0.25+0.25)/1.0 = 0.5
    #   exp softmax: (0.2e^.2 + 0.6e^.6 + 0.2e^.2)/(2e^.2 + e^.6), (0.5e^.5*2)/(2e^.5 + 1)
    e = math.exp
    expected = {
        "mean": [1.0 / 3, 1.0 / 3],
        "max": [0.6, 0.5],
        "linear_softmax": [0.44, 0.5],
        "exp_softmax": [
            (0.4 * e(0.2) + 0.6 * e(0.6)) / (2 * e(0.2) + e(0.6)),
            (1.0 * e(0.5)) / (2 * e(0.5) + 1.0),
        ],
    }
    for name, values in expected.items():
        clip = make_pooling(name, n_classes=2).double()(SCORES)
        assert clip.shape == (1, 2)
        assert torch.allclose(clip[0], torch.tensor(values, dtype=torch.float64), atol=1e-12), name


def test_linear_softmax_is_sum_of_squares_over_sum():
    # Independent reference: the formula sum y^2 / sum y on random scores, float64.
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(4, 3, 50, generator=generator, dtype=torch.float64)
    reference = (scores**2).sum(-1) / scores.sum(-1)
    assert torch.allclose(make_pooling("linear_softmax", 3)(scores), reference, atol=1e-12)


def test_linear_softmax_of_all_zero_class_is_zero_not_nan():
    clip = make_pooling("linear_softmax", 1)(torch.zeros(1, 1, 5))
    assert clip.item() == 0.0


def test_autopool_limits():
    generator = torch.Generator().manual_seed(1)
    scores = torch.rand(3, 2, 40, generator=generator, dtype=torch.float64)
    pool = AutoPool(n_classes=2).double()
    with torch.no_grad():
        pool.alpha.fill_(0.0)
    # alpha = 0: softmax of a constant is uniform -> the mean.
    assert torch.allclose(pool(scores), scores.mean(-1), atol=1e-12)
    with torch.no_grad():
        pool.alpha.fill_(1e4)
    # alpha -> inf: all weight on the largest frame -> the max (ties impossible for rand).
    assert torch.allclose(pool(scores), scores.amax(-1), atol=1e-6)
    with torch.no_grad():
        pool.alpha.copy_(torch.tensor([0.0, 1e4]))
    # alpha is per class: class 0 mean, class 1 max in the same call.
    clip = pool(scores)
    assert torch.allclose(clip[:, 0], scores[:, 0].mean(-1), atol=1e-12)
    assert torch.allclose(clip[:, 1], scores[:, 1].amax(-1), atol=1e-6)


def test_autopool_hand_value_at_alpha_two():
    # Class 0 frames (0.2, 0.6, 0.2), alpha = 2: weights e^{0.4}, e^{1.2}, e^{0.4} normalised.
    pool = AutoPool(n_classes=2).double()
    with torch.no_grad():
        pool.alpha.fill_(2.0)
    e = math.exp
    expected = (0.4 * e(0.4) + 0.6 * e(1.2)) / (2 * e(0.4) + e(1.2))
    assert pool(SCORES)[0, 0].item() == pytest.approx(expected, abs=1e-12)


def test_attention_weights_sum_to_one_over_time_not_classes():
    torch.manual_seed(0)
    pool = AttentionPooling(n_classes=3, in_features=8).double()
    features = torch.randn(2, 8, 20, dtype=torch.float64)
    scores = torch.rand(2, 3, 20, dtype=torch.float64)
    weights = pool.weights(scores, features)
    assert torch.allclose(weights.sum(dim=-1), torch.ones(2, 3, dtype=torch.float64), atol=1e-12)
    # Over classes the weights do NOT sum to one (that would be the DESED baseline's bug).
    assert not torch.allclose(weights.sum(dim=1), torch.ones(2, 20, dtype=torch.float64), atol=1e-3)
    # The clip score is the weighted average over time of the same class's frames.
    assert torch.allclose(pool(scores, features), (weights * scores).sum(-1), atol=1e-12)


def test_attention_hand_value():
    # One feature channel, one class, v = 1, b = 0: weights softmax_t(h_t) for h = (0, ln 3)
    # are (1/4, 3/4); frame scores (0.8, 0.4) -> 0.8/4 + 0.4*3/4 = 0.5.
    pool = AttentionPooling(n_classes=1, in_features=1).double()
    with torch.no_grad():
        pool.attention.weight.fill_(1.0)
        pool.attention.bias.fill_(0.0)
    features = torch.tensor([[[0.0, math.log(3.0)]]], dtype=torch.float64)
    clip = pool(torch.tensor([[[0.8, 0.4]]], dtype=torch.float64), features)
    assert clip.item() == pytest.approx(0.5, abs=1e-12)


def test_attention_without_features_fails_clearly():
    with pytest.raises(ValueError, match="features"):
        AttentionPooling(2, 4)(torch.rand(1, 2, 5))
    with pytest.raises(ValueError, match="in_features"):
        make_pooling("attention", 2)


@pytest.mark.parametrize("name", POOLING_NAMES)
def test_mask_equals_pooling_the_unpadded_clip(name):
    # A clip padded with junk frames and masked must pool like the clip alone.
    torch.manual_seed(0)
    pool = make_pooling(name, n_classes=2, in_features=4).double()
    scores = torch.rand(1, 2, 10, dtype=torch.float64)
    features = torch.randn(1, 4, 10, dtype=torch.float64)
    padded_scores = torch.cat([scores, torch.ones(1, 2, 5, dtype=torch.float64)], dim=-1)
    padded_features = torch.cat([features, 5 * torch.ones(1, 4, 5, dtype=torch.float64)], dim=-1)
    mask = torch.tensor([[True] * 10 + [False] * 5])
    alone = pool(scores, features)
    masked = pool(padded_scores, padded_features, mask)
    assert torch.allclose(alone, masked, atol=1e-12)
    weights = pool.weights(padded_scores, padded_features, mask)
    assert torch.all(weights[..., 10:] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(1, 2, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("name", POOLING_NAMES)
def test_every_rule_is_a_weighted_average_within_min_and_max(name):
    torch.manual_seed(3)
    pool = make_pooling(name, n_classes=3, in_features=6).double()
    scores = torch.rand(5, 3, 30, dtype=torch.float64)
    clip = pool(scores, torch.randn(5, 6, 30, dtype=torch.float64))
    assert clip.shape == (5, 3)
    assert torch.all(clip >= scores.amin(-1) - 1e-12) and torch.all(clip <= scores.amax(-1) + 1e-12)


def test_learned_rules_receive_gradients():
    torch.manual_seed(0)
    scores = torch.rand(2, 3, 12)
    features = torch.randn(2, 4, 12)
    for name in ("autopool", "attention"):
        pool = make_pooling(name, 3, in_features=4)
        pool(scores, features).sum().backward()
        grads = [parameter.grad for parameter in pool.parameters()]
        assert grads and all(grad is not None and torch.any(grad != 0) for grad in grads), name


def test_unknown_name_and_bad_mask():
    with pytest.raises(ValueError, match="unknown pooling"):
        make_pooling("median", 2)
    with pytest.raises(ValueError, match="without any frame"):
        make_pooling("mean", 1)(torch.rand(1, 1, 4), mask=torch.zeros(1, 4, dtype=torch.bool))
