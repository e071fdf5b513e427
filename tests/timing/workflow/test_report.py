"""The note's decision rules and assembly (audioenc.timing.workflow.report), on constructed inputs.

Every expected choice below follows from the rule's statement applied by hand to the numbers
given; build_note is fed hand-made typed step results whose artifact files are created here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from audioenc.audio.formats import Event, EventSplit, Issue
from audioenc.core.bootstrap import BootstrapCI
from audioenc.timing.adapt import AdaptationTrigger, AdaptationVerdict
from audioenc.timing.boundaries import BoundarySummary, CollarF1
from audioenc.timing.evaluation import BoundaryEvidence, ClipMetrics, Evaluation
from audioenc.timing.fitting import TrainingHistory
from audioenc.timing.postprocess import PostProcessing
from audioenc.timing.weak import CRNNConfig
from audioenc.timing.workflow.context import RunInfo
from audioenc.timing.workflow.data import WorkflowData
from audioenc.timing.workflow.gates import SanityCheck, check_learned
from audioenc.timing.workflow.report import build_note, headline_text, write_note
from audioenc.timing.workflow.results import (
    AdaptationOutcome,
    BoundaryInspection,
    DataSummary,
    EncoderInfo,
    FrameView,
    PoolingChoice,
    PoolingComparison,
    ProbeComparison,
    RuleTraining,
    SplitSummary,
    StepResults,
    WeakTraining,
)
from audioenc.timing.workflow.sections import Claim, ReportSection
from audioenc.timing.workflow.settings import TrainingBudget, WorkflowSettings
from audioenc.timing.workflow.steps import STEPS
from audioenc.timing.workflow.steps.step4_boundaries import find_disagreements
from audioenc.timing.workflow.steps.step6_adapt import Decision, NextChange, decide_path, next_change

# =========================================================================== decide_path


def _trigger(triggered: bool = True, short_on: tuple[str, ...] = ("collar_f1",)) -> AdaptationTrigger:
    reason = "behind" if triggered else "within margins"
    return AdaptationTrigger(triggered, short_on if triggered else (), {"clip_map": 0.02, "collar_f1": 0.15}, reason)


def test_decide_path():
    # Not stopping short: keep the frozen encoder (not the stronger model).
    frozen = decide_path(AdaptationOutcome("rule", _trigger(False)))
    assert isinstance(frozen, Decision)
    assert frozen.path == "frozen" and "within margins" in frozen.statement
    unavailable = decide_path(AdaptationOutcome("rule", _trigger(short_on=("collar_f1",)), unavailable="HEAR only"))
    assert unavailable.path == "scratch" and "HEAR only" in unavailable.statement
    assert "collar_f1" in unavailable.statement
    adapted = decide_path(
        AdaptationOutcome(
            "rule", _trigger(short_on=("clip_map",)), top_block="GRU", verdict=AdaptationVerdict(True, "gain")
        )
    )
    assert adapted.path == "adapted"
    not_enough = decide_path(
        AdaptationOutcome(
            "rule", _trigger(short_on=("clip_map",)), top_block="GRU", verdict=AdaptationVerdict(False, "small")
        )
    )
    assert not_enough.path == "scratch" and "small" in not_enough.statement
    assert not_enough.to_json() == {"path": "scratch", "statement": not_enough.statement}
    # A failed sanity gate (no_decision) overrides every other case: no path is recommended.
    reason = "no decision: the scratch baseline learned nothing the comparison could rest on (the gate)"
    for trigger in (_trigger(False), _trigger(True)):
        none = decide_path(AdaptationOutcome("rule", trigger, no_decision=reason))
        assert none == Decision("none", reason)
    assert (
        decide_path(
            AdaptationOutcome(
                "rule",
                _trigger(short_on=("clip_map",)),
                top_block="GRU",
                verdict=AdaptationVerdict(True, "gain"),
                no_decision=reason,
            )
        ).path
        == "none"
    )


# --------------------------------------------------------------------------- a hand-made run


RULES = ("mean", "max", "linear_softmax", "exp_softmax", "attention", "autopool")
CLASSES = ("a", "b")
DROPPED_FILE = "/data/metadata/test_strong.tsv"

ARTIFACTS = {
    "data": ("00_data/data.json", "00_data/dropped.tsv"),
    "pooling": ("01_pooling/clip_metrics.tsv", "01_pooling/clip_metrics.json", "01_pooling/pooled_levels.png"),
    "frames": ("02_frames/frame_scores.png", "02_frames/frame_view.json"),
    "weak": ("03_weak/training.json", "03_weak/training_curves.png"),
    "boundaries": (
        "04_boundaries/boundary_metrics.tsv",
        "04_boundaries/boundary_metrics.json",
        "04_boundaries/event_errors.tsv",
        "04_boundaries/around_boundaries.png",
    ),
    "probe": ("05_probe/comparison.json", "05_probe/comparison.tsv", "05_probe/training_curves.png"),
    "adaptation": ("06_adapt/adaptation.json",),
}


def _ci(value: float) -> BootstrapCI:
    return BootstrapCI(value, value - 0.05, value + 0.05, 0.95, 100)


def _summary(events: int = 10, detected: int = 9, onset: float = 0.15) -> BoundarySummary:
    return BoundarySummary(
        events=events,
        detected=detected,
        median_abs_onset_error=onset,
        median_abs_offset_error=0.3,
        median_onset_error=0.05,
        median_offset_error=-0.1,
        onset_within=0.6,
        offset_within=0.4,
        tolerance=0.2,
    )


def _evaluation(clip_map: float, collar: float, summary: BoundarySummary | None = None) -> Evaluation:
    point = {
        "clip_map": clip_map,
        "clip_accuracy": 0.8,
        "onset_within": 0.5,
        "offset_within": 0.4,
        "median_abs_onset": 0.2,
        "collar_f1": collar,
        "psds1": 0.3,
        "psds2": 0.5,
    }
    evidence = BoundaryEvidence(
        True, None, 3, summary or _summary(), CollarF1(collar, collar, collar, collar, {"b": collar}, 0.5, ()), 0.3, 0.5
    )
    return Evaluation(point, {name: _ci(value) for name, value in point.items()}, evidence)


def _passed(system: str) -> SanityCheck:
    return SanityCheck(system, True, (), "", 0.5)


def _failed(system: str) -> SanityCheck:
    """A system whose clip mAP is at chance and that detects nothing (the real gate applied)."""
    return check_learned(system, _evaluation(0.25, 0.0, _summary(events=10, detected=0)), 0.25, 0.1)


# Post-processing each system uses (chosen on validation): window 7 frames, threshold 0.4.
CHOSEN_POSTPROCESSING = PostProcessing(0.24, 7, 0.4, "chosen on validation: the best collar F1 of 28 pairs", 0.5)
# Training histories: the CRNNs stop by patience; the probe and scratch run to their limits while improving.
CRNN_HISTORY = TrainingHistory(
    train_loss=[1.0, 0.9, 0.8], valid_loss=[0.9, 0.8, 0.85], best_epoch=1, stopped="patience"
)
PROBE_HISTORIES = {
    "frozen + probe": TrainingHistory(valid_loss=[0.7, 0.6], best_epoch=1),
    "scratch": TrainingHistory(valid_loss=[0.7, 0.6, 0.5], best_epoch=2, stopped="budget"),
    "encoder (CRNN, other classes)": TrainingHistory(
        valid_loss=[0.5, 0.4, 0.45, 0.46], best_epoch=1, stopped="patience"
    ),
}


def _clip(value: float) -> ClipMetrics:
    return ClipMetrics(map=value, per_class_ap={"a": value, "b": value}, accuracy=0.7, clips=4, threshold=0.5)


def _split(name: str, clips: int) -> EventSplit:
    files = [f"{name}_{i}.wav" for i in range(clips)]
    strong = {f: ([Event(1.0, 2.0, CLASSES[i % 2])] if i % 2 == 0 or i < 2 else []) for i, f in enumerate(files)}
    return EventSplit(
        name=name,
        audio_dir=Path("/data/audio") / name,
        files=files,
        durations=dict.fromkeys(files, 10.0),
        weak={f: tuple(sorted({e.label for e in events})) for f, events in strong.items()},
        strong=strong,
        classes=CLASSES,
    )


def _results(tmp_path: Path) -> StepResults:
    """Every step's typed result as the workflow records it, with its artifact files created."""
    for paths in ARTIFACTS.values():
        for path in paths:
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text("x")
    splits = {"train": _split("train", 10), "validation": _split("validation", 4), "test": _split("test", 4)}
    issue = Issue(DROPPED_FILE, 7, f"{DROPPED_FILE}:7: unknown class 'trumpet' | odd", "dropped")
    corpus = WorkflowData(
        root=Path("/data"),
        splits=splits,
        classes=CLASSES,
        features={},
        issues=[issue],
        notes=[],
        audio_formats={"24000 Hz, 1 ch": 18},
    )
    data = DataSummary(
        corpus,
        {
            name: SplitSummary(len(s.files), len(s.positive_files()), True, str(s.audio_dir), 10.0 * len(s.files))
            for name, s in splits.items()
        },
        "downmixed to mono",
        ARTIFACTS["data"],
    )
    pooling = PoolingComparison(
        {rule: {"validation": _clip(0.6), "test": _clip(0.5 + 0.01 * i)} for i, rule in enumerate(RULES)},
        "attention",
        {"a": 1.0, "b": 1.0},
        ARTIFACTS["pooling"],
    )
    frames = FrameView(
        True,
        None,
        inside_mean=0.6,
        outside_mean=0.2,
        absent_class_mean=0.1,
        peak_inside=5,
        positive_pairs=8,
        sample_clips=("test_0.wav",),
        artifacts=ARTIFACTS["frames"],
    )
    weak = WeakTraining(
        CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8),
        budget=TrainingBudget(max_epochs=8, patience=6, batch_size=16, learning_rate=3e-3),
        seed=0,
        train_clips=tuple(splits["train"].files),
        rules={rule: RuleTraining(1.0, CRNN_HISTORY, 25.0, _clip(0.6), _clip(0.7)) for rule in RULES},
        artifacts=ARTIFACTS["weak"],
    )
    # Onset error 0.1 s for the first rule, + 0.01 s per rule; clip mAP falls, collar F1 rises.
    per_rule = {
        rule: _evaluation(0.8 - 0.01 * i, 0.2 + 0.05 * i, _summary(onset=0.1 + 0.01 * i))
        for i, rule in enumerate(RULES)
    }
    selection = PoolingChoice(
        "linear_softmax",
        "validation collar F1 0.450",
        "the rule",
        ("linear_softmax",),
        {rule: dict(per_rule[rule].point) for rule in RULES},
    )
    boundaries = BoundaryInspection(
        True,
        None,
        3,
        per_rule,
        selection,
        tuple(find_disagreements({rule: per_rule[rule].point for rule in RULES})),
        ARTIFACTS["boundaries"],
        dict.fromkeys(RULES, CHOSEN_POSTPROCESSING),
        {rule: _passed(f"the {rule} CRNN") for rule in RULES},
        True,
    )
    encoder = EncoderInfo(
        {
            "kind": "weak_crnn",
            "source": "/somewhere",
            "sample_rate": 24000,
            "embedding_size": 64,
            "channel_policy": "mono",
        },
        trained_here=True,
        frame_rate=25.0,
        embedding_seconds=1.0,
        grid_is_encoder_frames=True,
        trained_on_classes=("a",),
        seconds=2.0,
    )
    probe = ProbeComparison(
        encoder,
        "mono",
        ("b",),
        "linear_softmax",
        ("held-out classes",),
        True,
        frozen=_evaluation(0.80, 0.30),
        scratch=_evaluation(0.82, 0.45),
        difference={name: _ci(-0.1) for name in _evaluation(0, 0).point},
        artifacts=ARTIFACTS["probe"],
        probe_description="a per-frame probe (16 units)",
        postprocessing={
            "frozen + probe": CHOSEN_POSTPROCESSING,
            "scratch": replace(CHOSEN_POSTPROCESSING, window_frames=1, window_seconds=0.0, threshold=0.3),
        },
        gates={"frozen + probe": _passed("the frozen + probe path"), "scratch": _passed("the scratch baseline")},
        histories=dict(PROBE_HISTORIES),
    )
    adaptation = AdaptationOutcome(
        "Adapt only when ...",
        AdaptationTrigger(
            True, ("collar_f1",), {"clip_map": 0.02, "collar_f1": 0.15}, "close on clip, behind on boundaries"
        ),
        top_block="GRU",
        verdict=AdaptationVerdict(True, "collar_f1 gain +0.100"),
        adapted=_evaluation(0.81, 0.40),
        gain_over_frozen={"collar_f1": _ci(0.1)},
        artifacts=ARTIFACTS["adaptation"],
    )
    return StepResults(
        data=data, pooling=pooling, frames=frames, weak=weak, boundaries=boundaries, probe=probe, adaptation=adaptation
    )


