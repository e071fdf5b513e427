"""The training checkpoint: a run's full state, written whole, and the rules for resuming it.

A run folder holds:

* ``checkpoint_last.pt`` / ``checkpoint_best.pt`` — the full training state (models, optimizers,
  balancer, RNG states, step), loaded with ``torch.load(weights_only=True)``;
* ``model_best.safetensors`` + ``model_best.json`` — the codec weights and the model config, loadable
  without this package's training code or any pickle;
* ``config.json`` — the resolved configuration of the run.

Every file is written with :func:`audioenc.core.atomic.atomic_write`: a run killed mid-write leaves
the previous file intact. Reading a checkpoint, and the weights + JSON export, are the codec's file
format (:mod:`audioenc.models.files`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from audioenc.config import SAVED_BEFORE, Config, saved_section
from audioenc.core.atomic import atomic_write
from audioenc.errors import UserError

# Temporary names of the files a run writes into its folder (``atomic_write``: ``.NAME.XXXX.tmp``).
RUN_FILE_PREFIXES = (
    ".checkpoint_",
    ".model_best.",
    ".metrics.jsonl.",
    ".config.json.",
    ".changes.jsonl.",
    ".summary.json.",
    ".init_from.json.",
)


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
        added_later = [
            f"{section}.{key}={json.dumps(value)}"
            for section, keys in SAVED_BEFORE.items()
            for key, value in keys.items()
            if section not in saved or key not in saved[section]
        ]
        hint = (
            f" This checkpoint predates {', '.join(added_later)}: add that override to resume it."
            if added_later
            else ""
        )
        raise UserError(
            f"Checkpoint {path} was made with another model configuration: "
            + "; ".join(differences)
            + ". Use the same --1ch/--32ch, --preset and overrides as that run, or a new --run-dir."
            + hint
        )


# Settings a resumed run may change freely: they move neither the sample stream, nor the schedule,
# nor what a step computes. ``train.epochs`` only says where the run stops (a run is extended by
# raising it). Every other key of these sections changes the data a step sees (batch size, segment
# length, seed, data folder, channel mode), the schedule (updates per epoch, warm-up, discriminator
# cadence), the objective or optimiser, or which model counts as best.
RESUME_FREE_KEYS = frozenset(
    {
        "data.num_workers",
        "train.epochs",
        "train.log_every",
        "train.checkpoint_every",
        "train.max_nonfinite_steps",
        "train.device",
        "train.compile",
        "train.logger",
        "train.perceptual_every",
        "train.perceptual_measures",
        "train.perceptual_segments",
    }
)
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
