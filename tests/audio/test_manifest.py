"""Scanning, bad-file detection, caching and labels of `audioenc.audio.manifest`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.audio import manifest as manifest_module
from audioenc.audio.manifest import (
    MANIFEST_NAME,
    NoUsableAudioError,
    default_labels,
    format_report,
    probe_file,
    require_usable,
    scan,
)


def make_good_files(root: Path) -> list[str]:
    """Three usable files of different rates, channel counts and containers."""
    rng = np.random.default_rng(0)
    sf.write(root / "mono16k.wav", 0.1 * rng.standard_normal(16_000), 16_000, subtype="PCM_16")
    sf.write(root / "stereo44k.flac", 0.1 * rng.standard_normal((44_100, 2)), 44_100, subtype="PCM_24")
    (root / "sub").mkdir()
    sf.write(
        root / "sub" / "quad48k.wav",
        (0.1 * rng.standard_normal((24_000, 4))).astype(np.float32),
        48_000,
        subtype="FLOAT",
    )
    return ["mono16k.wav", "stereo44k.flac", "sub/quad48k.wav"]


def make_bad_files(root: Path) -> dict[str, str]:
    """One file of every bad kind; maps relative path -> a substring its reason must contain."""
    rng = np.random.default_rng(1)
    good = (0.1 * rng.standard_normal((48_000, 2))).astype(np.float32)
    sf.write(root / "reference.wav", good, 48_000, subtype="PCM_24")
    wav_bytes = (root / "reference.wav").read_bytes()
    (root / "reference.wav").unlink()
    (root / "zero_bytes.wav").write_bytes(b"")
    (root / "not_audio.wav").write_bytes(b"this is a text file, not audio\n" * 50)
    (root / "header_only.wav").write_bytes(wav_bytes[:30])
    (root / "truncated.wav").write_bytes(wav_bytes[: len(wav_bytes) // 2])
    sf.write(root / "flac.flac", good, 48_000, subtype="PCM_24")
    flac_bytes = bytearray((root / "flac.flac").read_bytes())
    (root / "flac.flac").unlink()
    (root / "truncated.flac").write_bytes(bytes(flac_bytes[: len(flac_bytes) // 2]))
    for index in range(len(flac_bytes) // 2, len(flac_bytes) // 2 + 2000):
        flac_bytes[index] ^= 0x5A
    (root / "corrupt.flac").write_bytes(bytes(flac_bytes))
    with_nan = good.copy()
    with_nan[1000, 1] = np.nan
    sf.write(root / "nan.wav", with_nan, 48_000, subtype="FLOAT")
    with_inf = good.copy()
    with_inf[47_000, 0] = np.inf
    sf.write(root / "inf.wav", with_inf, 48_000, subtype="FLOAT")
    sf.write(root / "no_frames.wav", np.zeros((0, 2)), 48_000)
    return {
        "zero_bytes.wav": "zero-length file",
        "not_audio.wav": "not audio",
        "header_only.wav": "corrupt header",
        "truncated.wav": "truncated",
        "truncated.flac": "corrupt",
        "corrupt.flac": "corrupt",
        "nan.wav": "NaN/Inf",
        "inf.wav": "NaN/Inf",
        "no_frames.wav": "zero-length audio",
    }


def test_every_bad_kind_is_rejected_with_its_reason_and_good_files_are_kept(tmp_path):
    good = make_good_files(tmp_path)
    bad = make_bad_files(tmp_path)
    (tmp_path / "notes.txt").write_text("not scanned")
    manifest = scan(tmp_path)
    assert sorted(entry.path for entry in manifest.usable) == sorted(good)
    reasons = {entry.path: entry.error for entry in manifest.rejected}
    assert set(reasons) == set(bad)
    for path, expected in bad.items():
        assert expected in reasons[path], (path, reasons[path])
    assert manifest.ignored == ("notes.txt",)
    quad = next(entry for entry in manifest.usable if entry.path == "sub/quad48k.wav")
    assert (quad.sample_rate, quad.channels, quad.frames, quad.subtype) == (48_000, 4, 24_000, "FLOAT")
    report = format_report(manifest)
    for path in bad:
        assert path in report
    assert "usable files: 3 of 12" in report


def test_probe_reports_first_nonfinite_frame(tmp_path):
    audio = np.zeros((100_000, 1), dtype=np.float32)
    audio[70_001, 0] = np.inf
    sf.write(tmp_path / "inf.wav", audio, 48_000, subtype="FLOAT")
    info, reason = probe_file(tmp_path / "inf.wav")
    assert info is not None and reason == "NaN/Inf samples (first at frame 70001)"


def test_cache_is_reused_and_refreshed_when_files_change(tmp_path, monkeypatch):
    make_good_files(tmp_path)
    first = scan(tmp_path)
    assert (tmp_path / MANIFEST_NAME).exists()
    probed: list[str] = []
    real_probe = manifest_module.probe_file

    def counting_probe(path):
        probed.append(Path(path).name)
        return real_probe(path)

    monkeypatch.setattr(manifest_module, "probe_file", counting_probe)
    assert scan(tmp_path).entries == first.entries
    assert probed == []  # nothing changed: every header came from the cache
    sf.write(tmp_path / "mono16k.wav", np.zeros(8_000), 16_000)  # rewritten: new size
    (tmp_path / "stereo44k.flac").unlink()
    sf.write(tmp_path / "new.wav", np.zeros((4_800, 3)), 48_000)
    refreshed = scan(tmp_path)
    assert sorted(probed) == ["mono16k.wav", "new.wav"]
    by_path = {entry.path: entry for entry in refreshed.entries}
    assert set(by_path) == {"mono16k.wav", "new.wav", "sub/quad48k.wav"}
    assert by_path["mono16k.wav"].frames == 8_000 and by_path["new.wav"].channels == 3


def test_read_only_directory_caches_in_the_data_cache(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    make_good_files(data)
    monkeypatch.setenv("AUDIOENC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(manifest_module.os, "access", lambda path, mode: False)
    manifest = scan(data)
    assert not (data / MANIFEST_NAME).exists()
    assert manifest.cache_path.parent == tmp_path / "cache" / "manifests"
    assert json.loads(manifest.cache_path.read_text())["root"] == str(data.resolve())


def test_requirements_mark_wrong_channel_count_and_short_files(tmp_path):
    make_good_files(tmp_path)
    manifest = scan(tmp_path)
    checked = manifest.with_requirements(channels=2, min_seconds=0.9)
    reasons = {entry.path: entry.error for entry in checked.rejected}
    assert reasons == {
        "mono16k.wav": "wrong channel count: 1, need 2",
        "sub/quad48k.wav": "wrong channel count: 4, need 2",
    }
    short = manifest.with_requirements(min_seconds=0.9).rejected
    assert [(entry.path, entry.error) for entry in short] == [("sub/quad48k.wav", "too short: 0.50 s < 0.90 s")]
    # The cache keeps the scan's own verdicts, not the requirements of one dataset.
    assert scan(tmp_path).rejected == ()


def test_default_labels_follow_eigenscape_names_and_folders():
    assert default_labels("Beach-01-Raw.wav") == ("Beach", "Beach-01-Raw")
    assert default_labels("Beach-01-Raw_part3.wav") == ("Beach", "Beach-01-Raw")
    assert default_labels("Park/take1-chunk12.flac") == ("Park", "Park/take1")
    assert default_labels("noise.wav") == ("noise", "noise")


def test_scenes_tsv_overrides_labels(tmp_path):
    make_good_files(tmp_path)
    (tmp_path / "scenes.tsv").write_text("filename\tscene_class\trecording\nmono16k.wav\tWoodland\twood-7\n")
    by_path = {entry.path: entry for entry in scan(tmp_path).entries}
    assert (by_path["mono16k.wav"].scene_class, by_path["mono16k.wav"].recording) == ("Woodland", "wood-7")
    assert by_path["stereo44k.flac"].scene_class == "stereo44k"


def test_empty_directory_error_says_what_and_where(tmp_path):
    (tmp_path / "readme.txt").write_text("no audio here")
    with pytest.raises(NoUsableAudioError) as error:
        require_usable(scan(tmp_path))
    message = str(error.value)
    assert str(tmp_path.resolve()) in message and "libsndfile" in message and "1 other files ignored" in message


def test_directory_of_only_bad_files_error_lists_reasons(tmp_path):
    make_bad_files(tmp_path)
    with pytest.raises(NoUsableAudioError, match="none of the 9 audio files") as error:
        require_usable(scan(tmp_path))
    assert "audioenc scan" in str(error.value)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(NotADirectoryError, match="not a directory"):
        scan(tmp_path / "nowhere")


def test_hidden_files_and_the_manifest_itself_are_not_scanned(tmp_path):
    make_good_files(tmp_path)
    sf.write(tmp_path / ".hidden.wav", np.zeros(100), 8_000)
    scan(tmp_path)
    manifest = scan(tmp_path)
    assert all(not entry.path.startswith(".") for entry in manifest.entries)
    assert MANIFEST_NAME not in manifest.ignored
    assert os.path.exists(tmp_path / MANIFEST_NAME)
