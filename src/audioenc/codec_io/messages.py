"""Error-message helpers shared by the codec file modules: one-line causes, short reprs, field errors."""

from __future__ import annotations

from typing import Any

from audioenc.errors import UserError

_REENCODE = "Encode the source audio again with `audioenc encode`."


def _one_line(error: BaseException, limit: int = 400) -> str:
    """An exception's message on one line (the CLI prints one line), cut at ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(value: Any, limit: int = 40) -> str:
    """``repr`` of a value from a file, cut short (a damaged field may be megabytes of garbage)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field_error(where: str, name: str, problem: str) -> UserError:
    return UserError(
        f"{where}: header field {name!r} {problem}; the file is damaged or was not written by `audioenc encode`. "
        + _REENCODE
    )
