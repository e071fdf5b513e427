"""Reconstruction metrics against float64 NumPy references and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audioenc.metrics.reconstruction import band_edges, si_snr, spatial_errors


def _si_snr_numpy(s: np.ndarray, s_hat: np.ndarray) -> float:
    s = s - s.mean()
    s_hat = s_hat - s_hat.mean()
    target = np.dot(s_hat, s) / np.dot(s, s) * s
    noise = s_hat - target
    return 10 * np.log10(np.dot(target, target) / np.dot(noise, noise))


def test_si_snr_matches_numpy_reference():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 3, 1000))
    y_hat = 0.7 * y + 0.1 * rng.standard_normal((2, 3, 1000))
    expected = [np.mean([_si_snr_numpy(y[b, c], y_hat[b, c]) for c in range(3)]) for b in range(2)]
    got = si_snr(torch.tensor(y), torch.tensor(y_hat))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)


def test_si_snr_is_scale_invariant_and_known_value():
    rng = np.random.default_rng(1)
    s = rng.standard_normal(4000)
    s -= s.mean()
    noise = rng.standard_normal(4000)
    noise -= noise.mean()
    noise -= np.dot(noise, s) / np.dot(s, s) * s  # orthogonal to s
    noise *= np.linalg.norm(s) / np.linalg.norm(noise) / math.sqrt(10)  # SNR exactly 10 dB
    y = torch.tensor(s).view(1, 1, -1)
    y_hat = torch.tensor(s + noise).view(1, 1, -1)
    assert si_snr(y, y_hat).item() == pytest.approx(10.0, abs=1e-6)
    assert si_snr(y, 5 * y_hat).item() == pytest.approx(10.0, abs=1e-6)


def test_spatial_errors_zero_for_perfect_and_ild_for_gain_change():
    torch.manual_seed(0)
    y = torch.randn(2, 3, 8000, dtype=torch.float64)
    perfect = spatial_errors(y, y.clone(), 24000)
    assert perfect["ild_error_db"].abs().max().item() < 1e-9
    assert perfect["coherence_error"].abs().max().item() < 1e-9
    # Scaling channel 0 by g changes ILD(0, j) by 20 log10 g for its 2 of 3 pairs; coherence unchanged.
    gain = 2.0
    y_hat = y.clone()
    y_hat[:, 0] *= gain
    errors = spatial_errors(y, y_hat, 24000)
    expected_ild = 20 * math.log10(gain) * 2 / 3
    np.testing.assert_allclose(errors["ild_error_db"].numpy(), expected_ild, rtol=1e-9)
    assert errors["coherence_error"].abs().max().item() < 1e-9


def test_coherence_matches_numpy_reference():
    rng = np.random.default_rng(2)
    common = rng.standard_normal(6000)
    y = np.stack([common + 0.3 * rng.standard_normal(6000), common + 0.3 * rng.standard_normal(6000)])[None]
    y_hat = np.stack([common, rng.standard_normal(6000)])[None]  # channel 1 decorrelated
    n_fft, hop = 512, 128
    edges = band_edges(24000, n_fft, 4, 100.0)

    def icc(x):
        win = np.hanning(n_fft + 1)[:-1]
        padded = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
        frames = np.stack([padded[:, i:i + n_fft] * win for i in range(0, padded.shape[1] - n_fft + 1, hop)], -1)
        spec = np.fft.rfft(frames, axis=1)  # [C, bins, frames]
        out = []
        for low, high in edges:
            band = spec[:, low:high].reshape(2, -1)
            s01 = np.sum(band[0] * band[1].conj())
            out.append(abs(s01) / np.sqrt(np.sum(abs(band[0]) ** 2) * np.sum(abs(band[1]) ** 2)))
        return np.array(out)

    expected = np.mean(np.abs(icc(y[0]) - icc(y_hat[0])))
    got = spatial_errors(torch.tensor(y), torch.tensor(y_hat), 24000, n_fft=n_fft, hop_length=hop, n_bands=4)
    assert got["coherence_error"].item() == pytest.approx(expected, rel=1e-9)
    assert got["coherence_error"].item() > 0.3  # decorrelating a channel is a large spatial error


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        si_snr(torch.zeros(1, 1, 10), torch.zeros(1, 2, 10))
    with pytest.raises(ValueError, match="at least 2 channels"):
        spatial_errors(torch.zeros(1, 1, 2000), torch.zeros(1, 1, 2000), 24000)
