"""The note's decision rules and assembly (audioenc.timing.report), on constructed inputs.

Every expected choice below follows from the rule's statement applied by hand to the numbers
given; build_report is fed a hand-made results dict whose artifact files are created here.
"""

from __future__ import annotations

import copy
import json

import pytest

from audioenc.timing.report import (
    build_report,
    choose_pooling,
    decide_path,
    find_disagreements,
    headline_text,
    next_change,
    render_markdown,
    write_report,
)


def test_choose_pooling_takes_best_boundary_among_close_clip_scores():
    validation = {
        "mean": {"clip_map": 0.80, "collar_f1": 0.10, "onset_within": 0.2},
        "max": {"clip_map": 0.85, "collar_f1": 0.30, "onset_within": 0.4},
        "linear_softmax": {"clip_map": 0.82, "collar_f1": 0.45, "onset_within": 0.6},
        "attention": {"clip_map": 0.70, "collar_f1": 0.60, "onset_within": 0.7},  # best F1, but mAP 0.15 below
    }
    choice = choose_pooling(validation, ap_margin=0.05)
    # Candidates: mAP >= 0.85 - 0.05 = 0.80 -> mean, max, linear_softmax; highest F1 among them.
    assert choice["chosen"] == "linear_softmax"
    assert set(choice["candidates"]) == {"mean", "max", "linear_softmax"}
    assert "0.450" in choice["basis"]
    # A wider margin admits attention.
    assert choose_pooling(validation, ap_margin=0.2)["chosen"] == "attention"


def test_choose_pooling_ties_and_no_boundary_metric():
    tied = {"a": {"clip_map": 0.8, "collar_f1": 0.5, "onset_within": 0.3},
            "b": {"clip_map": 0.8, "collar_f1": 0.5, "onset_within": 0.6}}
    assert choose_pooling(tied)["chosen"] == "b"  # tie on F1 -> more onsets within 200 ms
    weak_only = {"a": {"clip_map": 0.7, "collar_f1": None}, "b": {"clip_map": 0.9, "collar_f1": None}}
    choice = choose_pooling(weak_only)
    assert choice["chosen"] == "b" and "no strong validation labels" in choice["basis"]
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


def test_decide_path():
    # Not stopping short: keep the frozen encoder (not the stronger model).
    assert decide_path({"triggered": False, "reason": "within margins"})["path"] == "frozen"
    unavailable = decide_path({"triggered": True, "ran": False, "unavailable": "HEAR only", "reason": "behind",
                               "short_on": ["collar_f1"]})
    assert unavailable["path"] == "scratch" and "HEAR only" in unavailable["statement"]
    assert "collar_f1" in unavailable["statement"]
    assert decide_path({"triggered": True, "ran": True, "reason": "behind", "short_on": ["clip_map"],
                        "verdict": {"justified": True, "reason": "gain"}})["path"] == "adapted"
    not_enough = decide_path({"triggered": True, "ran": True, "reason": "behind", "short_on": ["clip_map"],
                              "verdict": {"justified": False, "reason": "small"}})
    assert not_enough["path"] == "scratch" and "small" in not_enough["statement"]


# --------------------------------------------------------------------------- a hand-made run


RULES = ("mean", "max", "linear_softmax", "exp_softmax", "attention", "autopool")


def _interval(value):
    return {"value": value, "low": value - 0.05, "high": value + 0.05, "confidence": 0.95, "resamples": 100}


def _block(clip_map, collar):
    point = {"clip_map": clip_map, "clip_accuracy": 0.8, "onset_within": 0.5, "offset_within": 0.4,
             "median_abs_onset": 0.2, "collar_f1": collar, "psds1": 0.3, "psds2": 0.5}
    return {"point": point, "intervals": {name: _interval(value) for name, value in point.items()}}


