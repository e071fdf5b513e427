"""Weak-label training options: mixup, masks, shift, gain, the mean teacher; off = today's training, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audioenc.timing.augment import (
    LN_PER_DB,
    AugmentSettings,
    add_gain,
    augment_batch,
    augment_generator,
    consistency_loss,
    ema_update,
    make_teacher,
    mask_spans,
    mix_clips,
    rampup,
    roll_within_length,
)
from audioenc.timing.evaluation import clip_targets
from audioenc.timing.fitting import (
    FitSettings,
    batches_per_epoch,
    clip_label_loss,
    fit_clip_model,
    frame_statistics,
    shuffled_batches,
    validation_loss,
)
from audioenc.timing.weak import CRNNConfig, WeakCRNN, load_feature_sets, train_weak_encoder

TINY = CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8)


def test_mixup_mixes_labels_with_the_clip_weights_and_power_of_the_features():
    features = torch.log(torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]]))  # [2 clips, 1 band, 2 frames]
    mask = torch.ones(2, 2, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # [2, 1 class, 2 frames]
    weights, order = torch.tensor([0.25, 0.5]), torch.tensor([1, 0])
    mixed, new_mask, mixed_labels, mixed_targets = mix_clips(
        features, mask, labels, weights, order, torch.zeros(1), targets
    )
    # Labels: 0.25 * [1, 0] + 0.75 * [0, 1] and 0.5 * [0, 1] + 0.5 * [1, 0].
    assert torch.allclose(mixed_labels, torch.tensor([[0.25, 0.75], [0.5, 0.5]]))
    assert torch.allclose(mixed_targets, torch.tensor([[[0.25, 0.75]], [[0.5, 0.5]]]))
    # Power: ln(0.25 * 1 + 0.75 * 3) = ln 2.5, ln(0.25 * 2 + 0.75 * 4) = ln 3.5; row 1: ln 2, ln 3.
    assert torch.allclose(mixed, torch.log(torch.tensor([[[2.5, 3.5]], [[2.0, 3.0]]])))
    assert bool(new_mask.all())


def test_mixup_of_a_short_clip_fills_its_padding_with_the_band_mean_and_takes_the_union_of_frames():
    features = torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]])
    mask = torch.tensor([[True, False], [True, True]])
    fill = torch.tensor([math.log(3.0)])
    mixed, new_mask, _, _ = mix_clips(
        features, mask, torch.zeros(2, 1), torch.tensor([0.5, 1.0]), torch.tensor([1, 0]), fill
    )
    assert bool(new_mask.all())
    # Row 0, frame 1: padding (filled with power 3) mixed half and half with power 1 -> ln 2.
    assert math.isclose(float(mixed[0, 0, 1]), math.log(2.0), rel_tol=1e-6)
    assert torch.equal(mixed[1], features[1])  # weight 1: the clip itself


def test_frequency_masks_fill_only_the_masked_bands_and_leave_the_labels():
    torch.manual_seed(0)
    features = torch.randn(2, 6, 5)
    fill = torch.arange(6.0)
    masked = mask_spans(features, [[(1, 2)], [(4, 1), (0, 0)]], fill, "freq")
    assert torch.equal(masked[0, 1:3], fill[1:3, None].expand(2, 5))
    assert torch.equal(masked[0, [0, 3, 4, 5]], features[0, [0, 3, 4, 5]])
    assert torch.equal(masked[1, 4], fill[4].expand(5)) and torch.equal(masked[1, :4], features[1, :4])
    # Through augment_batch with frequency masks only: clip labels and frame targets come back unchanged.
    labels, targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.rand(2, 2, 5)
    settings = AugmentSettings(freq_masks=2, freq_mask_bands=3)
    out, out_mask, out_labels, out_targets = augment_batch(
        features, torch.ones(2, 5, dtype=torch.bool), labels, settings, augment_generator(0), fill, targets
    )
    assert torch.equal(out_labels, labels) and torch.equal(out_targets, targets) and bool(out_mask.all())
    changed = (out != features).any(dim=2)  # [B, bands]: a band is either all fill or untouched
    for row in range(2):
        for band in torch.nonzero(changed[row]).flatten().tolist():
            assert torch.equal(out[row, band], fill[band].expand(5))


def test_time_masks_touch_real_frames_only_and_never_the_labels():
    features = torch.randn(3, 4, 10)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 6:] = False
    labels = torch.eye(3)
    out, _, out_labels, _ = augment_batch(
        features, mask, labels, AugmentSettings(time_masks=3, time_mask_frames=4), augment_generator(1), torch.zeros(4)
    )
    assert torch.equal(out_labels, labels)
    assert torch.equal(out[0, :, 6:], features[0, :, 6:])  # padding untouched
    assert bool((out != features).any())


def test_time_shift_rolls_frame_targets_by_exactly_the_shift_within_each_clip():
    features = torch.arange(10.0).view(1, 1, 10).repeat(2, 1, 1)
    targets = torch.zeros(2, 1, 10)
    targets[:, 0, 2] = 1.0
    lengths, shifts = torch.tensor([10, 6]), torch.tensor([3, -2])
    rolled = roll_within_length(features, lengths, shifts)
    assert rolled[0, 0].tolist() == [7, 8, 9, 0, 1, 2, 3, 4, 5, 6]
    assert rolled[1, 0].tolist() == [2, 3, 4, 5, 0, 1, 6, 7, 8, 9]  # within 6 frames; padding stays
    moved = roll_within_length(targets, lengths, shifts)
    assert moved[0, 0].nonzero().flatten().tolist() == [5] and moved[1, 0].nonzero().flatten().tolist() == [0]
    # augment_batch moves features and targets together: the event frame follows the feature frame.
    out, _, _, out_targets = augment_batch(
        features,
        torch.ones(2, 10, dtype=torch.bool),
        torch.ones(2, 1),
        AugmentSettings(shift_frames=4),
        augment_generator(3),
        torch.zeros(1),
        targets,
    )
    for row in range(2):
        assert float(out[row, 0, int(out_targets[row, 0].argmax())]) == 2.0


def test_gain_adds_the_natural_log_constant_on_real_frames():
    assert math.isclose(LN_PER_DB, math.log(10) / 10)
    features, mask = torch.zeros(2, 3, 4), torch.tensor([[True] * 4, [True, True, False, False]])
    out = add_gain(features, mask, torch.tensor([10.0, -3.0]))
    assert torch.allclose(out[0], torch.full((3, 4), math.log(10.0)))  # +10 dB = power x 10
    assert torch.allclose(out[1, :, :2], torch.full((3, 2), -0.3 * math.log(10.0)))
    assert torch.equal(out[1, :, 2:], torch.zeros(3, 2))


def test_the_ema_teacher_after_one_step_is_alpha_t_plus_one_minus_alpha_s():
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 2)
    teacher = make_teacher(student)
    before = [p.detach().clone() for p in teacher.parameters()]
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(1.0)
    ema_update(teacher, student, 0.9)
    for old, new, current in zip(before, teacher.parameters(), student.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * current)
        assert not new.requires_grad


def test_consistency_is_zero_when_student_and_teacher_agree_and_the_rampup_reaches_one():
    torch.manual_seed(0)
    model = WeakCRNN(("a", "b"), "mean", TINY).eval()
    output = model(torch.randn(2, 64, 40))
    assert float(consistency_loss(output, output).detach()) == 0.0
    teacher = make_teacher(model)
    assert float(consistency_loss(output, teacher(torch.randn(2, 64, 40)))) > 0
    assert rampup(0, 10) == pytest.approx(math.exp(-5)) and rampup(10, 10) == rampup(99, 10) == 1.0


@pytest.fixture(scope="module")
def feature_sets(tiny_corpus):
    sets = load_feature_sets(tiny_corpus)
    return sets["train"], sets["validation"]


def _today(feature_sets, seed: int = 3, epochs: int = 2) -> WeakCRNN:
    """The weak CRNN's training as it was before this module: plain clip BCE through fit_clip_model."""
    train_set, valid_set = feature_sets
    classes = train_set.split.classes
    torch.manual_seed(seed)
    model = WeakCRNN(classes, "linear_softmax", TINY, train_set.config)
    model.set_normalization(*frame_statistics(train_set.log_mels.values()))
    count = len(train_set.split.files)
    valid_inputs, valid_targets = valid_set.inputs(), clip_targets(valid_set.split, classes)
    fit_clip_model(
        model,
        [{"params": list(model.parameters()), "lr": 3e-3}],
        shuffled_batches(count, 4, torch.Generator().manual_seed(seed), min_size=2),
        clip_label_loss(model, train_set.inputs(), clip_targets(train_set.split, classes)),
        FitSettings(
            epochs, clip_norm=5.0, final_lr_factor=0.05, total_steps=epochs * batches_per_epoch(count, 4, min_size=2)
        ),
        validate=lambda m: validation_loss(m, valid_inputs, valid_targets, 4),
    )
    return model


