"""Codec files in and out: load a trained codec, stream audio to latents or codes and back.

Three pieces, each usable on its own:

* :func:`load_codec` — a :class:`~audioenc.models.codec.CodecModel` and its
  :class:`~audioenc.config.ModelConfig` from an exported ``model_best.safetensors`` (+ ``.json``),
  a training checkpoint ``checkpoint_*.pt`` (loaded with ``weights_only=True``) or a run folder.
* :class:`StreamingEncoder` / :class:`StreamingDecoder` — chunk-by-chunk inference with the exact
  state a one-shot pass would have (see "Streaming" below).
* :func:`encode_file` / :func:`decode_file` — audio file -> ``.safetensors`` or ``.npz`` container
  -> audio file, reading, resampling, computing and writing block by block.

Streaming
---------
Choice: **true streaming state** (not overlapping chunks). A causal SEANet is a stack of causal
convolutions, pointwise activations, residual sums, causal transposed convolutions and an LSTM.
Each stateful layer keeps exactly what the next chunk needs from the past:

* :class:`~audioenc.models.conv.StreamableConv1d` (effective kernel ``k``, stride ``s``): the last
  ``p = k - s`` input samples (initially the layer's own left padding: zeros for
  ``pad_mode='constant'``). A chunk of ``L`` samples (``L`` a multiple of ``s``) is convolved as
  ``[past p | L new]`` without padding and gives exactly ``L / s`` outputs — the same outputs a
  one-shot pass computes at those positions, because the one-shot pass sees the same ``k`` inputs
  in every window.
* :class:`~audioenc.models.conv.StreamableConvTranspose1d` (kernel ``k``, stride ``s``, causal,
  trimmed on the right): the ``k - s`` overlap-add tail of the previous chunk, added to the start of
  the next chunk's raw output (the bias is added once, after the overlap-add).
* :class:`~audioenc.models.conv.StreamableLSTM`: the hidden and cell states ``(h, c)`` of every
  layer — the recurrence continues exactly where it stopped, so the LSTM's unbounded receptive field
  costs nothing.

The last chunk of a signal (any length ``>= 1``) gets the same right padding at every layer as the
one-shot pass (``ceil(L / s) · s - L`` samples filled per ``pad_mode``), so the last frame matches
too. Hence streaming = one-shot up to floating-point rounding (the convolution and LSTM kernels
may sum in a different order for different lengths). Measured at the paper configuration (random
weights, 10 s of mono audio): latents identical (max difference 0.0) with 75- and 150-frame chunks,
at most 4e-7 with 1- to 7-frame chunks (latents up to 0.11); decoded audio within 7e-8.
``tests/test_codec_io.py`` asserts ``atol=1e-6`` on a small model for chunks of 1 to 64 frames.

Conditions, checked with errors (never a silent approximation): the model must be causal (a
non-causal model needs right context, so it is encoded in a single chunk: ``encode_file`` does
that and reports ``streaming='one-shot'``); causal transposed convolutions must trim on the right
only (``trim_right_ratio=1``, the default); non-final encoder chunks are a multiple of
``hop_length`` samples; with ``pad_mode`` 'reflect' or 'replicate' the first chunk must be longer
than each layer's left padding (with 'constant', the default, any chunk length works).

Memory: the streaming state has a fixed size (sum of ``p`` per convolution, ``k - s`` per
transposed convolution, ``2 · layers · D`` per LSTM, times batch and width), independent of the
signal's length; :func:`encode_file` never holds more than one chunk plus one read block of audio
(a normalising codec makes it read and resample the file twice: once for the level, once to encode);
the output container is written frame block by frame block (a memory map for ``.safetensors``, a
sequential Fortran-order ``.npy`` entry for ``.npz``), and :func:`decode_file` reads it back the
same way and writes the audio block by block.

Container
---------
One tensor, ``latents`` ``[1, D, F]`` float32 (continuous model) or ``codes`` ``[1, K, F]`` int16
(RVQ, ``K`` codebooks used), plus string metadata (:class:`EncodedHeader`): format version, the
model sample rate and the signal's length at that rate, the source file's rate, length and
channels, hop and frame rate, the signal's level ``scale`` (what a codec with ``model.normalize``
divided by: the RMS of the whole file at the model rate, found in a first streaming pass; 1.0
otherwise), and the model config (JSON) with its SHA-256 and the SHA-256 of the model weights, so
decoding with another model is an error instead of noise. ``.safetensors``
keeps it in ``__metadata__``; ``.npz`` in a ``metadata`` entry (a JSON string; no pickle).

Decoding never trusts a container: every header field is parsed strictly and checked for range and
consistency (``num_frames = ceil(num_samples / hop)``, ``source_frames`` resampling to
``num_samples``, rates > 0, a level within [LEVEL_FLOOR, :data:`LEVEL_LIMIT`]), the tensor's rank,
dtype, byte count and rows against the model, and every value (codes inside the codebooks, latents
finite and within :data:`LATENT_LIMIT`) before any audio is computed; the decoded audio must be
finite too. Every refusal is a :class:`~audioenc.errors.UserError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch
from safetensors import SafetensorError as _SafetensorError
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from audioenc.audio.io import SOXR_QUALITY, AudioReadError, read_info
from audioenc.config import Config, ModelConfig, saved_section
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel, as_scale
from audioenc.models.conv import (
    StreamableConv1d,
    StreamableConvTranspose1d,
    StreamableLSTM,
    pad1d,
)
from audioenc.models.seanet import ResidualUnit
from audioenc.training.distributed import resolve_device

FORMAT_VERSION = "audioenc-encoded/1"
"""Value of the ``format`` metadata key of every container this module writes."""

CONTAINER_SUFFIXES = (".safetensors", ".npz")

DEFAULT_CHUNK_FRAMES = 150
"""Frames per streaming chunk by default (2 s at 75 frames/s): memory stays small (the widest
activation of the paper model is then 32 × 48,000 floats per channel group) and the per-chunk
Python overhead is negligible."""


# =================================================================================================
# Loading a codec
# =================================================================================================


def chunk_frames_for(chunk_seconds: float, frame_rate: float) -> int:
    """Latent frames per streaming chunk: ``chunk_seconds`` rounded up to whole frames (at least 1)."""
    if chunk_seconds <= 0:
        raise UserError(f"--chunk-seconds must be > 0, got {chunk_seconds}.")
    return max(1, math.ceil(chunk_seconds * frame_rate - 1e-9))


def load_codec(path: str | os.PathLike) -> tuple[CodecModel, ModelConfig]:
    """Load a trained codec in eval mode on the CPU, with its model configuration.

    Accepted inputs:

    * ``X.safetensors`` with ``X.json`` beside it (what ``audioenc train`` exports as
      ``model_best``): no pickle is read at all;
    * a training checkpoint ``checkpoint_*.pt``: its ``"config"`` and ``"model"`` entries, loaded
      with ``torch.load(weights_only=True)`` (the raw weights, not a weight EMA);
    * a run folder: ``model_best.safetensors`` if present, else ``checkpoint_best.pt``, else
      ``checkpoint_last.pt``.

    Returns:
        ``(model, model_config)``; ``model.training`` is False.

    Raises:
        FileNotFoundError: nothing loadable at ``path``.
        UserError: unknown file type; a truncated, corrupt or foreign weights file, checkpoint or
            ``.json``; a checkpoint without ``config``/``model``; weights that do not fit the stored
            configuration; NaN/Inf in any weight (such a model turns every file into NaN).
    """
    from audioenc.training.checkpoint import load_exported_model, load_training_state

    path = Path(path)
    if path.is_dir():
        for name in ("model_best.safetensors", "checkpoint_best.pt", "checkpoint_last.pt"):
            if (path / name).is_file():
                return load_codec(path / name)
        raise FileNotFoundError(
            f"{path} is a folder without model_best.safetensors, checkpoint_best.pt or "
            "checkpoint_last.pt; point --model at a run folder of `audioenc train` or one of those files."
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"No codec at {path}: expected a .safetensors export, a checkpoint_*.pt or a run folder."
        )
    if path.suffix == ".safetensors":
        try:
            model, config = load_exported_model(path)  # damaged files and configs: UserError naming them
        except RuntimeError as error:  # load_state_dict: missing/unexpected keys or shape mismatch
            raise UserError(
                f"{path}: the weights do not fit the configuration in {path.with_suffix('.json').name}: "
                f"{_one_line(error)}"
            ) from error
        _check_finite_weights(model, path)
        return model.eval(), config
    if path.suffix == ".pt":
        try:
            state = load_training_state(path)
        except RuntimeError as error:  # truncated, corrupt or foreign: the message names the file and what to do
            raise UserError(_one_line(error)) from error
        missing = [key for key in ("config", "model") if not isinstance(state, dict) or key not in state]
        if missing:
            raise UserError(
                f"{path} is not an audioenc training checkpoint: it has no {' / '.join(missing)} entry. "
                "Use a checkpoint_*.pt written by `audioenc train` or an exported model_best.safetensors."
            )
        if not isinstance(state["config"], dict) or not isinstance(state["config"].get("model"), dict):
            raise UserError(
                f"{path}: its 'config' entry has no 'model' section, so the codec cannot be rebuilt; the "
                "checkpoint is damaged: use the run's other checkpoint or its model_best.safetensors."
            )
        try:
            config = Config.from_dict({"model": state["config"]["model"]}).model
            model = CodecModel.from_config(config)
        except (TypeError, ValueError, RuntimeError) as error:
            raise UserError(f"{path}: its saved model config is unusable: {_one_line(error)}") from error
        if not isinstance(state["model"], dict):
            raise UserError(f"{path}: its 'model' entry is not a table of weights; the checkpoint is damaged.")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise UserError(
                f"{path}: the model weights do not fit its own saved config: {_one_line(error)}"
            ) from error
        _check_finite_weights(model, path)
        return model.eval(), config
    raise UserError(
        f"{path}: unknown codec file type {path.suffix!r}; use a .safetensors export (with its .json), "
        "a checkpoint_*.pt or a run folder."
    )


def _one_line(error: BaseException, limit: int = 400) -> str:
    """An exception's message on one line (the CLI prints one line), cut at ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_finite_weights(model: nn.Module, path: Path) -> None:
    """Refuse a model with NaN/Inf in any floating-point weight or buffer (a diverged or corrupted
    run): it would encode or decode every file into NaN. Names the first bad tensor (state-dict order)."""
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise UserError(
                f"{path}: weight {key!r} holds {bad} NaN/Inf value(s) of {tensor.numel()}; the model is damaged "
                "(a diverged or corrupted training run). Use another checkpoint of the run "
                "(checkpoint_best.pt / checkpoint_last.pt) or train again."
            )


