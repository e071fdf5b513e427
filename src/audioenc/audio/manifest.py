"""The dataset manifest: every audio file under a directory, its header, and whether it is usable.

:func:`scan` walks a directory recursively, probes every file whose extension libsndfile
reads (:data:`AUDIO_EXTENSIONS`) and records, per file: relative path, size, modification
time, sample rate, channels, frames, container, encoding, scene class, recording, and
either ``error=None`` (usable) or the reason it was rejected.

Checks per file (:func:`probe_file`):

==================== ======================================================================
kind                 how it is caught
==================== ======================================================================
zero-length          0 bytes, or a header that declares 0 frames
non-audio            libsndfile cannot recognise the format
corrupt              libsndfile rejects the header, or decoding fails (compressed formats)
truncated            the header's chunk sizes disagree with the file size (libsndfile logs
                     "should be"), or the last frames cannot be read
NaN / Inf            float encodings are decoded in full (in 1 s blocks) and checked
==================== ======================================================================

Integer-PCM files (``PCM_*``, ``ULAW``, ``ALAW``) cannot hold NaN and have no bitstream to
corrupt, so they are checked from the header and their first and last frames only: a
2.7 GB EigenScape file scans in milliseconds. Compressed (FLAC, Ogg, MP3, ...) and float
files are decoded once in full, with memory bounded by one block; the result is cached.
Channel counts and lengths are not judged here (they depend on the dataset's settings;
see :func:`usable_entries`).

The manifest is cached as JSON beside the data (``DIR/.audioenc_manifest.json``, or under
:func:`audioenc.audio.io.audio_cache_dir` when ``DIR`` is read-only) and refreshed on every
:func:`scan`: files whose size or modification time changed are probed again, new files are
added, vanished files dropped. The same file also stores fixed validation/test segments
(:meth:`Manifest.fixed_segments` / :meth:`Manifest.store_fixed_segments`).

Scene class and recording of each file (used by
:func:`audioenc.audio.datasets.split_manifest`):

1. from ``DIR/scenes.tsv`` when present (tab-separated, header ``filename scene_class
   recording``; ``filename`` relative to ``DIR``) — the embedded eigenscape-like corpus
   writes one;
2. otherwise the scene class is the file's parent folder (relative to ``DIR``) if it is
   in one, else the file name up to its first ``-`` or ``_`` (EigenScape's
   ``Beach-01-Raw.wav`` -> ``Beach``); the recording is the file name without extension
   and without a trailing chunk marker such as ``_part3``, ``-chunk12``, ``.seg7``
   (``Beach-01-Raw_part3.wav`` -> ``Beach-01-Raw``), so chunks of one recording stay together.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from audioenc.audio.io import AudioInfo, audio_cache_dir, read_info
from audioenc.core.atomic import write_text
from audioenc.errors import UserError

LOGGER = logging.getLogger(__name__)

MANIFEST_NAME = ".audioenc_manifest.json"
"""File name of the cached manifest inside a data directory."""

MANIFEST_VERSION = 1
"""Bumped when the cached format or the checks change (old caches are then re-probed)."""

SCENES_TSV = "scenes.tsv"
"""Optional label file in a data directory: ``filename  scene_class  recording``."""

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav",
        ".wave",
        ".bwf",
        ".rf64",
        ".w64",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aif",
        ".aiff",
        ".aifc",
        ".caf",
        ".au",
        ".snd",
        ".nist",
        ".sph",
        ".voc",
        ".ircam",
        ".sf",
        ".mat",
        ".mat4",
        ".mat5",
        ".pvf",
        ".xi",
        ".htk",
        ".sds",
        ".avr",
        ".sd2",
        ".paf",
        ".fap",
        ".svx",
        ".8svx",
        ".wve",
        ".mpc",
        ".mpc2k",
    }
)
"""File extensions (lower case) of the formats libsndfile reads; other files are ignored."""

_INTEGER_PCM_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW"})
_UNCOMPRESSED_CONTAINERS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "CAF", "NIST", "IRCAM", "RAW"})
_EDGE_FRAMES = 4096
_CHUNK_MARKER = re.compile(r"[-_.](?:part|chunk|seg|segment)[-_]?\d+$", re.IGNORECASE)


class NoUsableAudioError(UserError):
    """A directory holds no audio file that can be used (empty, or every file rejected)."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a manifest.

    Attributes:
        path: path relative to the manifest root, with ``/`` separators.
        size: bytes on disk when probed.
        mtime_ns: modification time (ns) when probed; with ``size`` it decides re-probing.
        sample_rate: Hz (0 when the header could not be read).
        channels: channel count (0 when unknown).
        frames: frames per channel (0 when unknown).
        format: container (``'WAV'``, ``'FLAC'``, ...; ``''`` when unknown).
        subtype: encoding (``'PCM_24'``, ``'FLOAT'``, ...).
        scene_class: label used to hold out scene classes (see the module docstring).
        recording: label used to hold out whole recordings.
        error: ``None`` if the file is usable, else why it was rejected.
    """

    path: str
    size: int
    mtime_ns: int
    sample_rate: int = 0
    channels: int = 0
    frames: int = 0
    format: str = ""
    subtype: str = ""
    scene_class: str = ""
    recording: str = ""
    error: str | None = None

    @property
    def duration_seconds(self) -> float:
        """Length in seconds (0.0 when unknown)."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def usable(self) -> bool:
        """True when the file passed every check of :func:`probe_file`."""
        return self.error is None


