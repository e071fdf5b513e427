"""Spectral losses against float64 NumPy references (numpy STFT + librosa filterbank)."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from audioenc.core.mel import MelSpectrogram
from audioenc.losses.spectral import MultiResolutionSTFTLoss, MultiScaleMelLoss

SR = 24000

# The reference filterbanks at small FFTs have empty bands by construction (17 bins, 64 bands);
# librosa says so each time. MelSpectrogram counts them (tested below).
pytestmark = pytest.mark.filterwarnings("ignore:Empty filters detected:UserWarning")


# ---- independent float64 references -------------------------------------------------------------


def np_hann(length: int) -> np.ndarray:
    """Periodic Hann window, 0.5 - 0.5 cos(2πn/N)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)


def np_stft(x: np.ndarray, n_fft: int, hop: int, win: int, scale: float = 1.0) -> np.ndarray:
    """[frames, n_fft//2+1] complex STFT of an already padded signal, window centred in n_fft."""
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = np_hann(win) * scale
    frames = (len(x) - n_fft) // hop + 1
    index = hop * np.arange(frames)[:, None] + np.arange(n_fft)[None, :]
    return np.fft.rfft(x[index] * window, axis=-1)


def np_mel_power(x: np.ndarray, n_fft: int, hop: int, n_mels: int, normalized: bool = False) -> np.ndarray:
    """[n_mels, frames] mel power with audiocraft's framing: reflect pad (n_fft-hop)//2 per side,
    zeros at the end until the last frame is full; HTK filterbank without area normalisation."""
    pad = (n_fft - hop) // 2
    xp = np.pad(x, pad, mode="reflect")
    frames = math.ceil((len(xp) - n_fft) / hop) + 1
    xp = np.pad(xp, (0, (frames - 1) * hop + n_fft - len(xp)))
    scale = 1 / np.sqrt((np_hann(n_fft) ** 2).sum()) if normalized else 1.0
    power = np.abs(np_stft(xp, n_fft, hop, n_fft, scale)) ** 2
    bank = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=n_mels, htk=True, norm=None, dtype=np.float64)
    return bank @ power.T


