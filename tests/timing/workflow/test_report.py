"""The note's decision rules and assembly (audioenc.timing.workflow.report), on constructed inputs.

Every expected choice below follows from the rule's statement applied by hand to the numbers
given; build_report is fed hand-made typed step results whose artifact files are created here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from audioenc.audio.formats import Event, EventSplit, Issue
from audioenc.timing.adapt import AdaptationTrigger, AdaptationVerdict
from audioenc.timing.bootstrap import BootstrapCI
from audioenc.timing.boundaries import BoundarySummary, CollarF1
from audioenc.timing.evaluation import BoundaryEvidence, ClipMetrics, Evaluation
from audioenc.timing.fitting import TrainingHistory
from audioenc.timing.weak import CRNNConfig
from audioenc.timing.workflow.context import RunInfo
from audioenc.timing.workflow.data import WorkflowData
from audioenc.timing.workflow.report import (
    Decision,
    NextChange,
    build_report,
    decide_path,
    headline_text,
    next_change,
    render_markdown,
    write_report,
)
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
from audioenc.timing.workflow.settings import WorkflowSettings
from audioenc.timing.workflow.steps.step4_boundaries import find_disagreements

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
    adapted = decide_path(AdaptationOutcome("rule", _trigger(short_on=("clip_map",)), top_block="GRU",
                                            verdict=AdaptationVerdict(True, "gain")))
    assert adapted.path == "adapted"
    not_enough = decide_path(AdaptationOutcome("rule", _trigger(short_on=("clip_map",)), top_block="GRU",
                                               verdict=AdaptationVerdict(False, "small")))
    assert not_enough.path == "scratch" and "small" in not_enough.statement
    assert not_enough.to_json() == {"path": "scratch", "statement": not_enough.statement}


# --------------------------------------------------------------------------- a hand-made run


RULES = ("mean", "max", "linear_softmax", "exp_softmax", "attention", "autopool")
CLASSES = ("a", "b")
DROPPED_FILE = "/data/metadata/test_strong.tsv"

ARTIFACTS = {
    "data": ("00_data/data.json", "00_data/dropped.tsv"),
    "pooling": ("01_pooling/clip_metrics.tsv", "01_pooling/clip_metrics.json", "01_pooling/pooled_levels.png"),
    "frames": ("02_frames/frame_scores.png", "02_frames/frame_view.json"),
    "weak": ("03_weak/training.json", "03_weak/training_curves.png"),
    "boundaries": ("04_boundaries/boundary_metrics.tsv", "04_boundaries/boundary_metrics.json",
                   "04_boundaries/event_errors.tsv", "04_boundaries/around_boundaries.png"),
    "probe": ("05_probe/comparison.json", "05_probe/comparison.tsv"),
    "adaptation": ("06_adapt/adaptation.json",),
}


def _ci(value: float) -> BootstrapCI:
    return BootstrapCI(value, value - 0.05, value + 0.05, 0.95, 100)


def _summary(events: int = 10, detected: int = 9, onset: float = 0.15) -> BoundarySummary:
    return BoundarySummary(events=events, detected=detected, median_abs_onset_error=onset, median_abs_offset_error=0.3,
                           median_onset_error=0.05, median_offset_error=-0.1, onset_within=0.6, offset_within=0.4,
                           tolerance=0.2)


def _evaluation(clip_map: float, collar: float, summary: BoundarySummary | None = None) -> Evaluation:
    point = {"clip_map": clip_map, "clip_accuracy": 0.8, "onset_within": 0.5, "offset_within": 0.4,
             "median_abs_onset": 0.2, "collar_f1": collar, "psds1": 0.3, "psds2": 0.5}
    evidence = BoundaryEvidence(True, None, 3, summary or _summary(),
                                CollarF1(collar, collar, collar, collar, {"b": collar}, 0.5, ()), 0.3, 0.5)
    return Evaluation(point, {name: _ci(value) for name, value in point.items()}, evidence)


def _clip(value: float) -> ClipMetrics:
    return ClipMetrics(map=value, per_class_ap={"a": value, "b": value}, accuracy=0.7, clips=4, threshold=0.5)


def _split(name: str, clips: int) -> EventSplit:
    files = [f"{name}_{i}.wav" for i in range(clips)]
    strong = {f: ([Event(1.0, 2.0, CLASSES[i % 2])] if i % 2 == 0 or i < 2 else []) for i, f in enumerate(files)}
    return EventSplit(name=name, audio_dir=Path("/data/audio") / name, files=files, durations=dict.fromkeys(files, 10.0),
                      weak={f: tuple(sorted({e.label for e in events})) for f, events in strong.items()},
                      strong=strong, classes=CLASSES)


def _results(tmp_path: Path) -> StepResults:
    """Every step's typed result as the workflow records it, with its artifact files created."""
    for paths in ARTIFACTS.values():
        for path in paths:
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text("x")
    splits = {"train": _split("train", 10), "validation": _split("validation", 4), "test": _split("test", 4)}
    issue = Issue(DROPPED_FILE, 7, f"{DROPPED_FILE}:7: unknown class 'trumpet' | odd", "dropped")
    corpus = WorkflowData(root=Path("/data"), splits=splits, classes=CLASSES, features={}, issues=[issue], notes=[],
                          audio_formats={"24000 Hz, 1 ch": 18})
    data = DataSummary(corpus, {name: SplitSummary(len(s.files), len(s.positive_files()), True, str(s.audio_dir),
                                                   10.0 * len(s.files)) for name, s in splits.items()},
                       "downmixed to mono", ARTIFACTS["data"])
    pooling = PoolingComparison({rule: {"validation": _clip(0.6), "test": _clip(0.5 + 0.01 * i)}
                                 for i, rule in enumerate(RULES)}, "attention", {"a": 1.0, "b": 1.0}, ARTIFACTS["pooling"])
    frames = FrameView(True, None, inside_mean=0.6, outside_mean=0.2, absent_class_mean=0.1, peak_inside=5,
                       positive_pairs=8, sample_clips=("test_0.wav",), artifacts=ARTIFACTS["frames"])
    weak = WeakTraining(CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8), epochs=8, batch_size=16,
                        learning_rate=3e-3, seed=0, train_clips=tuple(splits["train"].files),
                        rules={rule: RuleTraining(1.0, TrainingHistory(train_loss=[1.0], best_epoch=0), 25.0, _clip(0.6),
                                                  _clip(0.7)) for rule in RULES},
                        artifacts=ARTIFACTS["weak"])
    # Onset error 0.1 s for the first rule, + 0.01 s per rule; clip mAP falls, collar F1 rises.
    per_rule = {rule: _evaluation(0.8 - 0.01 * i, 0.2 + 0.05 * i, _summary(onset=0.1 + 0.01 * i))
                for i, rule in enumerate(RULES)}
    selection = PoolingChoice("linear_softmax", "validation collar F1 0.450", "the rule", ("linear_softmax",),
                              {rule: dict(per_rule[rule].point) for rule in RULES})
    boundaries = BoundaryInspection(True, None, 3, per_rule, selection,
                                    tuple(find_disagreements({rule: per_rule[rule].point for rule in RULES})),
                                    ARTIFACTS["boundaries"])
    encoder = EncoderInfo({"kind": "weak_crnn", "source": "/somewhere", "sample_rate": 24000, "embedding_size": 64,
                           "channel_policy": "mono"}, trained_here=True, frame_rate=25.0, embedding_seconds=1.0,
                          grid_is_encoder_frames=True, trained_on_classes=("a",), seconds=2.0)
    probe = ProbeComparison(encoder, "mono", ("b",), "linear_softmax", ("held-out classes",), True,
                            frozen=_evaluation(0.80, 0.30), scratch=_evaluation(0.82, 0.45),
                            difference={name: _ci(-0.1) for name in _evaluation(0, 0).point},
                            artifacts=ARTIFACTS["probe"])
    adaptation = AdaptationOutcome(
        "Adapt only when ...",
        AdaptationTrigger(True, ("collar_f1",), {"clip_map": 0.02, "collar_f1": 0.15},
                          "close on clip, behind on boundaries"),
        top_block="GRU", verdict=AdaptationVerdict(True, "collar_f1 gain +0.100"), adapted=_evaluation(0.81, 0.40),
        gain_over_frozen={"collar_f1": _ci(0.1)}, artifacts=ARTIFACTS["adaptation"])
    return StepResults(data, pooling, frames, weak, boundaries, probe, adaptation)


