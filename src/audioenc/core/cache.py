"""A content-addressed store of arrays computed from audio clips (log-mel features, frozen embeddings).

**Where.** ``<cache>/arrays/<namespace>/<key[:2]>/<key>.npz``, with ``<cache>`` = ``$AUDIOENC_CACHE``
or ``~/.cache/audioenc`` (:func:`data_cache_dir`, where the generated corpora live too). The
``arrays`` folder can be deleted at any time to reclaim its space: nothing else refers to it.

**Key.** For a ``namespace`` (``"logmel"``, an encoder family), a settings ``fingerprint`` (every
setting and code version the array depends on, as JSON data) and a clip::

    key = sha256( canonical_json({"format": FORMAT, "namespace": ..., "settings": fingerprint,
                                  "clip": sha256(clip file's bytes)}) )

with canonical JSON = sorted keys, no spaces, NaN refused (:func:`canonical_json`). A changed
setting, code version or weight hash in the fingerprint, or a clip whose bytes changed (same name,
same length), gives a new key: a stale entry is never found, only left behind.

**Entries.** One array per entry, in an uncompressed ``.npz`` (a zip: its CRC-32 is checked on every
read, so a truncated or bit-flipped entry is detected), written under a temporary name beside it and
renamed into place (:mod:`audioenc.core.atomic`): a reader never sees half an entry. Entries are not
fsynced (about 4 ms each here): one torn by a power cut fails its CRC and is recomputed.

**Failures never stop a run.** An entry that cannot be read (truncated, corrupt, not a zip) is a
miss: computed again and rewritten (counted in :attr:`CacheStats.corrupt`). An entry that cannot
be written (read-only folder, full disk) turns writing off for that cache with one warning;
reading goes on.

**Off.** ``enabled=False``, or ``AUDIOENC_NO_CACHE=1`` in the environment (set for the length of a
run by :func:`caching_disabled`: ``audioenc workflow --no-cache``): nothing is read or written,
every array is computed.

**Bit-identical.** An entry holds the computed array's exact bytes (npy inside the zip), so results
with and without the cache are the same to the last bit, provided the fingerprint names what the
numbers depend on (callers put their code version and the versions of the libraries that compute
them in it). Not in any key: the CPU's vector kernels. A cache folder shared by machines whose
kernels round differently can hand one machine the other's last bits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audioenc.core.atomic import temporary_beside

FORMAT = 1
"""Entry format and key recipe; bumped when either changes (older entries are then never found)."""

DISABLE_VARIABLE = "AUDIOENC_NO_CACHE"
"""Environment variable: ``1`` (or any value but ``""`` and ``0``) turns every default cache off."""

_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ARRAY_NAME = "array"
_READ_FAILURES = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)
"""What a damaged entry raises in ``np.load`` (torn zip, bad CRC, wrong member, object array)."""

_clip_hashes: dict[tuple[str, int, int], str] = {}


def data_cache_dir() -> Path:
    """The data cache: ``$AUDIOENC_CACHE`` if set, else ``~/.cache/audioenc``."""
    override = os.environ.get("AUDIOENC_CACHE")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "audioenc"


def arrays_dir() -> Path:
    """Where the array cache keeps its entries: ``<data cache>/arrays``."""
    return data_cache_dir() / "arrays"


def caching_enabled() -> bool:
    """Whether a cache made without an explicit ``enabled`` reads and writes (:data:`DISABLE_VARIABLE`)."""
    return os.environ.get(DISABLE_VARIABLE, "") in ("", "0")


@contextlib.contextmanager
def caching_disabled() -> Iterator[None]:
    """Every default cache off inside the block, in this process and the workers it starts (the
    environment is how both learn it); the previous setting is restored after."""
    previous = os.environ.get(DISABLE_VARIABLE)
    os.environ[DISABLE_VARIABLE] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[DISABLE_VARIABLE]
        else:
            os.environ[DISABLE_VARIABLE] = previous


def canonical_json(data: Any) -> str:
    """``data`` as one canonical JSON string (sorted keys, no spaces, ASCII); NaN and non-JSON
    values are refused (ValueError / TypeError), so two equal fingerprints always hash alike."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def clip_hash(path: str | os.PathLike) -> str:
    """sha256 (hex) of the file's bytes, memoised in this process per (path, size, mtime_ns).

    A file rewritten with new bytes gets a new hash as soon as its size or modification time
    changes; a file system whose clock ticks coarser than two same-size writes in one process
    could hide the second write from the memo (a new process always hashes afresh).

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path).resolve()
    status = path.stat()
    memo_key = (str(path), status.st_size, status.st_mtime_ns)
    known = _clip_hashes.get(memo_key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    _clip_hashes[memo_key] = digest.hexdigest()
    return _clip_hashes[memo_key]


@dataclass
class CacheStats:
    """What one cache did in a run, for logs and reports.

    Attributes:
        location: the arrays folder (``<data cache>/arrays``).
        enabled: False when the cache was off (every array computed, nothing stored).
        hits: arrays read from the cache.
        misses: arrays computed (absent, damaged, or the cache off).
        corrupt: damaged entries found (each also a miss, and rewritten).
        bytes: bytes on disk of the entries read or written.
        write_error: why writing was turned off (read-only folder, full disk), else ``""``.
    """

    location: str
    enabled: bool = True
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    bytes: int = 0
    write_error: str = ""

    @property
    def lookups(self) -> int:
        """Arrays asked for: ``hits + misses``."""
        return self.hits + self.misses

    def summary(self, noun: str = "clips") -> str:
        """``"500 clips, 480 from the cache (12.3 MB at /root/.cache/audioenc/arrays)"``, or what
        was off and why."""
        if not self.enabled:
            return f"{self.lookups} {noun}, cache off (every array computed)"
        text = f"{self.lookups} {noun}, {self.hits} from the cache ({self.bytes / 1e6:.1f} MB at {self.location})"
        if self.corrupt:
            text += f"; {self.corrupt} damaged entries recomputed"
        if self.write_error:
            text += f"; not written: {self.write_error}"
        return text


class ArrayCache:
    """Arrays of one kind, keyed by settings and clip content (the module docstring has the layout).

    Usage::

        cache = ArrayCache("logmel", {"config": asdict(config), "version": 3})
        log_mel = cache.fetch(path, lambda: compute_log_mel(read_clip(path, rate), config))
        print(cache.stats.summary())

    Args:
        namespace: the kind of array (lower-case letters, digits, ``_.-``), a folder of its own.
        fingerprint: JSON data naming everything the arrays depend on besides the clip.
        root: the arrays folder (default :func:`arrays_dir`).
        enabled: False: compute every array, read and write nothing (default :func:`caching_enabled`).
    """

    def __init__(
        self,
        namespace: str,
        fingerprint: Mapping[str, Any],
        *,
        root: str | os.PathLike | None = None,
        enabled: bool | None = None,
    ) -> None:
        if not _NAMESPACE.match(namespace):
            raise ValueError(f"cache namespace {namespace!r}: use lower-case letters, digits, '_', '.', '-'")
        root = Path(root) if root is not None else arrays_dir()
        self.folder = root / namespace
        self._settings = json.loads(canonical_json(dict(fingerprint)))  # refused here, not at the first clip
        self.enabled = caching_enabled() if enabled is None else enabled
        self.stats = CacheStats(location=str(root), enabled=self.enabled)

    def key(self, content_hash: str) -> str:
        """The entry key of a clip whose bytes hash to ``content_hash`` (module docstring)."""
        document = {"format": FORMAT, "namespace": self.folder.name, "settings": self._settings, "clip": content_hash}
        return hashlib.sha256(canonical_json(document).encode("ascii")).hexdigest()

    def entry_path(self, key: str) -> Path:
        """``<root>/<namespace>/<key[:2]>/<key>.npz`` (256 sub-folders keep each folder small)."""
        return self.folder / key[:2] / f"{key}.npz"

    def fetch(self, clip: str | os.PathLike, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The array of ``clip``: read from the cache, else ``compute()`` (then stored).

        An exception from ``compute`` passes through; nothing is stored or counted for it.
        """
        if not self.enabled:
            array = compute()
            self.stats.misses += 1
            return array
        path = self.entry_path(self.key(clip_hash(clip)))
        cached = self._read(path)
        if cached is not None:
            self.stats.hits += 1
            return cached
        array = compute()
        self.stats.misses += 1
        self._write(path, array)
        return array

    def _read(self, path: Path) -> np.ndarray | None:
        """The entry's array, or None when absent or damaged (counted in ``stats.corrupt``)."""
        try:
            entry = np.load(path, allow_pickle=False)
            if not isinstance(entry, np.lib.npyio.NpzFile):  # a bare .npy array: not written here
                raise ValueError(f"{path}: not an .npz entry")
            with entry:
                array = entry[_ARRAY_NAME]
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        except _READ_FAILURES:
            self.stats.corrupt += 1
            return None
        self.stats.bytes += size
        return array

    def _write(self, path: Path, array: np.ndarray) -> None:
        """Store ``array`` at ``path`` atomically; on a write failure, stop writing, with one warning."""
        if self.stats.write_error:
            return
        try:
            tmp = temporary_beside(path)
            try:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **{_ARRAY_NAME: array})
                os.replace(tmp, path)  # atomic; a torn entry is caught by its CRC, so no fsync
            finally:
                tmp.unlink(missing_ok=True)
            self.stats.bytes += path.stat().st_size
        except OSError as error:
            self.stats.write_error = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"array cache {self.folder}: cannot write an entry ({self.stats.write_error}); "
                "arrays are computed without being stored for the rest of this run. Point AUDIOENC_CACHE "
                "at a writable folder with free space, or turn the cache off (--no-cache)",
                RuntimeWarning,
                stacklevel=3,
            )


def folder_bytes(folder: str | os.PathLike) -> int:
    """Bytes of every file under ``folder`` (0 when absent): the cache's size on disk."""
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # removed while walking (another run's temporary)
                total += os.stat(os.path.join(directory, name)).st_size
    return total


__all__ = [
    "ArrayCache",
    "CacheStats",
    "DISABLE_VARIABLE",
    "FORMAT",
    "arrays_dir",
    "caching_disabled",
    "caching_enabled",
    "canonical_json",
    "clip_hash",
    "data_cache_dir",
    "folder_bytes",
]
