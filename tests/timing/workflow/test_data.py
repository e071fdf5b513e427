"""Step 0's corpus reading (audioenc.timing.workflow.data): unlabeled clips in the embedded layout and
the feature cache.

References: a corpus written here by hand (so the clips, labels and broken files are known by
construction), each clip's log-mel recomputed directly with ``compute_log_mel(read_clip(...))``, and
the cache folder's files counted on disk.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.audio.io import read_clip
from audioenc.core.cache import caching_disabled
from audioenc.timing.features import LogMelConfig, compute_log_mel
from audioenc.timing.workflow.data import load_workflow_data

STRONG = "filename\tonset\toffset\tevent_label"


def _wav(path: Path, rate: int = 16000, channels: int = 1, seconds: float = 0.5, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.1 * np.random.default_rng(seed).standard_normal((int(rate * seconds), channels))
    sf.write(path, noise if channels > 1 else noise[:, 0], rate)
    return path


@pytest.fixture
def corpus(tmp_path, monkeypatch) -> Path:
    """6/3/3 labelled clips (weak train, strong validation and test) and an ``audio/unlabeled/``
    holding three clips (one in a sub-folder, one 44.1 kHz stereo FLAC), one broken ``.wav``, a
    text file and a hidden file."""
    monkeypatch.setenv("AUDIOENC_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "corpus"
    meta = root / "metadata"
    meta.mkdir(parents=True)
    rows = []
    for index in range(6):
        _wav(root / "audio" / "train" / f"tr{index}.wav", seed=index)
        rows.append(f"tr{index}.wav\t{'dog' if index % 2 else 'cat'}")
    (meta / "train_weak.tsv").write_text("filename\tevent_labels\n" + "\n".join(rows) + "\n")
    for split, offset in (("validation", 10), ("test", 20)):
        for index in range(3):
            _wav(root / "audio" / split / f"{split[0]}{index}.wav", seed=offset + index)
        events = [f"{split[0]}{index}.wav\t0.1\t0.3\t{'dog' if index % 2 else 'cat'}" for index in range(3)]
        (meta / f"{split}_strong.tsv").write_text(STRONG + "\n" + "\n".join(events) + "\n")
    unlabeled = root / "audio" / "unlabeled"
    _wav(unlabeled / "u1.wav", seed=30)
    _wav(unlabeled / "u2.flac", rate=44100, channels=2, seed=31)
    _wav(unlabeled / "sub" / "u3.wav", seed=32, seconds=0.8)
    (unlabeled / "broken.wav").write_bytes(b"RIFF....not audio at all")
    (unlabeled / "notes.txt").write_text("recorded on the roof\n")
    _wav(unlabeled / ".hidden.wav", seed=33)
    return root


def _load(root: Path, **options):
    lines: list[str] = []
    return load_workflow_data(root, log=lines.append, **options), lines


def test_the_embedded_layouts_unlabeled_clips_are_read_and_featurised(corpus):
    data, lines = _load(corpus)
    assert data.unlabeled is not None
    split = data.unlabeled.split
    assert split.files == ["sub/u3.wav", "u1.wav", "u2.flac"]  # not the text, hidden or broken file
    assert split.weak == {name: () for name in split.files} and split.strong is None
    assert split.classes == data.classes == ("cat", "dog")
    assert split.durations["sub/u3.wav"] == pytest.approx(0.8)
    for name in split.files:
        reference = compute_log_mel(read_clip(corpus / "audio" / "unlabeled" / name, 24000))
        assert data.unlabeled.log_mels[name].tobytes() == reference.tobytes()
    assert data.unlabeled.inputs()[1].shape == (64, 50)  # 0.5 s at 100 frames/s
    broken = [issue for issue in data.issues if issue.file.endswith("broken.wav")]
    assert len(broken) == 1 and broken[0].action == "dropped" and "cannot be used" in broken[0].message
    assert "unlabeled: 3 clips without labels" in data.notes
    assert data.audio_formats == {"16000 Hz, 1 ch": 14, "44100 Hz, 2 ch": 1}
    assert "  unlabeled: 3 clips without labels" in lines
    # The labelled splits are unchanged by the unlabeled folder.
    assert {name: len(split.files) for name, split in data.splits.items()} == {"train": 6, "validation": 3, "test": 3}


def test_a_corpus_without_unlabeled_clips_gives_none(corpus):
    for path in sorted((corpus / "audio" / "unlabeled").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    data, _ = _load(corpus)  # an empty folder: nothing to use
    assert data.unlabeled is None
    (corpus / "audio" / "unlabeled").rmdir()
    data, lines = _load(corpus)  # no folder at all
    assert data.unlabeled is None and not any("unlabeled" in line for line in lines)


def test_an_unreadable_unlabeled_clip_is_an_issue_not_a_crash(corpus):
    unlabeled = corpus / "audio" / "unlabeled"
    cut = unlabeled / "u1.wav"
    cut.write_bytes(cut.read_bytes()[:1000])  # the header still declares all of its samples
    data, _ = _load(corpus)
    assert data.unlabeled.split.files == ["sub/u3.wav", "u2.flac"]
    issue = next(issue for issue in data.issues if issue.file.endswith("u1.wav"))
    assert issue.action == "dropped" and "truncated" in issue.message
    # Every clip unusable: no unlabeled set, each file listed.
    for name in ("sub/u3.wav", "u2.flac"):
        (unlabeled / name).write_bytes(b"not audio")
    data, _ = _load(corpus)
    assert data.unlabeled is None
    assert {Path(issue.file).name for issue in data.issues} >= {"u1.wav", "u3.wav", "u2.flac", "broken.wav"}


def test_max_clips_limits_the_unlabeled_clips_like_train(corpus):
    data, _ = _load(corpus, max_clips=(2, 3, 3))
    assert data.unlabeled.split.files == ["sub/u3.wav", "u1.wav"]
    assert any(note.startswith("unlabeled: first 2 clips used") for note in data.notes)


def _entries(corpus: Path) -> list[Path]:
    return sorted((corpus.parent / "cache" / "arrays" / "logmel").rglob("*.npz"))


def test_features_from_the_cache_are_bit_identical_and_counted(corpus):
    uncached, lines = _load(corpus, cache_enabled=False)
    assert _entries(corpus) == [] and not (corpus.parent / "cache").exists()  # off: nothing written
    assert lines[-1] == "  features: 15 clips, cache off (every array computed)"
    cold, _ = _load(corpus)
    warm, lines = _load(corpus)
    assert len(_entries(corpus)) == 15  # 12 labelled + 3 unlabeled clips
    assert (cold.feature_cache.hits, cold.feature_cache.misses) == (0, 15)
    assert (warm.feature_cache.hits, warm.feature_cache.misses) == (15, 0)
    size = sum(path.stat().st_size for path in _entries(corpus))
    assert warm.feature_cache.bytes == cold.feature_cache.bytes == size
    location = corpus.parent / "cache" / "arrays"
    assert lines[-1] == f"  features: 15 clips, 15 from the cache ({size / 1e6:.1f} MB at {location})"
    for data in (cold, warm):
        for name in ("train", "validation", "test"):
            assert data.features[name].log_mels.keys() == uncached.features[name].log_mels.keys()
            for clip, log_mel in uncached.features[name].log_mels.items():
                assert data.features[name].log_mels[clip].tobytes() == log_mel.tobytes(), clip
        for clip, log_mel in uncached.unlabeled.log_mels.items():
            assert data.unlabeled.log_mels[clip].tobytes() == log_mel.tobytes(), clip
        assert data.issues == uncached.issues and data.audio_formats == uncached.audio_formats


def test_a_changed_clip_or_setting_is_computed_again(corpus):
    _load(corpus)
    clip = corpus / "audio" / "train" / "tr3.wav"
    _wav(clip, seed=99)  # same name and length, other samples
    data, _ = _load(corpus)
    assert (data.feature_cache.hits, data.feature_cache.misses) == (14, 1)
    expected = compute_log_mel(read_clip(clip, 24000))
    assert data.features["train"].log_mels["tr3.wav"].tobytes() == expected.tobytes()
    fewer_bands = dataclasses.replace(LogMelConfig(), n_mels=32)
    data, _ = _load(corpus, feature_config=fewer_bands)
    assert (data.feature_cache.hits, data.feature_cache.misses) == (0, 15)
    assert data.features["train"].log_mels["tr3.wav"].shape == (32, 50)


def test_a_corrupt_feature_entry_is_recomputed(corpus):
    reference, _ = _load(corpus)
    for entry in _entries(corpus)[:4]:
        entry.write_bytes(entry.read_bytes()[:100])
    data, _ = _load(corpus)
    assert (data.feature_cache.hits, data.feature_cache.misses, data.feature_cache.corrupt) == (11, 4, 4)
    for name in ("train", "validation", "test"):
        for clip, log_mel in reference.features[name].log_mels.items():
            assert data.features[name].log_mels[clip].tobytes() == log_mel.tobytes()
    again, _ = _load(corpus)
    assert again.feature_cache.hits == 15


def test_the_environment_switch_of_no_cache_stores_nothing(corpus):
    with caching_disabled():  # what `audioenc workflow --no-cache` sets around the run
        data, lines = _load(corpus)
    assert not (corpus.parent / "cache").exists() and data.feature_cache.enabled is False
    assert (data.feature_cache.hits, data.feature_cache.misses) == (0, 15)
    assert lines[-1] == "  features: 15 clips, cache off (every array computed)"
