"""The embedded event corpus: deterministic for a seed, DESED layout, labels that match the audio."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc import SAMPLE_RATE
from audioenc.audio import synth_events
from audioenc.audio.formats import read_corpus_split
from audioenc.audio.synth_events import (
    COMPLETE_MARKER,
    EVENT_CLASSES,
    default_event_corpus,
    synthesize_clip,
    synthesize_event_corpus,
)

SMALL = (16, 4, 4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synthesize_event_corpus(tmp_path_factory.mktemp("events"), SMALL, seed=3)


def test_same_seed_same_bytes_other_seed_other_audio(corpus, tmp_path):
    again = synthesize_event_corpus(tmp_path / "again", SMALL, seed=3)
    files = sorted(path.relative_to(corpus) for path in corpus.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(again) for path in again.rglob("*") if path.is_file())
    for relative in files:
        assert filecmp.cmp(corpus / relative, again / relative, shallow=False), relative
    other = synthesize_event_corpus(tmp_path / "other", (2, 0, 0), seed=4)
    assert not filecmp.cmp(corpus / "audio/train/train_0000.wav", other / "audio/train/train_0000.wav", shallow=False)


def test_a_clip_does_not_depend_on_how_many_clips_are_made(corpus, tmp_path):
    fewer = synthesize_event_corpus(tmp_path / "fewer", (3, 0, 0), seed=3)
    assert filecmp.cmp(corpus / "audio/train/train_0002.wav", fewer / "audio/train/train_0002.wav", shallow=False)


def test_layout_formats_and_label_consistency(corpus):
    for split, count in zip(("train", "validation", "test"), SMALL):
        data = read_corpus_split(corpus, split)
        assert data.issues == []  # the writer's files read back without a single complaint
        assert len(data.files) == count and data.classes == EVENT_CLASSES
        for filename in data.files:
            info = sf.info(str(data.audio_dir / filename))
            assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
            assert 4.0 <= data.durations[filename] <= 10.0
            events = data.strong[filename]
            # Weak labels are exactly the classes of the strong events.
            assert data.weak[filename] == tuple(sorted({event.label for event in events}))
            for event in events:
                assert 0.0 <= event.onset < event.offset <= data.durations[filename]
            for label in {event.label for event in events}:
                same = sorted(event for event in events if event.label == label)
                assert all(first.offset < second.onset for first, second in zip(same, same[1:]))
    train = read_corpus_split(corpus, "train")
    negatives = [name for name in train.files if not train.weak[name]]
    assert 0 < len(negatives) < len(train.files)


def _power(audio: np.ndarray, start: float, stop: float) -> float:
    segment = audio[int(round(start * SAMPLE_RATE)) : int(round(stop * SAMPLE_RATE))]
    return float(np.mean(segment.astype(np.float64) ** 2))


def test_energy_inside_labelled_events_exceeds_the_background(corpus):
    # Every event is mixed at >= 6 dB SNR over its own span, so the power inside it is about
    # (1 + 10^0.6) ~ 5x the background's; outside all events there is background only. The
    # margin asked (1.5x) leaves room for the background's own slow level changes.
    checked = 0
    for split in ("train", "validation", "test"):
        data = read_corpus_split(corpus, split)
        for filename in data.files:
            events = data.strong[filename]
            if not events:
                continue
            audio, _ = sf.read(str(data.audio_dir / filename), dtype="float32")
            outside = np.ones(len(audio), dtype=bool)
            for event in events:
                outside[int(event.onset * SAMPLE_RATE) : int(np.ceil(event.offset * SAMPLE_RATE))] = False
            if outside.sum() < SAMPLE_RATE // 2:
                continue
            background = float(np.mean(audio[outside].astype(np.float64) ** 2))
            for event in events:
                assert _power(audio, event.onset, event.offset) > 1.5 * background, (filename, event)
                checked += 1
    assert checked >= 20


def test_fixed_events_land_where_asked():
    rng = np.random.default_rng(0)
    clip = synthesize_clip(
        rng, duration=5.0, events=((1.0, 1.3, "tone"), (3.0, 3.1, "click")), snr_range_db=(12.0, 12.0)
    )
    assert len(clip.audio) == 5 * SAMPLE_RATE
    assert [(event.onset, event.offset, event.label) for event in clip.events] == [
        (1.0, 1.3, "tone"),
        (3.0, 3.1, "click"),
    ]
    quiet = _power(clip.audio, 0.0, 0.9)
    # 12 dB SNR: power inside ~ (1 + 10^1.2) ~ 17x the background.
    assert _power(clip.audio, 1.0, 1.3) > 8 * quiet and _power(clip.audio, 3.0, 3.1) > 8 * quiet
    with pytest.raises(ValueError, match="does not fit"):
        synthesize_clip(rng, duration=2.0, events=((1.5, 2.5, "tone"),))
    with pytest.raises(ValueError, match="unknown event class"):
        synthesize_clip(rng, duration=2.0, events=((0.5, 1.0, "dog"),))


def test_default_corpus_is_made_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(synth_events, "DEFAULT_CLIPS", (3, 1, 1))
    monkeypatch.setenv("AUDIOENC_CACHE", str(tmp_path / "cache"))
    first = default_event_corpus()
    assert first == tmp_path / "cache" / "events-seed0"
    assert (first / COMPLETE_MARKER).is_file()
    stamp = (first / "audio/train/train_0000.wav").stat().st_mtime_ns
    second = default_event_corpus()
    assert second == first and (first / "audio/train/train_0000.wav").stat().st_mtime_ns == stamp
    assert not [path for path in (tmp_path / "cache").iterdir() if "partial" in path.name]
    # An incomplete folder (no marker) is rebuilt rather than trusted.
    (first / COMPLETE_MARKER).unlink()
    (first / "audio/train/train_0000.wav").unlink()
    rebuilt = default_event_corpus()
    assert (rebuilt / "audio/train/train_0000.wav").is_file() and (rebuilt / COMPLETE_MARKER).is_file()


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown event classes"):
        synthesize_event_corpus(tmp_path, (1, 1, 1), classes=("tone", "dog"))
    with pytest.raises(ValueError, match="one non-negative count per split"):
        synthesize_event_corpus(tmp_path, (1, 1))
