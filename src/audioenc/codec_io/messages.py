"""Error-message helpers shared by the codec file modules: short reprs, field errors."""

from __future__ import annotations

from typing import Any

from audioenc.errors import UserError

_REENCODE = "Encode the source audio again with `audioenc encode`."


def _show(value: Any, limit: int = 40) -> str:
    """``repr`` of a value from a file, cut short (a damaged field may be megabytes of garbage)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field_error(where: str, name: str, problem: str) -> UserError:
    return UserError(
        f"{where}: header field {name!r} {problem}; the file is damaged or was not written by `audioenc encode`. "
        + _REENCODE
    )