def model_config_hash(config: ModelConfig) -> str:
    """SHA-256 (hex) of the model configuration as canonical JSON (sorted keys, tuples as lists)."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_weights_hash(model: nn.Module) -> str:
    """SHA-256 (hex) over the state dict: every key, dtype, shape and the raw bytes, in key order."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


# =================================================================================================
# Streaming state
# =================================================================================================


def _is_pointwise(module: nn.Module) -> bool:
    """Modules that act sample by sample (activations, identity): no state, any chunking works."""
    return isinstance(module, nn.Identity) or type(module).__module__ == "torch.nn.modules.activation"


class _StreamingRun:
    """The per-layer state of one streamed signal, and the chunk step that uses and updates it."""

    def __init__(self) -> None:
        self.states: dict[int, Any] = {}
        self.modules: dict[int, nn.Module] = {}  # keeps ids valid and names layers in errors

    def state_numel(self) -> int:
        """Number of floats held in the state (tensors and LSTM (h, c) pairs)."""
        total = 0
        for state in self.states.values():
            tensors = state if isinstance(state, tuple) else (state,)
            total += sum(t.numel() for t in tensors)
        return total

    def step(self, module: nn.Module, x: torch.Tensor, final: bool) -> torch.Tensor:
        """Run ``module`` on the next chunk ``x`` ([B, C, L]) of the signal."""
        if isinstance(module, StreamableConv1d):
            return self._conv(module, x, final)
        if isinstance(module, StreamableConvTranspose1d):
            return self._conv_transpose(module, x, final)
        if isinstance(module, StreamableLSTM):
            return self._lstm(module, x)
        if isinstance(module, ResidualUnit):
            return self.step(module.shortcut, x, final) + self.step(module.block, x, final)
        if isinstance(module, nn.Sequential):
            for layer in module:
                x = self.step(layer, x, final)
            return x
        if _is_pointwise(module):
            return module(x)
        raise TypeError(
            f"Streaming: no streaming rule for layer {type(module).__name__}; only streamable convs, "
            "transposed convs, LSTMs, residual units, Sequential and pointwise activations are supported."
        )

    def _conv(self, conv: StreamableConv1d, x: torch.Tensor, final: bool) -> torch.Tensor:
        key = id(conv)
        first = key not in self.states
        stride = conv.conv.stride[0]
        length = x.shape[-1]
        left, extra = conv.paddings(length)
        if first and final:
            return conv(x)  # the whole signal in one chunk: exactly the one-shot computation
        if not conv.causal:
            raise UserError(
                "Streaming: the model is not causal (a convolution pads on the right), so it needs the "
                "whole signal at once; encode it in a single final chunk."
            )
        if not final and length % stride:
            raise UserError(
                f"Streaming: a non-final chunk of {length} samples reached a convolution of stride {stride}; "
                "non-final chunks must be a multiple of the model's hop length."
            )
        if first:
            if conv.pad_mode != "constant" and length <= left:
                raise UserError(
                    f"Streaming: the first chunk is only {length} samples long at a layer with {left} samples "
                    f"of {conv.pad_mode!r} left padding; use chunks of more frames (or pad_mode='constant')."
                )
            context = pad1d(x, (left, 0), mode=conv.pad_mode)
        else:
            context = torch.cat([self.states[key], x], dim=-1)
        if final:
            # Same right padding as the one-shot pass: every earlier chunk was a multiple of the
            # stride, so ``extra`` for this chunk equals the one for the whole signal. Padding the
            # context (not x) lets 'reflect'/'replicate' see the true last samples.
            context = pad1d(context, (0, extra), mode=conv.pad_mode)
        else:
            self.states[key] = context[..., context.shape[-1] - left :]
            self.modules[key] = conv
        return conv.conv(context)

    def _conv_transpose(self, layer: StreamableConvTranspose1d, x: torch.Tensor, final: bool) -> torch.Tensor:
        key = id(layer)
        if final and key not in self.states:
            return layer(x)  # the whole sequence in one chunk: exactly the one-shot computation
        left, _ = layer.unpaddings()
        if not layer.causal or left != 0:
            raise UserError(
                "Streaming: a transposed convolution trims its output on the left (non-causal, or "
                "trim_right_ratio < 1), so its output waits for future frames; decode in a single chunk."
            )
        convtr = layer.convtr
        stride = convtr.stride[0]
        # Overlap-add without the bias: the tail of this chunk is added to the next chunk's start,
        # and a bias in both would be counted twice.
        raw = F.conv_transpose1d(x, convtr.weight, None, stride, 0, 0, convtr.groups, convtr.dilation[0])
        if key in self.states:
            tail = self.states[key]
            raw[..., : tail.shape[-1]] += tail
        emitted = x.shape[-1] * stride
        self.states[key] = raw[..., emitted:]  # k - s samples = the one-shot's right trim
        self.modules[key] = layer
        out = raw[..., :emitted]
        if convtr.bias is not None:
            out = out + convtr.bias[:, None]
        return out

    def _lstm(self, layer: StreamableLSTM, x: torch.Tensor) -> torch.Tensor:
        key = id(layer)
        sequence = x.transpose(1, 2)
        y, hidden = layer.lstm(sequence, self.states.get(key))
        self.states[key] = hidden
        self.modules[key] = layer
        if layer.skip:
            y = y + sequence
        return y.transpose(1, 2)


