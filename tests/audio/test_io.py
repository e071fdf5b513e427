"""Seek-reads, soxr resampling and exact lengths of `audioenc.audio.io`."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audioenc import SAMPLE_RATE
from audioenc.audio.io import (
    AudioReadError,
    read_clip,
    read_frames,
    read_segment,
    resample,
    resampler_margin_frames,
    write_audio,
)


def _sines(rng: np.random.Generator, max_hz: float, count: int = 8):
    """Random band-limited test signal: (frequencies Hz, amplitudes, phases)."""
    return rng.uniform(50.0, max_hz, count), rng.uniform(0.02, 0.1, count), rng.uniform(0, 2 * np.pi, count)


def _evaluate(parts, times: np.ndarray) -> np.ndarray:
    frequencies, amplitudes, phases = parts
    return (amplitudes[:, None] * np.sin(2 * np.pi * frequencies[:, None] * times[None, :] + phases[:, None])).sum(0)


@pytest.mark.parametrize(("source_rate", "max_hz"), [(48_000, 9_000.0), (44_100, 9_000.0), (16_000, 6_500.0)])
def test_resampled_segment_equals_float64_reference(tmp_path, source_rate, max_hz):
    """A seek-read, soxr-resampled segment equals the band-limited signal itself.

    Reference: the file holds a sum of sines below both Nyquist limits (and below soxr's
    passband edge), so the ideal resampled value at output time t is the same sum evaluated
    in float64 at ``t = start / source_rate + m / 24000``. Tolerance: max |error| < 1e-5
    (-100 dB re full scale; measured 1e-7 at 48 and 16 kHz, 3e-6 at 44.1 kHz).
    """
    rng = np.random.default_rng(source_rate)
    parts = _sines(rng, max_hz)
    signal = _evaluate(parts, np.arange(3 * source_rate) / source_rate)
    path = tmp_path / "sines.wav"
    sf.write(path, signal.astype(np.float32), source_rate, subtype="FLOAT")
    for start in (source_rate // 3 + 7, source_rate, 0):
        segment = read_segment(path, start, 12_000, 24_000)
        assert segment.shape == (1, 12_000) and segment.dtype == np.float32
        reference = _evaluate(parts, start / source_rate + np.arange(12_000) / 24_000)
        if start == 0:
            # The file starts abruptly (zeros before it, as for a whole-file resampling), so
            # compare away from that edge: past the filter's reach.
            segment, reference = segment[:, 300:], reference[300:]
        assert np.max(np.abs(segment[0] - reference)) < 1e-5


def test_resampling_removes_content_above_the_new_nyquist(tmp_path):
    """A 15 kHz tone at 48 kHz has no place at 24 kHz: the ideal resampler outputs 0 for it.

    Linear interpolation would fold it to 9 kHz at about -2 dB; soxr must leave < -100 dB.
    """
    times = np.arange(2 * 48_000) / 48_000
    path = tmp_path / "high.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * 15_000 * times)).astype(np.float32), 48_000, subtype="FLOAT")
    segment = read_segment(path, 12_345, 24_000, 24_000)
    level_db = 20 * np.log10(np.sqrt(np.mean(segment.astype(np.float64) ** 2)) / (0.5 / np.sqrt(2)))
    assert level_db < -100.0


@pytest.mark.parametrize("source_rate", [48_000, 44_100, 16_000])
def test_segment_equals_the_same_span_of_a_whole_file_resampling(tmp_path, source_rate):
    """Reading only the needed frames + margin gives what resampling the whole file gives.

    Reference: soxr over the whole file at once, with zeros before and after it (the
    convention of `read_segment`; soxr's own start-up alone trims its first output samples
    slightly differently at 44.1 kHz, by up to 3e-3). Starts are on the common grid of the
    two rates so that the span is an integer number of output samples. Tolerance 1e-5.
    """
    rng = np.random.default_rng(7)
    audio = (0.1 * rng.standard_normal((2, 4 * source_rate))).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(path, audio.T, source_rate, subtype="FLOAT")
    period_in = source_rate // np.gcd(source_rate, 24_000)
    period_out = 24_000 // np.gcd(source_rate, 24_000)
    pad = 20 * period_in  # zeros around the file, a whole number of grid periods
    whole = resample(np.pad(audio, ((0, 0), (pad, pad))), source_rate, 24_000)[:, 20 * period_out :]
    last_start = (4 * source_rate - int(np.ceil(24_000 * source_rate / 24_000))) // period_in
    for grid_index in (0, 1, 37, last_start // 2, last_start):
        start = grid_index * period_in
        segment = read_segment(path, start, 24_000, 24_000)
        expected = whole[:, grid_index * period_out : grid_index * period_out + 24_000]
        assert segment.shape == expected.shape == (2, 24_000)
        assert np.max(np.abs(segment - expected)) < 1e-5


@pytest.mark.parametrize("subtype_and_suffix", [("PCM_24", ".wav"), ("PCM_16", ".flac")])
def test_seek_read_equals_the_same_span_of_a_full_read(tmp_path, subtype_and_suffix):
    """`read_frames` of a span equals that span of `soundfile.read` of the whole file, bit for bit."""
    subtype, suffix = subtype_and_suffix
    rng = np.random.default_rng(3)
    audio = (0.3 * rng.standard_normal((3, 30 * 44_100))).clip(-1, 1)
    path = write_audio(tmp_path / f"long{suffix}", audio, 44_100, subtype=subtype)
    full, _ = sf.read(path, dtype="float32", always_2d=True)
    for start, frames in ((0, 1000), (123_457, 44_100), (30 * 44_100 - 5000, 5000), (700_001, 1)):
        assert np.array_equal(read_frames(path, start, frames), full[start : start + frames].T)
        selected = read_frames(path, start, frames, channels=(2, 0))
        assert np.array_equal(selected, full[start : start + frames][:, [2, 0]].T)


def test_read_frames_pads_zeros_outside_the_file(tmp_path):
    path = write_audio(tmp_path / "short.wav", np.full((1, 100), 0.25), 8_000)
    frames = read_frames(path, -10, 120)
    assert frames.shape == (1, 120)
    assert np.all(frames[0, :10] == 0) and np.all(frames[0, 110:] == 0)
    assert np.allclose(frames[0, 10:110], 0.25, atol=1 / 2**23)


@pytest.mark.parametrize(
    ("source_rate", "num_samples"), [(48_000, 24_000), (44_100, 8_880), (22_050, 1), (24_000, 777)]
)
def test_exact_lengths(tmp_path, source_rate, num_samples):
    path = write_audio(tmp_path / "a.wav", np.zeros((2, source_rate)), source_rate)
    assert read_segment(path, 10, num_samples, 24_000).shape == (2, num_samples)
    assert read_segment(path, 10, num_samples, 24_000, channels=(1,)).shape == (1, num_samples)
    assert read_segment(path, 10, num_samples, 24_000, downmix=True).shape == (1, num_samples)


def test_margin_is_on_the_common_grid():
    """Hand values: reach 256 * max(1, in/out) rounded up to a multiple of in/gcd(in, out)."""
    assert resampler_margin_frames(48_000, 24_000) == 512  # reach 512, period 2
    assert resampler_margin_frames(44_100, 24_000) == 588  # reach ceil(470.4) = 471, period 147 -> 4 * 147
    assert resampler_margin_frames(16_000, 24_000) == 256  # reach 256, period 2
    assert resampler_margin_frames(24_000, 24_000) == 0


def test_nan_in_a_segment_is_a_read_error(tmp_path):
    audio = np.zeros((1, 48_000), dtype=np.float32)
    audio[0, 30_000] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, audio.T, 48_000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="NaN or Inf"):
        read_segment(path, 20_000, 12_000, 24_000)
    assert np.all(read_segment(path, 0, 4_000, 24_000) == 0)  # a clean span still reads


def test_missing_file_is_a_read_error(tmp_path):
    with pytest.raises(AudioReadError, match="gone.wav"):
        read_frames(tmp_path / "gone.wav", 0, 10)


def test_write_refuses_to_clip(tmp_path):
    with pytest.raises(ValueError, match="exceeds full scale"):
        write_audio(tmp_path / "loud.wav", np.full((1, 10), 1.5), 24_000)


def test_a_segment_reads_only_its_frames_and_the_margin(tmp_path, monkeypatch):
    """Memory per read is bounded by the segment, not the file: count the frames asked of libsndfile."""
    path = write_audio(tmp_path / "long.wav", np.zeros((4, 20 * 48_000)), 48_000)
    requested: list[int] = []
    real_read = sf.SoundFile.read

    def recording_read(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", recording_read)
    read_segment(path, 10 * 48_000, 24_000, 24_000)
    assert requested == [48_000 + 2 * resampler_margin_frames(48_000, 24_000)]


def test_read_clip_downmixes_and_resamples(tmp_path):
    # A 48 kHz stereo file: left a 1 kHz sine of amplitude 0.5, right silence. The mono 24 kHz
    # result is their average: a 1 kHz sine of amplitude 0.25 (soxr keeps a 1 kHz tone intact).
    seconds = 1.0
    t = np.arange(int(48_000 * seconds)) / 48_000
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t), np.zeros_like(t)], axis=1).astype(np.float32)
    path = tmp_path / "stereo48k.wav"
    sf.write(path, stereo, 48_000, subtype="FLOAT")
    mono = read_clip(path, SAMPLE_RATE)
    assert mono.shape == (SAMPLE_RATE,) and mono.dtype == np.float32
    middle = mono[2_000:-2_000]
    assert np.sqrt(2 * np.mean(middle.astype(np.float64) ** 2)) == pytest.approx(0.25, rel=1e-3)
    spectrum = np.abs(np.fft.rfft(middle))
    assert np.fft.rfftfreq(len(middle), 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(1000, abs=2)


def test_read_clip_errors_name_the_file(tmp_path):
    bad = tmp_path / "not_audio.wav"
    bad.write_text("hello")
    with pytest.raises(AudioReadError, match="not_audio.wav"):
        read_clip(bad, SAMPLE_RATE)


def test_read_clip_refuses_a_truncated_file(tmp_path):
    # The header promises 24,000 frames; the data stops after 500: refused, as `scan` calls it.
    path = tmp_path / "cut.wav"
    sf.write(path, np.zeros(24_000, dtype=np.float32), 24_000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 2 * 500])
    with pytest.raises(AudioReadError, match="cut.wav"):
        read_clip(path, SAMPLE_RATE)


def test_read_clip_keeps_channels_when_asked(tmp_path):
    path = tmp_path / "three.wav"
    audio = np.stack([np.full(100, 0.1), np.full(100, 0.2), np.full(100, -0.3)], axis=1).astype(np.float32)
    sf.write(path, audio, 24_000, subtype="FLOAT")
    np.testing.assert_array_equal(read_clip(path, SAMPLE_RATE, mono=False), audio.T)
    np.testing.assert_allclose(read_clip(path, SAMPLE_RATE), np.zeros(100), atol=1e-7)  # (0.1 + 0.2 - 0.3) / 3
