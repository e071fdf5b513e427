"""Shared machinery of the exercise checks (not an exercise itself).

Every ``check.py`` of this folder calls :func:`run_checks` with a list of named checks. A
check is a function that receives the learner's module (``starter.py`` by default,
``solution.py`` with ``--solution``, or any file with ``--module PATH``) and either returns
(pass; an optional one-line detail to print) or raises :class:`CheckFailed` with what was
expected, what was got and a hint.

Outcomes, one line per check:

- ``ok``: the check passed;
- ``TODO``: the learner's code raised ``NotImplementedError`` — "not done yet", with the
  starter's own hint;
- ``FAIL``: a wrong result — expected, got, hint;
- ``ERROR``: the learner's code raised another exception — its type, message and the line of
  the learner's file it came from (``--traceback`` prints the full traceback).

The process exits 0 only when every check passed, 1 otherwise. Nothing here prints a
traceback unless asked: a learner should read what to do, not a stack dump.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

Check = tuple[str, Callable[[ModuleType], "str | None"]]
"""A named check: ``(title, function(module) -> optional detail line)``."""


class CheckFailed(Exception):
    """A wrong result: what was checked, the expected and the obtained value, and a hint."""

    def __init__(self, what: str, expected: object, got: object, hint: str) -> None:
        super().__init__(what)
        self.what = what
        self.expected = expected
        self.got = got
        self.hint = hint


def expect(condition: bool, what: str, expected: object, got: object, hint: str) -> None:
    """Raise :class:`CheckFailed` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(what, expected, got, hint)


def as_float(value: object, what: str, hint: str) -> float:
    """``float(value)``, or a :class:`CheckFailed` that says the result is not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CheckFailed(what, "a number", f"{value!r} ({type(value).__name__})", hint) from None


def expect_close(got: object, expected: float, what: str, hint: str, *, tolerance: float = 1e-9) -> float:
    """Check ``|got - expected| <= tolerance`` (infinities must match exactly); return ``got``."""
    value = as_float(got, what, hint)
    same_infinity = math.isinf(expected) and value == expected
    expect(
        same_infinity or abs(value - expected) <= tolerance,
        what,
        f"{expected:.6g} (± {tolerance:g})",
        f"{value:.6g}",
        hint,
    )
    return value


def expect_array_close(
    got: object, expected: Sequence[float], what: str, hint: str, *, tolerance: float = 1e-9
) -> None:
    """Element-wise :func:`expect_close` for a 1-D sequence, after checking its length."""
    try:
        values = [float(item) for item in got]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise CheckFailed(what, f"{len(expected)} numbers", repr(got), hint) from None
    expect(
        len(values) == len(expected), what, f"{len(expected)} values", f"{len(values)} values: {_short(values)}", hint
    )
    for got_value, expected_value in zip(values, expected):
        same_infinity = math.isinf(expected_value) and got_value == expected_value
        if not (same_infinity or abs(got_value - expected_value) <= tolerance):
            raise CheckFailed(what, _short(expected), _short(values), hint)


def _short(values: Sequence[float]) -> str:
    shown = ", ".join(f"{value:.4g}" for value in list(values)[:12])
    return f"[{shown}{', ...' if len(values) > 12 else ''}]"


def load_module(path: Path) -> ModuleType:
    """Import a Python file by path under a unique name (exercise folders are not packages)."""
    name = "exercise_" + "_".join(path.resolve().parts[-2:]).replace(".", "_").replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _origin(error: BaseException, learner_file: Path) -> str:
    """`` at file, line N, in function`` of the deepest frame inside the learner's file; when the
    error arose in the check (using a result of the wrong kind), says so instead."""
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if Path(frame.filename).resolve() == learner_file
    ]
    if not frames:
        return " while the check used your result (is its type the one the docstring asks for?)"
    frame = frames[-1]
    return f" at {learner_file.name}, line {frame.lineno}, in {frame.name}"


def _function_name(error: BaseException, learner_file: Path) -> str:
    """Name of the learner's function that raised ``error`` (``your code`` if not found)."""
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if Path(frame.filename).resolve() == learner_file
    ]
    return f"{frames[-1].name}()" if frames else "your code"


