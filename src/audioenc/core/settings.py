"""Typed settings: a schema of dataclass sections, ``section.key=value`` overrides, settings files.

A schema is a dataclass deriving from :class:`Settings` whose every field is a section, itself a
dataclass of typed fields (``int``, ``float``, ``bool``, ``str``, tuples, ``X | None``) whose numeric
ranges are declared with :func:`~audioenc.validation.bounded`. Both halves of audioenc resolve their
settings the same way, each layer overriding the last: the schema's defaults (or a preset), a settings
file (``--config FILE``, JSON or YAML: any subset of the sections), then ``section.key=value``
overrides. A value is parsed by its field's type wherever it comes from (text from the command line,
a JSON or YAML value from a file), and an unknown section or key is an error that lists the valid ones.

Changing a value returns a new schema instance (frozen schemas and mutable ones alike), so a preset
or a default is never changed by the settings built on it. The schemas and their rules between
fields live with their owners: :mod:`audioenc.config` (training) and
:mod:`audioenc.timing.workflow.settings` (the workflow).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from audioenc.errors import UnknownKeyError, UserError
from audioenc.textfiles import read_json, read_yaml
from audioenc.validation import check_fields

YAML_SUFFIXES = (".yaml", ".yml")
"""Settings files read as YAML; any other name is read as JSON (what ``config.json``/``settings.json`` are)."""

S = TypeVar("S", bound="Settings")


class Settings:
    """Base of a settings schema (a dataclass whose fields are sections).

    Subclasses name themselves in messages with :attr:`label` ("Unknown config key ...") and give an
    :attr:`example` override for the message about a malformed one.
    """

    label: ClassVar[str] = "settings"
    example: ClassVar[str] = "section.key=value"

    @classmethod
    def sections(cls) -> tuple[str, ...]:
        """The section names, in declaration order."""
        return tuple(item.name for item in dataclasses.fields(cls))

    def section(self, name: str) -> Any:
        """The section ``name``; an unknown name is an :class:`UnknownKeyError` listing the valid ones."""
        if name not in self.sections():
            raise UnknownKeyError(f"Unknown {self.label} section {name}; valid sections: {', '.join(self.sections())}.")
        return getattr(self, name)

    def with_value(self: S, dotted_key: str, value: Any) -> S:
        """These settings with ``section.key`` set to ``value``, parsed by the field's type (:func:`coerce`).

        Raises:
            UnknownKeyError: the section or key does not exist (the message lists the valid ones).
            UserError: ``value`` is not of the field's type.
        """
        section_name, _, key = dotted_key.partition(".")
        section = self.section(section_name)
        hints = typing.get_type_hints(type(section))
        if key not in hints:
            valid = ", ".join(f"{section_name}.{name}" for name in hints)
            start = f"Key {dotted_key} needs a field" if not key else f"Unknown {self.label} key {dotted_key}"
            raise UnknownKeyError(f"{start}; use one of the valid keys: {valid}.")
        try:
            parsed = coerce(value, hints[key])
        except (TypeError, ValueError) as error:
            raise UserError(
                f"Bad value {value!r} for {dotted_key} (expected {_type_name(hints[key])}): {error}"
            ) from None
        return dataclasses.replace(self, **{section_name: dataclasses.replace(section, **{key: parsed})})

    def with_mapping(self: S, content: Any, where: str) -> S:
        """These settings with ``{"section": {"key": value}}`` (any subset) applied; ``where`` names the source."""
        if not isinstance(content, Mapping):
            raise UserError(f"{where}: expected an object of sections, got {type(content).__name__}.")
        settings = self
        for section_name, values in content.items():
            if not isinstance(values, Mapping):
                raise UserError(f"{where}: section {section_name!r} must be an object of keys, got {values!r}.")
            for key, value in values.items():
                settings = settings.with_value(f"{section_name}.{key}", value)
        return settings

    def with_file(self: S, path: str | Path) -> S:
        """These settings with the settings file ``path`` (``--config``; JSON, or YAML by its suffix) applied."""
        return self.with_mapping(read_settings_file(path), str(path))

    def with_overrides(self: S, items: Iterable[str]) -> S:
        """These settings with each ``section.key=value`` of ``items`` applied in order (a later one wins)."""
        settings = self
        for item in items:
            key, sep, text = item.partition("=")
            if not sep:
                raise UserError(f"Override {item!r} is not of the form section.key=value (e.g. {self.example}).")
            settings = settings.with_value(key.strip(), text.strip())
        return settings

    def check_numbers(self) -> None:
        """Every number finite and in its field's declared range (:func:`~audioenc.validation.check_fields`)."""
        for name in self.sections():
            check_fields(name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, section by section (tuples as lists): what the saved file holds."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        """Strict JSON (``allow_nan=False``: a NaN here is a bug, never a saved setting), one key per line."""
        return json.dumps(dataclasses.asdict(self), indent=2, allow_nan=False) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` (loadable again with :meth:`with_file`)."""
        path = Path(path)
        text = self.to_json()  # before touching the file: a failed check leaves nothing behind
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def read_settings_file(path: str | Path) -> Any:
    """The content of the settings file ``path``: YAML for a ``.yaml``/``.yml`` name, JSON otherwise."""
    if Path(path).suffix.lower() in YAML_SUFFIXES:
        return read_yaml(path, "--config", "write one mapping per section, e.g. 'optim: {lr: 1.0e-4}'.")
    return read_json(path, "--config", 'write {"section": {"key": value}}.')


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def coerce(value: Any, annotation: Any) -> Any:
    """``value`` (text from the command line, or a JSON/YAML value) parsed as the type ``annotation``.

    Handles ``int``, ``float``, ``bool``, ``str``, ``tuple[X, ...]``, fixed-length tuples (text as
    comma-separated values) and ``X | None`` (``none``/``null``/empty text is None).

    Raises:
        ValueError, TypeError: ``value`` is not of that type (the message says what to give).
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, args)
    if origin is tuple:
        return _coerce_tuple(value, args)
    if annotation is bool:
        return _boolean(value)
    if annotation is int:
        return _integer(value)
    if annotation is float:
        return _number(value)
    if annotation is str:
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    raise TypeError(f"unsupported settings type {annotation}")


def _coerce_union(value: Any, args: tuple[Any, ...]) -> Any:
    """The first member type of the union that parses ``value``; None for a ``none`` of an optional field."""
    unset = value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
    if unset and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg)
        except (TypeError, ValueError) as error:
            errors.append(str(error))
    raise UserError("; ".join(errors))


def _coerce_tuple(value: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A tuple from comma-separated text or a list; a fixed-length tuple needs exactly its number of values."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if len(args) >= 2 and args[-1] is not Ellipsis:
        if len(items) != len(args):
            raise UserError(f"expected {len(args)} comma-separated values, got {len(items)}")
        return tuple(coerce(item, kind) for item, kind in zip(items, args, strict=True))
    item_type = args[0] if args else str
    return tuple(coerce(item, item_type) for item in items)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UserError("expected true/false")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise UserError("expected a number")
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise UserError(f"expected a number such as 0.5 or 1e-4, not {value!r}") from None


def _integer(value: Any) -> int:
    """An int from an int, a whole float or text such as ``8`` or ``1e3`` (what the numeric options accept too)."""
    if isinstance(value, bool):
        raise UserError("expected an integer")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"expected an integer such as 8, not {text!r}") from None
    if isinstance(value, float) and not value.is_integer():
        raise UserError(f"expected an integer, not {value!r}")
    return int(value)


__all__ = ["Settings", "YAML_SUFFIXES", "coerce", "read_settings_file"]
