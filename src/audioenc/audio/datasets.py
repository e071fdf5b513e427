"""Datasets over a manifest: random training segments, fixed validation/test segments, splits.

Typical use (what ``audioenc train`` does)::

    manifest = scan("data/")                                  # cached, refreshed on change
    splits = split_manifest(manifest, by="file", seed=0)      # train / valid / test manifests
    train = SegmentDataset(splits.train, channel_mode="mono", channels=1, seed=0)
    valid = FixedSegmentDataset(splits.valid, num_segments=64, channel_mode="mono", channels=1)
    loader = DataLoader(train, batch_size=32, num_workers=4)  # items are [C, T] float32
    for epoch in range(epochs):
        train.set_epoch(epoch)                                # before iterating the loader
        for batch in loader: ...                              # batch [B, C, T]

or all of it at once with :func:`build_datasets`.

Channel modes (``channel_mode``, ``channels``):

* ``'mono'`` (``channels=1``): one channel drawn at random for every item, from any
  channel count; over many draws every channel of a file is used.
* ``'all'`` (``channels=N``, e.g. 32 for ``--32ch``): every channel; files with another
  channel count are left out with one summary warning, and a dataset without any file of
  ``N`` channels is an error that says which counts were found.
* ``'downmix'`` (``channels=1``): the mean of all channels.

Every item is exactly ``T = round(segment_seconds * sample_rate)`` samples, resampled with
soxr from only the frames it needs (:func:`audioenc.audio.io.read_segment`); memory per
worker is bounded by one segment plus the resampler margin, whatever the file length.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from audioenc import SAMPLE_RATE
from audioenc.audio import synth_scenes
from audioenc.audio.io import AudioReadError, input_frames_for, read_segment
from audioenc.audio.manifest import (
    FileEntry,
    Manifest,
    NoUsableAudioError,
    require_usable,
    scan,
)
from audioenc.errors import UserError

LOGGER = logging.getLogger(__name__)

CHANNEL_MODES: tuple[str, ...] = ("mono", "all", "downmix")
"""Accepted ``channel_mode`` values (see the module docstring)."""

SPLIT_BY: tuple[str, ...] = ("file", "recording", "scene_class")
"""Accepted ``by`` values of :func:`split_manifest`."""

_MAX_WORKER_SLOTS = 256


@dataclass(frozen=True)
class Segment:
    """Where one item comes from.

    Attributes:
        path: file path relative to the manifest root.
        start_frame: first frame at the file's own sample rate.
        channel: the channel for ``'mono'``; ``None`` for ``'all'`` and ``'downmix'``.
    """

    path: str
    start_frame: int
    channel: int | None


# --------------------------------------------------------------------------- helpers


def _as_manifest(manifest_or_root: Manifest | str | os.PathLike) -> Manifest:
    if isinstance(manifest_or_root, Manifest):
        return manifest_or_root
    return scan(manifest_or_root)


def _check_channel_config(channel_mode: str, channels: int) -> None:
    if channel_mode not in CHANNEL_MODES:
        raise UserError(f"channel_mode={channel_mode!r}: choose one of {CHANNEL_MODES}")
    if channel_mode in ("mono", "downmix") and channels != 1:
        raise UserError(f"channel_mode={channel_mode!r} gives 1 channel, but channels={channels}; set channels=1")
    if channel_mode == "all" and channels < 1:
        raise UserError(f"channels={channels}: channel_mode='all' needs the files' channel count (e.g. 32)")


def usable_entries(
    manifest: Manifest,
    *,
    segment_seconds: float,
    channel_mode: str,
    channels: int,
    min_seconds: float | None = None,
) -> tuple[FileEntry, ...]:
    """Files a dataset with these settings can draw from; warns once about the others.

    Rejected at scan time (corrupt, truncated, ...): left out, one warning that names them
    with their reasons (``audioenc scan`` gives the full report). Shorter than
    ``min_seconds`` (default ``segment_seconds``): left out, one warning that names them. Wrong
    channel count for ``'all'``: left out, one warning that names them.

    Raises:
        NoUsableAudioError: nothing is left; the message says what was required and found.
    """
    _check_channel_config(channel_mode, channels)
    min_seconds = segment_seconds if min_seconds is None else min_seconds
    required_channels = channels if channel_mode == "all" else None
    checked = manifest.with_requirements(channels=required_channels, min_seconds=min_seconds)
    usable = set(entry.path for entry in manifest.usable)
    newly_rejected = [entry for entry in checked.rejected if entry.path in usable]
    short = [entry for entry in newly_rejected if entry.error and entry.error.startswith("too short")]
    wrong = [entry for entry in newly_rejected if entry.error and entry.error.startswith("wrong channel")]
    if not checked.usable and wrong and not short:
        found = Counter(entry.channels for entry in manifest.usable)
        raise NoUsableAudioError(
            f"channel_mode='all' with channels={channels} needs {channels}-channel files, but the "
            f"usable files under {manifest.root} have "
            + ", ".join(f"{count} file(s) with {ch} channel(s)" for ch, count in sorted(found.items()))
            + ". Use channel_mode='mono' (1 channel from any file) or point to "
            f"{channels}-channel data."
        )
    if manifest.rejected:
        LOGGER.warning(
            "%d file(s) under %s rejected at scan time and left out: %s",
            len(manifest.rejected),
            manifest.root,
            "; ".join(f"{entry.path} ({entry.error})" for entry in manifest.rejected),
        )
    if short:
        LOGGER.warning(
            "%d file(s) under %s shorter than min_seconds=%.2f s skipped: %s",
            len(short),
            manifest.root,
            min_seconds,
            ", ".join(f"{entry.path} ({entry.duration_seconds:.2f} s)" for entry in short),
        )
    if wrong:
        LOGGER.warning(
            "%d file(s) under %s without the %d channels channel_mode='all' needs skipped: %s",
            len(wrong),
            manifest.root,
            channels,
            ", ".join(f"{entry.path} ({entry.channels} ch)" for entry in wrong),
        )
    return require_usable(
        checked,
        what=f"audio files of at least {min_seconds:.2f} s"
        + (f" with {channels} channels" if required_channels else ""),
    )


def _segment_samples(segment_seconds: float, sample_rate: int) -> int:
    samples = round(segment_seconds * sample_rate)
    if samples <= 0:
        raise UserError(f"segment_seconds={segment_seconds} at {sample_rate} Hz gives {samples} samples")
    return samples


def _max_start(entry: FileEntry, num_samples: int, sample_rate: int) -> int:
    """Last start frame whose segment fits in the file (0 for a file shorter than a segment)."""
    return max(0, entry.frames - input_frames_for(num_samples, entry.sample_rate, sample_rate))


def _default_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_rank())
    return int(os.environ.get("RANK", "0"))


class _ManifestSegments(Dataset):
    """Segments of a manifest's usable files at one rate, length and channel mode (the set-up and
    the read both datasets share; subclasses choose which segments)."""

    def __init__(
        self,
        manifest_or_root: Manifest | str | os.PathLike,
        segment_seconds: float,
        sample_rate: int,
        channel_mode: str,
        channels: int,
        seed: int,
        min_seconds: float | None,
    ) -> None:
        self.manifest = _as_manifest(manifest_or_root)
        self.segment_seconds = float(segment_seconds)
        self.sample_rate = int(sample_rate)
        self.num_samples = _segment_samples(self.segment_seconds, self.sample_rate)
        self.channel_mode = channel_mode
        self.channels = int(channels)
        self.seed = int(seed)
        self.entries = usable_entries(
            self.manifest,
            segment_seconds=self.segment_seconds,
            channel_mode=channel_mode,
            channels=self.channels,
            min_seconds=min_seconds,
        )
        self._by_path = {entry.path: entry for entry in self.entries}

    def _read(self, segment: Segment) -> torch.Tensor:
        """``segment`` at this rate, length and channel mode: ``[C, num_samples]``."""
        entry = self._by_path[segment.path]
        audio = read_segment(
            self.manifest.absolute(entry),
            segment.start_frame,
            self.num_samples,
            self.sample_rate,
            source_rate=entry.sample_rate,
            channels=None if segment.channel is None else (segment.channel,),
            downmix=self.channel_mode == "downmix",
        )
        return torch.from_numpy(audio)


# --------------------------------------------------------------------------- training


class SegmentDataset(_ManifestSegments):
    """Random training segments: a random file, a random start, (mono) a random channel per item.

    Map-style. Item ``index`` of epoch ``e`` on rank ``r`` is a pure function of
    ``(seed, r, e, index)``: its random stream is ``SeedSequence([seed, r, e, index,
    attempt])``. Hence

    * DataLoader workers draw independent segments (different indices) and the result does
      not depend on the number of workers;
    * DistributedDataParallel ranks draw different segments even with identical samplers
      (the rank is in the seed; ``rank=None`` reads ``torch.distributed`` or ``$RANK``);
    * resuming is exact: call :meth:`set_epoch` with the epoch to continue and skip the
      indices already consumed (or restart the epoch).

    :meth:`set_epoch` must be called before the loader's iterator is created; with
    ``persistent_workers=True`` the workers keep the epoch they were started with, so use
    non-persistent workers (the default) or recreate the loader each epoch. Alternatively,
    any index ``>= 0`` is valid, not only ``< len(dataset)``: a sampler that yields a global
    draw counter (``step * batch + i``) needs no ``set_epoch`` at all, works with persistent
    workers, and resumes exactly from the step.

    A draw picks a file with probability proportional to its duration (every second of audio
    equally likely), a start frame uniformly among those whose segment fits, and for
    ``'mono'`` a channel uniformly. A read that fails (:class:`AudioReadError`: corrupt,
    vanished, NaN/Inf) is logged, counted in :attr:`read_failures`, and replaced by the next
    draw of the same item (``attempt + 1``); a file that fails ``max_failures_per_file`` times
    is dropped for the rest of that process. Only ``max_attempts`` failures in a row for one
    item raise (then the data are broken, not one file).

    Args:
        manifest_or_root: a :class:`Manifest` (e.g. ``split_manifest(...).train``) or a
            directory to scan.
        segment_seconds: item length in seconds.
        sample_rate: output rate in Hz; items have ``T = round(segment_seconds * sample_rate)``.
        channel_mode: ``'mono'``, ``'all'`` or ``'downmix'``.
        channels: 1 for ``'mono'``/``'downmix'``; the required count for ``'all'``.
        seed: base seed.
        min_seconds: files shorter than this are skipped (default: ``segment_seconds``).
        items_per_epoch: ``len(dataset)``; default: total usable duration / segment length.
        rank: distributed rank mixed into the seed (default: from ``torch.distributed``/``$RANK``).
        max_attempts: failed draws in a row tolerated for one item.
        max_failures_per_file: failures after which a file is dropped in this process.

    Returns (``dataset[i]``): float32 tensor ``[C, T]``.
    """

    def __init__(
        self,
        manifest_or_root: Manifest | str | os.PathLike,
        segment_seconds: float = 1.0,
        sample_rate: int = SAMPLE_RATE,
        channel_mode: str = "mono",
        channels: int = 1,
        seed: int = 0,
        *,
        min_seconds: float | None = None,
        items_per_epoch: int | None = None,
        rank: int | None = None,
        max_attempts: int = 20,
        max_failures_per_file: int = 3,
    ) -> None:
        super().__init__(manifest_or_root, segment_seconds, sample_rate, channel_mode, channels, seed, min_seconds)
        total_seconds = sum(entry.duration_seconds for entry in self.entries)
        self.items_per_epoch = (
            int(items_per_epoch) if items_per_epoch is not None else max(1, int(total_seconds // self.segment_seconds))
        )
        if self.items_per_epoch <= 0:
            raise UserError(f"items_per_epoch={items_per_epoch}: must be > 0")
        self.rank = _default_rank() if rank is None else int(rank)
        self.epoch = 0
        self.max_attempts = int(max_attempts)
        self.max_failures_per_file = int(max_failures_per_file)
        self._weights = np.array([entry.duration_seconds for entry in self.entries], dtype=np.float64)
        # One counter slot per process (0: the main process, 1 + worker id: DataLoader
        # workers), in shared memory so the main process sees the workers' counts.
        self._failure_counts = torch.zeros(_MAX_WORKER_SLOTS, dtype=torch.int64).share_memory_()
        self._failures_by_file: Counter[str] = Counter()

    def __len__(self) -> int:
        return self.items_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws ``dataset[i]`` returns (call before iterating a loader)."""
        self.epoch = int(epoch)

    @property
    def read_failures(self) -> int:
        """Reads that failed and were replaced, over the main process and all its workers."""
        return int(self._failure_counts.sum())

    def draw(self, index: int, attempt: int = 0) -> Segment:
        """The segment of item ``index`` (this epoch and rank), ``attempt`` = retries so far."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.rank, self.epoch, int(index), attempt]))
        cumulative = np.cumsum(self._weights)
        if cumulative[-1] <= 0:
            raise AudioReadError(
                f"every file under {self.manifest.root} failed to read {self.max_failures_per_file} times "
                "in this process; check the data with `audioenc scan`"
            )
        file_index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        entry = self.entries[min(file_index, len(self.entries) - 1)]
        start = int(rng.integers(0, _max_start(entry, self.num_samples, self.sample_rate) + 1))
        channel = int(rng.integers(0, entry.channels)) if self.channel_mode == "mono" else None
        return Segment(path=entry.path, start_frame=start, channel=channel)

    def _record_failure(self, segment: Segment, error: Exception) -> None:
        worker = torch.utils.data.get_worker_info()
        slot = 0 if worker is None else 1 + worker.id % (_MAX_WORKER_SLOTS - 1)
        self._failure_counts[slot] += 1
        self._failures_by_file[segment.path] += 1
        dropped = self._failures_by_file[segment.path] >= self.max_failures_per_file
        LOGGER.warning(
            "read failed, drawing another segment (failure %d of this dataset): %s%s",
            self.read_failures,
            error,
            f"; {segment.path} failed {self._failures_by_file[segment.path]} times and is dropped in this process"
            if dropped
            else "",
        )
        if dropped:
            position = next(i for i, entry in enumerate(self.entries) if entry.path == segment.path)
            self._weights[position] = 0.0

    def __getitem__(self, index: int) -> torch.Tensor:
        for attempt in range(self.max_attempts):
            segment = self.draw(index, attempt)
            try:
                return self._read(segment)
            except AudioReadError as error:
                self._record_failure(segment, error)
        raise AudioReadError(
            f"item {index}: {self.max_attempts} draws in a row failed to read under {self.manifest.root}; "
            "the data look broken, not one file: run `audioenc scan` on it"
        )


# --------------------------------------------------------------------------- validation / test


class FixedSegmentDataset(_ManifestSegments):
    """Fixed segments for validation or test: chosen once from a seed, identical every epoch and run.

    Map-style. Segment ``i`` comes from file ``order[i mod n_files]`` where ``order`` is a
    seeded permutation of the usable files (so segments spread over all files before any file
    repeats), with a uniformly drawn start and (``'mono'``) channel; the random stream is
    ``SeedSequence([seed, crc32(name)])``. The chosen list is stored in the manifest cache file
    under a key built from the settings, together with each file's size and mtime; a later run
    reuses it, and recomputes it (with a warning) if a file changed. The selection depends only
    on the seed and the files, so a lost cache gives the same segments.

    A segment that fails to read at evaluation time is logged, counted in
    :attr:`read_failures`, and replaced by the next segment of the list that reads, so a run
    goes on; the count tells that the numbers were computed on a substitute.

    Args:
        manifest_or_root: a :class:`Manifest` (e.g. ``split_manifest(...).valid``) or a directory.
        num_segments: number of fixed segments.
        segment_seconds, sample_rate, channel_mode, channels, min_seconds: as in
            :class:`SegmentDataset`.
        seed: selects the segments.
        name: ``'valid'``, ``'test'``, ...; part of the seed and of the storage key.

    Returns (``dataset[i]``): float32 tensor ``[C, T]``, ``T = round(segment_seconds * sample_rate)``.
    """

    def __init__(
        self,
        manifest_or_root: Manifest | str | os.PathLike,
        num_segments: int = 64,
        segment_seconds: float = 1.0,
        sample_rate: int = SAMPLE_RATE,
        channel_mode: str = "mono",
        channels: int = 1,
        seed: int = 0,
        *,
        min_seconds: float | None = None,
        name: str = "valid",
    ) -> None:
        if num_segments <= 0:
            raise UserError(f"num_segments={num_segments}: must be > 0")
        super().__init__(manifest_or_root, segment_seconds, sample_rate, channel_mode, channels, seed, min_seconds)
        self.name = name
        self.read_failures = 0
        self.segments = self._load_or_choose(int(num_segments), min_seconds)

    def _choose(self, num_segments: int) -> tuple[Segment, ...]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(self.name.encode())]))
        files = sorted(self.entries, key=lambda entry: entry.path)
        order = rng.permutation(len(files))
        segments = []
        for position in range(num_segments):
            entry = files[int(order[position % len(files)])]
            start = int(rng.integers(0, _max_start(entry, self.num_samples, self.sample_rate) + 1))
            channel = int(rng.integers(0, entry.channels)) if self.channel_mode == "mono" else None
            segments.append(Segment(path=entry.path, start_frame=start, channel=channel))
        return tuple(segments)

    def _load_or_choose(self, num_segments: int, min_seconds: float | None) -> tuple[Segment, ...]:
        settings = {
            "name": self.name,
            "seed": self.seed,
            "num_segments": num_segments,
            "segment_seconds": self.segment_seconds,
            "sample_rate": self.sample_rate,
            "channel_mode": self.channel_mode,
            "channels": self.channels,
            "min_seconds": min_seconds,
        }
        key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        key = f"{self.name}-{key}"
        files = {entry.path: [entry.size, entry.mtime_ns] for entry in sorted(self.entries, key=lambda e: e.path)}
        stored = self.manifest.fixed_segments(key)
        if stored is not None and stored.get("files") == files:
            return tuple(Segment(**record) for record in stored["segments"])
        if stored is not None:
            LOGGER.warning(
                "fixed %s segments stored in %s were chosen from other files (added, removed or "
                "changed since); choosing them again from seed %d",
                self.name,
                self.manifest.cache_path,
                self.seed,
            )
        segments = self._choose(num_segments)
        self.manifest.store_fixed_segments(
            key, {"settings": settings, "files": files, "segments": [asdict(segment) for segment in segments]}
        )
        return segments

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, index: int) -> torch.Tensor:
        for offset in range(len(self.segments)):
            segment = self.segments[(index + offset) % len(self.segments)]
            try:
                return self._read(segment)
            except AudioReadError as error:
                self.read_failures += 1
                LOGGER.error(
                    "fixed %s segment %d failed to read (%s); using the next fixed segment instead "
                    "(%d substitutions so far in this process)",
                    self.name,
                    (index + offset) % len(self.segments),
                    error,
                    self.read_failures,
                )
        raise AudioReadError(
            f"none of the {len(self.segments)} fixed {self.name} segments under "
            f"{self.manifest.root} can be read; run `audioenc scan` on it"
        )


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Splits:
    """Train / validation / test manifests (disjoint; each a subset of one scan)."""

    train: Manifest
    valid: Manifest
    test: Manifest


def _group_of(entry: FileEntry, by: str) -> str:
    return {"file": entry.path, "recording": entry.recording, "scene_class": entry.scene_class}[by]


def split_manifest(
    manifest: Manifest,
    *,
    by: str = "file",
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    valid_groups: tuple[str, ...] = (),
    test_groups: tuple[str, ...] = (),
) -> Splits:
    """Split the usable files of ``manifest`` into train / valid / test, keeping groups whole.

    ``by`` chooses what is never divided between splits:

    * ``'file'`` (default): each file is its own group.
    * ``'recording'``: files of one recording (chunks of one long take, see
      :mod:`audioenc.audio.manifest` for how the recording is named) stay in one split, so
      a model is validated on recordings it never heard.
    * ``'scene_class'``: whole scene classes are held out, to validate on unseen kinds of
      scene (e.g. ``valid_groups=("Park",), test_groups=("Woodland",)``).

    Groups listed in ``valid_groups`` / ``test_groups`` go to that split and replace its
    fraction. The other groups are ordered by ``sha1(f"{seed}:{group}")`` — independent of
    the listing order, so a group keeps its place when others are added — and the first
    ``max(1, round(fraction * n))`` go to valid, the next ones to test (a fraction of 0
    gives an empty split), the rest to train.

    Raises:
        ValueError: unknown ``by`` or group, or too few groups for the asked splits (the
            message says how many there are).
    """
    if by not in SPLIT_BY:
        raise UserError(f"by={by!r}: choose one of {SPLIT_BY}")
    for label, fraction in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise UserError(f"{label}={fraction}: must be in [0, 1)")
    usable = require_usable(manifest)
    groups = sorted({_group_of(entry, by) for entry in usable})
    unknown = sorted((set(valid_groups) | set(test_groups)) - set(groups))
    if unknown:
        raise UserError(f"groups {unknown} (by={by!r}) not found under {manifest.root}; there are: {groups}")
    if set(valid_groups) & set(test_groups):
        raise UserError(f"groups {sorted(set(valid_groups) & set(test_groups))} given for both valid and test")
    free = sorted(
        (group for group in groups if group not in valid_groups and group not in test_groups),
        key=lambda group: hashlib.sha1(f"{seed}:{group}".encode()).hexdigest(),
    )

    def count(fraction: float, explicit: tuple[str, ...]) -> int:
        if explicit or fraction == 0.0:
            return 0
        return max(1, round(fraction * len(groups)))

    n_valid, n_test = count(valid_fraction, valid_groups), count(test_fraction, test_groups)
    if n_valid + n_test >= len(free):
        raise UserError(
            f"{len(groups)} group(s) by {by!r} under {manifest.root} cannot give {n_valid} valid + "
            f"{n_test} test group(s) and leave one for training; add data, lower the fractions, "
            "or split by 'file'"
        )
    valid = set(valid_groups) | set(free[:n_valid])
    test = set(test_groups) | set(free[n_valid : n_valid + n_test])
    assignment = {"train": [], "valid": [], "test": []}
    for entry in usable:
        group = _group_of(entry, by)
        assignment["valid" if group in valid else "test" if group in test else "train"].append(entry)
    return Splits(
        train=manifest.subset(assignment["train"]),
        valid=manifest.subset(assignment["valid"]),
        test=manifest.subset(assignment["test"]),
    )


@dataclass(frozen=True)
class DataSplits:
    """Datasets built by :func:`build_datasets` (``valid``/``test`` are ``None`` for empty splits)."""

    train: SegmentDataset
    valid: FixedSegmentDataset | None
    test: FixedSegmentDataset | None
    splits: Splits


def build_datasets(
    manifest_or_root: Manifest | str | os.PathLike,
    *,
    segment_seconds: float = 1.0,
    sample_rate: int = SAMPLE_RATE,
    channel_mode: str = "mono",
    channels: int = 1,
    seed: int = 0,
    split_by: str = "file",
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    valid_groups: tuple[str, ...] = (),
    test_groups: tuple[str, ...] = (),
    valid_segments: int = 64,
    test_segments: int = 64,
    min_seconds: float | None = None,
    items_per_epoch: int | None = None,
    rank: int | None = None,
) -> DataSplits:
    """Scan, keep the files these settings can use, split, and build the three datasets.

    Files that are too short or (``'all'``) have the wrong channel count are removed
    *before* splitting, so no split ends up with only unusable files. Arguments are those of
    :func:`split_manifest`, :class:`SegmentDataset` and :class:`FixedSegmentDataset`.
    """
    manifest = _as_manifest(manifest_or_root)
    entries = usable_entries(
        manifest,
        segment_seconds=segment_seconds,
        channel_mode=channel_mode,
        channels=channels,
        min_seconds=min_seconds,
    )
    splits = split_manifest(
        manifest.subset(entries),
        by=split_by,
        valid_fraction=valid_fraction,
        test_fraction=test_fraction,
        seed=seed,
        valid_groups=valid_groups,
        test_groups=test_groups,
    )
    common = dict(
        segment_seconds=segment_seconds,
        sample_rate=sample_rate,
        channel_mode=channel_mode,
        channels=channels,
        seed=seed,
        min_seconds=min_seconds,
    )
    train = SegmentDataset(splits.train, items_per_epoch=items_per_epoch, rank=rank, **common)
    valid = FixedSegmentDataset(splits.valid, valid_segments, name="valid", **common) if splits.valid.entries else None
    test = FixedSegmentDataset(splits.test, test_segments, name="test", **common) if splits.test.entries else None
    return DataSplits(train=train, valid=valid, test=test, splits=splits)


def default_eigenscape_corpus(cache_dir: str | os.PathLike | None = None) -> Path:
    """The embedded 32-channel eigenscape-like corpus, generated on first use (see
    :func:`audioenc.audio.synth_scenes.default_eigenscape_corpus`)."""
    return synth_scenes.default_eigenscape_corpus(cache_dir)
