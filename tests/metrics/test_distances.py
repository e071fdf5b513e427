"""SI-SDR, DAC's mel distance and DAC's multi-resolution STFT distance against closed forms and an
independent float64 re-implementation (NumPy framing + ``np.fft.rfft``, SciPy's periodic Hann,
librosa's Slaney mel filters)."""

from __future__ import annotations

import math
import warnings

import librosa
import numpy as np
import pytest
import torch
from scipy import signal

from audioenc.metrics.distances import mel_distance, si_sdr, stft_distance

SR = 24000


def _sinusoid(length: int, freq: float = 440.0, sample_rate: int = SR) -> np.ndarray:
    t = np.arange(length) / sample_rate
    return np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 3.7 * freq * t + 0.4)


def _orthogonal_noise(y: np.ndarray, seed: int) -> np.ndarray:
    """Zero-mean noise made exactly orthogonal to the zero-mean ``y`` (Gram-Schmidt in float64)."""
    n = np.random.default_rng(seed).standard_normal(y.shape[-1])
    n -= n.mean()
    n -= (n @ y) / (y @ y) * y
    return n


def _with_noise(y: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(y.shape)
    n *= math.sqrt(np.mean(y**2) / np.mean(n**2) / 10 ** (snr_db / 10))
    return y + n


def _music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Broadband test signal: harmonics of two notes (up to ~11 kHz) plus white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * 220 * k * t + k) / k for k in range(1, 50))
    x = x + sum(np.sin(2 * np.pi * 330 * k * t) / k for k in range(1, 33))
    x = x + 0.2 * rng.standard_normal(len(t))
    return 0.5 * x / np.abs(x).max()


# ------------------------------------------------------------------------------------------- SI-SDR


@pytest.mark.parametrize("a", [1.0, 0.25, -2.0])
@pytest.mark.parametrize("noise_scale", [0.01, 0.3, 3.0])
def test_si_sdr_closed_form_with_orthogonal_noise(a, noise_scale):
    y = _sinusoid(4801)
    y -= y.mean()
    n = noise_scale * _orthogonal_noise(y, seed=7)
    assert abs(n @ y) < 1e-9 * np.linalg.norm(n) * np.linalg.norm(y)
    expected = 10 * math.log10(a**2 * (y @ y) / (n @ n))
    assert si_sdr(y, a * y + n) == pytest.approx(expected, abs=1e-9)
    # [1, T] and [T] agree, and torch input gives the same float64 value
    assert si_sdr(y[None], (a * y + n)[None]) == pytest.approx(expected, abs=1e-9)
    assert si_sdr(torch.from_numpy(y), torch.from_numpy(a * y + n)) == pytest.approx(expected, abs=1e-9)


def test_si_sdr_ignores_an_added_offset():
    """Both signals are made zero-mean first: a DC offset on either side changes nothing."""
    y = _sinusoid(3000)
    y -= y.mean()
    n = 0.1 * _orthogonal_noise(y, seed=3)
    expected = 10 * math.log10((y @ y) / (n @ n))
    assert si_sdr(y + 0.5, y + n - 0.2) == pytest.approx(expected, abs=1e-9)


def test_si_sdr_is_scale_invariant():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 5000))
    y_hat = 0.8 * y + 0.2 * rng.standard_normal((2, 5000))
    value = si_sdr(y, y_hat)
    assert si_sdr(y, 3 * y_hat) == pytest.approx(value, abs=1e-9)
    assert si_sdr(y, 0.001 * y_hat) == pytest.approx(value, abs=1e-9)
    assert si_sdr(5 * y, y_hat) == pytest.approx(value, abs=1e-9)


def test_si_sdr_of_a_copy_is_plus_infinity():
    y = np.random.default_rng(1).standard_normal((2, 2000))
    assert si_sdr(y, y.copy()) == math.inf
    assert si_sdr(y, 2.0 * y) == math.inf  # a power-of-two scale is exact in float64
    assert si_sdr(y, -0.5 * y) == math.inf
    # another scale leaves only float64 rounding (~1e-16 relative): the float64 floor, ~300 dB
    assert si_sdr(y, 2.5 * y) > 250


