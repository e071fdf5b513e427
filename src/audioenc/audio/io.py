"""Audio file I/O: headers, seek-reads of one segment, band-limited resampling, writing.

Everything here works on NumPy arrays shaped ``[channels, time]`` (float32, full scale
±1.0); the datasets turn them into torch tensors.

Segment reads never load a whole file. :func:`read_segment` reads only the frames a
segment needs plus the resampler's margin (``soundfile`` ``seek`` + ``read``), resamples
them with soxr and returns exactly the requested number of samples. The margin is chosen
so that the result equals the same span of the whole file resampled at once (the
resampler's filter sees the same input around every output sample); see
:func:`resampler_margin_frames`.

Time convention of a segment: output sample ``m`` (at ``target_rate``) sits at time
``start_frame / source_rate + m / target_rate`` seconds from the start of the file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audioenc.core.cache import data_cache_dir
from audioenc.errors import UserError

SOXR_QUALITY = "HQ"
"""soxr quality recipe used everywhere ('HQ': 20-bit precision, passband to ~0.91 Nyquist)."""

_SOXR_HQ_REACH_OUTPUT_SAMPLES = 256
"""How far (in samples at the lower of the two rates) soxr 'HQ' looks around one output
sample. Measured: a margin of 128 lower-rate samples already reproduces a whole-file
resampling to 1e-6 at 48 kHz -> 24 kHz, 44.1 kHz -> 24 kHz and 16 kHz -> 24 kHz; 256
doubles that for safety (tests/audio/test_io.py checks it)."""


_SHORT_DATA_CHUNK = re.compile(r"^(?:data|SSND)\s*:.*should be", re.IGNORECASE)


class AudioReadError(UserError):
    """A file could not be read as audio (corrupt, truncated, vanished, non-finite data)."""


def audio_cache_dir() -> Path:
    """The data cache directory: ``$AUDIOENC_CACHE`` if set, else ``~/.cache/audioenc``.

    Generated corpora, manifests of read-only data directories and the array cache
    (:mod:`audioenc.core.cache`) live here; nothing else in the package writes outside a run folder.
    """
    return data_cache_dir()


@dataclass(frozen=True)
class AudioInfo:
    """Header of one audio file, as libsndfile reports it.

    Attributes:
        sample_rate: frames per second (Hz).
        channels: number of channels.
        frames: number of frames (samples per channel).
        format: container, e.g. ``'WAV'``, ``'FLAC'``.
        subtype: sample encoding, e.g. ``'PCM_24'``, ``'FLOAT'``.
        header_log: libsndfile's parse log of the header (used to spot truncation).
    """

    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    header_log: str = ""

    @property
    def duration_seconds(self) -> float:
        """Length in seconds (``frames / sample_rate``)."""
        return self.frames / self.sample_rate

    def truncation(self) -> str | None:
        """libsndfile's note when the header declares more sample data than the file holds
        (``data : N (should be M)``), else None. libsndfile then reports the frames that exist,
        so a read alone cannot tell a cut file from a short one."""
        notes = [line.strip() for line in self.header_log.splitlines() if _SHORT_DATA_CHUNK.match(line.strip())]
        return notes[0] if notes else None


def read_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` (no sample data).

    Raises:
        soundfile.LibsndfileError: the file is not something libsndfile can open.
    """
    info = sf.info(str(path))
    return AudioInfo(
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=str(info.format),
        subtype=str(info.subtype),
        header_log=str(info.extra_info),
    )