@dataclass(frozen=True)
class Manifest:
    """The audio files under ``root`` (or a subset of them, e.g. one split).

    Attributes:
        root: the scanned directory; entry paths are relative to it.
        entries: every probed file, usable or rejected, sorted by path.
        ignored: relative paths of files skipped for their extension (not audio formats).
        cache_path: the JSON file this manifest is cached in (``None``: not cached).
    """

    root: Path
    entries: tuple[FileEntry, ...]
    ignored: tuple[str, ...] = ()
    cache_path: Path | None = None

    @property
    def usable(self) -> tuple[FileEntry, ...]:
        """Entries that passed every check."""
        return tuple(entry for entry in self.entries if entry.usable)

    @property
    def rejected(self) -> tuple[FileEntry, ...]:
        """Entries rejected at scan time, each with its ``error``."""
        return tuple(entry for entry in self.entries if not entry.usable)

    @property
    def total_seconds(self) -> float:
        """Total duration of the usable files in seconds."""
        return float(sum(entry.duration_seconds for entry in self.usable))

    def absolute(self, entry: FileEntry | str) -> Path:
        """Absolute path of an entry (or of a relative path string)."""
        relative = entry.path if isinstance(entry, FileEntry) else entry
        return self.root / relative

    def subset(self, entries: Iterable[FileEntry]) -> Manifest:
        """The same manifest restricted to ``entries`` (same root and cache file)."""
        chosen = tuple(sorted(entries, key=lambda entry: entry.path))
        return Manifest(root=self.root, entries=chosen, ignored=(), cache_path=self.cache_path)

    def with_requirements(self, *, channels: int | None = None, min_seconds: float = 0.0) -> Manifest:
        """The manifest with usable files that miss a requirement marked as rejected.

        Args:
            channels: required channel count (``None``: any).
            min_seconds: shortest usable file in seconds.

        Returns:
            A manifest (same root and cache file) whose entries carry a reason such as
            ``"wrong channel count: 2, need 32"`` or ``"too short: 0.50 s < 1.00 s"``.
            The cache file is not changed (requirements depend on the dataset's settings).
        """
        entries = []
        for entry in self.entries:
            if entry.usable and channels is not None and entry.channels != channels:
                entry = replace(entry, error=f"wrong channel count: {entry.channels}, need {channels}")
            elif entry.usable and entry.duration_seconds < min_seconds:
                entry = replace(entry, error=f"too short: {entry.duration_seconds:.2f} s < {min_seconds:.2f} s")
            entries.append(entry)
        return Manifest(root=self.root, entries=tuple(entries), ignored=self.ignored, cache_path=self.cache_path)

    def fixed_segments(self, key: str) -> dict | None:
        """The fixed-segment record stored under ``key`` in the cache file, or ``None``."""
        if self.cache_path is None or not self.cache_path.exists():
            return None
        stored = _read_cache(self.cache_path)
        if stored is None:
            return None
        record = stored.get("fixed_segments", {}).get(key)
        return record if isinstance(record, dict) else None

    def store_fixed_segments(self, key: str, record: dict) -> None:
        """Store a fixed-segment record under ``key`` in the cache file (atomic rewrite).

        Does nothing (with a debug log) for a manifest without a cache file; the segments
        are still deterministic from their seed.
        """
        if self.cache_path is None:
            LOGGER.debug("manifest of %s has no cache file; fixed segments %s not stored", self.root, key)
            return
        # Without a cache file, store the segments only: an empty file list makes the
        # next scan probe every file instead of trusting entries it did not write.
        stored = _read_cache(self.cache_path) or {"version": MANIFEST_VERSION, "files": [], "fixed_segments": {}}
        stored.setdefault("fixed_segments", {})[key] = record
        write_text(self.cache_path, json.dumps(stored, indent=1))


