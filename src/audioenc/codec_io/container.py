"""The encoded container on disk: a frame-block writer and a checking block reader.

One tensor, ``latents`` ``[1, D, F]`` float32 (continuous model) or ``codes`` ``[1, K, F]`` int16
(RVQ, ``K`` codebooks used), plus the string metadata of :class:`~audioenc.codec_io.header.EncodedHeader`.
``.safetensors`` keeps the metadata in ``__metadata__`` and is written through a memory map;
``.npz`` is an uncompressed zip with a ``metadata`` entry (a JSON string; no pickle) and a
Fortran-order ``.npy`` tensor entry written frame block after frame block. Both are written under a
temporary name and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from safetensors import SafetensorError as _SafetensorError

from audioenc.codec_io.header import EncodedHeader
from audioenc.codec_io.messages import _REENCODE
from audioenc.core.atomic import commit, temporary_beside
from audioenc.errors import UserError, one_line

CONTAINER_SUFFIXES = (".safetensors", ".npz")


def _check_container_suffix(path: Path) -> None:
    if path.suffix not in CONTAINER_SUFFIXES:
        raise UserError(f"{path}: the encoded file must end in {' or '.join(CONTAINER_SUFFIXES)}.")


def check_encoded_output(path: str | os.PathLike) -> None:
    """An encoded file ``encode`` may write: a container suffix, and not an existing folder."""
    path = Path(path)
    _check_container_suffix(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; OUT must be a file name ending in {' or '.join(CONTAINER_SUFFIXES)}.")


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
        self.tmp = temporary_beside(path, keep_suffix=True)
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
                "dtype": _SAFETENSORS_DTYPES[self.dtype],
                "shape": list(self.shape),
                "data_offsets": [0, nbytes],
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
            raise UserError(
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
            commit(self.tmp, self.path)
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

    Opening checks what can be checked without a model: the header (:meth:`EncodedHeader.from_strings`),
    the tensor's presence, rank ``[1, rows, num_frames]``, dtype (floating-point latents, integer
    codes) and that the file holds all of its bytes. Every failure is a :class:`UserError` naming
    the file. The values themselves are checked by :func:`decode_file` (they need the model).

    Attributes:
        header: the :class:`EncodedHeader`.
        shape: ``(1, rows, F)``.
        dtype: the tensor's numpy dtype (native byte order blocks are returned by :meth:`read`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        _check_container_suffix(self.path)
        if not self.path.is_file():
            if self.path.is_dir():
                raise UserError(
                    f"{self.path} is a folder; IN must be a .safetensors or .npz written by `audioenc encode`."
                )
            raise FileNotFoundError(f"No encoded file at {self.path}.")
        self._zip = None
        self._entry = None
        self._whole: np.ndarray | None = None
        self._position = 0
        try:
            if self.path.suffix == ".safetensors":
                self._open_safetensors()
            else:
                self._open_npz()
        except BaseException:
            self.close()
            raise

    def _open_safetensors(self) -> None:
        from safetensors import safe_open

        try:
            self._handle = safe_open(str(self.path), framework="np")
            metadata = self._handle.metadata() or {}
        except Exception as error:  # safetensors raises its own SafetensorError for bad files
            raise UserError(
                f"{self.path}: not a readable safetensors file ({one_line(error)}): it is truncated or damaged. "
                + _REENCODE
            ) from error
        self.header = EncodedHeader.from_strings(metadata, str(self.path))
        if self.header.tensor_name not in self._handle.keys():  # noqa: SIM118 (safe_open has no __contains__)
            raise UserError(f"{self.path}: no {self.header.tensor_name!r} tensor; the file is damaged. {_REENCODE}")
        self._slice = self._handle.get_slice(self.header.tensor_name)
        self.shape = tuple(self._slice.get_shape())
        stored = self._slice.get_dtype()
        if stored not in _SAFETENSORS_READ_DTYPES:
            raise UserError(
                f"{self.path}: tensor {self.header.tensor_name!r} has dtype {stored}; "
                f"{_EXPECTED_DTYPE[self.header.kind]}. {_REENCODE}"
            )
        self.dtype = np.dtype(_SAFETENSORS_READ_DTYPES[stored])
        self._check_shape()
        self._check_dtype()

    def _open_npz(self) -> None:
        try:
            self._zip = zipfile.ZipFile(self.path, "r")
            with self._zip.open("metadata.npy") as entry:
                metadata = json.loads(str(np.lib.format.read_array(entry, allow_pickle=False)))
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, zlib.error) as error:
            raise UserError(
                f"{self.path}: not an audioenc .npz (no readable metadata entry: {one_line(error)}); the file is "
                f"truncated, damaged or not from `audioenc encode`. {_REENCODE}"
            ) from error
        self.header = EncodedHeader.from_strings(metadata, str(self.path))
        name = f"{self.header.tensor_name}.npy"
        if name not in self._zip.namelist():
            raise UserError(f"{self.path}: no {name} entry; the file is damaged. {_REENCODE}")
        try:
            self._entry = self._zip.open(name)
            version = np.lib.format.read_magic(self._entry)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(self._entry)
            self._data_start = self._entry.tell()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as error:
            raise UserError(
                f"{self.path}: the {name} entry cannot be read ({one_line(error)}); the file is damaged. " + _REENCODE
            ) from error
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._check_shape()
        self._check_dtype()
        # A cut or padded entry: compare the bytes it holds with what its shape and dtype need, before
        # any of it is read (a forged shape could otherwise make the C-order path allocate terabytes).
        needed = self._data_start + math.prod(self.shape) * self.dtype.itemsize
        held = self._zip.getinfo(name).file_size
        if held != needed:
            raise UserError(
                f"{self.path}: the {name} entry holds {held} bytes but shape {self.shape} of {self.dtype} needs "
                f"{needed}: the file is truncated or damaged. {_REENCODE}"
            )
        if not fortran_order:
            try:
                with self._zip.open(name) as entry:
                    self._whole = np.lib.format.read_array(entry, allow_pickle=False)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as error:
                raise UserError(
                    f"{self.path}: the {name} entry cannot be read ({one_line(error)}); the file is "
                    f"damaged. {_REENCODE}"
                ) from error

    def _check_shape(self) -> None:
        name = self.header.tensor_name
        if len(self.shape) != 3 or self.shape[0] != 1 or self.shape[2] != self.header.num_frames:
            raise UserError(
                f"{self.path}: tensor {name!r} has shape {list(self.shape)}, which does not match the header "
                f"([1, rows, {self.header.num_frames}]: one item, num_frames frames); the file is damaged. {_REENCODE}"
            )
        if self.shape[1] < 1:
            raise UserError(
                f"{self.path}: tensor {name!r} has no rows (shape {list(self.shape)}); the file is damaged. {_REENCODE}"
            )

    def _check_dtype(self) -> None:
        kind = self.header.kind
        ok = np.issubdtype(self.dtype, np.floating) if kind == "latents" else np.issubdtype(self.dtype, np.integer)
        if not ok or self.dtype.itemsize > 8:
            raise UserError(
                f"{self.path}: tensor {kind!r} has dtype {self.dtype}; {_EXPECTED_DTYPE[kind]}. {_REENCODE}"
            )

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as ``[rows, stop - start]`` in native byte order (``.npz``:
        sequential calls only, or :meth:`rewind` first)."""
        if not 0 <= start < stop <= self.shape[2]:
            raise UserError(f"{self.path}: frames [{start}, {stop}) are outside [0, {self.shape[2]}).")
        try:
            block = self._read(start, stop)
        except UserError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, _SafetensorError) as error:
            raise UserError(
                f"{self.path}: frames {start}..{stop} cannot be read ({one_line(error)}); the file is damaged. "
                + _REENCODE
            ) from error
        return block if block.dtype.isnative else block.astype(block.dtype.newbyteorder("="))

    def _read(self, start: int, stop: int) -> np.ndarray:
        if self._zip is None:
            return np.asarray(self._slice[:, :, start:stop])[0]
        if self._whole is not None:
            return np.asarray(self._whole[0, :, start:stop])
        if start != self._position:
            raise UserError(f"{self.path}: .npz frames are read in order; asked for {start}, next is {self._position}.")
        rows = self.shape[1]
        count = (stop - start) * rows
        data = self._entry.read(count * self.dtype.itemsize)  # the last read checks the entry's CRC-32
        if len(data) != count * self.dtype.itemsize:
            raise UserError(f"{self.path}: the tensor entry ends early (truncated file). {_REENCODE}")
        self._position = stop
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, rows).T

    def rewind(self) -> None:
        """Start reading from frame 0 again (``.npz``: reopens the sequential entry)."""
        if self._zip is not None and self._whole is None:
            self._entry.close()
            self._entry = self._zip.open(f"{self.header.tensor_name}.npy")
            self._entry.read(self._data_start)
        self._position = 0

    def close(self) -> None:
        if self._entry is not None:
            self._entry.close()
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> EncodedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SAFETENSORS_READ_DTYPES = {
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "I8": np.int8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
    "U8": np.uint8,
    "U16": np.uint16,
    "U32": np.uint32,
    "U64": np.uint64,
}
"""safetensors dtypes this reader accepts (others, e.g. BF16 or BOOL, numpy cannot hold or are never
latents or codes)."""

_EXPECTED_DTYPE = {
    "latents": "latents are floating-point numbers (float32), so the file is damaged or not from `audioenc encode`",
    "codes": "codes are integer codebook indices (int16), so the file is damaged or not from `audioenc encode`",
}
