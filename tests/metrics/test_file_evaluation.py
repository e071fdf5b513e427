"""File-by-file evaluation: rows, the bootstrap summary, the written CSV/JSON, what is skipped and
why, files that cannot be read, and the spatial measures of multichannel codecs."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf
import soxr

from audioenc.errors import UserError
from audioenc.metrics import distances, systems
from audioenc.metrics.file_evaluation import (
    EvalSettings,
    evaluate_files,
    format_summary,
)

SR = 24000
FAST = EvalSettings(perceptual=False, resamples=200)


def _tone(rate: int, seconds: float, freqs: tuple[float, ...], seed: int, level: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(rate * seconds)) / rate
    x = sum(np.sin(2 * np.pi * f * t + i) / (i + 1) for i, f in enumerate(freqs))
    x = x + 0.05 * rng.standard_normal(len(t))
    return level * x / np.abs(x).max()


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """Two 1 s mono files at 24 kHz and one 1 s stereo file at 16 kHz (different channels)."""
    folder = tmp_path_factory.mktemp("data")
    sf.write(folder / "a.wav", _tone(SR, 1.0, (220, 440, 880, 3000), 0), SR, subtype="FLOAT")
    sf.write(folder / "b.wav", _tone(SR, 1.0, (330, 990, 5000), 1, level=0.1), SR, subtype="FLOAT")
    stereo = np.stack([_tone(16000, 1.0, (440, 1200), 2), _tone(16000, 1.0, (660, 2500), 3)], axis=1)
    sf.write(folder / "c.wav", stereo, 16000, subtype="FLOAT")
    return [folder / "a.wav", folder / "b.wav", folder / "c.wav"]


@pytest.fixture(scope="module")
def mono_evaluation(three_files):
    return evaluate_files(three_files, [systems.identity(), systems.mu_law(SR)], SR, 1, FAST, progress=False)


def _rows(evaluation, system):
    return [row for row in evaluation.rows if row["system"] == system]


def test_one_row_per_file_and_system(mono_evaluation, three_files):
    evaluation = mono_evaluation
    assert len(evaluation.rows) == len(three_files) * 2
    assert evaluation.systems() == ["input", "mulaw-8k"]
    assert evaluation.measures == ["si_sdr", "mel_distance", "stft_distance"]
    assert evaluation.failed_files == {}
    assert {row["file"] for row in evaluation.rows} == {str(path) for path in three_files}
    for row in evaluation.rows:
        assert row["channels"] == 1 and row["seconds"] == pytest.approx(1.0, abs=1 / SR)
    for row in _rows(evaluation, "input"):
        assert row["si_sdr"] == math.inf
        assert row["mel_distance"] == 0.0 and row["stft_distance"] == 0.0
        assert (row["kind"], row["kbps"]) == ("bound", None)
    for row in _rows(evaluation, "mulaw-8k"):
        assert 10 < row["si_sdr"] < math.inf and row["mel_distance"] > 0 and row["stft_distance"] > 0
        assert (row["kind"], row["kbps"]) == ("reference", 64.0)


def test_a_stereo_16khz_file_is_resampled_and_downmixed_for_a_mono_codec(three_files):
    """The codec hears the downmix resampled to 24 kHz, and the row holds the measures computed by
    hand on it (float64 here; the library reads float32)."""
    heard = []
    spy = systems.System("spy", None, lambda audio: heard.append(audio.copy()) or audio[:, ::-1].copy())
    evaluation = evaluate_files(three_files[2:], [spy, systems.mu_law(SR)], SR, 1, FAST, progress=False)
    data, rate = sf.read(three_files[2], dtype="float64")
    assert rate == 16000 and data.shape == (16000, 2)
    audio = soxr.resample(data.mean(axis=1), 16000, SR, quality="HQ")[None]
    (given,) = heard
    assert given.shape == (1, SR) and given.dtype == np.float64
    np.testing.assert_allclose(given, audio, atol=1e-6)
    assert np.abs(audio - soxr.resample(data[:, 0], 16000, SR, quality="HQ")[None]).max() > 0.1  # not channel 1
    estimate = systems.mu_law(SR).reconstruct(audio)
    row = _rows(evaluation, "mulaw-8k")[0]
    assert row["channels"] == 1 and row["seconds"] == 1.0
    assert row["si_sdr"] == pytest.approx(distances.si_sdr(audio, estimate), abs=1e-3)
    assert row["mel_distance"] == pytest.approx(distances.mel_distance(audio, estimate, SR), rel=1e-3)
    assert row["stft_distance"] == pytest.approx(distances.stft_distance(audio, estimate), rel=1e-3)
    reversed_row = _rows(evaluation, "spy")[0]
    assert reversed_row["si_sdr"] == pytest.approx(distances.si_sdr(audio, audio[:, ::-1]), abs=1e-3)


def test_summary_means_and_paired_bootstrap_intervals(mono_evaluation):
    resamples, seed = 300, 4
    summary = mono_evaluation.summary(resamples, seed)
    assert [entry["system"] for entry in summary] == ["input", "mulaw-8k"]
    files = list(dict.fromkeys(row["file"] for row in mono_evaluation.rows))
    indices = np.random.default_rng(seed).integers(0, len(files), size=(resamples, len(files)))
    for entry in summary:
        assert entry["files"] == 3
        rows = {row["file"]: row for row in _rows(mono_evaluation, entry["system"])}
        assert set(entry["measures"]) == {"si_sdr", "mel_distance", "stft_distance"}
        for measure, stats in entry["measures"].items():
            values = np.array([rows[name][measure] for name in files])
            assert stats["files"] == 3
            assert stats["low"] <= stats["mean"] <= stats["high"], (entry["system"], measure, stats)
            if np.isfinite(values).all():
                assert stats["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-15)
                low, high = np.percentile(values[indices].mean(axis=1), [2.5, 97.5])
                assert stats["low"] == pytest.approx(low, rel=1e-12, abs=1e-15)
                assert stats["high"] == pytest.approx(high, rel=1e-12, abs=1e-15)
                if np.ptp(values) > 0:
                    assert stats["low"] < stats["high"]
            else:
                assert stats["mean"] == stats["low"] == stats["high"] == math.inf
    identity = summary[0]["measures"]
    assert identity["mel_distance"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "files": 3}


def test_write_csv_and_strict_json(mono_evaluation, tmp_path):
    out = mono_evaluation.write(tmp_path / "out", resamples=100, extra={"model": "m.safetensors"})
    with open(out / "per_file.csv", newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == len(mono_evaluation.rows)
    assert list(lines[0]) == [
        "file",
        "system",
        "kind",
        "kbps",
        "seconds",
        "channels",
        "scored",
        "si_sdr",
        "mel_distance",
        "stft_distance",
    ]
    for line, row in zip(lines, mono_evaluation.rows, strict=True):
        assert (line["file"], line["system"], line["kind"]) == (row["file"], row["system"], row["kind"])
        for measure in ("si_sdr", "mel_distance", "stft_distance"):
            if math.isfinite(row[measure]):
                assert float(line[measure]) == pytest.approx(row[measure], rel=1e-5, abs=1e-12)
            else:
                assert line[measure] == ""

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    document = json.loads((out / "evaluation.json").read_text(), parse_constant=refuse)
    assert document["model"] == "m.safetensors"
    assert document["measures"] == mono_evaluation.measures
    assert len(document["rows"]) == len(mono_evaluation.rows)
    for written, row in zip(document["rows"], mono_evaluation.rows, strict=True):
        assert written["si_sdr"] == (None if row["si_sdr"] == math.inf else pytest.approx(row["si_sdr"]))
    input_summary = document["summary"][0]
    assert input_summary["system"] == "input"
    assert input_summary["measures"]["si_sdr"]["mean"] is None
    assert input_summary["measures"]["mel_distance"]["mean"] == 0.0
    assert set(document["skipped"]) >= {"pesq_wb", "stoi", "estoi", "visqol_speech", "visqol_audio"}


def test_skipped_measures_say_why(mono_evaluation):
    skipped = mono_evaluation.skipped
    for name in ("pesq_wb", "stoi", "estoi", "visqol_speech"):
        assert "speech" in skipped[name], skipped[name]
    assert "--no-perceptual" in skipped["visqol_audio"]
    assert not any(name in mono_evaluation.measures for name in skipped)


def test_max_seconds_truncates(three_files):
    settings = EvalSettings(perceptual=False, resamples=50, max_seconds=0.5)
    evaluation = evaluate_files(three_files[:1], [systems.identity()], SR, 1, settings, progress=False)
    assert evaluation.rows[0]["seconds"] == 0.5


def test_a_corrupt_file_is_left_out(three_files, tmp_path):
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    evaluation = evaluate_files(
        [three_files[0], corrupt, three_files[1]], [systems.identity()], SR, 1, FAST, progress=False
    )
    assert len(evaluation.rows) == 2
    assert list(evaluation.failed_files) == [str(corrupt)]
    assert "broken.wav" in evaluation.failed_files[str(corrupt)]
    assert str(corrupt) not in {row["file"] for row in evaluation.rows}


def test_all_files_corrupt_is_a_user_error(tmp_path):
    files = []
    for i in range(2):
        files.append(tmp_path / f"bad{i}.wav")
        files[-1].write_bytes(np.random.default_rng(i).bytes(3000))
    with pytest.raises(UserError, match="no file could be evaluated"):
        evaluate_files(files, [systems.identity()], SR, 1, FAST, progress=False)


def test_wrong_channel_count_is_left_out(three_files):
    """A mono file for a 2-channel codec cannot be evaluated (no upmix is invented)."""
    evaluation = evaluate_files(three_files, [systems.identity()], SR, 2, FAST, progress=False)
    assert [row["file"] for row in evaluation.rows] == [str(three_files[2])]
    assert set(evaluation.failed_files) == {str(three_files[0]), str(three_files[1])}
    assert all("channel" in reason for reason in evaluation.failed_files.values())


def test_unknown_content_is_a_user_error():
    with pytest.raises(UserError, match="--content"):
        EvalSettings(content="noise")


def test_stereo_codec_adds_spatial_measures(tmp_path):
    folder = tmp_path / "stereo"
    folder.mkdir()
    files = []
    for i in range(2):
        left, right = _tone(SR, 1.0, (300 + 50 * i, 2000), 10 + i), _tone(SR, 1.0, (500, 4000 + 100 * i), 20 + i)
        files.append(folder / f"s{i}.wav")
        sf.write(files[-1], np.stack([left, 0.5 * right], axis=1), SR, subtype="FLOAT")
    evaluation = evaluate_files(files, [systems.identity(), systems.mu_law(SR)], SR, 2, FAST, progress=False)
    assert evaluation.measures == ["si_sdr", "mel_distance", "stft_distance", "ild_error_db", "coherence_error"]
    assert len(evaluation.rows) == 4
    for row in evaluation.rows:
        assert row["channels"] == 2
        assert len(row["si_sdr_per_channel"]) == 2
    for row in _rows(evaluation, "input"):
        assert row["si_sdr_per_channel"] == [math.inf, math.inf]
        assert row["ild_error_db"] == pytest.approx(0.0, abs=1e-9)
        assert row["coherence_error"] == pytest.approx(0.0, abs=1e-9)
    for row, path in zip(_rows(evaluation, "mulaw-8k"), files, strict=True):
        data, _ = sf.read(path, dtype="float64")
        audio = data.T
        estimate = systems.mu_law(SR).reconstruct(audio)
        per_channel = [distances.si_sdr(audio[c], estimate[c]) for c in range(2)]
        np.testing.assert_allclose(row["si_sdr_per_channel"], per_channel, atol=1e-3)
        assert row["si_sdr"] == pytest.approx(np.mean(row["si_sdr_per_channel"]), abs=1e-9)
        assert row["ild_error_db"] > 0 and row["coherence_error"] > 0
    summary = evaluation.summary(100)
    assert set(summary[1]["measures"]) == set(evaluation.measures)


def test_perceptual_general_content_scores_visqol_audio(three_files, tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, _tone(SR, 0.3, (440,), 5), SR)
    settings = EvalSettings(content="general", perceptual=True, resamples=50)
    evaluation = evaluate_files(
        [three_files[0], short], [systems.identity(), systems.mu_law(SR)], SR, 1, settings, progress=False
    )
    assert "visqol_audio" in evaluation.measures
    (identity,) = [row for row in _rows(evaluation, "input") if row["file"] == str(three_files[0])]
    (mulaw,) = [row for row in _rows(evaluation, "mulaw-8k") if row["file"] == str(three_files[0])]
    assert identity["visqol_audio"] >= 4.7
    assert mulaw["visqol_audio"] < identity["visqol_audio"] - 0.2
    # the 0.3 s file is too short for ViSQOL: no value, and a reason that names the file
    assert all("visqol_audio" not in row for row in evaluation.rows if row["file"] == str(short))
    reason = evaluation.skipped["visqol_audio (short.wav)"]
    assert "at least 1.0 s" in reason and "0.300 s" in reason


def test_format_summary_has_a_row_per_system(mono_evaluation):
    text = format_summary(mono_evaluation.summary(100), mono_evaluation.measures)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["system", "kbps", "si_sdr", "mel_distance", "stft_distance"]
    assert lines[1].startswith("input ") and "inf" in lines[1] and "0.000 [0.000, 0.000]" in lines[1]
    assert lines[2].startswith("mulaw-8k ") and lines[2].split()[1] == "64"
    assert len(lines) == 3
