"""The optimised training step computes what a plain, literal step computes (float64, tiny model).

The plain step below follows the EnCodec recipe line by line, with none of the trainer's speed
choices: the discriminator runs on the reference and on the estimate in two separate calls (the
trainer concatenates them), the mel loss sees all signals at once (the trainer chunks them), the
hinge and feature-matching losses are written from their formulas, and the balancer's scales are
computed by hand from per-item gradient norms (first step: the EMA is this step's norm). Both run
in float64 on copies of the same weights, so any difference beyond rounding is a real change of
what is computed.

Tolerances: relative 1e-10 on the losses and on the discriminator's gradients and updated weights.
The codec's gradients get 1e-6 of each tensor's largest entry: the balancer scales each loss's gradient
by the inverse of its norm, and on this tiny random discriminator the adversarial gradient's norm is about 1e-5 of the
mel gradient's, so the ~1e-12 relative rounding difference of the discriminator's batched update
(one call on [real; fake] against two calls) reaches the combined gradient amplified. Any real
change of the computation shows up as an O(1) difference.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from audioenc.losses.spectral import MultiScaleMelLoss
from audioenc.training.trainer import Trainer

RTOL, ATOL = 1e-10, 1e-14
MODEL_RTOL, MODEL_ATOL = 1e-6, 1e-12


def _plain_step(model, discriminator, config, audio):
    """One literal EnCodec step; returns the losses and the gradients of both networks."""
    losses_cfg, optim = config.losses, config.optim
    if config.model.normalize:  # every segment at unit RMS over channels and time (+ EnCodec's 1e-8)
        audio = audio / (audio.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + 1e-8)
    y_hat = model(audio).audio

    # Discriminator update: hinge on each scale, real and fake in separate calls.
    disc_optimizer = torch.optim.Adam(discriminator.parameters(), lr=optim.lr, betas=tuple(optim.betas))
    real_logits, _ = discriminator(audio)
    fake_logits, _ = discriminator(y_hat.detach())
    d_loss = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits))
    d_loss = d_loss / len(real_logits)
    disc_optimizer.zero_grad()
    d_loss.backward()
    d_grads = [p.grad.clone() for p in discriminator.parameters()]
    disc_optimizer.step()

    # Generator losses with the updated discriminator, its parameters frozen.
    for p in discriminator.parameters():
        p.requires_grad_(False)
    fake_logits, fake_features = discriminator(y_hat)
    with torch.no_grad():
        _, real_features = discriminator(audio)
    mel = MultiScaleMelLoss(
        sample_rate=config.model.sample_rate, alphas=False, normalized=True, chunk_signals=10**6
    ).double()
    feat_per_scale = []
    for real_scale, fake_scale in zip(real_features, fake_features):
        terms = [(f - r).abs().mean() / r.abs().mean() for r, f in zip(real_scale, fake_scale)]
        feat_per_scale.append(sum(terms) / len(terms))
    losses = {
        "l1": (y_hat - audio).abs().mean(),
        "mel": mel(audio, y_hat),
        "adv": sum(-logit.mean() for logit in fake_logits) / len(fake_logits),
        "feat": sum(feat_per_scale) / len(feat_per_scale),
    }

    # Balancer, first step: scale_i = w_i / sum(w) * total_norm / mean_b ||dL_i/dy_hat[b]||.
    weights = {key: getattr(losses_cfg, key) for key in losses}
    combined = torch.zeros_like(y_hat)
    for key, loss in losses.items():
        (grad,) = torch.autograd.grad(loss, y_hat, retain_graph=True)
        norm = grad.flatten(1).norm(dim=1).mean()
        scale = weights[key] / sum(weights.values()) * losses_cfg.balancer_total_norm / norm
        combined += scale * grad
    y_hat.backward(combined)
    model_grads = [p.grad.clone() for p in model.parameters()]
    return {"d_loss": d_loss, **losses}, model_grads, d_grads, [p.detach().clone() for p in discriminator.parameters()]


@pytest.mark.parametrize("mode", ["1ch", "32ch"])
def test_trainer_step_equals_the_plain_step_in_float64(make_config, tmp_path, mode):
    extra = ["model.channels=3", "train.batch_size=2"] if mode == "32ch" else []
    config = make_config("train.adversarial_warmup_steps=0", *extra, mode=mode)
    trainer = Trainer(config, tmp_path / "run", torch.device("cpu"))
    # .double() converts the parameters in place, so the trainer's optimizers keep tracking them.
    trainer.model.double()
    trainer.discriminator.double()
    trainer.mel_loss.double()
    model = copy.deepcopy(trainer.model)
    discriminator = copy.deepcopy(trainer.discriminator)

    generator = torch.Generator().manual_seed(1)
    length = round(config.data.segment_seconds * config.model.sample_rate)
    audio = 0.1 * torch.randn(
        config.train.batch_size, config.model.channels, length, generator=generator, dtype=torch.float64
    )

    result = trainer.train_step(audio)
    expected, model_grads, d_grads, d_params = _plain_step(model, discriminator, config, audio)

    assert not result.skipped
    for key, value in expected.items():
        assert result.values[key] == pytest.approx(value.item(), rel=RTOL, abs=ATOL), key
    for (name, p), grad in zip(trainer.model.named_parameters(), model_grads):
        # Relative to the tensor's largest entry: single entries near zero carry only rounding.
        error = (p.grad - grad).abs().max().item()
        assert error <= MODEL_RTOL * grad.abs().max().item() + MODEL_ATOL, f"model {name}: max error {error}"
    for (name, p), grad in zip(trainer.discriminator.named_parameters(), d_grads):
        torch.testing.assert_close(p.grad, grad, rtol=RTOL, atol=ATOL, msg=lambda m, n=name: f"disc {n}: {m}")
    for (name, p), value in zip(trainer.discriminator.named_parameters(), d_params):
        torch.testing.assert_close(p.detach(), value, rtol=RTOL, atol=ATOL, msg=lambda m, n=name: f"disc {n}: {m}")
    # The gradients are not trivially zero: the comparison above means something.
    assert all(g.abs().sum() > 0 for g in model_grads[:3])
