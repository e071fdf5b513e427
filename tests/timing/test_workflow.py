"""The lab workflow end to end on a tiny synthetic corpus (reduced sizes), with bad label rows.

What is checked: every step writes its artifacts in its folder; the report's claims name only
files that exist; every bad TSV row ends up in the report's dropped list with its file and
line; the frozen probe and the scratch baseline use the same clips; the command line and the
academy entry reach the library. The numbers of a reduced run mean nothing and are not
asserted, except where the data fixes them (clip counts, dropped rows).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc import cli
from audioenc.audio.synth_events import synthesize_event_corpus
from audioenc.timing import workflow
from audioenc.timing.workflow import (
    STEP_FOLDERS,
    WorkflowSettings,
    load_workflow_data,
    run_workflow,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "academy/labs/speech-and-audio-encoders/src/speech_audio_encoder_workflow.py"

# Appended to test_strong.tsv: (row, what the reader must say about it, what it did).
BAD_STRONG_ROWS = [
    ("test_0000.wav\tabc\t1.0\ttone", "are not numbers", "dropped"),            # malformed onset
    ("test_0001.wav\t0.5", "are not numbers", "dropped"),                       # missing fields (offset empty)
    ("missing_clip.wav\t0.1\t0.5\ttone", "not in the audio folder", "dropped"),  # labels for a missing file
    ("test_0002.wav\t30.0\t31.0\ttone", "starts past the end", "dropped"),       # event past the end of the file
    ("test_0004.wav\t0.2\t99.0\tclick", "past the end", "clipped"),              # event running past the end
    ("test_0003.wav\t0.1\t0.6\ttrumpet", "unknown class", "dropped"),            # unknown class
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
        "00_data/data.json", "00_data/dropped.tsv",
        "01_pooling/clip_metrics.tsv", "01_pooling/clip_metrics.json", "01_pooling/pooled_levels.png",
        "02_frames/frame_scores.png", "02_frames/frame_view.json",
        "03_weak/training.json", "03_weak/training_curves.png",
        *[f"03_weak/{rule}/model.safetensors" for rule in ("mean", "max", "linear_softmax", "exp_softmax", "attention", "autopool")],
        "04_boundaries/boundary_metrics.tsv", "04_boundaries/boundary_metrics.json", "04_boundaries/event_errors.tsv",
        "04_boundaries/error_distributions.png", "04_boundaries/onset_aligned_scores.png", "04_boundaries/around_boundaries.png",
        "05_probe/comparison.json", "05_probe/comparison.tsv", "05_probe/comparison.png", "05_probe/probe/model.safetensors",
        "05_probe/encoder/model.safetensors", "05_probe/scratch/model.safetensors",
        "06_adapt/adaptation.json", "report.md", "report.json",
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
    ids = {claim["id"] for claim in report["claims"]}
    assert {"pooling_same_scores", "pooling_choice", "frame_view", "weak_training", "boundaries", "probe_vs_scratch",
            "adaptation", "decision", "next_change", "dropped"} <= ids
    for claim in report["claims"]:
        assert claim["artifacts"], claim["id"]
        for path in claim["artifacts"]:
            assert (out / path).is_file(), (claim["id"], path)
            assert f"`{path}`" in markdown
    chosen = report["pooling"]["chosen"]
    assert chosen in ("mean", "max", "linear_softmax", "exp_softmax", "attention", "autopool")
    assert f"Chosen pooling rule: {chosen}" in markdown
    assert report["decision"]["path"] in ("frozen", "adapted", "scratch")
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
    crnn = WorkflowSettings.fast().crnn
    jobs = [workflow._WeakJob(rule, rule, data.classes, 0, 1, 16, 3e-3, crnn) for rule in ("mean", "max")]
    parallel = workflow._train_jobs(jobs, data, 2, lambda line: None)
    serial = workflow._train_jobs(jobs, data, 1, lambda line: None)
    for rule in ("mean", "max"):
        a, b = parallel[rule][0].state_dict(), serial[rule][0].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a), rule


def test_command_line_and_academy_entry(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(workflow, "run_workflow", lambda *args, **kwargs: calls.append((args, kwargs)) or {})
    status = cli.main(["workflow", "--data", "D", "--encoder", "E", "--out", str(tmp_path), "--seed", "3", "--fast",
                       "--workers", "1"])
    assert status == 0
    (data, encoder, out, seed), options = calls[0]
    assert (data, encoder, out, seed) == ("D", "E", str(tmp_path), 3)
    assert options["fast"] and options["settings"].workers == 1 and options["settings"].weak_epochs == 2
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=REPO, timeout=120,
                            check=False)
    assert result.returncode == 0 and "--encoder" in result.stdout and "--data" in result.stdout


@pytest.mark.slow
def test_codec_encoder_weak_only_user_data(tmp_path):
    """A codec from `audioenc train`'s export format as the frozen encoder, on user data at
    another sample rate with weak labels only on the test split: the boundary steps say why they
    are skipped, and adaptation (forced by the rule) unfreezes the codec's top block."""
    import torch

    from audioenc.config import ModelConfig
    from audioenc.models.codec import CodecModel
    from audioenc.timing.probe import AdaptationRule
    from audioenc.training.checkpoint import export_model

    root = synthesize_event_corpus(tmp_path / "c", (12, 6, 6), seed=2)
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
    settings = replace(WorkflowSettings.fast(), rule=AdaptationRule(clip_margin=-1.0, boundary_margin=-1.0))
    out = tmp_path / "run"
    report = run_workflow(root, encoder=tmp_path / "codec", out=out, settings=settings, log=lambda line: None)
    assert report["boundaries"]["available"] is False and "no strong labels" in report["boundaries"]["reason"]
    assert report["probe"]["encoder"]["kind"] == "codec"
    assert report["probe"]["encoder"]["frame_rate"] == pytest.approx(75.0)
    assert "22050 Hz, 2 ch" in report["data"]["channel_policy"]
    assert report["adaptation"]["triggered"] and report["adaptation"]["ran"]
    assert "StreamableLSTM" in report["adaptation"]["top_block"]
    assert (out / "06_adapt/adapted/model.safetensors").is_file()
    assert report["next_change"]["text"].startswith("Add strong labels")
    shutil.rmtree(out)
