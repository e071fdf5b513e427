"""The distances codec papers report: SI-SDR, and DAC's mel and multi-resolution STFT distances.

All functions compare a reference ``y`` with an estimate ``y_hat`` of shape ``[C, T]`` (one file,
``C`` channels, same sample rate) and return a Python float; they work in float64 so that a value
is reproducible to the last printed digit.

* :func:`si_sdr` — scale-invariant SDR (Le Roux et al., 2019, "SDR – half-baked or well done?"),
  the quantity EnCodec's paper calls SI-SNR and DAC's calls SI-SDR.
* :func:`mel_distance` / :func:`stft_distance` — the two spectral distances of DAC's evaluation
  (Kumar et al., 2023), with the settings of its ``conf/base.yml`` (mel) and the defaults of its
  ``MultiScaleSTFTLoss`` (STFT). DAC evaluates at 44.1 kHz; audioenc evaluates at the codec's own
  rate (24 kHz), so absolute values are comparable between audioenc's rows, not with DAC's table.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from audioenc.core.mel import MelSpectrogram

DAC_MEL_WINDOWS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
DAC_MEL_BANDS: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
DAC_STFT_WINDOWS: tuple[int, ...] = (2048, 512)
DAC_CLAMP = 1e-5
MIN_SAMPLES = max(DAC_MEL_WINDOWS + DAC_STFT_WINDOWS) // 2 + 1
"""The shortest signal the default distances are defined on (1025 samples, 43 ms at 24 kHz): each
STFT is centred with reflect padding of half its window, which needs more samples than the pad."""


def si_sdr(y: np.ndarray | torch.Tensor, y_hat: np.ndarray | torch.Tensor) -> float:
    """Scale-invariant signal-to-distortion ratio in dB, averaged over channels; higher is better.

    Per channel, with zero-mean reference ``s`` and estimate ``ŝ``:
    ``α = <ŝ, s> / ‖s‖²``, ``SI-SDR = 10 log10(‖α s‖² / ‖ŝ - α s‖²)``. An exact copy gives ``+inf``,
    the measure's maximum (a copy scaled by a factor that is not exact in float64 gives ~300 dB);
    a silent reference channel gives NaN (left out of the mean).

    Args:
        y, y_hat: ``[C, T]`` (or ``[T]``).
    """
    y, y_hat = _as_float64_pair(y, y_hat)
    y = y - y.mean(axis=-1, keepdims=True)
    y_hat = y_hat - y_hat.mean(axis=-1, keepdims=True)
    energy = (y * y).sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = (y_hat * y).sum(-1, keepdims=True) / energy
        target = alpha * y
        noise = y_hat - target
        values = 10.0 * np.log10((target * target).sum(-1) / (noise * noise).sum(-1))
    values = values[energy[:, 0] > 0]
    return float(np.mean(values)) if len(values) else float("nan")


def _check_length(length: int, window: int) -> None:
    """Refuse a signal with no more samples than half the window (reflect padding is undefined)."""
    if length <= window // 2:
        raise ValueError(
            f"a signal of {length} samples is too short for the {window}-sample STFT of the "
            f"distances (more than {window // 2} needed; {MIN_SAMPLES} with the default windows)."
        )


def _magnitudes(x: torch.Tensor, window: int) -> torch.Tensor:
    """``|STFT|`` ``[C, window // 2 + 1, frames]``: periodic Hann of ``window`` samples, hop
    ``window // 4``, centred with reflect padding (audiotools' ``AudioSignal.stft`` as DAC calls it)."""
    _check_length(x.shape[-1], window)
    return torch.stft(
        x,
        n_fft=window,
        hop_length=window // 4,
        window=torch.hann_window(window, dtype=x.dtype),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    ).abs()


@lru_cache(maxsize=64)
def _mel_spectrogram(sample_rate: int, window: int, n_mels: int) -> MelSpectrogram:
    """One scale of the mel distance: librosa's Slaney filterbank on the magnitude of audiotools'
    centred STFT, window computed in float64 as audiotools computes it for float64 signals.

    The narrowest windows leave some bands without an FFT bin (empty rows); DAC's definition keeps
    them: they clamp to the same floor on both sides and add 0.
    """
    return MelSpectrogram(
        sample_rate=sample_rate,
        n_fft=window,
        hop_length=window // 4,
        n_mels=n_mels,
        scale="slaney",
        framing="centre",
        power=1,
        window_dtype=torch.float64,
    )


def mel_distance(
    y, y_hat, sample_rate: int, windows: Sequence[int] = DAC_MEL_WINDOWS, bands: Sequence[int] = DAC_MEL_BANDS
) -> float:
    """DAC's multi-scale mel distance; 0 for identical signals, lower is better.

    ``Σ_k mean | log10 max(M_k ŷ, 1e-5) - log10 max(M_k y, 1e-5) |`` over the 7 scales ``k``
    (window 32 … 2048 samples, 5 … 320 mel bands), ``M_k`` the Slaney mel filterbank applied to
    the STFT magnitude (``pow = 1``, no linear-magnitude term: ``mag_weight = 0``).
    """
    y, y_hat = (torch.from_numpy(a) for a in _as_float64_pair(y, y_hat))
    total = 0.0
    for window, n_mels in zip(windows, bands, strict=True):
        _check_length(y.shape[-1], window)
        mel = _mel_spectrogram(sample_rate, window, n_mels)
        mel_y, mel_y_hat = mel.mel_power(y), mel.mel_power(y_hat)
        total += float((mel_y_hat.clamp_min(DAC_CLAMP).log10() - mel_y.clamp_min(DAC_CLAMP).log10()).abs().mean())
    return total


def stft_distance(y, y_hat, windows: Sequence[int] = DAC_STFT_WINDOWS) -> float:
    """DAC's multi-resolution STFT distance; 0 for identical signals, lower is better.

    ``Σ_w [ mean | log10 max(|Ŷ_w|, 1e-5)² - log10 max(|Y_w|, 1e-5)² | + mean | |Ŷ_w| - |Y_w| | ]``
    over windows ``w`` of 2048 and 512 samples (hop ``w / 4``): a log term (``pow = 2``) and a
    linear-magnitude term, both weighted 1.
    """
    y, y_hat = (torch.from_numpy(a) for a in _as_float64_pair(y, y_hat))
    total = 0.0
    for window in windows:
        magnitude_y, magnitude_y_hat = _magnitudes(y, window), _magnitudes(y_hat, window)
        log_y = magnitude_y.clamp_min(DAC_CLAMP).pow(2).log10()
        log_y_hat = magnitude_y_hat.clamp_min(DAC_CLAMP).pow(2).log10()
        total += float((log_y_hat - log_y).abs().mean()) + float((magnitude_y_hat - magnitude_y).abs().mean())
    return total


def _as_float64_pair(y, y_hat) -> tuple[np.ndarray, np.ndarray]:
    y = (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.float64)
    y_hat = (y_hat.detach().cpu().numpy() if isinstance(y_hat, torch.Tensor) else np.asarray(y_hat)).astype(np.float64)
    if y.shape != y_hat.shape:
        raise ValueError(f"reference {y.shape} and estimate {y_hat.shape} differ in shape")
    return np.atleast_2d(y), np.atleast_2d(y_hat)
