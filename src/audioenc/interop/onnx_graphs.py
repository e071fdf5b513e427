"""The four computations an ONNX export holds, as PyTorch modules with exactly the graphs' contracts.

For a codec with hop ``h``, ``C`` channels, latent dimension ``D`` and a quantizer of ``n_q`` codebooks:

* :class:`EncoderGraph` — ``audio [B, C, T]`` (float32, already divided by the signal's level,
  see below) -> ``latents [B, D, ceil(T / h)]``, and for a discrete quantizer also
  ``codes [B, n_q, ceil(T / h)]`` (int64; for RVQ the first ``k`` rows are the codes of ``k``
  codebooks, since residual quantization is sequential). Any ``T >= 1``: every convolution pads as
  in PyTorch.
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

Quantization is the quantizer's own
:meth:`~audioenc.quantization.base.Quantizer.export_encode` /
:meth:`~audioenc.quantization.base.Quantizer.export_decode`: the lookups of ``encode`` / ``decode``
without the Python checks on buffer values that an exported graph cannot hold.
"""

from __future__ import annotations

import torch
from torch import nn

from audioenc.models.codec import CodecModel


class EncoderGraph(nn.Module):
    """``audio / scale [B, C, T]`` -> ``latents [B, D, F]`` (+ ``codes [B, n_q, F]`` for a discrete quantizer)."""

    def __init__(self, model: CodecModel) -> None:
        super().__init__()
        self.model = model

    def head(self, latents: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The graph's outputs for ``latents [B, D, F]``: the latents, then the codes when there are any."""
        quantizer = self.model.quantizer
        return (latents, quantizer.export_encode(latents)) if quantizer.discrete else (latents,)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.head(self.model.encoder(audio))


class DecoderGraph(nn.Module):
    """``latents [B, D, F]`` or ``codes [B, K, F]`` -> ``audio [B, C, F * hop]`` (times ``scale`` afterwards)."""

    def __init__(self, model: CodecModel) -> None:
        super().__init__()
        self.model = model

    def latents(self, encoded: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, F]`` from what the encoder graph returned last (codes or latents)."""
        return self.model.quantizer.export_decode(encoded)

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
