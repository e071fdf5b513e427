"""The pieces of the frozen-embedding cache: what an entry holds, and the content hashes in its key.

:func:`audioenc.timing.encoders.encoder_embeddings` keeps each clip's embeddings in the array cache
(:class:`audioenc.core.cache.ArrayCache`, namespace :data:`NAMESPACE`) under a key made of the
encoder's fingerprint (:func:`audioenc.timing.encoders.embedding_fingerprint`, built from the
hashes here) and the clip's bytes.

**An entry** is the encoder's raw output for one clip, before the frame grid: one 0-d NumPy record
(:func:`pack_entry`) with the fields

* ``samples`` (int64): the clip's length in samples at the encoder's rate (its duration, for the grid),
* ``timestamps`` (float64 ``[F]``): HEAR timestamps in ms,
* ``embeddings`` (the encoder's dtype, float32, ``[F, E]``).

The grid, the rate checks and the identity test run on what :func:`unpack_entry` returns, the same
code for a hit and a miss, so the frames are the same to the last bit with and without the cache.
A hit skips reading and resampling the clip as well as the encoder.

**Weights** are hashed tensor by tensor (:func:`state_dict_sha256`): name, dtype, shape and bytes of
every entry of the module's ``state_dict`` in order, so one changed weight (in a file of the same
name) changes the key. Files (a HEAR module's code, its weight file, a snapshot's configs) by their
bytes (:func:`file_sha256`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from audioenc.core.cache import clip_hash

NAMESPACE = "embeddings"
"""The array cache's folder for frozen embeddings (``<cache>/arrays/embeddings``)."""

EMBEDDINGS_VERSION = 1
"""Version of the code between a clip file and its cached embeddings (reading, downmix, resampling, the
checks, the entry format). Bump it when that code, or an encoder kind's own code (the codec and CRNN
wrappers, CREPE's network, a snapshot family's ``embed``), gives other numbers for the same weights."""


def state_dict_sha256(module: Any) -> str | None:
    """sha256 (hex) over every ``state_dict`` entry of a torch module, in order: a JSON header
    ``[name, dtype, shape, bytes]`` and then the tensor's bytes (a non-tensor entry: its ``repr``);
    None for an object that is not a torch module."""
    if not isinstance(module, nn.Module):
        return None
    digest = hashlib.sha256()
    for name, value in module.state_dict().items():
        if not isinstance(value, torch.Tensor):
            digest.update(json.dumps([name, "object", repr(value)]).encode() + b"\n")
            continue
        tensor = value.detach().to("cpu").contiguous().reshape(-1)
        header = [name, str(tensor.dtype), list(value.shape), tensor.numel() * tensor.element_size()]
        digest.update(json.dumps(header).encode() + b"\n")
        digest.update(tensor.view(torch.uint8).numpy())
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike | None) -> str | None:
    """sha256 (hex) of a file's bytes (memoised per path, size and mtime: :func:`~audioenc.core.cache.clip_hash`);
    None when ``path`` is None or not a file."""
    if path is None or not os.path.isfile(path):
        return None
    return clip_hash(path)


def library_versions() -> dict[str, str]:
    """The libraries whose numbers reach an entry: libsndfile decodes the clip, soxr resamples it, torch
    and NumPy compute the embeddings."""
    return {
        "libsndfile": sf.__libsndfile_version__,
        "soxr": importlib.metadata.version("soxr"),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def pack_entry(samples: int, embeddings: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """One clip's encoder output as a cache entry (module docstring): ``embeddings [F, E]``,
    ``timestamps [F]`` ms, the clip's ``samples``."""
    embeddings = np.asarray(embeddings)
    timestamps = np.asarray(timestamps, dtype=np.float64)
    frames, size = embeddings.shape
    layout = np.dtype(
        [
            ("samples", "<i8"),
            ("timestamps", "<f8", (frames,)),
            ("embeddings", embeddings.dtype.newbyteorder("<"), (frames, size)),
        ]
    )
    entry = np.zeros((), dtype=layout)
    entry["samples"] = samples
    entry["timestamps"] = timestamps
    entry["embeddings"] = embeddings
    return entry


def unpack_entry(entry: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``(samples, embeddings [F, E], timestamps [F] float64 ms)`` of a :func:`pack_entry` record."""
    return int(entry["samples"]), np.asarray(entry["embeddings"]), np.asarray(entry["timestamps"], dtype=np.float64)


__all__ = [
    "EMBEDDINGS_VERSION",
    "NAMESPACE",
    "file_sha256",
    "library_versions",
    "pack_entry",
    "state_dict_sha256",
    "unpack_entry",
]
