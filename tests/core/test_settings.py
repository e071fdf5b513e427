"""The typed-settings mechanism (audioenc.core.settings) on a small schema of its own.

References: the values written by hand in each case; the schemas of training and the workflow are
tested with their owners (tests/test_config.py, tests/timing/workflow/test_settings.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from audioenc.core.settings import Settings, coerce, read_settings_file
from audioenc.validation import bounded


@dataclass
class Sizes:
    width: int = bounded(4, minimum=1, integer=True)
    rate: float = bounded(0.5, above=0)
    shape: tuple[int, int] = (2, 3)
    name: str | None = None
    on: bool = False


@dataclass
class Toy(Settings):
    label: ClassVar[str] = "toy"
    example: ClassVar[str] = "sizes.width=8"

    sizes: Sizes = field(default_factory=Sizes)


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ("8", int, 8),
        ("1e3", int, 1000),
        (4.0, int, 4),
        ("0.25", float, 0.25),
        (3, float, 3.0),
        ("yes", bool, True),
        ("off", bool, False),
        ("1,2", tuple[int, ...], (1, 2)),
        ([1, 2], tuple[int, int], (1, 2)),
        ("none", int | None, None),
        (None, str | None, None),
        ("x", str | None, "x"),
        ("5", int | None, 5),
    ],
)
def test_coerce_parses_text_and_file_values_by_type(value, annotation, expected):
    parsed = coerce(value, annotation)
    assert parsed == expected and type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        ("2.5", int),
        (True, int),
        ("many", float),
        ("maybe", bool),
        (3, str),
        ("1,2,3", tuple[int, int]),
    ],
)
def test_coerce_refuses_what_is_not_of_the_type(value, annotation):
    with pytest.raises((TypeError, ValueError)):
        coerce(value, annotation)


def test_values_return_a_new_instance_and_leave_the_original_alone():
    base = Toy()
    changed = base.with_value("sizes.width", "8").with_overrides(["sizes.shape=4,5", "sizes.on=true"])
    assert (changed.sizes.width, changed.sizes.shape, changed.sizes.on) == (8, (4, 5), True)
    assert base == Toy() and Toy.sections() == ("sizes",)
    assert changed.to_dict() == {"sizes": {"width": 8, "rate": 0.5, "shape": [4, 5], "name": None, "on": True}}


def test_errors_name_the_schema_and_list_the_valid_keys():
    with pytest.raises(KeyError, match="Unknown toy section bogus; valid sections: sizes."):
        Toy().with_value("bogus.width", 1)
    with pytest.raises(
        KeyError,
        match="Unknown toy key sizes.height; use one of the valid keys: sizes.width, "
        "sizes.rate, sizes.shape, sizes.name, sizes.on.",
    ):
        Toy().with_value("sizes.height", 1)
    with pytest.raises(ValueError, match=r"Bad value 'wide' for sizes.width \(expected int\)"):
        Toy().with_value("sizes.width", "wide")
    with pytest.raises(ValueError, match=r"not of the form section.key=value \(e.g. sizes.width=8\)"):
        Toy().with_overrides(["sizes.width"])
    with pytest.raises(ValueError, match=r"sizes.rate must be a finite number > 0; got -1.0"):
        Toy().with_value("sizes.rate", -1).check_numbers()


def test_files_are_json_or_yaml_by_suffix_and_saved_settings_read_back(tmp_path):
    (tmp_path / "a.yaml").write_text("sizes:\n  width: 6\n  shape: [7, 8]\n")
    (tmp_path / "b.json").write_text('{"sizes": {"name": "x"}}')
    assert read_settings_file(tmp_path / "a.yaml") == {"sizes": {"width": 6, "shape": [7, 8]}}
    settings = Toy().with_file(tmp_path / "a.yaml").with_file(tmp_path / "b.json")
    assert (settings.sizes.width, settings.sizes.shape, settings.sizes.name) == (6, (7, 8), "x")
    path = settings.save(tmp_path / "run" / "settings.json")
    assert Toy().with_file(path) == settings
    (tmp_path / "a.json").write_text((tmp_path / "a.yaml").read_text())
    with pytest.raises(ValueError, match="a.json: not JSON"):
        read_settings_file(tmp_path / "a.json")
