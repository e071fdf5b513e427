"""Post-processing of frame scores (audioenc.timing.postprocess).

References: the median filter against an edge-padded sliding median in NumPy, scipy's 1-D
median filter row by row, and hand cases; decoded events and the chosen (window, threshold)
on hand-made scores whose answer is known by construction; onset-only F1 by hand (sed_eval's
onset collar is ``|onset error| <= collar``) and against sed_eval's ``EventBasedMetrics`` run
directly in the test; the collar F1 of a choice against sed_scores_eval called directly.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import median_filter as scipy_median

from audioenc.audio.formats import Event, EventSplit
from audioenc.timing.boundaries import collar_f1
from audioenc.timing.evaluation import ClipEvaluator
from audioenc.timing.fitting import Predictions
from audioenc.timing.postprocess import (
    ClassPostProcessing,
    PostProcessing,
    PostprocessSettings,
    choose_postprocessing,
    decode_events,
    median_filter,
    onset_only_f1,
    threshold_map,
    window_frames,
)

RATE = 10.0  # frames per second of every hand-made case: frame j spans [j, j + 1) / 10 s


def _numpy_median(row: np.ndarray, frames: int) -> np.ndarray:
    """Sliding median with the edge values repeated (scipy's mode="nearest"), in NumPy."""
    half = frames // 2
    return np.median(sliding_window_view(np.pad(row, half, mode="edge"), frames), axis=1)


# =========================================================================== median filter


def test_median_filter_removes_a_one_frame_spike_and_window_1_copies():
    spike = np.array([[0.1, 0.1, 0.9, 0.1, 0.1], [0.8, 0.8, 0.2, 0.8, 0.8]])
    filtered = median_filter({"a.wav": spike}, 3)["a.wav"]
    # Hand: each 3-frame median of the spike row is 0.1; of the dip row 0.8 (no mixing of rows).
    np.testing.assert_array_equal(filtered, [[0.1] * 5, [0.8] * 5])
    copied = median_filter({"a.wav": spike}, 1)["a.wav"]
    np.testing.assert_array_equal(copied, spike)
    copied[0, 0] = 5.0
    assert spike[0, 0] == 0.1  # a copy, not the caller's array


@pytest.mark.parametrize("frames", [3, 5, 7])
def test_median_filter_matches_numpy_and_scipy_per_row(frames):
    rng = np.random.default_rng(frames)
    scores = {"a.wav": rng.random((3, 23)), "b.wav": rng.random((3, 4))}  # b shorter than a 5/7 window
    filtered = median_filter(scores, frames)
    for name, array in scores.items():
        assert filtered[name].shape == array.shape
        for row in range(3):
            np.testing.assert_allclose(filtered[name][row], _numpy_median(array[row], frames), rtol=0, atol=0)
            np.testing.assert_array_equal(filtered[name][row], scipy_median(array[row], size=frames, mode="nearest"))


def test_window_frames_rounds_to_the_nearest_odd_count():
    # Hand: seconds * rate rounded, then made odd by adding one; at least 1.
    assert window_frames(0.0, 50.0) == 1
    assert window_frames(0.01, 50.0) == 1  # 0.5 frames rounds to 0 -> at least 1
    assert window_frames(0.3, 10.0) == 3
    assert window_frames(0.2, 10.0) == 3  # 2 -> 3
    assert window_frames(0.12, 50.0) == 7  # 6 -> 7
    assert window_frames(0.24, 50.0) == 13  # 12 -> 13
    assert window_frames(0.48, 50.0) == 25  # 24 -> 25
    for seconds in np.linspace(0, 1, 37):
        frames = window_frames(float(seconds), 62.5)
        assert frames % 2 == 1 and abs(frames - seconds * 62.5) <= 1.5


# =========================================================================== decoding


def test_decode_events_takes_runs_strictly_above_the_threshold():
    scores = np.array(
        [
            [0.1, 0.6, 0.6, 0.5, 0.7, 0.7],  # frame 3 equals the threshold: inactive
            [0.9, 0.2, 0.2, 0.2, 0.2, 0.2],  # a run starting at frame 0
        ]
    )
    events = decode_events(
        {"a.wav": scores, "b.wav": np.full((2, 6), 0.1)}, ("x", "y"), RATE, 0.5, durations={"a.wav": 0.55, "b.wav": 0.6}
    )
    # Hand: x frames 1-2 -> [0.1, 0.3), frames 4-5 -> [0.4, 0.6) cropped to the 0.55 s clip; y frame 0.
    assert events["a.wav"] == [Event(0.0, 0.1, "y"), Event(0.1, 0.3, "x"), Event(0.4, 0.55, "x")]
    assert events["b.wav"] == []
    without_durations = decode_events({"a.wav": scores}, ("x", "y"), RATE, 0.5)
    assert Event(0.4, 0.6, "x") in without_durations["a.wav"]  # the end of the frames
    assert decode_events({"a.wav": scores}, ("x", "y"), RATE, 0.4)["a.wav"] == [
        Event(0.0, 0.1, "y"),
        Event(0.1, 0.6, "x"),
    ]  # at 0.4 the 0.5 frame joins the runs


# =========================================================================== choosing on validation


def _split(
    strong: dict[str, list[Event]] | None, files: list[str], duration: float = 3.0, classes: tuple[str, ...] = ("x",)
) -> EventSplit:
    weak = {f: tuple(sorted({e.label for e in strong[f]})) if strong is not None else ("x",) for f in files}
    return EventSplit(
        name="validation",
        audio_dir=None,
        files=files,
        durations={f: duration for f in files},
        weak=weak,
        strong=strong,
        classes=classes,
    )


def _scores_from(
    events: dict[str, list[tuple[int, int]]], inside: float, outside: float, frames: int = 30
) -> dict[str, np.ndarray]:
    """One-class scores: ``inside`` on frames ``[start, stop)`` of each run, ``outside`` elsewhere."""
    result = {}
    for name, runs in events.items():
        row = np.full((1, frames), outside)
        for start, stop in runs:
            row[0, start:stop] = inside
        result[name] = row
    return result


def _predictions(frame_scores: dict[str, np.ndarray]) -> Predictions:
    return Predictions(frame_scores, {f: s.max(axis=1) for f, s in frame_scores.items()}, RATE, ("x",))


TRUTH = {"a.wav": [Event(0.5, 1.5, "x")], "b.wav": [Event(1.0, 2.0, "x")], "c.wav": []}
RUNS = {"a.wav": [(5, 15)], "b.wav": [(10, 20)], "c.wav": []}


def test_the_threshold_that_detects_the_events_is_chosen():
    # 0.35 inside the events, 0.1 outside: 0.3 finds every event exactly (F1 1), 0.5 finds none (F1 0).
    predictions = _predictions(_scores_from(RUNS, 0.35, 0.1))
    split = _split(TRUTH, sorted(TRUTH))
    choice = choose_postprocessing(
        predictions, split, ("x",), PostprocessSettings(median_seconds=(0.0,), thresholds=(0.3, 0.5))
    )
    assert choice.threshold == 0.3 and choice.window_frames == 1 and choice.window_seconds == 0.0
    assert choice.validation_f1 == pytest.approx(1.0)
    assert choice.basis.startswith("chosen on validation") and "2 (median window, threshold)" in choice.basis
    reference = collar_f1(predictions.frame_scores, TRUTH, ("x",), RATE, durations=split.durations, threshold=0.5)
    assert reference.f1 == 0.0  # sed_scores_eval directly: the rejected threshold finds nothing


def test_a_median_window_wins_on_flickering_scores():
    # Each event has a one-frame dip in its middle (splitting it in two) and c.wav has a one-frame
    # false spike: unfiltered F1 < 1; a 3-frame median (0.3 s at 10 frames/s) removes both (F1 1).
    scores = _scores_from(RUNS, 0.9, 0.1)
    scores["a.wav"][0, 10] = 0.1
    scores["b.wav"][0, 15] = 0.1
    scores["c.wav"][0, 20] = 0.9
    predictions = _predictions(scores)
    split = _split(TRUTH, sorted(TRUTH))
    choice = choose_postprocessing(
        predictions, split, ("x",), PostprocessSettings(median_seconds=(0.0, 0.3), thresholds=(0.5,))
    )
    assert (choice.window_seconds, choice.window_frames, choice.threshold) == (0.3, 3, 0.5)
    assert choice.validation_f1 == pytest.approx(1.0)
    unfiltered = collar_f1(scores, TRUTH, ("x",), RATE, durations=split.durations, threshold=0.5)
    filtered = collar_f1(
        {f: scipy_median(s, size=(1, 3), mode="nearest") for f, s in scores.items()},
        TRUTH,
        ("x",),
        RATE,
        durations=split.durations,
        threshold=0.5,
    )
    assert unfiltered.f1 < 1.0 and filtered.f1 == pytest.approx(choice.validation_f1)


def test_ties_go_to_the_smaller_window_then_the_threshold_nearest_one_half():
    # Clean scores: every (window, threshold) pair scores F1 1.
    predictions = _predictions(_scores_from(RUNS, 0.9, 0.05))
    choice = choose_postprocessing(
        predictions,
        _split(TRUTH, sorted(TRUTH)),
        ("x",),
        PostprocessSettings(median_seconds=(0.5, 0.0, 0.3), thresholds=(0.2, 0.45, 0.7)),
    )
    assert choice.validation_f1 == pytest.approx(1.0)
    assert (choice.window_frames, choice.threshold) == (1, 0.45)


def test_the_fixed_values_without_strong_labels_or_when_nothing_scores():
    settings = PostprocessSettings(
        median_seconds=(0.0, 0.3), thresholds=(0.3, 0.5), fixed_median_seconds=0.2, fixed_threshold=0.4
    )
    predictions = _predictions(_scores_from(RUNS, 0.35, 0.1))
    weak_only = choose_postprocessing(predictions, _split(None, sorted(TRUTH)), ("x",), settings)
    assert (weak_only.window_seconds, weak_only.window_frames, weak_only.threshold) == (0.2, 3, 0.4)
    assert weak_only.validation_f1 is None and "no strong labels" in weak_only.basis
    # Every candidate threshold is above every score: collar F1 0 everywhere -> fixed.
    flat = _predictions(_scores_from(RUNS, 0.2, 0.1))
    nothing = choose_postprocessing(flat, _split(TRUTH, sorted(TRUTH)), ("x",), settings)
    assert (nothing.window_frames, nothing.threshold) == (3, 0.4) and nothing.validation_f1 == 0.0
    assert nothing.basis.startswith("fixed") and "0 for every candidate" in nothing.basis
    # Strong labels without an event of the task classes.
    other = {"a.wav": [Event(0.5, 1.5, "y")], "b.wav": [], "c.wav": []}
    no_events = choose_postprocessing(predictions, _split(other, sorted(other), classes=("x", "y")), ("x",), settings)
    assert no_events.threshold == 0.4 and "no event of these classes" in no_events.basis


def test_apply_filters_the_frames_and_attaches_the_threshold():
    rng = np.random.default_rng(3)
    frame_scores = {"a.wav": rng.random((2, 12)), "b.wav": rng.random((2, 9))}
    clip = {name: scores.max(axis=1) for name, scores in frame_scores.items()}
    predictions = Predictions(frame_scores, clip, RATE, ("x", "y"))
    applied = PostProcessing(0.5, 5, 0.3, "test").apply(predictions)
    assert applied.threshold == 0.3 and predictions.threshold == 0.5
    for name, scores in frame_scores.items():
        for row in range(2):
            np.testing.assert_array_equal(applied.frame_scores[name][row], _numpy_median(scores[row], 5))
        np.testing.assert_array_equal(applied.clip_scores[name], clip[name])
    assert PostProcessing(0.5, 5, 0.3, "test").to_json() == {
        "median_seconds": 0.5,
        "median_frames": 5,
        "threshold": 0.3,
        "basis": "test",
        "validation_collar_f1": None,
    }


# =========================================================================== per class

# Two classes that need different post-processing. x: one-frame events at 0.35 over 0.1 (found
# only at threshold 0.3, and a 3-frame median erases them: window 1). y: 1 s events at 0.9 over
# a 0.5 floor (0.3 makes everything one event: threshold 0.7), with a one-frame dip that splits
# a.wav's event at 0.7 and a one-frame false y in c.wav (both removed by a 3-frame median).
TWO_TRUTH = {
    "a.wav": [Event(0.5, 0.6, "x"), Event(1.5, 2.5, "y")],
    "b.wav": [Event(1.0, 1.1, "x"), Event(1.5, 2.5, "y")],
    "c.wav": [Event(0.2, 0.3, "x")],
}
TWO_SETTINGS = {"median_seconds": (0.0, 0.3), "thresholds": (0.3, 0.7)}


def _two_class_case() -> tuple[Predictions, EventSplit]:
    scores = {}
    for name, events in TWO_TRUTH.items():
        rows = np.stack([np.full(30, 0.1), np.full(30, 0.5)])
        for event in events:
            row = ("x", "y").index(event.label)
            rows[row, round(event.onset * RATE) : round(event.offset * RATE)] = (0.35, 0.9)[row]
        scores[name] = rows
    scores["a.wav"][1, 20] = 0.5  # the dip
    scores["c.wav"][1, 8] = 0.9  # the false y
    predictions = Predictions(scores, {f: s.max(axis=1) for f, s in scores.items()}, RATE, ("x", "y"))
    return predictions, _split(TWO_TRUTH, sorted(TWO_TRUTH), classes=("x", "y"))


def test_per_class_selection_picks_each_classs_own_window_and_threshold():
    predictions, split = _two_class_case()
    system = choose_postprocessing(predictions, split, ("x", "y"), PostprocessSettings(**TWO_SETTINGS))
    per_class = choose_postprocessing(
        predictions, split, ("x", "y"), PostprocessSettings(**TWO_SETTINGS, per_class=True)
    )
    # Per system one shared pair: (1 frame, 0.3) serves x (F1 1) and fails y (F1 0): macro 0.5.
    assert system.per_class is None and (system.window_frames, system.threshold) == (1, 0.3)
    assert system.validation_f1 == pytest.approx(0.5)
    # Per class: x keeps (1 frame, 0.3), y takes (3 frames, 0.7); each at its own F1 1.
    assert per_class.per_class == {
        "x": ClassPostProcessing(0.0, 1, 0.3, True, pytest.approx(1.0)),
        "y": ClassPostProcessing(0.3, 3, 0.7, True, pytest.approx(1.0)),
    }
    assert (per_class.window_frames, per_class.threshold) == (1, 0.3)  # the shared pair, kept for reference
    assert per_class.basis.startswith("chosen per class on validation") and "2 of 2 classes" in per_class.basis
    # Applied: validation collar F1 0.5 with the shared pair, 1.0 per class.
    for choice, expected in ((system, 0.5), (per_class, 1.0)):
        applied = choice.apply(predictions)
        f1 = collar_f1(
            applied.frame_scores, TWO_TRUTH, ("x", "y"), RATE, durations=split.durations, threshold=applied.threshold
        )
        assert f1.f1 == pytest.approx(expected)
    assert per_class.to_json()["per_class"]["y"] == {
        "median_seconds": 0.3,
        "median_frames": 3,
        "threshold": 0.7,
        "own": True,
        "validation_collar_f1": pytest.approx(1.0),
    }
    assert "per_class" not in system.to_json()


def test_a_class_without_a_validation_event_keeps_the_shared_pair():
    predictions, split = _two_class_case()
    truth = {name: [event for event in events if event.label == "x"] for name, events in TWO_TRUTH.items()}
    split = _split(truth, sorted(truth), classes=("x", "y"))
    choice = choose_postprocessing(predictions, split, ("x", "y"), PostprocessSettings(**TWO_SETTINGS, per_class=True))
    assert choice.per_class["x"].own and (choice.per_class["x"].window_frames, choice.per_class["x"].threshold) == (
        1,
        0.3,
    )
    shared = choice.per_class["y"]
    assert not shared.own and shared.validation_f1 is None
    assert (shared.window_frames, shared.threshold) == (choice.window_frames, choice.threshold)
    assert "1 of 2 classes" in choice.basis


def test_per_class_apply_decides_exactly_as_each_classs_own_filter_and_threshold():
    rng = np.random.default_rng(5)
    frame_scores = {"a.wav": rng.random((2, 40)).astype(np.float32), "b.wav": rng.random((2, 17)).astype(np.float32)}
    predictions = Predictions(frame_scores, {f: s.max(axis=1) for f, s in frame_scores.items()}, RATE, ("x", "y"))
    own = {"x": ClassPostProcessing(0.0, 1, 0.3, True, 1.0), "y": ClassPostProcessing(0.5, 5, 0.7, True, 1.0)}
    applied = PostProcessing(0.3, 3, 0.5, "test", 0.5, own).apply(predictions)
    assert applied.threshold == 0.5
    for name, scores in frame_scores.items():
        np.testing.assert_array_equal(applied.clip_scores[name], predictions.clip_scores[name])
        for row, choice in enumerate(own.values()):
            filtered = _numpy_median(scores[row], choice.window_frames) if choice.window_frames > 1 else scores[row]
            np.testing.assert_array_equal(
                applied.frame_scores[name][row] > 0.5, filtered.astype(np.float64) > choice.threshold
            )
            # Strictly increasing per class: the ranking (hence PSDS and AP) is the filtered scores'.
            np.testing.assert_array_equal(
                np.argsort(applied.frame_scores[name][row], kind="stable"), np.argsort(filtered, kind="stable")
            )


def test_the_threshold_map_puts_the_threshold_on_one_half():
    scores = np.array([0.0, 0.15, 0.3, np.nextafter(np.float32(0.3), np.float32(1)), 0.65, 1.0], dtype=np.float32)
    mapped = threshold_map(scores, 0.3)
    assert mapped.dtype == np.float64
    np.testing.assert_allclose(mapped[[0, 1, 4, 5]], [0.0, 0.25, 0.75, 1.0], atol=1e-7)
    # To the last step: compared in float64 (as sed_scores_eval's tables are), float32 0.3 lies above 0.3.
    np.testing.assert_array_equal(mapped > 0.5, scores.astype(np.float64) > 0.3)
    assert mapped[2] > 0.5 and threshold_map(np.array([0.3]), 0.3)[0] == 0.5
    assert np.all(np.diff(mapped) > 0)


# =========================================================================== onset-only F1


def test_onset_only_f1_hand_case():
    truth = {"a.wav": [Event(1.0, 2.0, "x")]}
    late = {"a.wav": [Event(1.15, 1.4, "x")]}  # 150 ms late; the offset is far off and ignored
    assert onset_only_f1(late, truth, ("x",), 0.2) == pytest.approx(1.0)
    assert onset_only_f1(late, truth, ("x",), 0.05) == pytest.approx(0.0)
    # A false positive: TP 1, FP 1, FN 0 -> precision 1/2, recall 1, F = 2 * 0.5 / 1.5 = 2/3.
    extra = {"a.wav": [Event(1.15, 1.4, "x"), Event(2.5, 2.9, "x")]}
    assert onset_only_f1(extra, truth, ("x",), 0.2) == pytest.approx(2 / 3)
    # Micro over clips: a second clip with a missed event -> TP 1, FP 1, FN 1 -> F = 1/2.
    truth_two = {**truth, "b.wav": [Event(0.2, 0.6, "x")]}
    assert onset_only_f1(extra, truth_two, ("x",), 0.2) == pytest.approx(0.5)
    # Detections on clips outside the reference, and of other classes, are not counted.
    stray = {**late, "zzz.wav": [Event(0.0, 1.0, "x")], "a.wav": [*late["a.wav"], Event(3.0, 3.2, "y")]}
    assert onset_only_f1(stray, truth, ("x",), 0.2) == pytest.approx(1.0)


def test_onset_only_f1_matches_sed_eval_directly():
    import dcase_util
    import sed_eval

    rng = np.random.default_rng(11)
    classes = ("x", "y", "z")
    truth, detected = {}, {}
    for index in range(6):
        name = f"clip{index}.wav"
        truth[name], detected[name] = [], []
        for label in classes:
            onset = float(rng.uniform(0, 2))
            if rng.random() < 0.7:
                truth[name].append(Event(round(onset, 3), round(onset + rng.uniform(0.2, 1.0), 3), label))
            if rng.random() < 0.8:
                shifted = onset + rng.normal(0, 0.12)
                detected[name].append(Event(round(max(shifted, 0.0), 3), round(max(shifted, 0.0) + 0.5, 3), label))
    truth["empty.wav"], detected["empty.wav"] = [], [Event(0.1, 0.4, "x")]  # a false positive on a negative clip

    for collar in (0.2, 0.05):
        metrics = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=list(classes),
            t_collar=collar,
            percentage_of_length=0.5,
            evaluate_onset=True,
            evaluate_offset=False,
        )
        for name in truth:
            reference = dcase_util.containers.MetaDataContainer(
                [{"filename": name, "onset": e.onset, "offset": e.offset, "event_label": e.label} for e in truth[name]]
            )
            estimated = dcase_util.containers.MetaDataContainer(
                [
                    {"filename": name, "onset": e.onset, "offset": e.offset, "event_label": e.label}
                    for e in detected[name]
                ]
            )
            metrics.evaluate(reference_event_list=reference, estimated_event_list=estimated)
        expected = metrics.results_overall_metrics()["f_measure"]["f_measure"]
        assert 0 < expected < 1
        assert onset_only_f1(detected, truth, classes, collar) == pytest.approx(expected, abs=1e-12)


