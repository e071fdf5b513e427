"""Boundary errors, collar F1 and PSDS on a hand-made case at 10 frames/s.

The case (classes x, y; frame j spans [j/10, (j+1)/10) s; "frames 5-9 = 0.9" means those
frames score 0.9 and all others 0):

* a.wav, 2 s: truth x 0.5-1.0, x 1.5-1.8, y 0.0-1.0. Scores x frames 5-9 and 12-13 = 0.9,
  y frames 0-13 = 0.7.
* b.wav, 1 s: truth x 0.2-0.6, y 0.8-0.9. Scores x frames 3-6 = 0.8, y none.
* c.wav, 4 s: truth y 0.5-3.5. Scores y frames 6-39 = 0.7.
* d.wav, 1 s: no event (negative). Scores x frames 0-9 = 0.9.

Every expected number below is worked out by hand in the test's comments.
"""

from __future__ import annotations

import numpy as np
import pytest

from audioenc.audio.formats import Event
from audioenc.timing.boundaries import (
    PSDS1,
    PSDS2,
    boundary_errors,
    collar_f1,
    positive_files,
    psds,
    score_dataframes,
    summarize_boundaries,
)

CLASSES = ("x", "y")
RATE = 10.0
DURATIONS = {"a.wav": 2.0, "b.wav": 1.0, "c.wav": 4.0, "d.wav": 1.0}
STRONG = {
    "a.wav": [Event(0.5, 1.0, "x"), Event(1.5, 1.8, "x"), Event(0.0, 1.0, "y")],
    "b.wav": [Event(0.2, 0.6, "x"), Event(0.8, 0.9, "y")],
    "c.wav": [Event(0.5, 3.5, "y")],
    "d.wav": [],
}


def _scores() -> dict[str, np.ndarray]:
    scores = {name: np.zeros((2, int(duration * RATE))) for name, duration in DURATIONS.items()}
    scores["a.wav"][0, 5:10] = 0.9
    scores["a.wav"][0, 12:14] = 0.9
    scores["a.wav"][1, 0:14] = 0.7
    scores["b.wav"][0, 3:7] = 0.8
    scores["c.wav"][1, 6:40] = 0.7
    scores["d.wav"][0, :] = 0.9
    return scores


def test_onset_offset_errors_hand_case():
    errors = boundary_errors(_scores(), STRONG, CLASSES, RATE, durations=DURATIONS)
    got = {(e.filename, e.label, e.onset): (e.onset_error, e.offset_error, e.detected) for e in errors}
    # Regions (midpoints between same-class events): a/x/0.5 -> [0, 1.25), a/x/1.5 -> [1.25, 2).
    # a/x/0.5: frames 5-9 active in its region (frame 12's midpoint 1.25 is not < 1.25) -> 0.5-1.0.
    # a/x/1.5: frames 12-13 -> 1.2-1.4 -> errors -0.3, -0.4.
    # a/y: frames 0-13 -> 0.0-1.4 -> 0, +0.4.  b/x: frames 3-6 -> 0.3-0.7 -> +0.1, +0.1.
    # b/y: no active frame -> missed.  c/y: frames 6-39 -> 0.6-4.0 -> +0.1, +0.5.  d: negative, skipped.
    expected = {
        ("a.wav", "x", 0.5): (0.0, 0.0, True),
        ("a.wav", "x", 1.5): (-0.3, -0.4, True),
        ("a.wav", "y", 0.0): (0.0, 0.4, True),
        ("b.wav", "x", 0.2): (0.1, 0.1, True),
        ("c.wav", "y", 0.5): (0.1, 0.5, True),
    }
    assert set(got) == set(expected) | {("b.wav", "y", 0.8)}
    for key, (onset_error, offset_error, detected) in expected.items():
        assert got[key][0] == pytest.approx(onset_error, abs=1e-9), key
        assert got[key][1] == pytest.approx(offset_error, abs=1e-9), key
        assert got[key][2] is detected
    assert got[("b.wav", "y", 0.8)][2] is False and np.isnan(got[("b.wav", "y", 0.8)][0])


