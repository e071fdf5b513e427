"""Quantizer names -> classes: the one list that configuration, the CLI and model building read.

The classes are named by module path and imported on first use, so that reading the names (the
configuration's choices, ``audioenc train --help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audioenc.quantization.base import Quantizer, QuantizerOptions

QUANTIZERS: dict[str, str] = {
    "none": "audioenc.quantization.null:NullQuantizer",
    "rvq": "audioenc.quantization.rvq:ResidualVectorQuantizer",
    "fsq": "audioenc.quantization.fsq:FiniteScalarQuantizer",
}
"""``model.quantizer`` value -> ``module:Class``. ``none``: continuous latents; ``rvq``: EnCodec's residual VQ;
``fsq``: finite scalar quantization."""

QUANTIZER_NAMES: tuple[str, ...] = tuple(QUANTIZERS)


def quantizer_class(name: str) -> type[Quantizer]:
    """The class registered as ``name``; ``KeyError`` naming the valid ones otherwise."""
    if name not in QUANTIZERS:
        raise KeyError(f"unknown quantizer {name!r}; choose one of {', '.join(QUANTIZER_NAMES)}")
    module_name, _, class_name = QUANTIZERS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_quantizer(name: str, options: QuantizerOptions) -> Quantizer:
    """The quantizer ``name`` built from the model settings ``options``."""
    return quantizer_class(name).from_options(options)