# --------------------------------------------------------------------------- probing


def _needs_full_decode(info: AudioInfo) -> bool:
    """Float data may hold NaN/Inf and compressed data may be corrupt: decode those in full."""
    return not (info.subtype in _INTEGER_PCM_SUBTYPES and info.format in _UNCOMPRESSED_CONTAINERS)


def _check_block(path: Path, block: np.ndarray, start: int, expected: int) -> str | None:
    if block.shape[0] != expected:
        return f"truncated: frames {start}..{start + expected} unreadable (got {block.shape[0]} of {expected})"
    if not np.isfinite(block).all():
        bad = int(np.argmax(~np.isfinite(block).all(axis=1)))
        return f"NaN/Inf samples (first at frame {start + bad})"
    return None


def probe_file(path: str | os.PathLike) -> tuple[AudioInfo | None, str | None]:
    """Check one file; return ``(info, None)`` if usable, else ``(info_or_None, reason)``.

    See the module docstring for the checks. Memory is bounded by one second of audio
    (or :data:`_EDGE_FRAMES` frames) whatever the file length.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        return None, f"cannot stat: {error}"
    if size == 0:
        return None, "zero-length file (0 bytes)"
    try:
        info = read_info(path)
    except (sf.LibsndfileError, RuntimeError) as error:
        message = str(error)
        if "Format not recognised" in message or "unknown format" in message.lower():
            return None, f"not audio: libsndfile does not recognise the format ({message})"
        return None, f"corrupt header: {message}"
    if info.sample_rate <= 0 or info.channels <= 0:
        return info, f"invalid header: sample rate {info.sample_rate}, channels {info.channels}"
    if info.frames == 0:
        return info, "zero-length audio (the header declares 0 frames)"
    if info.truncation():
        return info, f"truncated: the header declares more sample data than the file holds ({info.truncation()})"
    try:
        with sf.SoundFile(str(path)) as handle:
            if _needs_full_decode(info):
                block_frames = max(info.sample_rate, _EDGE_FRAMES)
                position = 0
                while position < info.frames:
                    expected = min(block_frames, info.frames - position)
                    block = handle.read(expected, dtype="float32", always_2d=True)
                    problem = _check_block(path, block, position, expected)
                    if problem:
                        return info, problem
                    position += expected
            else:
                for start in sorted({0, max(0, info.frames - _EDGE_FRAMES)}):
                    expected = min(_EDGE_FRAMES, info.frames - start)
                    handle.seek(start)
                    block = handle.read(expected, dtype="float32", always_2d=True)
                    problem = _check_block(path, block, start, expected)
                    if problem:
                        return info, problem
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        return info, f"corrupt: decoding failed ({error})"
    return info, None


# --------------------------------------------------------------------------- labels


def _read_scenes_tsv(root: Path) -> dict[str, tuple[str, str]]:
    table = root / SCENES_TSV
    if not table.exists():
        return {}
    labels: dict[str, tuple[str, str]] = {}
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = {"filename", "scene_class", "recording"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{table}: missing column(s) {sorted(missing)}; expected filename, scene_class, recording")
        for row in reader:
            labels[row["filename"]] = (row["scene_class"], row["recording"])
    return labels


def default_labels(relative_path: str) -> tuple[str, str]:
    """Scene class and recording of a file without a ``scenes.tsv`` row (rule 2 above)."""
    parts = relative_path.split("/")
    stem = Path(parts[-1]).stem
    if len(parts) > 1:
        scene_class = parts[-2]
    else:
        scene_class = re.split(r"[-_]", stem, maxsplit=1)[0] or stem
    recording = _CHUNK_MARKER.sub("", stem) or stem
    if len(parts) > 1:
        recording = "/".join(parts[:-1] + [recording])
    return scene_class, recording


# --------------------------------------------------------------------------- cache


def _read_cache(path: Path) -> dict | None:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        LOGGER.warning("manifest cache %s is unreadable (%s); scanning again", path, error)
        return None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return None
    return data


def _manifest_json(manifest: Manifest) -> dict:
    return {
        "version": MANIFEST_VERSION,
        "root": str(manifest.root),
        "files": [asdict(entry) for entry in manifest.entries],
        "ignored": list(manifest.ignored),
        "fixed_segments": {},
    }


def _cache_location(root: Path) -> Path:
    """Beside the data if the directory is writable, else in the data cache."""
    if os.access(root, os.W_OK):
        return root / MANIFEST_NAME
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:16]
    return audio_cache_dir() / "manifests" / f"{digest}.json"


# --------------------------------------------------------------------------- scanning


def _walk(root: Path) -> tuple[list[str], list[str]]:
    audio: list[str] = []
    ignored: list[str] = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue  # hidden files, our own manifest and its temporaries
            relative = (Path(directory) / name).relative_to(root).as_posix()
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                audio.append(relative)
            elif name != SCENES_TSV:
                ignored.append(relative)
    return audio, ignored


def scan(root: str | os.PathLike, *, use_cache: bool = True, write_cache: bool = True) -> Manifest:
    """Scan ``root`` recursively and return its manifest (refreshing the cache).

    Args:
        root: directory of audio files (any depth).
        use_cache: reuse cached entries of files whose size and mtime are unchanged.
        write_cache: write the refreshed manifest back (atomic replace).

    Returns:
        The manifest, usable and rejected files alike (rejections are not errors here;
        see :func:`require_usable` and the ``scan`` command).

    Raises:
        NotADirectoryError: ``root`` does not exist or is not a directory.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise NotADirectoryError(
            f"{root}: not a directory: the audio folder {what}; give the folder that "
            "holds the audio files (for example --data DIR)"
        )
    cache_path = _cache_location(root)
    cached = _read_cache(cache_path) if use_cache else None
    previous: dict[str, dict] = {}
    if cached is not None:
        previous = {record["path"]: record for record in cached.get("files", []) if "path" in record}
    labels = _read_scenes_tsv(root)
    audio_paths, ignored = _walk(root)
    entries: list[FileEntry] = []
    changed = cached is None
    for relative in audio_paths:
        try:
            stat = (root / relative).stat()
        except OSError as error:
            entries.append(FileEntry(path=relative, size=0, mtime_ns=0, error=f"cannot stat: {error}"))
            changed = True
            continue
        scene_class, recording = labels.get(relative) or default_labels(relative)
        record = previous.get(relative)
        if record and record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns:
            entry = FileEntry(**{key: record[key] for key in FileEntry.__dataclass_fields__ if key in record})
            if (entry.scene_class, entry.recording) != (scene_class, recording):
                entry = replace(entry, scene_class=scene_class, recording=recording)
                changed = True
            entries.append(entry)
            continue
        changed = True
        info, error = probe_file(root / relative)
        entries.append(
            FileEntry(
                path=relative,
                size=int(stat.st_size),
                mtime_ns=int(stat.st_mtime_ns),
                sample_rate=info.sample_rate if info else 0,
                channels=info.channels if info else 0,
                frames=info.frames if info else 0,
                format=info.format if info else "",
                subtype=info.subtype if info else "",
                scene_class=scene_class,
                recording=recording,
                error=error,
            )
        )
    if set(previous) != set(audio_paths):
        changed = True
    manifest = Manifest(root=root, entries=tuple(entries), ignored=tuple(ignored), cache_path=cache_path)
    if write_cache and changed:
        data = _manifest_json(manifest)
        if cached is not None:
            data["fixed_segments"] = cached.get("fixed_segments", {})
        try:
            write_text(cache_path, json.dumps(data, indent=1))
        except OSError as error:
            LOGGER.warning("could not write the manifest cache %s (%s); the next scan probes again", cache_path, error)
    return manifest


