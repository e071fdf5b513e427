"""Local Hugging Face ``transformers`` snapshots as frozen encoders, through the HEAR API.

A **snapshot** is a folder holding ``config.json`` (with a ``model_type``) and the weights
(``model.safetensors``, a ``model.safetensors.index.json`` with its shards, or ``pytorch_model.bin``,
which ``transformers`` reads with ``torch.load(weights_only=True)``), optionally with
``preprocessor_config.json``: what ``save_pretrained`` writes and what a hub download leaves on disk.
It loads with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` (never a hub call), through the
family that its ``model_type`` names (:mod:`audioenc.timing.pretrained.families`). Anything missing
or unsupported is a :class:`~audioenc.errors.UserError` naming the folder and what to do.

Usage (HEAR, https://hearbenchmark.com; audio mono at ``model.sample_rate``)::

    model = load_model("/models/wav2vec2-base", layer=6)          # or layer="all"
    embeddings, timestamps = get_timestamp_embeddings(audio, model)  # [n, F, E], [n, F] ms
    scene = get_scene_embeddings(audio, model)                       # [n, E]

Options of :func:`load_model` (and of ``audioenc.timing.encoders.load_encoder``):

* ``layer``: hidden state ``N`` (0 = the input to the first transformer layer) or ``all``; for
  codecs ``latent`` or ``quantized``. Default: the family's (see :class:`PretrainedHEAR`).
* ``bandwidth``: kbps of ``quantized`` codec latents (default: every codebook).
* ``max_seconds``: the longest window one call takes (default: the model's own limit — Whisper
  30 s, AST 10.255 s, EnCodec's ``chunk_length_s`` — else none); ``overlap_seconds``: audio shared
  by neighbouring windows (default a fifth of the window). See
  :mod:`audioenc.timing.pretrained.windows`.
* ``batch_size``: sounds run at once; ``sample_rate``, ``device``: as :func:`audioenc.hear.load_model`.

``transformers`` is imported when a snapshot is loaded, not when this module is: it is an optional
dependency (``pip install 'audioenc[hf]'``) and takes seconds to import.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioenc import hear
from audioenc.errors import UserError
from audioenc.hear import HEARModule, TopSplit, get_scene_embeddings, get_timestamp_embeddings
from audioenc.interop.hf import require_transformers
from audioenc.timing.pretrained import families as _families  # noqa: F401 - registers the families
from audioenc.timing.pretrained.registry import Family, LayerChoice, family_for
from audioenc.timing.pretrained.windows import plan_windows, run_windowed

WEIGHT_FILES: tuple[str, ...] = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""The weight files ``save_pretrained`` writes (one of them, or an index with its shards)."""

OPTIONS: tuple[str, ...] = ("layer", "bandwidth", "max_seconds", "overlap_seconds", "batch_size")
"""Keyword options of :func:`load_snapshot` (beyond HEAR's ``sample_rate`` and ``device``)."""

DEFAULT_OVERLAP_SHARE = 0.2
"""Default share of a window that neighbouring windows have in common (context on each side of a cut)."""


# ------------------------------------------------------------------------------------------------
# The folder
# ------------------------------------------------------------------------------------------------


def snapshot_folder(path: str | Path) -> Path | None:
    """The folder of a ``transformers`` snapshot when ``path`` is one (or its ``config.json``), else None.

    A folder counts as a snapshot when its ``config.json`` is a ``transformers`` config (it names a
    ``model_type``, ``architectures`` or ``transformers_version``), or when it holds a ``transformers``
    weight file (:data:`WEIGHT_FILES`) and no readable ``config.json``: such a folder is refused with a
    reason by :func:`load_snapshot`, not passed on to loaders of other kinds. A readable ``config.json``
    of another kind (a weak-CRNN folder's) leaves the folder to its own loader.
    """
    path = Path(path)
    folder = path.parent if path.name == "config.json" and path.is_file() else path
    if not folder.is_dir():
        return None
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):  # absent, unreadable, not JSON: a snapshot only if transformers weights are here
        return folder if any((folder / name).is_file() for name in WEIGHT_FILES) else None
    keys = ("model_type", "architectures", "transformers_version")
    return folder if isinstance(config, dict) and any(key in config for key in keys) else None


