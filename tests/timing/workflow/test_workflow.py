"""The lab workflow end to end on a tiny synthetic corpus (reduced sizes), with bad label rows.

What is checked: every step writes its artifacts in its folder; the report's claims name only
files that exist; every bad TSV row ends up in the report's dropped list with its file and
line; the frozen probe and the scratch baseline use the same clips; the command line and the
academy entry reach the library; ``settings.json`` holds the settings used. And what the steps
found: the rows of each step's table are the numbers of ``report.json`` (to the 4 decimals the
TSVs write), the decisions (best rule on validation, the post-processing, the sanity gates, the
chosen pooling, the adaptation trigger, the path) follow from the numbers they are taken from,
and the headline repeats the per-step numbers. The quality of a reduced run's numbers means
nothing and is not asserted (with the fast settings the models learn next to nothing, so the run
usually ends without a decision); their consistency is. On a corpus whose training labels are
shuffled, nothing can be learned, and the run must say so instead of recommending a path.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc import cli
from audioenc.audio.formats import read_corpus_split
from audioenc.audio.synth_events import synthesize_event_corpus
from audioenc.timing import workflow
from audioenc.timing.pooling import POOLING_NAMES
from audioenc.timing.workflow import (
    STEP_FOLDERS,
    WorkflowSettings,
    jobs,
    load_workflow_data,
    resolve_settings,
    run_workflow,
)
from audioenc.timing.workflow.settings import TrainingBudget

FAST = WorkflowSettings.fast()

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "academy/labs/speech-and-audio-encoders/src/speech_audio_encoder_workflow.py"

# Appended to test_strong.tsv: (row, what the reader must say about it, what it did).
BAD_STRONG_ROWS = [
    ("test_0000.wav\tabc\t1.0\ttone", "are not numbers", "dropped"),  # malformed onset
    ("test_0001.wav\t0.5", "are not numbers", "dropped"),  # missing fields (offset empty)
    ("missing_clip.wav\t0.1\t0.5\ttone", "not in the audio folder", "dropped"),  # labels for a missing file
    ("test_0002.wav\t30.0\t31.0\ttone", "starts past the end", "dropped"),  # event past the end of the file
    ("test_0004.wav\t0.2\t99.0\tclick", "past the end", "clipped"),  # event running past the end
    ("test_0003.wav\t0.1\t0.6\ttrumpet", "unknown class", "dropped"),  # unknown class
]


@pytest.fixture(scope="module")
def corpus_with_bad_rows(tmp_path_factory) -> Path:
    root = synthesize_event_corpus(tmp_path_factory.mktemp("corpus"), (16, 8, 8), seed=3)
    strong = root / "metadata" / "test_strong.tsv"
    lines = strong.read_text().splitlines()
    # An overlapping same-class duplicate of the first event (merged, reported).
    first = lines[1].split("\t")
    overlap = f"{first[0]}\t{float(first[1]) + 0.01:.3f}\t{float(first[2]) + 0.05:.3f}\t{first[3]}"
    lines += [row for row, _, _ in BAD_STRONG_ROWS] + [overlap]
    strong.write_text("\n".join(lines) + "\n")
    weak = root / "metadata" / "train_weak.tsv"
    weak.write_text(weak.read_text() + "train_9999.wav\ttone\n")  # a weak label for a missing file
    return root


@pytest.fixture(scope="module")
def fast_run(corpus_with_bad_rows, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    lines: list[str] = []
    report = run_workflow(corpus_with_bad_rows, out=out, seed=0, fast=True, log=lines.append)
    return out, report, lines


def test_every_step_writes_its_artifacts(fast_run):
    out, _, _ = fast_run
    for folder in STEP_FOLDERS:
        assert (out / folder).is_dir(), folder
    expected = [
        "00_data/data.json",
        "00_data/dropped.tsv",
        "01_pooling/clip_metrics.tsv",
        "01_pooling/clip_metrics.json",
        "01_pooling/pooled_levels.png",
        "02_frames/frame_scores.png",
        "02_frames/frame_view.json",
        "03_weak/training.json",
        "03_weak/training_curves.png",
        *[
            f"03_weak/{rule}/model.safetensors"
            for rule in ("mean", "max", "linear_softmax", "exp_softmax", "attention", "autopool")
        ],
        "04_boundaries/boundary_metrics.tsv",
        "04_boundaries/boundary_metrics.json",
        "04_boundaries/event_errors.tsv",
        "04_boundaries/error_distributions.png",
        "04_boundaries/onset_aligned_scores.png",
        "04_boundaries/around_boundaries.png",
        "05_probe/comparison.json",
        "05_probe/comparison.tsv",
        "05_probe/comparison.png",
        "05_probe/probe/model.safetensors",
        "05_probe/encoder/model.safetensors",
        "05_probe/scratch/model.safetensors",
        "05_probe/training_curves.png",
        "06_adapt/adaptation.json",
        "report.md",
        "report.json",
        "settings.json",
    ]
    missing = [name for name in expected if not (out / name).is_file()]
    assert not missing
    # Step 1 compares all six rules on the same frame scores, on validation and test.
    metrics = json.loads((out / "01_pooling/clip_metrics.json").read_text())["metrics"]
    assert set(metrics) == {"mean", "max", "linear_softmax", "exp_softmax", "attention", "autopool"}
    assert all(set(item) == {"validation", "test"} for item in metrics.values())


def test_report_claims_point_at_existing_artifacts(fast_run):
    out, report, _ = fast_run
    assert json.loads((out / "report.json").read_text())["claims"] == report["claims"]
    markdown = (out / "report.md").read_text()
    # Where the features came from: the step-0 line states the cache's count, as data.json records it.
    cache = report["data"]["feature_cache"]
    assert cache["clips"] == sum(info["clips"] for info in report["data"]["splits"].values())
    assert f"Features: {cache['clips']} clips, " in markdown
    ids = {claim["id"] for claim in report["claims"]}
    assert {
        "pooling_same_scores",
        "pooling_choice",
        "frame_view",
        "weak_training",
        "training",
        "boundaries",
        "probe_vs_scratch",
        "adaptation",
        "decision",
        "next_change",
        "dropped",
    } <= ids
    for claim in report["claims"]:
        assert claim["artifacts"], claim["id"]
        for path in claim["artifacts"]:
            assert (out / path).is_file(), (claim["id"], path)
            assert f"`{path}`" in markdown
    chosen = report["pooling"]["chosen"]
    assert chosen in ("mean", "max", "linear_softmax", "exp_softmax", "attention", "autopool")
    if report["boundaries"]["decided"]:
        assert f"Chosen pooling rule: {chosen}" in markdown and report["pooling"]["decision"] == chosen
    else:
        assert "No pooling decision" in markdown and report["pooling"]["decision"] == "none"
    assert report["decision"]["path"] in ("frozen", "adapted", "scratch", "none")
    assert report["next_change"]["text"] and report["next_change"]["because"]
    assert "downmixed to mono" in report["data"]["channel_policy"]
    headline = report["headline"]
    assert headline["pooling_chosen"] == chosen and set(headline["median_abs_onset_s"]) == set(metrics_rules(report))


def metrics_rules(report) -> list[str]:
    return list(report["boundaries"]["per_rule"])


def test_bad_rows_are_listed_as_dropped(fast_run, corpus_with_bad_rows):
    out, report, lines = fast_run
    strong = str(corpus_with_bad_rows / "metadata" / "test_strong.tsv")
    total_lines = len((corpus_with_bad_rows / "metadata" / "test_strong.tsv").read_text().splitlines())
    first_bad = total_lines - len(BAD_STRONG_ROWS)  # 1-based line of the first appended row
    dropped = report["dropped"]
    for offset, (_, message, action) in enumerate(BAD_STRONG_ROWS):
        line = first_bad + offset
        matches = [item for item in dropped if item["file"] == strong and item["line"] == line]
        assert matches, (line, message)
        assert message in matches[0]["message"] and f"{strong}:{line}" in matches[0]["message"]
        assert matches[0]["action"] == action
    merged = [item for item in dropped if item["file"] == strong and item["action"] == "merged"]
    assert any(item["line"] == total_lines for item in merged)  # the overlapping duplicate, last line
    weak = str(corpus_with_bad_rows / "metadata" / "train_weak.tsv")
    assert any(item["file"] == weak and "train_9999.wav" in item["message"] for item in dropped)
    # Listed in report.md and dropped.tsv, and printed while running.
    markdown = (out / "report.md").read_text()
    assert f"## Dropped or changed input ({len(dropped)})" in markdown
    assert "missing_clip.wav" in markdown and "trumpet" in markdown
    assert len((out / "00_data/dropped.tsv").read_text().splitlines()) == len(dropped) + 1
    assert any("missing_clip.wav" in line for line in lines)
    # The run continued: all test clips are still evaluated.
    assert report["data"]["splits"]["test"]["clips"] == 8


def test_frozen_probe_and_scratch_share_the_split(fast_run):
    out, report, _ = fast_run
    comparison = json.loads((out / "05_probe/comparison.json").read_text())
    training = json.loads((out / "03_weak/training.json").read_text())
    assert comparison["train_clips"]["frozen_probe"] == comparison["train_clips"]["scratch"] == training["train_clips"]
    assert comparison["encoder_parameters_unchanged"] is True
    # Default encoder: a CRNN trained on the other classes; probe and scratch on the held-out ones.
    encoder = comparison["encoder"]
    assert encoder["trained_here"] and not set(encoder["trained_on_classes"]) & set(comparison["task_classes"])
    for model in ("frozen", "scratch_metrics"):
        assert {"clip_map", "clip_accuracy", "collar_f1", "onset_within"} <= set(comparison[model]["intervals"])
    assert report["adaptation"]["rule"].startswith("Adapt only when")


# --------------------------------------------------------------------------- what the steps found


def read_tsv(path: Path) -> list[dict[str, str]]:
    """A TSV the workflow wrote, one dict per row keyed by the header."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def cell(value) -> str:
    """How the workflow's TSV writer shows a JSON value: 4 decimals, None empty, ints as is."""
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def interval_text(ci) -> str:
    """``low to high`` as comparison.tsv shows a stored interval (None ends next to a defined one
    are infinite; no interval or no ends: ``n/a``)."""
    if not ci or (ci.get("low") is None and ci.get("high") is None):
        return "n/a"
    low = "-inf" if ci["low"] is None else f"{ci['low']:.3f}"
    high = "inf" if ci["high"] is None else f"{ci['high']:.3f}"
    return f"{low} to {high}"


