"""Sanity gates of the workflow (audioenc.timing.workflow.gates).

References: the expected AP of random scores by hand and by simulation; the gates on hand-made
evaluations whose clip mAP, interval and detection counts sit on known sides of chance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from audioenc.core.bootstrap import BootstrapCI
from audioenc.timing.boundaries import BoundarySummary
from audioenc.timing.evaluation import BoundaryEvidence, Evaluation, average_precision
from audioenc.timing.workflow.gates import DETECT_MORE, TRAIN_MORE, chance_map, check_learned, expected_random_ap


def test_expected_random_ap_by_hand_and_by_simulation():
    # One positive among 2: rank 1 (AP 1) or rank 2 (AP 1/2), each with probability 1/2.
    assert expected_random_ap(1, 2) == pytest.approx(0.75)
    # One positive among N: E[1 / rank] = H_N / N (0.34 for N = 8, far above the prevalence 1/8).
    assert expected_random_ap(1, 8) == pytest.approx(sum(1 / r for r in range(1, 9)) / 8)
    assert expected_random_ap(5, 5) == 1.0
    # Against average precision of uniformly random scores, 20,000 draws.
    rng = np.random.default_rng(0)
    for positives, clips in ((1, 8), (3, 6), (4, 30)):
        labels = np.r_[np.ones(positives), np.zeros(clips - positives)]
        simulated = np.mean([average_precision(labels, rng.random(clips)) for _ in range(20_000)])
        assert expected_random_ap(positives, clips) == pytest.approx(simulated, abs=0.005), (positives, clips)
    with pytest.raises(ValueError):
        expected_random_ap(0, 4)


def test_chance_map_by_hand():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    # Classes with 2 and 1 positives of 4 clips; the third has none and is left out.
    assert chance_map(targets) == pytest.approx((expected_random_ap(2, 4) + expected_random_ap(1, 4)) / 2)
    assert chance_map(np.ones((3, 2))) == 1.0
    assert math.isnan(chance_map(np.zeros((4, 2))))


def _summary(events: int, detected: int) -> BoundarySummary:
    return BoundarySummary(
        events=events,
        detected=detected,
        median_abs_onset_error=0.1,
        median_abs_offset_error=0.1,
        median_onset_error=0.0,
        median_offset_error=0.0,
        onset_within=0.5,
        offset_within=0.5,
        tolerance=0.2,
    )


def _evaluation(value: float | None, low: float | None, summary: BoundarySummary | None = None) -> Evaluation:
    intervals = {"clip_map": BootstrapCI(value, low, 0.95, 0.95, 200)} if low is not None else {}
    boundary = (
        BoundaryEvidence(True, None, positives=5, summary=summary)
        if summary is not None
        else BoundaryEvidence(False, "no strong labels")
    )
    return Evaluation({"clip_map": value}, intervals, boundary)


def test_a_system_above_chance_that_detects_events_passes():
    check = check_learned("probe", _evaluation(0.62, 0.41, _summary(10, 4)), chance_map=0.25, min_detected_share=0.1)
    assert check.passed and check.failures == () and check.advice == "" and check.reason == ""
    assert check.chance_map == 0.25
    # Exactly the minimum share (1 of 10 at 10 %) passes: the gate is "at least".
    assert check_learned("probe", _evaluation(0.62, 0.41, _summary(10, 1)), 0.25, 0.1).passed
    # Without strong labels the detection gate does not apply.
    assert check_learned("probe", _evaluation(0.62, 0.41), 0.25, 0.5).passed


def test_a_point_below_chance_fails_naming_metric_value_and_chance():
    check = check_learned("scratch", _evaluation(0.2, 0.1, _summary(10, 5)), chance_map=0.25, min_detected_share=0.1)
    assert not check.passed and len(check.failures) == 1
    assert "clip mAP 0.200" in check.failures[0] and "not above chance (0.250" in check.failures[0]
    assert check.advice == TRAIN_MORE
    assert check.reason.startswith("scratch: clip mAP 0.200") and TRAIN_MORE in check.reason
    # At chance exactly is not above it.
    assert not check_learned("scratch", _evaluation(0.25, 0.2), 0.25, 0.1).passed
    # An undefined clip mAP fails too.
    undefined = check_learned("scratch", _evaluation(None, None), 0.25, 0.1)
    assert not undefined.passed and "clip mAP undefined" in undefined.failures[0]


def test_an_interval_reaching_chance_fails():
    check = check_learned("frozen", _evaluation(0.40, 0.22, _summary(10, 5)), chance_map=0.25, min_detected_share=0.1)
    assert not check.passed and len(check.failures) == 1
    failure = check.failures[0]
    assert "clip mAP 0.400 is above chance (0.250)" in failure and "reaches down to 0.220" in failure
    # A point above chance without any interval also fails this gate (nothing to show it is not luck).
    no_interval = check_learned("frozen", _evaluation(0.40, None), 0.25, 0.1)
    assert not no_interval.passed and "reaches down to undefined" in no_interval.failures[0]


def test_too_few_events_detected_fails_with_its_own_advice():
    check = check_learned("crnn/max", _evaluation(0.7, 0.5, _summary(20, 1)), chance_map=0.25, min_detected_share=0.1)
    assert not check.passed and check.failures == ("1 of 20 events detected (5%, below 10%)",)
    assert check.advice == DETECT_MORE
    # Both gates failing: both failures, both pieces of advice once each.
    both = check_learned("crnn/max", _evaluation(0.1, 0.05, _summary(20, 0)), 0.25, 0.1)
    assert len(both.failures) == 2 and both.advice == f"{TRAIN_MORE}; {DETECT_MORE}"
    assert both.to_json() == {
        "system": "crnn/max",
        "passed": False,
        "failures": list(both.failures),
        "advice": both.advice,
        "chance_map": 0.25,
    }
