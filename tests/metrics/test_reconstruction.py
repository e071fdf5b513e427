"""Reconstruction metrics against float64 NumPy references and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audioenc.metrics import distances
from audioenc.metrics.reconstruction import (
    band_edges,
    evaluate_codec,
    identification_accuracy,
    spatial_errors,
    validation_mel,
)
from audioenc.models.codec import CodecOutput


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
        frames = np.stack([padded[:, i : i + n_fft] * win for i in range(0, padded.shape[1] - n_fft + 1, hop)], -1)
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
        spatial_errors(torch.zeros(1, 2, 2000), torch.zeros(1, 3, 2000), 24000)
    with pytest.raises(ValueError, match="at least 2 channels"):
        spatial_errors(torch.zeros(1, 1, 2000), torch.zeros(1, 1, 2000), 24000)


# ---- identification and the whole evaluation ---------------------------------------------------


def _identified_brute_force(references: np.ndarray, estimates: np.ndarray) -> list[bool]:
    n = len(references)
    result = []
    for i in range(n):
        distances = [np.mean(np.abs(estimates[i] - references[j])) for j in range(n)]
        result.append(all(distances[i] < distances[j] for j in range(n) if j != i))
    return result


def test_identification_accuracy_matches_brute_force_and_extremes():
    rng = np.random.default_rng(1)
    references = rng.standard_normal((6, 2, 5, 7))
    # Half the estimates lie near their own reference, half near the next one.
    estimates = references + 0.05 * rng.standard_normal(references.shape)
    estimates[3:] = np.roll(references, -1, axis=0)[3:] + 0.05 * rng.standard_normal((3, 2, 5, 7))
    got = identification_accuracy(torch.tensor(references), torch.tensor(estimates))
    assert got.tolist() == _identified_brute_force(references, estimates) == [True] * 3 + [False] * 3
    # A collapsed model (the same output for every input) identifies at most one segment.
    constant = np.broadcast_to(references.mean(axis=0), references.shape)
    assert int(identification_accuracy(torch.tensor(references), torch.tensor(constant)).sum()) <= 1


def test_identification_accuracy_rejects_mismatched_or_single():
    with pytest.raises(ValueError, match="same shape"):
        identification_accuracy(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="N >= 2"):
        identification_accuracy(torch.zeros(1, 4), torch.zeros(1, 4))


class _HalfGain(torch.nn.Module):
    """A stand-in codec whose reconstruction is the input at 0.9 amplitude plus a fixed tone."""

    def forward(self, audio: torch.Tensor) -> CodecOutput:
        time = torch.arange(audio.shape[-1], dtype=audio.dtype) / 24000
        out = 0.9 * audio + 0.01 * torch.sin(2 * math.pi * 440 * time)
        zero = torch.zeros(())
        return CodecOutput(out, out[:, :, ::320], None, zero, zero, torch.ones(len(out), 1, 1))


def test_evaluate_codec_averages_per_item_whatever_the_batching():
    # Regression: mel_distance used to be a batch mean summed per batch and divided by the item
    # count, i.e. the true value divided by the batch size.
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(5, 1, 4800) * 0.5 ** torch.arange(5.0)[:, None, None]  # 6 dB apart
    model = _HalfGain()
    pairs = list(zip(audio.double().numpy(), model(audio).audio.double().numpy()))
    expected_mel = np.mean([distances.mel_distance(y, y_hat, 24000) for y, y_hat in pairs])
    expected_si_snr = np.mean([distances.si_sdr(y, y_hat) for y, y_hat in pairs])
    for batches in ([audio], [audio[:3], audio[3:]], [audio[i : i + 1] for i in range(5)]):
        metrics = evaluate_codec(model, batches, 24000, torch.device("cpu"))
        assert metrics["items"] == 5
        assert metrics["mel_distance"] == pytest.approx(expected_mel, rel=1e-5)
        assert metrics["si_snr"] == pytest.approx(expected_si_snr, rel=1e-5)
        # 0.9 gain is a log-mel offset of 0.09, small next to the 0.6 between neighbouring
        # segments, so every segment is recognised from its reconstruction.
        assert metrics["mel_identified"] == 1.0


def test_validation_logs_the_distances_audioenc_eval_reports_and_skips_silent_segments_for_si_sdr():
    torch.manual_seed(1)
    audio = 0.1 * torch.randn(3, 2, 4800)
    audio[2] = 0.0  # a silent segment: SI-SDR is undefined there, the distances are not
    model = _HalfGain()
    metrics = evaluate_codec(model, [audio], 24000, torch.device("cpu"))
    pairs = list(zip(audio.double().numpy(), model(audio).audio.double().numpy()))
    mel = np.mean([distances.mel_distance(y, y_hat, 24000) for y, y_hat in pairs])
    stft = np.mean([distances.stft_distance(y, y_hat) for y, y_hat in pairs])
    si_sdr = np.mean([distances.si_sdr(y, y_hat) for y, y_hat in pairs[:2]])
    assert metrics["mel_distance"] == pytest.approx(mel, rel=1e-12)
    assert metrics["stft_distance"] == pytest.approx(stft, rel=1e-12)
    assert metrics["si_snr"] == pytest.approx(si_sdr, rel=1e-12)
    assert metrics["neg_si_snr"] == -metrics["si_snr"]


def test_validation_mel_is_log10_of_htk_mel_power_at_hop_256():
    mel = validation_mel(24000)
    out = mel(0.1 * torch.randn(2, 3, 4800))
    assert out.shape == (2, 3, 64, mel.num_frames(4800)) and mel.hop_length == 256 and mel.log == "log10"