# =========================================================================== with the evaluator


def test_the_evaluator_decides_at_the_predictions_threshold():
    # Scores 0.35 inside the events: at the default 0.5 nothing is detected, at 0.3 everything.
    truth = {"a.wav": [Event(0.5, 1.5, "x")], "b.wav": [Event(1.0, 2.0, "x")], "c.wav": [], "d.wav": []}
    runs = {"a.wav": [(5, 15)], "b.wav": [(10, 20)], "c.wav": [], "d.wav": []}
    split = _split(truth, sorted(truth))
    low = _predictions(_scores_from(runs, 0.35, 0.1))
    evaluator = ClipEvaluator(split, ("x",), resamples=20, f1_resamples=5, onset_only_collars=(0.2, 0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at_half = evaluator.evaluate(low, with_psds=False)
        chosen = PostProcessing(0.0, 1, 0.3, "test").apply(low)
        at_chosen = evaluator.evaluate(chosen, with_psds=False)
    assert at_half.point["collar_f1"] == pytest.approx(0.0)
    assert at_half.boundary.summary.detected == 0
    reference = collar_f1(chosen.frame_scores, truth, ("x",), RATE, durations=split.durations, threshold=0.3)
    assert at_chosen.point["collar_f1"] == pytest.approx(reference.f1) == pytest.approx(1.0)
    assert at_chosen.boundary.summary.detected == 2
    detected = decode_events(chosen.frame_scores, ("x",), RATE, 0.3, split.durations)
    for key, collar in (("onset_f1_200ms", 0.2), ("onset_f1_50ms", 0.05)):
        assert at_chosen.point[key] == pytest.approx(onset_only_f1(detected, truth, ("x",), collar))
        assert at_chosen.point[key] == pytest.approx(1.0)
    # Nothing detected: sed_eval's F-measure has precision 0/0 (NaN, reported as None); 0 would do too.
    assert at_half.point["onset_f1_200ms"] in (0.0, None)


def test_decode_events_ignores_frames_past_the_clip_end():
    # Frames 4 and 5 start at 0.4 s and 0.5 s, past a 0.35 s clip: no audio, no event.
    events = decode_events({"a.wav": np.array([[0.1, 0.1, 0.1, 0.9, 0.9, 0.9]])}, ("x",), 10.0, 0.5, {"a.wav": 0.35})
    assert events["a.wav"] == [Event(0.3, 0.35, "x")]
    assert all(isinstance(value, float) for value in events["a.wav"][0][:2])


def test_onset_only_f1_is_zero_when_nothing_is_detected():
    strong = {"a.wav": [Event(0.5, 1.0, "x")]}
    assert onset_only_f1({"a.wav": []}, strong, ("x",), 0.2) == 0.0
    assert math.isnan(onset_only_f1({"a.wav": []}, {"a.wav": []}, ("x",), 0.2))
