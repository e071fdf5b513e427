"""Step 4's decisions (audioenc.timing.workflow.steps.step4_boundaries), on constructed inputs:
the choice and disagreement rules on hand-made numbers, and the step itself (post-processing
chosen on validation, sanity gates, the choice among the rules that pass) on hand-made scores.

Every expected choice below follows from the rule's statement applied by hand to the numbers given.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from audioenc.audio.formats import Event, EventSplit
from audioenc.timing.evaluation import ClipEvaluator
from audioenc.timing.fitting import Predictions
from audioenc.timing.pooling import POOLING_NAMES
from audioenc.timing.postprocess import PostprocessSettings
from audioenc.timing.weak import CRNNConfig
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.data import WorkflowData
from audioenc.timing.workflow.results import DataSummary, StepResults, WeakTraining
from audioenc.timing.workflow.settings import TrainingBudget, WorkflowSettings
from audioenc.timing.workflow.steps import step4_boundaries
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
    tied = {
        "a": {"clip_map": 0.8, "collar_f1": 0.5, "onset_within": 0.3},
        "b": {"clip_map": 0.8, "collar_f1": 0.5, "onset_within": 0.6},
    }
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
    assert (
        found[0]["kind"] == "best"
        and found[0]["better_clip"] == "max"
        and found[0]["better_boundary"] == "linear_softmax"
    )
    pairs = {(item["better_clip"], item["better_boundary"]) for item in found if item["kind"] == "pair"}
    # max beats both others on mAP by > 0.02 and loses on F1 by > 0.02; linear_softmax vs mean
    # differ by 0.01 on both (within the margin): no disagreement there.
    assert pairs == {("max", "linear_softmax"), ("max", "mean")}
    assert (
        find_disagreements({"a": {"clip_map": 0.9, "collar_f1": 0.5}, "b": {"clip_map": 0.8, "collar_f1": 0.4}}) == []
    )
    # Equal boundary scores are no disagreement, even if another rule leads on clip mAP.
    assert (
        find_disagreements({"a": {"clip_map": 0.9, "collar_f1": 0.0}, "b": {"clip_map": 0.5, "collar_f1": 0.0}}) == []
    )
    assert (
        find_disagreements({"a": {"clip_map": 0.9, "collar_f1": None}, "b": {"clip_map": 0.5, "collar_f1": None}}) == []
    )


# --------------------------------------------------------------------------- step 4 on hand-made scores
#
# Two classes, 4 s clips at 10 frames/s (frame j spans [j, j+1) / 10 s), every event 1 s = 10 frames.
# Each rule's "CRNN" is a hand-written score function:
#
#   mean            events at 0.35 (needs threshold 0.3), clip scores perfect
#   max             events at 0.9 with a one-frame dip in the middle (needs the 3-frame median filter)
#   linear_softmax  events at 0.9, clean
#   exp_softmax     perfect on validation, on test nothing (frames 0.05) and clip scores inverted
#   attention       nothing (frames 0.05), clip scores inverted
#   autopool        every frame 0.9 (every event "detected"), clip scores inverted
#
# (Inverted: the positive clips of a class score below its negative ones, so clip mAP falls
# strictly below the chance level of the gate.)
#
# On validation mean and max miss two events, linear_softmax one (its frames stay at 0.05), so
# linear_softmax has the best validation collar F1 of the rules that learned; exp_softmax has a
# perfect one, but fails its gates on the test split and must not be chosen.

EVENTS = {
    "validation": {
        "v0.wav": [(1.0, 2.0, "a")],
        "v1.wav": [(2.0, 3.0, "b")],
        "v2.wav": [(0.5, 1.5, "a"), (2.5, 3.5, "b")],
        "v3.wav": [],
        "v4.wav": [],
        "v5.wav": [(1.0, 2.0, "b")],
    },
    "test": {
        "t0.wav": [(0.5, 1.5, "a")],
        "t1.wav": [(1.5, 2.5, "b")],
        "t2.wav": [(2.0, 3.0, "a"), (0.5, 1.5, "b")],
        "t3.wav": [],
        "t4.wav": [],
        "t5.wav": [(2.5, 3.5, "a")],
    },
}
MISSED_ON_VALIDATION = {"mean": {"v1.wav", "v5.wav"}, "max": {"v1.wav", "v5.wav"}, "linear_softmax": {"v5.wav"}}
LEARNED = ("mean", "max", "linear_softmax")


def _event_split(name: str):
    files = sorted(EVENTS[name])
    strong = {f: [Event(*event) for event in EVENTS[name][f]] for f in files}
    return EventSplit(
        name,
        Path("/nowhere") / name,
        files,
        dict.fromkeys(files, 4.0),
        {f: tuple(sorted({e.label for e in strong[f]})) for f in files},
        strong,
        ("a", "b"),
    )


def _scores(rule: str, split: str):
    frames, clips = {}, {}
    for index, (name, events) in enumerate(EVENTS[split].items()):
        scores = np.full((2, 40), 0.05)
        present = np.array([any(e[2] == label for e in events) for label in ("a", "b")])
        broken = split == "test" and rule == "exp_softmax"
        missed = split == "validation" and name in MISSED_ON_VALIDATION.get(rule, ())
        if rule == "autopool":
            scores[:] = 0.9
        elif rule != "attention" and not broken and not missed:
            for onset, offset, label in events:
                row, first, last = ("a", "b").index(label), round(onset * 10), round(offset * 10)
                scores[row, first:last] = 0.35 if rule == "mean" else 0.9
                if rule == "max":
                    scores[row, (first + last) // 2] = 0.05  # a one-frame flicker splits the event
        inverted = rule in ("attention", "autopool") or broken
        frames[name] = scores
        # Inverted: every positive clip ranked strictly below every negative one (AP below chance).
        clips[name] = np.where(present, 0.1 + 0.01 * index, 0.9) if inverted else np.where(present, 0.9, 0.1)
    return Predictions(frames, clips, 10.0, ("a", "b"))


def _step4_context(tmp_path, **evaluation_changes):
    splits = {name: _event_split(name) for name in ("validation", "test")}
    corpus = WorkflowData(Path("/nowhere"), splits, ("a", "b"), {}, [], [], {})
    fast = WorkflowSettings.fast()
    settings = replace(
        fast,
        postprocess=PostprocessSettings(median_seconds=(0.0, 0.3), thresholds=(0.3, 0.5)),
        evaluation=replace(fast.evaluation, bootstrap_resamples=20, **evaluation_changes),
    )
    predictions = {rule: {split: _scores(rule, split) for split in ("validation", "test")} for rule in POOLING_NAMES}
    weak = WeakTraining(CRNNConfig(), TrainingBudget(), 0, (), {}, (), predictions=predictions)
    lines: list[str] = []
    context = RunContext(
        tmp_path,
        Path("/nowhere"),
        0,
        settings,
        None,
        lines.append,
        StepResults(data=DataSummary(corpus, {}, "", ()), weak=weak),
    )
    return context, lines


def test_step4_post_processes_gates_and_chooses_among_the_rules_that_learned(tmp_path):
    context, lines = _step4_context(tmp_path)
    result = step4_boundaries.run(context)
    # Post-processing chosen per rule on validation (ties: the smaller window, then the threshold nearest 0.5).
    chosen_pp = {rule: (item.window_frames, item.threshold) for rule, item in result.postprocessing.items()}
    assert chosen_pp["mean"] == (1, 0.3)  # its events sit at 0.35: only 0.3 finds them
    assert chosen_pp["max"] == (3, 0.5)  # 0.3 s at 10 frames/s -> 3 frames fill the flicker
    assert chosen_pp["linear_softmax"] == (1, 0.5)  # every candidate equal: no filter, 0.5
    assert chosen_pp["exp_softmax"] == (1, 0.5) and result.postprocessing["exp_softmax"].validation_f1 == 1.0
    for rule in ("attention", "autopool"):  # collar F1 0 everywhere: the fixed values, and why
        assert chosen_pp[rule] == (1, 0.5) and result.postprocessing[rule].basis.startswith("fixed:")
    assert result.postprocessing["linear_softmax"].basis.startswith("chosen on validation")
    # Test scores are evaluated after that post-processing: every event of the learned rules is found.
    for rule in LEARNED:
        summary = result.per_rule[rule].boundary.summary
        assert summary.events == 5 and summary.detected == 5, rule
        assert result.per_rule[rule].point["clip_map"] == 1.0
        assert result.per_rule[rule].point["onset_f1_200ms"] == 1.0 and result.per_rule[rule].point["collar_f1"] == 1.0
    assert result.per_rule["autopool"].boundary.summary.detected == 5  # all frames active
    assert result.per_rule["attention"].boundary.summary.detected == 0
    # Gates on the test split: the three rules that learned pass; the others are named with the metric and chance.
    assert {rule for rule, gate in result.gates.items() if gate.passed} == set(LEARNED)
    harmonic = sum(1 / r for r in range(1, 7))  # the expected AP of random scores, by hand: a on 3 of 6 clips, b on 2
    chance = ((harmonic + 2 / 5 * (6 - harmonic)) / 6 + (harmonic + 1 / 5 * (6 - harmonic)) / 6) / 2
    for rule, gate in result.gates.items():
        assert gate.chance_map == pytest.approx(chance), rule
    for rule in ("exp_softmax", "attention"):
        failures = result.gates[rule].failures
        assert (
            len(failures) == 2
            and f"not above chance ({chance:.3f}" in failures[0]
            and "0 of 5 events detected" in failures[1]
        )
    assert len(result.gates["autopool"].failures) == 1 and "chance" in result.gates["autopool"].failures[0]
    # The choice: among the passing rules only; exp_softmax (perfect on validation) is not a candidate.
    assert result.decided is True
    assert set(result.selection.validation_metrics) == set(LEARNED)
    assert set(result.selection.candidates) <= set(LEARNED)
    assert result.chosen == "linear_softmax"
    assert result.postprocessing["linear_softmax"].validation_f1 > result.postprocessing["mean"].validation_f1
    assert choose_pooling(result.selection.validation_metrics).chosen == "linear_softmax"
    # Without the gates the same rule on every rule's validation metrics would take exp_softmax.
    valid = ClipEvaluator(context.data.splits["validation"], ("a", "b"), resamples=1, onset_only_collars=())
    raw = context.results["weak"].predictions
    everything = {
        rule: valid.evaluate(
            result.postprocessing[rule].apply(raw[rule]["validation"]), with_psds=False, interval_metrics=()
        ).point
        for rule in POOLING_NAMES
    }
    assert {rule: everything[rule] for rule in LEARNED} == result.selection.validation_metrics
    assert choose_pooling(everything).chosen == "exp_softmax"
    assert all({item["better_clip"], item["better_boundary"]} <= set(LEARNED) for item in result.disagreements)
    assert any("chosen pooling: linear_softmax" in line for line in lines)
    # The table and the JSON carry the post-processing and the gates.
    with open(tmp_path / "04_boundaries/boundary_metrics.tsv", newline="") as handle:
        rows = {row["pooling"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert list(rows) == list(POOLING_NAMES)
    for rule, row in rows.items():
        assert (row["median_frames"], row["threshold"]) == (str(chosen_pp[rule][0]), f"{chosen_pp[rule][1]:.4f}")
        assert row["learned"] == ("yes" if rule in LEARNED else "no")
        assert row["onset_f1_200ms"] == f"{result.per_rule[rule].point['onset_f1_200ms']:.4f}"
        assert row["onset_f1_50ms"] == f"{result.per_rule[rule].point['onset_f1_50ms']:.4f}"
    stored = json.loads((tmp_path / "04_boundaries/boundary_metrics.json").read_text())
    assert stored["pooling_decided"] is True
    assert stored["gates"] == {rule: gate.to_json() for rule, gate in result.gates.items()}
    assert stored["postprocessing"] == {rule: item.to_json() for rule, item in result.postprocessing.items()}
    content = result.to_json()
    assert content["decided"] is True and content["gates"] == stored["gates"]


def test_step4_without_a_passing_rule_makes_no_pooling_decision(tmp_path):
    # A detected share above 1 cannot be met: every rule fails the detection gate.
    context, lines = _step4_context(tmp_path, min_detected_share=1.5)
    result = step4_boundaries.run(context)
    assert not any(gate.passed for gate in result.gates.values())
    assert all(any("events detected" in failure for failure in gate.failures) for gate in result.gates.values())
    assert result.decided is False and result.to_json()["decided"] is False
    # The provisional choice is made among all rules by the same rule; no disagreement is drawn.
    assert set(result.selection.validation_metrics) == set(POOLING_NAMES)
    assert result.chosen == choose_pooling(result.selection.validation_metrics).chosen
    assert result.disagreements == ()
    assert any(
        line.strip().startswith("no pooling decision") and result.gates[result.chosen].reason in line for line in lines
    )


def test_step4_with_per_class_postprocessing_writes_each_class_choice(tmp_path):
    # mean's events sit at 0.35 in both classes: per class, each class needs threshold 0.3 on its own.
    context, _ = _step4_context(tmp_path)
    context = replace(
        context,
        settings=replace(context.settings, postprocess=replace(context.settings.postprocess, per_class=True)),
    )
    result = step4_boundaries.run(context)
    with open(tmp_path / "04_boundaries/postprocessing_per_class.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    written = {(row["pooling"], row["class"]): row for row in rows}
    expected = {
        (rule, name): choice
        for rule, item in result.postprocessing.items()
        if item.per_class is not None
        for name, choice in item.per_class.items()
    }
    assert set(written) == set(expected) and ("mean", "a") in written and ("mean", "b") in written
    for key, choice in expected.items():
        assert written[key]["median_frames"] == str(choice.window_frames)
        assert written[key]["threshold"] == f"{choice.threshold:.4f}"
    assert written[("mean", "a")]["threshold"] == written[("mean", "b")]["threshold"] == "0.3000"
    with open(tmp_path / "04_boundaries/boundary_metrics.tsv", newline="") as handle:
        table = {row["pooling"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert table["mean"]["threshold"] == "per class"