def require_usable(manifest: Manifest, what: str = "audio files") -> tuple[FileEntry, ...]:
    """The usable entries, or :class:`NoUsableAudioError` saying what was looked for and where."""
    usable = manifest.usable
    if usable:
        return usable
    if not manifest.entries:
        extra = f" ({len(manifest.ignored)} other files ignored)" if manifest.ignored else ""
        raise NoUsableAudioError(
            f"no {what} under {manifest.root}{extra}: looked recursively for files that libsndfile "
            "reads (.wav, .flac, .ogg, .mp3, .aiff, ...). Put audio there or point to another directory."
        )
    reasons = "; ".join(f"{entry.path}: {entry.error}" for entry in manifest.rejected[:5])
    more = f" (and {len(manifest.rejected) - 5} more)" if len(manifest.rejected) > 5 else ""
    raise NoUsableAudioError(
        f"none of the {len(manifest.entries)} audio files under {manifest.root} is usable: {reasons}{more}. "
        "Run `audioenc scan` on the directory for the full report."
    )


def format_report(manifest: Manifest) -> str:
    """A human-readable dataset report: usable files, hours, rates, channels, rejections."""
    usable = manifest.usable
    lines = [f"dataset: {manifest.root}"]
    lines.append(
        f"usable files: {len(usable)} of {len(manifest.entries)} audio files, "
        f"{manifest.total_seconds / 3600:.3f} h ({manifest.total_seconds:.1f} s)"
    )
    if usable:
        rates = Counter(entry.sample_rate for entry in usable)
        channels = Counter(entry.channels for entry in usable)
        encodings = Counter(f"{entry.format}/{entry.subtype}" for entry in usable)
        durations = [entry.duration_seconds for entry in usable]
        lines.append("sample rates: " + ", ".join(f"{rate} Hz x{count}" for rate, count in sorted(rates.items())))
        lines.append("channel counts: " + ", ".join(f"{ch} ch x{count}" for ch, count in sorted(channels.items())))
        lines.append("encodings: " + ", ".join(f"{name} x{count}" for name, count in sorted(encodings.items())))
        lines.append(f"file lengths: {min(durations):.2f} s .. {max(durations):.2f} s")
        classes = Counter(entry.scene_class for entry in usable)
        listed = ", ".join(f"{name} x{count}" for name, count in sorted(classes.items()))
        lines.append(f"scene classes: {len(classes)} ({listed})")
    if manifest.ignored:
        suffixes = Counter(Path(name).suffix.lower() or "(none)" for name in manifest.ignored)
        lines.append(
            f"ignored (not an audio extension): {len(manifest.ignored)} files ("
            + ", ".join(f"{suffix} x{count}" for suffix, count in sorted(suffixes.items()))
            + ")"
        )
    rejected = manifest.rejected
    if rejected:
        lines.append(f"rejected: {len(rejected)} files")
        lines.extend(f"  {entry.path}: {entry.error}" for entry in rejected)
    else:
        lines.append("rejected: none")
    return "\n".join(lines)