def _read_config(folder: Path) -> dict:
    """``config.json`` as a dict with a string ``model_type``, or a :class:`UserError` saying what is wrong."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(
            f"{folder}: no config.json; a transformers snapshot holds config.json next to its weights "
            "(copy the whole folder that save_pretrained or the hub download wrote)."
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not a readable JSON file ({error}); restore it from the model's source.") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise UserError(
            f'{path} names no model_type; a transformers config.json has one (e.g. "wav2vec2"): restore the '
            "config.json that came with the weights."
        )
    return config


def _check_weights(folder: Path, model_type: str) -> str:
    """The weight file(s) present (a description), or a :class:`UserError` naming what is missing."""
    present = [name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not present:
        raise UserError(
            f"{folder}: config.json describes a {model_type} model but no weights are there (expected one of "
            f"{', '.join(WEIGHT_FILES)}); copy the weight file(s) into the folder."
        )
    name = present[0]
    if name.endswith(".index.json"):
        try:
            shards = sorted(set(json.loads((folder / name).read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise UserError(f"{folder / name} is not a weight index ({error}); restore it.") from None
        missing = [shard for shard in shards if not (folder / shard).is_file()]
        if missing:
            raise UserError(
                f"{folder}: {name} lists {len(shards)} weight shard(s) and {len(missing)} are missing "
                f"({', '.join(missing[:3])}); copy them into the folder."
            )
        return f"{name} ({len(shards)} shards)"
    return name


@contextmanager
def _offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` while loading (restored after). The hub library
    reads them when it is first imported, so a first import inside this block stays offline for the process."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _load_family(folder: Path) -> tuple[Family, str, bool]:
    """Load the snapshot in ``folder`` into its family: ``(family, weights description, has preprocessor file)``."""
    config = _read_config(folder)
    family_class = family_for(config["model_type"], folder)
    weights = _check_weights(folder, config["model_type"])
    with _offline():
        transformers = require_transformers()
        if int(transformers.__version__.split(".")[0]) < 5:
            raise UserError(
                f"pretrained encoders need transformers >= 5 (found {transformers.__version__}); "
                "upgrade it (pip install -U 'transformers>=5')."
            )
        model_class = getattr(transformers, family_class.model_class)
        try:
            model, info = model_class.from_pretrained(
                folder, local_files_only=True, output_loading_info=True, dtype=torch.float32
            )
            extractor = family_class.feature_extractor(transformers, folder, model.config)
        except Exception as error:  # noqa: BLE001 - any failure to read the user's files is the user's folder's
            detail = " ".join(str(error).split())[:300] or "no message"
            raise UserError(
                f"{folder}: transformers could not load it as {family_class.model_class} "
                f"({type(error).__name__}: {detail}); check that the snapshot is complete and uncorrupted."
            ) from None
    missing = [key for key in info["missing_keys"] if not key.startswith(family_class.unused_weights)]
    if missing:
        raise UserError(
            f"{folder}: the weights ({weights}) lack {len(missing)} tensor(s) the {family_class.name} encoder "
            f"needs (e.g. {', '.join(sorted(missing)[:3])}); they would be random. Use the complete snapshot."
        )
    model.eval().requires_grad_(False)
    family = family_class(model, model.config, extractor)
    return family, weights, (folder / "preprocessor_config.json").is_file()


# ------------------------------------------------------------------------------------------------
# The HEAR model
# ------------------------------------------------------------------------------------------------


class PretrainedHEAR(HEARModule):
    """A ``transformers`` snapshot as a HEAR model: frames at the family's stride, timestamps at the
    centres of their receptive fields (:mod:`audioenc.timing.pretrained.geometry`), long clips in
    windows (:mod:`audioenc.timing.pretrained.windows`).

    Embeddings ``[n, F, layers · E]``: one hidden state (``layers = 1``), or with ``layer="all"``
    every hidden state ``0 .. L - 1`` side by side, state ``l`` in columns ``l·E .. (l+1)·E - 1``
    (``layers = L``): a probe can view them as ``[F, L, E]`` and learn a softmax-weighted sum over
    ``L`` (SUPERB's convention).

    **Default layer.** Speech SSL models (wav2vec2, HuBERT, WavLM): the middle hidden state,
    ``num_hidden_layers // 2`` (6 of a 12-layer base model) — layer-wise probes and SUPERB's learned
    weights put phonetic and word content in the middle layers, while the last layers of these
    models specialise to their pretraining target and are often worse. Whisper and AST: the last
    state, the one their supervised training (the decoder's cross-attention, the classifier) reads.
    Codecs: the continuous ``latent``. ``layer="all"`` is SUPERB's choice, once a probe learns the
    weighted sum; one state keeps frames ``L`` times smaller (cheaper to cache and to probe).

    Attributes:
        family: the :class:`~audioenc.timing.pretrained.registry.Family` entry (its model is frozen).
        choice: the :class:`~audioenc.timing.pretrained.registry.LayerChoice` embedded.
        layer: that choice as text (``6``, ``all (0-12)``, ``latent``, ``quantized (…)``).
        layers: embedding groups ``L`` (1 unless ``layer="all"``).
        window_samples, overlap_samples: windowing (None: one window).
    """

    kind = "hf_snapshot"

    def __init__(
        self,
        family: Family,
        choice: LayerChoice,
        folder: Path,
        window_samples: int | None,
        overlap_samples: int,
        batch_size: int = 8,
        provenance: dict | None = None,
    ) -> None:
        super().__init__()
        self.encoder = family.model  # a submodule: .to(device) and parameters() reach the frozen weights
        self.family = family
        self.choice = choice
        self.folder = folder
        self.layer = choice.label()
        self.layers = choice.groups
        self.window_samples = window_samples
        self.overlap_samples = overlap_samples
        self.batch_size = batch_size
        self.provenance = dict(provenance or {})
        self.model_sample_rate = family.sample_rate
        self.sample_rate = family.sample_rate
        self.frame_rate = family.geometry.frame_rate
        self.timestamp_embedding_size = family.embedding_size * choice.groups
        self.scene_embedding_size = self.timestamp_embedding_size
        channels = getattr(family, "channels", 1)
        self.channel_policy = None if channels == 1 else f"mono repeated on all {channels} channels"

    @torch.no_grad()
    def frame_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """Mono ``[n, T]`` at the model's rate -> ``[n, geometry.frames(T), layers · E]``."""
        geometry = self.family.geometry
        plan = plan_windows(
            audio.shape[-1], geometry, self.window_samples, self.overlap_samples, f"encoder {self.folder}"
        )
        device = self._device()
        outputs = []
        for start in range(0, audio.shape[0], self.batch_size):
            sounds = audio[start : start + self.batch_size].to(device=device, dtype=torch.float32)
            outputs.append(run_windowed(sounds, plan, geometry.stride, self._window))
        return torch.cat(outputs, dim=0)

    def _window(self, sounds: torch.Tensor) -> torch.Tensor:
        frames = self.family.embed(sounds, self.choice)
        expected = self.family.geometry.frames(sounds.shape[-1])
        if frames.shape[1] != expected:
            raise RuntimeError(
                f"{self.family.name}: {frames.shape[1]} frames for {sounds.shape[-1]} samples, "
                f"its geometry says {expected}"
            )
        return frames

    def split_top(self, top_layers: int = 1) -> TopSplit:
        """The top ``top_layers`` transformer layers below the chosen hidden state(s) as a trainable copy
        (:meth:`~audioenc.timing.pretrained.families.HiddenStateFamily.split_layers`); ``lower`` takes a
        clip at :attr:`sample_rate`, resampled as the HEAR functions resample it. A clip must fit one
        window (the frozen path windows longer ones; the top's layers would need each window's
        positions); codecs are refused (:class:`~audioenc.errors.UserError`)."""
        split = self.family.split_layers(self.choice, top_layers)
        window = self.window_samples

        def lower(audio: np.ndarray) -> np.ndarray:
            sound = self.clip_to_model_rate(audio)
            if window is not None and sound.shape[-1] > window:
                rate = self.family.sample_rate
                raise UserError(
                    f"encoder {self.folder}: adapting its top layers needs each clip in one window, and a clip of "
                    f"{sound.shape[-1] / rate:g} s exceeds the {window / rate:g} s window; use clips of at most "
                    "that length (or a longer max_seconds where the model allows it)."
                )
            return split.lower(sound)

        return TopSplit(split.top, lower, split.description)

    def timestamps_ms(self, n_sounds: int, n_frames: int, device: torch.device) -> torch.Tensor:
        """Receptive-field centres ``[n_sounds, n_frames]`` float32 in ms (the family's geometry)."""
        centres = torch.from_numpy(self.family.geometry.timestamps_ms(n_frames)).to(torch.float32)
        return centres.to(device).unsqueeze(0).expand(n_sounds, -1).contiguous()

    def describe(self) -> dict:
        """Plain JSON for reports: family, layer(s), frames, receptive field, rates, window."""
        family, rate = self.family, self.family.sample_rate
        return {
            "family": family.name,
            "model_type": family.config.model_type,
            "model_class": family.model_class,
            "folder": str(self.folder),
            "layer": self.layer,
            "layer_is_default": self.choice.is_default,
            "default_reason": family.default_reason,
            "layers": self.layers,
            "hidden_states": family.layer_count(),
            "embedding_size": self.timestamp_embedding_size,
            **family.geometry.describe(),
            "receptive_field_note": family.receptive_field_note,
            "max_seconds": None if family.max_samples is None else family.max_samples / rate,
            "window_seconds": None if self.window_samples is None else self.window_samples / rate,
            "overlap_seconds": self.overlap_samples / rate,
            "codebooks": self.choice.codebooks,
            "bandwidth_kbps": self.choice.bandwidth_kbps,
            "parameters": sum(parameter.numel() for parameter in self.encoder.parameters()),
            **self.provenance,
        }


def _seconds_option(name: str, value: object) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not np.isfinite(seconds) or seconds <= 0:
        raise UserError(f"{name}={value!r}: give a positive number of seconds.")
    return seconds


def _window_samples(family: Family, max_seconds: object, overlap_seconds: object) -> tuple[int | None, int]:
    """(window, overlap) in samples from the options and the family's limit; both multiples of the stride."""
    rate, stride, limit = family.sample_rate, family.geometry.stride, family.max_samples
    asked, overlap = _seconds_option("max_seconds", max_seconds), _seconds_option("overlap_seconds", overlap_seconds)
    window = limit if asked is None else int(round(asked * rate))
    if limit is not None and window > limit:
        raise UserError(
            f"max_seconds={max_seconds}: this {family.name} model takes at most {limit / rate:g} s at once; "
            "give that or less."
        )
    if window is None:
        return None, 0 if overlap is None else int(round(overlap * rate))
    shared = DEFAULT_OVERLAP_SHARE * window if overlap is None else overlap * rate
    shared = int(round(shared / stride)) * stride
    if not 0 <= shared < window - stride:
        raise UserError(
            f"overlap_seconds={overlap_seconds}: windows of {window / rate:g} s need an overlap shorter than "
            f"{(window - stride) / rate:g} s."
        )
    return window, shared


def load_snapshot(
    path: str | Path,
    layer: object = None,
    bandwidth: float | None = None,
    max_seconds: float | None = None,
    overlap_seconds: float | None = None,
    batch_size: int = 8,
) -> PretrainedHEAR:
    """Load the snapshot at ``path`` (its folder or its ``config.json``) as a :class:`PretrainedHEAR`
    at the model's own sample rate (options in the module docstring)."""
    folder = snapshot_folder(path)
    if folder is None:
        raise UserError(f"{path} is not a transformers snapshot folder (config.json with a model_type + weights).")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size={batch_size!r}: give a whole number of sounds >= 1.")
    family, weights, has_preprocessor = _load_family(folder)
    choice = family.choose(layer, bandwidth)
    window, overlap = _window_samples(family, max_seconds, overlap_seconds)
    provenance = {
        "weights": weights,
        "preprocessing": "preprocessor_config.json"
        if has_preprocessor
        else "transformers' defaults (no preprocessor_config.json)",
    }
    return PretrainedHEAR(family, choice, folder, window, overlap, batch_size, provenance).eval()


def register() -> None:
    """Register the snapshot loader with :func:`audioenc.hear.register_loader` (once)."""
    if not any(loader.name == PretrainedHEAR.kind for loader in hear.LOADERS):
        hear.register_loader(
            PretrainedHEAR.kind, lambda path: snapshot_folder(path) is not None, load_snapshot, OPTIONS
        )


def load_model(model_file_path: str = "", **kwargs: Any) -> HEARModule:
    """HEAR ``load_model`` for a snapshot folder (any kind :func:`audioenc.hear.load_model` knows; its
    ``sample_rate`` default is 48000 there, so give ``sample_rate=None`` for the model's own rate)."""
    register()
    return hear.load_model(model_file_path, **kwargs)


register()

__all__ = [
    "OPTIONS",
    "PretrainedHEAR",
    "WEIGHT_FILES",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "load_model",
    "load_snapshot",
    "register",
    "snapshot_folder",
]