def test_pooling_table_is_what_step1_found(fast_run):
    out, report, _ = fast_run
    same = report["pooling"]["same_frame_scores"]
    metrics = same["metrics"]
    assert list(metrics) == list(POOLING_NAMES)
    rows = read_tsv(out / "01_pooling/clip_metrics.tsv")
    assert [row["pooling"] for row in rows] == list(POOLING_NAMES)
    for row in rows:
        found = metrics[row["pooling"]]
        assert row["validation_map"] == cell(found["validation"]["map"]), row
        assert row["validation_accuracy"] == cell(found["validation"]["accuracy"]), row
        assert row["test_map"] == cell(found["test"]["map"]), row
        assert row["test_accuracy"] == cell(found["test"]["accuracy"]), row
        for split, clips in (("validation", 8), ("test", 8)):
            assert found[split]["clips"] == clips
            defined = [ap for ap in found[split]["per_class_ap"].values() if ap is not None]
            # The macro AP is the mean over the classes with a positive clip.
            assert found[split]["map"] == pytest.approx(sum(defined) / len(defined), abs=1e-12)
    # The best rule on validation is the (first) argmax of validation clip mAP.
    validation_map = {rule: metrics[rule]["validation"]["map"] for rule in POOLING_NAMES}
    best = same["best_on_validation_map"]
    assert validation_map[best] == max(validation_map.values())
    assert best == next(rule for rule in POOLING_NAMES if validation_map[rule] == max(validation_map.values()))
    stored = json.loads((out / "01_pooling/clip_metrics.json").read_text())
    assert stored["metrics"] == metrics and stored["best_on_validation_map"] == best
    assert stored["autopool_alpha"] == same["autopool_alpha"] and set(same["autopool_alpha"]) == set(
        report["data"]["classes"]
    )
    claim = next(item for item in report["claims"] if item["id"] == "pooling_same_scores")
    assert f"the best clip summary on validation is {best}" in claim["text"]


