"""What an evaluation compares: the codec at each bitrate, and reference systems on the same files.

A :class:`System` turns audio ``[C, T]`` (float64, at the codec's rate) into its reconstruction
``[C, T]``. The reference points that give a codec's numbers a meaning:

* ``input`` — the file itself: every measure's best value (the upper bound);
* ``opus-<k>kbps`` — Opus through libsndfile (Ogg/Opus, 16 kHz, libopus VBR aimed at k kbps per
  channel), the classical codec a neural codec at that bitrate has to beat;
* ``mulaw-8k`` — 8 kHz, 8-bit μ-law (G.711, 64 kbps): telephone quality;
* ``untrained`` — the same architecture with its initial weights: what training added.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
import torch

from audioenc.audio.io import SOXR_QUALITY
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel

REFERENCES = ("input", "opus", "mulaw", "untrained")
"""Reference systems by the names ``audioenc eval --references`` takes."""


@dataclass(frozen=True)
class System:
    """One row group of the table: a name, its bitrate in kbps (None: not a codec), a reconstructor."""

    name: str
    kbps: float | None
    reconstruct: Callable[[np.ndarray], np.ndarray]
    kind: str = "reference"
    """``codec`` (the model under test), ``reference`` (a baseline) or ``bound`` (the input)."""


def codec_systems(model, name: str = "codec", device: torch.device | str = "cpu") -> list[System]:
    """The codec at every bitrate it supports: each number of codebooks EnCodec's table uses
    (1.5/3/6/12/24 kbps at 75 Hz, 1024 bins) that the model has, else its full rate; one row for a
    continuous codec (no bitrate)."""
    model = model.eval().to(device)
    quantizer = model.quantizer
    if not quantizer.discrete:
        return [System(name, None, _codec_reconstructor(model, None, device), "codec")]
    per_codebook = quantizer.bandwidth_per_codebook(model.frame_rate)
    counts = sorted({n for n in (2, 4, 8, 16, 32) if n <= quantizer.total_codebooks} | {quantizer.total_codebooks})
    return [
        System(f"{name}@{n * per_codebook:g}kbps", n * per_codebook, _codec_reconstructor(model, n, device), "codec")
        for n in counts
    ]


def _codec_reconstructor(model, n_q: int | None, device) -> Callable[[np.ndarray], np.ndarray]:
    @torch.no_grad()
    def reconstruct(audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0).to(device)
        encoded, scale = model.encode(x)
        if n_q is not None:
            encoded = encoded[:, :n_q]
        return model.decode(encoded, scale, length=x.shape[-1])[0].double().cpu().numpy()

    return reconstruct


def identity() -> System:
    return System("input", None, lambda audio: np.array(audio, dtype=np.float64, copy=True), "bound")


def opus(kbps: float, sample_rate: int, opus_rate: int = 16000) -> System:
    """Opus at ``kbps`` per channel via libsndfile's Ogg/Opus writer, decoded and resampled back.

    libsndfile sets libopus's VBR target to ``((1 - q) · 250 000 + 6 000)`` bit/s per channel for
    ``compression_level = q`` (libsndfile ``src/ogg_opus.c``); ``q = 1`` is its 6 kbps floor.
    """
    if kbps < 6:
        raise ValueError(f"opus: libsndfile's lowest Opus target is 6 kbps, asked for {kbps}")
    level = float(np.clip(1.0 - (kbps * 1000.0 - 6000.0) / 250000.0, 0.0, 1.0))

    def reconstruct(audio: np.ndarray) -> np.ndarray:
        low = soxr.resample(np.asarray(audio, dtype=np.float64).T, sample_rate, opus_rate, quality=SOXR_QUALITY)
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(low, -1.0, 1.0), opus_rate, format="OGG", subtype="OPUS", compression_level=level)
        buffer.seek(0)
        decoded, _ = sf.read(buffer, dtype="float64", always_2d=True)
        back = soxr.resample(decoded, opus_rate, sample_rate, quality=SOXR_QUALITY).T
        return _fit_length(back, audio.shape[-1])

    return System(f"opus-{kbps:g}kbps", float(kbps), reconstruct)


def mu_law(sample_rate: int, rate: int = 8000, bits: int = 8, mu: float = 255.0) -> System:
    """G.711-style μ-law: resample to ``rate``, ``F(x) = sign(x) ln(1 + μ|x|) / ln(1 + μ)``,
    quantize to ``bits``, expand and resample back; ``rate · bits`` bit/s per channel."""
    levels = 2 ** (bits - 1)

    def reconstruct(audio: np.ndarray) -> np.ndarray:
        low = soxr.resample(np.asarray(audio, dtype=np.float64).T, sample_rate, rate, quality=SOXR_QUALITY)
        low = np.clip(low, -1.0, 1.0)
        compressed = np.sign(low) * np.log1p(mu * np.abs(low)) / np.log1p(mu)
        quantized = np.round(compressed * (levels - 1)) / (levels - 1)
        expanded = np.sign(quantized) * np.expm1(np.abs(quantized) * np.log1p(mu)) / mu
        back = soxr.resample(expanded, rate, sample_rate, quality=SOXR_QUALITY).T
        return _fit_length(back, audio.shape[-1])

    return System(f"mulaw-{rate // 1000}k", rate * bits / 1000.0, reconstruct)


def untrained(model_config, device: torch.device | str = "cpu", seed: int = 0) -> list[System]:
    """The codec's architecture with its initial weights (``torch.manual_seed(seed)``), at its full rate."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CodecModel.from_config(model_config).eval()
    if not model.quantizer.initialized:
        # An untrained RVQ has no k-means codebooks yet; initialise them on noise so it produces
        # codes at all (what the first training step would do on data).
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            model.train()
            # k-means needs several vectors per codebook entry: with only ~bins of them the first
            # codebook fits every vector exactly and leaves the later ones nothing (all zero).
            frames = 4 * model_config.bins
            model(torch.randn(4, model_config.channels, model.hop_length * frames // 4) * 0.1)
            model.eval()
    systems = codec_systems(model, "untrained", device)
    return systems[-1:]


def evaluation_systems(
    model, model_config, references: str | tuple[str, ...] = REFERENCES, device: torch.device | str = "cpu"
) -> list[System]:
    """The codec at each bitrate plus the named reference systems (``"input,opus"``, ``"none"``)."""
    if isinstance(references, str):
        references = () if references.strip() in ("", "none") else tuple(n.strip() for n in references.split(","))
    unknown = sorted(set(references) - set(REFERENCES))
    if unknown:
        raise UserError(f"--references: unknown {', '.join(unknown)}; choose from {', '.join(REFERENCES)} or none")
    result = [identity()] if "input" in references else []
    result += codec_systems(model, "codec", device)
    if "opus" in references:
        result.append(opus(6.0, model_config.sample_rate))
    if "mulaw" in references:
        result.append(mu_law(model_config.sample_rate))
    if "untrained" in references:
        result += untrained(model_config, device)
    return result


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    if audio.shape[-1] >= length:
        return np.ascontiguousarray(audio[..., :length])
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])
