"""Step 1: clip summary and pooling choice — six pooling rules on the *same* frame scores.

A pooling-neutral frame scorer (:class:`PoolingNeutralScorer`: every frame trained towards its
clip's labels, no pooling in its loss), then the six rules of :mod:`audioenc.timing.pooling` on
its frame scores (attention and AutoPool parameters fitted on the training clips); clip AP and
accuracy per rule on validation and test: ``clip_metrics.tsv/json``, ``pooled_levels.png``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from audioenc.audio.formats import EventSplit
from audioenc.core.frames import frame_centres
from audioenc.timing.evaluation import ClipMetrics, clip_metrics, clip_targets
from audioenc.timing.fitting import (
    FitSettings,
    Predictions,
    clip_bce,
    collate_padded,
    fit_clip_model,
    frame_bce,
    frame_statistics,
    random_batches,
)
from audioenc.timing.pooling import POOLING_NAMES, make_pooling
from audioenc.timing.weak import FeatureSet
from audioenc.timing.workflow.artifacts import number, write_json, write_tsv
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.data import SPLITS, one_thread
from audioenc.timing.workflow.plots import plot_pooled_levels
from audioenc.timing.workflow.results import PoolingComparison
from audioenc.timing.workflow.sections import Claim, ReportSection

NAME = "pooling"
FOLDER = "01_pooling"
TITLE = "clip summary and pooling choice: six pooling rules on the same frame scores"
HEADING = "1. Clip summary and pooling choice"
"""The note's section on pooling (step 4 adds its choice to it)."""
BATCH_SIZE = 16
"""Clips per step of the scorer and of the learned pooling parameters."""


