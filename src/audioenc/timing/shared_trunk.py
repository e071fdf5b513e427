"""Weak-label CRNNs of several pooling rules trained together, on one shared trunk.

Trained apart (:func:`~audioenc.timing.weak.train_weak_encoder`, once per rule), the rules of step 3 repeat
the same work six times: the same batches of the same log-mels through the same conv stack and recurrent
layer, which is nearly all of a CRNN's cost (the head is one 1x1 conv, the pooling a weighted mean).
Here the rules share that trunk and each keeps its own read-out::

    log-mel [B, M, F] --trunk (conv stack, BiRNN)--> embeddings [B, 2H, F']         once per batch
    embeddings --head_r (dropout, 1x1 conv, sigmoid)--> frame scores_r [B, K, F']   for each rule r
    frame scores_r --pooling_r--> clip scores_r [B, K]

    loss = sum_r BCE(clip scores_r, clip labels)

Each rule's head and pooling learn from its own loss only; the trunk learns from all of them (one frame
representation read out by every rule). Each rule's starting weights are those it would have alone (the
same seed before each model is built), and each rule keeps the weights — trunk and its own head — of the
epoch with its own lowest validation loss, so every rule ends as a complete, standalone
:class:`~audioenc.timing.weak.WeakCRNN`. Training stops after ``patience`` epochs in which no rule reached
a new lowest validation loss, at ``epochs``, or before ``budget_seconds``.

What differs from training apart: a rule's frame scores come from a trunk shaped by every rule's loss, not
by its own alone; its head still is. Augmentation and the mean teacher are not combined with a shared trunk
(the workflow trains the rules apart when ``augment`` is on).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from audioenc.timing.evaluation import clip_targets
from audioenc.timing.fitting import (
    TrainingHistory,
    batches_per_epoch,
    clip_bce,
    collate_padded,
    fit_clip_model,
    frame_statistics,
    shuffled_batches,
)
from audioenc.timing.weak import CRNNConfig, FeatureSet, WeakCRNN, crnn_fit_settings


class SharedTrunkCRNNs(nn.Module):
    """One :class:`WeakCRNN` per pooling rule, all holding the same trunk modules (conv stack, recurrent
    layer, input normalisation); ``forward`` runs the trunk once and every rule's read-out on it.

    ``forward(log_mel [B, M, F], mask [B, F]) -> {rule: ClipModelOutput}``.
    """

    def __init__(self, models: dict[str, WeakCRNN]) -> None:
        super().__init__()
        first = next(iter(models.values()))
        for model in models.values():  # the trunk objects themselves are shared, not copies
            model.cnn, model.rnn = first.cnn, first.rnn
            model.feature_mean, model.feature_std = first.feature_mean, first.feature_std
        self.models = nn.ModuleDict(models)

    def forward(self, log_mel: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        first = next(iter(self.models.values()))
        embeddings, out_mask = first.embed(log_mel, mask)
        return {rule: model.read_out(embeddings, out_mask) for rule, model in self.models.items()}


def train_shared_trunk(
    sets: tuple[FeatureSet, FeatureSet],
    rules: Sequence[str],
    seed: int,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    config: CRNNConfig = CRNNConfig(),
    classes: tuple[str, ...],
    patience: int | None = None,
    budget_seconds: float | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, WeakCRNN], dict[str, TrainingHistory], float]:
    """Train one CRNN per rule in ``rules`` on a shared trunk (module docstring), with the schedule, clipping
    and batch order of :func:`~audioenc.timing.weak.train_weak_encoder`.

    Returns:
        ``(models, histories, seconds)``: per rule a standalone :class:`WeakCRNN` (eval mode, the weights of its
        own best validation epoch) and its :class:`TrainingHistory` (its own losses and best epoch; the
        shared epoch times and stop reason), and the wall time of the whole training.
    """
    started = time.perf_counter()
    train_set, valid_set = sets
    models = {}
    for rule in rules:  # each rule starts where it would start alone
        torch.manual_seed(seed)
        models[rule] = WeakCRNN(classes, rule, config, train_set.config)
    joint = SharedTrunkCRNNs(models)
    # The global generator (dropout) now stands where one rule's own training would find it.
    next(iter(models.values())).set_normalization(*frame_statistics(train_set.log_mels.values()))
    train_inputs, train_targets = train_set.inputs(), clip_targets(train_set.split, classes)
    valid_inputs, valid_targets = valid_set.inputs(), clip_targets(valid_set.split, classes)
    count = len(train_inputs)
    steps_per_epoch = batches_per_epoch(count, batch_size, min_size=2)
    histories = {rule: TrainingHistory(pooling=rule, seed=seed) for rule in rules}
    epoch_losses: dict[str, list[float]] = {rule: [] for rule in rules}
    best = {rule: (float("inf"), None) for rule in rules}
    improving_epochs = [0]

    def batch_loss(rows: list[int]) -> torch.Tensor:
        batch, mask = collate_padded([train_inputs[row] for row in rows])
        targets = torch.from_numpy(train_targets[rows])
        losses = {rule: clip_bce(output.clip_scores, targets) for rule, output in joint(batch, mask).items()}
        for rule, loss in losses.items():
            epoch_losses[rule].append(float(loss.detach()))
        return torch.stack(list(losses.values())).sum()

    def validate(module: nn.Module) -> tuple[float, float]:
        """Every rule's validation loss and accuracy recorded; returned: a number that falls exactly when some
        rule reached a new lowest loss (minus the count of such epochs), so fit_clip_model's patience counts
        epochs in which no rule improved."""
        scores = _clip_scores(joint, valid_inputs, batch_size)
        improved = False
        for rule, history in histories.items():
            loss = float(clip_bce(torch.from_numpy(scores[rule]), torch.from_numpy(valid_targets)))
            history.train_loss.append(float(np.mean(epoch_losses[rule])))
            history.valid_loss.append(loss)
            history.valid_accuracy.append(float(np.mean((scores[rule] >= 0.5) == (valid_targets >= 0.5))))
            epoch_losses[rule].clear()
            if loss < best[rule][0]:
                best[rule] = (loss, copy.deepcopy(joint.models[rule].state_dict()))
                history.best_epoch = len(history.valid_loss) - 1
                improved = True
        improving_epochs[0] += improved
        return -float(improving_epochs[0]), 0.0

    shared = fit_clip_model(
        joint,
        [{"params": list(joint.parameters()), "lr": learning_rate}],
        shuffled_batches(count, batch_size, torch.Generator().manual_seed(seed), min_size=2),
        batch_loss,
        crnn_fit_settings(epochs, steps_per_epoch, patience, budget_seconds),
        validate=validate,
        name="shared trunk (" + ", ".join(rules) + ")",
        seed=seed,
        log=log,
    )
    standalone = {}
    for rule in rules:
        histories[rule].seconds = list(shared.seconds)
        histories[rule].stopped = shared.stopped
        model = copy.deepcopy(joint.models[rule])  # its own copy of the trunk
        model.load_state_dict(best[rule][1])
        standalone[rule] = model.eval()
    return standalone, histories, time.perf_counter() - started


def _clip_scores(joint: SharedTrunkCRNNs, inputs: Sequence[np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Every rule's clip scores ``[clips, K]`` (eval mode, no gradients, the trunk run once per batch)."""
    joint.eval()
    rows: dict[str, list[np.ndarray]] = {rule: [] for rule in joint.models}
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            for rule, output in joint(*collate_padded(inputs[start : start + batch_size])).items():
                rows[rule].append(output.clip_scores.numpy())
    return {rule: np.concatenate(parts).astype(np.float32) for rule, parts in rows.items()}


__all__ = ["SharedTrunkCRNNs", "train_shared_trunk"]