def test_boundary_summary_hand_case():
    summary = summarize_boundaries(boundary_errors(_scores(), STRONG, CLASSES, RATE, durations=DURATIONS))
    # |onset errors| with the miss as inf: [0, 0.3, 0, 0.1, inf, 0.1] -> sorted middle pair (0.1, 0.1).
    # |offset errors|: [0, 0.4, 0.4, 0.1, inf, 0.5] -> sorted middle pair (0.4, 0.4).
    # Signed onset errors of detected events: [0, -0.3, 0, 0.1, 0.1] -> median 0.
    assert (summary.events, summary.detected, summary.missed) == (6, 5, 1)
    assert summary.median_abs_onset_error == pytest.approx(0.1, abs=1e-9)
    assert summary.median_abs_offset_error == pytest.approx(0.4, abs=1e-9)
    assert summary.median_onset_error == pytest.approx(0.0, abs=1e-9)
    # Within 200 ms: onsets 0, 0, 0.1, 0.1 (4 of 6); offsets 0, 0.1 (2 of 6).
    assert summary.onset_within == pytest.approx(4 / 6)
    assert summary.offset_within == pytest.approx(2 / 6)
    # Per class x: |onset| [0, 0.3, 0.1] -> 0.1; y: [0, inf, 0.1] -> 0.1, with one miss.
    assert summary.per_class["x"].median_abs_onset_error == pytest.approx(0.1, abs=1e-9)
    assert summary.per_class["y"].missed == 1
    assert summary.as_dict()["missed"] == 1


def test_boundary_median_is_infinite_when_most_events_are_missed():
    silent = {name: np.zeros_like(value) for name, value in _scores().items()}
    summary = summarize_boundaries(boundary_errors(silent, STRONG, CLASSES, RATE))
    assert summary.detected == 0 and summary.median_abs_onset_error == float("inf")
    assert summary.onset_within == 0.0 and summary.as_dict()["median_abs_onset_error"] is None


def test_negative_clips_take_no_part_in_boundary_errors():
    assert positive_files(STRONG) == ["a.wav", "b.wav", "c.wav"]
    errors = boundary_errors(_scores(), STRONG, CLASSES, RATE)
    assert all(error.filename != "d.wav" for error in errors)


def test_collar_f1_equals_hand_computation():
    result = collar_f1(_scores(), STRONG, CLASSES, RATE, durations=DURATIONS)
    # x: detections a 0.5-1.0 (TP), a 1.2-1.4 (onset 0.3 from 1.5 > 0.2 collar: FP, 1.5-1.8 FN),
    #    b 0.3-0.7 (onset/offset within 0.2: TP) -> TP 2, FP 1, FN 1 -> F1 = 2/3.
    # y: a 0.0-1.4 vs 0.0-1.0: offset off by 0.4 > max(0.2, 0.2 * 1.0) -> FP + FN; b 0.8-0.9 FN;
    #    c 0.6-4.0 vs 0.5-3.5: offset off by 0.5 <= max(0.2, 0.2 * 3.0 = 0.6) -> TP.
    #    TP 1, FP 1, FN 2 -> P 1/2, R 1/3, F1 = 2PR/(P+R) = 0.4.
    assert result.per_class["x"] == pytest.approx(2 / 3)
    assert result.per_class["y"] == pytest.approx(0.4)
    assert result.f1 == pytest.approx((2 / 3 + 0.4) / 2)
    # Micro: TP 3, FP 2, FN 3 -> 2TP / (2TP + FP + FN) = 6/11.
    assert result.micro_f1 == pytest.approx(6 / 11)
    assert result.classes_without_events == ()


def test_collar_f1_offset_rate_and_negative_clips_change_the_result_as_computed():
    # Without the 20 % rule, c's offset error 0.5 > 0.2: y loses its only TP -> F1_y = 0.
    strict = collar_f1(_scores(), STRONG, CLASSES, RATE, durations=DURATIONS, offset_collar_rate=0.0)
    assert strict.per_class["y"] == 0.0
    # Adding the negative clip d adds one x false positive: TP 2, FP 2, FN 1 -> P 1/2, R 2/3 -> 4/7.
    everything = collar_f1(_scores(), STRONG, CLASSES, RATE, durations=DURATIONS, files=sorted(STRONG))
    assert everything.per_class["x"] == pytest.approx(4 / 7)


def test_collar_f1_names_classes_without_reference_events():
    only_a = {"b.wav": STRONG["b.wav"][:1]}
    result = collar_f1(_scores(), only_a, CLASSES, RATE, durations=DURATIONS)
    assert result.classes_without_events == ("y",) and set(result.per_class) == {"x"}
    # b's x detection 0.3-0.7 matches 0.2-0.6 -> perfect.
    assert result.f1 == pytest.approx(1.0)