def _trained(feature_sets, augment: AugmentSettings, seed: int = 3) -> WeakCRNN:
    return train_weak_encoder(
        feature_sets, "linear_softmax", seed, epochs=2, batch_size=4, config=TINY, augment=augment
    )[0]


def test_with_every_option_off_training_is_bit_identical_to_today(feature_sets):
    expected, got = _today(feature_sets).state_dict(), _trained(feature_sets, AugmentSettings()).state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)


@pytest.mark.parametrize(
    "augment",
    [
        AugmentSettings(mixup_alpha=0.2),
        AugmentSettings(time_masks=2, freq_masks=2),
        AugmentSettings(shift_frames=30, gain_db=6.0),
        AugmentSettings(mean_teacher=True, ema_decay=0.9, rampup_epochs=1.0),
        AugmentSettings(mean_teacher=True, keep_teacher=True, mixup_alpha=0.2),
    ],
    ids=["mixup", "masks", "shift+gain", "mean_teacher", "teacher_kept"],
)
def test_each_option_changes_training_and_reproduces_for_a_seed(feature_sets, augment):
    first, again = _trained(feature_sets, augment).state_dict(), _trained(feature_sets, augment).state_dict()
    assert all(torch.equal(first[key], again[key]) for key in first)
    plain = _today(feature_sets).state_dict()
    assert any(not torch.equal(first[key], plain[key]) for key in first)
    assert all(bool(torch.isfinite(value.float()).all()) for value in first.values())


def test_the_generator_is_seeded_from_the_run_seed():
    assert np.array_equal(augment_generator(4).random(3), augment_generator(4).random(3))
    assert not np.array_equal(augment_generator(4).random(3), augment_generator(5).random(3))


def test_the_mean_teacher_takes_its_consistency_on_unlabeled_clips_when_given(feature_sets):
    augment = AugmentSettings(mean_teacher=True, rampup_epochs=0.0)
    on_labeled = _trained(feature_sets, augment).state_dict()
    on_unlabeled = train_weak_encoder(
        feature_sets,
        "linear_softmax",
        3,
        epochs=2,
        batch_size=4,
        config=TINY,
        augment=augment,
        unlabeled=feature_sets[1],
    )[0].state_dict()
    assert any(not torch.equal(on_labeled[key], on_unlabeled[key]) for key in on_labeled)
