"""`audioenc scan DIR [--strict]`: the dataset report and its exit status."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from audioenc.cli import main


def _make_directory(root: Path) -> dict[str, str]:
    """Two usable files and one file of every bad kind; maps bad file -> expected reason text."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((24_000, 2))).astype(np.float32)
    sf.write(root / "good.wav", audio, 24_000, subtype="PCM_16")
    sf.write(root / "good32.wav", np.zeros((4_800, 32)), 48_000, subtype="PCM_24")
    wav = (root / "good.wav").read_bytes()
    sf.write(root / "corrupt.flac", audio, 24_000, subtype="PCM_16")
    flac = bytearray((root / "corrupt.flac").read_bytes())
    (root / "empty.wav").write_bytes(b"")
    (root / "text.flac").write_text("not audio at all\n" * 20)
    (root / "header.wav").write_bytes(wav[:30])
    (root / "truncated.wav").write_bytes(wav[: len(wav) // 2])
    for index in range(len(flac) // 2, len(flac) // 2 + 500):
        flac[index] ^= 0xA5
    (root / "corrupt.flac").write_bytes(bytes(flac))
    bad = audio.copy()
    bad[10, 0] = np.nan
    sf.write(root / "nan.wav", bad, 24_000, subtype="FLOAT")
    bad[10, 0] = -np.inf
    sf.write(root / "inf.wav", bad, 24_000, subtype="DOUBLE")
    return {
        "empty.wav": "zero-length",
        "text.flac": "not audio",
        "header.wav": "corrupt header",
        "truncated.wav": "truncated",
        "corrupt.flac": "corrupt",
        "nan.wav": "NaN/Inf",
        "inf.wav": "NaN/Inf",
    }


def test_report_lists_every_rejected_file_and_is_not_fatal(tmp_path, capsys):
    bad = _make_directory(tmp_path)
    assert main(["scan", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    for name, reason in bad.items():
        (line,) = [line for line in lines if line.strip().startswith(f"{name}:")]
        assert reason in line, line
    assert "usable files: 2 of 9" in captured.out
    assert "sample rates: 24000 Hz x1, 48000 Hz x1" in captured.out
    assert "channel counts: 2 ch x1, 32 ch x1" in captured.out
    assert "2 usable, 7 rejected" in captured.err  # one summary line


def test_strict_fails_on_any_rejected_file(tmp_path, capsys):
    _make_directory(tmp_path)
    assert main(["scan", str(tmp_path), "--strict"]) == 1
    assert "--strict" in capsys.readouterr().err
    clean = tmp_path / "clean"
    clean.mkdir()
    sf.write(clean / "ok.wav", np.zeros(2_400), 24_000)
    assert main(["scan", str(clean), "--strict"]) == 0


def test_wrong_channel_count_is_reported_with_channels(tmp_path, capsys):
    _make_directory(tmp_path)
    assert main(["scan", str(tmp_path), "--channels", "32"]) == 0
    out = capsys.readouterr().out
    assert "good.wav: wrong channel count: 2, need 32" in out
    assert main(["scan", str(tmp_path), "--channels", "32", "--strict"]) == 1


def test_empty_or_unusable_directory_is_an_error_saying_what_and_where(tmp_path, capsys):
    assert main(["scan", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path.resolve()) in err and "libsndfile reads" in err
    (tmp_path / "broken.wav").write_bytes(b"RIFF")
    assert main(["scan", str(tmp_path)]) == 2
    assert "none of the 1 audio files" in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
