"""Perceptual measures (ViSQOL audio/speech, PESQ wide-band, STOI, ESTOI) through audioenc's wrapper:
their maxima on identical signals (the published ceilings), their ordering under known
degradations, and when a measure is not computed (skip_reason)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from audioenc.metrics import perceptual
from audioenc.metrics.perceptual import MEASURES, available, score, skip_reason

SPEECH_MEASURES = ("visqol_speech", "pesq_wb", "stoi", "estoi")


def speech_like(sample_rate: int = 16000, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Glottal pulse train (~120 Hz, slight vibrato) through four formant resonators, with a
    syllable-rate (4 Hz) amplitude envelope and a little breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    f0 = 120.0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    pulses = np.diff(np.floor(np.cumsum(f0) / sample_rate), prepend=0.0)
    source = signal.lfilter([1.0], [1.0, -0.95], pulses) + 0.01 * rng.standard_normal(len(t))
    voiced = np.zeros_like(source)
    for centre, bandwidth in ((700, 110), (1220, 120), (2600, 160), (3500, 250)):
        r = math.exp(-math.pi * bandwidth / sample_rate)
        theta = 2 * math.pi * centre / sample_rate
        voiced += signal.lfilter([1 - r], [1.0, -2 * r * math.cos(theta), r * r], source)
    voiced *= 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t))
    return 0.3 * voiced / np.abs(voiced).max()


def music_like(sample_rate: int = 24000, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Sum of harmonics of two notes with a slow tremolo, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    x = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 15))
    x = x + sum(np.sin(2 * np.pi * 330 * k * t + 1) / k for k in range(1, 10))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) + 0.05 * rng.standard_normal(len(t))
    return 0.3 * x / np.abs(x).max()


def with_noise(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(x.shape)
    n *= math.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr_db / 10))
    return x + n


def test_the_packages_are_installed():
    """The evaluation extra is installed in this environment: no measure may be silently skipped."""
    for name in MEASURES:
        assert available(name), name
        assert skip_reason(name, content="speech", channels=1, seconds=2.0) is None, name


def test_measure_table():
    assert MEASURES["visqol_audio"].sample_rate == 48000 and not MEASURES["visqol_audio"].speech_only
    assert MEASURES["visqol_speech"].sample_rate == 16000
    assert all(MEASURES[name].speech_only for name in SPEECH_MEASURES)


# ----------------------------------------------------------------------------- identical signals


def test_visqol_audio_identity_reaches_its_ceiling():
    """The reference implementation's identity conformance value is 4.732101 (castanets)."""
    x = music_like()[None]
    value = score("visqol_audio", x, x.copy(), 24000)
    assert 4.7 <= value <= 4.75


def test_visqol_speech_identity_is_near_five():
    x = speech_like()[None]
    assert 4.5 <= score("visqol_speech", x, x.copy(), 16000) <= 5.0


@pytest.mark.parametrize("rate", [16000, 24000])
def test_pesq_wb_identity_reaches_its_ceiling(rate):
    """P.862.2's maximum MOS-LQO is 4.644; at 24 kHz the wrapper resamples both sides to 16 kHz."""
    x = speech_like(rate)[None]
    value = score("pesq_wb", x, x.copy(), rate)
    assert 4.5 <= value <= 4.644 + 1e-3


@pytest.mark.parametrize("name", ["stoi", "estoi"])
def test_stoi_identity_is_one(name):
    x = speech_like()[None]
    assert score(name, x, x.copy(), 16000) == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------------- degradations


@pytest.mark.parametrize("name", SPEECH_MEASURES)
def test_speech_measures_fall_with_noise(name):
    x = speech_like()[None]
    identical = score(name, x, x.copy(), 16000)
    at_30 = score(name, x, with_noise(x, 30), 16000)
    at_10 = score(name, x, with_noise(x, 10), 16000)
    assert identical > at_30 > at_10, (identical, at_30, at_10)


def test_visqol_audio_falls_with_noise_and_low_pass():
    x = music_like()[None]
    identical = score("visqol_audio", x, x.copy(), 24000)
    at_30 = score("visqol_audio", x, with_noise(x, 30), 24000)
    at_10 = score("visqol_audio", x, with_noise(x, 10), 24000)
    assert identical > at_30 > at_10, (identical, at_30, at_10)
    low = signal.sosfiltfilt(signal.butter(8, 2000, fs=24000, output="sos"), x, axis=-1)
    low_passed = score("visqol_audio", x, low, 24000)
    assert low_passed < identical - 0.3, (identical, low_passed)


def test_score_is_the_mean_over_channels_and_skips_silent_references():
    x = speech_like()
    noisy = with_noise(x, 10)
    single_clean = score("pesq_wb", x[None], x[None], 16000)
    single_noisy = score("pesq_wb", x[None], noisy[None], 16000)
    both = score("pesq_wb", np.stack([x, x]), np.stack([x, noisy]), 16000)
    assert both == pytest.approx((single_clean + single_noisy) / 2, abs=1e-6)
    silent = np.zeros_like(x)
    assert score("pesq_wb", np.stack([silent, x]), np.stack([noisy, noisy]), 16000) == pytest.approx(
        single_noisy, abs=1e-6
    )
    assert math.isnan(score("stoi", silent[None], noisy[None], 16000))


# --------------------------------------------------------------------------------- skip reasons


@pytest.mark.parametrize("name", SPEECH_MEASURES)
@pytest.mark.parametrize("content", ["music", "general"])
def test_speech_measures_are_not_computed_on_other_material(name, content):
    reason = skip_reason(name, content=content, channels=1, seconds=5.0)
    assert reason is not None and "speech" in reason and content in reason


@pytest.mark.parametrize("name", list(MEASURES))
def test_short_files_are_not_scored(name):
    reason = skip_reason(name, content="speech", channels=1, seconds=0.1)
    assert reason is not None and "0.100 s" in reason and "needs at least" in reason
    assert str(perceptual.MIN_SECONDS[name]) in reason


def test_visqol_audio_applies_to_music_and_general():
    for content in ("music", "general", "speech"):
        assert skip_reason("visqol_audio", content=content, channels=2, seconds=1.0) is None