def test_si_sdr_means_over_channels_and_drops_a_silent_reference():
    y = _sinusoid(4000)
    y -= y.mean()
    n1 = 0.1 * _orthogonal_noise(y, seed=1)
    n2 = 0.5 * _orthogonal_noise(y, seed=2)
    v1 = 10 * math.log10((y @ y) / (n1 @ n1))
    v2 = 10 * math.log10((y @ y) / (n2 @ n2))
    stacked = si_sdr(np.stack([y, y]), np.stack([y + n1, y + n2]))
    assert stacked == pytest.approx((v1 + v2) / 2, abs=1e-9)
    # a silent reference channel has no SI-SDR and is left out of the mean
    silent = np.zeros_like(y)
    assert si_sdr(np.stack([y, silent]), np.stack([y + n1, n2])) == pytest.approx(v1, abs=1e-9)
    assert math.isnan(si_sdr(silent, n2))


@pytest.mark.parametrize("seed", [0, 1])
def test_si_sdr_tracks_the_snr_of_white_noise(seed):
    y = _music_like(10.0, seed)  # 240 000 samples: the measured SNR is within a few 0.01 dB
    values = [si_sdr(y, _with_noise(y, snr, seed + 10)) for snr in (30, 20, 10)]
    for value, snr in zip(values, (30, 20, 10), strict=True):
        assert abs(value - snr) < 0.5, (snr, value)
    assert values[0] > values[1] > values[2]


def test_si_sdr_of_a_delayed_signal():
    """A delay is not a scale: SI-SDR falls with the lost correlation ρ to 10 log10(ρ² / (1 − ρ²))."""
    rng = np.random.default_rng(5)
    white = rng.standard_normal(48000 + 200)
    lowpassed = signal.sosfiltfilt(signal.butter(8, 2000, fs=SR, output="sos"), white)
    for noise in (white, lowpassed):
        y = noise[100:-100]
        results = {}
        for shift in (1, 10, 100):
            y_hat = noise[100 - shift : len(noise) - 100 - shift]  # y delayed by `shift` samples
            a, b = y - y.mean(), y_hat - y_hat.mean()
            rho = (a @ b) / math.sqrt((a @ a) * (b @ b))
            results[shift] = si_sdr(y, y_hat)
            assert results[shift] == pytest.approx(10 * math.log10(rho**2 / (1 - rho**2)), abs=1e-6)
        assert results[10] < 0 and results[100] < 0, results
        assert results[1] < 40
        if noise is lowpassed:  # correlated neighbours: one sample of delay costs less than ten
            assert results[1] > 5 and results[10] < 0, results
    # broadband (white) noise: one sample of delay already decorrelates it
    y = white[100:-100]
    assert si_sdr(y, white[99:-101]) < -10


# ----------------------------------------------------------------------- DAC mel / STFT distances


