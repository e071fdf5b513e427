"""`audioenc eval` and `audioenc report` end to end, in-process, on a tiny exported codec.

The report must be self-contained (every resource a ``data:`` URI, players that decode to the
clip's length); the slow test loads it in headless Chromium, and a negative control shows that
the page's self-check does catch a player that cannot load.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import soundfile as sf

from audioenc.cli import main

SR = 24000


@pytest.fixture
def tiny_model(tmp_path):
    """A tiny exported continuous codec (weights + json), as tests/hostile/test_cli_inputs.py makes it."""
    import torch

    from audioenc.config import build_config
    from audioenc.models.codec import CodecModel
    from audioenc.models.files import export_model

    config = build_config("1ch", "small", ["model.n_filters=2", "model.dimension=8", "model.lstm=0"]).model
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CodecModel.from_config(config)
    return export_model(tmp_path / "model", "model_best", model, config)


def _write_clips(folder, seconds=(1.5, 1.2)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, length in enumerate(seconds):
        t = np.arange(int(length * SR)) / SR
        x = 0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.02 * rng.standard_normal(len(t))
        sf.write(folder / f"clip{i}.wav", x, SR)
    return folder


def _one_line_error(capsys, command):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"audioenc {command}: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


# ------------------------------------------------------------------------------------------- eval


def test_eval_prints_the_table_and_writes_its_files(tiny_model, tmp_path, capsys):
    data = _write_clips(tmp_path / "data")
    out = tmp_path / "out"
    rc = main(
        [
            "eval",
            str(tiny_model),
            "--data",
            str(data),
            "--no-perceptual",
            "--out",
            str(out),
            "--references",
            "input,mulaw",
            "--no-progress",
            "--resamples",
            "100",
        ]
    )
    stdout = capsys.readouterr().out
    assert rc == 0
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("system"))
    assert lines[header].split()[:5] == ["system", "kbps", "si_sdr", "mel_distance", "stft_distance"]
    systems = [line.split()[0] for line in lines[header + 1 : header + 4]]
    assert systems == ["input", "codec", "mulaw-8k"]
    assert "not computed: visqol_audio" in stdout and "--no-perceptual" in stdout
    assert (out / "per_file.csv").is_file() and (out / "evaluation.json").is_file()
    assert not (out / "report.html").exists()
    document = json.loads((out / "evaluation.json").read_text())
    assert [entry["system"] for entry in document["summary"]] == ["input", "codec", "mulaw-8k"]
    assert len(document["rows"]) == 2 * 3
    assert document["content"] == "general" and document["model"] == str(tiny_model)
    # the input is its own perfect reconstruction; the codec is not
    codec = next(entry for entry in document["summary"] if entry["system"] == "codec")
    assert document["summary"][0]["measures"]["mel_distance"]["mean"] == 0.0
    assert codec["measures"]["mel_distance"]["mean"] > 0


def test_eval_max_files_and_no_references(tiny_model, tmp_path, capsys):
    data = _write_clips(tmp_path / "data")
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                str(tiny_model),
                "--data",
                str(data),
                "--no-perceptual",
                "--out",
                str(out),
                "--references",
                "none",
                "--max-files",
                "1",
                "--no-progress",
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    capsys.readouterr()
    document = json.loads((out / "evaluation.json").read_text())
    assert [row["system"] for row in document["rows"]] == ["codec"]


def test_eval_unknown_reference_is_one_line(tiny_model, tmp_path, capsys):
    data = _write_clips(tmp_path / "data", seconds=(0.5,))
    assert (
        main(
            [
                "eval",
                str(tiny_model),
                "--data",
                str(data),
                "--no-perceptual",
                "--references",
                "input,bogus",
                "--no-progress",
            ]
        )
        == 2
    )
    line = _one_line_error(capsys, "eval")
    assert "--references" in line and "bogus" in line


def test_eval_report_needs_out(tiny_model, tmp_path, capsys):
    data = _write_clips(tmp_path / "data", seconds=(0.5,))
    assert main(["eval", str(tiny_model), "--data", str(data), "--report", "--no-progress"]) == 2
    line = _one_line_error(capsys, "eval")
    assert "--out" in line


def test_eval_report_flag_writes_the_page(tiny_model, tmp_path, capsys):
    data = _write_clips(tmp_path / "data", seconds=(0.6,))
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                str(tiny_model),
                "--data",
                str(data),
                "--no-perceptual",
                "--out",
                str(out),
                "--references",
                "input",
                "--report",
                "--no-progress",
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    assert "listening report:" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    players = _audio_sources(page)
    assert len(players) == 2  # original + codec for the one clip
    for source in players:
        assert _decode_wav(source)[0].shape[0] == int(0.6 * SR)  # the whole 0.6 s clip


# ----------------------------------------------------------------------------------------- report


def _audio_sources(page: str) -> list[str]:
    return re.findall(r"<audio\b[^>]*\bsrc='([^']*)'", page)


def _decode_wav(uri: str) -> tuple[np.ndarray, int]:
    prefix = "data:audio/wav;base64,"
    assert uri.startswith(prefix), uri[:40]
    audio, rate = sf.read(io.BytesIO(base64.b64decode(uri[len(prefix) :], validate=True)), dtype="float64")
    return audio, rate


def _check_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r"\b(?:src|href)\s*=\s*['\"]([^'\"]*)['\"]", page)
    assert sources, "no embedded resources at all"
    assert all(source.startswith("data:") for source in sources), [s[:40] for s in sources if not s.startswith("data:")]
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page


def test_report_writes_a_self_contained_page(tiny_model, tmp_path, capsys):
    data = _write_clips(tmp_path / "data")
    out = tmp_path / "report"
    assert (
        main(["report", str(tiny_model), "--data", str(data), "--out", str(out), "--files", "1", "--seconds", "1"]) == 0
    )
    assert "listening report:" in capsys.readouterr().out
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    _check_self_contained(page)
    players = _audio_sources(page)
    assert len(players) >= 2 and page.count("<audio") == len(players)
    for source in players:
        audio, rate = _decode_wav(source)
        assert rate == SR and audio.ndim == 1 and audio.shape[0] == SR  # 1 s of the 1.5 s clip
    original, _ = _decode_wav(players[0])
    clip, _ = sf.read(data / "clip0.wav", dtype="float64")
    np.testing.assert_allclose(original, clip[:SR], atol=1 / 32768 + 1e-9)  # 16-bit PCM of the input
    images = re.findall(r"<img\b[^>]*\bsrc='([^']*)'", page)
    assert len(images) == len(players)
    for image in images:
        assert image.startswith("data:image/png;base64,")
        assert base64.b64decode(image.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<pre id='self-check'>" in page and "document.getElementById('self-check')" in page
    assert "clip0.wav" in page and "clip1.wav" not in page  # --files 1


def test_report_on_a_folder_without_audio_is_one_line(tiny_model, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(tiny_model), "--data", str(empty), "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "report")


# ---------------------------------------------------------------------------------- browser check


def _chromium() -> str:
    from audioenc.listening_report import find_chromium

    browser = find_chromium()
    assert browser is not None, (
        "headless Chromium is needed for this test: on Debian/Ubuntu "
        "`apt-get install chromium` (it must be on PATH as chromium)"
    )
    return browser


@pytest.mark.slow
def test_report_check_in_headless_chromium(tiny_model, tmp_path, capsys):
    from audioenc.listening_report import check_in_browser

    _chromium()
    data = _write_clips(tmp_path / "data")
    out = tmp_path / "report"
    rc = main(
        ["report", str(tiny_model), "--data", str(data), "--out", str(out), "--files", "1", "--seconds", "1", "--check"]
    )
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    assert "browser check: 2/2 players loaded, 0 error(s)" in stdout
    screenshot = out / "report.png"
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    check = check_in_browser(out / "report.html", tmp_path / "again.png")
    result = check.result
    assert check.ok, result
    assert result["players"] >= 2 and result["loaded"] == result["players"]
    assert result["errors"] == [] and result["media_errors"] == []
    assert result["images"] >= 2 and result["images_broken"] == 0
    assert result["durations"] == pytest.approx([1.0] * result["players"], abs=0.01)
    assert (tmp_path / "again.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_browser_check_fails_on_a_missing_audio_file(tmp_path):
    """Negative control: the same self-check on a page whose player points at a file that does not
    exist must not pass."""
    from audioenc.listening_report import _SELF_CHECK, check_in_browser

    _chromium()
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'>" + _SELF_CHECK + "</head><body>"
        "<audio controls preload='metadata' src='no_such_file.wav'></audio>"
        "<pre id='self-check'>running…</pre></body></html>",
        encoding="utf-8",
    )
    check = check_in_browser(page, tmp_path / "broken.png")
    result = check.result
    assert not check.ok, result
    assert result["players"] == 1
    assert result["loaded"] == 0
    assert result["media_errors"] or result["errors"], result
