"""The eigenscape-like 32-channel corpus of `audioenc.audio.synth_scenes`."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from audioenc.audio import synth_scenes
from audioenc.audio.em32 import SPEED_OF_SOUND_M_S, capsule_directions, capsule_positions, unit_vector
from audioenc.audio.manifest import scan
from audioenc.audio.synth_scenes import (
    COMPLETE_MARKER,
    SOURCE_KINDS,
    BackgroundSpec,
    RoomSpec,
    SceneSpec,
    SourceSpec,
    default_eigenscape_corpus,
    diffuse_background,
    render_scene,
    source_signal,
    synthesize_eigenscape_corpus,
)

RATE = 48_000


def _corpus_bytes(directory):
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.suffix in (".wav", ".tsv")}


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_sources_carry_no_dc_or_sub_audio_drift(kind):
    # A microphone chain records nothing below ~20 Hz. The speech source once integrated a positive
    # pulse train without the lip-radiation differencer: mean 0.26 of its RMS and 4 % of its
    # power below 20 Hz, which the syllable windows turned into a drift that dominated the scenes.
    sound = source_signal(kind, 3 * RATE, RATE, np.random.default_rng(0))
    frequencies, power = signal.welch(sound, RATE, nperseg=RATE)
    assert power[frequencies < 20].sum() / power.sum() < 0.005
    assert abs(sound.mean()) < 0.02 * np.sqrt(np.mean(sound**2))


@pytest.mark.slow  # ~10-45 s: renders two 32-channel corpora
def test_corpus_is_deterministic_for_a_seed(tmp_path):
    first = synthesize_eigenscape_corpus(tmp_path / "a", scenes=2, seconds=0.4, seed=3)
    second = synthesize_eigenscape_corpus(tmp_path / "b", scenes=2, seconds=0.4, seed=3)
    other = synthesize_eigenscape_corpus(tmp_path / "c", scenes=2, seconds=0.4, seed=4)
    files = _corpus_bytes(first)
    assert sorted(files) == ["Beach-01.wav", "BusyStreet-01.wav", "scenes.tsv", "sources.tsv"]
    assert files == _corpus_bytes(second)
    assert files["Beach-01.wav"] != _corpus_bytes(other)["Beach-01.wav"]
    # Scene i depends on (seed, i) only: a one-scene corpus is a prefix of the two-scene one.
    prefix = synthesize_eigenscape_corpus(tmp_path / "d", scenes=1, seconds=0.4, seed=3)
    assert _corpus_bytes(prefix)["Beach-01.wav"] == files["Beach-01.wav"]


def test_corpus_format_and_labels(tmp_path):
    out = synthesize_eigenscape_corpus(tmp_path, scenes=2, seconds=0.25, seed=0)
    info = sf.info(out / "BusyStreet-01.wav")
    assert (info.channels, info.samplerate, info.subtype, info.frames) == (32, RATE, "PCM_24", 12_000)
    audio, _ = sf.read(out / "BusyStreet-01.wav")
    assert 0.3 < np.abs(audio).max() <= 0.5 + 2**-23  # scaled to peak 0.5, no clipping
    assert np.all(audio.std(axis=0) > 0)  # every capsule carries signal
    manifest = scan(out)
    assert [(e.path, e.scene_class, e.channels) for e in manifest.usable] == [
        ("Beach-01.wav", "Beach", 32),
        ("BusyStreet-01.wav", "BusyStreet", 32),
    ]


def test_complete_corpus_is_reused_and_incomplete_one_regenerated(tmp_path):
    out = synthesize_eigenscape_corpus(tmp_path, scenes=1, seconds=0.2, seed=0)
    wav = out / "Beach-01.wav"
    complete = wav.read_bytes()
    stamp = wav.stat().st_mtime_ns
    synthesize_eigenscape_corpus(tmp_path, scenes=1, seconds=0.2, seed=0)
    assert wav.stat().st_mtime_ns == stamp  # reused, not rewritten
    wav.write_bytes(complete[: len(complete) // 3])  # a run killed mid-write ...
    (out / COMPLETE_MARKER).unlink()  # ... never wrote its marker
    synthesize_eigenscape_corpus(tmp_path, scenes=1, seconds=0.2, seed=0)
    assert wav.read_bytes() == complete and (out / COMPLETE_MARKER).exists()


def test_refuses_a_directory_with_other_files(tmp_path):
    (tmp_path / "thesis.pdf").write_bytes(b"%PDF")
    with pytest.raises(FileExistsError, match="thesis.pdf"):
        synthesize_eigenscape_corpus(tmp_path, scenes=1, seconds=0.1)
    assert (tmp_path / "thesis.pdf").exists()


def test_default_corpus_is_generated_once_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOENC_CACHE", str(tmp_path))
    monkeypatch.setattr(synth_scenes, "DEFAULT_SCENES", 1)
    monkeypatch.setattr(synth_scenes, "DEFAULT_SECONDS", 0.2)
    path = default_eigenscape_corpus()
    assert path.parent == tmp_path and (path / COMPLETE_MARKER).exists() and (path / "Beach-01.wav").exists()

    def no_generation(*args, **kwargs):
        raise AssertionError("the cached corpus should have been reused")

    monkeypatch.setattr(synth_scenes, "synthesize_scene", no_generation)
    assert default_eigenscape_corpus() == path


def _arrival_samples(channel: np.ndarray, upsample: int = 32) -> float:
    """Sub-sample position of the strongest peak (the direct path) by band-limited upsampling."""
    peak = int(np.argmax(np.abs(channel)))
    window = channel[peak - 24 : peak + 24]
    fine = signal.resample(window, len(window) * upsample)
    return peak - 24 + int(np.argmax(np.abs(fine))) / upsample


@pytest.mark.parametrize(("azimuth", "colatitude"), [(0.0, 90.0), (135.0, 60.0), (250.0, 120.0), (40.0, 25.0)])
def test_arrival_order_across_capsules_matches_the_source_direction(azimuth, colatitude):
    """An impulse rendered through the scene pipeline reaches the capsules in geometric order.

    Reference: the free-field travel time |source - capsule| / c of each capsule (em32
    positions, c = 343 m/s), computed here in float64. Checks: measured direct-path arrivals
    equal it up to one common offset within 0.1 sample (2 µs), and every pair of capsules
    whose travel times differ by more than 0.5 sample arrives in the order the source
    direction predicts (-n_m · u).
    """
    room = RoomSpec((10.0, 8.0, 6.0), (0.3,) * 6, 2, (5.0, 4.0, 2.5))
    impulse = np.zeros(9_600)
    impulse[100] = 1.0
    source_position = tuple(np.asarray(room.array_center_m) + 3.0 * unit_vector(colatitude, azimuth))
    spec = SceneSpec(
        "test",
        9_600,
        room,
        (SourceSpec("click", impulse, source_position, source_position),),
        background=None,
        peak=None,
    )
    audio = render_scene(spec)
    measured = np.array([_arrival_samples(channel) for channel in audio])
    distances = np.linalg.norm(capsule_positions(room.array_center_m) - np.asarray(source_position), axis=1)
    expected = distances / SPEED_OF_SOUND_M_S * RATE
    offset = np.mean(measured - expected)
    assert np.max(np.abs(measured - expected - offset)) < 0.1
    facing = -(capsule_directions() @ unit_vector(colatitude, azimuth))  # earlier = more negative
    for i in range(32):
        for j in range(32):
            if expected[j] - expected[i] > 0.5:
                assert measured[i] < measured[j]
                assert facing[i] < facing[j]


def test_diffuse_background_has_the_diffuse_field_coherence():
    """Real part of the coherence between two capsules ≈ sin(kd)/(kd) (diffuse-field theory)."""
    rng = np.random.default_rng(0)
    audio = diffuse_background(BackgroundSpec(slope_db_per_octave=0.0, lowpass_hz=20_000.0), 4 * RATE, RATE, rng)
    assert audio.shape == (32, 4 * RATE)
    positions = capsule_positions()
    for first, second in ((0, 1), (0, 2), (0, 24)):  # near neighbours ... nearly opposite
        distance = np.linalg.norm(positions[first] - positions[second])
        frequencies, cross = signal.csd(audio[first], audio[second], fs=RATE, nperseg=512)
        _, auto_first = signal.welch(audio[first], fs=RATE, nperseg=512)
        _, auto_second = signal.welch(audio[second], fs=RATE, nperseg=512)
        coherence = np.real(cross) / np.sqrt(auto_first * auto_second)
        theory = np.sinc(2 * frequencies * distance / SPEED_OF_SOUND_M_S)
        band = (frequencies > 200) & (frequencies < 12_000)
        assert np.mean(np.abs(coherence[band] - theory[band])) < 0.05


def test_synth_command_writes_the_corpus(tmp_path, capsys):
    from audioenc.cli import main

    assert (
        main(["synth", "eigenscape-like", str(tmp_path / "out"), "--scenes", "1", "--seconds", "0.1", "--seed", "2"])
        == 0
    )
    assert "1 scenes x 0.1 s" in capsys.readouterr().out
    expected = synthesize_eigenscape_corpus(tmp_path / "direct", scenes=1, seconds=0.1, seed=2)
    assert (tmp_path / "out" / "Beach-01.wav").read_bytes() == (expected / "Beach-01.wav").read_bytes()