def test_frame_view_is_what_step2_found(fast_run, corpus_with_bad_rows):
    out, report, _ = fast_run
    frames = report["frames"]
    stored = json.loads((out / "02_frames/frame_view.json").read_text())
    assert frames["available"] is True
    assert {
        key: stored[key]
        for key in ("inside_mean", "outside_mean", "absent_class_mean", "peak_inside", "positive_pairs", "sample_clips")
    } == {
        key: frames[key]
        for key in ("inside_mean", "outside_mean", "absent_class_mean", "peak_inside", "positive_pairs", "sample_clips")
    }
    # Positive (clip, class) pairs: read from the test split's strong labels (the run's reader, bad rows dropped).
    test = read_corpus_split(corpus_with_bad_rows, "test", classes=report["data"]["classes"])
    pairs = sum(len({event.label for event in test.strong[name]}) for name in test.files)
    assert frames["positive_pairs"] == pairs and 0 <= frames["peak_inside"] <= pairs
    assert all(0.0 <= frames[key] <= 1.0 for key in ("inside_mean", "outside_mean", "absent_class_mean"))
    # Plotted: one positive clip per class in turn, then the first negative clip.
    negatives = [name for name in test.files if not test.weak[name]]
    assert frames["sample_clips"][-1] == negatives[0]
    assert all(test.weak[name] for name in frames["sample_clips"][:-1])
    assert len(frames["sample_clips"]) == FAST.run.plot_clips
    assert report["data"]["splits"]["test"]["with_events"] == len(test.positive_files())


def test_weak_training_is_what_step3_found(fast_run):
    out, report, _ = fast_run
    training = json.loads((out / "03_weak/training.json").read_text())
    trained = report["pooling"]["trained"]
    assert list(trained) == list(POOLING_NAMES) == list(training["rules"])
    assert training["budget"] == {
        "max_epochs": 2,
        "patience": None,
        "budget_seconds": None,
        "batch_size": FAST.weak.batch_size,
        "learning_rate": FAST.weak.learning_rate,
        "shared_trunk": FAST.weak.shared_trunk,
    }
    assert training["shared_trunk"] is FAST.weak.shared_trunk  # how the rules were trained
    assert report["run"]["settings"]["weak"] == training["budget"]
    for rule in POOLING_NAMES:
        history = json.loads((out / f"03_weak/{rule}/history.json").read_text())
        # No patience and no time budget: every CRNN runs its two epochs and says so.
        assert len(training["rules"][rule]["train_loss"]) == len(history["train_loss"]) == 2
        assert trained[rule]["epochs_run"] == len(history["valid_loss"]) == 2
        assert trained[rule]["stopped"] == history["stopped"] == "max_epochs"
        # Still improving: stopped by the limit with the best among the last two epochs.
        assert trained[rule]["still_improving"] is history["still_improving"] is (history["best_epoch"] >= 0)
        assert training["rules"][rule]["train_loss"] == history["train_loss"]
        assert trained[rule]["best_epoch"] == history["best_epoch"] == training["rules"][rule]["best_epoch"]
        assert trained[rule]["best_epoch"] in (-1, 0, 1)
        if history["valid_loss"] and history["best_epoch"] >= 0:  # the kept epoch has the lowest validation loss
            assert history["valid_loss"][history["best_epoch"]] == min(history["valid_loss"])
        for split in ("validation", "test"):
            assert trained[rule][split] == training["rules"][rule][split]
        # Step 4 evaluates the same test scores: its clip mAP and accuracy are step 3's.
        point = report["boundaries"]["per_rule"][rule]["point"]
        assert point["clip_map"] == pytest.approx(trained[rule]["test"]["map"], abs=1e-9)
        assert point["clip_accuracy"] == pytest.approx(trained[rule]["test"]["accuracy"], abs=1e-9)