class StreamingEncoder:
    """Encode a signal chunk by chunk; the concatenated output equals ``model.encode(signal)``.

    Usage::

        stream = StreamingEncoder(model, scale=model.input_scale(signal))  # eval mode, no gradients
        parts = [stream.encode_chunk(c) for c in chunks[:-1]] + [stream.encode_chunk(chunks[-1], final=True)]
        latents = torch.cat(parts, dim=-1)               # [B, D, ceil(T / hop)]  (codes: [B, K, F])

    Non-final chunks are ``[B, C, L]`` with ``L`` a multiple of ``model.hop_length`` and give
    ``L / hop`` frames; the final chunk may have any length ``>= 1`` and gives
    ``ceil(L / hop)`` frames. After the final chunk, call :meth:`reset` for a new signal. See the
    module docstring for the state each layer carries and the conditions (causal model).

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

    def __init__(self, model: CodecModel, n_q: int | None = None, latents_only: bool = False,
                 scale: torch.Tensor | float | None = None,
                 latent_check: Callable[[torch.Tensor, int], None] | None = None) -> None:
        if (model.quantizer is None or latents_only) and n_q is not None:
            raise UserError(
                "StreamingEncoder: n_q selects codebooks; it is meaningless when continuous latents are returned."
            )
        if model.normalize and scale is None:
            raise UserError(
                "StreamingEncoder: this codec normalises its input level; pass scale= (model.input_scale of the "
                "whole signal, or a fixed gain for a live stream)."
            )
        self.model = model
        self.scale = scale if model.normalize else 1.0
        self.latents_only = latents_only
        self.latent_check = latent_check
        quantized = model.quantizer is not None and not latents_only
        self.n_q = None if not quantized else (model.quantizer.n_q if n_q is None else n_q)
        if self.n_q is not None:
            model.quantizer.bandwidth_for(self.n_q, model.frame_rate)  # validates n_q
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next chunk starts a new signal."""
        self._run = _StreamingRun()
        self.finished = False
        self.frames_out = 0
        self.peak_chunk_samples = 0

    def state_numel(self) -> int:
        """Floats held between chunks (constant once the first chunk has passed)."""
        return self._run.state_numel()

    @torch.no_grad()
    def encode_chunk(self, audio: torch.Tensor, final: bool = False) -> torch.Tensor:
        """``[B, C, L]`` -> latents ``[B, D, frames]`` (continuous model or ``latents_only``) or codes
        ``[B, K, frames]`` int64 (RVQ)."""
        if self.finished:
            raise RuntimeError("StreamingEncoder: the final chunk was already encoded; call reset() first.")
        self.model._check_input(audio)
        length = audio.shape[-1]
        hop = self.model.hop_length
        if length < 1 or (not final and length % hop):
            raise UserError(
                f"StreamingEncoder: chunk of {length} samples; non-final chunks must be a positive multiple "
                f"of the hop length {hop}, the final chunk at least 1 sample."
            )
        self.peak_chunk_samples = max(self.peak_chunk_samples, length)
        with parametrize.cached():  # weight norm: compute each weight once per chunk
            latents = self._run.step(self.model.encoder.model, audio / as_scale(self.scale, audio), final)
        if self.latent_check is not None:
            self.latent_check(latents, self.frames_out)
        self.finished = final
        self.frames_out += latents.shape[-1]
        if self.n_q is None:
            return latents
        return self.model.quantizer.encode(latents, self.n_q)


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
            raise UserError("StreamingDecoder: this codec normalises its input level; pass the encoder's scale=.")
        self.model = model
        self.scale = scale if model.normalize else 1.0
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next chunk starts a new signal."""
        self._run = _StreamingRun()
        self.chunks = 0

    def state_numel(self) -> int:
        """Floats held between chunks."""
        return self._run.state_numel()

    @torch.no_grad()
    def decode_chunk(self, encoded: torch.Tensor, final: bool = False) -> torch.Tensor:
        """``[B, D|K, f]`` -> audio ``[B, C, f · hop_length]``."""
        if encoded.dim() != 3 or encoded.shape[-1] < 1:
            raise UserError(
                f"StreamingDecoder: expected [batch, dim or codebooks, frames>=1], got {tuple(encoded.shape)}."
            )
        if self.model.quantizer is None:
            latents = encoded
        else:
            latents = self.model.quantizer.decode(encoded.long())
        if latents.shape[1] != self.model.decoder.dimension:
            raise UserError(
                f"StreamingDecoder: latents have dimension {latents.shape[1]}, the decoder expects "
                f"{self.model.decoder.dimension}."
            )
        if not self.model.decoder.causal and (self.chunks > 0 or not final):
            raise UserError("StreamingDecoder: a non-causal decoder needs all frames in one final chunk.")
        with parametrize.cached():
            audio = self._run.step(self.model.decoder.model, latents.to(torch.float32), final)
        self.chunks += 1
        return audio * as_scale(self.scale, audio)


# =================================================================================================
# Container
# =================================================================================================


@dataclass
class EncodedHeader:
    """Metadata of an encoded file (all stored as strings).

    Attributes:
        kind: 'latents' (continuous, float32 ``[1, D, F]``) or 'codes' (RVQ, int16 ``[1, K, F]``).
        sample_rate: model sample rate in Hz (the rate of the encoded signal).
        num_samples: length of the encoded signal at ``sample_rate`` (decoding trims to it).
        num_frames: ``F = ceil(num_samples / hop_length)``.
        hop_length: samples per frame.
        frame_rate: frames per second.
        channels: audio channels.
        source_sample_rate, source_frames: rate (Hz) and length (frames) of the input file.
        source_name: the input file's name (no folders).
        n_q: codebooks used (codes only, else 0).
        bandwidth_kbps: bitrate of the codes (0 for latents).
        streaming: 'causal-state' (chunked, exact state) or 'one-shot' (non-causal model).
        chunk_frames: frames per chunk used when encoding.
        model_config: the model configuration as JSON.
        model_config_sha256, model_weights_sha256: see :func:`model_config_hash`, :func:`model_weights_hash`.
        scale: the signal's level (RMS over channels and time + floor) that a codec with
            ``normalize`` divided by; the decoder multiplies by it. 1.0 otherwise, and in files
            written before it existed.
    """

    kind: str
    sample_rate: int
    num_samples: int
    num_frames: int
    hop_length: int
    frame_rate: float
    channels: int
    source_sample_rate: int
    source_frames: int
    source_name: str
    n_q: int
    bandwidth_kbps: float
    streaming: str
    chunk_frames: int
    model_config: str
    model_config_sha256: str
    model_weights_sha256: str
    scale: float = 1.0
    format: str = FORMAT_VERSION

    @property
    def tensor_name(self) -> str:
        return self.kind

    def to_strings(self) -> dict[str, str]:
        return {key: str(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_strings(cls, values: dict[str, str], where: str) -> EncodedHeader:
        """Parse and check the metadata of the file ``where``: every field present (but ``scale``
        in files from before it existed), of its type (integers strictly, floats finite), in its
        range, and consistent with the others. Never trusts the file: anything else is a
        :class:`UserError` naming the file and the field."""
        if not isinstance(values, dict):
            raise UserError(f"{where}: the metadata is {type(values).__name__}, not a key/value table; the file is "
                            f"damaged. {_REENCODE}")
        if values.get("format") != FORMAT_VERSION:
            raise UserError(
                f"{where}: not an audioenc encoded file (format {_show(values.get('format'))}, expected "
                f"{FORMAT_VERSION!r}); encode the audio with `audioenc encode`."
            )
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name not in values:
                if field.default is not dataclasses.MISSING:
                    continue  # a key added later: files written before it mean the default
                raise UserError(f"{where}: metadata key {field.name!r} is missing; the file is damaged. {_REENCODE}")
            kwargs[field.name] = _parse_field(where, field.name, str(field.type), values[field.name])
        header = cls(**kwargs)
        if header.kind not in ("latents", "codes"):
            raise UserError(f"{where}: kind {header.kind!r} is neither 'latents' nor 'codes'. {_REENCODE}")
        try:
            saved_config = json.loads(header.model_config)
        except ValueError:
            saved_config = None
        if not isinstance(saved_config, dict):
            raise _field_error(where, "model_config", f"is {_show(header.model_config)}, not a JSON object")
        if "scale" not in values and saved_config.get("normalize", False):
            raise UserError(f"{where}: metadata key 'scale' is missing for a normalising codec; the file is damaged. "
                            + _REENCODE)
        header._check(where)
        return header

    def _check(self, where: str) -> None:
        """Ranges and consistency of the fields, with the file and the field named."""
        for name in ("sample_rate", "source_sample_rate", "hop_length", "channels", "num_samples", "num_frames",
                     "source_frames", "chunk_frames"):
            value = getattr(self, name)
            if value < 1:
                raise _field_error(where, name, f"is {value}; it must be a positive integer")
        for name in ("sample_rate", "source_sample_rate"):
            if getattr(self, name) > _MAX_SAMPLE_RATE:  # libsndfile stores rates as a C int
                raise _field_error(where, name, f"is {getattr(self, name)} Hz, beyond any audio file's rate "
                                                f"({_MAX_SAMPLE_RATE})")
        hop, frames = self.hop_length, self.num_frames
        if -(-self.num_samples // hop) != frames:
            raise _field_error(
                where, "num_samples",
                f"is {self.num_samples}, but num_frames {frames} × hop_length {hop} means "
                f"{(frames - 1) * hop + 1}..{frames * hop} samples",
            )
        expected = resampled_length(self.source_frames, self.source_sample_rate, self.sample_rate)
        if expected != self.num_samples:
            raise _field_error(
                where, "source_frames",
                f"is {self.source_frames} at source_sample_rate {self.source_sample_rate} Hz, which is "
                f"{expected} samples at sample_rate {self.sample_rate} Hz, not num_samples {self.num_samples}",
            )
        if not math.isclose(self.frame_rate, self.sample_rate / hop, rel_tol=1e-9):
            raise _field_error(where, "frame_rate", f"is {self.frame_rate!r}, not sample_rate / hop_length = "
                                                    f"{self.sample_rate / hop!r}")
        # The encoder stores RMS + LEVEL_FLOOR (or 1.0), never below the floor nor above LEVEL_LIMIT
        # (it refuses louder input). NaN/Inf fail at parsing.
        if not CodecModel.LEVEL_FLOOR <= self.scale <= LEVEL_LIMIT:
            raise _field_error(where, "scale", f"is {self.scale!r}; a signal level is a positive number from "
                                               f"{CodecModel.LEVEL_FLOOR:g} to {LEVEL_LIMIT:g}")
        if self.bandwidth_kbps < 0:
            raise _field_error(where, "bandwidth_kbps", f"is {self.bandwidth_kbps!r}; it must be >= 0")
        if (self.kind == "codes") != (self.n_q >= 1) or self.n_q < 0:
            raise _field_error(where, "n_q", f"is {self.n_q} for {self.kind}; codes need n_q >= 1 codebooks, "
                                             "latents n_q = 0")
        if self.streaming not in ("causal-state", "one-shot"):
            raise _field_error(where, "streaming", f"is {_show(self.streaming)}, not 'causal-state' or 'one-shot'")


_REENCODE = "Encode the source audio again with `audioenc encode`."

_MAX_SAMPLE_RATE = 2**31 - 1


def _show(value: Any, limit: int = 40) -> str:
    """``repr`` of a value from a file, cut short (a damaged field may be megabytes of garbage)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field_error(where: str, name: str, problem: str) -> UserError:
    return UserError(
        f"{where}: header field {name!r} {problem}; the file is damaged or was not written by `audioenc encode`. "
        + _REENCODE
    )


