"""A run killed anywhere resumes to exactly the uninterrupted run.

``metrics.jsonl`` and the checkpoints must agree whatever instant a kill lands on: every checkpoint
loads, each epoch has exactly one row, and the resumed run ends at exactly ``epochs × updates``
steps with the same validation rows as a run that was never interrupted.

The slow test kills real ``python -m audioenc train`` processes with SIGKILL. The instants that
matter are microseconds wide (after the epoch-0 row and before the next checkpoint, inside a
checkpoint write, between ``checkpoint_last.pt`` and its row), so the child kills itself there:
it runs the CLI through a small driver (:data:`DRIVER`) that wraps one function of the training
code to send SIGKILL to its own process. Nothing in audioenc knows about the test. One more kill
comes from outside, at whatever instant a new checkpoint is seen on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from audioenc.models.files import load_training_state
from audioenc.training.checkpoint import save_training_state
from audioenc.training.run import train

from .conftest import TINY_OVERRIDES

# ---------------------------------------------------------------- fast: the state a kill leaves


class Killed(Exception):
    """Stands for SIGKILL in-process: nothing after the raise runs, nothing is cleaned up."""


def rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def kill_after_epoch_zero(monkeypatch, run_dir, config):
    """Run ``config`` until the epoch-0 validation has written its row and checkpoint, then 'die'."""
    from audioenc.training import trainer as trainer_module

    def first_step(self, audio):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module.Trainer, "train_step", first_step)
        with pytest.raises(Killed):
            train(config, run_dir, progress=False)


def test_resume_after_the_epoch_zero_row_keeps_one_row_per_epoch(make_config, tmp_path, monkeypatch):
    config = make_config("train.epochs=2")
    reference = tmp_path / "reference"
    train(config, reference, progress=False)
    run_dir = tmp_path / "run"
    kill_after_epoch_zero(monkeypatch, run_dir, config)
    assert load_training_state(run_dir / "checkpoint_last.pt")["step"] == 0
    assert [row["epoch"] for row in rows(run_dir)] == [0]
    summary = train(config, run_dir, resume=True, progress=False)
    assert summary["steps"] == 6
    assert rows(run_dir) == rows(reference)  # epochs 0, 1, 2 once each, the values of the uninterrupted run
    assert [row["epoch"] for row in rows(run_dir)] == [0, 1, 2]


def test_resume_from_an_old_checkpoint_drops_rows_it_does_not_record(make_config, tmp_path, monkeypatch):
    """A checkpoint from before the history was saved in it, and a file with the old bug's duplicate
    epoch-0 row, a row newer than the checkpoint and a line cut by the kill: the file is trimmed."""
    config = make_config("train.epochs=2")
    reference = tmp_path / "reference"
    train(config, reference, progress=False)
    run_dir = tmp_path / "run"
    kill_after_epoch_zero(monkeypatch, run_dir, config)
    last = run_dir / "checkpoint_last.pt"
    state = load_training_state(last)
    del state["history"]
    save_training_state(last, state)
    epoch_zero = (run_dir / "metrics.jsonl").read_text()
    newer = json.dumps({**json.loads(epoch_zero), "epoch": 1, "step": 3}) + "\n"
    (run_dir / "metrics.jsonl").write_text(epoch_zero + epoch_zero + newer + '{"epoch": 2, "st')
    train(config, run_dir, resume=True, progress=False)
    assert rows(run_dir) == rows(reference)  # epochs 0, 1, 2 once each


def test_resume_restores_a_row_the_kill_did_not_let_it_write(make_config, tmp_path):
    """Killed after ``checkpoint_last.pt`` of an epoch end and before its row reached the file."""
    config = make_config("train.epochs=1")
    run_dir = tmp_path / "run"
    train(config, run_dir, progress=False)
    history = run_dir / "metrics.jsonl"
    history.write_text(history.read_text().splitlines(keepends=True)[0])  # epoch 1's row lost
    summary = train(make_config("train.epochs=2"), run_dir, resume=True, progress=False)
    assert summary["steps"] == 6
    assert [(row["epoch"], row["step"]) for row in rows(run_dir)] == [(0, 0), (1, 3), (2, 6)]


def test_summary_table_lists_each_epoch_once(make_config, tmp_path, monkeypatch, capsys):
    config = make_config("train.epochs=1")
    run_dir = tmp_path / "run"
    kill_after_epoch_zero(monkeypatch, run_dir, config)
    capsys.readouterr()
    train(config, run_dir, resume=True, progress=False)
    table = capsys.readouterr().out.splitlines()
    header = next(index for index, line in enumerate(table) if line.split()[:2] == ["epoch", "step"])
    epochs = [line.split()[0] for line in table[header + 1 :] if line.split() and line.split()[0].isdigit()]
    assert epochs == ["0", "1"]


# ---------------------------------------------------------------- slow: real processes, real SIGKILL

DRIVER = textwrap.dedent('''
    """Run `audioenc train` (argv) and SIGKILL this process at the point named by $KILL_AT."""
    import os, signal, sys

    import torch

    from audioenc import cli
    from audioenc.training import checkpoint, loop, trainer

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    point, _, value = os.environ.get("KILL_AT", "").partition(":")
    value = int(value or 0)
    if point == "after-epoch":  # the epoch's row and checkpoints are written; the next steps not run
        end_of_epoch = loop._end_of_epoch
        def patched(trainer_, valid_loader, logger, history_path, epoch):
            end_of_epoch(trainer_, valid_loader, logger, history_path, epoch)
            if epoch == value:
                die()
        loop._end_of_epoch = patched
    elif point in ("after-last", "before-last"):  # around checkpoint_last.pt of step `value`
        save = trainer.Trainer.save
        def patched(self, name):
            if name == "last" and self.step == value and point == "before-last":
                die()
            path = save(self, name)
            if name == "last" and self.step == value:
                die()
            return path
        trainer.Trainer.save = patched
    elif point == "mid-write":  # half of the `value`-th checkpoint of this process is on disk
        count = [0]
        save_training_state = checkpoint.save_training_state
        def patched(path, state):
            count[0] += 1
            if count[0] == value:
                def half(tmp):
                    torch.save(state, tmp)
                    data = tmp.read_bytes()
                    tmp.write_bytes(data[: len(data) // 2])
                    die()
                checkpoint.atomic_write(path, half)
            return save_training_state(path, state)
        checkpoint.save_training_state = patched
    sys.exit(cli.main(sys.argv[1:]))
''')

EPOCHS, UPDATES = 3, 4


def command(run_dir, data, *extra: str) -> list[str]:
    return [
        "train",
        "--1ch",
        "--preset",
        "small",
        "--no-progress",
        "--run-dir",
        str(run_dir),
        *TINY_OVERRIDES,
        f"data.root={data}",
        f"train.epochs={EPOCHS}",
        f"train.updates_per_epoch={UPDATES}",
        "train.checkpoint_every=2",
        *extra,
    ]


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def run_killed(driver, run_dir, data, kill_at: str, resume: bool) -> None:
    argv = [sys.executable, str(driver), *command(run_dir, data, *(["--resume"] if resume else []))]
    result = subprocess.run(argv, check=False, capture_output=True, env=environment(KILL_AT=kill_at), timeout=300)
    assert result.returncode == -signal.SIGKILL, (kill_at, result.stderr.decode()[-3000:])


def check_consistent(run_dir) -> int:
    """Every checkpoint loads; the file's rows are each epoch once, none past ``last``; returns its step."""
    state = load_training_state(run_dir / "checkpoint_last.pt")
    if (run_dir / "checkpoint_best.pt").exists():
        load_training_state(run_dir / "checkpoint_best.pt")
    epochs = [row["epoch"] for row in rows(run_dir)] if (run_dir / "metrics.jsonl").exists() else []
    assert len(epochs) == len(set(epochs)), epochs
    return int(state["step"])


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_equals_the_uninterrupted_run(tiny_data, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    reference = tmp_path / "reference"
    done = subprocess.run(
        [sys.executable, "-m", "audioenc", *command(reference, tiny_data)],
        check=False,
        capture_output=True,
        env=environment(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    run_dir = tmp_path / "run"
    # 1. After the epoch-0 validation wrote its row and the step-0 checkpoint, before any step.
    run_killed(driver, run_dir, tiny_data, "after-epoch:0", resume=False)
    assert check_consistent(run_dir) == 0 and [row["epoch"] for row in rows(run_dir)] == [0]
    # 2. Inside the first checkpoint write of the resumed run (step 2): the step-0 one stays.
    run_killed(driver, run_dir, tiny_data, "mid-write:1", resume=True)
    assert check_consistent(run_dir) == 0
    assert list(run_dir.glob(".checkpoint_last.pt.*.tmp"))  # the half-written file, never renamed
    # 3. After checkpoint_last.pt of epoch 1 (step 4), before its row reached metrics.jsonl.
    run_killed(driver, run_dir, tiny_data, "after-last:4", resume=True)
    assert check_consistent(run_dir) == 4 and [row["epoch"] for row in rows(run_dir)] == [0]
    assert not list(run_dir.glob(".*.tmp"))  # the resume cleared what the killed write left
    # 4. After the best files of epoch 2 (step 8), before its checkpoint_last.pt: last is step 6.
    run_killed(driver, run_dir, tiny_data, "before-last:8", resume=True)
    assert check_consistent(run_dir) == 6 and [row["epoch"] for row in rows(run_dir)] == [0, 1]
    # 5. From outside, the moment the next checkpoint appears on disk.
    last = run_dir / "checkpoint_last.pt"
    seen = last.stat().st_mtime_ns
    process = subprocess.Popen(
        [sys.executable, "-m", "audioenc", *command(run_dir, tiny_data, "--resume")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(),
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and last.stat().st_mtime_ns == seen and time.monotonic() < deadline:
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    check_consistent(run_dir)
    # 6. Resume to the end.
    final = subprocess.run(
        [sys.executable, "-m", "audioenc", *command(run_dir, tiny_data, "--resume")],
        check=False,
        capture_output=True,
        env=environment(),
        timeout=300,
    )
    assert final.returncode == 0, final.stderr.decode()[-3000:]
    assert check_consistent(run_dir) == EPOCHS * UPDATES
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == EPOCHS * UPDATES
    assert [row["epoch"] for row in rows(run_dir)] == list(range(EPOCHS + 1))
    assert rows(run_dir) == rows(reference)  # exact resume: the same validation, to the last bit
    reference_summary = json.loads((reference / "summary.json").read_text())
    assert summary["rank_checksums"] == reference_summary["rank_checksums"]
    table = final.stdout.decode().splitlines()
    assert sum(1 for line in table if line.split()[:2] == ["0", "0"]) == 1  # the summary lists epoch 0 once
