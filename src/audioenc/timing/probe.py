"""Frozen encoder + probe head, against a scratch baseline, with light adaptation and
bootstrap confidence intervals over clips.

The question this module answers: *does a pretrained encoder's frame sequence already carry
the events, with their timing, or does the task need a model trained for it?*

1. **Encoders** (:func:`load_encoder`): anything with the HEAR API — a codec from
   ``audioenc train`` (run folder, ``model_best.safetensors`` or ``checkpoint_*.pt``), a weak-label
   CRNN folder (:func:`audioenc.timing.weak.save_weak_encoder`), both through
   :mod:`audioenc.hear`, or a Python module (a ``.py`` file or an importable name) exposing
   ``load_model`` and ``get_timestamp_embeddings``. Audio reaches the encoder as a mono downmix
   resampled with soxr to the encoder's ``sample_rate``.
2. **Frames on one grid** (:func:`to_frame_grid`): HEAR timestamps are milliseconds; the
   embedding frame whose timestamp is nearest to each grid centre ``(j + 1/2) / rate`` s is
   taken, so grid frame ``j`` spans ``[j, j + 1) / rate`` seconds as everywhere in
   :mod:`audioenc.timing`. ``rate`` is the encoder's own frame rate (1000 / timestamp step);
   for the encoders of this package the map is the identity.
3. **Probe** (:class:`ProbeHead`): a per-frame two-layer perceptron on the frozen embeddings
   (the HEAR timestamp-probe protocol), a sigmoid per class and a pooling rule to clip scores,
   trained from clip labels only. Per frame, so it sees only what the encoder kept at that
   frame: the encoder's parameters never reach an optimizer, and its embeddings are computed
   once under ``no_grad``.
4. **Scratch baseline**: :class:`audioenc.timing.weak.WeakCRNN` trained from random weights on the
   same split and labels (the workflow trains it; see :mod:`audioenc.timing.workflow`).
5. **Light adaptation** (:func:`adaptation_split`, :class:`AdaptedModel`): the encoder's top
   block(s) — the codec encoder's LSTM and final convolution, or the CRNN's bidirectional GRU —
   are copied and trained together with the probe (initialised from the frozen probe) at
   ``lr_factor`` times the probe's learning rate. The layers below are run once and cached, so
   adaptation costs as much as training the top block. The original encoder is never changed.
6. **When to adapt** (:class:`AdaptationRule`): only when the frozen path stops short of the
   scratch baseline by a stated margin; the gain must then clear a margin with a paired
   bootstrap interval above zero to justify changing the encoder.

Bootstrap (:func:`bootstrap`): clips are resampled with replacement (``B`` resamples, indices
from ``numpy.random.default_rng(seed).integers(0, n, size=(B, n))``); a statistic is evaluated
on every resample and the interval is the ``(1 - c) / 2`` and ``(1 + c) / 2`` percentiles
(percentile method). Comparisons of two models use the *same* resamples (paired), so the
interval of a difference reflects only how the models differ on the same clips.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from audioenc.audio.formats import Event, EventSplit
from audioenc.timing.boundaries import (
    OFFSET_COLLAR_RATE,
    OFFSET_COLLAR_SECONDS,
    ONSET_COLLAR_SECONDS,
    PSDS1,
    PSDS2,
    audio_id,
    boundary_errors,
    collar_f1,
    positive_files,
    psds,
    score_dataframes,
    summarize_boundaries,
)
from audioenc.timing.features import load_audio
from audioenc.timing.pooling import make_pooling
from audioenc.timing.weak import CRNNOutput, Predictions, TrainingHistory, collate_padded

TOLERANCE_SECONDS = 0.2
"""Onset/offset tolerance of the boundary shares (the DCASE onset collar)."""


# =========================================================================== encoders


@dataclass
class EncoderHandle:
    """A loaded encoder and the module whose HEAR functions run it.

    Attributes:
        kind: ``codec``, ``weak_crnn`` (both via :mod:`audioenc.hear`) or ``hear_module``.
        source: what the caller named (path or module name).
        model: the object ``load_model`` returned.
        api: the module providing ``get_timestamp_embeddings`` for ``model``.
        sample_rate: Hz the encoder expects.
        embedding_size: size of a timestamp embedding.
        channel_policy: how clip audio reaches the encoder (stated in reports).
    """

    kind: str
    source: str
    model: Any
    api: ModuleType
    sample_rate: int
    embedding_size: int
    channel_policy: str

    def describe(self) -> dict:
        """Plain-JSON description (no model object)."""
        return {
            "kind": self.kind,
            "source": self.source,
            "sample_rate": self.sample_rate,
            "embedding_size": self.embedding_size,
            "channel_policy": self.channel_policy,
        }


def _import_hear_module(spec: str) -> ModuleType:
    path = Path(spec)
    if path.suffix == ".py":
        if not path.is_file():
            raise FileNotFoundError(f"HEAR module file {path} does not exist")
        name = f"_audioenc_hear_module_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ValueError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            f"encoder {spec!r} is neither an existing file or folder (codec run folder, "
            f"model_best.safetensors, checkpoint_*.pt, weak-CRNN folder, module.py) nor an importable "
            f"Python module ({error})"
        ) from error


def load_encoder(spec: str | Path, weights: str | None = None) -> EncoderHandle:
    """Load a frozen encoder for probing (accepted forms in the module docstring).

    Args:
        spec: a codec run folder / ``.safetensors`` export / ``checkpoint_*.pt``, a weak-CRNN
            folder, a ``.py`` file or an importable module name with the HEAR API.
        weights: passed to a HEAR module's ``load_model`` (ignored for this package's encoders,
            whose file is ``spec`` itself).

    Returns:
        The :class:`EncoderHandle`. Its model is in eval mode where it is a torch module.
    """
    from audioenc import hear

    text = str(spec)
    path = Path(text)
    if path.exists() and path.suffix != ".py":
        model = hear.load_model(str(path))
        kind = "codec" if isinstance(model, hear.CodecHEAR) else "weak_crnn" if isinstance(model, hear.WeakCRNNHEAR) else "hear"
        if kind == "codec":
            policy = (
                "clips downmixed to mono (mean of channels), resampled with soxr to "
                f"{model.sample_rate} Hz; the codec's encoder gets {model.channel_policy}"
            )
        else:
            policy = f"clips downmixed to mono (mean of channels), resampled with soxr to {model.sample_rate} Hz"
        return EncoderHandle(kind, text, model, hear, int(model.sample_rate), int(model.timestamp_embedding_size), policy)
    module = _import_hear_module(text)
    missing = [name for name in ("load_model", "get_timestamp_embeddings") if not callable(getattr(module, name, None))]
    if missing:
        raise ValueError(f"HEAR module {text!r} lacks {', '.join(missing)}; a HEAR module defines load_model, "
                         "get_timestamp_embeddings and get_scene_embeddings")
    model = module.load_model(weights) if weights else module.load_model()
    absent = [name for name in ("sample_rate", "timestamp_embedding_size") if not hasattr(model, name)]
    if absent:
        raise ValueError(f"the model from {text}.load_model() lacks the HEAR attribute(s) {', '.join(absent)}")
    if isinstance(model, nn.Module):
        model.eval()
    rate = int(model.sample_rate)
    return EncoderHandle(
        "hear_module", text, model, module, rate, int(model.timestamp_embedding_size),
        f"clips downmixed to mono (mean of channels), resampled with soxr to {rate} Hz",
    )


def frame_rate_from_timestamps(timestamps_ms: np.ndarray, where: str = "encoder") -> float:
    """Frames per second from HEAR timestamps ``[frames]`` in ms: ``1000 / step``, the step from
    the first and last timestamps (float32 timestamps make single steps inexact). Timestamps
    must be evenly spaced (every step within 1 % of the mean)."""
    timestamps_ms = np.asarray(timestamps_ms, dtype=np.float64)
    if timestamps_ms.ndim != 1 or len(timestamps_ms) < 2:
        raise ValueError(
            f"{where}: {len(np.atleast_1d(timestamps_ms))} timestamp(s) for a clip: the encoder has no time axis "
            "to probe (it summarises the clip); use an encoder with frame-level embeddings"
        )
    step = float(timestamps_ms[-1] - timestamps_ms[0]) / (len(timestamps_ms) - 1)
    if not step > 0:
        raise ValueError(f"{where}: timestamps do not increase (mean step {step} ms)")
    if np.max(np.abs(np.diff(timestamps_ms) - step)) > 0.01 * step:
        raise ValueError(f"{where}: timestamps are not evenly spaced (mean step {step:.4f} ms); a frame grid needs a "
                         "constant hop")
    return 1000.0 / step


def to_frame_grid(embeddings: np.ndarray, timestamps_ms: np.ndarray, duration: float, frame_rate: float) -> np.ndarray:
    """Embeddings ``[frames, E]`` at ``timestamps_ms`` -> ``[E, G]`` on the grid of ``frame_rate``.

    ``G = ceil(duration * frame_rate - 0.001)`` (at least 1); grid frame ``j`` takes the embedding frame
    whose timestamp is nearest to ``(j + 1/2) / frame_rate`` seconds (the earlier one on a tie).
    """
    embeddings = np.asarray(embeddings)
    timestamps_ms = np.asarray(timestamps_ms, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(timestamps_ms):
        raise ValueError(f"embeddings {embeddings.shape} and timestamps {timestamps_ms.shape} do not match")
    # 1e-3 frame of slack: a rate estimated from float32 timestamps is off by ~1e-5 frame over a
    # clip, while a clip one sample longer than a whole number of frames exceeds it by > 1e-3.
    frames = max(1, math.ceil(duration * frame_rate - 1e-3))
    centres = (np.arange(frames) + 0.5) * 1000.0 / frame_rate
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


def encoder_embeddings(handle: EncoderHandle, audio_dir: str | Path, files: Sequence[str],
                       frame_rate: float | None = None) -> FrameEmbeddings:
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
            audio = load_audio(path, handle.sample_rate)
            embeddings, timestamps = handle.api.get_timestamp_embeddings(torch.from_numpy(audio)[None], handle.model)
            embeddings = _as_numpy(embeddings)[0]
            timestamps = _as_numpy(timestamps)[0].astype(np.float64)
            if embeddings.ndim != 2 or embeddings.shape[1] != handle.embedding_size:
                raise ValueError(
                    f"{handle.source}: timestamp embeddings of {path} have shape {embeddings.shape}; expected "
                    f"[frames, {handle.embedding_size}] (HEAR: [n_sounds, frames, timestamp_embedding_size])"
                )
            rate = frame_rate_from_timestamps(timestamps, f"{handle.source} on {path}")
            if frame_rate is None:
                declared = getattr(handle.model, "frame_rate", None)
                exact = isinstance(declared, (int, float)) and abs(float(declared) - rate) <= 1e-3 * rate
                frame_rate = float(declared) if exact else rate
            elif abs(rate - frame_rate) > 1e-3 * frame_rate:
                raise ValueError(f"{handle.source}: {path} gives {rate:.4f} frames/s, other clips {frame_rate:.4f}")
            duration = len(audio) / handle.sample_rate
            grid = to_frame_grid(embeddings, timestamps, duration, frame_rate)
            centres = (np.arange(grid.shape[1]) + 0.5) * 1000.0 / frame_rate
            identity &= grid.shape[1] == len(timestamps) and bool(np.allclose(timestamps, centres, atol=1e-3 * 1000 / frame_rate))
            result[filename] = grid
    if frame_rate is None:
        raise ValueError("no clips to embed")
    return FrameEmbeddings(result, float(frame_rate), identity)


def _as_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


# =========================================================================== probe head


@dataclass(frozen=True)
class ProbeConfig:
    """Probe head and its training.

    Attributes:
        hidden: units of the per-frame hidden layer.
        dropout: dropout on the hidden layer while training.
        epochs: passes over the training clips.
        batch_size: clips per step.
        learning_rate: Adam step size of the probe.
        adapt_epochs: passes while adapting the top block(s).
        adapt_lr_factor: the top block's learning rate relative to ``learning_rate``.
    """

    hidden: int = 64
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 3e-3
    adapt_epochs: int = 6
    adapt_lr_factor: float = 0.1


class ProbeHead(nn.Module):
    """Per-frame probe on frozen embeddings, pooled to clip scores.

    Math, for embeddings ``e`` ``[B, E, F]`` (train-set mean ``mu`` and std ``sigma`` per dim)::

        z = (e - mu) / sigma
        h = ReLU(W1 z + b1)                [B, hidden, F]   (1x1 convolution = per frame)
        y = sigmoid(W2 h + b2)             [B, K, F]        frame scores
        clip = pool(y, features=h, mask)   [B, K]           (a rule of audioenc.timing.pooling)

    Args:
        embedding_size: ``E``.
        classes: class names, in output order.
        pooling: pooling rule name.
        hidden: hidden units.
        dropout: dropout on ``h`` in training mode.
    """

    def __init__(self, embedding_size: int, classes: Sequence[str], pooling: str, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.classes = tuple(classes)
        self.pooling_name = pooling
        self.register_buffer("embedding_mean", torch.zeros(embedding_size))
        self.register_buffer("embedding_std", torch.ones(embedding_size))
        self.hidden = nn.Conv1d(embedding_size, hidden, kernel_size=1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv1d(hidden, len(self.classes), kernel_size=1)
        self.pooling = make_pooling(pooling, len(self.classes), in_features=hidden)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension ``(e - mean) / std``, shapes ``[E]`` (std floored at 1e-5)."""
        self.embedding_mean.copy_(mean)
        self.embedding_std.copy_(std.clamp_min(1e-5))

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor | None = None) -> CRNNOutput:
        if mask is None:
            mask = torch.ones(embeddings.shape[0], embeddings.shape[-1], dtype=torch.bool, device=embeddings.device)
        normalised = (embeddings - self.embedding_mean[:, None]) / self.embedding_std[:, None]
        hidden = self.dropout(torch.relu(self.hidden(normalised)))
        frame_scores = torch.sigmoid(self.head(hidden))
        clip_scores = self.pooling(frame_scores, hidden, mask)
        return CRNNOutput(frame_scores=frame_scores, clip_scores=clip_scores, embeddings=hidden, mask=mask)


