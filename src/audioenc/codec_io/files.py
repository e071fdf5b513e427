"""Audio file -> encoded container -> audio file, block by block (:func:`encode_file`, :func:`decode_file`).

Encoding reads the file in blocks, resamples them to the model rate with a soxr stream, cuts
chunks of ``chunk_frames · hop`` samples and streams them through the encoder (a non-causal model
gets the whole file as one chunk), writing frames as they come. A normalising codec needs the whole
signal's level first: one extra read pass. Decoding checks the whole container against the model
before computing any audio, then decodes and writes block by block. What computes the frames is
an :class:`InferenceEngine`: PyTorch by default, ONNX Runtime with
:class:`audioenc.interop.onnx_runtime.OnnxRuntimeEngine`; the files are the same either way.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
import torch

from audioenc.audio.io import AudioReadError, read_info
from audioenc.codec_io.audio_blocks import (
    _exact_length,
    _read_blocks,
    _resampled_blocks,
    _signal_level,
    resampled_length,
)
from audioenc.codec_io.container import EncodedReader, _ContainerWriter, check_encoded_output
from audioenc.codec_io.header import LEVEL_LIMIT, EncodedHeader
from audioenc.codec_io.streaming import DEFAULT_CHUNK_FRAMES, StreamingDecoder, StreamingEncoder
from audioenc.codec_io.validation import SCAN_FRAMES, _check_fits_model, _check_values, check_model_matches
from audioenc.config import ModelConfig
from audioenc.core.atomic import commit, temporary_beside
from audioenc.core.distributed import resolve_device
from audioenc.errors import UserError, one_line
from audioenc.models.codec import CodecModel
from audioenc.models.files import model_config_hash, model_weights_hash


class InferenceEngine(Protocol):
    """Makes the chunk-by-chunk encoder and decoder :func:`encode_file` / :func:`decode_file` drive:
    objects with the interface of :class:`StreamingEncoder` / :class:`StreamingDecoder`
    (``encode_chunk`` / ``decode_chunk``, ``n_q``, ``frames_out``, ``peak_chunk_samples``, ``state_numel``)."""

    def streaming_encoder(
        self,
        model: CodecModel,
        n_q: int | None,
        *,
        scale: float,
        latent_check: Callable[[torch.Tensor, int], None] | None,
    ) -> StreamingEncoder: ...

    def streaming_decoder(self, model: CodecModel, *, scale: float) -> StreamingDecoder: ...


class TorchEngine:
    """The default engine: the PyTorch model itself."""

    name = "torch"

    def streaming_encoder(
        self,
        model: CodecModel,
        n_q: int | None,
        *,
        scale: float,
        latent_check: Callable[[torch.Tensor, int], None] | None,
    ) -> StreamingEncoder:
        return StreamingEncoder(model, n_q, scale=scale, latent_check=latent_check)

    def streaming_decoder(self, model: CodecModel, *, scale: float) -> StreamingDecoder:
        return StreamingDecoder(model, scale=scale)


TORCH_ENGINE = TorchEngine()


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
            + ", ".join(f".{name.lower()}" for name in formats)
            + " (.wav or .flac are the usual ones)."
        )
    subtypes = sf.available_subtypes(fmt)
    if not isinstance(subtype, str) or subtype.upper() not in subtypes or not sf.check_format(fmt, subtype.upper()):
        choices = ", ".join(subtypes)
        raise UserError(
            f"{path}: {fmt} files cannot hold subtype {subtype!r} (--subtype); use one of {choices}"
            + (" or write a .wav for FLOAT." if "FLOAT" not in subtypes else ".")
        )
    return fmt


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
    engine: InferenceEngine | None = None,
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
        engine: what computes the frames (default: PyTorch, :class:`StreamingEncoder`); e.g.
            :class:`audioenc.interop.onnx_runtime.OnnxRuntimeEngine`. The container is the same.

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
        raise AudioReadError(
            f"{input_path}: truncated: the header declares more sample data than the file holds "
            f"({truncated}); `audioenc scan` flags such files; re-export or re-download it"
        )
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
            _resampled_blocks(
                _read_blocks(input_path, block_frames, info.channels),
                int(info.samplerate),
                model.sample_rate,
                info.channels,
            ),
            num_samples,
            info.channels,
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

    stream = (engine or TORCH_ENGINE).streaming_encoder(model, n_q, scale=scale, latent_check=check_latents)
    quantized = model.quantizer.discrete
    header = EncodedHeader(
        kind=model.quantizer.encoded_kind,
        sample_rate=model.sample_rate,
        num_samples=num_samples,
        num_frames=num_frames,
        hop_length=hop,
        frame_rate=model.frame_rate,
        channels=model.channels,
        source_sample_rate=int(info.samplerate),
        source_frames=int(info.frames),
        source_name=input_path.name,
        n_q=stream.n_q or 0,
        bandwidth_kbps=model.quantizer.bandwidth_for(stream.n_q, model.frame_rate) if quantized else 0.0,
        streaming="causal-state" if causal else "one-shot",
        chunk_frames=chunk_samples // hop,
        model_config=json.dumps(dataclasses.asdict(config), sort_keys=True),
        model_config_sha256=model_config_hash(config),
        model_weights_sha256=model_weights_hash(model),
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
    engine: InferenceEngine | None = None,
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
        engine: what computes the audio (default: PyTorch, :class:`StreamingDecoder`).

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
        model_kind = model.quantizer.encoded_kind
        if header.kind != model_kind:
            raise UserError(f"{input_path} holds {header.kind} but the model produces {model_kind}.")
        _check_fits_model(reader, model)
        bins = model.quantizer.bins if model.quantizer.discrete else None
        # Every value, before any audio is computed or written (the container is small next to the
        # audio: 1/20 of it for paper-model latents, far less for codes).
        for start in range(0, header.num_frames, SCAN_FRAMES):
            stop = min(start + SCAN_FRAMES, header.num_frames)
            _check_values(where, header.kind, reader.read(start, stop), start, bins)
        reader.rewind()
        model = model.to(resolve_device(device) if isinstance(device, str) else device).eval()
        stream = (engine or TORCH_ENGINE).streaming_decoder(model, scale=header.scale)
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
            blocks = _exact_length(
                _resampled_blocks(blocks, header.sample_rate, rate, header.channels), out_frames, header.channels
            )
        tmp = temporary_beside(output_path, keep_suffix=True)
        clipped = 0
        written = 0
        try:
            integer = not subtype.upper().startswith(("FLOAT", "DOUBLE"))
            try:
                out = sf.SoundFile(
                    str(tmp), "w", samplerate=rate, channels=header.channels, subtype=subtype, format=audio_format
                )
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
                raise UserError(
                    f"{output_path}: libsndfile cannot write {audio_format} with {header.channels} channel(s) at "
                    f"{rate} Hz, subtype {subtype} ({one_line(error)}); choose another suffix (.wav holds any)."
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
            commit(tmp, output_path)
        finally:
            tmp.unlink(missing_ok=True)
    return DecodeResult(output_path, rate, written, header.channels, clipped)
