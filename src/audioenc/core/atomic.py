"""Files and folders that appear whole or not at all.

Every writer puts its bytes under a temporary name in the target's own folder (``.NAME.XXXX.tmp``,
so that a rename never crosses a file system), flushes them to disk, then renames over the target
with ``os.replace``, which is atomic on POSIX: a process killed mid-write leaves the previous file
(or no file) in place, never half of one. Temporaries are removed on every error, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def temporary_beside(path: Path, *, keep_suffix: bool = False) -> Path:
    """A new empty file beside ``path``: ``.NAME.XXXX.tmp``, or ``.STEM.XXXX.tmpSUFFIX`` with
    ``keep_suffix`` for writers that choose their format by the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_suffix:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def commit(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk and rename it over ``path`` (the one step that makes it visible)."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content at; it replaces ``path`` only when the block
    ends without an error (see :func:`temporary_beside` for ``keep_suffix``)."""
    path = Path(path)
    tmp = temporary_beside(path, keep_suffix=keep_suffix)
    try:
        yield tmp
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then atomically move ``tmp_path`` to ``path``."""
    with atomic_file(path) as tmp:
        write(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """``path`` holds ``text`` (UTF-8) whole, or keeps what it held."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2, **options: Any) -> None:
    """``path`` holds ``data`` as JSON (with a final newline) whole, or keeps what it held."""
    write_text(path, json.dumps(data, indent=indent, **options) + "\n")


def temporary_folder_beside(path: Path) -> Path:
    """A new empty folder beside ``path`` (``.NAME.XXXX.tmp``) to build a folder or swap one in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder to fill; it is renamed to ``path`` (absent or an empty folder) only when the
    block ends without an error, else removed: ``path`` never appears half-written."""
    path = Path(path)
    tmp = temporary_folder_beside(path)
    try:
        yield tmp
        if path.is_dir():
            path.rmdir()  # empty (the caller refused anything else): os.replace needs the name free
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