class PoolingNeutralScorer(nn.Module):
    """The frame scorer of step 1: log-mel ``[B, M, F]`` -> frame probabilities ``[B, K, F]``
    (100 frames/s) and hidden features ``[B, H, F]``.

    Math (``mu``, ``sigma``: per-band train statistics)::

        h = ReLU(conv5((x - mu) / sigma))        [B, H, F]   kernel 5 over time (50 ms)
        y = sigmoid(conv5(h))                    [B, K, F]   receptive field 90 ms

    Trained with every frame's target set to its clip's labels (frame-wise binary cross-entropy,
    no pooling in the loss), so no pooling rule shapes the scores the rules are compared on:
    event frames learn to score high; background frames settle near the share of clips that
    carry the class.
    """

    def __init__(self, n_mels: int, n_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(n_mels))
        self.register_buffer("feature_std", torch.ones(n_mels))
        self.hidden = nn.Conv1d(n_mels, hidden, kernel_size=5, padding=2)
        self.head = nn.Conv1d(hidden, n_classes, kernel_size=5, padding=2)

    def forward(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normalised = (log_mel - self.feature_mean[:, None]) / self.feature_std[:, None]
        hidden = torch.relu(self.hidden(normalised))
        return torch.sigmoid(self.head(hidden)), hidden


def train_pooling_neutral_scorer(
    features: FeatureSet, classes: Sequence[str], *, hidden: int, steps: int, seed: int, learning_rate: float = 3e-3
) -> tuple[PoolingNeutralScorer, list[float]]:
    """Train :class:`PoolingNeutralScorer` for ``steps`` random batches with clip labels broadcast
    to frames (masked padding); returns the scorer (eval mode) and the loss of each step."""
    torch.manual_seed(seed)
    model = PoolingNeutralScorer(features.config.n_mels, len(classes), hidden)
    mean, std = frame_statistics(features.log_mels.values())
    model.feature_mean.copy_(mean)
    model.feature_std.copy_(std.clamp_min(1e-5))
    inputs, targets = features.inputs(), clip_targets(features.split, classes)

    def loss(rows: list[int]) -> torch.Tensor:
        batch, mask = collate_padded([inputs[row] for row in rows])
        scores, _ = model(batch)
        return frame_bce(scores, torch.from_numpy(targets[rows])[:, :, None].expand_as(scores), mask=mask)

    history = fit_clip_model(
        model,
        [{"params": list(model.parameters()), "lr": learning_rate}],
        random_batches(len(inputs), BATCH_SIZE, torch.Generator().manual_seed(seed)),
        loss,
        FitSettings(epochs=steps),
        name="pooling-neutral scorer",
        seed=seed,
    )
    return model, history.train_loss


def fit_learned_pooling(
    rule: str,
    frames: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    split: EventSplit,
    classes: Sequence[str],
    steps: int,
    seed: int,
) -> nn.Module:
    """Fit a learned pooling's parameters on frozen frame scores and features (clip BCE)."""
    torch.manual_seed(seed)
    files = split.files
    hidden = next(iter(frames.values()))[1].shape[1]
    module = make_pooling(rule, len(classes), in_features=hidden)
    targets = torch.from_numpy(clip_targets(split, classes, files))

    def loss(rows: list[int]) -> torch.Tensor:
        scores, mask = collate_padded([frames[files[row]][0][0].numpy() for row in rows])
        hidden_batch, _ = collate_padded([frames[files[row]][1][0].numpy() for row in rows])
        return clip_bce(module(scores, hidden_batch, mask), targets[rows])

    fit_clip_model(
        module,
        [{"params": list(module.parameters()), "lr": 0.05 if rule == "autopool" else 0.01}],
        random_batches(len(files), BATCH_SIZE, torch.Generator().manual_seed(seed)),
        loss,
        FitSettings(epochs=steps),
        name=f"pooling/{rule}",
        seed=seed,
    )
    return module


def run(context: RunContext) -> PoolingComparison:
    """Train the scorer, pool its frame scores six ways, compare clip metrics."""
    data, settings = context.data, context.settings
    classes = data.classes
    with one_thread():
        scorer, losses = train_pooling_neutral_scorer(
            data.features["train"],
            classes,
            hidden=settings.scorer.hidden,
            steps=settings.scorer.steps,
            seed=context.seed,
        )
        frames: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        with torch.no_grad():
            for name in SPLITS:
                frames[name] = {f: scorer(torch.from_numpy(m)[None]) for f, m in data.features[name].log_mels.items()}
        learned, fit_seconds = {}, {}
        for rule in ("attention", "autopool"):
            fit_started = time.perf_counter()
            learned[rule] = fit_learned_pooling(
                rule, frames["train"], data.splits["train"], classes, settings.scorer.pool_fit_steps, context.seed
            )
            fit_seconds[rule] = time.perf_counter() - fit_started
        pooled: dict[str, dict[str, np.ndarray]] = {}
        metrics: dict[str, dict[str, ClipMetrics]] = {}
        with torch.no_grad():
            for rule in POOLING_NAMES:
                module = learned.get(rule) or make_pooling(rule, len(classes))
                pooled[rule], metrics[rule] = {}, {}
                for name in ("validation", "test"):
                    split = data.splits[name]
                    scores = np.stack([module(frames[name][f][0], frames[name][f][1])[0].numpy() for f in split.files])
                    pooled[rule][name] = scores
                    metrics[rule][name] = clip_metrics(scores, clip_targets(split, classes), classes)
    predictions = {
        name: Predictions(
            {f: value[0][0].numpy().astype(np.float64) for f, value in frames[name].items()},
            {},
            data.features[name].config.frame_rate,
            classes,
        )
        for name in SPLITS
    }
    best = max(POOLING_NAMES, key=lambda rule: metrics[rule]["validation"].map or -1.0)
    alphas = {name: float(value) for name, value in zip(classes, learned["autopool"].alpha.detach().numpy())}
    write_tsv(
        context.path(FOLDER, "clip_metrics.tsv"),
        ("pooling", "validation_map", "validation_accuracy", "test_map", "test_accuracy"),
        [
            (
                rule,
                metrics[rule]["validation"].map,
                metrics[rule]["validation"].accuracy,
                metrics[rule]["test"].map,
                metrics[rule]["test"].accuracy,
            )
            for rule in POOLING_NAMES
        ],
    )
    filename, label = _showcase(data.splits["test"], predictions["test"], classes)
    plot = plot_pooled_levels(
        context.path(FOLDER, "pooled_levels.png"),
        filename,
        label,
        data.splits["test"],
        predictions["test"],
        pooled,
        metrics,
        classes,
    )
    result = PoolingComparison(
        metrics,
        best,
        alphas,
        (f"{FOLDER}/clip_metrics.tsv", f"{FOLDER}/clip_metrics.json", context.rel(plot)),
        predictions,
    )
    write_json(
        context.path(FOLDER, "clip_metrics.json"),
        {
            "what": "six pooling rules applied to the SAME frame scores (a pooling-neutral frame scorer trained with "
            "clip labels broadcast to every frame); attention and AutoPool parameters fitted on the training clips",
            "frame_scorer": {
                "hidden": settings.scorer.hidden,
                "steps": settings.scorer.steps,
                "final_loss": losses[-1],
                "frame_rate": data.features["train"].config.frame_rate,
            },
            "metrics": result.metrics_json(),
            "best_on_validation_map": best,
            "autopool_alpha": alphas,
            "pool_fit_seconds": fit_seconds,
        },
    )
    for rule in POOLING_NAMES:
        context.log(
            f"  {rule:>14}: test mAP {number(metrics[rule]['test'].map)}, "
            f"accuracy {number(metrics[rule]['test'].accuracy)}"
        )
    return result


def _showcase(split: EventSplit, predictions: Predictions, classes: Sequence[str]) -> tuple[str, str]:
    """The (clip, class) whose frame scores stand out most inside a short (< 1 s) event: the
    highest in-event score minus the clip's median score; the first positive clip without
    strong labels."""
    best, chosen = -np.inf, None
    for filename in split.files:
        if split.strong is None:
            if split.weak[filename]:
                return filename, split.weak[filename][0]
            continue
        scores = predictions.frame_scores[filename]
        middles = frame_centres(scores.shape[1], predictions.frame_rate)
        for event in split.strong[filename]:
            if event.offset - event.onset >= 1.0:
                continue
            row = scores[list(classes).index(event.label)]
            inside = row[(middles >= event.onset) & (middles < event.offset)]
            if len(inside) and inside.max() - np.median(row) > best:
                best, chosen = inside.max() - np.median(row), (filename, event.label)
    return chosen or (split.files[0], split.weak[split.files[0]][0] if split.weak[split.files[0]] else classes[0])


def report_section(result: PoolingComparison, results: Mapping[str, Any]) -> ReportSection:
    """What pooling alone does to the same frame scores (the evidence is in ``report.json``'s
    ``pooling`` section, which step 4's choice heads)."""
    mean_test, max_test = result.metrics["mean"]["test"], result.metrics["max"]["test"]
    best = result.best_on_validation_map
    text = (
        f"On the same frame scores, mean pooling gives test clip mAP {number(mean_test.map)} (accuracy "
        f"{number(mean_test.accuracy)}) and max pooling {number(max_test.map)} (accuracy {number(max_test.accuracy)}); "
        f"the best clip summary on validation is {best} (test mAP {number(result.metrics[best]['test'].map)})."
    )
    return ReportSection(claims=(Claim("pooling_same_scores", text, result.artifacts, HEADING),))
