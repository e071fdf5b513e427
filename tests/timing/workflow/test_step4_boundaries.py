"""Step 4's decisions (audioenc.timing.workflow.steps.step4_boundaries), on constructed inputs.

Every expected choice below follows from the rule's statement applied by hand to the numbers given.
"""

from __future__ import annotations

import pytest

from audioenc.timing.workflow.steps.step4_boundaries import (
    PoolingChoice,
    choose_pooling,
    find_disagreements,
)


def test_choose_pooling_takes_best_boundary_among_close_clip_scores():
    validation = {
        "mean": {"clip_map": 0.80, "collar_f1": 0.10, "onset_within": 0.2},
        "max": {"clip_map": 0.85, "collar_f1": 0.30, "onset_within": 0.4},
        "linear_softmax": {"clip_map": 0.82, "collar_f1": 0.45, "onset_within": 0.6},
        "attention": {"clip_map": 0.70, "collar_f1": 0.60, "onset_within": 0.7},  # best F1, but mAP 0.15 below
    }
    choice = choose_pooling(validation, ap_margin=0.05)
    assert isinstance(choice, PoolingChoice)
    # Candidates: mAP >= 0.85 - 0.05 = 0.80 -> mean, max, linear_softmax; highest F1 among them.
    assert choice.chosen == "linear_softmax"
    assert set(choice.candidates) == {"mean", "max", "linear_softmax"}
    assert "0.450" in choice.basis
    assert "within 0.05" in choice.rule
    assert choice.validation_metrics == validation  # what it was chosen from, kept with the choice
    assert choice.to_json()["chosen"] == "linear_softmax"
    # A wider margin admits attention.
    assert choose_pooling(validation, ap_margin=0.2).chosen == "attention"


def test_choose_pooling_ties_and_no_boundary_metric():
    tied = {"a": {"clip_map": 0.8, "collar_f1": 0.5, "onset_within": 0.3},
            "b": {"clip_map": 0.8, "collar_f1": 0.5, "onset_within": 0.6}}
    assert choose_pooling(tied).chosen == "b"  # tie on F1 -> more onsets within 200 ms
    weak_only = {"a": {"clip_map": 0.7, "collar_f1": None}, "b": {"clip_map": 0.9, "collar_f1": None}}
    choice = choose_pooling(weak_only)
    assert choice.chosen == "b" and "no strong validation labels" in choice.basis
    with pytest.raises(ValueError, match="no rule has a defined"):
        choose_pooling({"a": {"clip_map": None}})


def test_find_disagreements():
    table = {
        "max": {"clip_map": 0.90, "collar_f1": 0.20},
        "linear_softmax": {"clip_map": 0.80, "collar_f1": 0.50},
        "mean": {"clip_map": 0.79, "collar_f1": 0.49},
    }
    found = find_disagreements(table, margin=0.02)
    assert found[0]["kind"] == "best" and found[0]["better_clip"] == "max" and found[0]["better_boundary"] == "linear_softmax"
    pairs = {(item["better_clip"], item["better_boundary"]) for item in found if item["kind"] == "pair"}
    # max beats both others on mAP by > 0.02 and loses on F1 by > 0.02; linear_softmax vs mean
    # differ by 0.01 on both (within the margin): no disagreement there.
    assert pairs == {("max", "linear_softmax"), ("max", "mean")}
    assert find_disagreements({"a": {"clip_map": 0.9, "collar_f1": 0.5}, "b": {"clip_map": 0.8, "collar_f1": 0.4}}) == []
    # Equal boundary scores are no disagreement, even if another rule leads on clip mAP.
    assert find_disagreements({"a": {"clip_map": 0.9, "collar_f1": 0.0}, "b": {"clip_map": 0.5, "collar_f1": 0.0}}) == []
    assert find_disagreements({"a": {"clip_map": 0.9, "collar_f1": None}, "b": {"clip_map": 0.5, "collar_f1": None}}) == []