def test_boundary_table_and_pooling_choice_are_what_step4_found(fast_run):
    out, report, _ = fast_run
    boundaries = report["boundaries"]
    per_rule = boundaries["per_rule"]
    assert boundaries["available"] is True and list(per_rule) == list(POOLING_NAMES)
    postprocessing, gates = boundaries["postprocessing"], boundaries["gates"]
    assert list(postprocessing) == list(gates) == list(POOLING_NAMES)
    rows = read_tsv(out / "04_boundaries/boundary_metrics.tsv")
    assert [row["pooling"] for row in rows] == list(POOLING_NAMES)
    for row in rows:
        point, summary = per_rule[row["pooling"]]["point"], per_rule[row["pooling"]]["summary"]
        expected = {
            "clip_map": point["clip_map"],
            "clip_accuracy": point["clip_accuracy"],
            "median_abs_onset_s": summary["median_abs_onset_error"],
            "median_abs_offset_s": summary["median_abs_offset_error"],
            "onset_within_200ms": summary["onset_within"],
            "offset_within_200ms": summary["offset_within"],
            "collar_f1": point["collar_f1"],
            "onset_f1_200ms": point["onset_f1_200ms"],
            "onset_f1_50ms": point["onset_f1_50ms"],
            "psds1": point["psds1"],
            "psds2": point["psds2"],
            "detected_events": summary["detected"],
            "events": summary["events"],
            "median_frames": postprocessing[row["pooling"]]["median_frames"],
            "threshold": postprocessing[row["pooling"]]["threshold"],
            "learned": "yes" if gates[row["pooling"]]["passed"] else "no",
        }
        assert {key: row[key] for key in expected} == {key: cell(value) for key, value in expected.items()}, row
        # The bootstrap statistics and the boundary summary measure the same shares.
        assert point["onset_within"] == pytest.approx(summary["onset_within"], abs=1e-12)
        assert point["offset_within"] == pytest.approx(summary["offset_within"], abs=1e-12)
        if summary["median_abs_onset_error"] is None:  # infinite (more than half missed): None in both
            assert point["median_abs_onset"] is None
        else:
            assert point["median_abs_onset"] == pytest.approx(summary["median_abs_onset_error"], abs=1e-12)
        assert summary["missed"] == summary["events"] - summary["detected"]
    # event_errors.tsv: one row per true event per rule, errors only for detected events.
    events = read_tsv(out / "04_boundaries/event_errors.tsv")
    for rule in POOLING_NAMES:
        mine = [row for row in events if row["pooling"] == rule]
        assert len(mine) == per_rule[rule]["summary"]["events"]
        assert sum(row["onset_error"] != "" for row in mine) == per_rule[rule]["summary"]["detected"]
    assert boundaries["positives"] == report["data"]["splits"]["test"]["with_events"]
    # The choice is made among the rules whose CRNN passed the sanity gates (all rules, provisionally,
    # when none did): the candidates are those within the mAP margin of the best validation mAP;
    # the chosen rule is one of them with the highest validation collar F1.
    passing = [rule for rule in POOLING_NAMES if gates[rule]["passed"]]
    assert boundaries["decided"] is bool(passing)
    assert report["pooling"]["decision"] == (boundaries["selection"]["chosen"] if passing else "none")
    if passing:
        assert report["pooling"]["no_decision"] is None
    else:  # the reason is the provisional rule's failed gate
        chosen_gate = gates[boundaries["selection"]["chosen"]]
        assert chosen_gate["failures"] and all(
            failure in report["pooling"]["no_decision"] for failure in chosen_gate["failures"]
        )
    selection = boundaries["selection"]
    validation = selection["validation_metrics"]
    assert list(validation) == (passing or list(POOLING_NAMES))
    best_map = max(metrics["clip_map"] for metrics in validation.values() if metrics["clip_map"] is not None)
    margin = FAST.evaluation.pooling_ap_margin
    assert selection["candidates"] == [
        rule
        for rule in validation
        if validation[rule]["clip_map"] is not None and validation[rule]["clip_map"] >= best_map - margin
    ]
    chosen = selection["chosen"]
    assert chosen in selection["candidates"]
    f1 = {rule: validation[rule].get("collar_f1") for rule in selection["candidates"]}
    if any(value is not None for value in f1.values()):
        assert f1[chosen] is not None and f1[chosen] == max(value for value in f1.values() if value is not None)
        assert f"validation collar F1 {f1[chosen]:.3f}" in selection["basis"]
    else:
        assert validation[chosen]["clip_map"] == max(validation[rule]["clip_map"] for rule in selection["candidates"])
    assert report["pooling"]["chosen"] == chosen and report["pooling"]["basis"] == selection["basis"]
    stored = json.loads((out / "04_boundaries/boundary_metrics.json").read_text())
    assert stored["selection"] == selection and stored["disagreements"] == boundaries["disagreements"]
    assert stored["gates"] == gates and stored["postprocessing"] == postprocessing
    assert stored["pooling_decided"] is boundaries["decided"]
    for rule in POOLING_NAMES:
        assert stored["per_rule"][rule]["point"] == per_rule[rule]["point"]
    # Each listed disagreement is a pair of passing rules ranked oppositely by clip mAP and collar F1 on the test split.
    for item in boundaries["disagreements"]:
        assert {item["better_clip"], item["better_boundary"]} <= set(passing)
        a, b = per_rule[item["better_clip"]]["point"], per_rule[item["better_boundary"]]["point"]
        assert a["clip_map"] - b["clip_map"] == pytest.approx(item["clip_gap"]) and item["clip_gap"] > 0.02
        assert b["collar_f1"] - a["collar_f1"] == pytest.approx(item["boundary_gap"]) and item["boundary_gap"] > 0.02


def test_probe_table_is_what_step5_found(fast_run):
    out, report, _ = fast_run
    comparison = json.loads((out / "05_probe/comparison.json").read_text())
    probe = report["probe"]
    frozen, scratch, difference = comparison["frozen"], comparison["scratch_metrics"], comparison["difference"]
    assert probe["frozen"] == {"point": frozen["point"], "intervals": frozen["intervals"]}
    assert probe["scratch"] == {"point": scratch["point"], "intervals": scratch["intervals"]}
    assert probe["difference"] == difference and probe["task_classes"] == comparison["task_classes"]
    assert probe["pooling"] == comparison["pooling"] == report["pooling"]["chosen"]
    rows = read_tsv(out / "05_probe/comparison.tsv")
    assert [row["metric"] for row in rows] == list(frozen["point"])
    assert {"clip_map", "clip_accuracy", "collar_f1", "psds1", "psds2"} <= set(frozen["point"])
    for row in rows:
        metric = row["metric"]
        assert row["frozen_probe"] == cell(frozen["point"][metric]), row
        assert row["scratch"] == cell(scratch["point"][metric]), row
        assert row["frozen_95ci"] == interval_text(frozen["intervals"].get(metric)), row
        assert row["scratch_95ci"] == interval_text(scratch["intervals"].get(metric)), row
        assert row["frozen_minus_scratch"] == cell(difference.get(metric, {}).get("value")), row
        assert row["difference_95ci"] == interval_text(difference.get(metric)), row
    # The difference is frozen - scratch on the same clips (undefined when either side is).
    for metric, ci in difference.items():
        a, b = frozen["point"][metric], scratch["point"][metric]
        if a is None or b is None:
            assert ci["value"] is None, metric
        else:
            assert ci["value"] == pytest.approx(a - b, abs=1e-9), metric
    assert difference["clip_map"]["value"] is not None
    assert abs(difference["clip_map"]["value"] - (frozen["point"]["clip_map"] - scratch["point"]["clip_map"])) <= 1e-9
    # Point values lie in their intervals (where the interval is defined).
    for block in (frozen, scratch):
        for metric, ci in block["intervals"].items():
            value = block["point"][metric]
            if value is not None and ci["low"] is not None and ci["high"] is not None:
                assert ci["value"] == value and ci["low"] - 1e-12 <= value <= ci["high"] + 1e-12, metric
    # The self-trained encoder never saw the task classes; together they are the whole vocabulary.
    encoder = comparison["encoder"]
    assert sorted([*encoder["trained_on_classes"], *comparison["task_classes"]]) == sorted(report["data"]["classes"])
    assert len(comparison["task_classes"]) == FAST.evaluation.held_out_classes
    assert encoder["source"] == "05_probe/encoder" and comparison["test_clips"] == sorted(comparison["test_clips"])
    assert len(comparison["test_clips"]) == report["data"]["splits"]["test"]["clips"]