def _results(tmp_path) -> dict:
    """A results dict as the workflow records it, with its artifact files created."""
    summary = {"events": 10, "detected": 9, "median_abs_onset_error": 0.15, "median_abs_offset_error": 0.3,
               "onset_within": 0.6, "offset_within": 0.4}
    artifacts = {
        "step1": ["01_pooling/clip_metrics.tsv", "01_pooling/clip_metrics.json", "01_pooling/pooled_levels.png"],
        "step2": ["02_frames/frame_scores.png", "02_frames/frame_view.json"],
        "step3": ["03_weak/training.json", "03_weak/training_curves.png"],
        "step4": ["04_boundaries/boundary_metrics.tsv", "04_boundaries/boundary_metrics.json",
                  "04_boundaries/event_errors.tsv", "04_boundaries/around_boundaries.png"],
        "step5": ["05_probe/comparison.json", "05_probe/comparison.tsv"],
        "step6": ["06_adapt/adaptation.json"],
    }
    for paths in [*artifacts.values(), ["00_data/dropped.tsv", "00_data/data.json"]]:
        for path in paths:
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text("x")
    clip = {rule: {"validation": {"map": 0.6, "accuracy": 0.7}, "test": {"map": 0.5 + 0.01 * i, "accuracy": 0.7}}
            for i, rule in enumerate(RULES)}
    per_rule = {rule: {**_block(0.8 - 0.01 * i, 0.2 + 0.05 * i), "summary": summary} for i, rule in enumerate(RULES)}
    return {
        "run": {"data": "/data", "encoder": None, "seed": 0, "wall_seconds": 300.0, "step_seconds": {"0_data": 1.0}},
        "data": {"classes": ["a", "b"], "splits": {"train": {"clips": 10}, "validation": {"clips": 4}, "test": {"clips": 4}},
                 "channel_policy": "downmixed to mono", "notes": []},
        "dropped": [{"file": "/data/metadata/test_strong.tsv", "line": 7, "action": "dropped",
                     "message": "/data/metadata/test_strong.tsv:7: unknown class 'trumpet' | odd"}],
        "step1": {"metrics": clip, "best_on_validation_map": "attention", "artifacts": artifacts["step1"]},
        "step2": {"available": True, "inside_mean": 0.6, "outside_mean": 0.2, "peak_inside": 5, "positive_pairs": 8,
                  "artifacts": artifacts["step2"]},
        "step3": {"epochs": 8, "seed": 0, "train_clips": 10,
                  "rules": {rule: {"test": {"map": 0.7}} for rule in RULES}, "artifacts": artifacts["step3"]},
        "step4": {"available": True, "reason": None, "positives": 3, "per_rule": per_rule,
                  "selection": {"chosen": "linear_softmax", "basis": "validation collar F1 0.450", "rule": "the rule"},
                  "disagreements": find_disagreements({r: per_rule[r]["point"] for r in RULES}),
                  "artifacts": artifacts["step4"]},
        "step5": {"encoder": {"kind": "weak_crnn", "source": "05_probe/encoder", "frame_rate": 25.0, "embedding_size": 64},
                  "task_classes": ["b"], "boundaries_available": True, "notes": ["held-out classes"],
                  "frozen": _block(0.80, 0.30), "scratch": _block(0.82, 0.45),
                  "difference": {name: _interval(-0.1) for name in _block(0, 0)["point"]},
                  "artifacts": artifacts["step5"]},
        "step6": {"rule": "Adapt only when ...", "triggered": True, "short_on": ["collar_f1"],
                  "gaps": {"clip_map": 0.02, "collar_f1": 0.15}, "reason": "close on clip, behind on boundaries",
                  "ran": True, "top_block": "GRU", "adapted": _block(0.81, 0.40),
                  "verdict": {"justified": True, "reason": "collar_f1 gain +0.100"},
                  "gain_over_frozen": {}, "artifacts": artifacts["step6"]},
    }


def test_build_report_claims_reference_existing_artifacts(tmp_path):
    report = build_report(_results(tmp_path), tmp_path)
    assert report["pooling"]["chosen"] == "linear_softmax"
    assert report["decision"]["path"] == "adapted"
    for claim in report["claims"]:
        assert claim["artifacts"] and all((tmp_path / path).is_file() for path in claim["artifacts"]), claim["id"]
    json_path, md_path = write_report(report, tmp_path)
    assert json.loads(json_path.read_text())["headline"]["pooling_chosen"] == "linear_softmax"
    markdown = md_path.read_text()
    assert "Chosen pooling rule: linear_softmax" in markdown
    assert "| `/data/metadata/test_strong.tsv` | 7 | dropped |" in markdown
    assert "trumpet' \\| odd" in markdown  # a pipe in a message cannot break the table
    assert "linear_softmax (chosen)" in markdown
    assert "frozen + probe" in headline_text(report)


def test_build_report_refuses_claims_without_artifacts(tmp_path):
    results = _results(tmp_path)
    (tmp_path / "05_probe/comparison.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="comparison.tsv"):
        build_report(results, tmp_path)


def test_next_change_cases(tmp_path):
    results = _results(tmp_path)
    assert next_change(results)["text"].startswith("Rerun with a second seed")  # adaptation justified
    not_justified = copy.deepcopy(results)
    not_justified["step6"]["verdict"] = {"justified": False, "reason": "small"}
    assert "temporal context" in next_change(not_justified)["text"]
    unavailable = copy.deepcopy(results)
    unavailable["step6"].update(ran=False, unavailable="HEAR module")
    assert "top block trainable" in next_change(unavailable)["text"]
    frozen_ok = copy.deepcopy(results)
    frozen_ok["step6"].update(triggered=False, ran=False)
    assert next_change(frozen_ok)["text"].startswith("Keep the frozen encoder")
    missing = copy.deepcopy(results)
    missing["step4"]["per_rule"]["linear_softmax"]["summary"] = {"events": 9, "detected": 3}
    change = next_change(missing)
    assert "threshold" in change["text"] and "6 of 9 events" in change["because"]
    weak_only = copy.deepcopy(results)
    weak_only["step4"].update(available=False, reason="no strong labels")
    assert next_change(weak_only)["text"].startswith("Add strong labels")


def test_markdown_without_boundaries_or_dropped_rows(tmp_path):
    results = _results(tmp_path)
    results["dropped"] = []
    results["step4"].update(available=False, reason="the test split has no strong labels")
    report = build_report(results, tmp_path)
    markdown = render_markdown(report)
    assert "Boundary inspection was not possible: the test split has no strong labels" in markdown
    assert "Nothing was dropped" in markdown
    assert "Clip and boundary metrics side by side" not in markdown
