"""Reconstruction metrics of a codec on batches: spatial fidelity of multichannel audio, whether a
segment is recognisable from its reconstruction, and validation's average of the file distances
of :mod:`audioenc.metrics.distances` (the numbers ``audioenc eval`` reports).

The per-item functions take the reference ``y`` and the estimate ``y_hat`` as ``[B, C, T]``
tensors at the same sample rate and return one number per batch item ``[B]``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from audioenc.core.mel import MelSpectrogram
from audioenc.metrics import distances
from audioenc.metrics import perceptual as perceptual_measures


def validation_mel(sample_rate: int = 24000) -> MelSpectrogram:
    """The log-mel view of a segment that validation compares and logs as images (FFT 1024, hop 256,
    64 HTK bands, log10 of power with floor 1e-5): ``[B, C, T]`` -> ``[B, C, 64, frames]``.

    Build it once and reuse it when many batches are scored.
    """
    return MelSpectrogram(sample_rate=sample_rate, n_fft=1024, hop_length=256, n_mels=64, log="log10", floor_level=1e-5)


def spatial_errors(
    y: torch.Tensor,
    y_hat: torch.Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_bands: int = 8,
    f_min: float = 100.0,
    eps: float = 1e-10,
) -> dict[str, torch.Tensor]:
    """Per-band inter-channel level-difference (ILD) and coherence (ICC) errors, all channel pairs.

    For STFT bins ``X_c(f, t)`` grouped into ``n_bands`` log-spaced bands ``b`` from ``f_min`` to
    Nyquist, with the cross-spectrum ``S_ij(b) = Σ_{f∈b,t} X_i X_j*``:

    * ``ILD_ij(b) = 10 log10(S_ii(b) / S_jj(b))`` (dB),
    * ``ICC_ij(b) = |S_ij(b)| / sqrt(S_ii(b) S_jj(b))`` (0..1),

    and the errors are the mean over pairs ``i < j`` and bands of ``|ILD(y) - ILD(ŷ)|`` (dB) and
    ``|ICC(y) - ICC(ŷ)|``. Lower is better; both are 0 for a perfect reconstruction.

    Args:
        y, y_hat: ``[B, C, T]`` with ``C >= 2``.

    Returns:
        ``{"ild_error_db": [B], "coherence_error": [B]}``.
    """
    _check_shapes(y, y_hat)
    channels = y.shape[1]
    if channels < 2:
        raise ValueError(f"spatial_errors needs at least 2 channels; got {channels}.")
    edges = band_edges(sample_rate, n_fft, n_bands, f_min)
    ild_ref, icc_ref = _ild_icc(y, n_fft, hop_length, edges, eps)
    ild_est, icc_est = _ild_icc(y_hat, n_fft, hop_length, edges, eps)
    pairs = torch.triu_indices(channels, channels, offset=1, device=y.device)
    ild_error = (ild_ref - ild_est)[:, :, pairs[0], pairs[1]].abs().mean(dim=(1, 2))
    icc_error = (icc_ref - icc_est)[:, :, pairs[0], pairs[1]].abs().mean(dim=(1, 2))
    return {"ild_error_db": ild_error, "coherence_error": icc_error}


def band_edges(sample_rate: int, n_fft: int, n_bands: int, f_min: float) -> list[tuple[int, int]]:
    """``n_bands`` log-spaced frequency bands as ``(first_bin, last_bin_exclusive)`` STFT-bin ranges."""
    n_bins = n_fft // 2 + 1
    hz_edges = torch.logspace(math.log10(f_min), math.log10(sample_rate / 2), n_bands + 1, dtype=torch.float64)
    bins = (hz_edges * n_fft / sample_rate).round().long().clamp(1, n_bins).tolist()
    edges = []
    for low, high in zip(bins[:-1], bins[1:]):
        edges.append((low, max(high, low + 1)))
    return edges


def _ild_icc(
    audio: torch.Tensor, n_fft: int, hop_length: int, edges: list[tuple[int, int]], eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """ILD (dB) and ICC, both ``[B, bands, C, C]``, of ``audio`` ``[B, C, T]``."""
    batch, channels, length = audio.shape
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(
        audio.reshape(batch * channels, length), n_fft, hop_length, window=window, return_complex=True
    ).reshape(batch, channels, n_fft // 2 + 1, -1)
    cross = []
    for low, high in edges:
        band = spec[:, :, low:high].flatten(2)  # [B, C, bins*frames]
        cross.append(torch.einsum("bif,bjf->bij", band, band.conj()))
    cross_spectrum = torch.stack(cross, dim=1)  # [B, bands, C, C]
    power = cross_spectrum.diagonal(dim1=-2, dim2=-1).real.clamp_min(eps)  # [B, bands, C]
    ild = 10 * torch.log10(power.unsqueeze(-1) / power.unsqueeze(-2))
    icc = cross_spectrum.abs() / torch.sqrt(power.unsqueeze(-1) * power.unsqueeze(-2))
    return ild, icc


def _check_shapes(y: torch.Tensor, y_hat: torch.Tensor) -> None:
    if y.dim() != 3 or y.shape != y_hat.shape:
        raise ValueError(
            f"Expected reference and estimate of the same shape [B, C, T]; got {tuple(y.shape)} "
            f"and {tuple(y_hat.shape)}."
        )


def pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between every row of ``a`` ``[N, ...]`` and of ``b`` ``[M, ...]``: ``[N, M]``."""
    flat_a, flat_b = a.reshape(a.shape[0], -1).float(), b.reshape(b.shape[0], -1).float()
    return torch.cdist(flat_a[None], flat_b[None], p=1)[0] / flat_a.shape[1]