def _with(results: StepResults, **changes) -> StepResults:
    """``results`` with some steps' results replaced."""
    return StepResults({**results, **changes})


def _run(tmp_path: Path) -> RunInfo:
    return RunInfo(
        out=tmp_path,
        data=Path("/data"),
        encoder=None,
        seed=0,
        fast=False,
        settings=WorkflowSettings(),
        step_seconds={"0_data": 1.0},
        wall_seconds=300.0,
    )


def _not_ran(adaptation: AdaptationOutcome, **changes) -> AdaptationOutcome:
    return replace(adaptation, top_block=None, verdict=None, adapted=None, gain_over_frozen=None, **changes)


def test_build_note_claims_reference_existing_artifacts(tmp_path):
    note = build_note(_results(tmp_path), _run(tmp_path), tmp_path)
    report = note.report
    assert set(report) == {
        "version",
        "headline",
        "run",
        "data",
        "pooling",
        "frames",
        "boundaries",
        "probe",
        "adaptation",
        "decision",
        "next_change",
        "dropped",
        "claims",
    }
    json.dumps(report, allow_nan=False)  # plain JSON: no dataclass, path or non-finite number left
    markdown = note.markdown
    missing = [claim["id"] for claim in report["claims"] if claim["text"] not in markdown]
    assert not missing, f"claims left out of report.md: {missing}"
    assert report["pooling"]["chosen"] == "linear_softmax"
    assert report["pooling"]["decision"] == "linear_softmax" and report["pooling"]["no_decision"] is None
    assert report["decision"]["path"] == "adapted"
    # Steps 4 and 5 carry their post-processing and gates into the report.
    assert report["boundaries"]["decided"] is True
    assert report["boundaries"]["postprocessing"]["linear_softmax"] == CHOSEN_POSTPROCESSING.to_json()
    assert report["boundaries"]["gates"]["max"] == _passed("the max CRNN").to_json()
    assert report["probe"]["probe_description"] == "a per-frame probe (16 units)"
    assert report["probe"]["postprocessing"]["scratch"]["threshold"] == 0.3
    assert set(report["probe"]["gates"]) == {"frozen + probe", "scratch"}
    assert report["probe"]["training"]["scratch"] == {
        "epochs_run": 3,
        "best_epoch": 2,
        "stopped": "budget",
        "still_improving": True,
    }
    assert report["dropped"] == [
        {
            "file": DROPPED_FILE,
            "line": 7,
            "action": "dropped",
            "message": f"{DROPPED_FILE}:7: unknown class 'trumpet' | odd",
        }
    ]
    for claim in report["claims"]:
        assert claim["artifacts"] and all((tmp_path / path).is_file() for path in claim["artifacts"]), claim["id"]
    json_path, md_path = write_note(note, tmp_path)
    headline = json.loads(json_path.read_text())["headline"]
    assert headline["pooling_chosen"] == "linear_softmax"
    assert headline["median_abs_onset_s"] == pytest.approx({rule: 0.1 + 0.01 * i for i, rule in enumerate(RULES)})
    assert headline["collar_f1"] == pytest.approx(0.30)  # linear_softmax: 0.2 + 0.05 * 2
    assert headline["frozen"]["clip_map"] == pytest.approx(0.80)
    assert headline["scratch"]["collar_f1_ci"]["low"] == pytest.approx(0.40)
    assert headline["encoder"] == "05_probe/encoder"  # trained here
    assert headline["adaptation_triggered"] is True and headline["adaptation_ran"] is True
    assert headline["decision"] == "adapted" and headline["wall_seconds"] == 300.0
    markdown = md_path.read_text()
    assert "Chosen pooling rule: linear_softmax" in markdown
    assert "Left out by the sanity gates" not in markdown  # every rule passed
    claims = {claim["id"]: claim["text"] for claim in report["claims"]}
    # The boundary claim states the post-processing the numbers were measured after.
    assert "median filter 7 frames (0.24 s), threshold 0.4, chosen on validation" in claims["boundaries"]
    assert (
        "frozen + probe median filter 7 frames (0.24 s), threshold 0.4" in claims["probe_vs_scratch"]
        and "scratch no median filter, threshold 0.3" in claims["probe_vs_scratch"]
    )
    assert "Probe: a per-frame probe (16 units)." in claims["probe_vs_scratch"]
    assert "Sanity gates failed" not in claims["probe_vs_scratch"]
    assert "up to 8 epochs, patience 6" in claims["weak_training"]
    assert f"| `{DROPPED_FILE}` | 7 | dropped |" in markdown
    assert "trumpet' \\| odd" in markdown  # a pipe in a message cannot break the table
    assert "linear_softmax (chosen)" in markdown
    assert "train 10 clips, validation 4 clips, test 4 clips" in markdown
    text = headline_text(report)
    assert "frozen + probe: clip mAP 0.800 [0.750 to 0.850]" in text
    assert "pooling chosen: linear_softmax; collar F1 0.300" in text
    assert "decision: adapted" in text


