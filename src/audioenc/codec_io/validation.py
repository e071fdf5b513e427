"""Checks of a container's contents against the model that should decode it.

:func:`check_model_matches` (configuration and weights hashes), :func:`_check_fits_model` (rates,
hop, channels, rows) and :func:`_check_values` (codes inside the codebooks, latents finite and within
:data:`LATENT_LIMIT`) run before any audio is computed.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from audioenc.codec_io.container import EncodedReader
from audioenc.codec_io.header import EncodedHeader
from audioenc.codec_io.messages import _REENCODE, _field_error
from audioenc.config import ModelConfig, saved_section
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel
from audioenc.models.files import model_weights_hash

LATENT_LIMIT = 1e6
"""Largest |latent| accepted when encoding or decoding. Why this bound: a codec's latents are its
encoder's output for audio whose level is bounded — a normalising codec sees unit-RMS input, an
other one samples within ±1 from any fixed-point file — and measured maxima are small: 19 for the
trained `story` codec on a full-scale square wave, 0.17 for the untrained paper model on unit-RMS
noise. 1e6 leaves 4-5 orders of magnitude of headroom over anything an encoder produces for real
audio, yet stays 32 orders below float32's 3.4e38, so a decoder fed 1e6 cannot reach Inf through a
few layers of O(1) weights. Beyond it the values are corruption (a flipped exponent bit, a
scaled tensor), not a signal. Whatever passes the bound but still overflows is caught by the check
of the decoded audio."""

SCAN_FRAMES = 4096
"""Frames per block when :func:`decode_file` checks every value of the file before decoding."""


def _check_values(
    where: str, kind: str, block: np.ndarray, first_frame: int, bins: int | None, encoding: bool = False
) -> None:
    """Refuse codes outside ``[0, bins)``, and NaN/Inf or ``|x| > LATENT_LIMIT`` latents, in ``block``
    ``[rows, f]`` (frames from ``first_frame``), naming the first bad value's row and frame."""
    if kind == "codes":
        bad = (block < 0) | (block >= bins)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise UserError(
                f"{where}: tensor 'codes' holds {int(block[row, col])} at codebook {row}, frame {first_frame + col}, "
                f"outside the model's codebook range 0..{bins - 1}; the file is damaged or was encoded by another "
                f"model. {_REENCODE}"
            )
        return
    finite = np.isfinite(block)
    bad = ~finite | (np.abs(np.where(finite, block, 0)) > LATENT_LIMIT)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        value = float(block[row, col])
        problem = (
            f"{value}"
            if not math.isfinite(value)
            else f"{value:.3g}, beyond ±{LATENT_LIMIT:g} (no encoder output for real audio comes near)"
        )
        if encoding:
            raise UserError(
                f"{where}: the encoder produced latent {problem} at dimension {row}, frame {first_frame + col}: the "
                "model overflows on this audio (damaged or diverged weights, or samples far beyond full scale). "
                "Nothing was written; use another checkpoint of the run, or check the audio with `audioenc scan`."
            )
        raise UserError(
            f"{where}: tensor 'latents' holds {problem} at dimension {row}, frame {first_frame + col}; the file is "
            f"damaged. {_REENCODE}"
        )


def check_model_matches(
    header: EncodedHeader, model: CodecModel, config: ModelConfig, where: str, allow_other_weights: bool = False
) -> None:
    """Raise ``ValueError`` when ``model`` is not the model that wrote ``header``.

    A different configuration is always an error (the frames would not even fit; keys the file's
    configuration predates count with their :data:`~audioenc.config.SAVED_BEFORE` value); different
    weights with the same configuration are an error unless ``allow_other_weights``.
    """
    saved = saved_section("model", json.loads(header.model_config))
    current = dataclasses.asdict(config)
    differences = [
        f"{key}: file {saved.get(key)!r}, model {value!r}"
        for key, value in current.items()
        if (list(value) if isinstance(value, tuple) else value) != saved.get(key)
    ]
    if differences:
        raise UserError(
            f"{where} was encoded by a model with another configuration ("
            + "; ".join(differences)
            + "). Decode it with the model that encoded it."
        )
    if not allow_other_weights and header.model_weights_sha256 != model_weights_hash(model):
        raise UserError(
            f"{where} was encoded by a model with the same configuration but other weights (another "
            "checkpoint?). Decode with the model that encoded it, or allow other weights explicitly "
            "(--allow-other-weights) if you know they share the latent space."
        )


def _check_fits_model(reader: EncodedReader, model: CodecModel) -> None:
    """The header's rates, hop and channels, and the tensor's rows, against ``model`` (whose
    configuration :func:`check_model_matches` found equal to the file's): a difference means the
    header contradicts its own configuration, i.e. a damaged file."""
    header, where = reader.header, str(reader.path)
    for name, value in (
        ("sample_rate", model.sample_rate),
        ("hop_length", model.hop_length),
        ("channels", model.channels),
    ):
        if getattr(header, name) != value:
            raise _field_error(where, name, f"is {getattr(header, name)}, but the model that wrote it has {value}")
    if not math.isclose(header.frame_rate, model.frame_rate, rel_tol=1e-9):
        raise _field_error(where, "frame_rate", f"is {header.frame_rate!r}, but the model's is {model.frame_rate!r}")
    rows = reader.shape[1]
    if not model.quantizer.discrete:
        if rows != model.decoder.dimension:
            raise UserError(
                f"{where}: tensor 'latents' has {rows} rows (shape {list(reader.shape)}) but the model's latent "
                f"dimension is {model.decoder.dimension}; the file is damaged. {_REENCODE}"
            )
        return
    if rows > model.quantizer.total_codebooks:
        raise UserError(
            f"{where}: tensor 'codes' has {rows} codebooks (shape {list(reader.shape)}) but the model has only "
            f"{model.quantizer.total_codebooks}; the file is damaged. {_REENCODE}"
        )
    if rows != header.n_q:
        raise _field_error(where, "n_q", f"is {header.n_q}, but tensor 'codes' has {rows} codebooks")