def _run(tmp_path: Path) -> RunInfo:
    return RunInfo(out=tmp_path, data=Path("/data"), encoder=None, seed=0, fast=False, settings=WorkflowSettings(),
                   step_seconds={"0_data": 1.0}, wall_seconds=300.0)


def _not_ran(adaptation: AdaptationOutcome, **changes) -> AdaptationOutcome:
    return replace(adaptation, top_block=None, verdict=None, adapted=None, gain_over_frozen=None, **changes)


def test_build_report_claims_reference_existing_artifacts(tmp_path):
    report = build_report(_results(tmp_path), _run(tmp_path), tmp_path)
    assert set(report) == {"version", "headline", "run", "data", "pooling", "frames", "boundaries", "probe", "adaptation",
                           "decision", "next_change", "dropped", "claims"}
    json.dumps(report, allow_nan=False)  # plain JSON: no dataclass, path or non-finite number left
    assert report["pooling"]["chosen"] == "linear_softmax"
    assert report["decision"]["path"] == "adapted"
    assert report["dropped"] == [{"file": DROPPED_FILE, "line": 7, "action": "dropped",
                                  "message": f"{DROPPED_FILE}:7: unknown class 'trumpet' | odd"}]
    for claim in report["claims"]:
        assert claim["artifacts"] and all((tmp_path / path).is_file() for path in claim["artifacts"]), claim["id"]
    json_path, md_path = write_report(report, tmp_path)
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
    assert f"| `{DROPPED_FILE}` | 7 | dropped |" in markdown
    assert "trumpet' \\| odd" in markdown  # a pipe in a message cannot break the table
    assert "linear_softmax (chosen)" in markdown
    assert "train 10 clips, validation 4 clips, test 4 clips" in markdown
    text = headline_text(report)
    assert "frozen + probe: clip mAP 0.800 [0.750 to 0.850]" in text
    assert "pooling chosen: linear_softmax; collar F1 0.300" in text
    assert "decision: adapted" in text


