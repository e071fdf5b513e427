"""The short encoder demo writes its table, PNG, JSON and note, with this run's numbers; the
`audioenc demo` command and the academy script reach it."""

from __future__ import annotations

import csv
import json
import runpy
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from audioenc import cli
from audioenc.timing import demo
from audioenc.timing.demo import DemoConfig, make_demo_clips, run_short_demo

SMALL = DemoConfig(train_clips=12, eval_clips=6, steps=30, seed=0)
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "academy/examples/speech-audio-encoder-recipes/audio_encoder_demo.py"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_short_demo(out, SMALL, echo=False)


def test_writes_table_png_json_and_note(small_run):
    out, result = small_run
    for name in ("clips.tsv", "demo.png", "demo.json", "note.md"):
        assert (out / name).is_file(), name
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "clips.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == SMALL.eval_clips
    assert {"event", "mean_pool", "max_pool", "peak_s", "onset_s", "peak-onset_s"} <= set(rows[0])
    assert json.loads((out / "demo.json").read_text())["summary"] == result["summary"]


def test_table_matches_the_clips_and_pooling_order(small_run):
    _, result = small_run
    clips = make_demo_clips(SMALL.eval_clips, SMALL, stream=1)
    for row, clip in zip(result["clips"], clips):
        assert row["event_present"] == (clip.onset is not None)
        assert row["true_onset"] == clip.onset and row["true_offset"] == clip.offset
        # Both are weighted averages of the same frame scores: mean <= max, both in [0, 1].
        assert 0.0 <= row["mean_pooled"] <= row["max_pooled"] <= 1.0
        if clip.onset is not None:
            assert row["peak_minus_onset"] == pytest.approx(row["peak_time"] - clip.onset)
    assert result["summary"]["positives"] == SMALL.eval_clips // 2


def test_note_carries_this_runs_numbers(small_run):
    out, result = small_run
    note = (out / "note.md").read_text()
    summary = result["summary"]
    assert note.startswith("# Learner's note")
    assert f"{summary['mean_pooled_positive_average']:.3f}" in note
    assert f"{summary['max_pooled_positive_average']:.3f}" in note
    assert f"{summary['peaks_inside_event']}/{summary['positives']} positive clips" in note
    assert "## 2. Pooling choice" in note  # the rest of the note is left for the workflow


def test_demo_clips_put_short_beeps_at_known_times_and_distractors_away_from_them():
    clips = make_demo_clips(40, DemoConfig(), stream=1)
    for index, clip in enumerate(clips):
        assert len(clip.audio) == int(DemoConfig().clip_seconds * 24_000)
        assert (clip.onset is not None) == (index % 2 == 0)
        if clip.onset is not None:
            assert 0.2 - 1e-9 <= clip.offset - clip.onset <= 0.5 + 1e-9
    assert any(clip.distractor for clip in clips)


def test_same_seed_same_numbers(small_run, tmp_path):
    _, first = small_run
    second = run_short_demo(tmp_path, SMALL, echo=False)
    assert first["clips"] == second["clips"] and first["summary"] == second["summary"]


def test_audioenc_demo_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DemoConfig", partial(replace, SMALL))
    assert cli.main(["demo", "--short", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "note.md").is_file()
    assert "mean pooling" in capsys.readouterr().out


def test_academy_script_is_a_thin_entry_into_the_demo(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DemoConfig", partial(replace, SMALL))
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--out", str(tmp_path / "academy")])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_info.value.code == 0
    assert (tmp_path / "academy" / "demo.png").is_file()


@pytest.mark.slow
def test_academy_command_exactly_as_the_track_writes_it(tmp_path):
    """The track's command, run from the repository root with the project's Python (what
    academy/.venv/bin/python links to), full default size; output into runs/demo/ under the
    current folder, here a temporary one via --out to keep the checkout clean."""
    completed = subprocess.run(
        [sys.executable, str(SCRIPT.relative_to(REPO)), "--out", str(tmp_path / "runs" / "demo")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads((tmp_path / "runs" / "demo" / "demo.json").read_text())
    summary = result["summary"]
    # The story the demo exists to tell, on its default seed: mean pooling lets no positive
    # reach 0.5, max pooling lets most through, and the frame peaks sit inside the beeps.
    assert summary["positives_above_half"]["mean_pooled"] == 0
    assert summary["positives_above_half"]["max_pooled"] >= summary["positives"] - 1
    assert summary["peaks_inside_event"] >= summary["positives"] - 2
    assert np.isfinite(result["wall_seconds"])
    assert "mean pooling" in completed.stdout
