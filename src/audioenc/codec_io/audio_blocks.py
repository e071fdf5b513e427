"""Audio in blocks: seek-reads, stream resampling to the model rate, exact lengths, the level.

Everything here holds at most one block at a time, so encoding and decoding memory does not grow
with a file's length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audioenc.audio.io import SOXR_QUALITY, AudioReadError
from audioenc.models.codec import CodecModel


def resampled_length(frames: int, source_rate: int, target_rate: int) -> int:
    """Samples soxr returns for ``frames`` input frames: ``floor(frames · target / source + 1/2)``.

    Checked against ``soxr.resample`` for 8 rates and lengths 1..300 and beyond
    (``tests/codec_io/test_audio_blocks.py`` re-checks a few); exact integer arithmetic.
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
