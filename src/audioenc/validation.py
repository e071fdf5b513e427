"""One set of rules for the numbers a user gives: command-line options and settings fields alike.

Every number that reaches a computation from the user passes :func:`check_number`, which refuses
what is not finite (NaN and infinities are never a sensible duration, rate or count here) and what
lies outside the option's range, with one message that names the option, the allowed range and
the value given. Three ways in, one rule:

* a command-line option: ``parser.add_argument("--chunk-seconds", type=number(above=0))``;
* a settings field: ``x: float = bounded(0.2, minimum=0)`` in a dataclass, checked by
  :func:`check_fields` for every numeric field (finite always; the bounds where declared);
* a value computed from both: ``check_number("--max-files", args.max_files, minimum=1)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audioenc.errors import UserError


@dataclass(frozen=True)
class Bounds:
    """An allowed range: ``minimum <= x`` (or ``x > above``), ``x <= maximum`` (or ``x < below``); ``integer``:
    whole numbers only. ``below`` is for rates and probabilities whose upper end is unusable (a dropout or an
    EMA decay of 1)."""

    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    integer: bool = False
    below: float | None = None

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        parts = []
        if self.above is not None:
            parts.append(f"> {_plain(self.above)}")
        if self.minimum is not None:
            parts.append(f">= {_plain(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"<= {_plain(self.maximum)}")
        if self.below is not None:
            parts.append(f"< {_plain(self.below)}")
        return kind + (" " + " and ".join(parts) if parts else "")

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.integer and not float(value).is_integer():
            return False
        if self.above is not None and not value > self.above:
            return False
        if self.minimum is not None and not value >= self.minimum:
            return False
        if self.below is not None and not value < self.below:
            return False
        return self.maximum is None or value <= self.maximum


def _plain(limit: float) -> str:
    """A limit as the user types it: whole numbers in full (a seed's 4294967295, not 4.29497e+09)."""
    return str(int(limit)) if float(limit).is_integer() else f"{limit:g}"


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    below: float | None = None,
    hint: str = "",
) -> Any:
    """``value`` unchanged when it is a finite number in range, else a :class:`UserError` naming ``name``.

    Example: ``check_number("--max-files", -1, minimum=1)`` raises
    "--max-files must be an integer >= 1; got -1."
    """
    bounds = Bounds(minimum=minimum, above=above, maximum=maximum, integer=integer, below=below)
    _check(name, value, bounds, hint)
    return value


def _check(name: str, value: Any, bounds: Bounds, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name} must be {bounds.describe()}; got {value!r}.{' ' + hint if hint else ''}")
    if not bounds.admits(value):
        raise UserError(f"{name} must be {bounds.describe()}; got {value!r}.{' ' + hint if hint else ''}")


def number(
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    below: float | None = None,
) -> Callable[[str], float | int]:
    """An argparse ``type=`` that parses a number and applies :class:`Bounds` (argparse reports the error)."""
    bounds = Bounds(minimum=minimum, above=above, maximum=maximum, integer=integer, below=below)

    def parse(text: str) -> float | int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {bounds.describe()}; got {text!r}") from None
        if not bounds.admits(value):
            raise argparse.ArgumentTypeError(f"must be {bounds.describe()}; got {text!r}")
        return int(value) if integer else value

    parse.__name__ = "integer" if integer else "number"  # argparse names the type in some messages
    return parse


def bounded(
    default: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    below: float | None = None,
) -> Any:
    """A dataclass field with a default and an allowed range that :func:`check_fields` enforces."""
    bounds = Bounds(minimum=minimum, above=above, maximum=maximum, integer=integer, below=below)
    if isinstance(default, (list, dict, set)):
        raise TypeError("bounded() takes immutable defaults (use a tuple)")
    return dataclasses.field(default=default, metadata={"bounds": bounds})


def check_fields(section_name: str, section: Any) -> None:
    """Check every numeric field of the dataclass ``section``: finite always, in its bounds where declared.

    Tuples of numbers are checked item by item; ``None`` (an optional field left unset) passes.
    Errors name the field as ``section_name.field``.
    """
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        bounds = field.metadata.get("bounds", Bounds())
        name = f"{section_name}.{field.name}"
        values = value if isinstance(value, tuple) else (value,)
        hint = "none (unset) works too." if "None" in str(field.type) else ""  # an optional field
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            _check(name, item, bounds, hint)
