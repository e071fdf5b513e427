"""benchmarks/real_events/ablation.py: the rows' settings, the schedule, the best-row choice, the
tables, the unlabeled clips, and one tiny end-to-end run that resumes."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.audio.synth_events import synthesize_event_corpus
from audioenc.errors import UserError
from audioenc.timing.augment import AugmentSettings
from audioenc.timing.evaluation import clip_metrics, clip_targets
from audioenc.timing.features import LogMelConfig, compute_log_mel
from audioenc.timing.postprocess import PostprocessSettings
from audioenc.timing.weak import crnn_preset, load_weak_encoder, predict
from audioenc.timing.workflow.data import load_workflow_data
from audioenc.timing.workflow.settings import resolve_settings

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_events" / "ablation.py"
_spec = importlib.util.spec_from_file_location("real_events_ablation", SCRIPT)
ablation = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ablation  # dataclasses look their module up while the class is made
_spec.loader.exec_module(ablation)

SHARED = ablation.base_overrides(240, 40, 6, 50)
DCASE_SHARED = ablation.base_overrides(420, 40, 6, 50)
ROW = {row.name: row for row in ablation.ROWS}


def settings(name: str):
    return ablation.row_settings(ROW[name], SHARED, DCASE_SHARED)


# =========================================================================== rows


def test_rows_change_only_what_their_label_says():
    base = resolve_settings(overrides=SHARED)
    small = settings("small")
    assert small == base and small.crnn.preset == "small" and small.weak.budget_seconds == 240
    assert small.evaluation.psds_resamples == 50 and small.weak.max_epochs == 40 and small.weak.patience == 6
    assert settings("small_mixup") == replace(base, augment=AugmentSettings(mixup_alpha=0.2))
    assert settings("small_masks") == replace(base, augment=AugmentSettings(time_masks=1, freq_masks=2))
    assert settings("small_shift_gain") == replace(base, augment=AugmentSettings(shift_frames=50, gain_db=6.0))
    all_aug = AugmentSettings(mixup_alpha=0.2, time_masks=1, freq_masks=2, shift_frames=50, gain_db=6.0)
    assert settings("small_all_aug") == replace(base, augment=all_aug)
    mean_teacher = replace(all_aug, mean_teacher=True, ema_decay=0.99)
    assert settings("small_all_aug_mt") == replace(base, augment=mean_teacher)
    # the per-class row measures the mean-teacher row's own model: only post-processing differs
    assert ROW["small_all_aug_mt_per_class"].model_from == "small_all_aug_mt"
    assert settings("small_all_aug_mt_per_class") == replace(
        settings("small_all_aug_mt"), postprocess=PostprocessSettings(per_class=True)
    )


def test_dcase_rows_take_the_preset_its_features_and_their_own_budget():
    crnn, features = crnn_preset("dcase")
    dcase = settings("dcase")
    assert dcase.crnn == crnn and dcase.features == features and dcase.weak.budget_seconds == 420
    assert dcase.augment == AugmentSettings() and dcase.postprocess == PostprocessSettings()
    best = ablation.with_best(ROW["dcase_best"], ROW["small_all_aug_mt_per_class"])
    assert best.label == "dcase + the best combination above (small_all_aug_mt_per_class)"
    resolved = ablation.row_settings(best, SHARED, DCASE_SHARED)
    assert resolved.crnn == crnn and resolved.features == features and resolved.weak.budget_seconds == 420
    assert resolved.augment == settings("small_all_aug_mt").augment and resolved.postprocess.per_class
    assert best.model_from is None
    # the best is plain small: the row is the dcase row again, its model reused rather than retrained
    same = ablation.with_best(ROW["dcase_best"], ROW["small"])
    assert same.model_from == "dcase" and same.overrides == ROW["dcase"].overrides
    assert same.label == "dcase + the best combination above (small) = dcase"


def test_selected_rows_add_what_they_need_in_table_order():
    names = [row.name for row in ablation.selected_rows(["small_all_aug_mt_per_class", "small"])]
    assert names == ["small", "small_all_aug_mt", "small_all_aug_mt_per_class"]
    assert [row.name for row in ablation.selected_rows(["dcase_best"])] == list(ablation.ROW_NAMES)
    with pytest.raises(UserError, match="unknown row 'large'"):
        ablation.selected_rows(["large"])


def test_ready_waits_for_needs():
    pending = [ROW["small_all_aug_mt_per_class"], ROW["small"], ROW["dcase_best"]]
    assert [row.name for row in ablation.ready(pending, [])] == ["small"]
    assert [row.name for row in ablation.ready(pending, ["small_all_aug_mt"])] == [
        "small_all_aug_mt_per_class",
        "small",
    ]
    every_small = [row.name for row in ablation.SMALL_ROWS]
    assert ablation.ready(pending, every_small) == pending[:2]  # dcase_best also waits for dcase
    assert ablation.ready(pending, [*every_small, "dcase"]) == pending


def test_best_source_by_validation_collar_f1_ties_to_fewer_overrides():
    def record(f1, overrides):
        return {"validation": {"collar_f1": f1}, "overrides": ["x"] * overrides}

    records = {"a": record(0.4, 2), "b": record(0.5, 4), "c": record(0.5, 3), "d": record(None, 0)}
    assert ablation.best_source(records, ["a", "b", "c", "d"]) == "c"
    assert ablation.best_source(records, ["a", "d"]) == "a"
    records["e"] = record(0.5, 3)
    assert ablation.best_source(records, ["e", "c"]) == "e"  # equal: the earlier one


# =========================================================================== tables


def _record(label, post, training, ci=True, learned=True):
    def interval(low, high):
        return {"low": low, "high": high, "value": None, "confidence": 0.95, "resamples": 50}

    intervals = {"clip_map": interval(0.7, 0.9), "collar_f1": interval(0.25, 0.35)} if ci else {}
    return {
        "label": label,
        "parameters": 1109850,
        "gate": {"passed": learned},
        "test": {
            "point": {"clip_map": 0.8, "collar_f1": 0.3, "onset_f1_200ms": 0.5, "psds1": 0.1234, "psds2": None},
            "intervals": intervals,
            "boundary": {
                "summary": {"detected": 12, "events": 20},
                "collar_f1": {"per_class": {"kick": 0.5, "snare": None}},
            },
        },
        "test_clip": {"per_class_ap": {"kick": 0.9, "snare": 0.25}},
        "validation": {"collar_f1": 0.41},
        "postprocessing": post,
        "training": training,
        "seconds": {"total": 300.4},
    }


def test_markdown_table_cells():
    trained = {"epochs_run": 17, "best_epoch": 11, "stopped": "patience", "still_improving": False}
    per_class = {"per_class": {"kick": {"own": True}, "snare": {"own": False}, "tom": {"own": True}}}
    reused = dict(trained, stopped="budget", still_improving=True, reused_from="small_all_aug_mt")
    lines = ablation.markdown_table(
        [
            _record("plain", {"median_frames": 3, "threshold": 0.4}, trained),
            _record("pc", per_class, reused, ci=False, learned=False),
        ]
    ).splitlines()
    assert lines[2] == (
        "| plain | yes | 1,109,850 | 0.800 [0.700, 0.900] | 0.300 [0.250, 0.350] | 0.500 | 0.123 | n/a | 12/20 | 0.410 "
        "| 3 fr / 0.4 | 17 (11, patience) | 300 |"
    )
    assert lines[3] == (
        "| pc | no | 1,109,850 | 0.800 | 0.300 | 0.500 | 0.123 | n/a | 12/20 | 0.410 | per class (2 of 3 own) "
        "| 17 (11, budget, improving) = small_all_aug_mt | 300 |"
    )
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    table = ablation.per_class_table([_record("plain", {}, trained)]).splitlines()
    assert (
        table[0] == "| row | kick F1 / AP | snare F1 / AP |" and table[2] == "| plain | 0.500 / 0.900 | n/a / 0.250 |"
    )


# =========================================================================== unlabeled clips


def test_unlabeled_features_from_a_desed_config(tmp_path):
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    rng = np.random.default_rng(0)
    clips = {name: (0.1 * rng.standard_normal(8000)).astype(np.float32) for name in ("b.wav", "a.wav")}
    for name, audio in clips.items():
        sf.write(folder / name, audio, 16000)
    (folder / "notes.txt").write_text("not audio")
    config = tmp_path / "desed.yaml"
    config.write_text("data:\n  unlabeled_folder: unlabeled\n")
    features = LogMelConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=32)
    found = ablation.unlabeled_features(config, features)
    assert found.split.files == ["a.wav", "b.wav"]
    for name in clips:  # the same log-mel as the one-clip reference (file stored as 16-bit PCM)
        stored = sf.read(folder / name, dtype="float32")[0]
        np.testing.assert_allclose(found.log_mels[name], compute_log_mel(stored, features), rtol=1e-5, atol=1e-5)
    config.write_text("data:\n  weak_folder: x\n")
    assert ablation.unlabeled_features(config, features) is None
    assert ablation.unlabeled_features(tmp_path, features) is None  # a corpus folder, not a DESED config
    (tmp_path / "empty").mkdir()
    config.write_text("data:\n  unlabeled_folder: empty\n")
    with pytest.raises(UserError, match="holds no .wav/.flac"):
        ablation.unlabeled_features(config, features)


# =========================================================================== end to end


def test_tiny_run_measures_saved_models_reuses_and_resumes(tmp_path, capsys):
    corpus = synthesize_event_corpus(tmp_path / "corpus", (12, 6, 6), seed=5)
    out = tmp_path / "out"
    args = [
        "--data",
        str(corpus),
        "--out",
        str(out),
        "--rows",
        "small,small_all_aug_mt_per_class",
        "--max-epochs",
        "2",
        "--psds-resamples",
        "2",
        "--workers",
        "1",
        "--set",
        "crnn.stem_channels=4",
        "crnn.conv_channels=8,16",
        "crnn.rnn_hidden=8",
        "evaluation.bootstrap_resamples=20",
        "evaluation.f1_resamples=5",
    ]
    ablation.main(args)
    printed = capsys.readouterr().out
    names = ["small", "small_all_aug_mt", "small_all_aug_mt_per_class"]
    records = {name: json.loads((out / f"{name}.json").read_text()) for name in names}
    assert "| + per-class post-processing |" in printed and "| small (crnn.preset=small, defaults) |" in printed
    assert records["small"]["training"]["epochs_run"] == 2 and records["small"]["torch_threads"] == 1
    assert "intervals" in records["small"]["test"] and "psds1" in records["small"]["test"]["intervals"]
    # the numbers are those of the saved weights on the test split (an independent prediction)
    data = load_workflow_data(corpus, feature_config=LogMelConfig(), log=lambda line: None)
    test = data.splits["test"]
    for name in ("small", "small_all_aug_mt"):
        model = load_weak_encoder(out / name)
        scores = predict(model, data.features["test"].log_mels).stacked_clip_scores(test.files)
        expected = clip_metrics(scores, clip_targets(test, data.classes), data.classes).map
        assert records[name]["test"]["point"]["clip_map"] == pytest.approx(expected, abs=1e-12)
    # the per-class row measured the mean-teacher row's model (same clip scores), post-processed per class
    reused, source = records["small_all_aug_mt_per_class"], records["small_all_aug_mt"]
    assert reused["test_clip"] == source["test_clip"] and reused["training"]["reused_from"] == "small_all_aug_mt"
    assert "per_class" in reused["postprocessing"] and "per_class" not in source["postprocessing"]
    assert reused["settings"]["augment"]["mean_teacher"] and reused["settings"]["augment"]["ema_decay"] == 0.99
    # a rerun trains nothing: every row is read back from its JSON
    stamps = {name: (out / f"{name}.json").stat().st_mtime_ns for name in names}
    ablation.main(args)
    assert {name: (out / f"{name}.json").stat().st_mtime_ns for name in names} == stamps
    assert "| + per-class post-processing |" in capsys.readouterr().out
