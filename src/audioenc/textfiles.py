"""The one reader for text files a user hands in: label TSVs, DESED YAML configs, JSON settings files.

Each of them is read as UTF-8 (a leading byte-order mark, as spreadsheet exports write it, is dropped).
A file that is not UTF-8 text is refused with one :class:`~audioenc.errors.UserError` naming the file,
the byte offset of the first bad byte and what to do; an audio file named where a text file belongs
(a YAML ``*_tsv`` entry pointing at a wav) is recognised and said to be one, because a decoding error
at byte 4 of a RIFF header helps nobody.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audioenc.errors import UserError

BINARY_SIGNATURES: dict[bytes, str] = {
    b"RIFF": "a WAV (RIFF) audio file",
    b"fLaC": "a FLAC audio file",
    b"OggS": "an Ogg audio file",
    b"ID3": "an MP3 audio file",
    b"PK\x03\x04": "a zip archive",
    b"\x89PNG": "a PNG image",
}
"""File starts that mark a binary file a user may name by mistake instead of a text file."""


def read_text(path: str | Path, what: str) -> str:
    """The content of the user's text file ``path`` (``what``: how the command names it, e.g. ``--config``).

    Raises:
        UserError: the file is binary or not UTF-8 text (the message names the file and the byte offset).
        OSError: the file cannot be opened (missing, a folder, no permission); the CLI shows it as one line.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a text file; name the file itself.")
    data = path.read_bytes()
    kind = _binary_kind(data)
    if kind is not None:
        raise UserError(f"{what} {path} is {kind}, not a text file; name the text file here.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{what} {path} is not UTF-8 text (byte {error.start}: {data[error.start : error.start + 1]!r}); "
            "save it as UTF-8 and try again."
        ) from None


def _binary_kind(data: bytes) -> str | None:
    """What binary file ``data`` is (by its first bytes, or a NUL byte early on), or None for text."""
    for signature, kind in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            return kind
    return "a binary file" if b"\x00" in data[:4096] else None


def read_json(path: str | Path, what: str, hint: str = "") -> Any:
    """The JSON content of the user's file ``path``; a parse error becomes one line with its line and column."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(
            f"{what} {path}: not JSON (line {error.lineno}, column {error.colno}: {error.msg})."
            f"{' ' + hint if hint else ''}"
        ) from None


def read_yaml(path: str | Path, what: str, hint: str = "") -> Any:
    """The YAML content of the user's file ``path``; a parse error becomes one line with its line and column."""
    import yaml

    text = read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{what} {path}: not YAML ({where}{problem}).{' ' + hint if hint else ''}") from None


__all__ = ["read_json", "read_text", "read_yaml"]
