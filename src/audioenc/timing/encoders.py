"""Frozen encoders for the timing half, and their frames on one time grid.

1. **Encoders** (:func:`load_encoder`): anything with the HEAR API — a codec from
   ``audioenc train`` (run folder, ``model_best.safetensors`` or ``checkpoint_*.pt``), a weak-label
   CRNN folder (:func:`audioenc.timing.weak.save_weak_encoder`), both through
   :mod:`audioenc.hear`, or a Python module (a ``.py`` file or an importable name) exposing
   ``load_model`` and ``get_timestamp_embeddings``, or a local Hugging Face ``transformers`` snapshot
   folder (:mod:`audioenc.timing.pretrained.hf`: wav2vec2, HuBERT, WavLM, Whisper, AST, EnCodec, DAC,
   Mimi; ``layer``, ``bandwidth`` and windowing options). Audio reaches the encoder as a mono downmix
   resampled with soxr to the encoder's ``sample_rate`` (:func:`audioenc.audio.io.read_clip`).
2. **Frames on one grid** (:func:`to_frame_grid`): HEAR timestamps are milliseconds; the
   embedding frame whose timestamp is nearest to each grid centre ``(j + 1/2) / rate`` s is
   taken, so grid frame ``j`` spans ``[j, j + 1) / rate`` seconds as everywhere in
   :mod:`audioenc.timing`. ``rate`` is the encoder's own frame rate (1000 / timestamp step);
   for the encoders of this package the map is the identity.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from audioenc import hear
from audioenc.audio.io import read_clip
from audioenc.core.frames import frame_centres
from audioenc.errors import UserError
from audioenc.timing.pretrained import hf as pretrained_hf
from audioenc.validation import check_number


@dataclass
class EncoderHandle:
    """A loaded encoder and the module whose HEAR functions run it.

    Attributes:
        kind: ``codec``, ``weak_crnn`` (both via :mod:`audioenc.hear`), ``hf_snapshot``
            (:mod:`audioenc.timing.pretrained.hf`) or ``hear_module``.
        source: what the caller named (path or module name).
        model: the object ``load_model`` returned.
        api: the module providing ``get_timestamp_embeddings`` for ``model``.
        sample_rate: Hz the encoder expects.
        embedding_size: size of a timestamp embedding.
        channel_policy: how clip audio reaches the encoder (stated in reports).
        details: what the model itself states for reports (a snapshot's family, layer, frames,
            receptive field, window); empty for the other kinds.
    """

    kind: str
    source: str
    model: Any
    api: ModuleType
    sample_rate: int
    embedding_size: int
    channel_policy: str
    details: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """Plain-JSON description (no model object); a snapshot's :attr:`details` under ``pretrained``."""
        description = {
            "kind": self.kind,
            "source": self.source,
            "sample_rate": self.sample_rate,
            "embedding_size": self.embedding_size,
            "channel_policy": self.channel_policy,
        }
        return {**description, "pretrained": dict(self.details)} if self.details else description


T = TypeVar("T")


def guarded(source: str, function: str, call: Callable[[], T]) -> T:
    """``call()``, the user's module code, with anything it raises (``SystemExit`` too) turned into one
    :class:`UserError` naming the module and the function: a user's encoder may fail in any way, and the
    workflow must end with a message, not with that module's traceback or its exit status."""
    try:
        return call()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - the user's code may raise anything, SystemExit included
        detail = " ".join(str(error).split()) or "no message"
        if isinstance(error, SystemExit):
            detail = f"exit status {error.code!r}"
        raise UserError(
            f"encoder module {source}: {function} failed ({type(error).__name__}: {detail[:300]}); "
            "fix the module or choose another --encoder."
        ) from None


def _import_hear_module(spec: str) -> ModuleType:
    path = Path(spec)
    if path.suffix == ".py":
        if not path.is_file():
            raise FileNotFoundError(f"HEAR module file {path} does not exist")
        name = f"_audioenc_hear_module_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise UserError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            guarded(spec, "import", lambda: module_spec.loader.exec_module(module))
        except UserError:
            sys.modules.pop(name, None)
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if error.name != spec.split(".")[0] and error.name != spec:
            raise UserError(
                f"encoder module {spec}: import failed (ModuleNotFoundError: {error}); install what it "
                "needs or choose another --encoder."
            ) from None
        raise FileNotFoundError(
            f"encoder {spec!r} is neither an existing file or folder (codec run folder, "
            f"model_best.safetensors, checkpoint_*.pt, weak-CRNN folder, module.py) nor an importable "
            f"Python module ({error})"
        ) from error
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - the same one message as a module file's failure
        return guarded(spec, "import", lambda: importlib.import_module(spec))