def _parse_field(where: str, name: str, kind: str, raw: Any) -> Any:
    """One metadata value as ``kind`` ('int', 'float' or 'str'); strings are what this module writes,
    JSON numbers (``.npz`` written by other tools) are accepted too. Integers must be written as
    integers ('1e13', '2.0', 'abc' are refused) and fit in 64 bits; floats must be finite."""
    if kind not in ("int", "float"):
        if not isinstance(raw, str):
            raise _field_error(where, name, f"is {_show(raw)}, not a string")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise _field_error(where, name, f"is {_show(raw)}, not a number")
    text = str(raw).strip()
    if kind == "int":
        if isinstance(raw, float) or re.fullmatch(r"[+-]?[0-9]{1,19}", text) is None or abs(int(text)) >= 2**63:
            raise _field_error(where, name, f"is {_show(raw)}, not an integer")
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise _field_error(where, name, f"is {_show(raw)}, not a number") from None
    if not math.isfinite(value):
        raise _field_error(where, name, f"is {_show(raw)}, not a finite number")
    return value


def _atomic_target(path: Path) -> Path:
    """A temporary path in ``path``'s folder with the same suffix (formats follow the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


def _check_container_suffix(path: Path) -> None:
    if path.suffix not in CONTAINER_SUFFIXES:
        raise UserError(f"{path}: the encoded file must end in {' or '.join(CONTAINER_SUFFIXES)}.")


def check_encoded_output(path: str | os.PathLike) -> None:
    """An encoded file ``encode`` may write: a container suffix, and not an existing folder."""
    path = Path(path)
    _check_container_suffix(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; OUT must be a file name ending in {' or '.join(CONTAINER_SUFFIXES)}.")


def check_audio_output(path: str | os.PathLike, subtype: str = "FLOAT") -> str:
    """Check, before anything is decoded, that ``path`` can be written as audio with ``subtype``.

    The format follows the suffix (libsndfile's formats: ``.wav``, ``.flac``, ``.ogg``, ...); the
    suffix must name one of ``soundfile.available_formats()``, the subtype must be one that format
    holds, and ``path`` must not be an existing folder. Returns the format ('WAV', ...).

    Raises:
        UserError: naming ``path`` and what works instead.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; OUT must be an audio file name such as {path / 'decoded.wav'}.")
    formats = sf.available_formats()
    fmt = path.suffix[1:].upper()
    if fmt not in formats:
        said = f"unknown audio suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise UserError(
            f"{path}: {said}; the suffix picks the audio format: "
            + ", ".join(f".{name.lower()}" for name in formats) + " (.wav or .flac are the usual ones)."
        )
    subtypes = sf.available_subtypes(fmt)
    if not isinstance(subtype, str) or subtype.upper() not in subtypes or not sf.check_format(fmt, subtype.upper()):
        choices = ", ".join(subtypes)
        raise UserError(
            f"{path}: {fmt} files cannot hold subtype {subtype!r} (--subtype); use one of {choices}"
            + (" or write a .wav for FLOAT." if "FLOAT" not in subtypes else ".")
        )
    return fmt


_SAFETENSORS_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int16): "I16", np.dtype(np.int32): "I32"}