def test_adaptation_and_decision_follow_the_numbers(fast_run):
    out, report, _ = fast_run
    adaptation, decision = report["adaptation"], report["decision"]
    frozen, scratch = report["probe"]["frozen"]["point"], report["probe"]["scratch"]["point"]
    rule = FAST.rule
    margins = {"clip_map": rule.clip_margin, "collar_f1": rule.boundary_margin}
    # The trigger: gaps are scratch - frozen; short on a metric when its gap exceeds the margin.
    expected_gaps = {
        metric: scratch[metric] - frozen[metric]
        for metric in margins
        if frozen.get(metric) is not None and scratch.get(metric) is not None
    }
    assert set(adaptation["gaps"]) == set(expected_gaps)
    for metric, gap in expected_gaps.items():
        assert adaptation["gaps"][metric] == pytest.approx(gap, abs=1e-12)
    assert adaptation["short_on"] == [metric for metric, gap in adaptation["gaps"].items() if gap > margins[metric]]
    assert adaptation["triggered"] is bool(adaptation["short_on"])
    assert adaptation["ran"] is ("verdict" in adaptation)
    # Step 6 draws no decision exactly when the scratch baseline failed its sanity gate; then it does
    # not adapt, however the trigger fell.
    scratch_gate = report["probe"]["gates"]["scratch"]
    assert bool(adaptation["no_decision"]) is (not scratch_gate["passed"])
    # decide_path: none iff no decision; else frozen iff not triggered; adapted iff it ran and the
    # verdict is justified; otherwise scratch.
    if adaptation["no_decision"]:
        assert decision["path"] == "none" and not adaptation["ran"]
        assert decision["statement"] == adaptation["no_decision"]
        assert "scratch baseline" in decision["statement"]
        assert all(failure in decision["statement"] for failure in scratch_gate["failures"])
    elif not adaptation["triggered"]:
        assert decision["path"] == "frozen" and not adaptation["ran"]
    elif not adaptation["ran"]:
        assert decision["path"] == "scratch" and adaptation["unavailable"]
    elif adaptation["verdict"]["justified"]:
        assert decision["path"] == "adapted"
    else:
        assert decision["path"] == "scratch"
    assert decision["path"] == (
        "none"
        if adaptation["no_decision"]
        else "frozen"
        if not adaptation["triggered"]
        else "adapted"
        if adaptation["ran"] and adaptation["verdict"]["justified"]
        else "scratch"
    )
    if decision["path"] != "none":
        assert adaptation["reason"] in decision["statement"]
    stored = json.loads((out / "06_adapt/adaptation.json").read_text())
    assert {key: stored[key] for key in ("triggered", "short_on", "gaps", "reason", "ran")} == {
        key: adaptation[key] for key in ("triggered", "short_on", "gaps", "reason", "ran")
    }
    assert stored.get("no_decision") == adaptation["no_decision"]
    assert (out / "06_adapt/adapted/model.safetensors").is_file() is adaptation["ran"]
    claim = next(item for item in report["claims"] if item["id"] == "decision")
    assert claim["text"].startswith(f"Decision: {decision['path']} — ")


def test_headline_repeats_the_step_numbers(fast_run):
    _, report, _ = fast_run
    headline, boundaries, probe = report["headline"], report["boundaries"], report["probe"]
    chosen = boundaries["selection"]["chosen"]
    assert headline["pooling_chosen"] == chosen == report["pooling"]["chosen"]
    assert headline["median_abs_onset_s"] == {
        rule: item["summary"]["median_abs_onset_error"] for rule, item in boundaries["per_rule"].items()
    }
    for metric in ("collar_f1", "psds1", "psds2"):
        assert headline[metric] == boundaries["per_rule"][chosen]["point"][metric], metric
    for side in ("frozen", "scratch"):
        for metric in ("clip_map", "collar_f1"):
            assert headline[side][metric] == probe[side]["point"][metric], (side, metric)
            assert headline[side][f"{metric}_ci"] == probe[side]["intervals"][metric], (side, metric)
    assert headline["encoder"] == probe["encoder"]["source"]
    assert headline["adaptation_triggered"] is report["adaptation"]["triggered"]
    assert headline["adaptation_ran"] is report["adaptation"]["ran"]
    assert headline["decision"] == report["decision"]["path"]
    assert math.isfinite(headline["wall_seconds"]) and headline["wall_seconds"] > 0


# --------------------------------------------------------------------------- settings, post-processing, gates


def test_settings_json_holds_the_settings_used(fast_run):
    out, report, _ = fast_run
    path = out / "settings.json"
    assert path.is_file()
    # Loadable with --config: the same settings come back (the run used WorkflowSettings.fast()).
    assert resolve_settings(config_file=path) == FAST
    assert json.loads(path.read_text()) == FAST.to_dict() == report["run"]["settings"]
    # Written by the run from what it used, not only the defaults it started from.
    assert report["run"]["settings"]["weak"]["max_epochs"] == 2 and report["run"]["fast"] is True


def _systems_postprocessing(report) -> dict[str, dict]:
    """Every system's post-processing in report.json: the step-4 CRNNs, the step-5 systems, the adapted one."""
    found = {f"{rule} CRNN": item for rule, item in report["boundaries"]["postprocessing"].items()}
    found.update(report["probe"]["postprocessing"])
    if report["adaptation"].get("postprocessing"):
        found["adapted"] = report["adaptation"]["postprocessing"]
    return found


def test_every_system_states_its_post_processing(fast_run):
    out, report, _ = fast_run
    systems = _systems_postprocessing(report)
    assert {f"{rule} CRNN" for rule in POOLING_NAMES} | {"frozen + probe", "scratch"} <= set(systems)
    candidates, fixed = FAST.postprocess.thresholds, FAST.postprocess.fixed_threshold
    for system, item in systems.items():
        threshold, basis = item["threshold"], item["basis"]
        assert isinstance(threshold, float) and 0 < threshold < 1, system
        assert isinstance(basis, str) and basis, system
        assert item["median_frames"] >= 1 and item["median_frames"] % 2 == 1, system
        if basis.startswith("chosen on validation"):
            # A choice among the candidates, with a validation collar F1 to show for it.
            assert threshold in candidates and item["median_seconds"] in FAST.postprocess.median_seconds, system
            assert item["validation_collar_f1"] is not None and item["validation_collar_f1"] > 0, system
        else:
            assert basis.startswith("fixed: ") and threshold == fixed, system
            assert item["median_seconds"] == FAST.postprocess.fixed_median_seconds, system
    # The boundary metrics were measured at each system's own threshold.
    stored = json.loads((out / "04_boundaries/boundary_metrics.json").read_text())
    for rule in POOLING_NAMES:
        assert stored["per_rule"][rule]["boundary"]["collar_f1"]["threshold"] == systems[f"{rule} CRNN"]["threshold"]
    comparison = json.loads((out / "05_probe/comparison.json").read_text())
    assert comparison["postprocessing"] == report["probe"]["postprocessing"]
    for key, system in (("frozen", "frozen + probe"), ("scratch_metrics", "scratch")):
        assert comparison[key]["boundary"]["collar_f1"]["threshold"] == systems[system]["threshold"]
    # Both systems get onset-only F1 (HEAR) at 200 and 50 ms.
    for side in ("frozen", "scratch"):
        assert {"onset_f1_200ms", "onset_f1_50ms"} <= set(report["probe"][side]["point"])