def embedding_statistics(frames: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``[E]`` over every frame of ``frames`` (float64 sums)."""
    total = sum(item.astype(np.float64).sum(axis=1) for item in frames.values())
    squares = sum((item.astype(np.float64) ** 2).sum(axis=1) for item in frames.values())
    count = sum(item.shape[1] for item in frames.values())
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


# =========================================================================== training


def clip_targets(split: EventSplit, classes: Sequence[str], files: Sequence[str] | None = None) -> np.ndarray:
    """Multi-hot clip labels ``[clips, classes]`` float32 from the split's weak labels."""
    files = split.files if files is None else files
    index = {name: k for k, name in enumerate(classes)}
    targets = np.zeros((len(files), len(classes)), dtype=np.float32)
    for row, filename in enumerate(files):
        for label in split.weak[filename]:
            if label in index:
                targets[row, index[label]] = 1.0
    return targets


def _bce(clip_scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # Clamped: max / linear-softmax pools reach exactly 0 or 1, where the log is -inf.
    return nn.functional.binary_cross_entropy(clip_scores.clamp(1e-6, 1 - 1e-6), targets)


def train_frame_model(
    model: nn.Module,
    train_inputs: Sequence[np.ndarray],
    train_targets: np.ndarray,
    valid_inputs: Sequence[np.ndarray],
    valid_targets: np.ndarray,
    *,
    parameter_groups: list[dict],
    epochs: int,
    batch_size: int,
    seed: int,
    name: str = "probe",
    include_start: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainingHistory:
    """Train ``model(inputs [B, D, F], mask [B, F]) -> CRNNOutput`` on clip labels (BCE of the
    pooled clip scores), Adam over ``parameter_groups``; keep the weights of the epoch with the
    lowest validation loss (the model is left with them, in eval mode).

    Only parameters in ``parameter_groups`` change: a frozen encoder is simply absent from them.
    Batch order and dropout draw from ``seed``. With ``include_start`` the starting weights
    compete too (``best_epoch = -1`` when no epoch beats them): fine-tuning from a working
    model must not end below where it started on the validation clips.
    """
    if len(train_inputs) != len(train_targets) or len(valid_inputs) != len(valid_targets):
        raise ValueError("inputs and targets differ in length")
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(parameter_groups)
    order_generator = torch.Generator().manual_seed(seed)
    history = TrainingHistory(pooling=name, seed=seed)
    best_state, best_loss = None, float("inf")
    if include_start:
        model.eval()
        start = _clip_scores(model, valid_inputs)
        best_loss = float(_bce(torch.from_numpy(start), torch.from_numpy(valid_targets)))
        best_state, history.best_epoch = copy.deepcopy(model.state_dict()), -1
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_inputs), generator=order_generator).tolist()
        losses = []
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch, mask = collate_padded([train_inputs[row] for row in rows])
            loss = _bce(model(batch, mask).clip_scores, torch.from_numpy(train_targets[rows]))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_([p for group in parameter_groups for p in group["params"]], 5.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        model.eval()
        scores = _clip_scores(model, valid_inputs)
        valid_loss = float(_bce(torch.from_numpy(scores), torch.from_numpy(valid_targets)))
        history.train_loss.append(float(np.mean(losses)))
        history.valid_loss.append(valid_loss)
        history.valid_accuracy.append(float(np.mean((scores >= 0.5) == (valid_targets >= 0.5))))
        history.seconds.append(time.perf_counter() - started)
        if valid_loss < best_loss:
            best_loss, best_state, history.best_epoch = valid_loss, copy.deepcopy(model.state_dict()), epoch
        if log is not None:
            log(f"[{name}] epoch {epoch + 1}/{epochs}: train loss {history.train_loss[-1]:.4f}, "
                f"valid loss {valid_loss:.4f} ({history.seconds[-1]:.1f} s)")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _clip_scores(model: nn.Module, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Clip scores ``[clips, K]``, one clip per forward pass (no padding: exact for any top block)."""
    with torch.no_grad():
        return np.stack([model(torch.from_numpy(item)[None]).clip_scores[0].numpy() for item in inputs]).astype(np.float32)


def predict_frames(model: nn.Module, inputs: Mapping[str, np.ndarray], frame_rate: float,
                   classes: Sequence[str]) -> Predictions:
    """Frame ``[K, F]`` and clip ``[K]`` scores per file, one clip per pass, eval mode, no grad."""
    model.eval()
    frame_scores, clip_scores = {}, {}
    with torch.no_grad():
        for filename in sorted(inputs):
            output = model(torch.from_numpy(inputs[filename])[None])
            frame_scores[filename] = output.frame_scores[0].numpy().astype(np.float64)
            clip_scores[filename] = output.clip_scores[0].numpy().astype(np.float64)
    return Predictions(frame_scores, clip_scores, float(frame_rate), tuple(classes))


def train_probe(
    train_frames: Mapping[str, np.ndarray],
    train_targets: np.ndarray,
    valid_frames: Mapping[str, np.ndarray],
    valid_targets: np.ndarray,
    classes: Sequence[str],
    pooling: str,
    *,
    config: ProbeConfig = ProbeConfig(),
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[ProbeHead, TrainingHistory]:
    """Train a :class:`ProbeHead` on frozen embeddings ``[E, F]`` per file (dict order = target rows)."""
    first = next(iter(train_frames.values()))
    torch.manual_seed(seed)
    probe = ProbeHead(first.shape[0], classes, pooling, config.hidden, config.dropout)
    probe.set_normalization(*embedding_statistics(train_frames))
    history = train_frame_model(
        probe, list(train_frames.values()), train_targets, list(valid_frames.values()), valid_targets,
        parameter_groups=[{"params": list(probe.parameters()), "lr": config.learning_rate}],
        epochs=config.epochs, batch_size=config.batch_size, seed=seed, name=f"probe/{pooling}", log=log,
    )
    return probe, history


# =========================================================================== adaptation


class _CodecTop(nn.Module):
    """The codec encoder's top layers (LSTM, ELU, final conv): ``[B, W, F] -> [B, D, F]``."""

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, lower: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Causal layers: right padding of shorter clips never reaches their real frames.
        return self.layers(lower)


class _CRNNTop(nn.Module):
    """The weak CRNN's bidirectional GRU: ``[B, C, F] -> [B, 2H, F]`` (exact per length)."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, lower: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.rnn(lower.transpose(1, 2), lengths).transpose(1, 2)


@dataclass
class AdaptationSplit:
    """An encoder cut into frozen lower layers and a trainable copy of its top block(s).

    Attributes:
        top: ``top(lower [B, D, F], lengths [B]) -> embeddings [B, E, F]``; a deep copy.
        lower: audio ``[time]`` at the encoder's rate -> lower activations ``[D, F]`` (no grad).
        description: which layers are the top block(s).
    """

    top: nn.Module
    lower: Callable[[np.ndarray], np.ndarray]
    description: str


def adaptation_split(handle: EncoderHandle) -> tuple[AdaptationSplit | None, str]:
    """Cut an encoder for light adaptation; ``(None, reason)`` when its kind cannot be cut.

    * codec: the layers from the encoder's LSTM on (LSTM, ELU, final conv), or the final ELU +
      conv when it has no LSTM; below them the convolutional blocks, run one-shot.
    * weak CRNN: the bidirectional GRU; below it log-mel + CNN, captured by a forward hook on
      the GRU while the HEAR wrapper runs (so the cut is exactly what the HEAR path computes).
    * other HEAR modules expose only the HEAR functions: no blocks to unfreeze.
    """
    from audioenc import hear
    from audioenc.models.conv import StreamableLSTM

    model = handle.model
    if handle.kind == "codec" and isinstance(model, hear.CodecHEAR):
        layers = list(model.codec.encoder.model)
        lstm = [index for index, layer in enumerate(layers) if isinstance(layer, StreamableLSTM)]
        cut = lstm[-1] if lstm else len(layers) - 2
        lower_layers = nn.Sequential(*layers[:cut]).eval()
        channels = model.codec.channels
        top = _CodecTop(copy.deepcopy(nn.Sequential(*layers[cut:])))
        names = [type(layer).__name__ for layer in layers[cut:]]

        def lower_codec(audio: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                sounds = torch.from_numpy(audio)[None, None].expand(1, channels, -1)
                sounds = sounds / model.codec.input_scale(sounds)  # as the HEAR path normalises
                return lower_layers(sounds)[0].numpy().astype(np.float32)

        return AdaptationSplit(top, lower_codec, f"codec encoder layers {cut}-{len(layers) - 1} ({', '.join(names)})"), ""
    if handle.kind == "weak_crnn" and isinstance(model, hear.WeakCRNNHEAR):
        rnn = model.crnn.rnn
        top = _CRNNTop(copy.deepcopy(rnn))

        def lower_crnn(audio: np.ndarray) -> np.ndarray:
            captured: dict[str, torch.Tensor] = {}
            hook = rnn.register_forward_hook(lambda module, inputs, output: captured.update(sequence=inputs[0]))
            try:
                with torch.no_grad():
                    model.frame_embeddings(torch.from_numpy(audio)[None])
            finally:
                hook.remove()
            return captured["sequence"][0].T.numpy().astype(np.float32)

        return AdaptationSplit(top, lower_crnn, "weak-CRNN bidirectional GRU (the layer that makes the embeddings)"), ""
    return None, (
        f"a {handle.kind} encoder ({handle.source}) exposes only the HEAR functions, not its blocks, so its top "
        "block cannot be unfrozen here"
    )


class AdaptedModel(nn.Module):
    """Trainable top block(s) + probe: ``lower [B, D, F] -> top -> embeddings -> probe``.

    Args:
        top: from :class:`AdaptationSplit` (trainable copy).
        probe: a trained :class:`ProbeHead` (copied; training continues from it).
    """

    def __init__(self, top: nn.Module, probe: ProbeHead) -> None:
        super().__init__()
        self.top = top
        self.probe = copy.deepcopy(probe)

    def forward(self, lower: torch.Tensor, mask: torch.Tensor | None = None) -> CRNNOutput:
        if mask is None:
            mask = torch.ones(lower.shape[0], lower.shape[-1], dtype=torch.bool, device=lower.device)
        embeddings = self.top(lower, mask.sum(dim=1))
        return self.probe(embeddings, mask)


def check_adaptation_split(split: AdaptationSplit, audio: np.ndarray, reference: np.ndarray, where: str) -> float:
    """Largest ``|top(lower(audio)) - reference|`` relative to the reference's largest magnitude;
    raises when above 1e-3 (the cut would not be the encoder that was probed).

    ``reference`` is the frozen HEAR embeddings ``[E, F]`` of ``audio`` on the identity grid.
    """
    lower = split.lower(audio)
    with torch.no_grad():
        rebuilt = split.top(torch.from_numpy(lower)[None], torch.tensor([lower.shape[1]]))[0].numpy()
    if rebuilt.shape != reference.shape:
        raise RuntimeError(f"{where}: the adaptation cut gives {rebuilt.shape}, the HEAR path {reference.shape}")
    error = float(np.max(np.abs(rebuilt - reference)) / max(float(np.max(np.abs(reference))), 1e-12))
    if error > 1e-3:
        raise RuntimeError(f"{where}: the adaptation cut differs from the HEAR embeddings by {error:.2e} (relative)")
    return error


def train_adapted(
    split: AdaptationSplit,
    probe: ProbeHead,
    train_lower: Mapping[str, np.ndarray],
    train_targets: np.ndarray,
    valid_lower: Mapping[str, np.ndarray],
    valid_targets: np.ndarray,
    *,
    config: ProbeConfig = ProbeConfig(),
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[AdaptedModel, TrainingHistory]:
    """Unfreeze the top block(s) at ``config.adapt_lr_factor`` times the probe's learning rate and
    train them with the probe (started from the frozen probe) for ``config.adapt_epochs``; the
    frozen start competes on validation loss (``history.best_epoch = -1``: no epoch beat it, so
    the returned model is the frozen encoder + probe)."""
    model = AdaptedModel(copy.deepcopy(split.top), probe)
    groups = [
        {"params": list(model.top.parameters()), "lr": config.learning_rate * config.adapt_lr_factor},
        {"params": list(model.probe.parameters()), "lr": config.learning_rate},
    ]
    history = train_frame_model(
        model, list(train_lower.values()), train_targets, list(valid_lower.values()), valid_targets,
        parameter_groups=groups, epochs=config.adapt_epochs, batch_size=config.batch_size, seed=seed,
        name=f"adapted/{probe.pooling_name}", include_start=True, log=log,
    )
    return model, history


def save_module(module: nn.Module, directory: str | Path, description: Mapping[str, Any]) -> Path:
    """Write ``model.safetensors`` (state dict) and ``config.json`` (``description``) into ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().clone() for name, tensor in module.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(dict(description), indent=2) + "\n")
    return directory


def parameters_fingerprint(module: Any) -> dict[str, np.ndarray]:
    """Copies of every parameter and buffer of a torch module (for frozen-ness checks); ``{}`` otherwise."""
    if not isinstance(module, nn.Module):
        return {}
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in module.state_dict().items()}


# =========================================================================== clip metrics


def average_precision(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Average precision ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds.

    Args:
        labels: ``[N]`` binary.
        scores: ``[N]``.
        weights: ``[N]`` or ``[B, N]`` non-negative sample weights (bootstrap counts); None = 1.

    Returns:
        ``[]``-shaped (unweighted / 1-D weights) or ``[B]`` AP; NaN where the weighted positives
        are zero. With unit weights this is scikit-learn's ``average_precision_score``: tied
        scores form one threshold.
    """
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    squeeze = weights is None or np.ndim(weights) == 1
    weights = np.ones((1, len(labels))) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    true_positives = np.cumsum(weights[:, order] * labels[order], axis=1)
    predicted = np.cumsum(weights[:, order], axis=1)
    # Last index of every run of tied scores: the thresholds.
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), len(scores) - 1]
    tp, total = true_positives[:, ends], predicted[:, ends]
    positives = true_positives[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(total > 0, tp / np.where(total > 0, total, 1), 0.0)
        recall = tp / positives
        increments = np.diff(np.concatenate([np.zeros_like(recall[:, :1]), recall], axis=1), axis=1)
        result = np.sum(increments * precision, axis=1)
    result = np.where(positives[:, 0] > 0, result, np.nan)
    return result[0] if squeeze else result


def clip_metrics(clip_scores: np.ndarray, targets: np.ndarray, classes: Sequence[str], threshold: float = 0.5) -> dict:
    """Clip-level metrics: macro AP over classes with a positive clip, and accuracy of the
    (clip, class) decisions ``score >= threshold``.

    Args:
        clip_scores: ``[N, K]``.
        targets: ``[N, K]`` multi-hot.
        classes: names of the K columns.
    """
    per_class = {name: float(average_precision(targets[:, k], clip_scores[:, k])) for k, name in enumerate(classes)}
    defined = [value for value in per_class.values() if not math.isnan(value)]
    return {
        "map": float(np.mean(defined)) if defined else None,
        "per_class_ap": {name: (None if math.isnan(value) else value) for name, value in per_class.items()},
        "accuracy": float(np.mean((clip_scores >= threshold) == (targets >= 0.5))),
        "clips": len(targets),
        "threshold": threshold,
    }


# =========================================================================== bootstrap


@dataclass(frozen=True)
class BootstrapCI:
    """A statistic with its percentile bootstrap interval.

    Attributes:
        value: the statistic on the original clips.
        low, high: the interval ends.
        confidence: e.g. 0.95.
        resamples: resamples used (those where the statistic is defined).
    """

    value: float | None
    low: float | None
    high: float | None
    confidence: float
    resamples: int

    def as_dict(self) -> dict:
        """Plain-JSON form (non-finite numbers become None)."""
        return {key: (None if isinstance(item, float) and not math.isfinite(item) else item) for key, item in asdict(self).items()}


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap indices ``[resamples, n]``: ``default_rng(seed).integers(0, n, size=(resamples, n))``."""
    if n < 1:
        raise ValueError("cannot bootstrap zero clips")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def counts_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` items occurs in each resample: ``[B, n]`` from indices ``[B, n']``."""
    counts = np.zeros((indices.shape[0], n), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(indices.shape[0]), indices.shape[1]), indices.ravel()), 1.0)
    return counts


def percentile_interval(replicates: np.ndarray, value: float | None, confidence: float = 0.95) -> BootstrapCI:
    """:class:`BootstrapCI` from replicates ``[B]`` (NaN replicates, where undefined, are dropped)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    defined = np.sort(replicates[~np.isnan(replicates)])
    if not len(defined):
        return BootstrapCI(value, None, None, confidence, 0)
    low = _percentile_sorted(defined, 100 * (1 - confidence) / 2)
    high = _percentile_sorted(defined, 100 * (1 + confidence) / 2)
    return BootstrapCI(value, low, high, confidence, len(defined))


def _percentile_sorted(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) of sorted ``values`` that may hold +inf:
    an interval end between a finite value and +inf is +inf (numpy would give NaN there)."""
    position = q / 100 * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    fraction = position - low
    if fraction == 0 or values[low] == values[high]:
        return float(values[low])
    if math.isinf(values[high]):
        return math.inf
    return float(values[low] + (values[high] - values[low]) * fraction)


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int, *, resamples: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> tuple[BootstrapCI, np.ndarray]:
    """Percentile bootstrap of ``statistic`` over ``n`` clips.

    Args:
        statistic: ``indices [B, n] -> values [B]`` (NaN where undefined); called once with the
            identity ``[[0, 1, ..., n-1]]`` for the point value and once with the resamples.
        n: number of clips.
        resamples: ``B``.
        confidence: interval coverage.
        seed: resampling seed (see :func:`resample_indices`).

    Returns:
        ``(interval, replicates [B])``.
    """
    value = float(statistic(np.arange(n)[None])[0])
    replicates = np.asarray(statistic(resample_indices(n, resamples, seed)), dtype=np.float64)
    return percentile_interval(replicates, value, confidence), replicates


# =========================================================================== evaluating a model


def restrict_strong(strong: Mapping[str, Sequence[Event]], classes: Sequence[str]) -> dict[str, list[Event]]:
    """Strong labels keeping only events of ``classes`` (files kept, possibly with ``[]``)."""
    keep = set(classes)
    return {name: [event for event in events if event.label in keep] for name, events in strong.items()}


@dataclass
class ClipEvaluator:
    """Metrics of models on one evaluation split, point values and bootstrap intervals.

    Every metric is a function of a resample of the split's clips, so a model's intervals and
    the paired differences between models come from the same resamples.

    Clip metrics (all clips): ``clip_map`` (macro AP), ``clip_accuracy``. Boundary metrics
    (positive clips only, when strong labels exist): ``onset_within`` / ``offset_within``
    (share of true events with ``|error| <= 0.2 s``, missed events outside),
    ``median_abs_onset`` (s, missed = infinite), ``collar_f1`` (macro, sed_scores_eval, the
    DCASE collars) and, as point values only, ``psds1`` / ``psds2``.

    Args:
        split: the evaluation split.
        classes: the task classes (score rows).
        resamples: bootstrap resamples.
        confidence: interval coverage.
        seed: resampling seed.
        f1_resamples: the first this many resamples are used for collar F1 (one
            sed_scores_eval evaluation each, ~15 ms per 100 clips).
    """

    split: EventSplit
    classes: tuple[str, ...]
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    f1_resamples: int = 200
    files: list[str] = field(init=False)
    targets: np.ndarray = field(init=False)
    strong: dict[str, list[Event]] | None = field(init=False)
    positives: list[str] = field(init=False)
    boundary_reason: str | None = field(init=False)
    indices: np.ndarray = field(init=False)
    _cache: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cache = {}
        self.classes = tuple(self.classes)
        self.files = list(self.split.files)
        self.targets = clip_targets(self.split, self.classes, self.files)
        self.indices = resample_indices(len(self.files), self.resamples, self.seed)
        self.strong, self.positives, self.boundary_reason = None, [], None
        if self.split.strong is None:
            self.boundary_reason = (
                f"the {self.split.name} split has no strong labels (no {self.split.name}_strong.tsv): onset/offset "
                "errors, collar F1 and PSDS need event times on the evaluation split"
            )
            return
        self.strong = restrict_strong(self.split.strong, self.classes)
        self.positives = positive_files(self.strong)
        if not self.positives:
            self.boundary_reason = f"the {self.split.name} split has no event of the classes {list(self.classes)}"

    @property
    def boundaries_available(self) -> bool:
        """Whether strong labels with at least one event of the task classes exist."""
        return self.boundary_reason is None

    def _indices_for(self, metric: str) -> np.ndarray:
        return self.indices[: self.f1_resamples] if metric == "collar_f1" else self.indices

    def evaluate(self, predictions: Predictions, *, with_psds: bool = True,
                 interval_metrics: Sequence[str] | None = None) -> dict:
        """All metrics of one model: ``{"point": {...}, "intervals": {...}, "boundary": {...}}``.

        Args:
            predictions: the model's scores on every clip of the split (rows = ``classes``).
            with_psds: also compute PSDS1 and PSDS2 (point values).
            interval_metrics: metrics that get a bootstrap interval (None: all).

        ``boundary`` holds the full :class:`~audioenc.timing.boundaries.BoundarySummary`, collar
        F1 and PSDS details; ``intervals`` one :class:`BootstrapCI` dict per metric.
        """
        _check_rows(predictions, self.classes)
        names = list(self._entry(predictions)["statistics"])
        point = {name: _finite(self._point(predictions, name)) for name in names}
        intervals = {}
        for name in names:
            if interval_metrics is None or name in interval_metrics:
                intervals[name] = percentile_interval(self._replicates(predictions, name), point[name],
                                                      self.confidence).as_dict()
        boundary: dict[str, Any] = {"available": self.boundaries_available, "reason": self.boundary_reason}
        if self.boundaries_available:
            errors = boundary_errors(predictions.frame_scores, self.strong, self.classes, predictions.frame_rate,
                                     durations=self.split.durations)
            boundary["positives"] = len(self.positives)
            boundary["summary"] = summarize_boundaries(errors, TOLERANCE_SECONDS).as_dict()
            collar = collar_f1(predictions.frame_scores, self.strong, self.classes, predictions.frame_rate,
                               durations=self.split.durations)
            boundary["collar_f1"] = collar.as_dict()
            if with_psds:
                for key, settings in (("psds1", PSDS1), ("psds2", PSDS2)):
                    result = psds(predictions.frame_scores, self.strong, self.classes, predictions.frame_rate,
                                  self.split.durations, settings=settings)
                    boundary[key] = result.value
                    point[key] = result.value
        return {"point": point, "intervals": intervals, "boundary": boundary}

    def paired_difference(self, a: Predictions, b: Predictions) -> dict:
        """Intervals of ``metric(a) - metric(b)`` on the same resamples, per metric."""
        _check_rows(a, self.classes)
        _check_rows(b, self.classes)
        result = {}
        for name in self._entry(a)["statistics"]:
            value = _finite(self._point(a, name) - self._point(b, name))
            with np.errstate(invalid="ignore"):  # inf - inf (both medians infinite): undefined, dropped
                replicates = self._replicates(a, name) - self._replicates(b, name)
            result[name] = percentile_interval(replicates, value, self.confidence).as_dict()
        return result

    # ------------------------------------------------------------------ cache

    def _entry(self, predictions: Predictions) -> dict:
        """Statistics of one model, with point values and replicates computed once (a model's
        intervals and its paired differences reuse them)."""
        entry = self._cache.get(id(predictions))
        if entry is None or entry["predictions"] is not predictions:
            entry = {"predictions": predictions, "statistics": self._statistics(predictions), "point": {}, "replicates": {}}
            self._cache[id(predictions)] = entry
        return entry

    def _point(self, predictions: Predictions, name: str) -> float:
        entry = self._entry(predictions)
        if name not in entry["point"]:
            entry["point"][name] = float(entry["statistics"][name](np.arange(len(self.files))[None])[0])
        return entry["point"][name]

    def _replicates(self, predictions: Predictions, name: str) -> np.ndarray:
        entry = self._entry(predictions)
        if name not in entry["replicates"]:
            entry["replicates"][name] = np.asarray(entry["statistics"][name](self._indices_for(name)), dtype=np.float64)
        return entry["replicates"][name]

    # ------------------------------------------------------------------ statistics

    def _statistics(self, predictions: Predictions) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        n = len(self.files)
        scores = np.stack([predictions.clip_scores[name] for name in self.files])
        per_clip_accuracy = np.mean((scores >= 0.5) == (self.targets >= 0.5), axis=1)

        def clip_map(indices: np.ndarray) -> np.ndarray:
            counts = counts_from_indices(indices, n)
            per_class = np.stack([average_precision(self.targets[:, k], scores[:, k], counts) for k in range(len(self.classes))])
            with np.errstate(invalid="ignore"):
                defined = ~np.isnan(per_class)
                return np.where(defined.any(axis=0), np.nansum(per_class, axis=0) / np.maximum(defined.sum(axis=0), 1), np.nan)

        def clip_accuracy(indices: np.ndarray) -> np.ndarray:
            return counts_from_indices(indices, n) @ per_clip_accuracy / n

        statistics = {"clip_map": clip_map, "clip_accuracy": clip_accuracy}
        if not self.boundaries_available:
            return statistics
        errors = boundary_errors(predictions.frame_scores, self.strong, self.classes, predictions.frame_rate,
                                 durations=self.split.durations)
        row = {name: index for index, name in enumerate(self.files)}
        event_clip = np.array([row[error.filename] for error in errors])
        onset = np.array([abs(error.onset_error) if error.detected else np.inf for error in errors])
        offset = np.array([abs(error.offset_error) if error.detected else np.inf for error in errors])

        def share_within(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            def statistic(indices: np.ndarray) -> np.ndarray:
                weights = counts_from_indices(indices, n)[:, event_clip]
                total = weights.sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    return np.where(total > 0, weights @ (values <= TOLERANCE_SECONDS) / np.where(total > 0, total, 1), np.nan)
            return statistic

        def median_onset(indices: np.ndarray) -> np.ndarray:
            return weighted_median(onset, counts_from_indices(indices, n)[:, event_clip])

        statistics.update(
            onset_within=share_within(onset),
            offset_within=share_within(offset),
            median_abs_onset=median_onset,
            collar_f1=self._collar_statistic(predictions),
        )
        return statistics

    def _collar_statistic(self, predictions: Predictions) -> Callable[[np.ndarray], np.ndarray]:
        """Macro collar F1 on the positive clips of each resample, by sed_scores_eval from per-clip
        intermediate statistics (computed once); NaN for a resample lacking an evaluated class."""
        from sed_scores_eval import collar_based
        from sed_scores_eval.collar_based.intermediate_statistics import (
            intermediate_statistics_deltas,
        )

        present = {event.label for name in self.positives for event in self.strong[name]}
        evaluated = [name for name in self.classes if name in present]
        dataframes = score_dataframes(predictions.frame_scores, self.classes, predictions.frame_rate,
                                      durations=self.split.durations, files=self.positives)
        dataframes = {key: frame[["onset", "offset", *evaluated]] for key, frame in dataframes.items()}
        truth = {audio_id(name): [(e.onset, e.offset, e.label) for e in self.strong[name]] for name in self.positives}
        collars = dict(onset_collar=ONSET_COLLAR_SECONDS, offset_collar=OFFSET_COLLAR_SECONDS,
                       offset_collar_rate=OFFSET_COLLAR_RATE)
        deltas = intermediate_statistics_deltas(scores=dataframes, ground_truth=truth, **collars)
        positive_set = set(self.positives)
        labels_of = {name: {event.label for event in self.strong[name]} for name in self.positives}

        def statistic(indices: np.ndarray) -> np.ndarray:
            values = np.full(indices.shape[0], np.nan)
            for b, row in enumerate(indices):
                chosen = [self.files[i] for i in row if self.files[i] in positive_set]
                if {label for name in chosen for label in labels_of[name]} != set(evaluated):
                    continue  # a class without reference events: macro F1 undefined on this resample
                keys = [f"{audio_id(name)}#{copy_index}" for copy_index, name in enumerate(chosen)]
                f, _, _, _ = collar_based.fscore(
                    None, {key: truth[audio_id(name)] for key, name in zip(keys, chosen)}, 0.5,
                    deltas={key: deltas[audio_id(name)] for key, name in zip(keys, chosen)}, **collars,
                )
                values[b] = float(f["macro_average"])
            return values

        return statistic


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``np.median`` of ``values`` repeated ``weights`` times, per row of integer ``weights`` ``[B, N]``.

    The median of ``W`` items is the mean of the items at 0-based positions ``(W - 1) // 2``
    and ``W // 2`` of the sorted expansion; NaN where ``W = 0``. Infinite values sort last.
    """
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    cumulative = np.cumsum(weights[:, order], axis=1)
    total = cumulative[:, -1] if cumulative.shape[1] else np.zeros(weights.shape[0])
    result = np.full(weights.shape[0], np.nan)
    for b in range(weights.shape[0]):
        if total[b] <= 0:
            continue
        low = np.searchsorted(cumulative[b], (total[b] - 1) // 2, side="right")
        high = np.searchsorted(cumulative[b], total[b] // 2, side="right")
        result[b] = (sorted_values[low] + sorted_values[high]) / 2
    return result


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _check_rows(predictions: Predictions, classes: tuple[str, ...]) -> None:
    if tuple(predictions.classes) != classes:
        raise ValueError(f"predictions have classes {predictions.classes}, the evaluation expects {classes}")


# =========================================================================== adapt or not


@dataclass(frozen=True)
class AdaptationRule:
    """When the frozen path "stops short", and when adapting it pays off.

    Metrics: ``clip_map`` (clip-level) and ``collar_f1`` (boundary, positive clips), both on
    the evaluation split, higher is better.

    * **Trigger.** Adapt only if scratch beats frozen + probe by more than ``clip_margin`` on
      clip mAP or by more than ``boundary_margin`` on collar F1 (point values). The seed's
      example — close to scratch on clip metrics but behind on boundaries — is the second
      case alone. Otherwise the frozen encoder already answers the task and is kept.
    * **Verdict.** The adapted encoder is justified only if, on a metric that stopped short,
      it gains at least ``gain_margin`` over frozen + probe with the paired bootstrap interval
      of the gain above zero, and it loses no more than the margin on the other metric.
    """

    clip_margin: float = 0.05
    boundary_margin: float = 0.05
    gain_margin: float = 0.03

    def statement(self) -> str:
        """The rule in one paragraph (for the report)."""
        return (
            f"Adapt only when the frozen encoder + probe stops short of the scratch baseline: scratch ahead by more "
            f"than {self.clip_margin:.2f} in clip mAP or by more than {self.boundary_margin:.2f} in collar F1 on "
            f"positive clips (evaluation split, point values). Keep the adapted encoder only if it gains at least "
            f"{self.gain_margin:.2f} over frozen + probe on a metric that stopped short, with the paired 95 % bootstrap "
            f"interval of that gain above zero, and loses no more than the margin on the other metric."
        )

    def should_adapt(self, frozen: Mapping[str, float | None], scratch: Mapping[str, float | None]) -> dict:
        """Apply the trigger to point metrics (``clip_map``, ``collar_f1``; None = unavailable).

        Returns:
            ``{"triggered": bool, "short_on": [metrics], "gaps": {metric: scratch - frozen}, "reason": str}``.
        """
        margins = {"clip_map": self.clip_margin, "collar_f1": self.boundary_margin}
        gaps, short_on = {}, []
        for metric, margin in margins.items():
            if frozen.get(metric) is None or scratch.get(metric) is None:
                continue
            gaps[metric] = float(scratch[metric] - frozen[metric])
            if gaps[metric] > margin:
                short_on.append(metric)
        if "clip_map" not in gaps:
            raise ValueError("the adaptation rule needs clip_map for both the frozen path and the scratch baseline")
        described = {
            "clip_map": f"clip mAP {frozen['clip_map']:.3f} vs scratch {scratch['clip_map']:.3f} (gap {gaps['clip_map']:+.3f})"
        }
        if "collar_f1" in gaps:
            described["collar_f1"] = (
                f"collar F1 {frozen['collar_f1']:.3f} vs scratch {scratch['collar_f1']:.3f} (gap {gaps['collar_f1']:+.3f})"
            )
        if not short_on:
            reason = "the frozen path does not stop short: " + "; ".join(described.values()) + " — all within the margins"
        elif short_on == ["collar_f1"]:
            level = "close to" if gaps["clip_map"] > 0 else "level with or ahead of"
            reason = (f"the frozen path is {level} scratch on clip metrics but behind on boundaries: "
                      + "; ".join(described.values()))
        elif short_on == ["clip_map"] and "collar_f1" in gaps:
            reason = "the frozen path is behind scratch on clip metrics: " + "; ".join(described.values())
        else:
            reason = "the frozen path is behind scratch: " + "; ".join(described.values())
        if "collar_f1" not in gaps:
            reason += " (no boundary metric: the evaluation split has no strong labels)"
        return {"triggered": bool(short_on), "short_on": short_on, "gaps": gaps, "reason": reason}

    def verdict(self, short_on: Sequence[str], gains: Mapping[str, Mapping[str, float | None]]) -> dict:
        """Whether adaptation is justified, from paired gains ``adapted - frozen``.

        Args:
            short_on: metrics on which the frozen path stopped short.
            gains: per metric a :class:`BootstrapCI` dict (``value``, ``low``, ``high``).

        Returns:
            ``{"justified": bool, "reason": str}``.
        """
        margins = {"clip_map": self.clip_margin, "collar_f1": self.boundary_margin}
        wins, losses, notes = [], [], []
        for metric in margins:
            gain = gains.get(metric)
            if gain is None or gain.get("value") is None:
                continue
            low = gain.get("low")
            notes.append(f"{metric} gain {gain['value']:+.3f} (95 % CI {_fmt_ci(gain)})")
            if metric in short_on and gain["value"] >= self.gain_margin and low is not None and low > 0:
                wins.append(metric)
            if gain["value"] < -margins[metric]:
                losses.append(metric)
        summary = "; ".join(notes)
        if wins and not losses:
            return {"justified": True, "reason": f"adaptation clears the rule on {', '.join(wins)}: {summary}"}
        if losses:
            return {"justified": False, "reason": f"adaptation loses more than the margin on {', '.join(losses)}: {summary}"}
        return {"justified": False,
                "reason": f"the gain does not clear {self.gain_margin:.2f} with an interval above zero: {summary}"}


def _fmt_ci(ci: Mapping[str, float | None]) -> str:
    if ci.get("low") is None or ci.get("high") is None:
        return "n/a"
    return f"{ci['low']:+.3f} to {ci['high']:+.3f}"
