"""The training configuration: a :class:`~audioenc.core.settings.Settings` schema, presets, cross-field rules.

A run's configuration is built in layers, each overriding the last:

1. the dataclass defaults (EnCodec's numbers);
2. the channel mode, exactly one of ``--1ch`` (batch 32, one random channel per sample) or
   ``--32ch`` (batch 4, all 32 channels), and a size preset: ``paper`` (EnCodec's model,
   300 epochs × 2000 updates, the default) or ``small`` (a few minutes on a 2-core CPU);
3. a settings file (``--config FILE``, JSON or YAML, any subset of the sections; a run's own
   ``config.json`` reproduces that run's settings);
4. dotted ``key=value`` overrides, e.g. ``optim.lr=1e-4`` or ``model.ratios=8,5,4,2`` (``train``'s
   flags such as ``--epochs`` are overrides placed before those given as ``KEY=VALUE``).

The resolved configuration is saved as JSON beside every checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from audioenc import SAMPLE_RATE
from audioenc.core.settings import Settings
from audioenc.errors import UserError
from audioenc.quantization.registry import QUANTIZER_NAMES
from audioenc.validation import bounded

MAX_SEED = 2**32 - 1
"""The largest seed every generator of a run accepts (NumPy's legacy seeding stops at 2**32 - 1)."""

PERCEPTUAL_MEASURES: tuple[str, ...] = ("visqol_audio", "visqol_speech", "pesq_wb", "stoi", "estoi")
"""The measures of :mod:`audioenc.metrics.perceptual` by name (its ``MEASURES`` table, in that order): what
``train.perceptual_measures`` may list."""


@dataclass
class ModelConfig:
    """SEANet codec. Defaults: audiocraft's ``encodec_base_24khz`` (hop 320, 75 frames/s)."""

    channels: int = bounded(1, minimum=1, integer=True)
    sample_rate: int = bounded(SAMPLE_RATE, minimum=1, integer=True)
    dimension: int = bounded(128, minimum=1, integer=True)
    n_filters: int = bounded(32, minimum=1, integer=True)
    n_residual_layers: int = bounded(1, minimum=0, integer=True)
    ratios: tuple[int, ...] = bounded((8, 5, 4, 2), minimum=1, integer=True)
    lstm: int = bounded(2, minimum=0, integer=True)
    causal: bool = True
    pad_mode: str = "constant"
    # Identity shortcut in the residual units (audiocraft's encodec config); False: a kernel-1
    # convolution, as in the released EnCodec 24 kHz weights (`audioenc import-hf`).
    true_skip: bool = True
    quantizer: str = "none"  # a name of audioenc.quantization.registry: "none" (continuous latents), "rvq", "fsq"
    n_q: int = bounded(32, minimum=1, integer=True)
    bins: int = bounded(1024, minimum=2, integer=True)  # one bin would carry no bits
    q_dropout: bool = True
    fsq_levels: tuple[int, ...] = bounded((8, 5, 5, 5), minimum=2, integer=True)  # values per FSQ dimension
    # Divide each input by its RMS level and restore it at the output (the level is side
    # information, stored beside latents/codes). EnCodec 48 kHz's `renormalize`; DAC normalises
    # loudness for the same reason: quiet input leaves a freshly initialised codec dominated by its
    # biases (benchmarks/RESULTS.md, "Does the small preset reconstruct its input?").
    normalize: bool = True


@dataclass
class DiscriminatorConfig:
    """MS-STFT discriminator; its input channels always follow ``model.channels``."""

    filters: int = bounded(32, minimum=1, integer=True)
    n_ffts: tuple[int, ...] = bounded((1024, 2048, 512, 256, 128), minimum=2, integer=True)
    hop_lengths: tuple[int, ...] = bounded((256, 512, 128, 64, 32), minimum=1, integer=True)
    win_lengths: tuple[int, ...] = bounded((1024, 2048, 512, 256, 128), minimum=1, integer=True)


@dataclass
class LossConfig:
    """Loss weights λt (l1), λf (mel), λg (adv), λfeat (feat), EnCodec's values, and the balancer."""

    l1: float = bounded(0.1, minimum=0)
    mel: float = bounded(1.0, minimum=0)
    adv: float = bounded(3.0, minimum=0)
    feat: float = bounded(3.0, minimum=0)
    adversarial: str = "hinge"  # hinge | mse | hinge2
    relative_feature_matching: bool = True  # EnCodec paper, Eq. 3
    balance_grads: bool = True
    balancer_total_norm: float = bounded(1.0, above=0)
    balancer_ema_decay: float = bounded(0.999, minimum=0, below=1)


@dataclass
class DataConfig:
    root: str | None = None  # None: the embedded eigenscape-like corpus, generated on first use
    segment_seconds: float = bounded(1.0, above=0)
    channel_mode: str = "mono"  # mono | all | downmix
    num_workers: int = bounded(2, minimum=0, integer=True)
    valid_segments: int = bounded(64, minimum=1, integer=True)


@dataclass
class OptimConfig:
    lr: float = bounded(3e-4, above=0)
    betas: tuple[float, float] = bounded((0.5, 0.9), minimum=0, below=1)  # Adam's range
    weight_decay: float = bounded(0.0, minimum=0)
    grad_clip: float = bounded(0.0, minimum=0)  # 0 disables clipping
    weights_ema_decay: float = bounded(0.0, minimum=0, below=1)  # 0 disables the EMA of weights; 0.99 is typical


@dataclass
class TrainConfig:
    epochs: int = bounded(300, minimum=1, integer=True)
    updates_per_epoch: int = bounded(2000, minimum=1, integer=True)
    batch_size: int = bounded(32, minimum=1, integer=True)  # global: split evenly across distributed ranks
    seed: int = bounded(0, minimum=0, maximum=MAX_SEED, integer=True)
    discriminator_every: int = bounded(1, minimum=1, integer=True)  # update the discriminator every N steps
    # generator adv/feat losses join at this step (0: EnCodec)
    adversarial_warmup_steps: int = bounded(0, minimum=0, integer=True)
    log_every: int = bounded(10, minimum=1, integer=True)
    checkpoint_every: int = bounded(500, minimum=1, integer=True)  # also at each epoch end
    # consecutive NaN/Inf steps before the run stops
    max_nonfinite_steps: int = bounded(10, minimum=1, integer=True)
    best_metric: str = "mel_distance"  # a reconstruction metric, lower is better
    device: str = "auto"
    # fp32 | bf16 (autocast; CPU with AVX512-BF16/AMX, or GPU; layers checked first, training/precision.py)
    precision: str = "fp32"
    compile: bool = False  # torch.compile the training step's codec and discriminator calls (first steps compile)
    logger: str = "tensorboard"  # tensorboard | wandb | none
    # Validation also scores these perceptual measures (audioenc.metrics.perceptual; the evaluation
    # extra) on its first `perceptual_segments` segments every `perceptual_every` epochs (0: never):
    # about a second per segment and measure on a CPU, so a long run shows quality rise at little cost.
    perceptual_every: int = bounded(10, minimum=0, integer=True)
    perceptual_measures: tuple[str, ...] = ("visqol_audio",)
    perceptual_segments: int = bounded(4, minimum=0, integer=True)


@dataclass
class Config(Settings):
    """Every setting of a training run, by section; saved as the run's ``config.json``."""

    label: ClassVar[str] = "config"
    example: ClassVar[str] = "optim.lr=1e-4"

    model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Rebuild a saved configuration; keys it predates take their :data:`SAVED_BEFORE` value."""
        saved = {name: saved_section(name, values) for name, values in data.items()}
        return validate(cls().with_mapping(saved, "saved config"))

    @classmethod
    def load(cls, path: Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))


# Keys added after configurations were first saved, with the value that reproduces what such a
# configuration meant (a codec saved before `model.normalize` existed never normalised its input).
# (Residual units always had identity shortcuts before `model.true_skip` existed.)
SAVED_BEFORE: dict[str, dict[str, Any]] = {"model": {"normalize": False, "true_skip": True, "fsq_levels": [8, 5, 5, 5]}}


def saved_section(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """A saved config section with the keys it predates filled in from :data:`SAVED_BEFORE`."""
    return {**SAVED_BEFORE.get(name, {}), **values}


CHANNEL_MODES: dict[str, dict[str, Any]] = {
    "1ch": {"model.channels": 1, "data.channel_mode": "mono", "train.batch_size": 32},
    "32ch": {"model.channels": 32, "data.channel_mode": "all", "train.batch_size": 4},
}

SIZE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # A meaningful run in a few minutes on 2 CPU cores: the same architecture, narrower, shorter
    # segments, three discriminator scales. Batch sizes are per channel mode (see below).
    "small": {
        "model.n_filters": 8,
        "model.dimension": 32,
        "model.n_q": 8,
        "discriminator.filters": 8,
        "discriminator.n_ffts": (512, 256, 128),
        "discriminator.hop_lengths": (128, 64, 32),
        "discriminator.win_lengths": (512, 256, 128),
        "data.segment_seconds": 0.5,
        "data.num_workers": 1,
        "data.valid_segments": 16,
        "optim.lr": 1e-3,
        "train.epochs": 6,
        "train.updates_per_epoch": 40,
        # From a random discriminator the adversarial terms (6/7 of the balanced gradient) swamp a
        # few-minute run (GAN from step 0: mel 1.4-1.8 and chance identification at 240 steps), but
        # reconstruction alone learns the corpus's average spectrum first and follows its input only
        # slowly (identified 0.19 at step 240): reconstruction for the first third, then the GAN.
        "train.adversarial_warmup_steps": 80,
        "train.log_every": 5,
        "train.checkpoint_every": 40,
    },
}

SMALL_BATCH = {"1ch": 8, "32ch": 2}


def build_config(
    channel_mode: str, preset: str = "paper", overrides: Iterable[str] = (), config_file: str | Path | None = None
) -> Config:
    """Resolve channel mode and size preset, then the settings file ``config_file`` (JSON or YAML), then the
    ``key=value`` ``overrides`` into one validated :class:`Config` (module docstring: the layers)."""
    if channel_mode not in CHANNEL_MODES:
        raise UserError(f"Unknown channel mode {channel_mode!r}; choose one of {sorted(CHANNEL_MODES)}.")
    if preset not in SIZE_PRESETS:
        raise UserError(f"Unknown preset {preset!r}; choose one of {sorted(SIZE_PRESETS)}.")
    config = Config()
    updates = dict(CHANNEL_MODES[channel_mode])
    updates.update(SIZE_PRESETS[preset])
    if preset == "small":
        updates["train.batch_size"] = SMALL_BATCH[channel_mode]
    for key, value in updates.items():
        config = config.with_value(key, value)
    if config_file is not None:
        config = config.with_file(config_file)
    return validate(config.with_overrides(overrides))


CHOICES: dict[str, tuple[str, ...]] = {
    "model.quantizer": QUANTIZER_NAMES,
    "model.pad_mode": ("constant", "reflect", "replicate"),
    "losses.adversarial": ("hinge", "mse", "hinge2"),
    "data.channel_mode": ("mono", "all", "downmix"),
    "train.precision": ("fp32", "bf16"),
    "train.logger": ("tensorboard", "wandb", "none"),
    "train.best_metric": ("mel_distance", "l1", "neg_si_snr"),
}


def validate(config: Config) -> Config:
    """Check choice-valued fields, every number's range (:func:`~audioenc.validation.check_fields`: finite always)
    and cross-field rules; raise :class:`UserError` naming the key."""
    for dotted, choices in CHOICES.items():
        section, _, key = dotted.partition(".")
        value = getattr(getattr(config, section), key)
        if value not in choices:
            raise UserError(f"{dotted}={value!r} is not valid; choose one of {', '.join(choices)}.")
    config.check_numbers()
    _check_discriminator(config.discriminator)
    unknown = [name for name in config.train.perceptual_measures if name not in PERCEPTUAL_MEASURES]
    if unknown:
        raise UserError(
            f"train.perceptual_measures: unknown {', '.join(unknown)}; choose from {', '.join(PERCEPTUAL_MEASURES)}."
        )
    return config


def _check_discriminator(disc: DiscriminatorConfig) -> None:
    """One STFT per scale: the three lists pair up, and each window fits its FFT (torch.stft refuses a longer one)."""
    if not len(disc.n_ffts) == len(disc.hop_lengths) == len(disc.win_lengths):
        raise UserError("discriminator.n_ffts, hop_lengths and win_lengths must have the same length.")
    for n_fft, win_length in zip(disc.n_ffts, disc.win_lengths):
        if win_length > n_fft:
            raise UserError(
                f"discriminator.win_lengths: a window of {win_length} is longer than its n_fft {n_fft}; "
                "give each scale a win_length <= its n_fft."
            )