def _prevalence(split, classes) -> float:
    """The gates' chance level, by hand: the expected AP of random scores, (H_N + (R-1)/(N-1) (N - H_N)) / N,
    averaged over classes with a positive clip."""
    n = len(split.files)
    harmonic = sum(1 / r for r in range(1, n + 1))
    positives = [sum(label in split.weak[name] for name in split.files) for label in classes]
    return float(np.mean([(harmonic + (r - 1) / (n - 1) * (n - harmonic)) / n for r in positives if r > 0]))


def _gate_follows(gate: dict, evaluation: dict, summary: dict | None) -> None:
    """A gate's verdict is the gates' rule applied to the numbers it was given, and a failure says
    which metric failed, against which chance level."""
    chance, value = gate["chance_map"], evaluation["point"]["clip_map"]
    low = evaluation["intervals"]["clip_map"]["low"]
    above = value is not None and value > chance and low is not None and low > chance
    detects = (
        not summary
        or not summary["events"]
        or summary["detected"] / summary["events"] >= FAST.evaluation.min_detected_share
    )
    assert gate["passed"] is (above and detects), gate
    assert bool(gate["failures"]) is (not gate["passed"]) and bool(gate["advice"]) is (not gate["passed"])
    for failure in gate["failures"]:
        assert "clip mAP" in failure or "events detected" in failure, failure
        if "clip mAP" in failure:
            assert f"chance ({chance:.3f}" in failure, failure
        else:
            assert f"{summary['detected']} of {summary['events']} events detected" in failure, failure


def test_gates_follow_the_numbers_and_failures_name_metric_and_chance(fast_run, corpus_with_bad_rows):
    out, report, _ = fast_run
    test = read_corpus_split(corpus_with_bad_rows, "test", classes=report["data"]["classes"])
    boundaries = report["boundaries"]
    for rule, gate in boundaries["gates"].items():
        assert gate["system"] == f"the {rule} CRNN"
        assert gate["chance_map"] == pytest.approx(_prevalence(test, report["data"]["classes"]), abs=1e-12)
        _gate_follows(gate, boundaries["per_rule"][rule], boundaries["per_rule"][rule]["summary"])
    comparison = json.loads((out / "05_probe/comparison.json").read_text())
    probe = report["probe"]
    assert comparison["gates"] == probe["gates"] and list(probe["gates"]) == ["frozen + probe", "scratch"]
    for system, key in (("frozen + probe", "frozen"), ("scratch", "scratch")):
        gate = probe["gates"][system]
        assert gate["chance_map"] == pytest.approx(_prevalence(test, probe["task_classes"]), abs=1e-12)
        summary = comparison["frozen" if key == "frozen" else "scratch_metrics"]["boundary"]["summary"]
        _gate_follows(gate, probe[key], summary)
    failed = [gate for gate in [*boundaries["gates"].values(), *probe["gates"].values()] if not gate["passed"]]
    for gate in failed:
        assert gate["failures"] and math.isfinite(gate["chance_map"]) and 0 < gate["chance_map"] < 1
    # The report states every failed step-5 gate.
    claim = next(item["text"] for item in report["claims"] if item["id"] == "probe_vs_scratch")
    for gate in probe["gates"].values():
        assert all((failure in claim) is (not gate["passed"]) for failure in gate["failures"])


def test_training_claim_lists_every_model(fast_run):
    _, report, _ = fast_run
    claim = next(item for item in report["claims"] if item["id"] == "training")
    models = {f"{rule} CRNN": item for rule, item in report["pooling"]["trained"].items()}
    models.update(report["probe"]["training"])
    if report["adaptation"].get("training"):
        models["adapted"] = report["adaptation"]["training"]
    assert {"frozen + probe", "scratch", "encoder (CRNN, other classes)"} <= set(report["probe"]["training"])
    for name, item in models.items():
        stopped = item["stopped"].replace("_", " ")
        assert f"{name} {item['epochs_run']} epochs (best {item['best_epoch'] + 1}, {stopped})" in claim["text"], name
    still = [name for name, item in models.items() if item["still_improving"]]
    if still:
        assert f"while the validation loss was still falling: {', '.join(still)} — " in claim["text"]
    assert "05_probe/training_curves.png" in claim["artifacts"]
    # The probe ran its 3 epochs (no patience): the count the settings allow.
    assert report["probe"]["training"]["frozen + probe"]["epochs_run"] == FAST.probe.max_epochs


def _check_no_decision_is_explained(report: dict, out: Path) -> None:
    """A run without a decision names the failed gate and says what to do about it."""
    decision, gate = report["decision"], report["probe"]["gates"]["scratch"]
    assert decision["path"] == "none" and not gate["passed"]
    statement = decision["statement"]
    assert statement.startswith("no decision: the scratch baseline")
    assert all(failure in statement for failure in gate["failures"])
    assert "chance" in statement or "detected" in statement
    change = report["next_change"]
    assert change["text"] == f"Make the scratch baseline learn first: {gate['advice']}; then rerun."
    assert change["because"] == statement
    assert report["adaptation"]["no_decision"] == statement and report["adaptation"]["ran"] is False
    assert not (out / "06_adapt/adapted").exists()
    assert report["headline"]["decision"] == "none"
    claims = {item["id"]: item["text"] for item in report["claims"]}
    assert claims["decision"] == f"Decision: none — {statement}."
    assert claims["next_change"].startswith(f"Smallest next change worth testing: {change['text']}")
    assert f"Decision: none — {statement}." in (out / "report.md").read_text()


def test_a_run_without_decision_says_why(fast_run):
    out, report, _ = fast_run
    if report["decision"]["path"] == "none":
        _check_no_decision_is_explained(report, out)
    else:  # a decision is only drawn on a scratch baseline that passed its gate
        assert report["probe"]["gates"]["scratch"]["passed"] and report["adaptation"]["no_decision"] is None


