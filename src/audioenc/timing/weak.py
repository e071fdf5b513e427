"""A weak-label CRNN: trained from clip labels only, read out frame by frame.

Architecture (defaults; shapes for a batch of ``B`` clips with ``F`` log-mel frames at 100/s)::

    log-mel [B, 64, F]  --normalise per band (train-set mean/std)-->  [B, 1, 64, F]
    Stem: conv (4 bands x 6 frames, stride 4 in frequency and 4 in time,
          1 -> 16), BN, ReLU                     [B, 16, 16, F/4]
    ConvBlock(16 -> 32), pool (freq 4)           [B, 32,  4, F/4]
    ConvBlock(32 -> 64), pool (freq 4)           [B, 64,  1, F/4]
    BiGRU(64 -> 2 x 32)                          embeddings [B, 64, F/4]
    1x1 conv + sigmoid                           frame scores [B, K, F/4]   (25 frames/s)
    pooling (mean / max / linear softmax / ...)  clip scores  [B, K]

A ConvBlock is 3x3 conv -> batch norm -> ReLU -> average pool -> dropout. The stem's strided
conv groups 4 neighbouring mel bands and 4 frames at once: a full-resolution 3x3 first layer
spends most of a CPU step on element-wise work over a [16, 64, F] map, and every later layer
and the recurrent layer cost in proportion to the frame rate (25 frames/s trains ~2x faster than 50).
Output frame ``j`` covers ``[j, j + 1) * 40 ms`` of the clip (see
:mod:`audioenc.timing.features`), so a boundary is placed to within 40 ms, a fifth of the
200 ms collar. For a finer grid set ``stem_time_stride=2`` (50 frames/s).

Presets (``crnn.preset``, :func:`crnn_preset`): ``small`` is the network above (the default);
``dcase`` is the CRNN of the DCASE 2023 task 4 baseline (DESED_task), 1,109,850 parameters
for 10 classes and a pooling rule without parameters, against 43,114 for ``small``::

    log-mel [B, 128, F]  (16 kHz, n_fft 2048, hop 256: 62.5 frames/s)   no stem
    7 GatedConvBlocks, channels 16-32-64-128-128-128-128, pool (freq, time)
      (2,2) (2,2) (2,1) (2,1) (2,1) (2,1) (2,1)  ->  [B, 128, 1, F/4]      (15.6 frames/s)
    BiGRU 2 layers x 128 per direction           embeddings [B, 256, F/4]
    dropout 0.5 after every block and before the head

The preset sets the CRNN's shape and, because 7 halvings need 128 bands, the log-mel settings
too (:data:`PRESET_FEATURES`); explicit ``crnn.*`` / ``features.*`` settings still override them
(:func:`audioenc.timing.workflow.settings.resolve_settings`).

Training (:func:`train_weak_encoder`): binary cross-entropy between the pooled clip scores and
the clip labels (no frame labels are used), Adam with a cosine learning-rate decay, a fixed
number of epochs (15: about 1 minute on one CPU core for the embedded corpus's 300 training
clips); the weights of the epoch with the lowest validation loss are kept (best, not last).
Clips of different lengths are padded in a batch and masked: the conv maps are zeroed past
each clip's end after every block, the recurrent layer runs within each length, and the pooling and the
loss see only real frames, so a clip's scores do not depend on its batch. Deterministic on CPU
for a seed (weights, data order and dropout all draw from it) with a fixed thread count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from audioenc.audio.formats import EventSplit, read_corpus_split
from audioenc.core.weights import write_weights
from audioenc.textfiles import read_json
from audioenc.timing.augment import (
    AugmentSettings,
    augment_generator,
    augmented_clip_loss,
    ema_update,
    make_teacher,
)
from audioenc.timing.crnn_layers import (  # noqa: F401 - re-exported: the CRNN's layers by their old address
    CONV_BLOCKS,
    GLU,
    RNN_CELLS,
    BlockMean,
    ConvBlock,
    GatedConvBlock,
    MaskedBiRNN,
)
from audioenc.timing.evaluation import clip_targets
from audioenc.timing.features import LogMelConfig, split_log_mels
from audioenc.timing.fitting import (
    ClipModelOutput,
    FitSettings,
    Predictions,
    TrainingHistory,
    batches_per_epoch,
    clip_label_loss,
    fit_clip_model,
    frame_statistics,
    predict_frames,
    shuffled_batches,
    validation_loss,
)
from audioenc.timing.pooling import Pooling, make_pooling
from audioenc.validation import bounded


@dataclass(frozen=True)
class CRNNConfig:
    """Size of the weak-label CRNN (defaults in the module docstring).

    Attributes:
        stem_channels: output channels of the stem (0: no stem, the first conv block reads
            the log-mel at full resolution, as the DCASE baseline does).
        stem_bands: mel bands the stem's conv spans and strides over.
        stem_time_stride: time stride of the stem's conv (its kernel spans stride + 2 frames).
        conv_channels: output channels of each conv block.
        freq_pool: frequency pooling factor of each block; ``stem_bands`` (with a stem) times
            their product must divide ``n_mels`` (64 = 4 * 4 * 4 by default).
        time_pool: time pooling factor of each block. The output rate is
            feature rate / (stem_time_stride * prod(time_pool)) frames/s (25 by default).
        rnn_hidden: recurrent units per direction (embedding size is twice this).
        dropout: dropout after each conv block and before the head.
        preset: the preset these values came from (:func:`crnn_preset`; ``small`` or ``dcase``).
        conv_block: ``relu`` (:class:`ConvBlock`) or ``glu`` (:class:`GatedConvBlock`, DCASE's).
        rnn_layers: stacked bidirectional recurrent layers.
        rnn_cell: ``gru`` (the default, DCASE's) or ``lstm``. The same bidirectional, length-exact layer
            either way; on CPU torch trains an LSTM with oneDNN's fused kernel and a GRU one time step at a
            time (1.7x faster training steps with the LSTM), but on the real drum and speech corpora the
            LSTM CRNN learned clearly less (clip mAP 0.49 against 0.80 and 0.61; ``benchmarks/RESULTS.md``).
    """

    stem_channels: int = bounded(16, minimum=0, integer=True)
    stem_bands: int = bounded(4, minimum=1, integer=True)
    stem_time_stride: int = bounded(4, minimum=1, integer=True)
    conv_channels: tuple[int, ...] = bounded((32, 64), minimum=1, integer=True)
    freq_pool: tuple[int, ...] = bounded((4, 4), minimum=1, integer=True)
    time_pool: tuple[int, ...] = bounded((1, 1), minimum=1, integer=True)
    rnn_hidden: int = bounded(32, minimum=1, integer=True)
    dropout: float = bounded(0.1, minimum=0, below=1)
    preset: str = "small"
    conv_block: str = "relu"
    rnn_layers: int = bounded(1, minimum=1, integer=True)
    rnn_cell: str = "gru"

    @property
    def time_strides(self) -> tuple[int, ...]:
        """Time reduction of each layer of the conv stack in order (the stem's first, if any)."""
        return ((self.stem_time_stride,) if self.stem_channels else ()) + tuple(self.time_pool)

    @property
    def freq_reduction(self) -> int:
        """Mel bands per output band of the conv stack: ``n_mels`` must be a multiple of it."""
        return (self.stem_bands if self.stem_channels else 1) * math.prod(self.freq_pool)


CRNN_PRESETS: dict[str, CRNNConfig] = {
    "small": CRNNConfig(),
    # DESED_task's CRNN (DCASE 2023 task 4 baseline): nb_filters, pooling [[2,2],[2,2],[1,2]x5] in
    # (time, freq), GLU activation, dropout 0.5, BiGRU n_RNN_cell 128 x n_layers_RNN 2.
    "dcase": CRNNConfig(
        stem_channels=0,
        conv_channels=(16, 32, 64, 128, 128, 128, 128),
        freq_pool=(2, 2, 2, 2, 2, 2, 2),
        time_pool=(2, 2, 1, 1, 1, 1, 1),
        rnn_hidden=128,
        dropout=0.5,
        preset="dcase",
        conv_block="glu",
        rnn_layers=2,
        rnn_cell="gru",
    ),
}
"""The CRNN shapes ``crnn.preset`` names."""

PRESET_FEATURES: dict[str, LogMelConfig | None] = {
    "small": None,  # the features section as it is
    # DESED_task's recipe: 16 kHz, n_window 2048, hop 256, 128 mel bands from 0 to 8 kHz.
    "dcase": LogMelConfig(sample_rate=16000, n_fft=2048, hop_length=256, n_mels=128, f_min=0.0, f_max=8000.0),
}
"""The log-mel settings each preset needs (None: any that its frequency reduction divides)."""


def crnn_preset(name: str) -> tuple[CRNNConfig, LogMelConfig | None]:
    """The CRNN shape and the log-mel settings (None: keep the current ones) of preset ``name``."""
    if name not in CRNN_PRESETS:
        raise ValueError(f"unknown CRNN preset {name!r}; choose one of {', '.join(CRNN_PRESETS)}")
    return CRNN_PRESETS[name], PRESET_FEATURES[name]


class WeakCRNN(nn.Module):
    """CRNN frame scorer with a pooling head (architecture in the module docstring).

    Args:
        classes: class names, in output order.
        pooling: a name from :data:`audioenc.timing.pooling.POOLING_NAMES`.
        config: network size.
        features: the log-mel settings it expects (stored for inference and saving).

    ``forward(log_mel [B, n_mels, F], mask [B, F] | None) -> CRNNOutput``; the output rate is
    :attr:`frame_rate` frames per second.
    """

    def __init__(
        self,
        classes: tuple[str, ...],
        pooling: str = "linear_softmax",
        config: CRNNConfig = CRNNConfig(),
        features: LogMelConfig = LogMelConfig(),
    ) -> None:
        super().__init__()
        lengths = {len(config.conv_channels), len(config.freq_pool), len(config.time_pool)}
        if len(lengths) != 1:
            raise ValueError(f"conv_channels, freq_pool and time_pool need one entry per block, got {config}")
        if config.conv_block not in CONV_BLOCKS:
            raise ValueError(f"conv_block={config.conv_block!r}; choose one of {', '.join(CONV_BLOCKS)}")
        if config.rnn_cell not in RNN_CELLS:
            raise ValueError(f"rnn_cell={config.rnn_cell!r}; choose one of {', '.join(RNN_CELLS)}")
        freq_factor = config.freq_reduction
        if features.n_mels % freq_factor:
            raise ValueError(f"n_mels={features.n_mels} is not divisible by the frequency reduction {freq_factor}")
        self.classes = tuple(classes)
        self.pooling_name = pooling
        self.config = config
        self.feature_config = features
        self.block_time_strides = config.time_strides
        self.time_factor = math.prod(self.block_time_strides)
        self.register_buffer("feature_mean", torch.zeros(features.n_mels))
        self.register_buffer("feature_std", torch.ones(features.n_mels))
        blocks, channels = [], 1
        if config.stem_channels:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(
                        1,
                        config.stem_channels,
                        # Time kernel stride + 2 with padding 1: output frame j is centred on the
                        # middle of its span [j, j + 1) * stride input frames (no half-frame shift).
                        kernel_size=(config.stem_bands, config.stem_time_stride + 2),
                        stride=(config.stem_bands, config.stem_time_stride),
                        padding=(0, 1),
                        bias=False,
                    ),
                    nn.BatchNorm2d(config.stem_channels),
                    nn.ReLU(),
                )
            )
            channels = config.stem_channels
        block = GatedConvBlock if config.conv_block == "glu" else ConvBlock
        for out_channels, freq_pool, time_pool in zip(config.conv_channels, config.freq_pool, config.time_pool):
            blocks.append(block(channels, out_channels, freq_pool, time_pool, config.dropout))
            channels = out_channels
        self.cnn = nn.Sequential(*blocks)
        self.rnn = MaskedBiRNN(
            channels * features.n_mels // freq_factor, config.rnn_hidden, config.rnn_layers, config.rnn_cell
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Conv1d(2 * config.rnn_hidden, len(self.classes), kernel_size=1)
        self.pooling: Pooling = make_pooling(pooling, len(self.classes), in_features=2 * config.rnn_hidden)

    @property
    def parameter_count(self) -> int:
        """Trainable parameters (conv, batch norm, recurrent layer, head, pooling; not the buffers)."""
        return sum(parameter.numel() for parameter in self.parameters())

    @property
    def frame_rate(self) -> float:
        """Output frames per second (feature rate / time pooling; 50 by default)."""
        return self.feature_config.frame_rate / self.time_factor

    @property
    def embedding_size(self) -> int:
        """Size of the frame embeddings (2 * rnn_hidden)."""
        return 2 * self.config.rnn_hidden

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-band input normalisation ``(x - mean) / std``, shapes ``[n_mels]``."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-5))

    def output_frames(self, input_frames: int) -> int:
        """Output frames for ``input_frames`` log-mel frames: ``ceil(input_frames / time_factor)``."""
        return -(-input_frames // self.time_factor)

    def forward(self, log_mel: torch.Tensor, mask: torch.Tensor | None = None) -> ClipModelOutput:
        return self.read_out(*self.embed(log_mel, mask))

    def embed(self, log_mel: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The trunk: log-mel ``[B, n_mels, F]`` (mask ``[B, F]``) -> frame embeddings ``[B, 2H, F']`` and
        their mask ``[B, F']`` (conv stack and recurrent layer; no head, no pooling)."""
        if log_mel.dim() != 3 or log_mel.shape[1] != self.feature_config.n_mels:
            raise ValueError(
                f"expected log-mel [batch, {self.feature_config.n_mels}, frames], got {tuple(log_mel.shape)}"
            )
        batch, _, frames = log_mel.shape
        if mask is None:
            mask = torch.ones(batch, frames, dtype=torch.bool, device=log_mel.device)
        normalised = (log_mel - self.feature_mean[:, None]) / self.feature_std[:, None]
        normalised = normalised * mask[:, None, :]  # padded frames sit at the band mean
        out_frames = self.output_frames(frames)
        pad = out_frames * self.time_factor - frames
        if pad:
            normalised = nn.functional.pad(normalised, (0, pad))
            mask = nn.functional.pad(mask, (0, pad), value=False)
        maps, out_mask = normalised[:, None], mask
        for block, stride in zip(self.cnn, self.block_time_strides):
            maps = block(maps)
            if stride > 1:
                out_mask = out_mask.view(batch, -1, stride).any(dim=-1)
            # Zero the padded frames again: the next conv must see zeros past a clip's end, as
            # it would for the clip alone, so a clip's scores never depend on its batch.
            maps = maps * out_mask[:, None, None, :]
        # maps: [B, C, freq', F'];  out_mask: [B, F']
        sequence = maps.flatten(1, 2).transpose(1, 2)  # [B, F', C * freq']
        embeddings = self.rnn(sequence, out_mask.sum(dim=1)).transpose(1, 2)  # [B, 2H, F']
        return embeddings, out_mask

    def read_out(self, embeddings: torch.Tensor, mask: torch.Tensor) -> ClipModelOutput:
        """The head: embeddings ``[B, 2H, F']`` -> frame scores ``[B, K, F']`` -> pooled clip scores ``[B, K]``."""
        frame_scores = torch.sigmoid(self.head(self.dropout(embeddings)))
        clip_scores = self.pooling(frame_scores, embeddings, mask)
        return ClipModelOutput(frame_scores=frame_scores, clip_scores=clip_scores, embeddings=embeddings, mask=mask)


# --------------------------------------------------------------------------- data


@dataclass
class FeatureSet:
    """A split with its log-mel features computed once (reused by every pooling rule).

    Attributes:
        split: the validated split (files, labels, durations).
        log_mels: ``[n_mels, frames]`` float32 per file.
        config: the feature settings used.
    """

    split: EventSplit
    log_mels: dict[str, np.ndarray]
    config: LogMelConfig = LogMelConfig()

    @classmethod
    def from_split(cls, split: EventSplit, config: LogMelConfig = LogMelConfig()) -> FeatureSet:
        """Compute the log-mels of every file of ``split``."""
        return cls(split=split, log_mels=split_log_mels(split.audio_dir, split.files, config), config=config)

    def inputs(self) -> list[np.ndarray]:
        """The log-mels in the split's file order."""
        return [self.log_mels[name] for name in self.split.files]


def load_feature_sets(
    corpus: str | Path,
    splits: tuple[str, ...] = ("train", "validation"),
    config: LogMelConfig = LogMelConfig(),
    classes: tuple[str, ...] | None = None,
) -> dict[str, FeatureSet]:
    """Read and featurise splits of a corpus in the embedded layout, keyed by split name."""
    return {name: FeatureSet.from_split(read_corpus_split(corpus, name, classes=classes), config) for name in splits}


# --------------------------------------------------------------------------- training


def crnn_fit_settings(
    epochs: int, steps_per_epoch: int, patience: int | None, budget_seconds: float | None
) -> FitSettings:
    """How every weak-label CRNN trains (alone or on a shared trunk): gradient norm clipped at 5, cosine decay
    of the learning rate to 1/20 of it over ``epochs``, early stopping after ``patience``, a wall-clock budget."""
    return FitSettings(
        epochs,
        patience=patience,
        budget_seconds=budget_seconds,
        clip_norm=5.0,
        final_lr_factor=0.05,
        total_steps=epochs * steps_per_epoch,
    )


def train_weak_encoder(
    corpus: str | Path | tuple[FeatureSet, FeatureSet],
    pooling: str = "linear_softmax",
    seed: int = 0,
    *,
    epochs: int = 15,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    config: CRNNConfig = CRNNConfig(),
    classes: tuple[str, ...] | None = None,
    patience: int | None = None,
    budget_seconds: float | None = None,
    log: Callable[[str], None] | None = None,
    augment: AugmentSettings = AugmentSettings(),
    unlabeled: FeatureSet | None = None,
) -> tuple[WeakCRNN, TrainingHistory]:
    """Train a :class:`WeakCRNN` from clip labels only (:func:`~audioenc.timing.fitting.fit_clip_model`).

    Args:
        corpus: a corpus root in the embedded layout (its ``train`` and ``validation``
            splits are read and featurised), or ``(train, validation)`` feature sets already
            computed (pass these to train several pooling rules on the same features).
        pooling: pooling rule name (:data:`audioenc.timing.pooling.POOLING_NAMES`).
        seed: seeds weights, batch order and dropout.
        epochs: the most passes over the training split (the cosine decay spans them).
        batch_size: clips per step (a last batch of one clip is left for the next epoch:
            batch norm needs two).
        learning_rate: Adam step size at the start; cosine decay to 1/20 of it by the end
            (few epochs, so the last ones refine rather than jump).
        config: network size.
        classes: class order; default the training split's vocabulary.
        patience: stop after this many epochs without a lower validation loss (None: never).
        budget_seconds: stop before an epoch would end past this wall time (None: no budget).
        log: called with one line per epoch (e.g. ``print``); None for quiet.
        augment: mixup, masks, shift, gain and the mean teacher (:mod:`audioenc.timing.augment`);
            all off by default, and then training is exactly the plain clip-BCE loop.
        unlabeled: clips without labels for the mean teacher's consistency loss (None: the
            consistency is taken on the labeled batch).

    Returns:
        ``(model, history)``: the model with the best-validation-loss weights, in eval mode,
        and the per-epoch history.
    """
    if isinstance(corpus, (str, Path)):
        sets = load_feature_sets(corpus, ("train", "validation"), classes=classes)
        train_set, valid_set = sets["train"], sets["validation"]
    else:
        train_set, valid_set = corpus
    for role, feature_set in (("training", train_set), ("validation", valid_set)):
        if len(feature_set.split.files) < 2:
            raise ValueError(
                f"the {role} split {feature_set.split.audio_dir} has {len(feature_set.split.files)} labelled clip(s); "
                "training needs at least 2 in each of training and validation"
            )
    classes = tuple(classes) if classes is not None else train_set.split.classes
    if not classes:
        raise ValueError(f"no classes: the training split {train_set.split.audio_dir} has no labelled events")
    torch.manual_seed(seed)
    model = WeakCRNN(classes, pooling, config, train_set.config)
    model.set_normalization(*frame_statistics(train_set.log_mels.values()))
    count = len(train_set.split.files)
    valid_inputs, valid_targets = valid_set.inputs(), clip_targets(valid_set.split, classes)
    train_inputs, train_targets = train_set.inputs(), clip_targets(train_set.split, classes)
    steps_per_epoch = batches_per_epoch(count, batch_size, min_size=2)
    teacher = make_teacher(model) if augment.mean_teacher else None
    if augment.active:
        batch_loss = augmented_clip_loss(
            model,
            train_inputs,
            train_targets,
            augment,
            augment_generator(seed),
            teacher=teacher,
            steps_per_epoch=steps_per_epoch,
            unlabeled=None if unlabeled is None else unlabeled.inputs(),
        )
    else:
        batch_loss = clip_label_loss(model, train_inputs, train_targets)
    history = fit_clip_model(
        model,
        [{"params": list(model.parameters()), "lr": learning_rate}],
        shuffled_batches(count, batch_size, torch.Generator().manual_seed(seed), min_size=2),
        batch_loss,
        crnn_fit_settings(epochs, steps_per_epoch, patience, budget_seconds),
        validate=lambda m: validation_loss(m, valid_inputs, valid_targets, batch_size),
        name=pooling,
        seed=seed,
        log=log,
        after_step=None if teacher is None else lambda: ema_update(teacher, model, augment.ema_decay),
        kept=teacher if augment.keep_teacher else None,
    )
    return model, history


def predict(model: WeakCRNN, log_mels: Mapping[str, np.ndarray], batch_size: int = 16) -> Predictions:
    """Frame and clip scores of ``model`` for each ``[n_mels, frames]`` log-mel (eval mode, no grad)."""
    return predict_frames(model, log_mels, model.frame_rate, model.classes, batch_size)


# --------------------------------------------------------------------------- saving


def save_weak_encoder(model: WeakCRNN, directory: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (classes, pooling, sizes, features)."""
    directory = Path(directory)
    description = {
        "kind": "audioenc.weak_crnn",
        "classes": list(model.classes),
        "pooling": model.pooling_name,
        "config": asdict(model.config),
        "features": asdict(model.feature_config),
        "frame_rate": model.frame_rate,
    }
    write_weights(directory / "model.safetensors", model.state_dict(), directory / "config.json", description)
    return directory


def load_weak_encoder(directory: str | Path) -> WeakCRNN:
    """Load a model written by :func:`save_weak_encoder` (safetensors: no code runs), in eval mode."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found; point at a folder written by save_weak_encoder")
    description = read_json(config_path, "weak-CRNN description")
    if description.get("kind") != "audioenc.weak_crnn":
        raise ValueError(f"{config_path} describes {description.get('kind')!r}, not an audioenc.weak_crnn")
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in description["config"].items()}
    values.setdefault("rnn_cell", "gru")  # written before crnn.rnn_cell existed: every such CRNN is a GRU
    config = CRNNConfig(**values)
    model = WeakCRNN(
        tuple(description["classes"]), description["pooling"], config, LogMelConfig(**description["features"])
    )
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    return model.eval()
