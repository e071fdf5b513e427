"""Writing outputs safely: one overwrite rule, one lock per run folder, Ctrl-C that leaves nothing.

Every command that writes refuses an existing file or non-empty folder unless ``--overwrite`` (one
line, exit 2, the output named, the disk byte for byte as it was); an output that cannot be written
is refused before any work. Two processes on one run folder: the second is refused naming the first's
pid; a killed holder does not block a resume. Ctrl-C in ``export`` or ``eval`` prints one line, exits
130 and leaves no partial output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.cli import main
from audioenc.outputs import LOCK_NAME, RunFolderLock
from tests.hostile.test_cli_inputs import assert_one_line_error
from tests.hostile.test_resume_guards import train_argv
from tests.training.conftest import make_audio_folder

REPO = Path(__file__).resolve().parents[2]
EVAL_FAST = ["--no-perceptual", "--references", "input", "--no-progress", "--resamples", "20"]


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its sha256: what "nothing changed" compares."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def tiny_model(tmp_path):
    """A tiny exported continuous codec (weights + json)."""
    import torch

    from audioenc.config import build_config
    from audioenc.models.codec import CodecModel
    from audioenc.models.files import export_model

    config = build_config("1ch", "small", ["model.n_filters=2", "model.dimension=8", "model.lstm=0"]).model
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CodecModel.from_config(config)
    return export_model(tmp_path / "model", "model_best", model, config)


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    t = np.arange(24000) / 24000
    sf.write(folder / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 24000)
    return folder


# ------------------------------------------------------------------ the overwrite rule


def test_encode_and_decode_refuse_an_existing_out_unless_overwrite(tiny_model, clips, tmp_path, capsys):
    encoded, decoded = tmp_path / "w" / "a.safetensors", tmp_path / "w" / "a.wav"
    encoded.parent.mkdir()
    encoded.write_bytes(b"earlier codes")
    decoded.write_bytes(b"earlier audio")
    before = digest(tmp_path / "w")
    assert main(["encode", str(clips / "a.wav"), str(encoded), "--model", str(tiny_model)]) == 2
    assert_one_line_error(capsys, "encode", str(encoded), "already exists", "--overwrite")
    assert main(["decode", str(encoded), str(decoded), "--model", str(tiny_model)]) == 2
    assert_one_line_error(capsys, "decode", str(decoded), "already exists", "--overwrite")
    assert digest(tmp_path / "w") == before
    assert (
        main(["encode", str(clips / "a.wav"), str(encoded), "--model", str(tiny_model), "--overwrite", "--quiet"]) == 0
    )
    assert main(["decode", str(encoded), str(decoded), "--model", str(tiny_model), "--overwrite", "--quiet"]) == 0
    assert sf.info(str(decoded)).frames > 0 and encoded.read_bytes() != b"earlier codes"


def test_eval_refuses_earlier_results_and_overwrite_replaces_them(tiny_model, clips, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "evaluation.json").write_text('{"earlier": true}\n')
    (out / "report.html").write_text("<p>an earlier report</p>\n")
    before = digest(out)
    assert main(["eval", str(tiny_model), "--data", str(clips), "--out", str(out), *EVAL_FAST]) == 2
    assert_one_line_error(capsys, "eval", f"--out {out}", "already holds files", "--overwrite")
    assert digest(out) == before
    assert main(["eval", str(tiny_model), "--data", str(clips), "--out", str(out), "--overwrite", *EVAL_FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.json", "per_file.csv"]  # the stale page is gone
    assert "earlier" not in json.loads((out / "evaluation.json").read_text())


@pytest.mark.parametrize("case", ["parent is a file", "out is a file"])
def test_eval_out_that_cannot_be_written_is_refused_before_any_work(
    tiny_model, clips, tmp_path, capsys, monkeypatch, case
):
    import audioenc.models.files

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(audioenc.models.files, "load_codec", no_work)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file\n")
    out = blocker / "results" if case == "parent is a file" else blocker
    assert main(["eval", str(tiny_model), "--data", str(clips), "--out", str(out), *EVAL_FAST]) == 2
    line = assert_one_line_error(capsys, "eval", str(out), "is a file, not a folder")
    assert ("cannot be written" in line) == (case == "parent is a file")
    assert blocker.read_text() == "a file\n"


def test_workflow_refuses_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "workflow"
    (out / "5_probe").mkdir(parents=True)
    (out / "report.json").write_text('{"earlier": true}\n')
    (out / "5_probe" / "result.json").write_text("{}\n")
    before = digest(out)
    assert main(["workflow", "--out", str(out), "--fast"]) == 2
    assert_one_line_error(capsys, "workflow", f"--out {out}", "already holds files", "--overwrite")
    assert digest(out) == before


def test_workflow_takes_the_run_folder_lock(tmp_path, capsys):
    out = tmp_path / "workflow"
    out.mkdir()
    with RunFolderLock(out, "--out"):  # this process holds it: the command is a second holder
        assert main(["workflow", "--out", str(out), "--fast", "--overwrite"]) == 2
        assert_one_line_error(capsys, "workflow", str(out), f"in use by process {os.getpid()}")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    assert list(out.iterdir()) == []  # the lock file goes with its holder


def test_report_refuses_an_earlier_report_and_overwrite_replaces_it(tiny_model, clips, tmp_path, capsys):
    """The report folder may hold other files (a run folder does); an earlier report.html is what is kept."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "report.html").write_text("earlier\n")
    (out / "notes.txt").write_text("mine\n")
    before = digest(out)
    argv = ["report", str(tiny_model), "--data", str(clips), "--out", str(out), "--files", "1", "--seconds", "1"]
    assert main(argv) == 2
    assert_one_line_error(capsys, "report", str(out / "report.html"), "--overwrite")
    assert digest(out) == before
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert (out / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("kind", ["non-empty folder", "file"])
def test_export_refuses_an_existing_out(tiny_model, tmp_path, capsys, kind):
    out = tmp_path / "exported"
    if kind == "file":
        out.write_text("mine\n")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine\n")
    before = digest(tmp_path)
    assert main(["export", str(tiny_model), "--format", "onnx", str(out)]) == 2
    needle = "is a file, not a folder" if kind == "file" else "--overwrite"
    assert_one_line_error(capsys, "export", f"OUT {out}", needle)
    assert digest(tmp_path) == before


@pytest.mark.slow
def test_export_overwrite_replaces_the_folder_once_the_new_export_is_complete(tiny_model, tmp_path, capsys):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "notes.txt").write_text("an earlier export\n")
    assert main(["export", str(tiny_model), "--format", "onnx", str(out), "--overwrite"]) == 0
    assert f"wrote {out}:" in capsys.readouterr().out
    assert "notes.txt" not in {p.name for p in out.iterdir()} and (out / "audioenc_onnx.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ------------------------------------------------------------------ Ctrl-C leaves nothing behind


def assert_interrupted(capsys, command: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [f"audioenc {command}: interrupted (Ctrl-C)."]


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("earlier", [False, True])
def test_ctrl_c_during_export_leaves_nothing(tiny_model, tmp_path, capsys, monkeypatch, earlier):
    import audioenc.interop.onnx as onnx_export

    def half_written(graph, path: Path) -> None:  # Ctrl-C while the first graph file is being written
        path.write_bytes(b"half a graph")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "_export", half_written)
    parent = tmp_path / "exports"
    parent.mkdir()
    out = parent / "codec"
    if earlier:  # --overwrite keeps the earlier export until the new one is complete
        out.mkdir()
        (out / "audioenc_onnx.json").write_text("{}\n")
    before = digest(parent)
    argv = ["export", str(tiny_model), "--format", "onnx", str(out), *(["--overwrite"] if earlier else [])]
    assert main(argv) == 130
    assert_interrupted(capsys, "export")
    assert digest(parent) == before and sorted(p.name for p in parent.iterdir()) == (["codec"] if earlier else [])


@pytest.mark.parametrize("where", ["evaluating", "writing the report"])
def test_ctrl_c_during_eval_leaves_nothing(tiny_model, clips, tmp_path, capsys, monkeypatch, where):
    import audioenc.listening_report
    import audioenc.metrics.file_evaluation

    if where == "evaluating":
        monkeypatch.setattr(audioenc.metrics.file_evaluation, "evaluate_files", ctrl_c)
    else:  # per_file.csv and evaluation.json are written by then
        monkeypatch.setattr(audioenc.listening_report, "write_report", ctrl_c)
    parent = tmp_path / "results"
    parent.mkdir()
    assert (
        main(["eval", str(tiny_model), "--data", str(clips), "--out", str(parent / "eval"), "--report", *EVAL_FAST])
        == 130
    )
    assert_interrupted(capsys, "eval")
    assert list(parent.iterdir()) == []


# ------------------------------------------------------------------ one process per run folder


def train_process(run_dir: Path, data: Path, *extra: str) -> subprocess.Popen:
    import audioenc  # the subprocess runs the audioenc this test imported, and finds tests/ for nothing else

    source = Path(audioenc.__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(source), str(REPO)])}
    return subprocess.Popen(
        [sys.executable, "-m", "audioenc", *train_argv(run_dir, data, *extra)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_holder(process: subprocess.Popen, run_dir: Path, timeout: float = 120.0) -> None:
    """Until ``process`` has written its pid into the run folder's lock file."""
    deadline = time.monotonic() + timeout
    lock = run_dir / LOCK_NAME
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if lock.exists() and lock.read_text().strip() == str(process.pid):
            return
        time.sleep(0.02)
    raise AssertionError("the training process never took the run folder")


def test_a_second_train_on_the_same_run_folder_is_refused(tmp_path):
    data = make_audio_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    first = train_process(run_dir, data)
    try:
        wait_for_holder(first, run_dir)
        first.send_signal(signal.SIGSTOP)  # holds the folder for as long as the second one needs
        before = digest(run_dir)
        second = train_process(run_dir, data)
        _, err = second.communicate(timeout=300)
        assert digest(run_dir) == before
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("audioenc train: error: --run-dir "), err
    assert f"in use by process {first.pid}" in lines[0]
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs = [row["epoch"] for row in rows]
    assert epochs == sorted(set(epochs)) and max(epochs) == 2  # every epoch once
    assert not (run_dir / LOCK_NAME).exists()


def test_a_killed_holder_does_not_block_the_resume(tmp_path, capsys):
    data = make_audio_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    assert main(train_argv(run_dir, data, "train.epochs=1")) == 0
    capsys.readouterr()
    holder = train_process(run_dir, data, "--resume", "train.epochs=2")
    try:
        wait_for_holder(holder, run_dir)
        holder.send_signal(signal.SIGSTOP)
        before = digest(run_dir)
        assert main(train_argv(run_dir, data, "--resume", "train.epochs=2")) == 2  # two resumes at once
        assert_one_line_error(capsys, "train", f"in use by process {holder.pid}")
        assert digest(run_dir) == before
    finally:
        holder.kill()
        holder.communicate(timeout=60)
    assert (run_dir / LOCK_NAME).read_text().strip() == str(holder.pid)  # stale: its holder is dead
    assert main(train_argv(run_dir, data, "--resume", "train.epochs=2")) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [row["epoch"] for row in rows][-1] == 2 and not (run_dir / LOCK_NAME).exists()


def test_refused_new_run_over_a_held_folder_removes_nothing(tmp_path, capsys):
    data = make_audio_folder(tmp_path / "data")
    run_dir = tmp_path / "runs" / "new"
    with RunFolderLock(run_dir, "--run-dir"):
        assert main(train_argv(run_dir, data)) == 2
        assert_one_line_error(capsys, "train", str(run_dir), f"in use by process {os.getpid()}")
        assert (run_dir / LOCK_NAME).exists()  # the folder it did not make is not removed under its holder
    shutil.rmtree(tmp_path / "runs")


@pytest.mark.parametrize("case", ["run-dir is a file", "its parent is a file"])
def test_a_run_dir_that_cannot_be_a_folder_is_named(tmp_path, capsys, case):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file\n")
    run_dir = blocker if case == "run-dir is a file" else blocker / "run"
    assert main(train_argv(run_dir, tmp_path)) == 2
    assert_one_line_error(capsys, "train", f"--run-dir {run_dir}", "is a file, not a folder")
    assert digest(tmp_path) == {"blocker": hashlib.sha256(b"a file\n").hexdigest()}


def test_a_new_run_never_replaces_files_that_carry_a_runs_names(tmp_path, capsys):
    """A folder of the user's files that a run would write over (a summary.json of their own) is refused."""
    run_dir = tmp_path / "results"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text('{"mine": true}\n')
    (run_dir / "notes.txt").write_text("mine\n")
    before = digest(tmp_path)
    assert main(train_argv(run_dir, tmp_path)) == 2
    assert_one_line_error(capsys, "train", f"--run-dir {run_dir}", "summary.json", "new or empty --run-dir")
    assert digest(tmp_path) == before