def test_build_report_refuses_claims_without_artifacts(tmp_path):
    results = _results(tmp_path)
    (tmp_path / "05_probe/comparison.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="comparison.tsv"):
        build_report(results, _run(tmp_path), tmp_path)


def test_next_change_cases(tmp_path):
    results = _results(tmp_path)
    change = next_change(results)
    assert isinstance(change, NextChange)
    assert change.text.startswith("Rerun with a second seed")  # adaptation justified
    adaptation, boundaries = results.adaptation, results.boundaries
    not_justified = replace(results, adaptation=replace(adaptation, verdict=AdaptationVerdict(False, "small")))
    assert "temporal context" in next_change(not_justified).text
    unavailable = replace(results, adaptation=_not_ran(adaptation, unavailable="HEAR module"))
    change = next_change(unavailable)
    assert "top block trainable" in change.text and change.because == "HEAR module"
    frozen_ok = replace(results, adaptation=_not_ran(adaptation, trigger=replace(adaptation.trigger, triggered=False,
                                                                                 short_on=())))
    assert next_change(frozen_ok).text.startswith("Keep the frozen encoder")
    chosen = boundaries.per_rule["linear_softmax"]
    missing_rule = replace(chosen, boundary=replace(chosen.boundary, summary=_summary(events=9, detected=3)))
    missing = replace(results, boundaries=replace(boundaries, per_rule={**boundaries.per_rule,
                                                                        "linear_softmax": missing_rule}))
    change = next_change(missing)
    assert "threshold" in change.text and "6 of 9 events" in change.because
    weak_only = replace(results, boundaries=replace(boundaries, available=False, reason="no strong labels"))
    assert next_change(weak_only).text.startswith("Add strong labels")


def test_markdown_without_boundaries_or_dropped_rows(tmp_path):
    results = _results(tmp_path)
    reason = "the test split has no strong labels"
    data = results.data
    results.data = replace(data, corpus=replace(data.corpus, issues=[]))
    unavailable = {rule: Evaluation({"clip_map": item.point["clip_map"], "clip_accuracy": 0.8},
                                    {"clip_map": _ci(item.point["clip_map"])}, BoundaryEvidence(False, reason))
                   for rule, item in results.boundaries.per_rule.items()}
    results.boundaries = replace(results.boundaries, available=False, reason=reason, positives=0,
                                 per_rule=unavailable, disagreements=())
    report = build_report(results, _run(tmp_path), tmp_path)
    assert report["dropped"] == []
    assert report["headline"]["median_abs_onset_s"] == dict.fromkeys(RULES)  # no summary: no onset error
    markdown = render_markdown(report)
    assert f"Boundary inspection was not possible: {reason}" in markdown
    assert "Nothing was dropped" in markdown
    assert "Clip and boundary metrics side by side" not in markdown
