"""Chunk-by-chunk inference with exact state: :class:`StreamingEncoder`, :class:`StreamingDecoder`.

Both are thin drivers: the state lives in the model's own streaming layers and passes through
:meth:`CodecModel.encode_stream <audioenc.models.codec.CodecModel.encode_stream>` /
:meth:`~audioenc.models.codec.CodecModel.decode_stream` as an explicit tuple of tensors (see
:mod:`audioenc.models.streaming`). What these classes add: chunk-length checks, the signal's fixed
level (``scale``), quantization (frame-wise, so stateless), and the one-shot pass when a signal
arrives in a single chunk (the only way a non-causal model runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn.utils import parametrize

from audioenc.errors import UserError
from audioenc.models.codec import CodecModel, as_scale
from audioenc.models.streaming import state_numel

DEFAULT_CHUNK_FRAMES = 150
"""Frames per streaming chunk by default (2 s at 75 frames/s): memory stays small (the widest
activation of the paper model is then 32 × 48,000 floats per channel group) and the per-chunk
Python overhead is negligible."""


def chunk_frames_for(chunk_seconds: float, frame_rate: float) -> int:
    """Latent frames per streaming chunk: ``chunk_seconds`` rounded up to whole frames (at least 1)."""
    if chunk_seconds <= 0:
        raise UserError(f"--chunk-seconds must be > 0, got {chunk_seconds}.")
    return max(1, math.ceil(chunk_seconds * frame_rate - 1e-9))


class StreamingEncoder:
    """Encode a signal chunk by chunk; the concatenated output equals ``model.encode(signal)``.

    Usage::

        stream = StreamingEncoder(model, scale=model.input_scale(signal))  # eval mode, no gradients
        parts = [stream.encode_chunk(c) for c in chunks[:-1]] + [stream.encode_chunk(chunks[-1], final=True)]
        latents = torch.cat(parts, dim=-1)               # [B, D, ceil(T / hop)]  (codes: [B, K, F])

    Non-final chunks are ``[B, C, L]`` with ``L`` a multiple of ``model.hop_length`` and give
    ``L / hop`` frames; the final chunk may have any length ``>= 1`` and gives
    ``ceil(L / hop)`` frames. After the final chunk, call :meth:`reset` for a new signal. See the
    package docstring for the conditions (causal model). The state (every stateful layer's tensors,
    one flat tuple) is held here, not in the model's layers: each chunk passes it to
    :meth:`CodecModel.encode_stream <audioenc.models.codec.CodecModel.encode_stream>`, which returns
    the next one, so one model can serve several streams.

    Args:
        model: the codec (continuous or RVQ).
        n_q: codebooks to use for an RVQ model (default: the quantizer's ``n_q``); must be None for
            a continuous model or with ``latents_only``.
        latents_only: return the encoder's continuous latents ``[B, D, frames]`` even for an RVQ
            model (what the HEAR API embeds).
        scale: the level every chunk is divided by, ``[B, 1, 1]`` or a number — for a model with
            ``normalize``, required and fixed for the whole signal (``model.input_scale`` of the
            whole signal reproduces ``model.encode``; a live stream picks a gain); ignored otherwise.
        latent_check: called as ``latent_check(latents, first_frame)`` on each chunk's continuous
            latents ``[B, D, f]`` before they are quantized or returned (:func:`encode_file` refuses
            NaN/Inf or absurd latents there); None (default): no check.
    """

    def __init__(
        self,
        model: CodecModel,
        n_q: int | None = None,
        latents_only: bool = False,
        scale: torch.Tensor | float | None = None,
        latent_check: Callable[[torch.Tensor, int], None] | None = None,
    ) -> None:
        name = type(self).__name__
        if (not model.quantizer.discrete or latents_only) and n_q is not None:
            raise UserError(f"{name}: n_q selects codebooks; it is meaningless when continuous latents are returned.")
        if model.normalize and scale is None:
            raise UserError(
                f"{name}: this codec normalises its input level; pass scale= (model.input_scale of the "
                "whole signal, or a fixed gain for a live stream)."
            )
        self.model = model
        self.scale = scale if model.normalize else 1.0
        self.latents_only = latents_only
        self.latent_check = latent_check
        quantized = model.quantizer.discrete and not latents_only
        self.n_q = None if not quantized else (model.quantizer.n_q if n_q is None else n_q)
        if self.n_q is not None:
            model.quantizer.bandwidth_for(self.n_q, model.frame_rate)  # validates n_q
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next chunk starts a new signal."""
        self._state = None
        self.finished = False
        self.frames_out = 0
        self.peak_chunk_samples = 0

    def state_numel(self) -> int:
        """Floats held between chunks (constant once the first chunk has passed)."""
        return state_numel(self._state)

    @torch.no_grad()
    def encode_chunk(self, audio: torch.Tensor, final: bool = False) -> torch.Tensor:
        """``[B, C, L]`` -> latents ``[B, D, frames]`` (continuous model or ``latents_only``) or codes
        ``[B, K, frames]`` int64 (RVQ)."""
        name = type(self).__name__
        if self.finished:
            raise RuntimeError(f"{name}: the final chunk was already encoded; call reset() first.")
        self.model._check_input(audio)
        length = audio.shape[-1]
        hop = self.model.hop_length
        if length < 1 or (not final and length % hop):
            raise UserError(
                f"{name}: chunk of {length} samples; non-final chunks must be a positive multiple "
                f"of the hop length {hop}, the final chunk at least 1 sample."
            )
        self.peak_chunk_samples = max(self.peak_chunk_samples, length)
        # The whole signal in one chunk: the one-shot pass itself (the only way a non-causal model runs).
        latents, codes = self._encode(audio / as_scale(self.scale, audio), one_shot=final and self.frames_out == 0)
        if self.latent_check is not None:
            self.latent_check(latents, self.frames_out)
        self.finished = final
        self.frames_out += latents.shape[-1]
        if self.n_q is None:
            return latents
        return codes if codes is not None else self.model.quantizer.encode(latents, self.n_q)

    def _encode(self, audio: torch.Tensor, one_shot: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Level-normalised ``[B, C, L]`` -> (latents ``[B, D, f]``, codes or None: quantized by
        :meth:`encode_chunk` after the latent check); carries ``self._state``. PyTorch here."""
        with parametrize.cached():  # weight norm: compute each weight once per chunk
            if one_shot:
                return self.model.encoder(audio), None
            latents, self._state = self.model.encode_stream(audio, self._state)
        return latents, None


class StreamingDecoder:
    """Decode frames chunk by chunk; the concatenated output equals ``model.decode(encoded)``.

    Each chunk ``[B, D, f]`` (latents) or ``[B, K, f]`` (codes) of any ``f >= 1`` gives
    ``[B, C, f · hop]`` samples; the caller trims the end of the last chunk to the signal's length.
    Needs a causal decoder with right-only trimming (the defaults); a non-causal decoder takes the
    whole sequence as one chunk. ``scale`` (``[B, 1, 1]`` or a number, the one the encoder used)
    restores the signal's level; required for a model with ``normalize``, ignored otherwise.
    """

    def __init__(self, model: CodecModel, scale: torch.Tensor | float | None = None) -> None:
        if model.normalize and scale is None:
            raise UserError(f"{type(self).__name__}: this codec normalises its input level; pass the encoder's scale=.")
        self.model = model
        self.scale = scale if model.normalize else 1.0
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next chunk starts a new signal."""
        self._state = None
        self.chunks = 0

    def state_numel(self) -> int:
        """Floats held between chunks."""
        return state_numel(self._state)

    @torch.no_grad()
    def decode_chunk(self, encoded: torch.Tensor, final: bool = False) -> torch.Tensor:
        """``[B, D|K, f]`` -> audio ``[B, C, f · hop_length]``."""
        if encoded.dim() != 3 or encoded.shape[-1] < 1:
            raise UserError(
                f"{type(self).__name__}: expected [batch, dim or codebooks, frames>=1], got {tuple(encoded.shape)}."
            )
        audio = self._decode(encoded, one_shot=final and self.chunks == 0)
        self.chunks += 1
        return audio * as_scale(self.scale, audio)

    def _decode(self, encoded: torch.Tensor, one_shot: bool) -> torch.Tensor:
        """Latents or codes ``[B, D|K, f]`` -> level-normalised audio ``[B, C, f · hop]``; carries
        ``self._state``. PyTorch here."""
        latents = self.model.quantizer.decode(encoded)
        if latents.shape[1] != self.model.decoder.dimension:
            raise UserError(
                f"{type(self).__name__}: latents have dimension {latents.shape[1]}, the decoder expects "
                f"{self.model.decoder.dimension}."
            )
        if not self.model.decoder.causal and not one_shot:
            raise UserError(f"{type(self).__name__}: a non-causal decoder needs all frames in one final chunk.")
        latents = latents.to(torch.float32)
        with parametrize.cached():
            if one_shot:
                return self.model.decoder(latents)  # all frames in one chunk: the one-shot pass itself
            audio, self._state = self.model.decode_stream(latents, self._state)
        return audio