def test_psds_of_an_ideal_and_a_silent_system():
    # An ideal system (score 1 exactly on the true event frames) reaches PSDS 1 in both scenarios
    # (TPR 1 for every class at eFPR 0, so the normalised area is 1); a silent one reaches 0.
    ideal = {}
    for name, duration in DURATIONS.items():
        scores = np.zeros((2, int(duration * RATE)))
        for event in STRONG[name]:
            scores[CLASSES.index(event.label), round(event.onset * RATE) : round(event.offset * RATE)] = 1.0
        ideal[name] = scores
    for settings in (PSDS1, PSDS2):
        assert psds(ideal, STRONG, CLASSES, RATE, DURATIONS, settings=settings).value == pytest.approx(1.0)
    silent = {name: np.zeros_like(value) for name, value in ideal.items()}
    assert psds(silent, STRONG, CLASSES, RATE, DURATIONS).value == pytest.approx(0.0)
    # PSDS1, missing b's y event and nothing else: per-class TPR x = 1, y = 2/3 at eFPR 0;
    # effective TPR = mean - 1 * std (population) = 5/6 - 1/6 = 2/3 for every eFPR up to
    # 100/h, so the normalised area is 2/3. (Lowering the threshold below 0 marks whole clips
    # active; with dtc 0.7 b's 1 s "detection" of a 0.1 s event is a false positive, so that
    # operating point adds false positives (far beyond 100/h on 7 s of audio), not the miss.)
    one_missed = {name: value.copy() for name, value in ideal.items()}
    one_missed["b.wav"][1] = 0.0
    result = psds(one_missed, STRONG, CLASSES, RATE, DURATIONS, settings=PSDS1)
    assert result.value == pytest.approx(2 / 3)
    assert result.per_class["x"] == pytest.approx(1.0) and result.per_class["y"] == pytest.approx(2 / 3)


def test_psds_settings_are_the_dcase_definitions():
    # DCASE 2021+ task 4 (published): PSDS1 dtc=gtc=0.7, no cttc, alpha_ct=0, alpha_st=1;
    # PSDS2 dtc=gtc=0.1, cttc=0.3, alpha_ct=0.5, alpha_st=1; both max_efpr=100 per hour.
    assert (PSDS1.dtc_threshold, PSDS1.gtc_threshold, PSDS1.cttc_threshold) == (0.7, 0.7, None)
    assert (PSDS1.alpha_ct, PSDS1.alpha_st, PSDS1.max_efpr) == (0.0, 1.0, 100.0)
    assert (PSDS2.dtc_threshold, PSDS2.gtc_threshold, PSDS2.cttc_threshold) == (0.1, 0.1, 0.3)
    assert (PSDS2.alpha_ct, PSDS2.alpha_st, PSDS2.max_efpr) == (0.5, 1.0, 100.0)


def test_score_dataframes_crop_to_the_clip_duration():
    scores = {"clip.wav": np.full((2, 12), 0.5)}  # 12 frames = 1.2 s of frames for a 1.05 s clip
    frames = score_dataframes(scores, CLASSES, RATE, durations={"clip.wav": 1.05})["clip"]
    assert len(frames) == 11  # frames starting at 0.0 ... 1.0
    assert frames["offset"].iloc[-1] == pytest.approx(1.05)
    assert list(frames.columns) == ["onset", "offset", "x", "y"]


def test_missing_scores_for_a_positive_clip_fail_clearly():
    scores = _scores()
    del scores["b.wav"]
    with pytest.raises(KeyError, match="b.wav"):
        boundary_errors(scores, STRONG, CLASSES, RATE)


def test_collar_f1_at_thresholds_equals_one_call_per_threshold():
    from audioenc.timing.boundaries import collar_f1_at_thresholds

    rng = np.random.default_rng(3)
    strong = {
        f"c{i}.wav": [Event(0.3 + 0.1 * i, 0.9 + 0.1 * i, "x")] + ([Event(1.2, 1.6, "y")] if i % 2 else [])
        for i in range(5)
    }
    scores = {name: rng.random((2, 20)) for name in strong}
    durations = {name: 2.0 for name in strong}
    thresholds = (0.2, 0.5, 0.8)
    curve = collar_f1_at_thresholds(scores, strong, ("x", "y"), 10.0, thresholds, durations=durations)
    for threshold in thresholds:
        single = collar_f1(scores, strong, ("x", "y"), 10.0, durations=durations, threshold=threshold).f1
        assert curve[threshold] == pytest.approx(single, abs=1e-12), threshold