def _frames_magnitude(x: np.ndarray, window: int) -> np.ndarray:
    """``|STFT|`` ``[bins, frames]`` of one channel: reflect padding of window // 2 on both sides,
    periodic Hann, hop window // 4, frames taken by hand."""
    hop = window // 4
    padded = np.pad(x, window // 2, mode="reflect")
    count = 1 + (len(padded) - window) // hop
    index = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    hann = signal.get_window("hann", window)  # fftbins=True: periodic
    return np.abs(np.fft.rfft(padded[index] * hann, axis=1)).T


def _mel_reference(y: np.ndarray, y_hat: np.ndarray, sample_rate: int) -> float:
    total = 0.0
    for window, n_mels in zip((32, 64, 128, 256, 512, 1024, 2048), (5, 10, 20, 40, 80, 160, 320), strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bank = librosa.filters.mel(
                sr=sample_rate, n_fft=window, n_mels=n_mels, htk=False, norm="slaney", dtype=np.float64
            )
        terms = []
        for a, b in zip(y, y_hat, strict=True):
            mel_a = bank @ _frames_magnitude(a, window)
            mel_b = bank @ _frames_magnitude(b, window)
            terms.append(np.abs(np.log10(np.maximum(mel_b, 1e-5)) - np.log10(np.maximum(mel_a, 1e-5))))
        total += float(np.mean(terms))
    return total


def _stft_reference(y: np.ndarray, y_hat: np.ndarray) -> float:
    total = 0.0
    for window in (2048, 512):
        log_terms, lin_terms = [], []
        for a, b in zip(y, y_hat, strict=True):
            mag_a, mag_b = _frames_magnitude(a, window), _frames_magnitude(b, window)
            log_a = np.log10(np.maximum(mag_a, 1e-5) ** 2)
            log_b = np.log10(np.maximum(mag_b, 1e-5) ** 2)
            log_terms.append(np.abs(log_b - log_a))
            lin_terms.append(np.abs(mag_b - mag_a))
        total += float(np.mean(log_terms)) + float(np.mean(lin_terms))
    return total


def _random_pair(channels: int, seed: int = 0, seconds: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = 0.3 * rng.standard_normal((channels, int(seconds * SR)))
    y_hat = signal.lfilter([1.0, 0.5], [1.0], y, axis=-1) + 0.05 * rng.standard_normal(y.shape)
    y[:, 1000:1500] = 0.0  # a stretch of digital silence exercises the 1e-5 clamp
    return y, y_hat


@pytest.mark.parametrize("channels", [1, 2])
def test_mel_distance_matches_independent_float64_reference(channels):
    y, y_hat = _random_pair(channels)
    expected = _mel_reference(y, y_hat, SR)
    assert expected > 0.1
    assert mel_distance(y, y_hat, SR) == pytest.approx(expected, rel=1e-9)
    assert mel_distance(torch.from_numpy(y).float(), torch.from_numpy(y_hat).float(), SR) == pytest.approx(
        _mel_reference(y.astype(np.float32).astype(np.float64), y_hat.astype(np.float32).astype(np.float64), SR),
        rel=1e-9,
    )


def test_mel_distance_reference_at_another_rate():
    y, y_hat = _random_pair(1, seed=3)
    assert mel_distance(y, y_hat, 16000) == pytest.approx(_mel_reference(y, y_hat, 16000), rel=1e-9)


@pytest.mark.parametrize("channels", [1, 2])
def test_stft_distance_matches_independent_float64_reference(channels):
    y, y_hat = _random_pair(channels, seed=1)
    expected = _stft_reference(y, y_hat)
    assert expected > 0.1
    assert stft_distance(y, y_hat) == pytest.approx(expected, rel=1e-9)


def test_distances_are_zero_for_identical_signals():
    y = _music_like(0.5)
    assert mel_distance(y, y.copy(), SR) == 0.0
    assert stft_distance(y, y.copy()) == 0.0
    assert mel_distance(y[None], y[None], SR) == 0.0
    silence = np.zeros(SR // 2)
    assert mel_distance(silence, silence, SR) == 0.0 and stft_distance(silence, silence) == 0.0


def test_distances_order_low_pass_cutoffs():
    y = _music_like(1.0, seed=2)
    mel, stft = [], []
    for cutoff in (8000, 4000, 2000):
        low = signal.sosfiltfilt(signal.butter(8, cutoff, fs=SR, output="sos"), y)
        mel.append(mel_distance(y, low, SR))
        stft.append(stft_distance(y, low))
    assert 0 < mel[0] < mel[1] < mel[2], mel
    assert 0 < stft[0] < stft[1] < stft[2], stft


def test_distances_order_noise_levels():
    y = _music_like(1.0, seed=4)
    mel, stft = [], []
    for snr in (40, 25, 10):
        noisy = _with_noise(y, snr, seed=9)
        mel.append(mel_distance(y, noisy, SR))
        stft.append(stft_distance(y, noisy))
    assert 0 < mel[0] < mel[1] < mel[2], mel
    assert 0 < stft[0] < stft[1] < stft[2], stft


@pytest.mark.parametrize("function", ["si_sdr", "mel", "stft"])
@pytest.mark.parametrize("shapes", [((2, 4000), (2, 3999)), ((2, 4000), (1, 4000)), ((4000,), (1, 4000))])
def test_shape_mismatch_raises(function, shapes):
    y, y_hat = np.ones(shapes[0]), np.ones(shapes[1])
    call = {
        "si_sdr": lambda: si_sdr(y, y_hat),
        "mel": lambda: mel_distance(y, y_hat, SR),
        "stft": lambda: stft_distance(y, y_hat),
    }[function]
    with pytest.raises(ValueError, match="differ in shape"):
        call()
