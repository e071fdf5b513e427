"""Hostile resumes and refused runs of `audioenc train`, and checkpoint loading.

Every refusal exits 2 with one line ``audioenc train: error: …`` naming the file or the setting,
prints no traceback, and leaves the disk as it was: a refused resume does not touch the run
folder (``config.json`` byte for byte), a refused new run leaves no folder behind. A damaged or
malicious checkpoint is named and never executed.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from audioenc.cli import main
from tests.training.conftest import TINY_OVERRIDES, make_audio_folder


def train_argv(run_dir, data, *extra: str) -> list[str]:
    return [
        "train",
        "--1ch",
        "--preset",
        "small",
        "--no-progress",
        "--run-dir",
        str(run_dir),
        "--data",
        str(data),
        *TINY_OVERRIDES,
        *extra,
    ]


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("audioenc train: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run (1 epoch × 3 steps, checkpoints last/best, model_best) and its data."""
    root = tmp_path_factory.mktemp("resume_guards")
    data = make_audio_folder(root / "data")
    run_dir = root / "run"
    assert main(train_argv(run_dir, data, "train.epochs=1")) == 0
    return run_dir, data


@pytest.fixture
def run_copy(finished_run, tmp_path):
    run_dir, data = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy, data


# ---------------------------------------------------------------- changed model / training settings


def test_resume_with_another_model_leaves_the_run_folder_untouched(run_copy, capsys):
    run_dir, data = run_copy
    before = snapshot(run_dir)
    assert main(train_argv(run_dir, data, "--resume", "train.epochs=2", "model.dimension=16")) == 2
    one_line_error(capsys, str(run_dir / "checkpoint_last.pt"), "model.dimension: checkpoint 8, now 16")
    assert snapshot(run_dir) == before  # config.json byte for byte, and nothing added


@pytest.mark.parametrize(
    "override, difference",
    [
        ("train.batch_size=4", "train.batch_size: checkpoint 2, now 4"),
        ("train.seed=7", "train.seed: checkpoint 0, now 7"),
        ("data.segment_seconds=0.2", "data.segment_seconds: checkpoint 0.1, now 0.2"),
        ("train.updates_per_epoch=5", "train.updates_per_epoch: checkpoint 3, now 5"),
        ("optim.lr=0.0001", "optim.lr: checkpoint 0.001, now 0.0001"),
    ],
)
def test_resume_with_changed_training_settings_is_refused(run_copy, capsys, override, difference):
    run_dir, data = run_copy
    before = snapshot(run_dir)
    assert main(train_argv(run_dir, data, "--resume", "train.epochs=2", override)) == 2
    line = one_line_error(capsys, str(run_dir / "checkpoint_last.pt"), difference, "--allow-changed-training")
    assert "train.epochs" not in line  # extending a run is not a change of its training
    assert snapshot(run_dir) == before


def test_resume_listing_every_difference(run_copy, capsys):
    run_dir, data = run_copy
    assert main(train_argv(run_dir, data, "--resume", "train.batch_size=4", "train.seed=3")) == 2
    one_line_error(capsys, "train.batch_size: checkpoint 2, now 4", "train.seed: checkpoint 0, now 3")


def test_allow_changed_training_continues_and_records_the_change(run_copy, capsys):
    run_dir, data = run_copy
    assert (
        main(train_argv(run_dir, data, "--resume", "--allow-changed-training", "train.batch_size=4", "train.epochs=2"))
        == 0
    )
    out = capsys.readouterr().out
    assert "changed training settings" in out and "train.batch_size: checkpoint 2, now 4" in out
    rows = [json.loads(line) for line in (run_dir / "changes.jsonl").read_text().splitlines()]
    assert rows == [{"step": 3, "time": rows[0]["time"], "changes": {"train.batch_size": {"checkpoint": 2, "now": 4}}}]
    assert json.loads((run_dir / "config.json").read_text())["train"]["batch_size"] == 4
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 6
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [0, 1, 2]
    # The checkpoint now holds the new settings: resuming with them needs no flag and records nothing.
    assert main(train_argv(run_dir, data, "--resume", "train.batch_size=4", "train.epochs=2")) == 0
    assert len((run_dir / "changes.jsonl").read_text().splitlines()) == 1


