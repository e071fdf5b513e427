"""Balancer tests. References: hand computation (the 99 -> 0 case) and a float64 NumPy step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audioenc.losses.balancer import Balancer


def _grad_of(balancer: Balancer, make_losses) -> torch.Tensor:
    x = torch.zeros(1, 1, 1, requires_grad=True)
    y = x * 1.0  # the "model output"
    balancer.backward(make_losses(y), y)
    return x.grad


def test_opposing_losses_cancel_when_balanced():
    # Hand computation at x = 0: d|x-1|/dx = -1, d(100|x+1|)/dx = +100.
    def losses(y):
        return {"a": F.l1_loss(y, torch.ones_like(y)), "b": 100 * F.l1_loss(y, -torch.ones_like(y))}

    plain = _grad_of(Balancer({"a": 1, "b": 1}, balance_grads=False), losses)
    assert plain.item() == pytest.approx(99.0)
    # Balanced: each gradient is normalised to norm 1 and weighted 1/2: -0.5 + 0.5 = 0.
    balanced = _grad_of(Balancer({"a": 1, "b": 1}), losses)
    assert balanced.item() == pytest.approx(0.0, abs=1e-6)  # float32 rounding of 0.5/(1+eps)


def test_gradient_shares_match_weights_on_random_losses():
    torch.manual_seed(0)
    weights = {"l1": 0.1, "mel": 1.0, "adv": 3.0, "feat": 3.0}
    target = torch.randn(4, 2, 64)
    scales = {"l1": 1.0, "mel": 1000.0, "adv": 0.01, "feat": 7.0}
    balancer = Balancer(weights, ema_decay=0.0, per_batch_item=False)
    y = torch.randn(4, 2, 64, requires_grad=True)

    def make(y):
        return {
            "l1": scales["l1"] * (y - target).abs().mean(),
            "mel": scales["mel"] * ((y - target) ** 2).mean(),
            "adv": scales["adv"] * (y**3).mean(),
            "feat": scales["feat"] * torch.sin(y).sum(),
        }

    # Each loss's own gradient, computed apart from the balancer: raw norms 1e-4 .. 1e+2 apart.
    raw = {name: torch.autograd.grad(loss, [y])[0] for name, loss in make(y).items()}
    norms = {name: g.norm().item() for name, g in raw.items()}
    balancer.backward(make(y), y)
    # What the balancer back-propagated: each loss's gradient scaled to norm total_norm * w / sum(w).
    total_w = sum(weights.values())
    expected = sum(w / total_w * raw[name] / (norms[name] + balancer.epsilon) for name, w in weights.items())
    assert y.grad is not None, "the balancer back-propagated nothing"
    torch.testing.assert_close(y.grad, expected, rtol=1e-5, atol=1e-7)
    # The shares logged equal the raw norm fractions.
    assert balancer.shares == pytest.approx({name: n / sum(norms.values()) for name, n in norms.items()}, rel=1e-6)


def test_one_step_matches_float64_reference_with_ema_and_penalty():
    # Model: y = W x (no bias); losses L1 = mean|y - t|, L2 = 10 * mean((y - t)^2); penalty = sum(W^2).
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((3, 5))
    w_np = rng.standard_normal((4, 3))
    t_np = rng.standard_normal((4, 5))
    weights = {"a": 1.0, "b": 3.0}
    decay = 0.9
    history = [(1.5, 0.2)]  # a previous step's per-item norms, to exercise the bias-corrected EMA

    # float64 reference by hand; batch items are the columns of y (y.T is [batch=5, 4]).
    y = w_np @ x_np
    n = y.size
    g_a = np.sign(y - t_np) / n
    g_b = 10 * 2 * (y - t_np) / n
    norm_a = np.linalg.norm(g_a, axis=0).mean()
    norm_b = np.linalg.norm(g_b, axis=0).mean()
    count = decay * 1 + 1
    avg_a = (decay * history[0][0] + norm_a) / count
    avg_b = (decay * history[0][1] + norm_b) / count
    big_g = 0.25 / avg_a * g_a + 0.75 / avg_b * g_b
    expected_w_grad = big_g @ x_np.T + 2 * w_np

    balancer = Balancer(weights, ema_decay=decay, epsilon=0.0)
    balancer.load_state_dict({"ema_sum": {"a": history[0][0], "b": history[0][1]}, "ema_count": 1.0})
    w = torch.tensor(w_np, requires_grad=True)
    x = torch.tensor(x_np)
    t = torch.tensor(t_np)
    y_t = (w @ x).T  # [batch=5, 4]
    losses = {"a": (y_t - t.T).abs().mean(), "b": 10 * ((y_t - t.T) ** 2).mean()}
    balancer.backward(losses, y_t, penalty=(w**2).sum())
    np.testing.assert_allclose(w.grad.numpy(), expected_w_grad, rtol=1e-12, atol=1e-12)


def test_effective_loss_is_the_scaled_sum():
    y = torch.full((2, 1, 3), 2.0, requires_grad=True)
    balancer = Balancer({"a": 1.0}, balance_grads=False)
    effective = balancer.backward({"a": (y**2).mean()}, y)
    assert effective.item() == pytest.approx(4.0)


def test_key_mismatch_is_an_error_not_a_skip():
    y = torch.ones(1, 1, 4, requires_grad=True)
    balancer = Balancer({"l1": 1.0, "mel": 1.0})
    with pytest.raises(KeyError, match="must match exactly"):
        balancer.backward({"l1": y.sum(), "msspec": y.sum()}, y)


def test_loss_not_depending_on_output_is_named():
    y = torch.ones(1, 1, 4, requires_grad=True)
    other = torch.ones(3, requires_grad=True)
    balancer = Balancer({"l1": 1.0, "commit": 1.0})
    with pytest.raises(ValueError, match="'commit' does not depend"):
        balancer.backward({"l1": y.sum(), "commit": other.sum()}, y)


@pytest.mark.parametrize("weights", [{}, {"a": 0.0, "b": 0.0}, {"a": -1.0}])
def test_invalid_weights(weights):
    with pytest.raises(ValueError):
        Balancer(weights)
