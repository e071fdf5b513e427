"""Load a trained codec (export, checkpoint or run folder) and fingerprint it.

:func:`load_codec` refuses damaged, foreign or NaN-holding weights with a :class:`UserError`;
:func:`model_config_hash` / :func:`model_weights_hash` are the fingerprints an encoded container
stores so that decoding with another model is an error instead of noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from audioenc.codec_io.messages import _one_line
from audioenc.config import Config, ModelConfig
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel


def refuse_hugging_face_folder(given: Path, folder: Path) -> None:
    """A transformers EncodecModel folder (``config.json`` with ``model_type`` encodec) holds weights audioenc
    reads only through ``audioenc import-hf``; say so instead of "no codec here"."""
    try:
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(meta, dict) and meta.get("model_type") == "encodec":
        raise UserError(f"{given} is a Hugging Face transformers EncodecModel, not an audioenc codec; convert it "
                        f"first with `audioenc import-hf {folder} RUN` and give the new RUN folder instead.")


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
    from audioenc.training.checkpoint import load_exported_model, load_training_state

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
                f"{_one_line(error)}"
            ) from error
        _check_finite_weights(model, path)
        return model.eval(), config
    if path.suffix == ".pt":
        try:
            state = load_training_state(path)
        except RuntimeError as error:  # truncated, corrupt or foreign: the message names the file and what to do
            raise UserError(_one_line(error)) from error
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
            raise UserError(f"{path}: its saved model config is unusable: {_one_line(error)}") from error
        if not isinstance(state["model"], dict):
            raise UserError(f"{path}: its 'model' entry is not a table of weights; the checkpoint is damaged.")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise UserError(
                f"{path}: the model weights do not fit its own saved config: {_one_line(error)}"
            ) from error
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
