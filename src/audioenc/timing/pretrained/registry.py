"""The families of pretrained encoders: one registry entry per architecture, found by ``model_type``.

A family (:class:`Family`) knows, for one kind of ``transformers`` snapshot:

* **how to load it**: the ``transformers`` class (:attr:`Family.model_class`) and the preprocessing
  the model was trained with (:meth:`Family.feature_extractor`: the snapshot's
  ``preprocessor_config.json``, else one built from ``config.json``);
* **its sample rate, frames and limits** (:attr:`Family.sample_rate`, :attr:`Family.geometry` —
  stride, receptive field, frame count, see :mod:`audioenc.timing.pretrained.geometry` —
  :attr:`Family.max_samples`), all read from the config, the feature extractor or the loaded
  layers, never written here as numbers;
* **how to get its embeddings**: :meth:`Family.choose` turns a user's ``layer`` (and ``bandwidth``)
  into a :class:`LayerChoice`, :meth:`Family.embed` runs one window of audio to
  ``[n, frames, groups · E]``.

Families register with :func:`register_family`; :func:`family_for` finds the one for a
``config.json``'s ``model_type`` or says which are supported. Loading and the HEAR wrapper that
every family shares are in :mod:`audioenc.timing.pretrained.hf`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from audioenc.errors import UserError
from audioenc.hear import TopSplit
from audioenc.timing.pretrained.geometry import FrameGeometry


@dataclass(frozen=True)
class LayerChoice:
    """What a loaded encoder embeds.

    Attributes:
        kind: ``hidden`` (hidden states), ``latent`` (a codec's continuous latents) or ``quantized``
            (a codec's latents after its residual quantizer).
        indices: hidden states taken (``hidden``), 0 = the input to the first transformer layer.
        codebooks: codebooks of the quantizer used (``quantized``).
        bandwidth_kbps: the bitrate those codebooks carry (``quantized``).
        is_default: whether the family's default was taken (no ``layer`` given).
    """

    kind: str
    indices: tuple[int, ...] = ()
    codebooks: int | None = None
    bandwidth_kbps: float | None = None
    is_default: bool = False

    @property
    def groups(self) -> int:
        """Embedding groups laid side by side (the ``L`` of ``[frames, L · E]``; 1 for one layer)."""
        return max(1, len(self.indices))

    def label(self) -> str:
        """The choice as reports write it: ``6``, ``all (0-12)``, ``latent``, ``quantized (8 codebooks, 6 kbps)``."""
        if self.kind == "hidden":
            if len(self.indices) > 1:
                return f"all ({self.indices[0]}-{self.indices[-1]})"
            return str(self.indices[0])
        if self.kind == "quantized":
            return f"quantized ({self.codebooks} codebooks, {self.bandwidth_kbps:g} kbps)"
        return self.kind


class Family(ABC):
    """One architecture family of ``transformers`` snapshots (subclasses fill the class attributes and
    set :attr:`sample_rate`, :attr:`geometry`, :attr:`max_samples`, :attr:`embedding_size` and
    :attr:`default_reason` in ``__init__``).

    Args:
        model: the loaded ``transformers`` model (eval mode).
        config: its ``PretrainedConfig``.
        extractor: from :meth:`feature_extractor` (None for families without one).
    """

    name: ClassVar[str]
    """Registry key, e.g. ``wav2vec2``."""
    model_types: ClassVar[tuple[str, ...]]
    """``config.json`` ``model_type`` values of this family."""
    model_class: ClassVar[str]
    """The ``transformers`` class loaded (a head checkpoint such as ``Wav2Vec2ForCTC`` loads into its base model)."""
    unused_weights: ClassVar[tuple[str, ...]] = ()
    """Name prefixes of weights the embeddings never use: a snapshot may lack them (a decoder, a training-only
    mask embedding); any other missing weight is an error."""
    receptive_field_note: ClassVar[str] = ""
    """What lies beyond :attr:`geometry`'s receptive field (attention over the window, an LSTM)."""

    sample_rate: int
    geometry: FrameGeometry
    max_samples: int | None
    """Most samples one call takes (the model's window), or None."""
    embedding_size: int
    """Size ``E`` of one layer's frame embedding."""
    default_reason: str
    """Why the default layer is the default (stated in the report)."""

    def __init__(self, model: Any, config: Any, extractor: Any) -> None:
        self.model = model
        self.config = config
        self.extractor = extractor

    @classmethod
    def feature_extractor(cls, transformers: Any, folder: Path, config: Any) -> Any:
        """The preprocessing the model expects (None: the model takes the waveform as it is)."""
        return None

    @abstractmethod
    def choose(self, layer: object, bandwidth: float | None) -> LayerChoice:
        """The user's ``layer`` (None: the family's default) and ``bandwidth`` (kbps, codecs) as a choice."""

    @abstractmethod
    def embed(self, audio: torch.Tensor, choice: LayerChoice) -> torch.Tensor:
        """One window: mono ``[n, L]`` float32 at :attr:`sample_rate` -> ``[n, geometry.frames(L), groups · E]``."""

    def layer_count(self) -> int:
        """Hidden states the model has (0 for codecs)."""
        return 0

    def split_layers(self, choice: LayerChoice, top_layers: int) -> TopSplit:
        """The top ``top_layers`` layers as a trainable copy for light adaptation (``lower`` takes one window
        of mono audio at :attr:`sample_rate`); families that cannot be cut refuse with a :class:`UserError`."""
        raise UserError(
            f"a {self.name} model from transformers cannot be adapted here: its top block is not cut into a "
            "trainable copy (the transformer families' top layers are); probe it frozen, or adapt audioenc's own codec."
        )


FAMILIES: dict[str, type[Family]] = {}
"""Family name -> class, in registration order."""


def register_family(family: type[Family]) -> type[Family]:
    """Add ``family`` to :data:`FAMILIES` (usable as a class decorator)."""
    taken = {model_type: other.name for other in FAMILIES.values() for model_type in other.model_types}
    clashes = [model_type for model_type in family.model_types if taken.get(model_type, family.name) != family.name]
    if clashes:
        raise ValueError(f"family {family.name}: model_type(s) {clashes} already belong to another family")
    FAMILIES[family.name] = family
    return family


def supported_model_types() -> list[str]:
    """Every ``model_type`` some family handles."""
    return [model_type for family in FAMILIES.values() for model_type in family.model_types]


def family_for(model_type: str, folder: Path) -> type[Family]:
    """The family of ``model_type``, or a :class:`UserError` naming the folder and the supported types."""
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise UserError(
        f"{folder}: model_type {model_type!r} (config.json) is not a supported encoder architecture; "
        f"supported: {', '.join(supported_model_types())}. Point --encoder at a snapshot of one of these."
    )


__all__ = ["FAMILIES", "Family", "LayerChoice", "family_for", "register_family", "supported_model_types"]
