"""The workflow's plots (matplotlib, Agg, PNG): one function per figure, each returning its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from audioenc.audio.formats import EventSplit
from audioenc.core.frames import frame_centres
from audioenc.core.plotting import pyplot
from audioenc.timing.evaluation import ClipEvaluator, Evaluation
from audioenc.timing.fitting import Predictions, TrainingHistory
from audioenc.timing.pooling import POOLING_NAMES
from audioenc.timing.weak import FeatureSet

COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)


def plot_pooled_levels(
    path: Path,
    filename: str,
    label: str,
    split: EventSplit,
    predictions: Predictions,
    pooled,
    metrics,
    classes: Sequence[str],
) -> Path:
    plt = pyplot()
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(12, 3.6), constrained_layout=True, gridspec_kw={"width_ratios": [2, 1]}
    )
    k = list(classes).index(label)
    scores = predictions.frame_scores[filename][k]
    times = frame_centres(len(scores), predictions.frame_rate)
    left.plot(times, scores, color="0.3", linewidth=0.8, label=f"frame score: {classes[k]}")
    row = split.files.index(filename)
    for index, rule in enumerate(POOLING_NAMES):
        left.axhline(
            pooled[rule]["test"][row, k],
            color=COLOURS[index],
            linestyle="--",
            linewidth=1.0,
            label=f"{rule}: {pooled[rule]['test'][row, k]:.2f}",
        )
    if split.strong is not None:
        for event in split.strong[filename]:
            if event.label == classes[k]:
                left.axvspan(event.onset, event.offset, color="gold", alpha=0.3)
    left.set(
        xlabel="time (s)", ylabel="score", ylim=(-0.02, 1.02), title=f"{filename}: one frame view, six clip summaries"
    )
    left.legend(fontsize=7, loc="upper right", ncol=2)
    x = np.arange(len(POOLING_NAMES))
    right.bar(x - 0.2, [metrics[r]["test"].map or 0 for r in POOLING_NAMES], 0.4, label="mAP")
    right.bar(x + 0.2, [metrics[r]["test"].accuracy for r in POOLING_NAMES], 0.4, label="accuracy")
    right.set_xticks(x, POOLING_NAMES, rotation=30, fontsize=8)
    right.set(ylim=(0, 1), title="test clips, same frame scores")
    right.legend(fontsize=7)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_frame_scores(
    path: Path,
    samples: Sequence[str],
    split: EventSplit,
    features: FeatureSet,
    predictions: Predictions,
    classes: Sequence[str],
) -> Path:
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = max(1, len(samples))
    figure, axes = plt.subplots(2, columns, figsize=(4.2 * columns, 5), squeeze=False, constrained_layout=True)
    for column, filename in enumerate(samples):
        mel, score = axes[0, column], axes[1, column]
        log_mel = features.log_mels[filename]
        duration = log_mel.shape[1] / features.config.frame_rate
        mel.imshow(log_mel, origin="lower", aspect="auto", extent=(0, duration, 0, log_mel.shape[0]), cmap="magma")
        mel.set_title(f"{filename}: {', '.join(split.weak[filename]) or 'no event'}", fontsize=8)
        scores = predictions.frame_scores[filename]
        times = frame_centres(scores.shape[1], predictions.frame_rate)
        for k, name in enumerate(classes):
            score.plot(times, scores[k], color=COLOURS[k % len(COLOURS)], linewidth=0.8, label=name)
            if split.strong is not None:
                for event in split.strong[filename]:
                    if event.label == name:
                        score.axvspan(event.onset, event.offset, color=COLOURS[k % len(COLOURS)], alpha=0.15)
        score.set(ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="frame score")
        for axis in (mel, score):
            axis.set_xlim(0, duration)
        if column == 0:
            score.legend(fontsize=6, loc="upper right")
    figure.suptitle("Frame scores per class over time (shaded: true events of that class)", fontsize=9)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_histories(
    path: Path, histories: Mapping[str, TrainingHistory], title: str = "weak-label CRNN, one run per pooling rule"
) -> Path:
    """Validation (solid) and training (dotted) loss per epoch; a dot marks the epoch kept, a
    cross the last epoch of a model stopped while still improving."""
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for index, (name, history) in enumerate(histories.items()):
        colour = COLOURS[index % len(COLOURS)]
        epochs = np.arange(1, len(history.valid_loss) + 1)
        label = f"{name} ({history.stopped.replace('_', ' ')}{', still improving' if history.still_improving else ''})"
        axis.plot(epochs, history.valid_loss, color=colour, label=label)
        axis.plot(
            np.arange(1, len(history.train_loss) + 1), history.train_loss, color=colour, linestyle=":", linewidth=0.8
        )
        if 0 <= history.best_epoch < len(history.valid_loss):
            axis.plot(history.best_epoch + 1, history.valid_loss[history.best_epoch], "o", color=colour)
        if history.still_improving:
            axis.plot(epochs[-1], history.valid_loss[-1], "x", color=colour, markersize=9)
    axis.set(xlabel="epoch", ylabel="clip BCE (solid: validation, dotted: training)", title=title)
    axis.title.set_fontsize(9)
    axis.legend(fontsize=6)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_error_distributions(path: Path, errors_by_rule: Mapping[str, list]) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    bins = np.linspace(-2, 2, 41)
    for which, axis in zip(("onset", "offset"), axes):
        for index, (rule, errors) in enumerate(errors_by_rule.items()):
            values = np.clip([getattr(e, f"{which}_error") for e in errors if e.detected], -2, 2)
            missed = sum(not e.detected for e in errors)
            axis.hist(values, bins=bins, histtype="step", color=COLOURS[index], label=f"{rule} ({missed} missed)")
        axis.axvspan(-0.2, 0.2, color="0.85", zorder=0)
        axis.set(
            xlabel=f"{which} error, predicted - true (s; clipped to ±2)",
            ylabel="events",
            title=f"{which} errors on positive clips (grey: ±200 ms)",
        )
        axis.legend(fontsize=6)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_onset_aligned(
    path: Path, predictions: Mapping[str, Mapping[str, Predictions]], evaluator: ClipEvaluator
) -> Path:
    """Mean frame score of the event's class against time relative to the true onset and offset."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    window = np.linspace(-1.0, 1.0, 101)
    classes = evaluator.classes
    for which, axis in zip(("onset", "offset"), axes):
        for index, rule in enumerate(predictions):
            prediction = predictions[rule]["test"]
            curves = []
            for filename in evaluator.positives:
                scores = prediction.frame_scores[filename]
                times = frame_centres(scores.shape[1], prediction.frame_rate)
                for event in evaluator.strong[filename]:
                    anchor = getattr(event, which)
                    curves.append(
                        np.interp(anchor + window, times, scores[classes.index(event.label)], left=np.nan, right=np.nan)
                    )
            if curves:
                axis.plot(window, np.nanmean(np.array(curves), axis=0), color=COLOURS[index], label=rule)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.axvspan(-0.2, 0.2, color="0.9", zorder=0)
        axis.set(
            xlabel=f"time from the true {which} (s)",
            ylabel="mean frame score of the event's class",
            ylim=(0, 1),
            title=f"aligned on true {which}s (positive test clips)",
        )
        axis.legend(fontsize=7)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_around_boundaries(
    path: Path,
    predictions: Mapping[str, Mapping[str, Predictions]],
    evaluator: ClipEvaluator,
    errors_by_rule: Mapping[str, list],
    count: int,
) -> Path:
    """Frame scores of sample events' classes from 1 s before the onset to 1 s after the offset."""
    plt = pyplot()
    events = []
    seen_labels = set()
    for filename in evaluator.positives:  # one event per class first, then any
        for event in evaluator.strong[filename]:
            if event.label not in seen_labels:
                events.append((filename, event))
                seen_labels.add(event.label)
    for filename in evaluator.positives:
        for event in evaluator.strong[filename]:
            if len(events) < count and (filename, event) not in events:
                events.append((filename, event))
    events = events[:count]
    rows = max(1, len(events))
    figure, axes = plt.subplots(rows, 1, figsize=(9, 1.9 * rows), squeeze=False, constrained_layout=True)
    for row, (filename, event) in enumerate(events):
        axis = axes[row, 0]
        for index, rule in enumerate(predictions):
            prediction = predictions[rule]["test"]
            scores = prediction.frame_scores[filename][evaluator.classes.index(event.label)]
            times = frame_centres(len(scores), prediction.frame_rate)
            keep = (times >= event.onset - 1.0) & (times <= event.offset + 1.0)
            axis.plot(times[keep], scores[keep], color=COLOURS[index], linewidth=0.9, label=rule)
        axis.axvline(event.onset, color="black", linewidth=1.0)
        axis.axvline(event.offset, color="black", linewidth=1.0, linestyle="--")
        axis.axhline(0.5, color="0.6", linewidth=0.6)
        axis.set(ylim=(-0.02, 1.02), ylabel="score")
        axis.set_title(
            f"{filename}: {event.label} {event.onset:.2f}-{event.offset:.2f} s (black: true onset, dashed: offset)",
            fontsize=8,
        )
        if row == 0:
            axis.legend(fontsize=6, ncol=3, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_comparison(path: Path, models: Mapping[str, Evaluation], title: str) -> Path:
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = [
        m
        for m in (
            "clip_map",
            "clip_accuracy",
            "onset_within",
            "offset_within",
            "collar_f1",
            "onset_f1_200ms",
            "psds1",
            "psds2",
        )
        if any(result.point.get(m) is not None for result in models.values())
    ]
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(metrics) * len(models) / 2), 3.8), constrained_layout=True)
    width = 0.8 / max(1, len(models))
    for index, (name, result) in enumerate(models.items()):
        x = np.arange(len(metrics)) + (index - (len(models) - 1) / 2) * width
        values = [result.point.get(m) or 0.0 for m in metrics]
        ends = [result.interval(m) for m in metrics]
        low = [value - (ci.low if ci is not None and ci.low is not None else value) for value, ci in zip(values, ends)]
        high = [
            (ci.high if ci is not None and ci.high is not None else value) - value for value, ci in zip(values, ends)
        ]
        axis.bar(
            x,
            values,
            width,
            color=COLOURS[index],
            label=name,
            yerr=[np.maximum(low, 0), np.maximum(high, 0)],
            capsize=3,
        )
    axis.set_xticks(np.arange(len(metrics)), metrics, fontsize=8)
    axis.set(ylim=(0, 1.05), title=title)
    axis.title.set_fontsize(9)
    axis.legend(fontsize=7)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
