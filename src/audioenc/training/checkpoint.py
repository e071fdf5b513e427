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
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from audioenc.config import SAVED_BEFORE, Config, ModelConfig, saved_section


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


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """Write a full training state (tensors, numbers, strings, dicts, lists) atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_training_state(path: Path) -> dict[str, Any]:
    """Load a training state with ``weights_only=True``: loading never executes code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}; start without --resume or point --run-dir at a run.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise RuntimeError(
            f"Checkpoint {path} could not be read ({type(error).__name__}: {error}). It may be truncated "
            "or not an audioenc checkpoint; the other checkpoint in the run folder (last/best) may be intact."
        ) from error


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
        raise ValueError(
            f"Checkpoint {path} was made with another configuration:\n  " + "\n  ".join(differences)
            + "\nUse the same --1ch/--32ch, --preset and overrides as that run, or a new --run-dir." + hint
        )


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
    """Build a :class:`~audioenc.models.codec.CodecModel` from ``X.safetensors`` + ``X.json``."""
    from audioenc.models.codec import CodecModel

    weights = Path(weights)
    meta_path = weights.with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"{weights} has no model config beside it ({meta_path.name}).")
    config = Config.from_dict(json.loads(meta_path.read_text()))
    model = CodecModel.from_config(config.model)
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), config.model