class _ContainerWriter:
    """Writes ``[1, rows, F]`` frame block by frame block, then renames into place atomically.

    ``.safetensors``: header first (the shape is known), then the data region as a memory map;
    each block fills columns ``[start, start + f)``. ``.npz``: an uncompressed zip whose tensor
    entry is a Fortran-order ``.npy`` (for shape ``[1, rows, F]`` that stores frame after frame), so
    blocks are appended sequentially; a ``metadata`` entry holds the JSON header.
    """

    def __init__(self, path: Path, header: EncodedHeader, rows: int, dtype: np.dtype) -> None:
        _check_container_suffix(path)
        self.path = path
        self.header = header
        self.shape = (1, rows, header.num_frames)
        self.dtype = np.dtype(dtype)
        self.written = 0
        self.tmp = _atomic_target(path)
        try:
            if path.suffix == ".safetensors":
                self._open_safetensors()
            else:
                self._open_npz()
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    def _open_safetensors(self) -> None:
        nbytes = math.prod(self.shape) * self.dtype.itemsize
        header = {
            self.header.tensor_name: {
                "dtype": _SAFETENSORS_DTYPES[self.dtype], "shape": list(self.shape), "data_offsets": [0, nbytes],
            },
            "__metadata__": self.header.to_strings(),
        }
        text = json.dumps(header, separators=(",", ":")).encode("utf-8")
        text += b" " * (-len(text) % 8)  # the data region starts 8-byte aligned, as safetensors writes it
        with open(self.tmp, "wb") as handle:
            handle.write(struct.pack("<Q", len(text)))
            handle.write(text)
            handle.truncate(8 + len(text) + nbytes)
        self._map = np.memmap(self.tmp, dtype=self.dtype, mode="r+", offset=8 + len(text), shape=self.shape)
        self._zip = None

    def _open_npz(self) -> None:
        self._map = None
        self._zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        metadata = json.dumps(self.header.to_strings())
        with self._zip.open("metadata.npy", "w") as entry:
            np.lib.format.write_array(entry, np.array(metadata), allow_pickle=False)
        self._entry = self._zip.open(f"{self.header.tensor_name}.npy", "w", force_zip64=True)
        np.lib.format.write_array_header_2_0(
            self._entry,
            {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": True, "shape": self.shape},
        )

    def write(self, block: np.ndarray) -> None:
        """Append frames: ``block`` ``[rows, f]``."""
        rows, frames = block.shape
        if rows != self.shape[1] or self.written + frames > self.shape[2]:
            raise UserError(
                f"internal: block {block.shape} at frame {self.written} does not fit the declared {self.shape}."
            )
        block = block.astype(self.dtype, copy=False)
        if self._map is not None:
            self._map[0, :, self.written : self.written + frames] = block
        else:
            self._entry.write(np.ascontiguousarray(block.T).tobytes())
        self.written += frames

    def close(self) -> Path:
        """Check completeness, flush, rename over ``path``; returns ``path``."""
        try:
            if self.written != self.shape[2]:
                raise RuntimeError(f"internal: wrote {self.written} of {self.shape[2]} frames to {self.path}.")
            if self._map is not None:
                self._map.flush()
                del self._map
                self._map = None
            else:
                self._entry.close()
                self._zip.close()
            with open(self.tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Drop the partial file (the previous ``path``, if any, is untouched)."""
        self._map = None
        if self._zip is not None:
            try:
                self._entry.close()
                self._zip.close()
            except (OSError, ValueError):
                pass  # the temporary file is removed below either way
        self.tmp.unlink(missing_ok=True)


class EncodedReader:
    """Read an encoded file's header and its frames block by block.

    ``.safetensors`` blocks are slices of the file (random access); ``.npz`` blocks are read
    sequentially from the Fortran-order entry this module writes (a C-order array written by other
    tools is loaded whole). Use as a context manager.

    Opening checks what can be checked without a model: the header (:meth:`EncodedHeader.from_strings`),
    the tensor's presence, rank ``[1, rows, num_frames]``, dtype (floating-point latents, integer
    codes) and that the file holds all of its bytes. Every failure is a :class:`UserError` naming
    the file. The values themselves are checked by :func:`decode_file` (they need the model).

    Attributes:
        header: the :class:`EncodedHeader`.
        shape: ``(1, rows, F)``.
        dtype: the tensor's numpy dtype (native byte order blocks are returned by :meth:`read`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        _check_container_suffix(self.path)
        if not self.path.is_file():
            if self.path.is_dir():
                raise UserError(
                    f"{self.path} is a folder; IN must be a .safetensors or .npz written by `audioenc encode`."
                )
            raise FileNotFoundError(f"No encoded file at {self.path}.")
        self._zip = None
        self._entry = None
        self._whole: np.ndarray | None = None
        self._position = 0
        try:
            if self.path.suffix == ".safetensors":
                self._open_safetensors()
            else:
                self._open_npz()
        except BaseException:
            self.close()
            raise

    def _open_safetensors(self) -> None:
        from safetensors import safe_open

        try:
            self._handle = safe_open(str(self.path), framework="np")
            metadata = self._handle.metadata() or {}
        except Exception as error:  # safetensors raises its own SafetensorError for bad files
            raise UserError(
                f"{self.path}: not a readable safetensors file ({_one_line(error)}): it is truncated or damaged. "
                + _REENCODE
            ) from error
        self.header = EncodedHeader.from_strings(metadata, str(self.path))
        if self.header.tensor_name not in self._handle.keys():
            raise UserError(f"{self.path}: no {self.header.tensor_name!r} tensor; the file is damaged. {_REENCODE}")
        self._slice = self._handle.get_slice(self.header.tensor_name)
        self.shape = tuple(self._slice.get_shape())
        stored = self._slice.get_dtype()
        if stored not in _SAFETENSORS_READ_DTYPES:
            raise UserError(
                f"{self.path}: tensor {self.header.tensor_name!r} has dtype {stored}; "
                f"{_EXPECTED_DTYPE[self.header.kind]}. {_REENCODE}"
            )
        self.dtype = np.dtype(_SAFETENSORS_READ_DTYPES[stored])
        self._check_shape()
        self._check_dtype()

    def _open_npz(self) -> None:
        try:
            self._zip = zipfile.ZipFile(self.path, "r")
            with self._zip.open("metadata.npy") as entry:
                metadata = json.loads(str(np.lib.format.read_array(entry, allow_pickle=False)))
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, zlib.error) as error:
            raise UserError(
                f"{self.path}: not an audioenc .npz (no readable metadata entry: {_one_line(error)}); the file is "
                f"truncated, damaged or not from `audioenc encode`. {_REENCODE}"
            ) from error
        self.header = EncodedHeader.from_strings(metadata, str(self.path))
        name = f"{self.header.tensor_name}.npy"
        if name not in self._zip.namelist():
            raise UserError(f"{self.path}: no {name} entry; the file is damaged. {_REENCODE}")
        try:
            self._entry = self._zip.open(name)
            version = np.lib.format.read_magic(self._entry)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(self._entry)
            self._data_start = self._entry.tell()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as error:
            raise UserError(
                f"{self.path}: the {name} entry cannot be read ({_one_line(error)}); the file is damaged. "
                + _REENCODE
            ) from error
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._check_shape()
        self._check_dtype()
        # A cut or padded entry: compare the bytes it holds with what its shape and dtype need, before
        # any of it is read (a forged shape could otherwise make the C-order path allocate terabytes).
        needed = self._data_start + math.prod(self.shape) * self.dtype.itemsize
        held = self._zip.getinfo(name).file_size
        if held != needed:
            raise UserError(
                f"{self.path}: the {name} entry holds {held} bytes but shape {self.shape} of {self.dtype} needs "
                f"{needed}: the file is truncated or damaged. {_REENCODE}"
            )
        if not fortran_order:
            try:
                with self._zip.open(name) as entry:
                    self._whole = np.lib.format.read_array(entry, allow_pickle=False)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as error:
                raise UserError(f"{self.path}: the {name} entry cannot be read ({_one_line(error)}); the file is "
                                f"damaged. {_REENCODE}") from error

    def _check_shape(self) -> None:
        name = self.header.tensor_name
        if len(self.shape) != 3 or self.shape[0] != 1 or self.shape[2] != self.header.num_frames:
            raise UserError(
                f"{self.path}: tensor {name!r} has shape {list(self.shape)}, which does not match the header "
                f"([1, rows, {self.header.num_frames}]: one item, num_frames frames); the file is damaged. {_REENCODE}"
            )
        if self.shape[1] < 1:
            raise UserError(f"{self.path}: tensor {name!r} has no rows (shape {list(self.shape)}); the file is "
                            f"damaged. {_REENCODE}")

    def _check_dtype(self) -> None:
        kind = self.header.kind
        ok = (np.issubdtype(self.dtype, np.floating) if kind == "latents"
              else np.issubdtype(self.dtype, np.integer))
        if not ok or self.dtype.itemsize > 8:
            raise UserError(
                f"{self.path}: tensor {kind!r} has dtype {self.dtype}; {_EXPECTED_DTYPE[kind]}. {_REENCODE}"
            )

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as ``[rows, stop - start]`` in native byte order (``.npz``:
        sequential calls only, or :meth:`rewind` first)."""
        if not 0 <= start < stop <= self.shape[2]:
            raise UserError(f"{self.path}: frames [{start}, {stop}) are outside [0, {self.shape[2]}).")
        try:
            block = self._read(start, stop)
        except UserError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, _SafetensorError) as error:
            raise UserError(
                f"{self.path}: frames {start}..{stop} cannot be read ({_one_line(error)}); the file is damaged. "
                + _REENCODE
            ) from error
        return block if block.dtype.isnative else block.astype(block.dtype.newbyteorder("="))

    def _read(self, start: int, stop: int) -> np.ndarray:
        if self._zip is None:
            return np.asarray(self._slice[:, :, start:stop])[0]
        if self._whole is not None:
            return np.asarray(self._whole[0, :, start:stop])
        if start != self._position:
            raise UserError(
                f"{self.path}: .npz frames are read in order; asked for {start}, next is {self._position}."
            )
        rows = self.shape[1]
        count = (stop - start) * rows
        data = self._entry.read(count * self.dtype.itemsize)  # the last read checks the entry's CRC-32
        if len(data) != count * self.dtype.itemsize:
            raise UserError(f"{self.path}: the tensor entry ends early (truncated file). {_REENCODE}")
        self._position = stop
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, rows).T

    def rewind(self) -> None:
        """Start reading from frame 0 again (``.npz``: reopens the sequential entry)."""
        if self._zip is not None and self._whole is None:
            self._entry.close()
            self._entry = self._zip.open(f"{self.header.tensor_name}.npy")
            self._entry.read(self._data_start)
        self._position = 0

    def close(self) -> None:
        if self._entry is not None:
            self._entry.close()
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> EncodedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SAFETENSORS_READ_DTYPES = {
    "F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16, "I32": np.int32,
    "I64": np.int64, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64,
}
"""safetensors dtypes this reader accepts (others, e.g. BF16 or BOOL, numpy cannot hold or are never
latents or codes)."""

_EXPECTED_DTYPE = {
    "latents": "latents are floating-point numbers (float32), so the file is damaged or not from `audioenc encode`",
    "codes": "codes are integer codebook indices (int16), so the file is damaged or not from `audioenc encode`",
}

LATENT_LIMIT = 1e6
"""Largest |latent| accepted when encoding or decoding. Why this bound: a codec's latents are its
encoder's output for audio whose level is bounded — a normalising codec sees unit-RMS input, an
other one samples within ±1 from any fixed-point file — and measured maxima are small: 19 for the
trained `story` codec on a full-scale square wave, 0.17 for the untrained paper model on unit-RMS
noise. 1e6 leaves 4-5 orders of magnitude of headroom over anything an encoder produces for real
audio, yet stays 32 orders below float32's 3.4e38, so a decoder fed 1e6 cannot reach Inf through a
few layers of O(1) weights. Beyond it the values are corruption (a flipped exponent bit, a
scaled tensor), not a signal. Whatever passes the bound but still overflows is caught by the check
of the decoded audio."""

LEVEL_LIMIT = 1e6
"""Largest signal level (``scale``, RMS) encoded or decoded: 120 dB above digital full scale. Fixed-point
files stay within ±1; a float file this loud holds garbage, not sound. Decoding multiplies the audio
by the level, so a forged level beyond it would write absurd samples."""

SCAN_FRAMES = 4096
"""Frames per block when :func:`decode_file` checks every value of the file before decoding."""


def _check_values(where: str, kind: str, block: np.ndarray, first_frame: int, bins: int | None,
                  encoding: bool = False) -> None:
    """Refuse codes outside ``[0, bins)``, and NaN/Inf or ``|x| > LATENT_LIMIT`` latents, in ``block``
    ``[rows, f]`` (frames from ``first_frame``), naming the first bad value's row and frame."""
    if kind == "codes":
        bad = (block < 0) | (block >= bins)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise UserError(
                f"{where}: tensor 'codes' holds {int(block[row, col])} at codebook {row}, frame {first_frame + col}, "
                f"outside the model's codebook range 0..{bins - 1}; the file is damaged or was encoded by another "
                f"model. {_REENCODE}"
            )
        return
    finite = np.isfinite(block)
    bad = ~finite | (np.abs(np.where(finite, block, 0)) > LATENT_LIMIT)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        value = float(block[row, col])
        problem = (f"{value}" if not math.isfinite(value)
                   else f"{value:.3g}, beyond ±{LATENT_LIMIT:g} (no encoder output for real audio comes near)")
        if encoding:
            raise UserError(
                f"{where}: the encoder produced latent {problem} at dimension {row}, frame {first_frame + col}: the "
                "model overflows on this audio (damaged or diverged weights, or samples far beyond full scale). "
                "Nothing was written; use another checkpoint of the run, or check the audio with `audioenc scan`."
            )
        raise UserError(
            f"{where}: tensor 'latents' holds {problem} at dimension {row}, frame {first_frame + col}; the file is "
            f"damaged. {_REENCODE}"
        )


