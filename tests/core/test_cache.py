"""The content-addressed array cache (audioenc.core.cache).

References: the key rebuilt by hand from its documented recipe (sha256 of the canonical JSON),
clip hashes from ``hashlib`` over the file's bytes, sizes from ``os.stat``, and counts of how many
times the compute function was called.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import warnings

import numpy as np
import pytest

from audioenc.core import cache as cache_module
from audioenc.core.cache import (
    FORMAT,
    ArrayCache,
    CacheStats,
    arrays_dir,
    caching_disabled,
    caching_enabled,
    canonical_json,
    clip_hash,
    folder_bytes,
)

FINGERPRINT = {"config": {"n_mels": 64, "f_max": None, "f_min": 20.0}, "version": 1}


class Counted:
    """A compute function that returns a fixed float32 array and counts its calls."""

    def __init__(self, seed: int = 0) -> None:
        self.calls = 0
        self.array = np.random.default_rng(seed).standard_normal((8, 13)).astype(np.float32)

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return self.array.copy()


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clips" / "a.wav"
    path.parent.mkdir()
    path.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    return path


def test_a_second_fetch_reads_the_same_bits_from_the_documented_place(tmp_path, clip):
    compute = Counted()
    cache = ArrayCache("logmel", FINGERPRINT, root=tmp_path / "arrays", enabled=True)
    first = cache.fetch(clip, compute)
    second = ArrayCache("logmel", FINGERPRINT, root=tmp_path / "arrays", enabled=True)
    again = second.fetch(clip, compute)
    assert compute.calls == 1
    assert again.dtype == np.float32 and again.tobytes() == first.tobytes() == compute.array.tobytes()
    assert again.flags.writeable  # a consumer may work on it like on a computed array
    # The key, rebuilt from the module docstring's recipe.
    content = hashlib.sha256(clip.read_bytes()).hexdigest()
    document = {"format": FORMAT, "namespace": "logmel", "settings": FINGERPRINT, "clip": content}
    key = hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    ).hexdigest()
    entry = tmp_path / "arrays" / "logmel" / key[:2] / f"{key}.npz"
    assert second.entry_path(second.key(content)) == entry and entry.is_file()
    assert [path.name for path in (tmp_path / "arrays").rglob("*") if path.is_file()] == [entry.name]  # no temporary
    assert (cache.stats.hits, cache.stats.misses, cache.stats.bytes) == (0, 1, entry.stat().st_size)
    assert (second.stats.hits, second.stats.misses, second.stats.bytes) == (1, 0, entry.stat().st_size)


def test_another_fingerprint_or_namespace_is_a_miss(tmp_path, clip):
    compute = Counted()
    root = tmp_path / "arrays"
    ArrayCache("logmel", FINGERPRINT, root=root, enabled=True).fetch(clip, compute)
    changed = {**FINGERPRINT, "config": {**FINGERPRINT["config"], "f_min": 20.5}}
    ArrayCache("logmel", changed, root=root, enabled=True).fetch(clip, compute)
    ArrayCache("crepe-tiny", FINGERPRINT, root=root, enabled=True).fetch(clip, compute)
    assert compute.calls == 3
    assert len(list(root.rglob("*.npz"))) == 3


def test_changed_bytes_under_the_same_name_and_length_are_a_miss(tmp_path, clip):
    compute = Counted()
    root = tmp_path / "arrays"
    ArrayCache("logmel", FINGERPRINT, root=root, enabled=True).fetch(clip, compute)
    before = clip.stat()
    data = bytearray(clip.read_bytes())
    data[100] ^= 0xFF  # one byte flipped: same size
    clip.write_bytes(bytes(data))
    # A coarse file-system clock can give both writes one mtime; a real edit moves it on.
    os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert clip_hash(clip) == hashlib.sha256(bytes(data)).hexdigest()
    cache = ArrayCache("logmel", FINGERPRINT, root=root, enabled=True)
    cache.fetch(clip, compute)
    assert compute.calls == 2 and (cache.stats.hits, cache.stats.misses) == (0, 1)


@pytest.mark.parametrize("damage", ["truncated", "bit flip", "not a zip", "empty", "bare npy"])
def test_a_damaged_entry_is_a_miss_and_is_rewritten(tmp_path, clip, damage):
    compute = Counted()
    root = tmp_path / "arrays"
    ArrayCache("logmel", FINGERPRINT, root=root, enabled=True).fetch(clip, compute)
    (entry,) = root.rglob("*.npz")
    good = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(good[: len(good) // 2])
    elif damage == "bit flip":  # inside the array's data: only the zip's CRC-32 tells
        data = bytearray(good)
        data[good.index(compute.array.tobytes()[:16]) + 40] ^= 0x01
        entry.write_bytes(bytes(data))
    elif damage == "not a zip":
        entry.write_bytes(b"\x00" * 64)
    elif damage == "empty":
        entry.write_bytes(b"")
    else:
        with open(entry, "wb") as handle:
            np.save(handle, np.zeros(3))
    cache = ArrayCache("logmel", FINGERPRINT, root=root, enabled=True)
    array = cache.fetch(clip, compute)
    assert array.tobytes() == compute.array.tobytes() and compute.calls == 2
    assert (cache.stats.hits, cache.stats.misses, cache.stats.corrupt) == (0, 1, 1)
    assert entry.read_bytes() == good  # rewritten whole
    assert "1 damaged entries recomputed" in cache.stats.summary()
    healed = ArrayCache("logmel", FINGERPRINT, root=root, enabled=True)
    healed.fetch(clip, compute)
    assert compute.calls == 2 and healed.stats.hits == 1


def test_disabled_reads_and_writes_nothing(tmp_path, clip, monkeypatch):
    root = tmp_path / "arrays"
    compute = Counted()
    for _ in range(2):
        cache = ArrayCache("logmel", FINGERPRINT, root=root, enabled=False)
        assert cache.fetch(clip, compute).tobytes() == compute.array.tobytes()
    assert compute.calls == 2 and not root.exists()
    assert (cache.stats.hits, cache.stats.misses) == (
        0,
        1,
    ) and cache.stats.summary() == "1 clips, cache off (every array computed)"
    # The environment switch (what `audioenc workflow --no-cache` sets) turns default caches off.
    monkeypatch.delenv("AUDIOENC_NO_CACHE", raising=False)
    assert caching_enabled()
    with caching_disabled():
        assert not caching_enabled() and os.environ["AUDIOENC_NO_CACHE"] == "1"
        assert ArrayCache("logmel", FINGERPRINT, root=root).enabled is False
        ArrayCache("logmel", FINGERPRINT, root=root).fetch(clip, compute)
    assert "AUDIOENC_NO_CACHE" not in os.environ and caching_enabled()
    assert not root.exists()
    monkeypatch.setenv("AUDIOENC_NO_CACHE", "0")
    assert ArrayCache("logmel", FINGERPRINT, root=root).enabled is True


def test_an_unwritable_cache_warns_once_and_computes_on(tmp_path, clip):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = ArrayCache("logmel", FINGERPRINT, root=blocker / "arrays", enabled=True)
    compute = Counted()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert cache.fetch(clip, compute).tobytes() == compute.array.tobytes()
    assert compute.calls == 3 and cache.stats.misses == 3
    assert len(caught) == 1 and "cannot write" in str(caught[0].message) and "AUDIOENC_CACHE" in str(caught[0].message)
    assert cache.stats.write_error and "not written" in cache.stats.summary()


def test_a_full_disk_warns_once_and_leaves_no_temporary(tmp_path, clip, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module.np, "savez", no_space)
    root = tmp_path / "arrays"
    cache = ArrayCache("logmel", FINGERPRINT, root=root, enabled=True)
    compute = Counted()
    with pytest.warns(RuntimeWarning, match="No space left on device") as caught:
        cache.fetch(clip, compute)
        cache.fetch(clip, compute)
    assert len(caught) == 1 and compute.calls == 2
    assert [path for path in root.rglob("*") if path.is_file()] == []


def test_clip_hash_is_the_sha256_of_the_bytes_and_memoised(tmp_path, clip, monkeypatch):
    expected = hashlib.sha256(clip.read_bytes()).hexdigest()
    assert clip_hash(clip) == expected
    # Memoised per (path, size, mtime): a second call does not read the file again.
    monkeypatch.setattr(cache_module, "open", lambda *a, **k: pytest.fail("read twice"), raising=False)
    assert clip_hash(str(clip)) == expected
    monkeypatch.undo()
    clip.write_bytes(b"other bytes, other length")
    assert clip_hash(clip) == hashlib.sha256(b"other bytes, other length").hexdigest()


def test_location_follows_the_data_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOENC_CACHE", str(tmp_path / "c"))
    assert arrays_dir() == tmp_path / "c" / "arrays"
    assert ArrayCache("logmel", FINGERPRINT).folder == tmp_path / "c" / "arrays" / "logmel"
    monkeypatch.delenv("AUDIOENC_CACHE")
    assert arrays_dir() == cache_module.Path.home() / ".cache" / "audioenc" / "arrays"


def test_fingerprints_and_namespaces_are_checked_early():
    with pytest.raises(ValueError):
        ArrayCache("logmel", {"f_max": float("nan")})
    with pytest.raises(TypeError):
        ArrayCache("logmel", {"path": object()})
    with pytest.raises(ValueError, match="namespace"):
        ArrayCache("../escape", FINGERPRINT)
    assert canonical_json({"b": 1, "a": [1.5, None]}) == '{"a":[1.5,null],"b":1}'


def test_stats_summary_and_folder_size(tmp_path):
    stats = CacheStats(location="/x/arrays", hits=480, misses=20, bytes=12_345_678)
    assert stats.summary() == "500 clips, 480 from the cache (12.3 MB at /x/arrays)"
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one").write_bytes(b"x" * 10)
    (tmp_path / "a" / "b" / "two").write_bytes(b"y" * 32)
    assert folder_bytes(tmp_path) == 42 and folder_bytes(tmp_path / "absent") == 0