def test_build_note_refuses_claims_without_artifacts(tmp_path):
    results = _results(tmp_path)
    (tmp_path / "05_probe/comparison.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="comparison.tsv"):
        build_note(results, _run(tmp_path), tmp_path)


def test_next_change_cases(tmp_path):
    results = _results(tmp_path)
    change = next_change(results)
    assert isinstance(change, NextChange)
    assert change.text.startswith("Rerun with a second seed")  # adaptation justified
    adaptation, boundaries = results["adaptation"], results["boundaries"]
    not_justified = _with(results, adaptation=replace(adaptation, verdict=AdaptationVerdict(False, "small")))
    assert "temporal context" in next_change(not_justified).text
    unavailable = _with(results, adaptation=_not_ran(adaptation, unavailable="HEAR module"))
    change = next_change(unavailable)
    assert "top block trainable" in change.text and change.because == "HEAR module"
    frozen_ok = _with(
        results, adaptation=_not_ran(adaptation, trigger=replace(adaptation.trigger, triggered=False, short_on=()))
    )
    assert next_change(frozen_ok).text.startswith("Keep the frozen encoder")
    chosen = boundaries.per_rule["linear_softmax"]
    missing_rule = replace(chosen, boundary=replace(chosen.boundary, summary=_summary(events=9, detected=3)))
    missing = _with(
        results, boundaries=replace(boundaries, per_rule={**boundaries.per_rule, "linear_softmax": missing_rule})
    )
    change = next_change(missing)
    # The threshold named is the one the chosen rule's post-processing used (0.4), not a fixed 0.5.
    assert "postprocess.thresholds" in change.text and "linear_softmax CRNN used 0.4" in change.text
    assert "6 of 9 events" in change.because and "no frame above 0.4" in change.because
    weak_only = _with(results, boundaries=replace(boundaries, available=False, reason="no strong labels"))
    assert next_change(weak_only).text.startswith("Add strong labels")


def test_markdown_without_boundaries_or_dropped_rows(tmp_path):
    results = _results(tmp_path)
    reason = "the test split has no strong labels"
    data = results["data"]
    results["data"] = replace(data, corpus=replace(data.corpus, issues=[]))
    unavailable = {
        rule: Evaluation(
            {"clip_map": item.point["clip_map"], "clip_accuracy": 0.8},
            {"clip_map": _ci(item.point["clip_map"])},
            BoundaryEvidence(False, reason),
        )
        for rule, item in results["boundaries"].per_rule.items()
    }
    results["boundaries"] = replace(
        results["boundaries"], available=False, reason=reason, positives=0, per_rule=unavailable, disagreements=()
    )
    note = build_note(results, _run(tmp_path), tmp_path)
    report = note.report
    assert report["dropped"] == []
    assert report["headline"]["median_abs_onset_s"] == dict.fromkeys(RULES)  # no summary: no onset error
    markdown = note.markdown
    assert f"Boundary inspection was not possible: {reason}" in markdown
    assert "Nothing was dropped" in markdown
    assert "Clip and boundary metrics side by side" not in markdown


# --------------------------------------------------------------------------- training, gates and no decision


def test_training_claim_names_every_model_and_why_it_stopped(tmp_path):
    results = _results(tmp_path)
    adapted_history = TrainingHistory(valid_loss=[0.6, 0.55], best_epoch=1)
    results["adaptation"] = replace(results["adaptation"], history=adapted_history)
    note = build_note(results, _run(tmp_path), tmp_path)
    report = note.report
    claim = next(item for item in report["claims"] if item["id"] == "training")
    text = claim["text"]
    # Every CRNN (3 epochs, best the 2nd, stopped by patience), the probe models and the adapted one.
    for rule in RULES:
        assert f"{rule} CRNN 3 epochs (best 2, patience)" in text
    assert "frozen + probe 2 epochs (best 2, max epochs)" in text
    assert "scratch 3 epochs (best 3, budget)" in text
    assert "encoder (CRNN, other classes) 4 epochs (best 2, patience)" in text
    assert "adapted 2 epochs (best 2, max epochs)" in text
    # The models stopped by the limit or budget while improving are named, and only they.
    short = text.split("while the validation loss was still falling: ")[1]
    assert short.startswith("frozen + probe, scratch, adapted — ")
    assert "CRNN" not in short and "encoder" not in short.split(" — ")[0]
    assert set(claim["artifacts"]) == {
        "03_weak/training.json",
        "03_weak/training_curves.png",
        "05_probe/training_curves.png",
    }
    assert report["adaptation"]["training"] == {
        "epochs_run": 2,
        "best_epoch": 1,
        "stopped": "max_epochs",
        "still_improving": True,
    }
    # Nothing cut short: no such sentence.
    results["probe"] = replace(results["probe"], histories={"scratch": CRNN_HISTORY})
    results["adaptation"] = replace(results["adaptation"], history=None)
    text = next(
        item for item in build_note(results, _run(tmp_path), tmp_path).report["claims"] if item["id"] == "training"
    )["text"]
    assert "still falling" not in text and "scratch 3 epochs (best 2, patience)" in text


def test_report_without_a_decision_when_the_scratch_baseline_failed_its_gate(tmp_path):
    results = _results(tmp_path)
    gate = _failed("the scratch baseline")
    assert not gate.passed and len(gate.failures) == 2  # at chance, nothing detected
    reason = f"no decision: the scratch baseline learned nothing the comparison could rest on ({gate.reason})"
    results["probe"] = replace(results["probe"], gates={**results["probe"].gates, "scratch": gate})
    results["adaptation"] = AdaptationOutcome(
        results["adaptation"].rule, results["adaptation"].trigger, no_decision=reason, artifacts=ARTIFACTS["adaptation"]
    )
    note = build_note(results, _run(tmp_path), tmp_path)
    report = note.report
    assert report["decision"] == {"path": "none", "statement": reason}
    assert report["headline"]["decision"] == "none" and report["headline"]["adaptation_ran"] is False
    assert report["adaptation"]["no_decision"] == reason and report["adaptation"]["ran"] is False
    assert "verdict" not in report["adaptation"]
    # The next change is what the failed gate advises, because of the failure.
    assert report["next_change"] == {
        "text": f"Make the scratch baseline learn first: {gate.advice}; then rerun.",
        "because": reason,
    }
    assert "train longer" in gate.advice and "postprocess.thresholds" in gate.advice
    claims = {claim["id"]: claim["text"] for claim in report["claims"]}
    assert claims["decision"] == f"Decision: none — {reason}."
    assert f"Sanity gates failed: {gate.reason}" in claims["probe_vs_scratch"]
    assert f"Outcome: {reason}." in claims["adaptation"]
    assert "chance" in reason and "detected" in reason
    json_path, md_path = write_note(note, tmp_path)
    assert json.loads(json_path.read_text())["decision"]["path"] == "none"
    assert "Decision: none — no decision: the scratch baseline" in md_path.read_text()
    assert "decision: none" in headline_text(report)


def test_report_pooling_choice_follows_the_gates(tmp_path):
    results = _results(tmp_path)
    boundaries = results["boundaries"]
    # Some rules failed their gates: the choice stands (made among the others) and names them.
    left_out = {"mean": _failed("the mean CRNN"), "max": _failed("the max CRNN")}
    results["boundaries"] = replace(boundaries, gates={**boundaries.gates, **left_out})
    note = build_note(results, _run(tmp_path), tmp_path)
    report = note.report
    claim = next(item["text"] for item in report["claims"] if item["id"] == "pooling_choice")
    assert claim.startswith("Chosen pooling rule: linear_softmax")
    assert f"Left out by the sanity gates: {left_out['mean'].reason}; {left_out['max'].reason}." in claim
    assert report["pooling"]["decision"] == "linear_softmax" and report["pooling"]["no_decision"] is None
    markdown = note.markdown
    assert "| mean | no |" in markdown and "| linear_softmax (chosen) | yes |" in markdown
    # No rule passed: no pooling decision; the rule carried on is named as provisional.
    results["boundaries"] = replace(
        boundaries, gates={rule: _failed(f"the {rule} CRNN") for rule in RULES}, decided=False
    )
    note = build_note(results, _run(tmp_path), tmp_path)
    report = note.report
    reason = results["boundaries"].gates["linear_softmax"].reason
    assert report["pooling"]["chosen"] == "linear_softmax"  # carried on to steps 5-6
    assert report["pooling"]["decision"] == "none" and report["pooling"]["no_decision"] == reason
    assert report["boundaries"]["decided"] is False
    assert all(not gate["passed"] for gate in report["boundaries"]["gates"].values())
    claim = next(item for item in report["claims"] if item["id"] == "pooling_choice")
    assert claim["text"].startswith(f"No pooling decision: no rule's CRNN passed the sanity gates ({reason})")
    assert "Chosen pooling rule" not in note.markdown
    assert all((tmp_path / path).is_file() for path in claim["artifacts"])


def test_markdown_metric_table_rows_match_its_header(tmp_path):
    markdown = build_note(_results(tmp_path), _run(tmp_path), tmp_path).markdown
    lines = markdown.split("### Clip and boundary metrics side by side")[1].strip().splitlines()[1:]
    table = []
    for line in lines:
        if not line.startswith("|"):
            if table:
                break
            continue
        table.append(line)
    assert len(table) == 2 + len(RULES)
    assert {line.count("|") for line in table} == {table[0].count("|")}


# --------------------------------------------------------------------------- the steps own their sections


def test_a_step_added_to_the_list_reaches_the_note(tmp_path):
    """The note is assembled from what the steps return: a step added to the list (and nowhere
    else) puts its claim under its heading, its JSON section, its headline entry and its table in
    the report, after the others; a claim naming a missing file is refused."""
    (tmp_path / "07_extra").mkdir()
    (tmp_path / "07_extra" / "extra.json").write_text("{}")

    def report_section(result: dict, results: StepResults) -> ReportSection:
        return ReportSection(
            json={"extra": result},
            headline={"extra_score": result["score"]},
            claims=(
                Claim(
                    "extra", f"The extra step scored {result['score']}.", ("07_extra/extra.json",), "8. An extra step"
                ),
            ),
            tables=("", "### Extra table", "", "| score |", "|---|", f"| {result['score']} |"),
        )

    extra = SimpleNamespace(
        NAME="extra", FOLDER="07_extra", TITLE="an extra step", run=None, report_section=report_section
    )
    results = _with(_results(tmp_path), extra={"score": 0.5})
    plain = build_note(results, _run(tmp_path), tmp_path)
    note = build_note(results, _run(tmp_path), tmp_path, steps=(*STEPS, extra))
    report = note.report
    assert report["extra"] == {"score": 0.5} and "extra" not in plain.report
    assert report["headline"]["extra_score"] == 0.5 and list(report["headline"])[-1] == "wall_seconds"
    ids = [claim["id"] for claim in report["claims"]]
    assert ids == [*[claim["id"] for claim in plain.report["claims"]][:-1], "extra", "dropped"]
    assert (
        "## 8. An extra step\n\n- The extra step scored 0.5.  \n  *Artifacts:* `07_extra/extra.json`" in note.markdown
    )
    assert note.markdown.index("### Extra table") < note.markdown.index("## Dropped or changed input")
    # The rest of the note is what the seven steps alone write.
    assert (
        note.markdown.replace("\n\n## 8. An extra step\n\n- " + claim_markdown(report, "extra"), "").replace(
            "\n\n### Extra table\n\n| score |\n|---|\n| 0.5 |", ""
        )
        == plain.markdown
    )
    (tmp_path / "07_extra" / "extra.json").unlink()
    with pytest.raises(FileNotFoundError, match="extra"):
        build_note(results, _run(tmp_path), tmp_path, steps=(*STEPS, extra))


def claim_markdown(report: dict, claim_id: str) -> str:
    claim = next(item for item in report["claims"] if item["id"] == claim_id)
    return Claim(claim["id"], claim["text"], tuple(claim["artifacts"])).markdown()