def read_frames(
    path: str | os.PathLike,
    start: int,
    frames: int,
    channels: Sequence[int] | None = None,
) -> np.ndarray:
    """Seek-read ``frames`` frames from frame ``start`` at the file's own rate.

    Frames before 0 or past the end of the file are returned as zeros (the same
    convention a resampler applies to a whole file), so callers can ask for margins.

    Args:
        path: audio file.
        start: first frame (may be negative: zeros are prepended).
        frames: number of frames to return.
        channels: channel indices to keep (in this order); ``None`` keeps all.

    Returns:
        float32 array ``[len(channels) or file channels, frames]``.

    Raises:
        AudioReadError: libsndfile failed, or returned fewer frames than the header promised.
    """
    if frames < 0:
        raise ValueError(f"frames={frames}: must be >= 0")
    try:
        with sf.SoundFile(str(path)) as handle:
            total = handle.frames
            read_start = min(max(start, 0), total)
            read_stop = min(max(start + frames, 0), total)
            handle.seek(read_start)
            data = handle.read(read_stop - read_start, dtype="float32", always_2d=True)
            file_channels = handle.channels
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{path}: reading frames {start}..{start + frames} failed: {error}") from error
    if data.shape[0] != read_stop - read_start:
        raise AudioReadError(
            f"{path}: asked for frames {read_start}..{read_stop} but got {data.shape[0]} "
            "(the file is shorter than its header says: truncated?)"
        )
    if channels is not None:
        bad = [index for index in channels if not 0 <= index < file_channels]
        if bad:
            raise AudioReadError(f"{path}: channel(s) {bad} requested but the file has {file_channels}")
        data = data[:, list(channels)]
    out = np.zeros((data.shape[1], frames), dtype=np.float32)
    offset = read_start - start
    out[:, offset : offset + data.shape[0]] = data.T
    return out


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling with soxr (quality :data:`SOXR_QUALITY`).

    Args:
        audio: ``[channels, time]`` at ``source_rate`` Hz.
        source_rate: input rate in Hz.
        target_rate: output rate in Hz.

    Returns:
        float32 ``[channels, round(time * target_rate / source_rate)]``; a copy even when
        the rates are equal. The signal is treated as zero outside the given span.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be [channels, time], got shape {audio.shape}")
    if source_rate == target_rate:
        return audio.copy()
    # soxr wants [time, channels]; it keeps the dtype (float32 in, float32 out).
    out = soxr.resample(np.ascontiguousarray(audio.T), source_rate, target_rate, quality=SOXR_QUALITY)
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T)


