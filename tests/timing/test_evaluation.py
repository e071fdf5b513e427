"""Clip and boundary evaluation of audioenc.timing.evaluation.

References: average precision against scikit-learn's ``average_precision_score`` and a hand
computation; the evaluator's point values against :mod:`audioenc.timing.boundaries` (collar F1
by sed_scores_eval called directly).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from audioenc.audio.formats import Event, EventSplit
from audioenc.timing.boundaries import boundary_errors, collar_f1, summarize_boundaries
from audioenc.timing.evaluation import ClipEvaluator, average_precision
from audioenc.timing.fitting import Predictions


def test_average_precision_hand_case_and_sklearn():
    # Hand: ranked labels 1, 0, 1, 0 -> recall steps 1/2 at precision 1/1 and 1/2 at 2/3.
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.random(40), 1)  # many ties: one threshold per distinct score
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    # Bootstrap counts = repeating clips: the weighted AP equals AP on the repeated arrays.
    counts = rng.integers(0, 3, size=(5, 40))
    weighted = average_precision(labels, scores, counts)
    for row, expected_counts in enumerate(counts):
        repeated = np.repeat(np.arange(40), expected_counts)
        if labels[repeated].sum() == 0:
            assert math.isnan(weighted[row])
        else:
            assert weighted[row] == pytest.approx(
                average_precision_score(labels[repeated], scores[repeated]), abs=1e-12
            )
    assert math.isnan(average_precision([0, 0, 0], [0.1, 0.2, 0.3]))  # no positive: undefined


def _split_with_truth() -> EventSplit:
    strong = {
        "a.wav": [Event(0.5, 1.0, "x"), Event(1.5, 1.8, "y")],
        "b.wav": [Event(0.2, 0.6, "x")],
        "c.wav": [Event(1.0, 1.9, "y")],
        "d.wav": [],
    }
    files = sorted(strong)
    return EventSplit(
        name="test",
        audio_dir=None,
        files=files,
        durations={f: 2.0 for f in files},
        weak={f: tuple(sorted({e.label for e in strong[f]})) for f in files},
        strong=strong,
        classes=("x", "y"),
    )


def _predictions(split: EventSplit, shift: float) -> Predictions:
    """Frame scores 0.9 on each true event shifted by ``shift`` seconds, at 10 frames/s."""
    frame_scores, clip_scores = {}, {}
    for f in split.files:
        scores = np.full((2, 20), 0.1)
        for event in split.strong[f]:
            row = ("x", "y").index(event.label)
            start, stop = round((event.onset + shift) * 10), round((event.offset + shift) * 10)
            scores[row, max(0, start) : min(20, stop)] = 0.9
        frame_scores[f] = scores
        clip_scores[f] = scores.max(axis=1)
    return Predictions(frame_scores, clip_scores, 10.0, ("x", "y"))


def test_evaluator_point_values_match_the_boundary_module():
    split = _split_with_truth()
    evaluator = ClipEvaluator(split, ("x", "y"), resamples=50, seed=0, f1_resamples=20)
    late = _predictions(split, 0.3)
    result = evaluator.evaluate(late, with_psds=False)
    reference_f1 = collar_f1(late.frame_scores, split.strong, ("x", "y"), 10.0, durations=split.durations)
    assert result.point["collar_f1"] == pytest.approx(reference_f1.f1)
    summary = summarize_boundaries(
        boundary_errors(late.frame_scores, split.strong, ("x", "y"), 10.0, durations=split.durations)
    )
    assert result.point["onset_within"] == pytest.approx(summary.onset_within)
    assert result.point["median_abs_onset"] == pytest.approx(summary.median_abs_onset_error)
    assert result.point["clip_map"] == pytest.approx(1.0)  # clip maxima rank every positive first
    assert result.intervals["collar_f1"].resamples <= 20
    # A model against itself: zero difference with a zero-width interval on every metric.
    same = evaluator.paired_difference(late, late)
    for metric, interval in same.items():
        if interval.value is not None:
            assert interval.value == 0 and interval.low == 0 and interval.high == 0, metric
    # On time against 300 ms late: on time wins the onset share by the whole paired interval.
    better = evaluator.paired_difference(_predictions(split, 0.0), late)
    assert better["onset_within"].value == pytest.approx(1.0) and better["onset_within"].low > 0


def test_evaluator_without_strong_labels_says_why():
    split = _split_with_truth()
    split.strong = None
    evaluator = ClipEvaluator(split, ("x", "y"), resamples=10)
    assert not evaluator.boundaries_available and "no strong labels" in evaluator.boundary_reason
    result = evaluator.evaluate(_predictions(_split_with_truth(), 0.0), with_psds=True)
    assert set(result.point) == {"clip_map", "clip_accuracy"}
    assert result.boundary.available is False


def test_psds_intervals_when_asked_and_point_values_from_sed_scores_eval():
    from audioenc.timing.boundaries import PSDS1, psds

    split = _split_with_truth()
    predictions = _predictions(split, 0.0)
    without = ClipEvaluator(split, ("x", "y"), resamples=20, seed=0).evaluate(predictions)
    assert "psds1" in without.point and "psds1" not in without.intervals  # point values only by default
    evaluator = ClipEvaluator(split, ("x", "y"), resamples=20, seed=0, psds_resamples=6)
    result = evaluator.evaluate(predictions)
    reference = psds(predictions.frame_scores, split.strong, ("x", "y"), 10.0, split.durations, settings=PSDS1).value
    assert result.point["psds1"] == pytest.approx(reference)
    interval = result.intervals["psds1"]
    assert interval.resamples <= 6 and interval.low <= interval.high
    assert interval.low >= 0.0 and interval.high <= 1.0