def _shuffle_training_labels(root: Path, seed: int) -> list[tuple[str, str]]:
    """Give every training clip the weak labels of another clip (a random derangement); drop the
    strong training labels. Returns the rows written."""
    weak = root / "metadata" / "train_weak.tsv"
    header, *lines = weak.read_text().splitlines()
    rows = [(line.split("\t") + [""])[:2] for line in lines]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    while np.any(order == np.arange(len(rows))):
        order = rng.permutation(len(rows))
    shuffled = [(rows[index][0], rows[other][1]) for index, other in enumerate(order)]
    weak.write_text("\n".join([header, *("\t".join(row) for row in shuffled)]) + "\n")
    (root / "metadata" / "train_strong.tsv").unlink()
    return shuffled


def test_nothing_learnable_ends_without_a_decision(tmp_path):
    # Labels shuffled independently of the audio: no model can learn anything real, and the run
    # must say so (the scratch baseline fails its sanity gate) rather than recommend a path.
    root = synthesize_event_corpus(tmp_path / "corpus", (24, 8, 8), seed=3)
    rows = _shuffle_training_labels(root, seed=3)
    out = tmp_path / "run"
    report = run_workflow(root, out=out, seed=0, settings=FAST, log=lambda line: None)
    train = read_corpus_split(root, "train")
    assert train.strong is None and [(name, ",".join(train.weak[name])) for name in train.files] == [
        (name, ",".join(sorted(labels.split(",") if labels else []))) for name, labels in rows
    ]
    assert report["data"]["splits"]["train"]["strong_labels"] is False
    decision = report["decision"]
    assert decision["path"] == "none"
    assert "scratch baseline" in decision["statement"]
    assert "chance" in decision["statement"] or "detected" in decision["statement"]
    _check_no_decision_is_explained(report, out)
    # Step 4 chose among the rules that passed, or made no decision (and said so).
    passing = [rule for rule, gate in report["boundaries"]["gates"].items() if gate["passed"]]
    assert report["pooling"]["decision"] == (report["pooling"]["chosen"] if passing else "none")
    assert (report["pooling"]["no_decision"] is None) is bool(passing)


def test_load_workflow_data_carves_missing_splits_and_reads_any_rate(tmp_path):
    # User data: 16 kHz stereo files, weak labels only, no validation or test split.
    audio = tmp_path / "audio" / "train"
    audio.mkdir(parents=True)
    (tmp_path / "metadata").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for index in range(10):
        sf.write(audio / f"c{index}.flac", 0.05 * rng.standard_normal((16000, 2)), 16000)
        rows.append(f"c{index}.flac\t{'dog' if index % 2 else ''}")
    (tmp_path / "metadata" / "train_weak.tsv").write_text("filename\tevent_labels\n" + "\n".join(rows) + "\n")
    data = load_workflow_data(tmp_path, seed=0, log=lambda line: None)
    assert data.classes == ("dog",)
    sizes = {name: len(split.files) for name, split in data.splits.items()}
    assert sizes == {"train": 6, "validation": 2, "test": 2}
    assert not set(data.splits["test"].files) & set(data.splits["train"].files)
    assert any("carved from train" in note for note in data.notes)
    assert data.audio_formats == {"16000 Hz, 2 ch": 10}
    assert data.splits["test"].strong is None
    # 1 s at 16 kHz -> 24 kHz mono log-mel at 100 frames/s: 100 frames.
    assert data.features["train"].log_mels[data.splits["train"].files[0]].shape == (64, 100)
    assert "16000 Hz, 2 ch" in workflow.channel_policy(data.audio_formats)


def test_unreadable_audio_is_dropped_not_fatal(tmp_path):
    root = synthesize_event_corpus(tmp_path / "c", (6, 3, 3), seed=1)
    (root / "audio" / "test" / "test_0001.wav").write_bytes(b"RIFF....not audio")
    data = load_workflow_data(root, seed=0, log=lambda line: None)
    assert "test_0001.wav" not in data.splits["test"].files
    assert any("test_0001.wav" in issue.message for issue in data.issues)


def test_parallel_training_equals_in_process(corpus_with_bad_rows):
    # Worker processes (one torch thread each) give bit-identical weights to training here.
    import torch

    data = load_workflow_data(corpus_with_bad_rows, seed=0, log=lambda line: None)
    crnn = FAST.crnn
    budget = TrainingBudget(max_epochs=1, patience=None, batch_size=16, learning_rate=3e-3)
    weak_jobs = [jobs.WeakJob(rule, rule, data.classes, 0, budget, crnn) for rule in ("mean", "max")]
    parallel = jobs.train_jobs(weak_jobs, data, 2, lambda line: None)
    serial = jobs.train_jobs(weak_jobs, data, 1, lambda line: None)
    assert set(parallel) == set(serial) == {"mean", "max"}
    for rule in ("mean", "max"):
        assert isinstance(parallel[rule], jobs.TrainedCRNN) and isinstance(serial[rule], jobs.TrainedCRNN)
        assert parallel[rule].model.pooling_name == serial[rule].model.pooling_name == rule
        a, b = parallel[rule].model.state_dict(), serial[rule].model.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a), rule
        assert parallel[rule].history.train_loss == serial[rule].history.train_loss, rule
        assert parallel[rule].history.best_epoch == serial[rule].history.best_epoch, rule
        assert parallel[rule].history.stopped == serial[rule].history.stopped == "max_epochs", rule


def test_the_mean_teacher_jobs_train_on_the_corpus_unlabeled_clips(corpus_with_bad_rows):
    # The jobs hand WorkflowData.unlabeled to train_weak_encoder when the mean teacher is on: the same
    # weights as calling it directly with those clips, and not those of the labeled-batch consistency.
    import torch

    from audioenc.timing.augment import AugmentSettings
    from audioenc.timing.weak import train_weak_encoder
    from audioenc.timing.workflow.data import one_thread

    data = load_workflow_data(corpus_with_bad_rows, seed=0, log=lambda line: None)
    data.unlabeled = data.features["test"]  # stands in for a corpus's audio/unlabeled clips
    budget = TrainingBudget(max_epochs=1, patience=None, batch_size=16, learning_rate=3e-3)
    teacher = AugmentSettings(mean_teacher=True, consistency_weight=2.0, rampup_epochs=0)
    job = jobs.WeakJob("mean", "mean", data.classes, 0, budget, FAST.crnn, teacher)
    trained = jobs.train_jobs([job], data, 1, lambda line: None)["mean"].model.state_dict()
    sets = (data.features["train"], data.features["validation"])
    common = {"epochs": 1, "batch_size": 16, "learning_rate": 3e-3, "config": FAST.crnn, "classes": data.classes}
    with one_thread():  # as the jobs train: one torch thread, the same arithmetic whatever the machine's count
        with_unlabeled, _ = train_weak_encoder(sets, "mean", 0, augment=teacher, unlabeled=data.unlabeled, **common)
        without, _ = train_weak_encoder(sets, "mean", 0, augment=teacher, **common)
    direct, other = with_unlabeled.state_dict(), without.state_dict()
    assert all(torch.equal(trained[key], direct[key]) for key in trained)
    assert not all(torch.equal(trained[key], other[key]) for key in trained)


