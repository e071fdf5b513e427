"""Weights + JSON: a model as ``NAME.safetensors`` (its tensors) with a JSON file that describes it.

safetensors holds tensors and nothing else, so loading one never runs code; the JSON beside it says
what to build before the tensors go in (the model's configuration, its classes, …). Both files are
written atomically, weights first: a reader that finds the description finds its weights whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from audioenc.core.atomic import atomic_write, write_json


def write_weights(weights: Path, state: Mapping[str, torch.Tensor], description: Path, content: Any) -> Path:
    """Write ``state`` (a state dict) to ``weights`` and ``content`` as indented JSON to ``description``;
    returns ``weights``. Each tensor is copied to its own contiguous CPU memory: safetensors refuses
    tensors that share storage (tied or sliced weights)."""
    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in state.items()}
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp)))
    write_json(description, content)
    return weights
