"""A user's encoder module with the HEAR API (https://hearbenchmark.com): imported, run and checked so
that whatever it does ends as one :class:`~audioenc.errors.UserError` naming the module.

A HEAR module is a ``.py`` file or an importable name exposing ``load_model`` and
``get_timestamp_embeddings``; its model declares ``sample_rate`` and ``timestamp_embedding_size``
(positive whole numbers). :func:`load_hear_module` imports it, loads its model and checks those;
:func:`guarded` wraps every call into the user's code (an exception, even ``SystemExit``, becomes
one message). :func:`audioenc.timing.encoders.load_encoder` uses these for ``--encoder module.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from torch import nn

from audioenc.errors import UserError
from audioenc.timing.named_encoders import NAMED_ENCODERS
from audioenc.validation import check_number

T = TypeVar("T")


def guarded(source: str, function: str, call: Callable[[], T]) -> T:
    """``call()``, the user's module code, with anything it raises (``SystemExit`` too) turned into one
    :class:`UserError` naming the module and the function: a user's encoder may fail in any way, and the
    workflow must end with a message, not with that module's traceback or its exit status."""
    try:
        return call()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - the user's code may raise anything, SystemExit included
        detail = " ".join(str(error).split()) or "no message"
        if isinstance(error, SystemExit):
            detail = f"exit status {error.code!r}"
        raise UserError(
            f"encoder module {source}: {function} failed ({type(error).__name__}: {detail[:300]}); "
            "fix the module or choose another --encoder."
        ) from None


def import_hear_module(spec: str) -> ModuleType:
    """The module ``spec`` names: a ``.py`` file (imported under a private name) or an importable name; its
    import runs under :func:`guarded`. A name that is nothing at all is a FileNotFoundError listing what
    ``--encoder`` accepts."""
    path = Path(spec)
    if path.suffix == ".py":
        if not path.is_file():
            raise FileNotFoundError(f"HEAR module file {path} does not exist")
        name = f"_audioenc_hear_module_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise UserError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            guarded(spec, "import", lambda: module_spec.loader.exec_module(module))
        except UserError:
            sys.modules.pop(name, None)
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if error.name != spec.split(".")[0] and error.name != spec:
            raise UserError(
                f"encoder module {spec}: import failed (ModuleNotFoundError: {error}); install what it "
                "needs or choose another --encoder."
            ) from None
        raise FileNotFoundError(
            f"encoder {spec!r} is neither an existing file or folder (transformers snapshot folder, codec run "
            f"folder, model_best.safetensors, checkpoint_*.pt, weak-CRNN folder, module.py), nor a named encoder "
            f"({', '.join(NAMED_ENCODERS)}), nor an importable Python module ({error})"
        ) from error
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - the same one message as a module file's failure
        return guarded(spec, "import", lambda: importlib.import_module(spec))


def _model_number(source: str, model: Any, name: str) -> int:
    """The HEAR attribute ``name`` of the user's model as a positive integer, or a :class:`UserError`."""
    value = getattr(model, name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    given = value if isinstance(value, (int, float)) or not math.isfinite(number) else number
    check_number(
        f"encoder module {source}: load_model().{name}",
        given,
        minimum=1,
        integer=True,
        hint="A HEAR model declares a positive whole number here.",
    )
    return int(number)


@dataclass(frozen=True)
class LoadedModule:
    """A HEAR module and the model its ``load_model`` returned (in eval mode when a torch module).

    Attributes:
        module: the imported module (its ``get_timestamp_embeddings`` runs ``model``).
        model: what ``load_model`` returned.
        sample_rate: the model's ``sample_rate`` (Hz).
        embedding_size: its ``timestamp_embedding_size``.
        module_file: the module's source file (None for a module without one).
    """

    module: ModuleType
    model: Any
    sample_rate: int
    embedding_size: int
    module_file: str | None


def load_hear_module(spec: str, weights: str | None = None) -> LoadedModule:
    """Import ``spec`` (:func:`import_hear_module`), call its ``load_model`` (with ``weights`` when given) and
    check the HEAR functions and attributes, each failure one :class:`UserError`."""
    module = import_hear_module(spec)
    missing = [name for name in ("load_model", "get_timestamp_embeddings") if not callable(getattr(module, name, None))]
    if missing:
        raise UserError(
            f"HEAR module {spec!r} lacks {', '.join(missing)}; a HEAR module defines load_model, "
            "get_timestamp_embeddings and get_scene_embeddings"
        )
    model = guarded(spec, "load_model", lambda: module.load_model(weights) if weights else module.load_model())
    absent = [name for name in ("sample_rate", "timestamp_embedding_size") if not hasattr(model, name)]
    if absent:
        raise UserError(f"the model from {spec}.load_model() lacks the HEAR attribute(s) {', '.join(absent)}")
    if isinstance(model, nn.Module):
        model.eval()
    return LoadedModule(
        module,
        model,
        _model_number(spec, model, "sample_rate"),
        _model_number(spec, model, "timestamp_embedding_size"),
        getattr(module, "__file__", None),
    )


__all__ = ["LoadedModule", "guarded", "import_hear_module", "load_hear_module"]