def run_checks(check_file: str, title: str, checks: Sequence[Check], *, on_success: str = "") -> int:
    """Parse the command line, load the learner's module, run ``checks``, print, return the exit code.

    Args:
        check_file: ``__file__`` of the calling ``check.py`` (its folder holds starter.py and
            solution.py).
        title: exercise title for the header line.
        checks: the named checks, run in order; each runs even if an earlier one failed.
        on_success: text printed after the results when every check passed (what to write
            in the note).

    Returns:
        0 when every check passed, 1 otherwise.
    """
    folder = Path(check_file).resolve().parent
    parser = argparse.ArgumentParser(description=f"Check exercise: {title}")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--solution", action="store_true", help="check the reference solution.py instead of starter.py")
    which.add_argument("--module", type=Path, help="check another file (a copy of starter.py, say)")
    parser.add_argument("--traceback", action="store_true", help="print full tracebacks of errors raised by your code")
    args = parser.parse_args()
    target = (args.module if args.module else folder / ("solution.py" if args.solution else "starter.py")).resolve()

    shown = os.path.relpath(target) if target.is_relative_to(Path.cwd()) else str(target)
    print(f"{title}\nchecking {shown}\n")
    if not target.is_file():
        print(f"cannot check {target}: no such file. Run from the repository root, or pass --module PATH.")
        return 1
    try:
        module = load_module(target)
    except Exception as error:  # a learner's file that does not import: say why, then stop
        where = _origin(error, target) if not isinstance(error, SyntaxError) else ""
        print(f"could not load {target.name}: {type(error).__name__}: {error}{where}")
        print(
            f"hint: fix that part of {target.name} so that the file imports, "
            "then rerun (--traceback shows the full traceback)."
        )
        if args.traceback:
            traceback.print_exception(error)
        return 1

    passed = todo = 0
    reported_todos: set[str] = set()
    for name, check in checks:
        try:
            detail = check(module)
        except NotImplementedError as error:
            todo += 1
            function = _function_name(error, target)
            message = str(error) or "the function still raises NotImplementedError"
            shown_before = function in reported_todos
            reported_todos.add(function)
            print(
                f"  TODO   {name}\n         not done yet: {function}"
                + (" (hint above)" if shown_before else f": {message}")
            )
        except CheckFailed as failure:
            print(f"  FAIL   {name}\n         checked:  {failure.what}\n         expected: {failure.expected}")
            print(f"         got:      {failure.got}\n         hint:     {failure.hint}")
        except Exception as error:  # the learner's code crashed: report it as a result, not a stack dump
            print(f"  ERROR  {name}\n         your code raised {type(error).__name__}: {error}")
            print(f"        {_origin(error, target)} (rerun with --traceback for the full traceback)")
            if args.traceback:
                traceback.print_exception(error)
        else:
            passed += 1
            print(f"  ok     {name}" + (f"\n         {detail}" if detail else ""))

    print()
    if passed == len(checks):
        print(f"All {len(checks)} checks passed.")
        if on_success:
            print(on_success)
        return 0
    if todo == len(checks):
        print(
            f"not done yet: none of the {len(checks)} checks can run. "
            f"Complete the functions in {target.name} (read TASK.md)."
        )
    else:
        print(f"{passed} of {len(checks)} checks passed; fix the ones above and rerun.")
    return 1


def main(check_file: str, title: str, checks: Sequence[Check], *, on_success: str = "") -> None:
    """``sys.exit(run_checks(...))``: the entry point of every ``check.py``."""
    sys.exit(run_checks(check_file, title, checks, on_success=on_success))
