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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from audioenc.audio.io import SOXR_QUALITY, AudioReadError, read_info
from audioenc.config import Config, ModelConfig, saved_section
from audioenc.models.codec import CodecModel, as_scale
from audioenc.models.conv import StreamableConv1d, StreamableConvTranspose1d, StreamableLSTM, pad1d
from audioenc.models.seanet import ResidualUnit

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
        raise ValueError(f"--chunk-seconds must be > 0, got {chunk_seconds}.")
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
        ValueError: unknown file type, a checkpoint without ``config``/``model``, or weights that do
            not fit the stored configuration.
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
            model, config = load_exported_model(path)
        except RuntimeError as error:  # load_state_dict: missing/unexpected keys or shape mismatch
            raise ValueError(
                f"{path}: the weights do not fit the configuration in {path.with_suffix('.json').name}: {error}"
            ) from error
        return model.eval(), config
    if path.suffix == ".pt":
        state = load_training_state(path)
        missing = [key for key in ("config", "model") if not isinstance(state, dict) or key not in state]
        if missing:
            raise ValueError(
                f"{path} is not an audioenc training checkpoint: it has no {' / '.join(missing)} entry. "
                "Use a checkpoint_*.pt written by `audioenc train` or an exported model_best.safetensors."
            )
        config = Config.from_dict(state["config"]).model
        model = CodecModel.from_config(config)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise ValueError(f"{path}: the model weights do not fit its own saved config: {error}") from error
        return model.eval(), config
    raise ValueError(
        f"{path}: unknown codec file type {path.suffix!r}; use a .safetensors export (with its .json), "
        "a checkpoint_*.pt or a run folder."
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
            raise ValueError(
                "Streaming: the model is not causal (a convolution pads on the right), so it needs the "
                "whole signal at once; encode it in a single final chunk."
            )
        if not final and length % stride:
            raise ValueError(
                f"Streaming: a non-final chunk of {length} samples reached a convolution of stride {stride}; "
                "non-final chunks must be a multiple of the model's hop length."
            )
        if first:
            if conv.pad_mode != "constant" and length <= left:
                raise ValueError(
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
            raise ValueError(
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
    """

    def __init__(self, model: CodecModel, n_q: int | None = None, latents_only: bool = False,
                 scale: torch.Tensor | float | None = None) -> None:
        if (model.quantizer is None or latents_only) and n_q is not None:
            raise ValueError(
                "StreamingEncoder: n_q selects codebooks; it is meaningless when continuous latents are returned."
            )
        if model.normalize and scale is None:
            raise ValueError(
                "StreamingEncoder: this codec normalises its input level; pass scale= (model.input_scale of the "
                "whole signal, or a fixed gain for a live stream)."
            )
        self.model = model
        self.scale = scale if model.normalize else 1.0
        self.latents_only = latents_only
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
            raise ValueError(
                f"StreamingEncoder: chunk of {length} samples; non-final chunks must be a positive multiple "
                f"of the hop length {hop}, the final chunk at least 1 sample."
            )
        self.peak_chunk_samples = max(self.peak_chunk_samples, length)
        with parametrize.cached():  # weight norm: compute each weight once per chunk
            latents = self._run.step(self.model.encoder.model, audio / as_scale(self.scale, audio), final)
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
            raise ValueError("StreamingDecoder: this codec normalises its input level; pass the encoder's scale=.")
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
            raise ValueError(
                f"StreamingDecoder: expected [batch, dim or codebooks, frames>=1], got {tuple(encoded.shape)}."
            )
        if self.model.quantizer is None:
            latents = encoded
        else:
            latents = self.model.quantizer.decode(encoded.long())
        if latents.shape[1] != self.model.decoder.dimension:
            raise ValueError(
                f"StreamingDecoder: latents have dimension {latents.shape[1]}, the decoder expects "
                f"{self.model.decoder.dimension}."
            )
        if not self.model.decoder.causal and (self.chunks > 0 or not final):
            raise ValueError("StreamingDecoder: a non-causal decoder needs all frames in one final chunk.")
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
        if values.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"{where}: not an audioenc encoded file (format {values.get('format')!r}, expected "
                f"{FORMAT_VERSION!r}); encode the audio with `audioenc encode`."
            )
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name not in values:
                if field.default is not dataclasses.MISSING:
                    continue  # a key added later: files written before it mean the default
                raise ValueError(f"{where}: metadata key {field.name!r} is missing; the file is damaged.")
            caster = {"int": int, "float": float}.get(str(field.type), str)
            kwargs[field.name] = caster(values[field.name])
        header = cls(**kwargs)
        if "scale" not in values and json.loads(header.model_config).get("normalize", False):
            raise ValueError(f"{where}: metadata key 'scale' is missing for a normalising codec; the file is damaged.")
        if header.kind not in ("latents", "codes"):
            raise ValueError(f"{where}: kind {header.kind!r} is neither 'latents' nor 'codes'.")
        return header


def _atomic_target(path: Path) -> Path:
    """A temporary path in ``path``'s folder with the same suffix (formats follow the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


def _check_container_suffix(path: Path) -> None:
    if path.suffix not in CONTAINER_SUFFIXES:
        raise ValueError(f"{path}: the encoded file must end in {' or '.join(CONTAINER_SUFFIXES)}.")


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
            raise ValueError(
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

    Attributes:
        header: the :class:`EncodedHeader`.
        shape: ``(1, rows, F)``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        _check_container_suffix(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No encoded file at {self.path}.")
        self._zip = None
        self._entry = None
        self._whole: np.ndarray | None = None
        self._position = 0
        if self.path.suffix == ".safetensors":
            self._open_safetensors()
        else:
            self._open_npz()

    def _open_safetensors(self) -> None:
        from safetensors import safe_open

        try:
            self._handle = safe_open(str(self.path), framework="np")
            metadata = self._handle.metadata() or {}
        except Exception as error:  # safetensors raises its own SafetensorError for bad files
            raise ValueError(f"{self.path}: not a readable safetensors file ({error}).") from error
        self.header = EncodedHeader.from_strings(metadata, str(self.path))
        if self.header.tensor_name not in self._handle.keys():
            raise ValueError(f"{self.path}: no {self.header.tensor_name!r} tensor; the file is damaged.")
        self._slice = self._handle.get_slice(self.header.tensor_name)
        self.shape = tuple(self._slice.get_shape())
        self._check_shape()

    def _open_npz(self) -> None:
        try:
            self._zip = zipfile.ZipFile(self.path, "r")
            with self._zip.open("metadata.npy") as entry:
                metadata = json.loads(str(np.lib.format.read_array(entry, allow_pickle=False)))
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
            raise ValueError(f"{self.path}: not an audioenc .npz (no readable metadata entry: {error}).") from error
        self.header = EncodedHeader.from_strings(metadata, str(self.path))
        name = f"{self.header.tensor_name}.npy"
        if name not in self._zip.namelist():
            raise ValueError(f"{self.path}: no {name} entry; the file is damaged.")
        self._entry = self._zip.open(name)
        version = np.lib.format.read_magic(self._entry)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(self._entry)
        self.shape, self._dtype = tuple(shape), dtype
        if not fortran_order:
            with self._zip.open(name) as entry:
                self._whole = np.lib.format.read_array(entry, allow_pickle=False)
        self._check_shape()

    def _check_shape(self) -> None:
        if len(self.shape) != 3 or self.shape[0] != 1 or self.shape[2] != self.header.num_frames:
            raise ValueError(
                f"{self.path}: tensor shape {self.shape} does not match the header "
                f"([1, rows, {self.header.num_frames}])."
            )

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as ``[rows, stop - start]`` (``.npz``: sequential calls only)."""
        if not 0 <= start < stop <= self.shape[2]:
            raise ValueError(f"{self.path}: frames [{start}, {stop}) are outside [0, {self.shape[2]}).")
        if self._zip is None:
            return np.asarray(self._slice[:, :, start:stop])[0]
        if self._whole is not None:
            return np.asarray(self._whole[0, :, start:stop])
        if start != self._position:
            raise ValueError(
                f"{self.path}: .npz frames are read in order; asked for {start}, next is {self._position}."
            )
        rows = self.shape[1]
        count = (stop - start) * rows
        data = self._entry.read(count * self._dtype.itemsize)
        if len(data) != count * self._dtype.itemsize:
            raise ValueError(f"{self.path}: the tensor entry ends early (truncated file).")
        self._position = stop
        return np.frombuffer(data, dtype=self._dtype).reshape(stop - start, rows).T

    def close(self) -> None:
        if self._entry is not None:
            self._entry.close()
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> EncodedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        ValueError: wrong channel count, empty file, bad container suffix or chunk size.
        AudioReadError: unreadable or truncated audio, NaN/Inf samples.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    _check_container_suffix(output_path)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames={chunk_frames}: must be >= 1.")
    try:
        info = sf.info(str(input_path))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{input_path}: cannot read as audio: {error}") from error
    truncated = read_info(input_path).truncation()  # libsndfile reads a cut file silently short
    if truncated:
        raise AudioReadError(f"{input_path}: truncated: the header declares more sample data than the file holds "
                             f"({truncated}); `audioenc scan` flags such files; re-export or re-download it")
    if info.channels != model.channels:
        raise ValueError(
            f"{input_path} has {info.channels} channel(s) but the model encodes {model.channels}. "
            f"Use a {'mono (--1ch)' if info.channels == 1 else f'{info.channels}-channel'} model, or convert "
            f"the file to {model.channels} channel(s) first."
        )
    num_samples = resampled_length(info.frames, info.samplerate, model.sample_rate)
    if num_samples < 1:
        raise ValueError(f"{input_path} holds no audio ({info.frames} frames); nothing to encode.")
    model = model.to(device).eval()
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
    stream = StreamingEncoder(model, n_q, scale=scale)
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
        raise ValueError(
            f"{where} was encoded by a model with another configuration (" + "; ".join(differences)
            + "). Decode it with the model that encoded it."
        )
    if not allow_other_weights and header.model_weights_sha256 != model_weights_hash(model):
        raise ValueError(
            f"{where} was encoded by a model with the same configuration but other weights (another "
            "checkpoint?). Decode with the model that encoded it, or allow other weights explicitly "
            "(--allow-other-weights) if you know they share the latent space."
        )


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
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames={chunk_frames}: must be >= 1.")
    with EncodedReader(input_path) as reader:
        header = reader.header
        check_model_matches(header, model, config, str(input_path), allow_other_weights)
        model_kind = "latents" if model.quantizer is None else "codes"
        if header.kind != model_kind:
            raise ValueError(f"{input_path} holds {header.kind} but the model produces {model_kind}.")
        model = model.to(device).eval()
        stream = StreamingDecoder(model, scale=header.scale)
        frames = header.num_frames
        if not model.decoder.causal:
            chunk_frames = frames
        rate = header.source_sample_rate if to_source_rate else header.sample_rate
        out_frames = header.source_frames if to_source_rate else header.num_samples

        def decoded_blocks() -> Iterator[np.ndarray]:
            emitted = 0
            for start in range(0, frames, chunk_frames):
                stop = min(start + chunk_frames, frames)
                block = torch.from_numpy(np.array(reader.read(start, stop), copy=True)).unsqueeze(0).to(device)
                audio = stream.decode_chunk(block, final=stop == frames)[0].cpu().numpy()
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
            with sf.SoundFile(str(tmp), "w", samplerate=rate, channels=header.channels, subtype=subtype) as out:
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
    "StreamingDecoder", "StreamingEncoder", "check_model_matches", "decode_file", "encode_file", "load_codec",
    "model_config_hash", "model_weights_hash", "resampled_length",
]
