"""The metadata of an encoded container (:class:`EncodedHeader`) and its strict parsing.

Every field is stored as a string; reading parses each one strictly (integers as integers, floats
finite) and checks ranges and consistency (``num_frames = ceil(num_samples / hop)``,
``source_frames`` resampling to ``num_samples``, rates > 0, a level within
[LEVEL_FLOOR, :data:`LEVEL_LIMIT`]). Every refusal is a :class:`UserError` naming the file and field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from audioenc.codec_io.audio_blocks import resampled_length
from audioenc.codec_io.messages import _REENCODE, _field_error, _show
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel

FORMAT_VERSION = "audioenc-encoded/1"
"""Value of the ``format`` metadata key of every container this package writes."""

_MAX_SAMPLE_RATE = 2**31 - 1

LEVEL_LIMIT = 1e6
"""Largest signal level (``scale``, RMS) encoded or decoded: 120 dB above digital full scale. Fixed-point
files stay within ±1; a float file this loud holds garbage, not sound. Decoding multiplies the audio
by the level, so a forged level beyond it would write absurd samples."""


@dataclass
class EncodedHeader:
    """Metadata of an encoded file (all stored as strings).

    Attributes:
        kind: 'latents' (continuous, float32 ``[1, D, F]``) or 'codes' (RVQ, int16 ``[1, K, F]``).
        sample_rate: model sample rate in Hz (the rate of the encoded signal).
        num_samples: length of the encoded signal at ``sample_rate`` (decoding trims to it).
        num_frames: ``F = ceil(num_samples / hop_length)``.
        hop_length: samples per frame.
        frame_rate: frames per second.
        channels: audio channels.
        source_sample_rate, source_frames: rate (Hz) and length (frames) of the input file.
        source_name: the input file's name (no folders).
        n_q: codebooks used (codes only, else 0).
        bandwidth_kbps: bitrate of the codes (0 for latents).
        streaming: 'causal-state' (chunked, exact state) or 'one-shot' (non-causal model).
        chunk_frames: frames per chunk used when encoding.
        model_config: the model configuration as JSON.
        model_config_sha256, model_weights_sha256: see :func:`model_config_hash`, :func:`model_weights_hash`.
        scale: the signal's level (RMS over channels and time + floor) that a codec with
            ``normalize`` divided by; the decoder multiplies by it. 1.0 otherwise, and in files
            written before it existed.
    """

    kind: str
    sample_rate: int
    num_samples: int
    num_frames: int
    hop_length: int
    frame_rate: float
    channels: int
    source_sample_rate: int
    source_frames: int
    source_name: str
    n_q: int
    bandwidth_kbps: float
    streaming: str
    chunk_frames: int
    model_config: str
    model_config_sha256: str
    model_weights_sha256: str
    scale: float = 1.0
    format: str = FORMAT_VERSION

    @property
    def tensor_name(self) -> str:
        return self.kind

    def to_strings(self) -> dict[str, str]:
        return {key: str(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_strings(cls, values: dict[str, str], where: str) -> EncodedHeader:
        """Parse and check the metadata of the file ``where``: every field present (but ``scale``
        in files from before it existed), of its type (integers strictly, floats finite), in its
        range, and consistent with the others. Never trusts the file: anything else is a
        :class:`UserError` naming the file and the field."""
        if not isinstance(values, dict):
            raise UserError(
                f"{where}: the metadata is {type(values).__name__}, not a key/value table; the file is "
                f"damaged. {_REENCODE}"
            )
        if values.get("format") != FORMAT_VERSION:
            raise UserError(
                f"{where}: not an audioenc encoded file (format {_show(values.get('format'))}, expected "
                f"{FORMAT_VERSION!r}); encode the audio with `audioenc encode`."
            )
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name not in values:
                if field.default is not dataclasses.MISSING:
                    continue  # a key added later: files written before it mean the default
                raise UserError(f"{where}: metadata key {field.name!r} is missing; the file is damaged. {_REENCODE}")
            kwargs[field.name] = _parse_field(where, field.name, str(field.type), values[field.name])
        header = cls(**kwargs)
        if header.kind not in ("latents", "codes"):
            raise UserError(f"{where}: kind {header.kind!r} is neither 'latents' nor 'codes'. {_REENCODE}")
        try:
            saved_config = json.loads(header.model_config)
        except ValueError:
            saved_config = None
        if not isinstance(saved_config, dict):
            raise _field_error(where, "model_config", f"is {_show(header.model_config)}, not a JSON object")
        if "scale" not in values and saved_config.get("normalize", False):
            raise UserError(
                f"{where}: metadata key 'scale' is missing for a normalising codec; the file is damaged. " + _REENCODE
            )
        header._check(where)
        return header

    def _check(self, where: str) -> None:
        """Ranges and consistency of the fields, with the file and the field named."""
        for name in (
            "sample_rate",
            "source_sample_rate",
            "hop_length",
            "channels",
            "num_samples",
            "num_frames",
            "source_frames",
            "chunk_frames",
        ):
            value = getattr(self, name)
            if value < 1:
                raise _field_error(where, name, f"is {value}; it must be a positive integer")
        for name in ("sample_rate", "source_sample_rate"):
            if getattr(self, name) > _MAX_SAMPLE_RATE:  # libsndfile stores rates as a C int
                raise _field_error(
                    where, name, f"is {getattr(self, name)} Hz, beyond any audio file's rate ({_MAX_SAMPLE_RATE})"
                )
        hop, frames = self.hop_length, self.num_frames
        if -(-self.num_samples // hop) != frames:
            raise _field_error(
                where,
                "num_samples",
                f"is {self.num_samples}, but num_frames {frames} × hop_length {hop} means "
                f"{(frames - 1) * hop + 1}..{frames * hop} samples",
            )
        expected = resampled_length(self.source_frames, self.source_sample_rate, self.sample_rate)
        if expected != self.num_samples:
            raise _field_error(
                where,
                "source_frames",
                f"is {self.source_frames} at source_sample_rate {self.source_sample_rate} Hz, which is "
                f"{expected} samples at sample_rate {self.sample_rate} Hz, not num_samples {self.num_samples}",
            )
        if not math.isclose(self.frame_rate, self.sample_rate / hop, rel_tol=1e-9):
            raise _field_error(
                where,
                "frame_rate",
                f"is {self.frame_rate!r}, not sample_rate / hop_length = {self.sample_rate / hop!r}",
            )
        # The encoder stores RMS + LEVEL_FLOOR (or 1.0), never below the floor nor above LEVEL_LIMIT
        # (it refuses louder input). NaN/Inf fail at parsing.
        if not CodecModel.LEVEL_FLOOR <= self.scale <= LEVEL_LIMIT:
            raise _field_error(
                where,
                "scale",
                f"is {self.scale!r}; a signal level is a positive number from "
                f"{CodecModel.LEVEL_FLOOR:g} to {LEVEL_LIMIT:g}",
            )
        if self.bandwidth_kbps < 0:
            raise _field_error(where, "bandwidth_kbps", f"is {self.bandwidth_kbps!r}; it must be >= 0")
        if (self.kind == "codes") != (self.n_q >= 1) or self.n_q < 0:
            raise _field_error(
                where, "n_q", f"is {self.n_q} for {self.kind}; codes need n_q >= 1 codebooks, latents n_q = 0"
            )
        if self.streaming not in ("causal-state", "one-shot"):
            raise _field_error(where, "streaming", f"is {_show(self.streaming)}, not 'causal-state' or 'one-shot'")


def _parse_field(where: str, name: str, kind: str, raw: Any) -> Any:
    """One metadata value as ``kind`` ('int', 'float' or 'str'); strings are what this module writes,
    JSON numbers (``.npz`` written by other tools) are accepted too. Integers must be written as
    integers ('1e13', '2.0', 'abc' are refused) and fit in 64 bits; floats must be finite."""
    if kind not in ("int", "float"):
        if not isinstance(raw, str):
            raise _field_error(where, name, f"is {_show(raw)}, not a string")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise _field_error(where, name, f"is {_show(raw)}, not a number")
    text = str(raw).strip()
    if kind == "int":
        if isinstance(raw, float) or re.fullmatch(r"[+-]?[0-9]{1,19}", text) is None or abs(int(text)) >= 2**63:
            raise _field_error(where, name, f"is {_show(raw)}, not an integer")
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise _field_error(where, name, f"is {_show(raw)}, not a number") from None
    if not math.isfinite(value):
        raise _field_error(where, name, f"is {_show(raw)}, not a finite number")
    return value