def identification_accuracy(references: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
    """Whether each estimate is closer to its own reference than to any other one.

    Distances are mean absolute differences of the flattened features (for log-mel spectrograms,
    the mean log-mel L1 of every pair). Estimate ``i`` is
    *identified* when ``d(estimate_i, reference_i) < d(estimate_i, reference_j)`` for every
    ``j != i``; ties count as misses. Chance level is ``1 / N``.

    Args:
        references, estimates: ``[N, ...]`` features of the same shape, ``N >= 2``.

    Returns:
        ``[N]`` booleans.
    """
    if references.shape != estimates.shape or references.shape[0] < 2:
        raise ValueError(
            f"Expected references and estimates of the same shape [N, ...] with N >= 2; got "
            f"{tuple(references.shape)} and {tuple(estimates.shape)}."
        )
    distances = pairwise_distances(estimates, references)  # [estimate, reference]
    own = distances.diagonal()
    others = distances + torch.diag(torch.full_like(own, math.inf))
    return own < others.min(dim=1).values


def file_distances(references: np.ndarray, estimates: np.ndarray, sample_rate: int) -> dict[str, torch.Tensor]:
    """``audioenc eval``'s distances of each item of ``[B, C, T]`` float64 batches: ``{name: [B]}``.

    ``si_snr`` is :func:`~audioenc.metrics.distances.si_sdr`: NaN for a silent reference.
    """
    pairs = list(zip(references, estimates, strict=True))
    values = {
        "mel_distance": [distances.mel_distance(y, y_hat, sample_rate) for y, y_hat in pairs],
        "stft_distance": [distances.stft_distance(y, y_hat) for y, y_hat in pairs],
        "si_snr": [distances.si_sdr(y, y_hat) for y, y_hat in pairs],
    }
    return {name: torch.tensor(items, dtype=torch.float64) for name, items in values.items()}


@torch.no_grad()
def evaluate_codec(
    model: torch.nn.Module,
    batches,
    sample_rate: int,
    device: torch.device,
    perceptual: tuple[str, ...] = (),
    perceptual_items: int = 4,
) -> dict[str, float]:
    """Average reconstruction metrics of ``model`` (in eval mode) over ``batches`` of ``[B, C, T]``.

    Returns ``l1``, the distances ``audioenc eval`` reports per file (:mod:`audioenc.metrics.distances`,
    here per segment and averaged over segments): ``mel_distance`` (DAC's multi-scale mel distance;
    lower is better), ``stft_distance`` (DAC's multi-resolution STFT distance) and ``si_snr``
    (SI-SDR in dB, higher is better; averaged over the segments where it is defined: not those
    with a silent reference),
    ``neg_si_snr``, ``mel_identified`` (the fraction of reconstructions whose log-mel
    spectrogram, :func:`validation_mel`, is nearer their own segment's than any other segment's:
    the segment is recognisable from its reconstruction; chance is ``1 / items``), ``items`` and,
    for multichannel audio, ``ild_error_db`` and ``coherence_error`` (lower is better). The
    model's train/eval mode is restored afterwards.

    For each name in ``perceptual`` (``visqol_audio``, ``pesq_wb``, … of
    :mod:`audioenc.metrics.perceptual`) also its mean over the first ``perceptual_items`` items
    (those measures take about a second per item on a CPU).
    """
    was_training = model.training
    model.eval()
    mel = validation_mel(sample_rate).to(device)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    reference_mels, reconstruction_mels = [], []
    perceptual_sums: dict[str, float] = {}
    perceptual_counts: dict[str, int] = {}
    count = 0
    try:
        for audio in batches:
            audio = audio.to(device)
            reconstruction = model(audio).audio.float()
            reference_mel, reconstruction_mel = mel(audio.float()), mel(reconstruction)
            reference_mels.append(reference_mel.cpu())
            reconstruction_mels.append(reconstruction_mel.cpu())
            metrics = {"l1": (reconstruction - audio).abs().mean(dim=(1, 2))}
            if audio.shape[1] > 1:
                metrics.update(spatial_errors(audio, reconstruction, sample_rate))
            references_np = audio.double().cpu().numpy()
            estimates_np = reconstruction.double().cpu().numpy()
            metrics.update(file_distances(references_np, estimates_np, sample_rate))
            seconds = audio.shape[-1] / sample_rate
            for name in perceptual:
                if seconds < perceptual_measures.MIN_SECONDS[name]:
                    continue  # segments shorter than the measure accepts: no value, rather than an error
                for y, y_hat in zip(references_np, estimates_np, strict=True):
                    if perceptual_counts.get(name, 0) < perceptual_items:
                        try:
                            value = perceptual_measures.score(name, y, y_hat, sample_rate)
                        except Exception as error:  # a monitoring measure must never end a training run
                            warnings.warn(f"validation: {name} failed on a segment ({error}); left out", stacklevel=2)
                            value = math.nan
                        if math.isfinite(value):
                            perceptual_sums[name] = perceptual_sums.get(name, 0.0) + value
                            perceptual_counts[name] = perceptual_counts.get(name, 0) + 1
            for key, per_item in metrics.items():
                if key == "si_snr":
                    per_item = per_item[~per_item.isnan()]  # a silent reference has no SI-SDR
                sums[key] = sums.get(key, 0.0) + float(per_item.sum())
                counts[key] = counts.get(key, 0) + len(per_item)
            count += audio.shape[0]
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("No evaluation segments: the dataset is empty.")
    results = {key: total / counts[key] if counts[key] else math.nan for key, total in sums.items()}
    results["neg_si_snr"] = -results["si_snr"]
    if count >= 2:
        identified = identification_accuracy(torch.cat(reference_mels), torch.cat(reconstruction_mels))
        results["mel_identified"] = float(identified.float().mean())
    results["items"] = count
    for name, total in perceptual_sums.items():
        results[name] = total / perceptual_counts[name]
    return results
