"""Checkpoints that are never half-written and never run code when loaded.

A run folder holds:

* ``checkpoint_last.pt`` / ``checkpoint_best.pt`` — the full training state (models, optimizers,
  balancer, RNG states, step), loaded with ``torch.load(weights_only=True)``;
* ``model_best.safetensors`` + ``model_best.json`` — the codec weights and the model config, loadable
  without this package's training code or any pickle;
* ``config.json`` — the resolved configuration of the run.

Every file is written to a temporary name in the same folder, flushed to disk, then renamed over the
old one (``os.replace`` is atomic on POSIX): a run killed mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from audioenc.config import SAVED_BEFORE, Config, ModelConfig, saved_section
from audioenc.errors import UserError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then atomically move ``tmp_path`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# Temporary names of the files a run writes into its folder (``atomic_write``: ``.NAME.XXXX.tmp``).
RUN_FILE_PREFIXES = (".checkpoint_", ".model_best.", ".metrics.jsonl.", ".config.json.", ".changes.jsonl.")


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete what writes killed mid-way left in ``directory`` (``atomic_write``'s ``.NAME.*.tmp``).

    Call it only where no other process writes into ``directory`` (a run folder as its run starts).
    """
    removed = []
    for stale in sorted(Path(directory).glob(".*.tmp")):
        if stale.is_file() and stale.name.startswith(RUN_FILE_PREFIXES):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """Write a full training state (tensors, numbers, strings, dicts, lists) atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


class UnreadableCheckpointError(UserError, RuntimeError):
    """A checkpoint file that is truncated, damaged, or refused by the safe loader.

    A :class:`~audioenc.errors.UserError` (the CLI prints it as one line) that is also a
    ``RuntimeError``, which this function raised before user errors had their own type.
    """


REQUIRED_STATE_KEYS = ("config", "step", "model")


def load_training_state(path: Path) -> dict[str, Any]:
    """Load a training state with ``weights_only=True``: loading never executes code.

    Raises :class:`UnreadableCheckpointError` naming the file when it is truncated or damaged (and
    which other file of the run folder may be intact), or when the safe loader refuses it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}; start without --resume or point --run-dir at a run.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # The weights-only unpickler met something that is not a tensor, number, string or container:
        # a class to build or a function to call (what a malicious pickle does), or no pickle at all.
        found = re.search(r"GLOBAL (\S+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise UnreadableCheckpointError(
            f"Checkpoint {path} could not be read: it was refused because it holds objects other than "
            f"tensors, numbers and strings{what}, and audioenc never runs code from model files. "
            "Use a checkpoint written by audioenc train, or a new --run-dir."
        ) from None
    except Exception as error:  # noqa: BLE001 -- torch raises RuntimeError, EOFError, OSError … for a cut file
        raise UnreadableCheckpointError(
            f"Checkpoint {path} could not be read: it is truncated or damaged "
            f"({_first_line(error)}). {_intact_alternatives(path)}"
        ) from None
    return state


def require_training_state(state: Any, path: Path) -> dict[str, Any]:
    """``state`` if it is a training state (``config``, ``step``, weights), else a clear error."""
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_STATE_KEYS):
        raise UnreadableCheckpointError(
            f"Checkpoint {path} is not an audioenc training checkpoint (it lacks "
            f"{', '.join(REQUIRED_STATE_KEYS)}). {_intact_alternatives(Path(path))}"
        )
    return state


def _first_line(error: BaseException, limit: int = 120) -> str:
    """``Type: first sentence of the message`` (torch's first sentence says what failed)."""
    text = (str(error).strip().splitlines() or [""])[0].split(". ")[0]
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _intact_alternatives(path: Path) -> str:
    """Which other file of the run folder may hold a usable state, and what to do with it."""
    folder = path.parent
    others = [folder / name for name in ("checkpoint_last.pt", "checkpoint_best.pt", "model_best.safetensors")
              if name != path.name and (folder / name).is_file()]
    checkpoints = [other for other in others if other.suffix == ".pt"]
    if checkpoints:
        return (f"{', '.join(o.name for o in others)} in {folder} may be intact: copy "
                f"{checkpoints[0].name} to {path.name} to resume from it, or start a new --run-dir.")
    if others:
        return (f"{others[0].name} in {folder} may be intact (the best model's weights, not a training "
                "state): start a new --run-dir to train again.")
    return f"No other checkpoint is in {folder}: start a new --run-dir."


def check_compatible(saved: dict[str, Any], current: Config, path: Path) -> None:
    """Raise a clear error when a checkpoint was made with a different model/discriminator layout."""
    differences = []
    for section in ("model", "discriminator"):
        saved_values = saved_section(section, saved.get(section, {}))
        current_section = current.to_dict()[section]
        for key, value in current_section.items():
            old = saved_values.get(key)
            if isinstance(old, list):
                old = tuple(old)
            if isinstance(value, list):
                value = tuple(value)
            if old != value:
                differences.append(f"{section}.{key}: checkpoint {old!r}, now {value!r}")
    if differences:
        added_later = [f"{section}.{key}={json.dumps(value)}" for section, keys in SAVED_BEFORE.items()
                       for key, value in keys.items() if section not in saved or key not in saved[section]]
        hint = (f" This checkpoint predates {', '.join(added_later)}: add that override to resume it."
                if added_later else "")
        raise UserError(
            f"Checkpoint {path} was made with another model configuration: " + "; ".join(differences)
            + ". Use the same --1ch/--32ch, --preset and overrides as that run, or a new --run-dir." + hint
        )


