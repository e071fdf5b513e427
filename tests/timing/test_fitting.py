"""The one training loop of the timing half (audioenc.timing.fitting).

References: a scripted validation curve (the best epoch is known by construction), the cosine
schedule's formula evaluated in float64 against the steps Adam takes on a loss of slope 1, and
the losses and statistics recomputed in float64 NumPy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from audioenc.timing.fitting import (
    CLAMP,
    FitSettings,
    batches_per_epoch,
    clip_bce,
    collate_padded,
    fit_clip_model,
    frame_bce,
    frame_statistics,
    random_batches,
    shuffled_batches,
)


class _Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, dtype=torch.float64))


def _scripted(curve: list[float], snapshots: list[float]):
    """A validation that returns the next value of ``curve`` and records the weight it saw."""
    values = iter(curve)

    def validate(model: nn.Module) -> tuple[float, float]:
        snapshots.append(float(model.weight.detach()))
        return next(values), 0.5

    return validate


def test_the_best_epoch_is_restored_not_the_last():
    model = _Scalar()
    snapshots: list[float] = []
    history = fit_clip_model(
        model,
        [{"params": [model.weight], "lr": 0.1}],
        lambda epoch: [None],
        lambda batch: model.weight.sum(),
        FitSettings(epochs=5),
        validate=_scripted([0.9, 0.4, 0.6, 0.5, 0.45], snapshots),
    )
    assert history.best_epoch == 1 and history.valid_loss == [0.9, 0.4, 0.6, 0.5, 0.45]
    assert float(model.weight.detach()) == snapshots[1] != snapshots[-1]  # the weights of epoch 1, not of the last
    assert not model.training
    assert len(history.train_loss) == len(history.seconds) == 5


def test_the_start_competes_when_asked():
    model = _Scalar()
    snapshots: list[float] = []
    history = fit_clip_model(
        model,
        [{"params": [model.weight], "lr": 0.1}],
        lambda epoch: [None],
        lambda batch: model.weight.sum(),
        FitSettings(epochs=3, include_start=True),
        validate=_scripted([0.2, 0.3, 0.25, 0.21], snapshots),
    )
    assert history.best_epoch == -1 and float(model.weight.detach()) == 0.0 == snapshots[0]
    assert history.valid_loss == [0.3, 0.25, 0.21]  # the start is not an epoch


def test_without_validation_the_last_state_is_kept():
    model = _Scalar()
    history = fit_clip_model(
        model,
        [{"params": [model.weight], "lr": 0.1}],
        lambda epoch: [None, None],
        lambda batch: model.weight.sum(),
        FitSettings(epochs=2),
    )
    assert history.best_epoch == -1 and history.valid_loss == []
    assert float(model.weight.detach()) == pytest.approx(-0.4, abs=1e-6)  # four Adam steps of ~lr on a slope of 1


def test_cosine_schedule_follows_its_formula():
    # On a loss of slope 1, every Adam step moves the weight by lr_s / (1 + eps / |g|) ~= lr_s.
    steps, lr, floor = 8, 0.01, 0.05
    model = _Scalar()
    positions = []

    def loss(batch) -> torch.Tensor:
        positions.append(float(model.weight.detach()))
        return model.weight.sum()

    fit_clip_model(
        model,
        [{"params": [model.weight], "lr": lr}],
        lambda epoch: [None, None],
        loss,
        FitSettings(epochs=4, final_lr_factor=floor, total_steps=steps),
    )
    positions.append(float(model.weight.detach()))
    taken = -np.diff(positions)
    expected = [lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * s / steps))) for s in range(steps)]
    np.testing.assert_allclose(taken, expected, rtol=1e-6)


def test_shuffled_batches_cover_each_clip_once_per_epoch():
    generator = torch.Generator().manual_seed(0)
    batches = shuffled_batches(10, 4, generator, min_size=3)
    epoch = list(batches(0))
    # 10 clips in batches of 4: 4, 4, and a last batch of 2 < min_size left out.
    assert [len(rows) for rows in epoch] == [4, 4] == [4] * batches_per_epoch(10, 4, min_size=3)
    assert len(set(sum(epoch, []))) == 8
    every = sorted(sum(list(shuffled_batches(10, 4, torch.Generator().manual_seed(1))(0)), []))
    assert every == list(range(10)) and batches_per_epoch(10, 4) == 3
    assert list(batches(1)) != epoch  # a fresh permutation each epoch


def test_random_batches_draw_one_batch_with_replacement():
    batches = random_batches(5, 16, torch.Generator().manual_seed(0))
    (rows,) = list(batches(0))
    assert len(rows) == 5 and all(0 <= row < 5 for row in rows)


def test_clip_and_frame_bce_against_float64():
    rng = np.random.default_rng(0)
    scores = rng.random((3, 2, 7))
    scores[0, 0, :2] = [0.0, 1.0]  # clamped, not infinite
    targets = (rng.random((3, 2, 7)) > 0.5).astype(np.float64)
    mask = np.ones((3, 7), dtype=bool)
    mask[1, 5:] = False

    def bce(p, y):
        p = np.clip(p, CLAMP, 1 - CLAMP)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    clip = clip_bce(torch.from_numpy(scores[:, :, 0]), torch.from_numpy(targets[:, :, 0]))
    assert float(clip) == pytest.approx(bce(scores[:, :, 0], targets[:, :, 0]).mean(), rel=1e-12)
    masked = frame_bce(torch.from_numpy(scores), torch.from_numpy(targets), mask=torch.from_numpy(mask))
    elements = bce(scores, targets) * mask[:, None, :]
    assert float(masked) == pytest.approx(elements.sum() / (mask.sum() * 2), rel=1e-12)
    weight = 1 + 3 * targets
    weighted = frame_bce(torch.from_numpy(scores), torch.from_numpy(targets), weight=torch.from_numpy(weight))
    assert float(weighted) == pytest.approx((weight * bce(scores, targets)).mean(), rel=1e-12)


def test_frame_statistics_and_padding():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((3, length)).astype(np.float32) for length in (4, 9, 1)]
    mean, std = frame_statistics(arrays)
    joined = np.concatenate(arrays, axis=1).astype(np.float64)
    np.testing.assert_allclose(mean.numpy(), joined.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), joined.std(axis=1), rtol=1e-5)
    batch, mask = collate_padded(arrays)
    assert batch.shape == (3, 3, 9) and mask.sum(dim=1).tolist() == [4, 9, 1]
    assert float(batch[2, :, 1:].abs().sum()) == 0.0


def _fit_scripted(curve: list[float], settings: FitSettings) -> tuple[_Scalar, list[float], object]:
    model = _Scalar()
    snapshots: list[float] = []
    history = fit_clip_model(
        model,
        [{"params": [model.weight], "lr": 0.1}],
        lambda epoch: [None],
        lambda batch: model.weight.sum(),
        settings,
        validate=_scripted(curve, snapshots),
    )
    return model, snapshots, history


def test_patience_stops_after_that_many_epochs_without_a_new_best():
    # Best at epoch 1 (0.4); epochs 2, 3, 4 bring no new best -> with patience 3, stop after epoch 4.
    curve = [0.9, 0.4, 0.5, 0.45, 0.41, 0.1, 0.05, 0.01]
    model, snapshots, history = _fit_scripted(curve, FitSettings(epochs=8, patience=3))
    assert history.stopped == "patience" and history.valid_loss == curve[:5]
    assert len(history.train_loss) == len(history.seconds) == 5
    assert history.best_epoch == 1 and float(model.weight.detach()) == snapshots[1] != snapshots[-1]
    assert not history.still_improving and history.as_dict()["still_improving"] is False
    # A new best inside the patience window resets the count: best at epoch 3, then epochs 4 and 5
    # without one -> with patience 2, stop after epoch 5 (six epochs run, 0.1 never seen).
    _, _, reset = _fit_scripted([0.9, 0.4, 0.5, 0.3, 0.35, 0.36, 0.1], FitSettings(epochs=7, patience=2))
    assert reset.stopped == "patience" and len(reset.valid_loss) == 6 and reset.best_epoch == 3


def test_the_epoch_limit_with_the_loss_still_falling_is_still_improving():
    model, snapshots, history = _fit_scripted([0.9, 0.8, 0.7, 0.6], FitSettings(epochs=4, patience=2))
    assert history.stopped == "max_epochs" and history.best_epoch == 3 and len(history.valid_loss) == 4
    assert history.still_improving and history.as_dict()["still_improving"] is True
    assert float(model.weight.detach()) == snapshots[3]
    # Best at the second-to-last epoch still counts as improving (best_epoch >= epochs - 2) ...
    _, _, second_last = _fit_scripted([0.9, 0.8, 0.7, 0.75], FitSettings(epochs=4))
    assert second_last.stopped == "max_epochs" and second_last.still_improving
    # ... an earlier best does not.
    _, _, flat = _fit_scripted([0.9, 0.5, 0.7, 0.75], FitSettings(epochs=4))
    assert flat.stopped == "max_epochs" and flat.best_epoch == 1 and not flat.still_improving


def test_a_budget_of_zero_seconds_stops_after_the_first_epoch():
    model, snapshots, history = _fit_scripted([0.9, 0.8, 0.7], FitSettings(epochs=3, patience=5, budget_seconds=0.0))
    assert history.stopped == "budget" and history.valid_loss == [0.9] and len(history.train_loss) == 1
    assert history.best_epoch == 0 and float(model.weight.detach()) == snapshots[0]
    assert history.still_improving  # cut short by the budget at its best epoch
    # Without validation the budget still applies; patience needs validation and is ignored.
    model = _Scalar()
    unvalidated = fit_clip_model(
        model,
        [{"params": [model.weight], "lr": 0.1}],
        lambda epoch: [None],
        lambda batch: model.weight.sum(),
        FitSettings(epochs=3, budget_seconds=0.0),
    )
    assert unvalidated.stopped == "budget" and len(unvalidated.train_loss) == 1
    patient = fit_clip_model(
        model,
        [{"params": [model.weight], "lr": 0.1}],
        lambda epoch: [None],
        lambda batch: model.weight.sum(),
        FitSettings(epochs=3, patience=1),
    )
    assert patient.stopped == "max_epochs" and len(patient.train_loss) == 3 and not patient.still_improving
