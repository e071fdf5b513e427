"""The four computations an ONNX export holds, as PyTorch modules with exactly the graphs' contracts.

For a codec with hop ``h``, ``C`` channels, latent dimension ``D``, ``n_q`` codebooks of ``bins``:

* :class:`EncoderGraph` — ``audio [B, C, T]`` (float32, already divided by the signal's level,
  see below) -> ``latents [B, D, ceil(T / h)]``, and for an RVQ codec also
  ``codes [B, n_q, ceil(T / h)]`` (int64; the first ``k`` rows are the codes of ``k`` codebooks,
  since residual quantization is sequential). Any ``T >= 1``: every convolution pads as in PyTorch.
* :class:`DecoderGraph` — ``latents [B, D, F]``, or ``codes [B, K, F]`` with ``1 <= K <= n_q`` ->
  ``audio [B, C, F * h]`` (multiply by the level; keep the first ``T`` samples).
* :class:`EncoderStepGraph` / :class:`DecoderStepGraph` — the same on one chunk with the streaming
  state in and out: ``(x_chunk, *state) -> (y_chunk..., *new_state)``
  (:meth:`CodecModel.encode_stream <audioenc.models.codec.CodecModel.encode_stream>`). Start from
  zeros (:meth:`~audioenc.models.codec.CodecModel.initial_encoder_state`); encoder chunks are
  multiples of ``h`` samples except the last, which may be any length >= 1.

Level contract (``normalize``): ``scale = sqrt(mean over C and T of x²) + 1e-8`` of the whole
signal (1.0 for a codec without ``normalize``); the encoder graphs take ``x / scale``, the decoder
graphs return audio to multiply by ``scale``. Outside the graphs because it needs the whole signal
before the first chunk, and it travels beside the codes (the container stores it).

Quantization is written here with plain tensor ops on stacked codebooks ``[n_q, bins, D]``: the
same nearest-entry rule as :class:`~audioenc.models.quantization.ResidualVectorQuantizer`
(:func:`~audioenc.models.quantization.squared_distances`, lowest index on ties) without its Python
checks on buffer values, which an exported graph cannot hold.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from audioenc.models.codec import CodecModel
from audioenc.quantization.rvq import squared_distances


class _Codebooks(nn.Module):
    """RVQ encode and decode on stacked codebooks ``[n_q, bins, D]`` (a buffer, so it is exported)."""

    def __init__(self, model: CodecModel) -> None:
        super().__init__()
        self.register_buffer("embed", torch.stack([layer.embed.detach() for layer in model.quantizer.layers]))

    def encode(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, D, F]`` -> codes ``[B, n_q, F]`` int64: ``k_i = argmin_k ‖r_i − e^{(i)}_k‖²``, ``r_{i+1} = r_i − e^{(i)}_{k_i}``."""
        batch, dimension = latents.shape[0], latents.shape[1]
        residual = latents.transpose(1, 2).reshape(-1, dimension)
        codes = []
        for codebook in self.embed:
            index = squared_distances(residual, codebook).argmin(dim=1)
            residual = residual - F.embedding(index, codebook)
            codes.append(index)
        return torch.stack(codes).reshape(len(codes), batch, -1).transpose(0, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K, F]`` (``K <= n_q``) -> latents ``[B, D, F]``: ``Σ_{i<K} e^{(i)}_{codes[:, i]}``."""
        bins, dimension = self.embed.shape[1], self.embed.shape[2]
        offsets = torch.arange(codes.shape[1], device=codes.device) * bins  # row i looks up codebook i
        entries = F.embedding(codes + offsets[None, :, None], self.embed.reshape(-1, dimension))  # [B, K, F, D]
        return entries.sum(dim=1).transpose(1, 2)


class EncoderGraph(nn.Module):
    """``audio / scale [B, C, T]`` -> ``latents [B, D, F]`` (+ ``codes [B, n_q, F]`` for RVQ)."""

    def __init__(self, model: CodecModel) -> None:
        super().__init__()
        self.model = model
        self.codebooks = None if model.quantizer is None else _Codebooks(model)

    def head(self, latents: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.codebooks is None:
            return (latents,)
        return latents, self.codebooks.encode(latents)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.head(self.model.encoder(audio))


class DecoderGraph(nn.Module):
    """``latents [B, D, F]`` or ``codes [B, K, F]`` -> ``audio [B, C, F * hop]`` (times ``scale`` afterwards)."""

    def __init__(self, model: CodecModel) -> None:
        super().__init__()
        self.model = model
        self.codebooks = None if model.quantizer is None else _Codebooks(model)

    def latents(self, encoded: torch.Tensor) -> torch.Tensor:
        return encoded if self.codebooks is None else self.codebooks.decode(encoded)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(self.latents(encoded))


class EncoderStepGraph(EncoderGraph):
    """``(audio chunk, *state) -> (latents [, codes], *new_state)``."""

    def forward(self, audio: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        latents, new_state = self.model.encode_stream(audio, state)
        return (*self.head(latents), *new_state)


class DecoderStepGraph(DecoderGraph):
    """``(latents or codes chunk, *state) -> (audio chunk, *new_state)``."""

    def forward(self, encoded: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        audio, new_state = self.model.decode_stream(self.latents(encoded), state)
        return (audio, *new_state)
