"""The story (`audioenc demo`, the README's main job): its closing lines read a missing number as
"n/a", and the whole story, at tiny sizes, writes every file it names with finite numbers."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from audioenc.cli import main
from audioenc.config import build_config
from audioenc.story import codec_line, format_distance, run_story, untrained_distance
from audioenc.timing.demo import DemoConfig
from audioenc.timing.workflow import WorkflowSettings
from audioenc.training.trainer import Trainer
from tests.hostile.test_cli_inputs import assert_one_line_error

TINY_CODEC = (
    "model.n_filters=2",
    "model.dimension=8",
    "model.n_q=4",
    "model.lstm=1",
    "discriminator.filters=2",
    "data.num_workers=0",
    "data.valid_segments=2",
    "data.segment_seconds=0.2",
    "train.batch_size=2",
    "train.epochs=2",
    "train.updates_per_epoch=2",
    "train.adversarial_warmup_steps=0",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.logger=none",
    "train.device=cpu",
)


def _numbers(value):
    """Every number in a JSON-like value (None, a metric with nothing to measure, is skipped)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield float(value)


def test_closing_line_reads_a_missing_baseline_as_not_available():
    codec = {"valid_mel_distance_untrained": None, "valid_mel_distance_best": 1.23456, "steps": 7}
    assert codec_line(codec) == "codec: validation mel distance n/a (untrained) -> 1.2346 (best) after 7 steps"
    assert format_distance(None) == "n/a" and format_distance(0.5) == "0.5000"


def test_untrained_distance_is_the_epoch_zero_row_only(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(row) + "\n" for row in [{"epoch": 3, "mel_distance": 0.9}, {"epoch": 4}]))
    assert untrained_distance(metrics) is None  # a resumed run's history starts after the baseline
    metrics.write_text(json.dumps({"epoch": 0, "mel_distance": 2.5}) + "\n\n" + json.dumps({"epoch": 1}) + "\n")
    assert untrained_distance(metrics) == 2.5


def _hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its sha256: what "nothing was written" compares."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def earlier_story(tmp_path) -> Path:
    """A story folder as `audioenc demo` (seed 0) leaves it mid-codec: the short demo's note and the
    codec's first checkpoint, made with the story's own codec configuration."""
    out = tmp_path / "story"
    (out / "demo").mkdir(parents=True)
    (out / "demo" / "note.md").write_text("seed 0's short demo\n")
    Trainer(build_config("1ch", "small", ["train.seed=0"]), out / "codec", torch.device("cpu")).save("last")
    return out


def test_rerun_with_another_seed_is_refused_before_anything_is_written(earlier_story, capsys):
    before = _hashes(earlier_story)
    assert main(["demo", "--out", str(earlier_story), "--seed", "1", "--no-progress"]) == 2
    assert_one_line_error(
        capsys,
        "demo",
        f"--out {earlier_story}",
        "train.seed: checkpoint 0, now 1",
        "rerun with that story's --seed",
        "choose a new --out",
    )
    assert _hashes(earlier_story) == before  # the short demo was not redone with seed 1


def test_damaged_codec_checkpoint_is_refused_before_anything_is_written(earlier_story, capsys):
    checkpoint = earlier_story / "codec" / "checkpoint_last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    before = _hashes(earlier_story)
    assert main(["demo", "--out", str(earlier_story), "--no-progress"]) == 2
    assert_one_line_error(
        capsys,
        "demo",
        f"--out {earlier_story}",
        str(checkpoint),
        "cannot be continued",
        f"delete {earlier_story / 'codec'}",
    )
    assert _hashes(earlier_story) == before


@pytest.mark.parametrize("part", ["demo", "codec", "workflow"])
def test_a_file_where_a_part_folder_goes_is_refused_before_anything_is_written(tmp_path, part, capsys):
    out = tmp_path / "story"
    out.mkdir()
    (out / part).write_text("not a folder\n")
    before = _hashes(out)
    assert main(["demo", "--out", str(out), "--no-progress"]) == 2
    assert_one_line_error(capsys, "demo", f"--out {out}", f"{out / part} is a file", "choose a new --out")
    assert _hashes(out) == before


def test_checkpoint_that_is_a_folder_is_refused_before_anything_is_written(earlier_story, capsys):
    checkpoint = earlier_story / "codec" / "checkpoint_last.pt"
    checkpoint.unlink()
    checkpoint.mkdir()
    before = _hashes(earlier_story)
    assert main(["demo", "--out", str(earlier_story), "--no-progress"]) == 2
    assert_one_line_error(capsys, "demo", f"--out {earlier_story}", "cannot be continued")
    assert _hashes(earlier_story) == before


@pytest.mark.slow
def test_the_whole_story_at_tiny_sizes_writes_what_it_names(tmp_path, capsys):
    out = tmp_path / "story"
    headline = run_story(
        out,
        seed=0,
        progress=False,
        demo_config=DemoConfig(train_clips=12, eval_clips=6, steps=30),
        codec_overrides=TINY_CODEC,
        workflow_settings=WorkflowSettings.fast(),
    )
    printed = capsys.readouterr().out
    assert json.loads((out / "story.json").read_text()) == json.loads(json.dumps(headline, default=str))
    codec = headline["codec"]
    assert codec["steps"] == 4
    for key in ("valid_mel_distance_untrained", "valid_mel_distance_best"):
        assert isinstance(codec[key], float) and math.isfinite(codec[key]), key
    assert codec_line(codec) in printed
    for path in (codec["model"], headline["listening_report"], headline["workflow_report"], *headline["demo"].values()):
        assert Path(path).is_file() and Path(path).stat().st_size > 0, path
    # The listening report (report_with_references) compares the story's codec with the references.
    listening = Path(headline["listening_report"])
    page = listening.read_text()
    assert str(out / "codec") in page and "<h2>Metrics</h2>" in page and "mel_distance" in page
    evaluation = json.loads((listening.parent / "evaluation.json").read_text())
    assert "codec" in json.dumps(evaluation) and "opus" in json.dumps(evaluation)
    # The workflow ran with the codec's encoder frozen, and its report says so.
    report = Path(headline["workflow_report"]).read_text()
    assert f"Encoder: `{out / 'codec'}`" in report
    assert headline["workflow"]["encoder"] == str(out / "codec")
    assert 0.0 <= headline["workflow"]["frozen"]["clip_map"] <= 1.0
    numbers = list(_numbers(headline))
    assert len(numbers) > 10 and all(math.isfinite(value) for value in numbers)
    for name in ("demo_seconds", "codec_seconds", "listening_report_seconds", "workflow_seconds"):
        assert math.isfinite(headline[name]) and headline[name] > 0, name
    assert f"listening report (open in a browser): {listening}" in printed