# =================================================================================================
# Files
# =================================================================================================


def resampled_length(frames: int, source_rate: int, target_rate: int) -> int:
    """Samples soxr returns for ``frames`` input frames: ``floor(frames · target / source + 1/2)``.

    Checked against ``soxr.resample`` for 8 rates and lengths 1..300 and beyond
    (``tests/test_codec_io.py`` re-checks a few); exact integer arithmetic.
    """
    return (2 * frames * target_rate + source_rate) // (2 * source_rate)


def _read_blocks(path: Path, block_frames: int, channels: int) -> Iterator[np.ndarray]:
    """Seek-read ``path`` in blocks of ``block_frames`` frames: ``[channels, n]`` float32 each."""
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{path}: cannot open as audio: {error}") from error
    with handle:
        total = handle.frames
        done = 0
        while done < total:
            want = min(block_frames, total - done)
            try:
                block = handle.read(want, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, OSError) as error:
                raise AudioReadError(f"{path}: reading frames {done}..{done + want} failed: {error}") from error
            if block.shape[0] != want:
                raise AudioReadError(
                    f"{path}: got {block.shape[0]} of {want} frames at frame {done} (the file is shorter "
                    "than its header says: truncated?)"
                )
            if not np.isfinite(block).all():
                raise AudioReadError(f"{path}: NaN or Inf samples in frames {done}..{done + want}.")
            done += want
            yield np.ascontiguousarray(block.T)


def _resampled_blocks(
    blocks: Iterator[np.ndarray], source_rate: int, target_rate: int, channels: int
) -> Iterator[np.ndarray]:
    """soxr stream resampling, block by block (bit-identical to a one-shot ``soxr.resample``)."""
    if source_rate == target_rate:
        yield from blocks
        return
    stream = soxr.ResampleStream(source_rate, target_rate, channels, dtype="float32", quality=SOXR_QUALITY)
    for block in blocks:
        out = stream.resample_chunk(np.ascontiguousarray(block.T), last=False)
        if len(out):
            yield np.ascontiguousarray(np.asarray(out).reshape(-1, channels).T)
    out = stream.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True)
    if len(out):
        yield np.ascontiguousarray(np.asarray(out).reshape(-1, channels).T)


def _exact_length(blocks: Iterator[np.ndarray], length: int, channels: int) -> Iterator[np.ndarray]:
    """Pass blocks through, cut at ``length`` samples, zero-pad at the end if the stream is short.

    The declared length (:func:`resampled_length`) is what soxr produces; a difference of more than
    one sample would mean that formula is wrong for this soxr version, which is an error.
    """
    produced = 0
    for block in blocks:
        take = min(block.shape[1], length - produced)
        if take > 0:
            yield block[:, :take]
        produced += block.shape[1]
    if abs(produced - length) > 1:
        raise RuntimeError(f"internal: the resampler produced {produced} samples, expected {length}.")
    if produced < length:
        yield np.zeros((channels, length - produced), dtype=np.float32)


def _signal_level(blocks: Iterator[np.ndarray], count: int) -> float:
    """RMS of all ``count`` samples in ``blocks`` (float64 sum) + :attr:`CodecModel.LEVEL_FLOOR`,
    as :meth:`CodecModel.input_scale` computes it for the whole signal at once."""
    total = sum(float(np.square(block, dtype=np.float64).sum()) for block in blocks)
    return math.sqrt(total / count) + CodecModel.LEVEL_FLOOR


