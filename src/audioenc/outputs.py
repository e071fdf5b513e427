"""Where commands write: one overwrite rule, checked before any work, and one lock per run folder.

Every command that writes a file or a folder the user named calls :func:`check_output` first, before
it loads a model or reads data: an output that cannot be written (its parent is a file, or not
writable) is refused then rather than after the work, and an existing file or non-empty folder is
refused unless the user passed ``--overwrite``, with the same message for every command.

A run folder that a process trains or works in is held with :class:`RunFolderLock`: an exclusive
``fcntl.flock`` on ``LOCK_NAME`` inside it. A second process on the same folder is refused with the
holder's pid; the kernel drops the lock when its holder dies, so a killed run never blocks its resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from audioenc.core.atomic import temporary_folder_beside
from audioenc.errors import UserError

LOCK_NAME = ".audioenc.lock"
"""The lock file inside a run folder (holds the pid of the process that runs in it)."""


def occupied(path: str | os.PathLike) -> bool:
    """Whether writing ``path`` would replace something: a file, a link, or a folder holding anything
    but the lock file (an empty folder, or one left with only a lock, replaces nothing)."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        return True
    return path.is_dir() and any(entry.name != LOCK_NAME for entry in path.iterdir())


def check_output(path: str | os.PathLike, what: str, *, overwrite: bool = False, folder: bool = False) -> Path:
    """``path`` as an output ``what`` (``OUT``, ``--out``) may write, or a :class:`UserError` saying why not.

    Checked before any work, so that a command never computes for minutes and then finds it cannot
    write: the first existing folder on the way to ``path`` must be a folder this process can write
    in, a folder output must not be a file, and an existing file or non-empty folder is refused
    unless ``overwrite`` (the user's ``--overwrite``).
    """
    path = Path(path)
    _check_writable_parent(path, what)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder; choose a folder name (a new or empty folder).")
    if not overwrite and occupied(path):
        held = "already holds files" if path.is_dir() else "already exists"
        them = "them" if path.is_dir() else "it"
        raise UserError(
            f"{what} {path} {held}; pass --overwrite to replace {them}, or choose another "
            f"{'folder' if folder else 'name'}."
        )
    return path


def _check_writable_parent(path: Path, what: str) -> None:
    """Refuse ``path`` when the nearest existing folder above it is a file or not writable."""
    ancestor = path.absolute().parent
    while not ancestor.exists() and not ancestor.is_symlink() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(
            f"{what} {path} cannot be written: {ancestor} is a file, not a folder; choose a path inside a folder."
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(
            f"{what} {path} cannot be written: no permission to write in {ancestor}; choose a folder you can write to."
        )
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise UserError(
            f"{what} {path} cannot be written: no permission to write in it; choose a folder you can write to."
        )


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike, replaces: Sequence[str] = ()) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write several files into; they move into ``out`` only when
    the block ends without an error, so an error or Ctrl-C half-way leaves ``out`` as it was.

    ``replaces``: names this writer owns in ``out``; those this run did not write are removed when the
    files move in, so that nothing stale of an earlier run (one with more outputs) stays beside them.
    """
    out = Path(out)
    staging = temporary_folder_beside(out)
    try:
        yield staging
        out.mkdir(exist_ok=True)
        written = {entry.name for entry in staging.iterdir()}
        for name in replaces:
            if name not in written and (out / name).is_file():
                (out / name).unlink()
        for name in sorted(written):
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def replacing(target: str | os.PathLike) -> Iterator[Path]:
    """A path to write a new ``target`` at: ``target`` itself when it replaces nothing, else a fresh name
    beside it that is swapped in for the old ``target`` only when the block ends without an error (the
    old one is kept on an error or Ctrl-C). For writers that refuse an existing output (``--overwrite``)."""
    target = Path(target)
    if not occupied(target):
        yield target
        return
    scratch = temporary_folder_beside(target)
    new, old = scratch / "new", scratch / "old"
    try:
        yield new
        if new.exists():
            os.replace(target, old)
            os.replace(new, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class RunFolderLock:
    """An exclusive hold on a run folder (``fcntl.flock`` on ``folder/LOCK_NAME``), recording this pid.

    ``flock`` is released by the kernel when the holder exits or is killed, so a lock file left by a
    killed run is free again. The lock file is removed on release; whoever opened it just before
    then and locks it afterwards sees that the name now points elsewhere and tries again.
    """

    def __init__(self, folder: str | os.PathLike, what: str) -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunFolderLock:
        """Create the folder if needed and take the lock, or refuse naming the process that holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while self.fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise UserError(
                    f"{self.what} {self.folder} is in use by process {holder} (it holds {self.path}); wait for "
                    f"that process to finish or stop it, or choose another {self.what}."
                ) from None
            if _same_file(fd, self.path):
                self.fd = fd
            else:
                os.close(fd)  # released and removed by its holder meanwhile: lock the new file
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def release(self) -> None:
        """Remove the lock file and let go (removing first: nobody can take the old file for this folder)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self.fd, self.path):
                self.path.unlink()
        os.close(self.fd)
        self.fd = None

    @property
    def held(self) -> bool:
        """Whether this process holds the folder now."""
        return self.fd is not None

    def __enter__(self) -> RunFolderLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    """The pid the holder wrote into the lock file ("(pid not written yet)" while it is still writing it)."""
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "(pid not written yet)"


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd`` (it may have been removed and made anew)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