def _model_number(source: str, model: Any, name: str) -> int:
    """The HEAR attribute ``name`` of the user's model as a positive integer, or a :class:`UserError`."""
    value = getattr(model, name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    given = value if isinstance(value, (int, float)) or not math.isfinite(number) else number
    check_number(
        f"encoder module {source}: load_model().{name}",
        given,
        minimum=1,
        integer=True,
        hint="A HEAR model declares a positive whole number here.",
    )
    return int(number)


def load_encoder(spec: str | Path, weights: str | None = None, **options: Any) -> EncoderHandle:
    """Load a frozen encoder for probing (accepted forms in the module docstring).

    Args:
        spec: a codec run folder / ``.safetensors`` export / ``checkpoint_*.pt``, a weak-CRNN
            folder, a ``transformers`` snapshot folder, a ``.py`` file or an importable module name
            with the HEAR API.
        weights: passed to a HEAR module's ``load_model`` (ignored for this package's encoders,
            whose file is ``spec`` itself).
        **options: a snapshot's options (:data:`audioenc.timing.pretrained.hf.OPTIONS`: ``layer``,
            ``bandwidth``, ``max_seconds``, ``overlap_seconds``, ``batch_size``); no other kind takes any.

    Returns:
        The :class:`EncoderHandle`. Its model is in eval mode where it is a torch module.
    """
    text = str(spec)
    path = Path(text)
    if pretrained_hf.snapshot_folder(path) is not None:
        return _load_snapshot(text, options)
    if options:
        raise UserError(
            f"encoder options {', '.join(sorted(options))} apply to transformers snapshot folders; {text} is not one."
        )
    if path.exists() and path.suffix != ".py":
        # The model's own rate: clips are resampled once, here, not to a HEAR rate and again inside.
        model = hear.load_model(str(path), sample_rate=None)
        policy = f"clips downmixed to mono (mean of channels), resampled with soxr to {model.sample_rate} Hz"
        if model.channel_policy is not None:
            policy += f"; the {model.kind}'s encoder gets {model.channel_policy}"
        return EncoderHandle(
            model.kind, text, model, hear, int(model.sample_rate), int(model.timestamp_embedding_size), policy
        )
    module = _import_hear_module(text)
    missing = [name for name in ("load_model", "get_timestamp_embeddings") if not callable(getattr(module, name, None))]
    if missing:
        raise UserError(
            f"HEAR module {text!r} lacks {', '.join(missing)}; a HEAR module defines load_model, "
            "get_timestamp_embeddings and get_scene_embeddings"
        )
    model = guarded(text, "load_model", lambda: module.load_model(weights) if weights else module.load_model())
    absent = [name for name in ("sample_rate", "timestamp_embedding_size") if not hasattr(model, name)]
    if absent:
        raise UserError(f"the model from {text}.load_model() lacks the HEAR attribute(s) {', '.join(absent)}")
    if isinstance(model, nn.Module):
        model.eval()
    rate = _model_number(text, model, "sample_rate")
    return EncoderHandle(
        "hear_module",
        text,
        model,
        module,
        rate,
        _model_number(text, model, "timestamp_embedding_size"),
        f"clips downmixed to mono (mean of channels), resampled with soxr to {rate} Hz",
    )


def _load_snapshot(text: str, options: dict[str, Any]) -> EncoderHandle:
    """A ``transformers`` snapshot folder through its family (:mod:`audioenc.timing.pretrained.hf`)."""
    unknown = sorted(set(options) - set(pretrained_hf.OPTIONS))
    if unknown:
        raise UserError(
            f"encoder option(s) {', '.join(unknown)} unknown for the snapshot {text}; valid: "
            f"{', '.join(pretrained_hf.OPTIONS)}."
        )
    model = pretrained_hf.load_snapshot(text, **options)
    policy = f"clips downmixed to mono (mean of channels), resampled with soxr to {model.sample_rate} Hz"
    if model.channel_policy is not None:
        policy += f"; the {model.family.name}'s encoder gets {model.channel_policy}"
    return EncoderHandle(
        model.kind,
        text,
        model,
        pretrained_hf,
        int(model.sample_rate),
        int(model.timestamp_embedding_size),
        policy,
        model.describe(),
    )


def frame_rate_from_timestamps(timestamps_ms: np.ndarray, where: str = "encoder") -> float:
    """Frames per second from HEAR timestamps ``[frames]`` in ms: ``1000 / step``, the step from
    the first and last timestamps (float32 timestamps make single steps inexact). Timestamps
    must be evenly spaced (every step within 1 % of the mean)."""
    timestamps_ms = np.asarray(timestamps_ms, dtype=np.float64)
    if timestamps_ms.ndim != 1 or len(timestamps_ms) < 2:
        raise UserError(
            f"{where}: {len(np.atleast_1d(timestamps_ms))} timestamp(s) for a clip: the encoder has no time axis "
            "to probe (it summarises the clip); use an encoder with frame-level embeddings"
        )
    step = float(timestamps_ms[-1] - timestamps_ms[0]) / (len(timestamps_ms) - 1)
    if not step > 0:
        raise UserError(f"{where}: timestamps do not increase (mean step {step} ms)")
    if np.max(np.abs(np.diff(timestamps_ms) - step)) > 0.01 * step:
        raise UserError(
            f"{where}: timestamps are not evenly spaced (mean step {step:.4f} ms); a frame grid needs a constant hop"
        )
    return 1000.0 / step


def to_frame_grid(embeddings: np.ndarray, timestamps_ms: np.ndarray, duration: float, frame_rate: float) -> np.ndarray:
    """Embeddings ``[frames, E]`` at ``timestamps_ms`` -> ``[E, G]`` on the grid of ``frame_rate``.

    ``G = ceil(duration * frame_rate - 0.001)`` (at least 1); grid frame ``j`` takes the embedding frame
    whose timestamp is nearest to ``(j + 1/2) / frame_rate`` seconds (the earlier one on a tie).
    """
    embeddings = np.asarray(embeddings)
    timestamps_ms = np.asarray(timestamps_ms, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(timestamps_ms):
        raise UserError(f"embeddings {embeddings.shape} and timestamps {timestamps_ms.shape} do not match")
    # 1e-3 frame of slack: a rate estimated from float32 timestamps is off by ~1e-5 frame over a
    # clip, while a clip one sample longer than a whole number of frames exceeds it by > 1e-3.
    frames = max(1, math.ceil(duration * frame_rate - 1e-3))
    centres = frame_centres(frames, frame_rate, milliseconds=True)
    right = np.clip(np.searchsorted(timestamps_ms, centres), 0, len(timestamps_ms) - 1)
    left = np.clip(right - 1, 0, len(timestamps_ms) - 1)
    nearest = np.where(np.abs(timestamps_ms[left] - centres) <= np.abs(timestamps_ms[right] - centres), left, right)
    return np.ascontiguousarray(embeddings[nearest].T.astype(np.float32))


@dataclass
class FrameEmbeddings:
    """Frozen embeddings of a set of clips on one frame grid.

    Attributes:
        frames: ``[E, G]`` float32 per filename.
        frame_rate: grid frames per second.
        identity_map: whether every clip's grid frames are exactly the encoder's frames.
    """

    frames: dict[str, np.ndarray]
    frame_rate: float
    identity_map: bool


def encoder_embeddings(
    handle: EncoderHandle, audio_dir: str | Path, files: Sequence[str], frame_rate: float | None = None
) -> FrameEmbeddings:
    """Run the encoder (HEAR ``get_timestamp_embeddings``) on each clip, one clip per call.

    Args:
        handle: from :func:`load_encoder`.
        audio_dir: folder of the clips.
        files: filenames relative to ``audio_dir``.
        frame_rate: the grid's rate; default the model's ``frame_rate`` attribute when it has one
            that its timestamps confirm (this package's encoders), else the rate the timestamps
            show on the first clip. Every clip's own rate must agree within 0.1 %.

    Returns:
        :class:`FrameEmbeddings` ``[E, ceil(duration * rate)]`` per file.
    """
    result: dict[str, np.ndarray] = {}
    identity = True
    with torch.no_grad():
        for filename in files:
            path = Path(audio_dir) / filename
            audio = read_clip(path, handle.sample_rate)
            embeddings, timestamps = _timestamp_embeddings(handle, audio, path)
            rate = frame_rate_from_timestamps(timestamps, f"{handle.source} on {path}")
            _check_plausible_rate(handle, path, rate, len(timestamps), len(audio) / handle.sample_rate)
            if frame_rate is None:
                declared = getattr(handle.model, "frame_rate", None)
                exact = isinstance(declared, (int, float)) and abs(float(declared) - rate) <= 1e-3 * rate
                frame_rate = float(declared) if exact else rate
            elif abs(rate - frame_rate) > 1e-3 * frame_rate:
                raise UserError(f"{handle.source}: {path} gives {rate:.4f} frames/s, other clips {frame_rate:.4f}")
            duration = len(audio) / handle.sample_rate
            grid = to_frame_grid(embeddings, timestamps, duration, frame_rate)
            centres = frame_centres(grid.shape[1], frame_rate, milliseconds=True)
            identity &= grid.shape[1] == len(timestamps) and bool(
                np.allclose(timestamps, centres, atol=1e-3 * 1000 / frame_rate)
            )
            result[filename] = grid
    if frame_rate is None:
        raise UserError("no clips to embed")
    return FrameEmbeddings(result, float(frame_rate), identity)


def _timestamp_embeddings(handle: EncoderHandle, audio: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's ``[frames, E]`` embeddings and ``[frames]`` timestamps (ms) of one clip, checked.

    A user's module runs under :func:`guarded`, and what any encoder returns is checked before use:
    HEAR shapes, numbers, finite values (a NaN embedding would surface much later as a probe that
    cannot train, blaming nothing).
    """

    def call():
        return handle.api.get_timestamp_embeddings(torch.from_numpy(audio)[None], handle.model)

    where = f"encoder {handle.source} on {path}"
    result = guarded(handle.source, "get_timestamp_embeddings", call) if handle.kind == "hear_module" else call()
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise UserError(
            f"{where}: get_timestamp_embeddings returned {type(result).__name__}; HEAR returns "
            "(embeddings [n_sounds, frames, size], timestamps [n_sounds, frames] in ms)."
        )
    try:
        embeddings, timestamps = _as_numpy(result[0]), _as_numpy(result[1])
    except (TypeError, ValueError) as error:
        raise UserError(
            f"{where}: get_timestamp_embeddings returned something that is not arrays of numbers ({error})."
        ) from None
    if embeddings.ndim != 3 or embeddings.shape[0] != 1 or embeddings.shape[2] != handle.embedding_size:
        raise UserError(
            f"{handle.source}: timestamp embeddings of {path} have shape {embeddings.shape}; expected "
            f"[1, frames, {handle.embedding_size}] (HEAR: [n_sounds, frames, timestamp_embedding_size])"
        )
    if timestamps.ndim != 2 or timestamps.shape != embeddings.shape[:2]:
        raise UserError(
            f"{where}: timestamps have shape {timestamps.shape}, embeddings {embeddings.shape}; HEAR "
            "gives one timestamp per frame ([n_sounds, frames])."
        )
    for name, values in (("embeddings", embeddings), ("timestamps", timestamps)):
        if not np.isfinite(values).all():
            raise UserError(
                f"{where}: {name} hold {int(np.size(values) - np.isfinite(values).sum())} non-finite "
                "value(s) (NaN or infinity); the encoder must return finite numbers."
            )
    return embeddings[0], timestamps[0].astype(np.float64)


def _check_plausible_rate(handle: EncoderHandle, path: Path, rate: float, frames: int, duration: float) -> None:
    """Refuse timestamps whose rate cannot be milliseconds: more frames per second than samples, or a
    span that does not fit the clip (timestamps in seconds give a 1000x rate and a grid 1000x too big)."""
    expected = duration * rate
    if rate > handle.sample_rate or not 0.5 * expected - 2 <= frames <= 2 * expected + 2:
        raise UserError(
            f"encoder {handle.source} on {path}: {frames} frames over {duration:.3f} s, but the "
            f"timestamps step says {rate:.4g} frames/s; HEAR timestamps are milliseconds (seconds "
            "given?); return timestamps in ms."
        )


def _as_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def parameters_fingerprint(module: Any) -> dict[str, np.ndarray]:
    """Copies of every parameter and buffer of a torch module (for frozen-ness checks); ``{}`` otherwise."""
    if not isinstance(module, nn.Module):
        return {}
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in module.state_dict().items()}


def same_parameters(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> bool:
    """Whether two :func:`parameters_fingerprint` results are identical."""
    return before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


__all__ = [
    "EncoderHandle",
    "FrameEmbeddings",
    "encoder_embeddings",
    "frame_rate_from_timestamps",
    "load_encoder",
    "parameters_fingerprint",
    "same_parameters",
    "to_frame_grid",
]