def np_multiscale_mel(y, y_hat, windows, alphas, normalized=False, floor=1e-5):
    """Σ_i [mean|M_i(y)-M_i(ŷ)| + α_i mean((log10(floor+M_i(y)) - log10(floor+M_i(ŷ)))²)] / Z,
    over [B, C, T] arrays, with every (b, c) signal done separately."""
    total = 0.0
    for window, alpha in zip(windows, alphas):
        mel_y = np.stack([np_mel_power(s, window, window // 4, 64, normalized) for s in y.reshape(-1, y.shape[-1])])
        mel_h = np.stack([np_mel_power(s, window, window // 4, 64, normalized) for s in y_hat.reshape(-1, y.shape[-1])])
        total += np.abs(mel_y - mel_h).mean()
        total += alpha * ((np.log10(floor + mel_y) - np.log10(floor + mel_h)) ** 2).mean()
    return total / (sum(a + 1 for a in alphas) if normalized else 1.0)


def np_magnitudes(signals, n_fft, hop, win):
    """Centred reflect-padded STFT magnitudes of every signal in ``[..., time]``, floored at 1e-7 in power."""
    out = []
    for s in signals.reshape(-1, signals.shape[-1]):
        spec = np_stft(np.pad(s, n_fft // 2, mode="reflect"), n_fft, hop, win)
        out.append(np.sqrt(np.maximum(np.abs(spec) ** 2, 1e-7)))
    return np.stack(out)


def np_mrstft(y, y_hat, resolutions=((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)), factor=0.5):
    """audiocraft MRSTFTLoss in float64: centred reflect-padded STFT magnitudes, spectral
    convergence as one Frobenius ratio over the whole batch, L1 of log magnitudes."""
    eps = np.finfo(np.float32).eps
    sc = mag = 0.0
    for n_fft, hop, win in resolutions:
        my, mh = np_magnitudes(y, n_fft, hop, win), np_magnitudes(y_hat, n_fft, hop, win)
        sc += np.linalg.norm(my - mh) / (np.linalg.norm(my) + eps)
        mag += np.abs(np.log(eps + my) - np.log(eps + mh)).mean()
    count = len(resolutions)
    return factor * sc / count + factor * mag / count


def random_pair(shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(shape, generator=generator) * 0.1
    y_hat = y + 0.05 * torch.randn(shape, generator=generator)
    return y, y_hat


# ---- MelSpectrogram ---------------------------------------------------------------------------------


def test_mel_spectrogram_matches_numpy_reference_and_keeps_filterbank_as_buffer():
    y, _ = random_pair((2, 2, 2000))
    mel = MelSpectrogram(sample_rate=SR, n_fft=512, hop_length=128, n_mels=64)
    out = mel(y)
    assert out.shape == (2, 2, 64, mel.num_frames(2000)) and mel.num_frames(2000) == math.ceil(2000 / 128)
    for b in range(2):
        for c in range(2):
            reference = np_mel_power(y[b, c].double().numpy(), 512, 128, 64)
            np.testing.assert_allclose(out[b, c].numpy(), reference, rtol=1e-4, atol=1e-6)
    assert list(mel.parameters()) == []
    assert {"filterbank", "window"} <= dict(mel.named_buffers()).keys()
    log_mel = MelSpectrogram(sample_rate=SR, n_fft=512, hop_length=128, n_mels=64, log="log10")
    torch.testing.assert_close(log_mel(y), torch.log10(1e-5 + out))


def test_small_windows_have_empty_mel_bands_that_are_counted():
    # 17 FFT bins for 64 bands: many triangles fall between bins (librosa's filterbank says which).
    bank = librosa.filters.mel(sr=SR, n_fft=32, n_mels=64, htk=True, norm=None)
    assert MelSpectrogram(n_fft=32, hop_length=8).empty_bands == int((bank.sum(axis=1) == 0).sum()) > 0
    assert MelSpectrogram(n_fft=2048, hop_length=512).empty_bands == 0


# ---- MultiScaleMelLoss ---------------------------------------------------------------------------


def test_scales_and_alphas():
    loss = MultiScaleMelLoss()
    assert loss.windows == (32, 64, 128, 256, 512, 1024, 2048)
    # α_i = sqrt(window / 2): sqrt(16), sqrt(32), ..., sqrt(1024).
    expected = (4.0, math.sqrt(32), 8.0, math.sqrt(128), 16.0, math.sqrt(512), 32.0)
    assert loss.alphas == pytest.approx(expected)
    assert [m.hop_length for m in loss.mels] == [8, 16, 32, 64, 128, 256, 512]
    assert MultiScaleMelLoss(alphas=False).alphas == (1.0,) * 7
    assert list(loss.parameters()) == []


def test_mel_loss_is_zero_on_identical_inputs():
    y, _ = random_pair((2, 1, 3000))
    assert MultiScaleMelLoss()(y, y.clone()).item() == 0.0


@pytest.mark.parametrize("normalized, alphas", [(False, True), (True, False)])
def test_mel_loss_matches_numpy_reference(normalized, alphas):
    y, y_hat = random_pair((2, 1, 3000))
    loss = MultiScaleMelLoss(normalized=normalized, alphas=alphas)
    reference = np_multiscale_mel(y.double().numpy(), y_hat.double().numpy(), loss.windows, loss.alphas, normalized)
    # float32 STFTs against float64: relative agreement to 1e-4.
    assert loss(y, y_hat).item() == pytest.approx(reference, rel=1e-4)
    assert reference > 0.01  # the comparison is not between two near-zero numbers


def test_multichannel_mel_loss_is_the_mean_of_per_channel_losses():
    y, y_hat = random_pair((2, 3, 2500), seed=1)
    loss = MultiScaleMelLoss()
    per_channel = [loss(y[:, c : c + 1], y_hat[:, c : c + 1]) for c in range(3)]
    torch.testing.assert_close(loss(y, y_hat), torch.stack(per_channel).mean(), rtol=1e-5, atol=0)


def test_mel_loss_has_gradients_and_rejects_bad_inputs():
    y, y_hat = random_pair((1, 1, 3000))
    y_hat.requires_grad_(True)
    MultiScaleMelLoss()(y, y_hat).backward()
    assert torch.isfinite(y_hat.grad).all() and y_hat.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same"):
        MultiScaleMelLoss()(y, y[..., :2000])
    with pytest.raises(ValueError, match="too short"):
        MultiScaleMelLoss()(y[..., :500], y_hat[..., :500].detach())
    with pytest.raises(ValueError, match=r"\[batch, channels, time\]"):
        MultiScaleMelLoss()(y[0], y[0])
    with pytest.raises(ValueError, match="range_start < range_end"):
        MultiScaleMelLoss(range_start=8, range_end=8)


# ---- MultiResolutionSTFTLoss -----------------------------------------------------------------------


def test_mrstft_matches_numpy_reference():
    y, y_hat = random_pair((2, 1, 4000), seed=2)
    value = MultiResolutionSTFTLoss()(y, y_hat).item()
    reference = np_mrstft(y.double().numpy(), y_hat.double().numpy())
    assert value == pytest.approx(reference, rel=1e-4)
    assert MultiResolutionSTFTLoss()(y, y.clone()).item() == 0.0


def test_mrstft_multichannel_equals_channels_folded_into_batch():
    y, y_hat = random_pair((2, 3, 3000), seed=3)
    loss = MultiResolutionSTFTLoss()
    folded = loss(y.reshape(6, 1, -1), y_hat.reshape(6, 1, -1))
    torch.testing.assert_close(loss(y, y_hat), folded)
    reference = np_mrstft(y.double().numpy(), y_hat.double().numpy())
    assert loss(y, y_hat).item() == pytest.approx(reference, rel=1e-4)
    with pytest.raises(ValueError, match="too short"):
        loss(y[..., :1000], y_hat[..., :1000])
