"""The codec's files: the weights + JSON export, the safe checkpoint reader, loading and fingerprints.

An export is ``X.safetensors`` (the codec's weights) with ``X.json`` beside it (``{"model": …}``, the
model config): it loads without this package's training code or any pickle. A training checkpoint
``checkpoint_*.pt`` is read with ``torch.load(weights_only=True)``, so loading never runs code.
:func:`load_codec` takes either, or a run folder holding them; :func:`model_config_hash` /
:func:`model_weights_hash` are the fingerprints an encoded container stores so that decoding with
another model is an error instead of noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from audioenc.config import Config, ModelConfig
from audioenc.core.weights import write_weights
from audioenc.errors import UserError, one_line
from audioenc.models.codec import CodecModel


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
    others = [
        folder / name
        for name in ("checkpoint_last.pt", "checkpoint_best.pt", "model_best.safetensors")
        if name != path.name and (folder / name).is_file()
    ]
    checkpoints = [other for other in others if other.suffix == ".pt"]
    if checkpoints:
        return (
            f"{', '.join(o.name for o in others)} in {folder} may be intact: copy "
            f"{checkpoints[0].name} to {path.name} to resume from it, or start a new --run-dir."
        )
    if others:
        return (
            f"{others[0].name} in {folder} may be intact (the best model's weights, not a training "
            "state): start a new --run-dir to train again."
        )
    return f"No other checkpoint is in {folder}: start a new --run-dir."


def export_model(directory: Path, name: str, model: torch.nn.Module, model_config: ModelConfig) -> Path:
    """Write ``name.safetensors`` (weights) and ``name.json`` (model config) atomically."""
    directory = Path(directory)
    meta = {"model": Config(model=model_config).to_dict()["model"]}
    return write_weights(directory / f"{name}.safetensors", model.state_dict(), directory / f"{name}.json", meta)


def load_exported_model(weights: Path):
    """Build a :class:`~audioenc.models.codec.CodecModel` from ``X.safetensors`` + ``X.json``.

    Raises:
        FileNotFoundError: no ``X.json`` beside the weights.
        UserError: naming the file: ``X.json`` not valid JSON, without a ``"model"`` section or with
            an unusable config; ``X.safetensors`` truncated, header-only or not safetensors at all;
            weights that do not fit the config (missing/unexpected keys, other shapes).
    """
    weights = Path(weights)
    meta_path = weights.with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"{weights} has no model config beside it ({meta_path.name}).")
    again = f"export the model again, or copy {weights.name} and {meta_path.name} again from its run folder."
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise UserError(
            f"{meta_path}: not valid JSON ({error}); it should hold the model config of {weights.name}: {again}"
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise UserError(f'{meta_path}: no "model" section (the model config of {weights.name}); {again}')
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
        raise UserError(
            f"{weights}: not a readable safetensors file ({error}); it is truncated or damaged: {again}"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # missing/unexpected keys or other shapes: another model's weights
        message = " ".join(str(error).split())
        message = message if len(message) <= 400 else message[:399] + "…"
        raise UserError(
            f"{weights}: the weights do not fit the configuration in {meta_path.name}: {message}; {again}"
        ) from error
    return model.eval(), config.model


def refuse_hugging_face_folder(given: Path, folder: Path) -> None:
    """A transformers EncodecModel folder (``config.json`` with ``model_type`` encodec) holds weights audioenc
    reads only through ``audioenc import-hf``; say so instead of "no codec here"."""
    try:
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(meta, dict) and meta.get("model_type") == "encodec":
        raise UserError(
            f"{given} is a Hugging Face transformers EncodecModel, not an audioenc codec; convert it "
            f"first with `audioenc import-hf {folder} RUN` and give the new RUN folder instead."
        )


def load_codec(path: str | os.PathLike) -> tuple[CodecModel, ModelConfig]:
    """Load a trained codec in eval mode on the CPU, with its model configuration.

    Accepted inputs:

    * ``X.safetensors`` with ``X.json`` beside it (what ``audioenc train`` exports as
      ``model_best``): no pickle is read at all;
    * a training checkpoint ``checkpoint_*.pt``: its ``"config"`` and ``"model"`` entries, loaded
      with ``torch.load(weights_only=True)`` (the raw weights, not a weight EMA);
    * a run folder: ``model_best.safetensors`` if present, else ``checkpoint_best.pt``, else
      ``checkpoint_last.pt``.

    Returns:
        ``(model, model_config)``; ``model.training`` is False.

    Raises:
        FileNotFoundError: nothing loadable at ``path``.
        UserError: unknown file type; a truncated, corrupt or foreign weights file, checkpoint or
            ``.json``; a checkpoint without ``config``/``model``; weights that do not fit the stored
            configuration; NaN/Inf in any weight (such a model turns every file into NaN).
    """
    path = Path(path)
    if path.is_dir():
        for name in ("model_best.safetensors", "checkpoint_best.pt", "checkpoint_last.pt"):
            if (path / name).is_file():
                return load_codec(path / name)
        refuse_hugging_face_folder(path, path)
        raise FileNotFoundError(
            f"{path} is a folder without model_best.safetensors, checkpoint_best.pt or "
            "checkpoint_last.pt; point --model at a run folder of `audioenc train` or one of those files."
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"No codec at {path}: expected a .safetensors export, a checkpoint_*.pt or a run folder."
        )
    if path.suffix == ".safetensors":
        if not path.with_suffix(".json").is_file():
            refuse_hugging_face_folder(path, path.parent)
        try:
            model, config = load_exported_model(path)  # damaged files and configs: UserError naming them
        except RuntimeError as error:  # load_state_dict: missing/unexpected keys or shape mismatch
            raise UserError(
                f"{path}: the weights do not fit the configuration in {path.with_suffix('.json').name}: "
                f"{one_line(error)}"
            ) from error
        _check_finite_weights(model, path)
        return model.eval(), config
    if path.suffix == ".pt":
        try:
            state = load_training_state(path)
        except RuntimeError as error:  # truncated, corrupt or foreign: the message names the file and what to do
            raise UserError(one_line(error)) from error
        missing = [key for key in ("config", "model") if not isinstance(state, dict) or key not in state]
        if missing:
            raise UserError(
                f"{path} is not an audioenc training checkpoint: it has no {' / '.join(missing)} entry. "
                "Use a checkpoint_*.pt written by `audioenc train` or an exported model_best.safetensors."
            )
        if not isinstance(state["config"], dict) or not isinstance(state["config"].get("model"), dict):
            raise UserError(
                f"{path}: its 'config' entry has no 'model' section, so the codec cannot be rebuilt; the "
                "checkpoint is damaged: use the run's other checkpoint or its model_best.safetensors."
            )
        try:
            config = Config.from_dict({"model": state["config"]["model"]}).model
            model = CodecModel.from_config(config)
        except (TypeError, ValueError, RuntimeError) as error:
            raise UserError(f"{path}: its saved model config is unusable: {one_line(error)}") from error
        if not isinstance(state["model"], dict):
            raise UserError(f"{path}: its 'model' entry is not a table of weights; the checkpoint is damaged.")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise UserError(f"{path}: the model weights do not fit its own saved config: {one_line(error)}") from error
        _check_finite_weights(model, path)
        return model.eval(), config
    raise UserError(
        f"{path}: unknown codec file type {path.suffix!r}; use a .safetensors export (with its .json), "
        "a checkpoint_*.pt or a run folder."
    )


def _check_finite_weights(model: nn.Module, path: Path) -> None:
    """Refuse a model with NaN/Inf in any floating-point weight or buffer (a diverged or corrupted
    run): it would encode or decode every file into NaN. Names the first bad tensor (state-dict order)."""
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise UserError(
                f"{path}: weight {key!r} holds {bad} NaN/Inf value(s) of {tensor.numel()}; the model is damaged "
                "(a diverged or corrupted training run). Use another checkpoint of the run "
                "(checkpoint_best.pt / checkpoint_last.pt) or train again."
            )


def model_config_hash(config: ModelConfig) -> str:
    """SHA-256 (hex) of the model configuration as canonical JSON (sorted keys, tuples as lists)."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_weights_hash(model: nn.Module) -> str:
    """SHA-256 (hex) over the state dict: every key, dtype, shape and the raw bytes, in key order."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
