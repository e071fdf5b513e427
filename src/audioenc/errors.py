"""The one error type for problems with what the user gave: a file, a folder, a flag, a model.

Everything a command rejects because of its input raises :class:`UserError` (or a subclass), with
a message that names the file or the setting, says what is wrong, and says what to do. The CLI
prints that message as one line and exits 2; any other exception is a bug in audioenc and keeps
its traceback. ``AUDIOENC_DEBUG=1`` shows the traceback of a user error too.

``UserError`` subclasses :class:`ValueError` so that library callers that caught ``ValueError``
before it existed keep working.
"""

from __future__ import annotations

from pathlib import Path


class UserError(ValueError):
    """Input the command cannot use; the message names it and says what to do."""


def require_directory(path: str | Path, what: str, hint: str = "") -> Path:
    """``path`` as a folder that exists, or a :class:`UserError` that says which of the two it is not."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist.{' ' + hint if hint else ''}")
    if not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder.{' ' + hint if hint else ''}")
    return path


def one_line(error: BaseException, limit: int = 400) -> str:
    """An exception's message on one line (the CLI prints one line), cut at ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class UnknownKeyError(UserError, KeyError):
    """A setting name that does not exist (``model.n_filter=…``); also a :class:`KeyError`."""

    def __str__(self) -> str:  # KeyError quotes its message; a user reads it as a sentence
        return str(self.args[0]) if self.args else ""
