"""Step 2: frame-level behaviour — the step-1 scorer's frame scores per class over time on sample
clips, with the true events marked (``frame_scores.png``, ``frame_view.json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from audioenc.audio.formats import EventSplit
from audioenc.core.frames import frame_centres
from audioenc.timing.fitting import Predictions
from audioenc.timing.workflow.artifacts import number, write_json
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.plots import plot_frame_scores
from audioenc.timing.workflow.results import FrameView
from audioenc.timing.workflow.sections import Claim, ReportSection

NAME = "frames"
FOLDER = "02_frames"
TITLE = "frame-level score behaviour on sample clips"
HEADING = "2. Frame-level behaviour"


def run(context: RunContext) -> FrameView:
    """Plot sample clips' frame scores and measure inside vs outside the true events."""
    data = context.data
    split, classes = data.splits["test"], data.classes
    predictions = context.results.need("pooling").predictions["test"]
    samples = sample_clips_for_plots(split, classes, context.settings.run.plot_clips - 1)
    negatives = [f for f in split.files if not split.weak[f]]
    if negatives:
        samples.append(negatives[0])
    plot = plot_frame_scores(
        context.path(FOLDER, "frame_scores.png"), samples, split, data.features["test"], predictions, classes
    )
    view = measure_frame_view(predictions, split, classes, samples, (context.rel(plot), f"{FOLDER}/frame_view.json"))
    write_json(
        context.path(FOLDER, "frame_view.json"),
        {"model": "the step-1 frame scorer", "sample_clips": samples, **view.measurements()},
    )
    if view.inside_mean is not None:
        context.log(
            f"  frame scores of the true class: {view.inside_mean:.3f} inside events, "
            f"{view.outside_mean:.3f} outside (positive clips); peak inside an event for "
            f"{view.peak_inside}/{view.positive_pairs} (clip, class) pairs"
        )
    return view


def measure_frame_view(
    predictions: Predictions,
    split: EventSplit,
    classes: Sequence[str],
    sample_clips: Sequence[str] = (),
    artifacts: Sequence[str] = (),
) -> FrameView:
    """Frame scores of the true class inside vs outside its events (positive clips), and how often
    the class's highest frame lies inside one of its events; needs strong labels."""
    if split.strong is None:
        return FrameView(
            False,
            f"the {split.name} split has no strong labels",
            sample_clips=tuple(sample_clips),
            artifacts=tuple(artifacts),
        )
    rate = predictions.frame_rate
    inside, outside, negative, peak_inside, pairs = [], [], [], 0, 0
    for filename in split.files:
        scores = predictions.frame_scores[filename]
        middles = frame_centres(scores.shape[1], rate)
        for k, label in enumerate(classes):
            events = [e for e in split.strong[filename] if e.label == label]
            if not events:
                negative.append(scores[k].mean())
                continue
            in_event = np.zeros(scores.shape[1], dtype=bool)
            for event in events:
                in_event |= (middles >= event.onset) & (middles < event.offset)
            if in_event.any():
                inside.append(scores[k][in_event].mean())
            if (~in_event).any():
                outside.append(scores[k][~in_event].mean())
            pairs += 1
            peak_inside += bool(in_event[int(np.argmax(scores[k]))])
    return FrameView(
        True,
        None,
        inside_mean=float(np.mean(inside)) if inside else None,
        outside_mean=float(np.mean(outside)) if outside else None,
        absent_class_mean=float(np.mean(negative)) if negative else None,
        peak_inside=peak_inside,
        positive_pairs=pairs,
        sample_clips=tuple(sample_clips),
        artifacts=tuple(artifacts),
    )


def sample_clips_for_plots(split: EventSplit, classes: Sequence[str], count: int) -> list[str]:
    """Positive clips for plots: one per class in turn (the clip with that class's shortest event)."""
    if count <= 0:
        return []
    chosen: list[str] = []
    for label in classes:
        candidates = []
        for filename in split.files:
            if filename in chosen:
                continue
            if split.strong is not None:
                lengths = [e.offset - e.onset for e in split.strong[filename] if e.label == label]
                if lengths:
                    candidates.append((min(lengths), filename))
            elif label in split.weak[filename]:
                candidates.append((0.0, filename))
        if candidates:
            chosen.append(min(candidates)[1])
        if len(chosen) == count:
            break
    return chosen


def report_section(result: FrameView, results: Mapping[str, Any]) -> ReportSection:
    """What the frame view keeps that the clip summary averages away (``report.json``'s ``frames``)."""
    if result.available and result.inside_mean is not None:
        text = (
            f"The frame view keeps what the clip summary averages away: on positive test clips the true class "
            f"scores {number(result.inside_mean)} inside its events and {number(result.outside_mean)} outside them, "
            f"and its highest frame lies inside one of its events for {result.peak_inside} of "
            f"{result.positive_pairs} (clip, class) pairs."
        )
    else:
        text = (
            "Frame scores per class over time are plotted for sample clips (no strong labels on the test split to "
            "measure them against)."
        )
    return ReportSection(
        json={"frames": result.to_json()}, claims=(Claim("frame_view", text, result.artifacts, HEADING),)
    )