def test_settings_that_leave_the_stream_alone_need_no_flag(run_copy, capsys):
    run_dir, data = run_copy
    assert (
        main(
            train_argv(
                run_dir,
                data,
                "--resume",
                "train.epochs=2",
                "train.log_every=2",
                "train.checkpoint_every=5",
                "train.max_nonfinite_steps=3",
            )
        )
        == 0
    )
    assert "changed training settings" not in capsys.readouterr().out
    assert not (run_dir / "changes.jsonl").exists()
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 6


def test_resume_past_the_end_of_a_shorter_run_is_refused(run_copy, capsys):
    run_dir, data = run_copy
    assert main(train_argv(run_dir, data, "--resume", "--allow-changed-training", "train.updates_per_epoch=1")) == 2
    one_line_error(capsys, "at step 3", "--epochs")


# ---------------------------------------------------------------- refused runs leave nothing behind


@pytest.mark.parametrize("case", ["missing data", "data is a file", "empty data", "resume without checkpoint"])
def test_refused_new_run_leaves_no_folder(finished_run, tmp_path, capsys, case):
    _, data = finished_run
    runs = tmp_path / "runs"  # neither it nor the run folder exist yet
    run_dir = runs / "new"
    extra: list[str] = []
    if case == "missing data":
        data, needles = tmp_path / "no-such-folder", [str(tmp_path / "no-such-folder"), "does not exist"]
    elif case == "data is a file":
        data = data / "clip0.wav"
        needles = [str(data), "is a file, not a folder"]
    elif case == "empty data":
        data = tmp_path / "empty"
        data.mkdir()
        needles = [str(data)]
    else:
        extra, needles = ["--resume"], [str(run_dir / "checkpoint_last.pt")]
    assert main(train_argv(run_dir, data, *extra)) == 2
    one_line_error(capsys, *needles)
    assert not runs.exists()


def test_refused_run_keeps_a_folder_that_was_there(tmp_path, capsys):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("my notes\n")
    assert main(train_argv(run_dir, tmp_path / "no-such-folder")) == 2
    one_line_error(capsys, "no-such-folder")
    assert snapshot(run_dir) == {"notes.txt": b"my notes\n"}


# ---------------------------------------------------------------- damaged and malicious checkpoints


def test_truncated_checkpoint_is_named_with_the_intact_ones(run_copy, capsys):
    run_dir, data = run_copy
    last = run_dir / "checkpoint_last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = snapshot(run_dir)
    assert main(train_argv(run_dir, data, "--resume", "train.epochs=2")) == 2
    one_line_error(capsys, str(last), "truncated or damaged", "checkpoint_best.pt", "model_best.safetensors")
    assert snapshot(run_dir) == before


def test_empty_checkpoint_is_named(run_copy, capsys):
    run_dir, data = run_copy
    (run_dir / "checkpoint_last.pt").write_bytes(b"")
    assert main(train_argv(run_dir, data, "--resume", "train.epochs=2")) == 2
    one_line_error(capsys, "checkpoint_last.pt", "truncated or damaged")


class RunsACommand:
    """What a malicious checkpoint holds: unpickling it would call ``os.system``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("writer", ["torch.save", "pickle protocol 2"])
def test_malicious_checkpoint_is_refused_and_never_run(run_copy, tmp_path, capsys, writer):
    run_dir, data = run_copy
    marker = tmp_path / "the-payload-ran"
    last = run_dir / "checkpoint_last.pt"
    state = torch.load(last, weights_only=True)
    state["payload"] = RunsACommand(f"touch {marker}")
    if writer == "torch.save":
        torch.save(state, last)
    else:
        with open(last, "wb") as handle:
            pickle.dump(state, handle, protocol=2)
    before = snapshot(run_dir)
    assert main(train_argv(run_dir, data, "--resume", "train.epochs=2")) == 2
    one_line_error(capsys, str(last), "refused", "objects other than tensors", "never runs code")
    assert not marker.exists()
    assert snapshot(run_dir) == before


def test_a_tensor_file_that_is_no_training_state_is_named(run_copy, capsys):
    run_dir, data = run_copy
    torch.save({"weights": torch.ones(3)}, run_dir / "checkpoint_last.pt")
    assert main(train_argv(run_dir, data, "--resume", "train.epochs=2")) == 2
    one_line_error(capsys, "checkpoint_last.pt", "not an audioenc training checkpoint")