# Settings a resumed run may change freely: they move neither the sample stream, nor the schedule,
# nor what a step computes. ``train.epochs`` only says where the run stops (a run is extended by
# raising it). Every other key of these sections changes the data a step sees (batch size, segment
# length, seed, data folder, channel mode), the schedule (updates per epoch, warm-up, discriminator
# cadence), the objective or optimiser, or which model counts as best.
RESUME_FREE_KEYS = frozenset({
    "data.num_workers", "train.epochs", "train.log_every", "train.checkpoint_every",
    "train.max_nonfinite_steps", "train.device", "train.compile", "train.logger",
    "train.perceptual_every", "train.perceptual_measures", "train.perceptual_segments",
})
TRAINING_SECTIONS = ("data", "losses", "optim", "train")


def training_changes(saved: dict[str, Any], current: Config) -> list[tuple[str, Any, Any]]:
    """``(key, checkpoint value, current value)`` for each training setting that differs.

    Compares the sections :data:`TRAINING_SECTIONS` minus :data:`RESUME_FREE_KEYS`; a key the
    checkpoint predates counts with its default (what the run used before the key existed).
    """
    defaults = Config().to_dict()
    current_dict = current.to_dict()
    changes = []
    for section in TRAINING_SECTIONS:
        saved_values = {**defaults[section], **saved_section(section, saved.get(section, {}))}
        for key, value in current_dict[section].items():
            dotted = f"{section}.{key}"
            if dotted in RESUME_FREE_KEYS:
                continue
            old = saved_values.get(key)
            old = tuple(old) if isinstance(old, list) else old
            value = tuple(value) if isinstance(value, list) else value
            if old != value and not (dotted == "data.root" and _same_folder(old, value)):
                changes.append((dotted, old, value))
    return changes


def describe_changes(changes: list[tuple[str, Any, Any]]) -> str:
    """``train.batch_size: checkpoint 4, now 8; …``."""
    return "; ".join(f"{key}: checkpoint {old!r}, now {new!r}" for key, old, new in changes)


def _same_folder(a: Any, b: Any) -> bool:
    try:
        return a is not None and b is not None and os.path.samefile(a, b)
    except OSError:
        return False


def export_model(directory: Path, name: str, model: torch.nn.Module, model_config: ModelConfig) -> Path:
    """Write ``name.safetensors`` (weights) and ``name.json`` (model config) atomically."""
    directory = Path(directory)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    weights = directory / f"{name}.safetensors"
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp)))
    meta = json.dumps({"model": Config(model=model_config).to_dict()["model"]}, indent=2) + "\n"
    atomic_write(directory / f"{name}.json", lambda tmp: tmp.write_text(meta))
    return weights


def load_exported_model(weights: Path):
    """Build a :class:`~audioenc.models.codec.CodecModel` from ``X.safetensors`` + ``X.json``.

    Raises:
        FileNotFoundError: no ``X.json`` beside the weights.
        UserError: naming the file: ``X.json`` not valid JSON, without a ``"model"`` section or with
            an unusable config; ``X.safetensors`` truncated, header-only or not safetensors at all;
            weights that do not fit the config (missing/unexpected keys, other shapes).
    """
    from safetensors import SafetensorError

    from audioenc.models.codec import CodecModel

    weights = Path(weights)
    meta_path = weights.with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"{weights} has no model config beside it ({meta_path.name}).")
    again = f"export the model again, or copy {weights.name} and {meta_path.name} again from its run folder."
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise UserError(f"{meta_path}: not valid JSON ({error}); it should hold the model config of "
                        f"{weights.name}: {again}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise UserError(f"{meta_path}: no \"model\" section (the model config of {weights.name}); {again}")
    try:
        # Only the model section matters here (an export writes nothing else).
        config = Config.from_dict({"model": meta["model"]})
        model = CodecModel.from_config(config.model)
    except (TypeError, ValueError, RuntimeError) as error:
        message = " ".join(str(error).split())
        raise UserError(f"{meta_path}: the model config is unusable: {message}; {again}") from error
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise UserError(f"{weights}: not a readable safetensors file ({error}); it is truncated or damaged: "
                        f"{again}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # missing/unexpected keys or other shapes: another model's weights
        message = " ".join(str(error).split())
        message = message if len(message) <= 400 else message[:399] + "…"
        raise UserError(f"{weights}: the weights do not fit the configuration in {meta_path.name}: {message}; "
                        f"{again}") from error
    return model.eval(), config.model
