"""Is a ``transformers.EncodecModel`` the same codec as an audioenc :class:`CodecModel`? Measured, not assumed.

Both run the same noise (two items of different level, a length that is not a multiple of the hop)
at every bandwidth of the HF model: the codes must be identical and the decoded audio equal to
float32 rounding. The export and the import run this on what they wrote before they keep it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from audioenc.models.codec import CodecModel

AUDIO_TOLERANCE = 1e-4
"""Largest accepted ``max |audio_hf − audio_audioenc| / max(1, max |audio|)``: float32 rounding
(the two run the same operations; measured 0 to 1e-6), far below any codec error."""


@dataclass
class Agreement:
    """Per bandwidth (kbps): codebooks used, whether the codes are identical, the largest audio difference."""

    rows: list[tuple[float, int, bool, float]] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return all(same and difference <= AUDIO_TOLERANCE for _, _, same, difference in self.rows)

    def describe(self) -> str:
        return "; ".join(
            f"{bandwidth:g} kbps = {n} codebooks: codes {'identical' if same else 'DIFFER'}, "
            f"audio max diff {difference:.1e}"
            for bandwidth, n, same, difference in self.rows
        )


def probe_signal(model: CodecModel, seed: int = 0) -> torch.Tensor:
    """``[2, C, T]`` noise: item 0 at RMS 0.1, item 1 at RMS 0.001; ``T = 16 · hop + hop // 3 + 1``
    samples, so the last of the 17 frames is partial (16 frames: every layer, the LSTM included, sees
    more than its padding; equality does not need more)."""
    hop = model.hop_length
    frames = 16
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(2, model.channels, hop * frames + hop // 3 + 1, generator=generator)
    audio[1] *= 0.01
    return audio


@torch.no_grad()
def compare(model: CodecModel, hf_model: Any, audio: torch.Tensor | None = None) -> Agreement:
    """Encode and decode ``audio`` ``[B, C, T]`` (default :func:`probe_signal`) with both models at every
    ``hf_model.config.target_bandwidths``; HF's chunked encoding is switched off for the comparison."""
    audio = probe_signal(model) if audio is None else audio
    length = audio.shape[-1]
    model.eval()
    hf_model.eval()
    chunk = hf_model.config.chunk_length_s
    saved_n_q = model.quantizer.n_q
    agreement = Agreement()
    try:
        hf_model.config.chunk_length_s = None
        for bandwidth in hf_model.config.target_bandwidths:
            n_q = hf_model.quantizer.get_num_quantizers_for_bandwidth(bandwidth)
            encoded = hf_model.encode(audio, bandwidth=bandwidth, return_dict=True)
            hf_codes = encoded.audio_codes[0]  # [1 chunk, B, n_q, F] -> [B, n_q, F]
            hf_audio = hf_model.decode(encoded.audio_codes, encoded.audio_scales, return_dict=True).audio_values
            model.quantizer.n_q = n_q
            codes, scale = model.encode(audio)
            ours = model.decode(codes, scale, length=length)
            same = codes.shape == hf_codes.shape and bool(torch.equal(codes, hf_codes))
            difference = float((hf_audio[..., :length] - ours).abs().max()) / max(1.0, float(ours.abs().max()))
            agreement.rows.append((float(bandwidth), n_q, same, difference))
    finally:
        hf_model.config.chunk_length_s = chunk
        model.quantizer.n_q = saved_n_q
    return agreement