@dataclass
class EncodeResult:
    """What :func:`encode_file` did.

    Attributes:
        path: the container written.
        header: its metadata.
        chunks: number of model calls.
        peak_buffered_samples: most audio samples (per channel, at the model rate) held at once
            while reading — at most one chunk plus one resampled read block.
        peak_chunk_samples: longest chunk given to the model.
        state_numel: floats in the streaming state after the last non-final chunk (0 if one chunk).
    """

    path: Path
    header: EncodedHeader
    chunks: int
    peak_buffered_samples: int
    peak_chunk_samples: int
    state_numel: int


def encode_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    model: CodecModel,
    config: ModelConfig,
    *,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    n_q: int | None = None,
    device: str | torch.device = "cpu",
    on_chunk: Callable[[int, int], None] | None = None,
) -> EncodeResult:
    """Encode an audio file (any rate and length) to a latents/codes container, chunk by chunk.

    The file is read in blocks (``soundfile`` seek-reads), resampled to the model's rate with a
    soxr stream, cut into chunks of ``chunk_frames · hop_length`` samples and streamed through
    :class:`StreamingEncoder` (a non-causal model gets the whole file as one chunk). Frames go
    to ``output_path`` as they come (see the module docstring for the container).

    Args:
        input_path: audio file readable by libsndfile, with ``model.channels`` channels.
        output_path: ``.safetensors`` or ``.npz``.
        model, config: from :func:`load_codec`.
        chunk_frames: frames per chunk (>= 1).
        n_q: codebooks for an RVQ model (default: all of ``config.n_q``); None for continuous.
        device: where the model runs (the model is moved there).
        on_chunk: called as ``on_chunk(frames_done, frames_total)`` after each chunk.

    Raises:
        UserError: wrong channel count, empty file, bad container suffix, OUT a folder, chunk size;
            NaN/Inf or absurd latents from the model (beyond :data:`LATENT_LIMIT`): nothing is written.
        AudioReadError: unreadable or truncated audio, NaN/Inf samples.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    check_encoded_output(output_path)
    if chunk_frames < 1:
        raise UserError(f"chunk_frames={chunk_frames}: must be >= 1.")
    try:
        info = sf.info(str(input_path))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{input_path}: cannot read as audio: {error}") from error
    truncated = read_info(input_path).truncation()  # libsndfile reads a cut file silently short
    if truncated:
        raise AudioReadError(f"{input_path}: truncated: the header declares more sample data than the file holds "
                             f"({truncated}); `audioenc scan` flags such files; re-export or re-download it")
    if info.channels != model.channels:
        raise UserError(
            f"{input_path} has {info.channels} channel(s) but the model encodes {model.channels}. "
            f"Use a {'mono (--1ch)' if info.channels == 1 else f'{info.channels}-channel'} model, or convert "
            f"the file to {model.channels} channel(s) first."
        )
    num_samples = resampled_length(info.frames, info.samplerate, model.sample_rate)
    if num_samples < 1:
        raise UserError(f"{input_path} holds no audio ({info.frames} frames); nothing to encode.")
    model = model.to(resolve_device(device) if isinstance(device, str) else device).eval()
    hop = model.hop_length
    num_frames = -(-num_samples // hop)
    causal = bool(model.encoder.causal)
    chunk_samples = chunk_frames * hop if causal else num_frames * hop
    # Read blocks of about one chunk (in input frames), so the buffer holds < 2 chunks + soxr's delay.
    block_frames = max(1, -(-min(chunk_samples, num_samples) * int(info.samplerate) // model.sample_rate))

    def model_rate_blocks() -> Iterator[np.ndarray]:
        return _exact_length(
            _resampled_blocks(_read_blocks(input_path, block_frames, info.channels), int(info.samplerate),
                              model.sample_rate, info.channels),
            num_samples, info.channels,
        )

    # A normalising codec needs the whole signal's level before its first chunk: one extra pass.
    scale = _signal_level(model_rate_blocks(), num_samples * info.channels) if model.normalize else 1.0
    if not scale <= LEVEL_LIMIT:
        raise AudioReadError(
            f"{input_path}: its level (RMS {scale:.3g}) is beyond {LEVEL_LIMIT:g}, over 120 dB above digital full "
            "scale: the samples are not audio (a float file with garbage values?); check the file with `audioenc scan`."
        )

    def check_latents(latents: torch.Tensor, first_frame: int) -> None:  # NaN weights are refused at loading;
        _check_values(str(input_path), "latents", latents[0].cpu().numpy(), first_frame, None, encoding=True)

    stream = StreamingEncoder(model, n_q, scale=scale, latent_check=check_latents)
    quantized = model.quantizer is not None
    header = EncodedHeader(
        kind="codes" if quantized else "latents",
        sample_rate=model.sample_rate, num_samples=num_samples, num_frames=num_frames, hop_length=hop,
        frame_rate=model.frame_rate, channels=model.channels, source_sample_rate=int(info.samplerate),
        source_frames=int(info.frames), source_name=input_path.name, n_q=stream.n_q or 0,
        bandwidth_kbps=model.quantizer.bandwidth_for(stream.n_q, model.frame_rate) if quantized else 0.0,
        streaming="causal-state" if causal else "one-shot", chunk_frames=chunk_samples // hop,
        model_config=json.dumps(dataclasses.asdict(config), sort_keys=True),
        model_config_sha256=model_config_hash(config), model_weights_sha256=model_weights_hash(model),
        scale=scale,
    )
    if quantized:
        rows, dtype = stream.n_q, (np.int16 if model.quantizer.bins <= 2**15 else np.int32)
    else:
        rows, dtype = model.encoder.dimension, np.float32
    writer = _ContainerWriter(output_path, header, rows, dtype)
    audio = model_rate_blocks()
    pending: list[np.ndarray] = []
    pending_samples = 0
    peak_buffered = 0
    chunks = 0
    state_numel = 0
    consumed = 0

    def run_chunk(samples: np.ndarray, final: bool) -> None:
        nonlocal chunks, state_numel
        tensor = torch.from_numpy(samples).unsqueeze(0).to(device)
        encoded = stream.encode_chunk(tensor, final=final)
        writer.write(encoded[0].cpu().numpy())
        chunks += 1
        if not final:
            state_numel = stream.state_numel()
        if on_chunk is not None:
            on_chunk(stream.frames_out, num_frames)

    try:
        for block in audio:
            pending.append(block)
            pending_samples += block.shape[1]
            peak_buffered = max(peak_buffered, pending_samples)
            # Keep strictly more than one chunk before emitting: the final chunk is only known at the end.
            while pending_samples > chunk_samples and consumed + chunk_samples < num_samples:
                buffer = np.concatenate(pending, axis=1)
                run_chunk(buffer[:, :chunk_samples], final=False)
                consumed += chunk_samples
                pending, pending_samples = [buffer[:, chunk_samples:]], buffer.shape[1] - chunk_samples
        buffer = np.concatenate(pending, axis=1)
        if buffer.shape[1] != num_samples - consumed or buffer.shape[1] < 1:
            raise RuntimeError(
                f"internal: {buffer.shape[1]} samples left for the final chunk, expected {num_samples - consumed}."
            )
        run_chunk(buffer, final=True)
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    return EncodeResult(path, header, chunks, peak_buffered, stream.peak_chunk_samples, state_numel)


@dataclass
class DecodeResult:
    """What :func:`decode_file` did: the audio file, its rate and length, and clipped samples
    (integer subtypes only: samples beyond ±1 are clipped and counted)."""

    path: Path
    sample_rate: int
    frames: int
    channels: int
    clipped_samples: int


def check_model_matches(header: EncodedHeader, model: CodecModel, config: ModelConfig, where: str,
                        allow_other_weights: bool = False) -> None:
    """Raise ``ValueError`` when ``model`` is not the model that wrote ``header``.

    A different configuration is always an error (the frames would not even fit; keys the file's
    configuration predates count with their :data:`~audioenc.config.SAVED_BEFORE` value); different
    weights with the same configuration are an error unless ``allow_other_weights``.
    """
    saved = saved_section("model", json.loads(header.model_config))
    current = dataclasses.asdict(config)
    differences = [
        f"{key}: file {saved.get(key)!r}, model {value!r}"
        for key, value in current.items()
        if (list(value) if isinstance(value, tuple) else value) != saved.get(key)
    ]
    if differences:
        raise UserError(
            f"{where} was encoded by a model with another configuration (" + "; ".join(differences)
            + "). Decode it with the model that encoded it."
        )
    if not allow_other_weights and header.model_weights_sha256 != model_weights_hash(model):
        raise UserError(
            f"{where} was encoded by a model with the same configuration but other weights (another "
            "checkpoint?). Decode with the model that encoded it, or allow other weights explicitly "
            "(--allow-other-weights) if you know they share the latent space."
        )


def _check_fits_model(reader: EncodedReader, model: CodecModel) -> None:
    """The header's rates, hop and channels, and the tensor's rows, against ``model`` (whose
    configuration :func:`check_model_matches` found equal to the file's): a difference means the
    header contradicts its own configuration, i.e. a damaged file."""
    header, where = reader.header, str(reader.path)
    for name, value in (("sample_rate", model.sample_rate), ("hop_length", model.hop_length),
                        ("channels", model.channels)):
        if getattr(header, name) != value:
            raise _field_error(where, name, f"is {getattr(header, name)}, but the model that wrote it has {value}")
    if not math.isclose(header.frame_rate, model.frame_rate, rel_tol=1e-9):
        raise _field_error(where, "frame_rate", f"is {header.frame_rate!r}, but the model's is {model.frame_rate!r}")
    rows = reader.shape[1]
    if model.quantizer is None:
        if rows != model.decoder.dimension:
            raise UserError(
                f"{where}: tensor 'latents' has {rows} rows (shape {list(reader.shape)}) but the model's latent "
                f"dimension is {model.decoder.dimension}; the file is damaged. {_REENCODE}"
            )
        return
    if rows > model.quantizer.total_codebooks:
        raise UserError(
            f"{where}: tensor 'codes' has {rows} codebooks (shape {list(reader.shape)}) but the model has only "
            f"{model.quantizer.total_codebooks}; the file is damaged. {_REENCODE}"
        )
    if rows != header.n_q:
        raise _field_error(where, "n_q", f"is {header.n_q}, but tensor 'codes' has {rows} codebooks")


def decode_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    model: CodecModel,
    config: ModelConfig,
    *,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    to_source_rate: bool = False,
    subtype: str = "FLOAT",
    allow_other_weights: bool = False,
    device: str | torch.device = "cpu",
    on_chunk: Callable[[int, int], None] | None = None,
) -> DecodeResult:
    """Decode a container written by :func:`encode_file` into an audio file, block by block.

    The output has ``num_samples`` samples at the model rate, or — with ``to_source_rate`` — is
    resampled back (soxr stream) to the source file's rate and ``source_frames`` length.

    Args:
        input_path: ``.safetensors`` or ``.npz`` from :func:`encode_file`.
        output_path: audio file; the container follows the suffix (``.wav``, ``.flac``, ...).
        model, config: the model that encoded the file (checked by hash).
        chunk_frames: frames decoded per step.
        to_source_rate: resample to the source file's sample rate.
        subtype: libsndfile sample encoding ('FLOAT' (default, never clips), 'PCM_16', 'PCM_24', ...).
        allow_other_weights: see :func:`check_model_matches`.
        device: where the model runs.
        on_chunk: called as ``on_chunk(frames_done, frames_total)``.

    Nothing in ``input_path`` is trusted: before any audio is computed, the output name and subtype
    (:func:`check_audio_output`), the header (types, ranges, consistency), the tensor (rank,
    dtype, size, rows against the model) and every value (codes within the codebooks, latents
    finite and within :data:`LATENT_LIMIT`) are checked; decoded audio must be finite. The audio
    goes to a temporary file renamed over ``output_path`` at the end, so a refusal at any point
    leaves nothing at ``output_path``.

    Raises:
        UserError: any of the above, naming the file and the field or value.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if chunk_frames < 1:
        raise UserError(f"chunk_frames={chunk_frames}: must be >= 1.")
    audio_format = check_audio_output(output_path, subtype)
    where = str(input_path)
    with EncodedReader(input_path) as reader:  # checks the header, the tensor's rank, dtype and size
        header = reader.header
        check_model_matches(header, model, config, where, allow_other_weights)
        model_kind = "latents" if model.quantizer is None else "codes"
        if header.kind != model_kind:
            raise UserError(f"{input_path} holds {header.kind} but the model produces {model_kind}.")
        _check_fits_model(reader, model)
        bins = None if model.quantizer is None else model.quantizer.bins
        # Every value, before any audio is computed or written (the container is small next to the
        # audio: 1/20 of it for paper-model latents, far less for codes).
        for start in range(0, header.num_frames, SCAN_FRAMES):
            stop = min(start + SCAN_FRAMES, header.num_frames)
            _check_values(where, header.kind, reader.read(start, stop), start, bins)
        reader.rewind()
        model = model.to(resolve_device(device) if isinstance(device, str) else device).eval()
        stream = StreamingDecoder(model, scale=header.scale)
        frames = header.num_frames
        if not model.decoder.causal:
            chunk_frames = frames
        rate = header.source_sample_rate if to_source_rate else header.sample_rate
        out_frames = header.source_frames if to_source_rate else header.num_samples
        dtype = np.int64 if header.kind == "codes" else np.float32

        def decoded_blocks() -> Iterator[np.ndarray]:
            emitted = 0
            for start in range(0, frames, chunk_frames):
                stop = min(start + chunk_frames, frames)
                values = reader.read(start, stop)
                _check_values(where, header.kind, values, start, bins)  # again: the file may have changed
                block = torch.from_numpy(values.astype(dtype)).unsqueeze(0).to(device)
                audio = stream.decode_chunk(block, final=stop == frames)[0].cpu().numpy()
                if not np.isfinite(audio).all():
                    raise UserError(
                        f"{where}: decoding frames {start}..{stop} gave NaN/Inf audio: the model's float32 arithmetic "
                        f"overflows on these values (damaged weights or a damaged file); nothing was written to "
                        f"{output_path}. Decode with the model that encoded the file, or encode the source again."
                    )
                audio = audio[:, : max(0, header.num_samples - emitted)]
                emitted += audio.shape[1]
                if on_chunk is not None:
                    on_chunk(stop, frames)
                yield audio

        blocks: Iterator[np.ndarray] = decoded_blocks()
        if to_source_rate:
            blocks = _exact_length(_resampled_blocks(blocks, header.sample_rate, rate, header.channels),
                                   out_frames, header.channels)
        tmp = _atomic_target(output_path)
        clipped = 0
        written = 0
        try:
            integer = not subtype.upper().startswith(("FLOAT", "DOUBLE"))
            try:
                out = sf.SoundFile(str(tmp), "w", samplerate=rate, channels=header.channels, subtype=subtype,
                                   format=audio_format)
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
                raise UserError(
                    f"{output_path}: libsndfile cannot write {audio_format} with {header.channels} channel(s) at "
                    f"{rate} Hz, subtype {subtype} ({_one_line(error)}); choose another suffix (.wav holds any)."
                ) from error
            with out:
                for block in blocks:
                    if integer:
                        over = np.abs(block) > 1.0
                        clipped += int(over.sum())
                        block = np.clip(block, -1.0, 1.0)
                    out.write(np.ascontiguousarray(block.T))
                    written += block.shape[1]
            if written != out_frames:
                raise RuntimeError(f"internal: wrote {written} frames, expected {out_frames}.")
            os.replace(tmp, output_path)
        finally:
            tmp.unlink(missing_ok=True)
    return DecodeResult(output_path, rate, written, header.channels, clipped)


__all__ = [
    "DEFAULT_CHUNK_FRAMES", "DecodeResult", "EncodeResult", "EncodedHeader", "EncodedReader", "FORMAT_VERSION",
    "LATENT_LIMIT", "StreamingDecoder", "StreamingEncoder", "check_audio_output", "check_encoded_output",
    "check_model_matches",
    "decode_file", "encode_file", "load_codec", "model_config_hash", "model_weights_hash", "resampled_length",
]
