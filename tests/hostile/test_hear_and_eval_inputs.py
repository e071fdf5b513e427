"""Hostile input to the HEAR API, `audioenc eval` and `audioenc report`: short and multichannel audio.

The HEAR API is a library: bad audio or rates raise ValueError (:class:`UserError`) with a clear
message, and loud audio embeds as itself rather than as silence. The commands leave out a file
they cannot score (one sample long; stereo whose channels cancel in a mono codec's downmix), name
it and keep the rest; with no file left they fail as one line and change nothing on disk.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioenc import hear
from audioenc.cli import main
from audioenc.errors import UserError
from audioenc.metrics import distances
from tests.hostile.test_cli_inputs import assert_one_line_error, tiny_model  # noqa: F401 (a fixture)

SR = 24000


def _tone(seconds: float, frequency: float = 440.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    return 0.3 * np.sin(2 * np.pi * frequency * t) + noise


def _tree_hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` -> sha256 of its bytes (an absent folder: {})."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _stdout_lines(capsys) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.out.splitlines()


@pytest.fixture
def hear_model(tiny_model):  # noqa: F811 (the imported fixture)
    return hear.load_model(str(tiny_model))


@pytest.fixture
def raw_codec(tmp_path) -> Path:
    """A tiny codec that does not normalise its input (embeddings depend on the gain)."""
    from audioenc.config import build_config
    from audioenc.models.codec import CodecModel
    from audioenc.models.files import export_model

    overrides = ["model.n_filters=2", "model.dimension=8", "model.lstm=0", "model.normalize=false"]
    config = build_config("1ch", "small", overrides).model
    return export_model(tmp_path / "raw", "model_best", CodecModel.from_config(config), config)


def _sounds() -> torch.Tensor:
    return 0.1 * torch.randn(2, 4800, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------ HEAR API


def test_hear_empty_batch_gives_empty_embeddings_of_the_right_shape(hear_model):
    audio = _sounds()
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, hear_model)
    empty, empty_times = hear.get_timestamp_embeddings(audio[:0], hear_model)
    assert empty.shape == (0, *embeddings.shape[1:]) and empty_times.shape == (0, timestamps.shape[1])
    assert hear.get_scene_embeddings(audio[:0], hear_model).shape == (0, hear_model.scene_embedding_size)
    # so a caller's empty last batch concatenates with the others
    assert torch.cat([embeddings, empty]).shape == embeddings.shape


@pytest.mark.parametrize("gain", [1e19, 1e30, 1e37])
def test_hear_loud_audio_embeds_as_the_same_audio_not_as_silence(hear_model, gain):
    audio = _sounds()
    reference = hear.get_scene_embeddings(audio, hear_model)
    silence = hear.get_scene_embeddings(torch.zeros_like(audio), hear_model)
    loud = hear.get_scene_embeddings(audio * gain, hear_model)
    torch.testing.assert_close(loud, reference, rtol=0, atol=1e-5)
    assert (loud - silence).abs().max() > 1e-3


def test_hear_float64_audio_beyond_float32_embeds_as_itself(hear_model):
    audio = _sounds()
    loud = hear.get_scene_embeddings(audio.double() * 1e300, hear_model)
    torch.testing.assert_close(loud, hear.get_scene_embeddings(audio, hear_model), rtol=0, atol=1e-5)


def test_hear_loud_audio_into_a_codec_that_does_not_normalise_is_refused(raw_codec):
    model = hear.load_model(str(raw_codec))
    assert torch.isfinite(hear.get_scene_embeddings(_sounds(), model)).all()
    with pytest.raises(ValueError, match=r"NaN/Inf embeddings for sound\(s\) \[0, 1\].*scale it down"):
        hear.get_scene_embeddings(_sounds() * 1e38, model)


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda x: torch.complex(x, x), "complex"),
        (lambda x: torch.complex(x, torch.zeros_like(x)), "complex"),
        (lambda x: (x * 32767).to(torch.int16), "torch.int16.*audio.float"),
        (lambda x: x > 0, "torch.bool"),
    ],
)
def test_hear_audio_that_is_not_real_float_is_refused(hear_model, make, needle):
    with pytest.raises(UserError, match=needle):
        hear.get_scene_embeddings(make(_sounds()), hear_model)


@pytest.mark.parametrize("rate", [1, 100, 3999, 768001, 10**9])
def test_hear_implausible_sample_rates_are_refused(tiny_model, rate):  # noqa: F811
    with pytest.raises(UserError, match=rf"sample_rate must be an integer >= 4000 and <= 768000; got {rate}\."):
        hear.load_model(str(tiny_model), sample_rate=rate)


def test_hear_plausible_rates_of_any_integer_type_and_a_one_sample_sound(tiny_model):  # noqa: F811
    assert hear.load_model(str(tiny_model), sample_rate=np.int64(16000)).sample_rate == 16000
    model = hear.load_model(str(tiny_model), sample_rate=8000)
    embeddings, timestamps = hear.get_timestamp_embeddings(torch.full((1, 1), 0.5), model)
    assert embeddings.shape == (1, 1, model.timestamp_embedding_size) and torch.isfinite(embeddings).all()


@pytest.mark.parametrize(
    "option, value",
    [("batch_size", 2.5), ("batch_size", True), ("batch_size", 0), ("chunk_frames", "4"), ("chunk_frames", -1)],
)
def test_hear_codec_options_that_are_not_counts_are_refused(tiny_model, option, value):  # noqa: F811
    with pytest.raises(UserError, match=rf"{option} must be an integer >= 1; got {value!r}\."):
        hear.load_model(str(tiny_model), **{option: value})


# ------------------------------------------------------------------------------ the distances


def test_distances_say_how_many_samples_they_need():
    short = np.zeros((1, distances.MIN_SAMPLES - 1))
    with pytest.raises(ValueError, match=f"{distances.MIN_SAMPLES - 1} samples is too short.*1025"):
        distances.mel_distance(short, short, SR)
    with pytest.raises(ValueError, match="too short"):
        distances.stft_distance(short, short)
    enough = 0.1 * np.random.default_rng(0).standard_normal((1, distances.MIN_SAMPLES))
    assert distances.mel_distance(enough, enough, SR) == 0.0 and distances.stft_distance(enough, enough) == 0.0


# --------------------------------------------------------------------------- eval and report


def _data(tmp_path: Path, **files: np.ndarray) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    for name, audio in files.items():
        sf.write(folder / f"{name}.wav", audio, SR, subtype="FLOAT")
    return folder


EVAL = ["--no-perceptual", "--no-progress", "--references", "input", "--resamples", "20"]


def test_eval_leaves_out_a_one_sample_file_and_keeps_the_rest(tiny_model, tmp_path, capsys):  # noqa: F811
    data = _data(tmp_path, a_good=_tone(0.5), b_one=np.array([0.1]))
    out = tmp_path / "out"
    assert main(["eval", str(tiny_model), "--data", str(data), "--out", str(out), *EVAL]) == 0
    lines = _stdout_lines(capsys)
    (left_out,) = [line for line in lines if line.startswith("file left out:")]
    assert "b_one.wav" in left_out and "1 sample(s)" in left_out and "at least 1025 samples" in left_out
    document = json.loads((out / "evaluation.json").read_text())
    assert {Path(row["file"]).name for row in document["rows"]} == {"a_good.wav"}
    assert list(map(lambda name: Path(name).name, document["failed_files"])) == ["b_one.wav"]


def _earlier_results(out: Path) -> dict[str, str]:
    out.mkdir()
    (out / "per_file.csv").write_text("file,system\nold.wav,codec\n")
    (out / "evaluation.json").write_text('{"rows": []}\n')
    (out / "report.html").write_text("<!DOCTYPE html><p>earlier page</p>\n")
    return _tree_hashes(out)


def test_eval_on_one_sample_files_only_is_one_line_and_changes_nothing(tiny_model, tmp_path, capsys):  # noqa: F811
    data = _data(tmp_path, one=np.array([0.1]), two=np.array([0.1, -0.1]))
    out = tmp_path / "out"
    before = _earlier_results(out)
    argv = ["eval", str(tiny_model), "--data", str(data), "--out", str(out), "--overwrite", "--report", *EVAL]
    assert main(argv) == 2
    assert_one_line_error(capsys, "eval", "no file could be evaluated", "one.wav", "at least 1025 samples")
    assert _tree_hashes(out) == before


def test_report_leaves_out_a_one_sample_file_and_names_it_on_the_page(tiny_model, tmp_path, capsys):  # noqa: F811
    data = _data(tmp_path, a_one=np.array([0.1]), b_good=_tone(0.5))
    out = tmp_path / "report"
    assert main(["report", str(tiny_model), "--data", str(data), "--out", str(out), "--files", "1"]) == 0
    (left_out,) = [line for line in _stdout_lines(capsys) if line.startswith("file left out:")]
    assert "a_one.wav" in left_out and "at least 1025 samples" in left_out
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h3>b_good.wav (mono)</h3>" in page  # --files 1: the usable file is shown
    assert "Files left out" in page and "a_one.wav: 1 sample(s)" in page


def test_report_on_one_sample_files_only_is_one_line_and_changes_nothing(tiny_model, tmp_path, capsys):  # noqa: F811
    data = _data(tmp_path, one=np.array([0.1]))
    out = tmp_path / "report"
    before = _earlier_results(out)
    assert main(["report", str(tiny_model), "--data", str(data), "--out", str(out), "--overwrite"]) == 2
    assert_one_line_error(capsys, "report", "one.wav", "at least 1025 samples")
    assert _tree_hashes(out) == before


@pytest.mark.parametrize("command, option", [("eval", "--max-seconds"), ("report", "--seconds")])
def test_seconds_shorter_than_the_measures_need_are_one_line(
    command,
    option,
    tiny_model,  # noqa: F811 (the fixture imported above)
    tmp_path,
    capsys,
):
    data = _data(tmp_path, good=_tone(0.5))
    out = tmp_path / "out"
    before = _earlier_results(out)
    extra = [*EVAL, "--overwrite"] if command == "eval" else ["--overwrite"]
    assert main([command, str(tiny_model), "--data", str(data), "--out", str(out), option, "0.01", *extra]) == 2
    assert_one_line_error(capsys, command, f"{option} 0.01 keeps 240 samples", "at least 1025")
    assert _tree_hashes(out) == before


def _cancelling(channels: int) -> np.ndarray:
    """``channels`` channels of one tone with alternating signs: a mono downmix of exactly nothing."""
    tone = _tone(0.5)
    return np.stack([tone * (-1) ** k for k in range(channels)], axis=1)


@pytest.mark.parametrize("channels", [2, 32])
def test_eval_leaves_out_channels_that_cancel_in_the_mono_downmix(
    channels,
    tiny_model,  # noqa: F811 (the fixture imported above)
    tmp_path,
    capsys,
):
    independent = np.stack([_tone(0.5, 440, seed=1), _tone(0.5, 700, seed=2)], axis=1)
    data = _data(tmp_path, anti=_cancelling(channels), mono=_tone(0.5), stereo=independent)
    out = tmp_path / "out"
    assert main(["eval", str(tiny_model), "--data", str(data), "--out", str(out), *EVAL]) == 0
    lines = _stdout_lines(capsys)
    assert "channels scored: mono (1 file), mono downmix of 2 channels (1 file)" in lines
    (left_out,) = [line for line in lines if line.startswith("file left out:")]
    assert "anti.wav" in left_out and f"its {channels} channels cancel in the mono downmix" in left_out
    assert "remix 1" in left_out
    document = json.loads((out / "evaluation.json").read_text())
    assert {Path(row["file"]).name for row in document["rows"]} == {"mono.wav", "stereo.wav"}
    scored = {Path(row["file"]).name: row["scored"] for row in document["rows"]}
    assert scored == {"mono.wav": "mono", "stereo.wav": "mono downmix of 2 channels"}
    csv_header = (out / "per_file.csv").read_text().splitlines()[0].split(",")
    assert csv_header[:7] == ["file", "system", "kind", "kbps", "seconds", "channels", "scored"]


def test_report_refuses_a_cancelling_stereo_file_alone(tiny_model, tmp_path, capsys):  # noqa: F811
    data = _data(tmp_path, anti=_cancelling(2))
    out = tmp_path / "report"
    assert main(["report", str(tiny_model), "--data", str(data), "--out", str(out)]) == 2
    assert_one_line_error(capsys, "report", "anti.wav", "cancel in the mono downmix")
    assert not out.exists()


def test_a_downmix_that_only_partly_cancels_is_scored_and_said(tiny_model, tmp_path, capsys):  # noqa: F811
    """Correlation -0.5: the downmix is 3 dB below uncorrelated channels', well within the 10 dB."""
    left = _tone(0.5, 440, seed=3)
    other = _tone(0.5, 1234, seed=4)
    right = -0.5 * left + math.sqrt(0.75) * other
    data = _data(tmp_path, partial=np.stack([left, right], axis=1))
    assert main(["eval", str(tiny_model), "--data", str(data), *EVAL]) == 0
    lines = _stdout_lines(capsys)
    assert "channels scored: mono downmix of 2 channels (1 file)" in lines
    assert not any(line.startswith("file left out:") for line in lines)
