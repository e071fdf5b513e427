"""Encoded files in and out: stream audio to latents or codes and back.

One concept per module, every public name re-exported here (``from audioenc.codec_io import X``).
A trained codec is loaded, and fingerprinted, by :mod:`audioenc.models.files` (:func:`load_codec`,
:func:`model_config_hash`, :func:`model_weights_hash`, the fingerprints a container stores).

* :mod:`~audioenc.codec_io.streaming` — :class:`StreamingEncoder` / :class:`StreamingDecoder`:
  chunk-by-chunk inference with the exact state a one-shot pass would have.
* :mod:`~audioenc.codec_io.header` / :mod:`~audioenc.codec_io.container` /
  :mod:`~audioenc.codec_io.validation` — the container: its metadata, writer and reader, and the
  checks of its contents against a model.
* :mod:`~audioenc.codec_io.audio_blocks` — block reads, stream resampling, exact lengths, the level.
* :mod:`~audioenc.codec_io.files` — :func:`encode_file` / :func:`decode_file`: audio file ->
  ``.safetensors`` or ``.npz`` container -> audio file, block by block; what computes the frames
  is an :class:`InferenceEngine` (PyTorch by default, ONNX Runtime with
  :class:`audioenc.interop.onnx_runtime.OnnxRuntimeEngine`), the files are the same either way.

Streaming
---------
Choice: **true streaming state** (not overlapping chunks). Each stateful layer of a causal SEANet
steps itself with an explicit state (:mod:`audioenc.models.streaming`): a convolution keeps its last
``k - s`` input samples, a transposed convolution its ``k - s`` overlap-add tail, the LSTM its
``(h, c)``. The last chunk of a signal (any length ``>= 1``) gets the same right padding at every
layer as the one-shot pass, so the last frame matches too. Hence streaming = one-shot up to
floating-point rounding (the convolution and LSTM kernels may sum in a different order for
different lengths). Measured at the paper configuration (random weights, 10 s of mono audio):
latents identical (max difference 0.0) with 75- and 150-frame chunks, at most 4e-7 with 1- to
7-frame chunks (latents up to 0.11); decoded audio within 7e-8. ``tests/codec_io/test_streaming.py`` asserts
``atol=1e-6`` on a small model for chunks of 1 to 64 frames.

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

from audioenc.codec_io.audio_blocks import resampled_length
from audioenc.codec_io.container import CONTAINER_SUFFIXES, EncodedReader, check_encoded_output
from audioenc.codec_io.files import (
    DecodeResult,
    EncodeResult,
    InferenceEngine,
    TorchEngine,
    check_audio_output,
    decode_file,
    encode_file,
)
from audioenc.codec_io.header import FORMAT_VERSION, LEVEL_LIMIT, EncodedHeader
from audioenc.codec_io.streaming import DEFAULT_CHUNK_FRAMES, StreamingDecoder, StreamingEncoder, chunk_frames_for
from audioenc.codec_io.validation import LATENT_LIMIT, SCAN_FRAMES, check_model_matches

__all__ = [
    "CONTAINER_SUFFIXES",
    "DEFAULT_CHUNK_FRAMES",
    "DecodeResult",
    "EncodeResult",
    "EncodedHeader",
    "EncodedReader",
    "FORMAT_VERSION",
    "InferenceEngine",
    "LATENT_LIMIT",
    "LEVEL_LIMIT",
    "SCAN_FRAMES",
    "StreamingDecoder",
    "StreamingEncoder",
    "TorchEngine",
    "check_audio_output",
    "check_encoded_output",
    "check_model_matches",
    "chunk_frames_for",
    "decode_file",
    "encode_file",
    "resampled_length",
]