def read_clip(path: str | os.PathLike, sample_rate: int, *, mono: bool = True) -> np.ndarray:
    """Read a whole clip at ``sample_rate`` Hz: float32 ``[time]`` (``mono``) or ``[channels, time]``.

    For clips of seconds to minutes (event clips, a file to embed); long recordings are read
    with :func:`read_segment` instead. ``mono`` averages the channels (the downmix the timing
    half states in its reports); another file rate is resampled with :func:`resample`.

    Raises:
        AudioReadError: the file cannot be opened or read, is shorter than its header says
            (the same check as ``audioenc scan``), holds no samples, or holds NaN/Inf samples.
    """
    try:
        info = read_info(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{path}: cannot open as audio: {error}; check that it is a sound file") from error
    if info.frames == 0:
        raise AudioReadError(f"{path}: the file has no samples")
    if info.truncation():
        raise AudioReadError(
            f"{path}: truncated: the header declares more sample data than the file holds "
            f"({info.truncation()}); re-export or re-download it"
        )
    audio = read_frames(path, 0, info.frames)  # [channels, time]; refuses a file shorter than its header
    if mono:
        # Averaged over a [time, channels] copy, the layout libsndfile delivers (same float sums).
        audio = np.ascontiguousarray(audio.T).mean(axis=1)[None]
    audio = resample(audio, info.sample_rate, sample_rate)
    if not np.isfinite(audio).all():
        raise AudioReadError(f"{path}: the file holds NaN or Inf samples")
    return audio[0] if mono else audio


def input_frames_for(num_samples: int, source_rate: int, target_rate: int) -> int:
    """Input frames spanned by ``num_samples`` output samples: ``ceil(n * source / target)``."""
    return -(-num_samples * source_rate // target_rate)


def resampler_margin_frames(source_rate: int, target_rate: int) -> int:
    """Input frames to read on each side of a segment so soxr sees what it would in the whole file.

    Two conditions:

    * reach: at least ``256 * max(1, source_rate / target_rate)`` frames (the filter's
      reach, counted at the lower rate, converted to input frames);
    * grid: a multiple of ``source_rate / gcd(source_rate, target_rate)`` frames, so that
      the margin is an exact number of output samples and the output grid of the longer
      read lines up with the segment's own grid (``margin * target / source`` is an integer).

    Returns 0 when the rates are equal (no filter).
    """
    if source_rate == target_rate:
        return 0
    reach = math.ceil(_SOXR_HQ_REACH_OUTPUT_SAMPLES * max(1.0, source_rate / target_rate))
    period = source_rate // math.gcd(source_rate, target_rate)
    return -(-reach // period) * period


def read_segment(
    path: str | os.PathLike,
    start_frame: int,
    num_samples: int,
    target_rate: int,
    *,
    source_rate: int | None = None,
    channels: Sequence[int] | None = None,
    downmix: bool = False,
) -> np.ndarray:
    """Read one segment and resample it to ``target_rate``, exactly ``num_samples`` long.

    Reads only frames ``start_frame - margin .. start_frame + span + margin`` (``span`` =
    :func:`input_frames_for`, ``margin`` = :func:`resampler_margin_frames`); frames outside
    the file count as zeros, as in a whole-file resampling. Output sample ``m`` is the
    band-limited signal at ``start_frame / source_rate + m / target_rate`` seconds.

    Args:
        path: audio file.
        start_frame: first frame of the segment, at the file's rate.
        num_samples: output length at ``target_rate``.
        target_rate: output rate in Hz.
        source_rate: the file's rate if already known (saves a header read).
        channels: channel indices to keep; ``None`` keeps all.
        downmix: average the kept channels into one (before resampling: 1 channel to filter).

    Returns:
        float32 ``[C, num_samples]`` (``C = 1`` when ``downmix``).

    Raises:
        AudioReadError: the file failed to read or holds NaN/Inf in the segment.
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples={num_samples}: must be > 0")
    if source_rate is None:
        try:
            source_rate = read_info(path).sample_rate
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            raise AudioReadError(f"{path}: cannot read the header: {error}") from error
    margin = resampler_margin_frames(source_rate, target_rate)
    span = input_frames_for(num_samples, source_rate, target_rate)
    frames = read_frames(path, start_frame - margin, span + 2 * margin, channels)
    if downmix:
        frames = frames.mean(axis=0, keepdims=True)
    if not np.isfinite(frames).all():
        raise AudioReadError(
            f"{path}: NaN or Inf samples in frames {start_frame - margin}..{start_frame + span + margin}"
        )
    if source_rate == target_rate:
        return np.ascontiguousarray(frames[:, :num_samples])
    resampled = resample(frames, source_rate, target_rate)
    margin_out = margin * target_rate // source_rate  # exact: margin is a multiple of the grid period
    segment = resampled[:, margin_out : margin_out + num_samples]
    if segment.shape[1] != num_samples:
        raise AssertionError(
            f"internal: resampled {frames.shape[1]} frames {source_rate}->{target_rate} Hz gave "
            f"{resampled.shape[1]} samples, fewer than margin {margin_out} + {num_samples}"
        )
    return np.ascontiguousarray(segment)


def write_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_24",
) -> Path:
    """Write ``audio`` ``[channels, time]`` (float, ±1.0 full scale) to ``path``.

    The container follows the extension (``.wav``, ``.flac``, ...); ``subtype`` is the
    sample encoding (``'PCM_16'``, ``'PCM_24'``, ``'FLOAT'``). Values beyond ±1.0 are
    an error for integer subtypes (they would clip silently).
    """
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise ValueError(f"audio must be [channels, time], got shape {audio.shape}")
    if subtype.startswith("PCM") and audio.size and float(np.max(np.abs(audio))) > 1.0:
        raise ValueError(
            f"{path}: peak {float(np.max(np.abs(audio))):.3f} exceeds full scale for {subtype}; "
            "scale the signal down first"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.T, sample_rate, subtype=subtype)
    return path
