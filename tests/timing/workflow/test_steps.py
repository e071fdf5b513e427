"""Each step's result type on its own: built by hand, its ``to_json()`` is the documented plain
JSON (keys, values, non-finite numbers as None); and the small measurements steps 2 and 5 make
(:func:`measure_frame_view`, :func:`held_out_classes`) on hand-computed cases. No training, no
audio: fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audioenc.audio.formats import Event, EventSplit, Issue
from audioenc.core.bootstrap import BootstrapCI
from audioenc.core.cache import CacheStats
from audioenc.timing.adapt import AdaptationTrigger, AdaptationVerdict
from audioenc.timing.boundaries import BoundarySummary
from audioenc.timing.evaluation import BoundaryEvidence, ClipMetrics, Evaluation
from audioenc.timing.fitting import Predictions, TrainingHistory
from audioenc.timing.postprocess import PostProcessing
from audioenc.timing.weak import CRNNConfig
from audioenc.timing.workflow.data import WorkflowData
from audioenc.timing.workflow.gates import SanityCheck
from audioenc.timing.workflow.results import (
    AdaptationOutcome,
    BoundaryInspection,
    DataSummary,
    EncoderInfo,
    FrameView,
    PoolingChoice,
    ProbeComparison,
    RuleTraining,
    SplitSummary,
    WeakTraining,
)
from audioenc.timing.workflow.settings import TrainingBudget
from audioenc.timing.workflow.steps.step2_frames import measure_frame_view
from audioenc.timing.workflow.steps.step5_probe import held_out_classes

INF, NAN = float("inf"), float("nan")


def strict_json(content) -> None:
    """``content`` is strict JSON (no NaN or infinity anywhere)."""
    json.dumps(content, allow_nan=False)


# --------------------------------------------------------------------------- step 0


def test_data_summary_to_json_and_dropped_rows():
    issues = [
        Issue("/c/metadata/test_strong.tsv", 7, "/c/metadata/test_strong.tsv:7: unknown class 'trumpet'"),
        Issue("/c/audio/test/x.wav", None, "/c/audio/test/x.wav: cannot be used", "dropped"),
        Issue("/c/metadata/test_strong.tsv", 9, "runs past the end", "clipped"),
    ]
    corpus = WorkflowData(
        Path("/c"),
        {},
        ("dog", "cat"),
        {},
        issues,
        ["no validation split: carved"],
        {"16000 Hz, 2 ch": 3, "24000 Hz, 1 ch": 5},
        feature_cache=CacheStats(location="/cache/arrays", hits=6, misses=2, bytes=4096),
    )
    splits = {
        "train": SplitSummary(5, 4, True, "/c/audio/train", 50.0),
        "test": SplitSummary(3, 1, False, "/c/audio/test", 30.5),
    }
    summary = DataSummary(corpus, splits, "downmixed to mono.", ("00_data/data.json", "00_data/dropped.tsv"))
    content = summary.to_json()
    assert content == {
        "root": "/c",
        "classes": ["dog", "cat"],
        "splits": {
            "train": {
                "clips": 5,
                "with_events": 4,
                "strong_labels": True,
                "audio_dir": "/c/audio/train",
                "seconds": 50.0,
            },
            "test": {
                "clips": 3,
                "with_events": 1,
                "strong_labels": False,
                "audio_dir": "/c/audio/test",
                "seconds": 30.5,
            },
        },
        "notes": ["no validation split: carved"],
        "audio_formats": {"16000 Hz, 2 ch": 3, "24000 Hz, 1 ch": 5},
        "channel_policy": "downmixed to mono.",
        "issues": 3,
        "unlabeled_clips": 0,
        "feature_cache": {"enabled": True, "clips": 8, "from_cache": 6, "bytes": 4096, "location": "/cache/arrays"},
        "artifacts": ["00_data/data.json", "00_data/dropped.tsv"],
    }
    strict_json(content)
    assert summary.dropped_json() == [
        {
            "file": "/c/metadata/test_strong.tsv",
            "line": 7,
            "action": "dropped",
            "message": "/c/metadata/test_strong.tsv:7: unknown class 'trumpet'",
        },
        {
            "file": "/c/audio/test/x.wav",
            "line": None,
            "action": "dropped",
            "message": "/c/audio/test/x.wav: cannot be used",
        },
        {"file": "/c/metadata/test_strong.tsv", "line": 9, "action": "clipped", "message": "runs past the end"},
    ]
    # The in-memory corpus stays out of the repr (and the JSON is not a view of the corpus lists).
    assert "corpus" not in repr(summary)
    content["notes"].append("changed")
    assert corpus.notes == ["no validation split: carved"]


# --------------------------------------------------------------------------- step 2


def test_frame_view_unavailable_to_json():
    view = FrameView(
        False,
        "the test split has no strong labels",
        sample_clips=("a.wav", "b.wav"),
        artifacts=("02_frames/frame_scores.png", "02_frames/frame_view.json"),
    )
    assert view.to_json() == {
        "available": False,
        "reason": "the test split has no strong labels",
        "sample_clips": ["a.wav", "b.wav"],
        "artifacts": ["02_frames/frame_scores.png", "02_frames/frame_view.json"],
    }
    assert view.measurements() == {"available": False, "reason": "the test split has no strong labels"}


def test_frame_view_available_to_json_cleans_non_finite_numbers():
    view = FrameView(
        True,
        None,
        inside_mean=0.75,
        outside_mean=INF,
        absent_class_mean=NAN,
        peak_inside=2,
        positive_pairs=3,
        sample_clips=("a.wav",),
        artifacts=("02_frames/frame_scores.png",),
    )
    content = view.to_json()
    assert content == {
        "available": True,
        "inside_mean": 0.75,
        "outside_mean": None,
        "absent_class_mean": None,
        "peak_inside": 2,
        "positive_pairs": 3,
        "sample_clips": ["a.wav"],
        "artifacts": ["02_frames/frame_scores.png"],
    }
    assert "reason" not in content
    strict_json(content)


def _split(
    strong: dict[str, list[Event]] | None, weak: dict[str, tuple[str, ...]], classes=("dog", "cat")
) -> EventSplit:
    files = sorted(weak)
    return EventSplit("test", Path("/nowhere"), files, {name: 1.0 for name in files}, weak, strong, classes)


def test_measure_frame_view_on_hand_computed_scores():
    classes = ("dog", "cat")
    # 10 frames at 10 frames/s: frame j spans [j, j+1) / 10, its middle (j + 0.5) / 10.
    # a.wav: dog in [0.2, 0.5) -> frames 2, 3, 4 (middles 0.25, 0.35, 0.45); cat absent.
    # b.wav: dog in [0.0, 0.1) and [0.8, 1.0) -> frames 0, 8, 9; cat in [0.5, 0.7) -> frames 5, 6.
    # c.wav: no event; both classes absent.
    dog_a = np.array([0.1, 0.1, 0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1])  # peak (frame 2) inside
    cat_a = np.full(10, 0.2)
    dog_b = np.array([0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.4, 0.2])  # peak (frame 6) outside
    cat_b = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.3, 0.0, 0.0, 0.0])  # peak (frame 5) inside
    c = np.array([[0.3] * 10, [0.1] * 10])
    predictions = Predictions(
        {"a.wav": np.stack([dog_a, cat_a]), "b.wav": np.stack([dog_b, cat_b]), "c.wav": c}, {}, 10.0, classes
    )
    strong = {
        "a.wav": [Event(0.2, 0.5, "dog")],
        "b.wav": [Event(0.0, 0.1, "dog"), Event(0.5, 0.7, "cat"), Event(0.8, 1.0, "dog")],
        "c.wav": [],
    }
    weak = {"a.wav": ("dog",), "b.wav": ("dog", "cat"), "c.wav": ()}
    view = measure_frame_view(predictions, _split(strong, weak), classes, ["a.wav", "c.wav"], ["02_frames/x.png"])
    assert view.available and view.reason is None
    inside = [np.mean([0.9, 0.8, 0.7]), np.mean([0.6, 0.4, 0.2]), np.mean([0.5, 0.3])]
    outside = [np.mean(dog_a[[0, 1, 5, 6, 7, 8, 9]]), np.mean(dog_b[1:8]), np.mean(cat_b[[0, 1, 2, 3, 4, 7, 8, 9]])]
    absent = [0.2, 0.3, 0.1]  # cat on a.wav, dog and cat on c.wav
    assert view.inside_mean == pytest.approx(np.mean(inside), abs=1e-12)
    assert view.outside_mean == pytest.approx(np.mean(outside), abs=1e-12)
    assert view.absent_class_mean == pytest.approx(np.mean(absent), abs=1e-12)
    assert (view.peak_inside, view.positive_pairs) == (2, 3)  # (a, dog) and (b, cat); not (b, dog)
    assert view.sample_clips == ("a.wav", "c.wav") and view.artifacts == ("02_frames/x.png",)
    content = view.to_json()
    assert content["peak_inside"] == 2 and content["inside_mean"] == pytest.approx(np.mean(inside))


def test_measure_frame_view_without_strong_labels_or_positives():
    predictions = Predictions({"a.wav": np.zeros((2, 5))}, {}, 10.0, ("dog", "cat"))
    view = measure_frame_view(predictions, _split(None, {"a.wav": ("dog",)}), ("dog", "cat"), ["a.wav"], ["p.png"])
    assert view.to_json() == {
        "available": False,
        "reason": "the test split has no strong labels",
        "sample_clips": ["a.wav"],
        "artifacts": ["p.png"],
    }
    # Strong labels but no event: measured, nothing inside, both classes absent.
    view = measure_frame_view(
        Predictions({"a.wav": np.array([[0.2] * 5, [0.4] * 5])}, {}, 10.0, ("dog", "cat")),
        _split({"a.wav": []}, {"a.wav": ()}),
        ("dog", "cat"),
    )
    assert view.available and view.inside_mean is None and view.outside_mean is None
    assert view.absent_class_mean == pytest.approx(0.3) and (view.peak_inside, view.positive_pairs) == (0, 0)
    assert view.to_json()["inside_mean"] is None


# --------------------------------------------------------------------------- step 3


def _clip_metrics(value: float) -> ClipMetrics:
    return ClipMetrics(map=value, per_class_ap={"dog": value, "cat": None}, accuracy=0.75, clips=4, threshold=0.5)


def test_rule_training_to_json_with_and_without_curves():
    history = TrainingHistory(
        train_loss=[0.9, 0.6],
        valid_loss=[0.8, NAN],
        valid_accuracy=[0.5, 0.6],
        seconds=[1.0, 1.0],
        best_epoch=0,
        pooling="max",
        seed=3,
    )
    item = RuleTraining(INF, history, 25.0, _clip_metrics(0.5), _clip_metrics(0.25))
    expected_metrics = {
        "validation": {
            "map": 0.5,
            "per_class_ap": {"dog": 0.5, "cat": None},
            "accuracy": 0.75,
            "clips": 4,
            "threshold": 0.5,
        },
        "test": {
            "map": 0.25,
            "per_class_ap": {"dog": 0.25, "cat": None},
            "accuracy": 0.75,
            "clips": 4,
            "threshold": 0.5,
        },
    }
    content = item.to_json()
    # Two epochs run, the epoch limit reached, the best the first of the last two: still improving.
    assert content == {
        "seconds": None,
        "best_epoch": 0,
        "epochs_run": 2,
        "stopped": "max_epochs",
        "still_improving": True,
        "frame_rate": 25.0,
        **expected_metrics,
    }
    assert list(content) == [
        "seconds",
        "best_epoch",
        "epochs_run",
        "stopped",
        "still_improving",
        "frame_rate",
        "validation",
        "test",
    ]
    curves = item.to_json(curves=True)
    assert curves == {**content, "valid_loss": [0.8, None], "train_loss": [0.9, 0.6]}
    strict_json(content)
    strict_json(curves)


@pytest.mark.parametrize(
    ("valid_loss", "best_epoch", "stopped", "still_improving"),
    [
        ([0.9, 0.8, 0.7, 0.6], 3, "max_epochs", True),  # best at the last epoch, cut by the epoch limit
        ([0.9, 0.8, 0.7, 0.75], 2, "budget", True),  # best among the last two, cut by the budget
        ([0.9, 0.8, 0.85, 0.86], 1, "max_epochs", False),  # best two epochs before the end: levelled off
        ([0.9, 0.8, 0.85, 0.86], 1, "patience", False),  # stopped by patience: never "still improving"
        ([0.7, 0.6], 1, "patience", False),
    ],
)
def test_rule_training_states_how_training_ended(valid_loss, best_epoch, stopped, still_improving):
    history = TrainingHistory(
        train_loss=[1.0] * len(valid_loss), valid_loss=valid_loss, best_epoch=best_epoch, stopped=stopped
    )
    content = RuleTraining(1.0, history, 25.0, _clip_metrics(0.5), _clip_metrics(0.5)).to_json()
    assert (content["epochs_run"], content["best_epoch"], content["stopped"], content["still_improving"]) == (
        len(valid_loss),
        best_epoch,
        stopped,
        still_improving,
    )
    assert history.as_dict()["stopped"] == stopped and history.as_dict()["still_improving"] is still_improving


def test_weak_training_to_json_counts_clips_and_omits_curves():
    history = TrainingHistory(train_loss=[0.7], valid_loss=[0.6], best_epoch=0)
    crnn = CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8)
    rules = {
        "mean": RuleTraining(1.5, history, 25.0, _clip_metrics(0.5), _clip_metrics(0.4)),
        "max": RuleTraining(2.0, history, 25.0, _clip_metrics(0.6), _clip_metrics(NAN)),
    }
    budget = TrainingBudget(max_epochs=2, patience=None, budget_seconds=30.0, batch_size=16, learning_rate=3e-3)
    weak = WeakTraining(
        crnn, budget, 7, ("a.wav", "b.wav", "c.wav"), rules, ("03_weak/training.json", "03_weak/training_curves.png")
    )
    content = weak.to_json()
    assert set(content) == {"crnn", "budget", "seed", "train_clips", "rules", "artifacts", "shared_trunk"}
    # How every CRNN was trained: the whole budget, the stopping rules included.
    assert content["budget"] == {
        "max_epochs": 2,
        "patience": None,
        "budget_seconds": 30.0,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "shared_trunk": False,
    }
    assert content["shared_trunk"] is False  # how they were trained (apart, here)
    assert content["seed"] == 7
    assert content["train_clips"] == 3  # a count, not the list (training.json lists them)
    assert content["crnn"]["stem_channels"] == 4 and list(content["crnn"]["conv_channels"]) == [8, 16]
    assert content["crnn"]["rnn_hidden"] == 8
    assert content["rules"] == {rule: item.to_json() for rule, item in rules.items()}
    assert "train_loss" not in content["rules"]["mean"]
    assert content["rules"]["max"]["test"]["map"] is None  # NaN cleaned by RuleTraining
    assert content["artifacts"] == ["03_weak/training.json", "03_weak/training_curves.png"]
    strict_json(content)
    assert weak.models == {} and weak.predictions == {}


# --------------------------------------------------------------------------- step 4


def test_pooling_choice_to_json():
    choice = PoolingChoice(
        "max",
        "validation collar F1 0.400",
        "the rule",
        ("mean", "max"),
        {
            "mean": {"clip_map": 0.5, "collar_f1": NAN},
            "max": {"clip_map": 0.45, "collar_f1": 0.4},
            "attention": {"clip_map": 0.1, "collar_f1": INF},
        },
    )
    content = choice.to_json()
    assert content == {
        "chosen": "max",
        "basis": "validation collar F1 0.400",
        "rule": "the rule",
        "candidates": ["mean", "max"],
        "validation_metrics": {
            "mean": {"clip_map": 0.5, "collar_f1": None},
            "max": {"clip_map": 0.45, "collar_f1": 0.4},
            "attention": {"clip_map": 0.1, "collar_f1": None},
        },
    }
    strict_json(content)


def _summary(events: int, detected: int, onset: float) -> BoundarySummary:
    return BoundarySummary(
        events=events,
        detected=detected,
        median_abs_onset_error=onset,
        median_abs_offset_error=INF,
        median_onset_error=NAN,
        median_offset_error=0.1,
        onset_within=0.5,
        offset_within=0.25,
        tolerance=0.2,
    )


def test_boundary_inspection_to_json():
    ci = BootstrapCI(0.6, 0.4, INF, 0.95, 200)
    available = Evaluation(
        {"clip_map": 0.6, "collar_f1": 0.3, "median_abs_onset": INF},
        {"clip_map": ci},
        BoundaryEvidence(True, None, 2, _summary(4, 3, 0.12)),
    )
    missing = Evaluation({"clip_map": 0.5, "collar_f1": None}, {}, BoundaryEvidence(False, "no strong labels"))
    choice = PoolingChoice("max", "basis", "rule", ("max",), {"max": {"clip_map": 0.5}})
    postprocessing = {
        "max": PostProcessing(0.24, 7, 0.3, "chosen on validation", 0.5),
        "mean": PostProcessing(0.0, 1, 0.5, "fixed: no strong labels"),
    }
    gates = {
        "max": SanityCheck("the max CRNN", True, (), "", 0.25),
        "mean": SanityCheck(
            "the mean CRNN", False, ("clip mAP 0.200 is not above chance (0.250)",), "train longer", 0.25
        ),
    }
    inspection = BoundaryInspection(
        True,
        None,
        2,
        {"max": available, "mean": missing},
        choice,
        ({"kind": "pair", "clip_gap": 0.1},),
        ("04_boundaries/boundary_metrics.tsv",),
        postprocessing,
        gates,
        True,
    )
    assert inspection.chosen == "max"
    content = inspection.to_json()
    assert set(content) == {
        "available",
        "reason",
        "positives",
        "per_rule",
        "selection",
        "disagreements",
        "artifacts",
        "decided",
        "postprocessing",
        "gates",
    }
    assert content["decided"] is True
    assert content["postprocessing"] == {
        "max": {
            "median_seconds": 0.24,
            "median_frames": 7,
            "threshold": 0.3,
            "basis": "chosen on validation",
            "validation_collar_f1": 0.5,
        },
        "mean": {
            "median_seconds": 0.0,
            "median_frames": 1,
            "threshold": 0.5,
            "basis": "fixed: no strong labels",
            "validation_collar_f1": None,
        },
    }
    assert content["gates"] == {
        "max": {"system": "the max CRNN", "passed": True, "failures": [], "advice": "", "chance_map": 0.25},
        "mean": {
            "system": "the mean CRNN",
            "passed": False,
            "failures": ["clip mAP 0.200 is not above chance (0.250)"],
            "advice": "train longer",
            "chance_map": 0.25,
        },
    }
    assert (content["available"], content["reason"], content["positives"]) == (True, None, 2)
    assert content["per_rule"]["max"] == {
        "point": {"clip_map": 0.6, "collar_f1": 0.3, "median_abs_onset": None},
        "intervals": {"clip_map": {"value": 0.6, "low": 0.4, "high": None, "confidence": 0.95, "resamples": 200}},
        "summary": {
            "events": 4,
            "detected": 3,
            "missed": 1,
            "median_abs_onset_error": 0.12,
            "median_abs_offset_error": None,
            "median_onset_error": None,
            "median_offset_error": 0.1,
            "onset_within": 0.5,
            "offset_within": 0.25,
            "tolerance": 0.2,
            "per_class": {},
        },
    }
    assert content["per_rule"]["mean"] == {
        "point": {"clip_map": 0.5, "collar_f1": None},
        "intervals": {},
        "summary": None,
    }
    assert content["selection"] == choice.to_json()
    assert content["disagreements"] == [{"kind": "pair", "clip_gap": 0.1}]
    assert content["artifacts"] == ["04_boundaries/boundary_metrics.tsv"]
    strict_json(content)
    # No rule passed the gates: the choice is provisional, and says so.
    undecided = BoundaryInspection(True, None, 2, {"max": available}, choice, (), (), postprocessing, gates, False)
    assert undecided.chosen == "max" and undecided.to_json()["decided"] is False
    # Built without the new fields (older callers): decided, nothing post-processed or gated.
    bare = BoundaryInspection(True, None, 2, {"max": available}, choice, (), ()).to_json()
    assert (bare["decided"], bare["postprocessing"], bare["gates"]) == (True, {}, {})


# --------------------------------------------------------------------------- step 5


DESCRIPTION = {
    "kind": "weak_crnn",
    "source": "/somewhere/crnn",
    "sample_rate": 24000,
    "embedding_size": 16,
    "channel_policy": "mono at 24000 Hz",
}


def test_encoder_info_trained_here_to_json():
    info = EncoderInfo(dict(DESCRIPTION), True, 25.0, 0.4, True, ("click", "tone"), 1.5)
    assert info.to_json() == {
        **DESCRIPTION,
        "source": "05_probe/encoder",
        "trained_here": True,
        "trained_on_classes": ["click", "tone"],
        "seconds": 1.5,
        "frame_rate": 25.0,
        "embedding_seconds": 0.4,
        "grid_is_encoder_frames": True,
    }


def test_encoder_info_given_encoder_to_json():
    info = EncoderInfo(dict(DESCRIPTION, kind="codec"), False, 75.0, 2.0, False)
    content = info.to_json()
    assert content == {
        **DESCRIPTION,
        "kind": "codec",
        "trained_here": False,
        "frame_rate": 75.0,
        "embedding_seconds": 2.0,
        "grid_is_encoder_frames": False,
    }
    assert "trained_on_classes" not in content and "seconds" not in content


def test_probe_comparison_to_json():
    encoder = EncoderInfo(dict(DESCRIPTION), True, 25.0, 0.4, True, ("click",), 1.0)
    reason = "the test split has no strong labels"
    frozen = Evaluation(
        {"clip_map": 0.7, "clip_accuracy": 0.8},
        {"clip_map": BootstrapCI(0.7, 0.5, 0.9, 0.95, 100)},
        BoundaryEvidence(False, reason),
    )
    scratch = Evaluation({"clip_map": 0.6, "clip_accuracy": INF}, {}, BoundaryEvidence(False, reason))
    difference = {
        "clip_map": BootstrapCI(0.1, -0.1, 0.3, 0.95, 100),
        "clip_accuracy": BootstrapCI(NAN, None, None, 0.95, 0),
    }
    postprocessing = {
        "frozen + probe": PostProcessing(0.0, 1, 0.5, "fixed: the validation split has no strong labels"),
        "scratch": PostProcessing(0.0, 1, 0.5, "fixed: the validation split has no strong labels"),
    }
    gates = {
        "frozen + probe": SanityCheck("the frozen + probe path", True, (), "", 0.3),
        "scratch": SanityCheck("the scratch baseline", True, (), "", 0.3),
    }
    histories = {
        "frozen + probe": TrainingHistory(valid_loss=[0.7, 0.6, 0.65], best_epoch=1, stopped="patience"),
        "scratch": TrainingHistory(valid_loss=[0.7, 0.6], best_epoch=1, stopped="budget"),
    }
    comparison = ProbeComparison(
        encoder,
        "policy",
        ("tone", "chirp"),
        "max",
        ("a note",),
        True,
        frozen,
        scratch,
        difference,
        ("05_probe/comparison.json",),
        "a per-frame probe",
        postprocessing,
        gates,
        histories,
    )
    assert comparison.boundaries_available is False and comparison.frozen_path is None
    content = comparison.to_json()
    assert content == {
        "encoder": encoder.to_json(),
        "channel_policy": "policy",
        "task_classes": ["tone", "chirp"],
        "pooling": "max",
        "notes": ["a note"],
        "encoder_parameters_unchanged": True,
        "boundaries_available": False,
        "boundary_reason": reason,
        "frozen": {
            "point": {"clip_map": 0.7, "clip_accuracy": 0.8},
            "intervals": {"clip_map": {"value": 0.7, "low": 0.5, "high": 0.9, "confidence": 0.95, "resamples": 100}},
        },
        "scratch": {"point": {"clip_map": 0.6, "clip_accuracy": None}, "intervals": {}},
        "difference": {
            "clip_map": {"value": 0.1, "low": -0.1, "high": 0.3, "confidence": 0.95, "resamples": 100},
            "clip_accuracy": {"value": None, "low": None, "high": None, "confidence": 0.95, "resamples": 0},
        },
        "artifacts": ["05_probe/comparison.json"],
        "probe_description": "a per-frame probe",
        "postprocessing": {
            system: {
                "median_seconds": 0.0,
                "median_frames": 1,
                "threshold": 0.5,
                "basis": "fixed: the validation split has no strong labels",
                "validation_collar_f1": None,
            }
            for system in ("frozen + probe", "scratch")
        },
        "gates": {
            "frozen + probe": {
                "system": "the frozen + probe path",
                "passed": True,
                "failures": [],
                "advice": "",
                "chance_map": 0.3,
            },
            "scratch": {
                "system": "the scratch baseline",
                "passed": True,
                "failures": [],
                "advice": "",
                "chance_map": 0.3,
            },
        },
        # Each model's training: epochs run, the best, why it stopped, whether it was still improving.
        "training": {
            "frozen + probe": {"epochs_run": 3, "best_epoch": 1, "stopped": "patience", "still_improving": False},
            "scratch": {"epochs_run": 2, "best_epoch": 1, "stopped": "budget", "still_improving": True},
        },
    }
    strict_json(content)
    with_boundaries = ProbeComparison(
        encoder,
        "policy",
        ("tone",),
        "max",
        (),
        True,
        Evaluation({"clip_map": 0.7}, {}, BoundaryEvidence(True, None, 1, _summary(1, 1, 0.1))),
        scratch,
        {},
        (),
    )
    assert with_boundaries.boundaries_available is True
    assert with_boundaries.to_json()["boundaries_available"] is True
    assert with_boundaries.to_json()["boundary_reason"] is None


VOCABULARY = ("click", "tone", "chirp", "noise_band", "speech")


@pytest.mark.parametrize(
    ("count", "seed", "expected"),
    [
        # default_rng(seed).permutation(5): seed 0 -> [2 4 3 0 1], seed 1 -> [4 0 1 2 3], seed 3 -> [4 2 1 3 0];
        # the first `count` indices, returned in vocabulary order.
        (2, 0, ("chirp", "speech")),
        (2, 1, ("click", "speech")),
        (3, 3, ("tone", "chirp", "speech")),
        (1, 0, ("chirp",)),
        (0, 0, ("chirp",)),  # at least one
        (
            9,
            0,
            ("click", "chirp", "noise_band", "speech"),
        ),  # at most all but one: index 1, last in the permutation, left
    ],
)
def test_held_out_classes_hand_computed(count, seed, expected):
    assert held_out_classes(VOCABULARY, count, seed) == expected


def test_held_out_classes_two_classes_and_determinism():
    assert held_out_classes(("dog", "cat"), 2, 0) in (("dog",), ("cat",))
    picked = {held_out_classes(("dog", "cat"), 5, seed) for seed in range(20)}
    assert picked == {("dog",), ("cat",)}  # the seed decides, both are reachable
    assert all(held_out_classes(VOCABULARY, 2, seed) == held_out_classes(VOCABULARY, 2, seed) for seed in range(5))
    for seed in range(10):
        task = held_out_classes(VOCABULARY, 2, seed)
        assert len(task) == 2 and list(task) == [name for name in VOCABULARY if name in task]


# --------------------------------------------------------------------------- step 6


RULE_TEXT = "Adapt only when ..."


def test_adaptation_outcome_not_triggered_has_no_verdict():
    trigger = AdaptationTrigger(False, (), {"clip_map": -0.04, "collar_f1": INF}, "the frozen path does not stop short")
    outcome = AdaptationOutcome(RULE_TEXT, trigger, artifacts=("06_adapt/adaptation.json",))
    assert outcome.ran is False
    content = outcome.to_json()
    assert content == {
        "rule": RULE_TEXT,
        "triggered": False,
        "short_on": [],
        "gaps": {"clip_map": -0.04, "collar_f1": None},
        "reason": "the frozen path does not stop short",
        "ran": False,
        "unavailable": None,
        "no_decision": None,
        "artifacts": ["06_adapt/adaptation.json"],
    }
    assert not {"verdict", "top_block", "adapted", "gain_over_frozen", "postprocessing", "training"} & set(content)
    strict_json(content)


def test_adaptation_outcome_triggered_but_unavailable():
    trigger = AdaptationTrigger(True, ("collar_f1",), {"clip_map": 0.01, "collar_f1": 0.2}, "behind on boundaries")
    outcome = AdaptationOutcome(
        RULE_TEXT,
        trigger,
        unavailable="a hear encoder exposes only the HEAR functions",
        artifacts=("06_adapt/adaptation.json",),
    )
    assert outcome.ran is False  # no verdict: not run, however triggered
    content = outcome.to_json()
    assert content["triggered"] is True and content["short_on"] == ["collar_f1"] and content["ran"] is False
    assert content["unavailable"] == "a hear encoder exposes only the HEAR functions"
    assert content["no_decision"] is None
    assert "verdict" not in content and "adapted" not in content


def test_adaptation_outcome_without_a_decision():
    # The scratch baseline failed its sanity gate: step 6 does not adapt, and says why.
    trigger = AdaptationTrigger(True, ("clip_map",), {"clip_map": 0.2}, "behind on clip metrics")
    reason = "no decision: the scratch baseline learned nothing the comparison could rest on (...)"
    outcome = AdaptationOutcome(RULE_TEXT, trigger, no_decision=reason, artifacts=("06_adapt/adaptation.json",))
    assert outcome.ran is False
    content = outcome.to_json()
    assert content == {
        "rule": RULE_TEXT,
        "triggered": True,
        "short_on": ["clip_map"],
        "gaps": {"clip_map": 0.2},
        "reason": "behind on clip metrics",
        "ran": False,
        "unavailable": None,
        "no_decision": reason,
        "artifacts": ["06_adapt/adaptation.json"],
    }
    strict_json(content)


def test_adaptation_outcome_ran_to_json():
    trigger = AdaptationTrigger(True, ("clip_map",), {"clip_map": 0.2}, "behind on clip metrics")
    adapted = Evaluation(
        {"clip_map": 0.8, "median_abs_onset": INF},
        {"clip_map": BootstrapCI(0.8, 0.6, 0.95, 0.95, 50)},
        BoundaryEvidence(False, "no strong labels"),
    )
    gain = {
        "clip_map": BootstrapCI(0.1, 0.02, 0.2, 0.95, 50),
        "median_abs_onset": BootstrapCI(-INF, None, None, 0.95, 0),
    }
    outcome = AdaptationOutcome(
        RULE_TEXT,
        trigger,
        None,
        "the GRU",
        AdaptationVerdict(True, "clears the rule"),
        adapted,
        gain,
        ("06_adapt/adaptation.json", "06_adapt/comparison.png"),
    )
    assert outcome.ran is True
    content = outcome.to_json()
    assert content == {
        "rule": RULE_TEXT,
        "triggered": True,
        "short_on": ["clip_map"],
        "gaps": {"clip_map": 0.2},
        "reason": "behind on clip metrics",
        "ran": True,
        "unavailable": None,
        "no_decision": None,
        "top_block": "the GRU",
        "postprocessing": None,
        "training": None,
        "verdict": {"justified": True, "reason": "clears the rule"},
        "adapted": {
            "point": {"clip_map": 0.8, "median_abs_onset": None},
            "intervals": {"clip_map": {"value": 0.8, "low": 0.6, "high": 0.95, "confidence": 0.95, "resamples": 50}},
        },
        "gain_over_frozen": {
            "clip_map": {"value": 0.1, "low": 0.02, "high": 0.2, "confidence": 0.95, "resamples": 50},
            "median_abs_onset": {"value": None, "low": None, "high": None, "confidence": 0.95, "resamples": 0},
        },
        "artifacts": ["06_adapt/adaptation.json", "06_adapt/comparison.png"],
    }
    strict_json(content)
    # With its post-processing and training recorded, both are stated.
    recorded = AdaptationOutcome(
        RULE_TEXT,
        trigger,
        None,
        "the GRU",
        AdaptationVerdict(True, "clears the rule"),
        adapted,
        gain,
        (),
        postprocessing=PostProcessing(0.12, 3, 0.4, "chosen on validation", 0.6),
        history=TrainingHistory(valid_loss=[0.5, 0.4], best_epoch=1),
    )
    content = recorded.to_json()
    assert content["postprocessing"] == {
        "median_seconds": 0.12,
        "median_frames": 3,
        "threshold": 0.4,
        "basis": "chosen on validation",
        "validation_collar_f1": 0.6,
    }
    assert content["training"] == {"epochs_run": 2, "best_epoch": 1, "stopped": "max_epochs", "still_improving": True}
    strict_json(content)


def test_held_out_classes_refuses_a_single_class():
    with pytest.raises(ValueError, match="at least two classes"):
        held_out_classes(("only",), 1, 0)


def test_encoder_info_trained_here_needs_its_classes():
    with pytest.raises(ValueError, match="classes it was trained on"):
        EncoderInfo(dict(DESCRIPTION), True, 25.0, 0.4, True)


def test_step6_names_the_thresholds_that_were_applied():
    from dataclasses import replace

    from audioenc.timing.postprocess import ClassPostProcessing, PostProcessing
    from audioenc.timing.workflow.steps.step6_adapt import _thresholds_used

    shared = PostProcessing(0.0, 1, 0.3, "chosen on validation")
    assert _thresholds_used(shared) == "0.3" and _thresholds_used(None) == "0.5"
    per_class = replace(
        shared,
        per_class={
            "a": ClassPostProcessing(0.0, 1, 0.2, True),
            "b": ClassPostProcessing(0.0, 1, 0.6, True),
        },
    )
    assert _thresholds_used(per_class) == "per-class thresholds 0.2-0.6"