def test_command_line_and_academy_entry(monkeypatch, tmp_path):
    calls = []
    # `audioenc.commands.workflow.run` imports run_workflow from the package at call time.
    monkeypatch.setattr(workflow, "run_workflow", lambda *args, **kwargs: calls.append((args, kwargs)) or {})
    status = cli.main(
        ["workflow", "--data", "D", "--encoder", "E", "--out", str(tmp_path), "--seed", "3", "--fast", "--workers", "1"]
    )
    assert status == 0 and len(calls) == 1
    (data, encoder, out, seed), options = calls[0]
    assert (data, encoder, out, seed) == ("D", "E", str(tmp_path), 3)
    assert options["fast"] and options["settings"].run.workers == 1 and options["settings"].weak.max_epochs == 2
    assert options["settings"] == replace(FAST, run=replace(FAST.run, workers=1))
    # A settings file, then section.key=value overrides, on top of the --fast sizes.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"weak": {"max_epochs": 5}, "probe": {"kind": "conv"}}))
    status = cli.main(
        [
            "workflow",
            "--data",
            "D",
            "--out",
            str(tmp_path),
            "--fast",
            "--config",
            str(config),
            "weak.patience=3",
            "probe.kind=frame",
        ]
    )
    assert status == 0 and len(calls) == 2
    settings = calls[1][1]["settings"]
    assert settings == replace(FAST, weak=replace(FAST.weak, max_epochs=5, patience=3))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    assert result.returncode == 0 and "--encoder" in result.stdout and "--data" in result.stdout


@pytest.mark.slow
def test_codec_encoder_weak_only_user_data(tmp_path):
    """A codec from `audioenc train`'s export format as the frozen encoder, on user data at
    another sample rate with weak labels only on the test split: the boundary steps say why they
    are skipped, and adaptation (forced by the rule) unfreezes the codec's top block."""
    import torch

    from audioenc.config import ModelConfig
    from audioenc.models.codec import CodecModel
    from audioenc.models.files import export_model
    from audioenc.timing.adapt import AdaptationRule

    root = synthesize_event_corpus(tmp_path / "c", (32, 12, 12), seed=2)
    (root / "metadata" / "test_strong.tsv").unlink()
    import soxr

    for path in (root / "audio").rglob("*.wav"):  # 22.05 kHz stereo copies in place
        audio, rate = sf.read(path)
        resampled = soxr.resample(audio, rate, 22050)
        sf.write(path, np.stack([resampled, 0.5 * resampled], axis=1), 22050)
    torch.manual_seed(0)
    config = ModelConfig(n_filters=4, dimension=16, lstm=1)
    export_model(tmp_path / "codec", "model_best", CodecModel.from_config(config).eval(), config)
    # Negative margins: the rule always triggers, so the adaptation path runs on this codec.
    # The scratch baseline must learn enough to pass its gate (clip mAP above chance), else no decision.
    settings = replace(
        FAST,
        rule=AdaptationRule(clip_margin=-1.0, boundary_margin=-1.0),
        weak=replace(FAST.weak, max_epochs=12),
        run=replace(FAST.run, max_clips=None),
    )
    out = tmp_path / "run"
    report = run_workflow(root, encoder=tmp_path / "codec", out=out, settings=settings, log=lambda line: None)
    assert report["boundaries"]["available"] is False and "no strong labels" in report["boundaries"]["reason"]
    assert report["probe"]["encoder"]["kind"] == "codec"
    assert report["probe"]["encoder"]["frame_rate"] == pytest.approx(75.0)
    assert "22050 Hz, 2 ch" in report["data"]["channel_policy"]
    # Adaptation runs only on a scratch baseline that passed its sanity gate (no detection gate
    # without strong test labels); its post-processing and training are stated.
    assert report["probe"]["gates"]["scratch"]["passed"] and report["adaptation"]["no_decision"] is None
    assert report["adaptation"]["triggered"] and report["adaptation"]["ran"]
    assert report["decision"]["path"] in ("adapted", "scratch")
    assert {"threshold", "basis"} <= set(report["adaptation"]["postprocessing"])
    assert report["adaptation"]["training"]["epochs_run"] >= 1
    assert "StreamableLSTM" in report["adaptation"]["top_block"]
    assert (out / "06_adapt/adapted/model.safetensors").is_file()
    assert report["next_change"]["text"].startswith("Add strong labels")
    shutil.rmtree(out)


@pytest.mark.slow
def test_a_learnable_corpus_reaches_a_decision(tmp_path):
    """The counterpart of the shuffled-labels run: the same pipeline on labels that follow the
    audio learns enough to pass every gate and decide (frozen, adapted or scratch), with early
    stopping ending the trainings."""
    root = synthesize_event_corpus(tmp_path / "c", (96, 32, 32), seed=4)
    settings = resolve_settings(
        fast=True,
        overrides=[
            "weak.max_epochs=30",
            "weak.patience=4",
            "run.max_clips=none",
            "probe.max_epochs=40",
            "probe.patience=6",
            "run.workers=2",
        ],
    )
    report = run_workflow(root, out=tmp_path / "run", settings=settings, log=lambda line: None)
    assert report["probe"]["gates"]["scratch"]["passed"], report["probe"]["gates"]["scratch"]
    assert report["decision"]["path"] in ("frozen", "adapted", "scratch"), report["decision"]
    assert report["pooling"]["decision"] != "none"
    chosen = report["boundaries"]["per_rule"][report["pooling"]["chosen"]]
    assert chosen["point"]["clip_map"] > report["boundaries"]["gates"][report["pooling"]["chosen"]]["chance_map"]
    assert any(item["stopped"] == "patience" for item in report["pooling"]["trained"].values())
