"""The workflow's settings: a :class:`~audioenc.core.settings.Settings` schema and its cross-field rules.

A run's settings are built in three layers, each overriding the last (as ``audioenc train``'s
config is): the defaults (:class:`WorkflowSettings`, or :meth:`WorkflowSettings.fast` with
``--fast``), a settings file (``--config FILE``, JSON or YAML: any subset of the sections, e.g.
``{"weak": {"max_epochs": 60}}``), and dotted overrides (``weak.patience=8``). Unknown sections
or keys are errors that list the valid ones. The resolved settings are written to the run folder
as ``settings.json`` (loadable with ``--config``).

A CRNN preset other than the base's (``crnn.preset=dcase``, :func:`~audioenc.timing.weak.crnn_preset`)
replaces the base's ``crnn`` section, and the ``features`` section where the preset needs its own
log-mels, before the file and the overrides are applied again: a preset sets defaults, explicit
``crnn.*`` and ``features.*`` values still win (``crnn.preset=dcase crnn.rnn_hidden=64``).

Sections:

==============  =========================================================================
``features``    log-mel settings of the log-mel models (:class:`~audioenc.timing.features.LogMelConfig`)
``crnn``        the weak-label CRNN's size (:class:`~audioenc.timing.weak.CRNNConfig`; ``crnn.preset``)
``weak``        how every CRNN trains (:class:`TrainingBudget`)
``augment``     mixup, masks, shift, gain, mean teacher of the CRNNs (:class:`~audioenc.timing.augment.AugmentSettings`)
``scorer``      step 1's pooling-neutral scorer (:class:`ScorerSettings`)
``probe``       the probe head and its training, adaptation's schedule (:class:`~audioenc.timing.probe.ProbeConfig`)
``rule``        when to adapt (:class:`~audioenc.timing.adapt.AdaptationRule`)
``postprocess`` median filter and decision threshold (:class:`~audioenc.timing.postprocess.PostprocessSettings`)
``evaluation``  collars, bootstrap, the pooling margin, the sanity gates (:class:`EvaluationSettings`)
``run``         clip limits, plots, worker processes (:class:`RunSettings`)
``encoder``     the ``--encoder``'s layer, bandwidth, CREPE hop, windows (:class:`EncoderSettings`)
==============  =========================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import ClassVar

from audioenc.core.settings import Settings
from audioenc.errors import UserError
from audioenc.timing.adapt import AdaptationRule
from audioenc.timing.augment import AugmentSettings
from audioenc.timing.boundaries import collar_keywords
from audioenc.timing.crnn_layers import CONV_BLOCKS, RNN_CELLS
from audioenc.timing.features import LogMelConfig
from audioenc.timing.postprocess import PostprocessSettings
from audioenc.timing.pretrained.crepe import hop_samples
from audioenc.timing.probe import ProbeConfig
from audioenc.timing.weak import CRNN_PRESETS, CRNNConfig, crnn_preset
from audioenc.validation import bounded


@dataclass(frozen=True)
class TrainingBudget:
    """How long and how a CRNN trains: Adam with a cosine decay over ``max_epochs``, the best
    validation-loss epoch kept, stopping early after ``patience`` epochs without a new best or
    before ``budget_seconds`` of wall time would be overrun.

    Attributes:
        max_epochs: the most passes over the training clips.
        patience: epochs without a lower validation loss before stopping (None: never early).
        budget_seconds: wall-clock limit per model (None: none; with one, the epoch count
            depends on the machine's speed, and the report says when it cut a model short).
        batch_size: clips per step.
        learning_rate: Adam's step size at the start.
        shared_trunk: step 3 trains its pooling rules' CRNNs together on one shared trunk
            (:mod:`audioenc.timing.shared_trunk`: the trunk's work done once, each rule keeping its own
            head, pooling and best epoch) instead of one whole CRNN per rule; with ``augment`` on, the
            rules are trained apart.
    """

    max_epochs: int = bounded(40, minimum=1, integer=True)
    patience: int | None = bounded(6, minimum=1, integer=True)
    budget_seconds: float | None = bounded(None, minimum=0)
    batch_size: int = bounded(16, minimum=1, integer=True)
    learning_rate: float = bounded(3e-3, above=0)
    shared_trunk: bool = False


@dataclass(frozen=True)
class ScorerSettings:
    """Step 1's pooling-neutral frame scorer and the learned pooling parameters.

    Attributes:
        hidden: hidden channels of the scorer.
        steps: Adam steps of the scorer (16 clips each).
        pool_fit_steps: Adam steps fitting the attention and AutoPool parameters.
    """

    hidden: int = bounded(32, minimum=1, integer=True)
    steps: int = bounded(150, minimum=1, integer=True)
    pool_fit_steps: int = bounded(150, minimum=1, integer=True)


@dataclass(frozen=True)
class EvaluationSettings:
    """How systems are measured and compared.

    Attributes:
        onset_collar: collar F1's onset tolerance (s; DCASE: 0.2).
        offset_collar: collar F1's offset tolerance floor (s; DCASE: 0.2).
        offset_collar_rate: offset tolerance as a share of the event length (DCASE: 0.2).
        onset_only_collars: HEAR's onset-only F1 tolerances (s; 0.2 and 0.05).
        bootstrap_resamples: bootstrap resamples of the clip and onset metrics.
        f1_resamples: bootstrap resamples of collar F1 (a sed_scores_eval call each).
        psds_resamples: bootstrap resamples of PSDS (0: point values only).
        pooling_ap_margin: a pooling rule may be chosen if its validation clip mAP is within
            this of the best.
        held_out_classes: classes hidden from the default (self-trained) frozen encoder.
        min_detected_share: a sanity gate: a system must detect at least this share of the
            events on positive clips (after post-processing) to take part in a decision.
    """

    onset_collar: float = bounded(0.2, minimum=0)
    offset_collar: float = bounded(0.2, minimum=0)
    offset_collar_rate: float = bounded(0.2, minimum=0)
    onset_only_collars: tuple[float, ...] = bounded((0.2, 0.05), minimum=0)
    bootstrap_resamples: int = bounded(1000, minimum=1, integer=True)
    f1_resamples: int = bounded(200, minimum=0, integer=True)
    psds_resamples: int = bounded(0, minimum=0, integer=True)
    pooling_ap_margin: float = bounded(0.10, minimum=0, maximum=1)  # mAP lies in [0, 1]
    held_out_classes: int = bounded(2, minimum=1, integer=True)
    min_detected_share: float = bounded(0.1, minimum=0, maximum=1)

    @property
    def collars(self) -> dict[str, float]:
        """Collar F1's collars as sed_scores_eval (and :class:`~audioenc.timing.evaluation.ClipEvaluator`) name them."""
        return collar_keywords(self.onset_collar, self.offset_collar, self.offset_collar_rate)


@dataclass(frozen=True)
class RunSettings:
    """How the run is carried out.

    Attributes:
        max_clips: at most this many clips per split (train, validation, test), None = all.
        plot_clips: sample clips in the frame-score plots.
        workers: processes training CRNNs at once (1: in this process).
    """

    max_clips: tuple[int, int, int] | None = bounded(None, minimum=1, integer=True)
    plot_clips: int = bounded(4, minimum=1, integer=True)
    workers: int = bounded(2, minimum=1, integer=True)


ENCODER_LAYER_WORDS: tuple[str, ...] = ("default", "all", "latent", "quantized")
"""``encoder.layer`` values other than a hidden-state number."""


@dataclass(frozen=True)
class EncoderSettings:
    """Options of the frozen encoder named with ``--encoder``, passed to
    :func:`~audioenc.timing.encoders.load_encoder` for the encoders that take them. Only the settings that
    differ from their defaults are passed (:meth:`options`), and one the encoder does not take (a layer for a
    codec run folder, a weak CRNN, a HEAR module or CREPE) is a :class:`UserError` naming it and the
    encoder's kind, never ignored.

    Attributes:
        layer: ``default`` (the encoder's own choice, stated in the report), a hidden-state number (0 = the
            input to the first transformer layer), ``all`` (every hidden state side by side, for a learned
            weighted sum), or a codec snapshot's ``latent`` / ``quantized``. A number is kept as an int (``3``
            from the command line and from a settings file alike).
        bandwidth: kbps of a codec snapshot's ``quantized`` latents (None: every codebook).
        hop_ms: CREPE's frame hop (ms, a whole number of 16 kHz samples; 10 is CREPE's own).
        max_seconds: the longest window a snapshot takes at once (None: the model's own limit).
        overlap_seconds: audio shared by neighbouring windows (None: a fifth of the window).
    """

    layer: int | str = bounded("default", minimum=0, integer=True)
    bandwidth: float | None = bounded(None, above=0)
    hop_ms: float = bounded(10.0, above=0)
    max_seconds: float | None = bounded(None, above=0)
    overlap_seconds: float | None = bounded(None, minimum=0)

    def options(self) -> dict[str, int | float | str]:
        """The settings that differ from their defaults, as ``load_encoder``'s keyword options
        (``layer`` as an int or one of :data:`ENCODER_LAYER_WORDS`)."""
        defaults = EncoderSettings()
        return {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if getattr(self, item.name) != getattr(defaults, item.name)
        }


@dataclass(frozen=True)
class WorkflowSettings(Settings):
    """Every setting of one workflow run, by section (module docstring)."""

    label: ClassVar[str] = "workflow settings"
    example: ClassVar[str] = "weak.max_epochs=60"

    features: LogMelConfig = LogMelConfig()
    crnn: CRNNConfig = CRNNConfig()
    weak: TrainingBudget = TrainingBudget()
    augment: AugmentSettings = AugmentSettings()
    scorer: ScorerSettings = ScorerSettings()
    probe: ProbeConfig = ProbeConfig()
    rule: AdaptationRule = AdaptationRule()
    postprocess: PostprocessSettings = PostprocessSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    run: RunSettings = RunSettings()
    encoder: EncoderSettings = EncoderSettings()

    @classmethod
    def fast(cls) -> WorkflowSettings:
        """A reduced run for tests (tiny models, few epochs; numbers are not meaningful)."""
        return cls(
            crnn=CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8),
            weak=TrainingBudget(max_epochs=2, patience=None),
            scorer=ScorerSettings(hidden=8, steps=20, pool_fit_steps=20),
            probe=ProbeConfig(hidden=16, max_epochs=3, patience=None, adapt_epochs=2),
            evaluation=EvaluationSettings(bootstrap_resamples=200, f1_resamples=20),
            run=RunSettings(max_clips=(48, 16, 16), plot_clips=3, workers=1),
        )


SECTIONS: tuple[str, ...] = WorkflowSettings.sections()


def resolve_settings(
    *, fast: bool = False, config_file: str | Path | None = None, overrides: Iterable[str] = ()
) -> WorkflowSettings:
    """Defaults (or :meth:`WorkflowSettings.fast`), then ``config_file`` (JSON or YAML), then ``key=value``
    ``overrides``; the result is validated."""
    base = WorkflowSettings.fast() if fast else WorkflowSettings()
    settings = _layered(base, config_file, overrides)
    preset = settings.crnn.preset
    if preset != base.crnn.preset and preset in CRNN_PRESETS:  # an unknown name is validate's error
        crnn, features = crnn_preset(preset)
        base = replace(base, crnn=crnn, features=features or base.features)
        settings = _layered(base, config_file, overrides)
    return validate(settings)


def _layered(base: WorkflowSettings, config_file: str | Path | None, overrides: Iterable[str]) -> WorkflowSettings:
    """``base``, then ``config_file``, then ``overrides``."""
    settings = base if config_file is None else base.with_file(config_file)
    return settings.with_overrides(overrides)


def validate(settings: WorkflowSettings) -> WorkflowSettings:
    """Check what no type can: every number finite and in its field's range (:func:`check_fields`), then the
    rules between fields; a :class:`UserError` naming the setting, before any step runs or any file is written."""
    settings.check_numbers()
    _check_features(settings.features)
    _check_crnn(settings.crnn, settings.features)
    if settings.probe.kind not in ("frame", "conv"):
        raise UserError(f"probe.kind={settings.probe.kind!r}; choose frame or conv")
    if settings.probe.context_frames % 2 == 0:
        raise UserError(
            f"probe.context_frames must be odd (a kernel centred on its frame); got {settings.probe.context_frames}"
        )
    if settings.augment.keep_teacher and not settings.augment.mean_teacher:
        raise UserError(
            "augment.keep_teacher=true needs a teacher to keep: set augment.mean_teacher=true or drop keep_teacher"
        )
    if not settings.postprocess.thresholds or not settings.postprocess.median_seconds:
        raise UserError("postprocess.thresholds and postprocess.median_seconds need at least one value each")
    _check_encoder(settings.encoder)
    return settings


def _check_encoder(encoder: EncoderSettings) -> None:
    """A layer is a number or a known word; CREPE's hop is whole 16 kHz samples."""
    if isinstance(encoder.layer, str) and encoder.layer not in ENCODER_LAYER_WORDS:
        raise UserError(
            f"encoder.layer={encoder.layer!r}; give {', '.join(ENCODER_LAYER_WORDS[:-1])} or "
            f"{ENCODER_LAYER_WORDS[-1]}, or a hidden-state number (0, 1, ...)"
        )
    try:
        hop_samples(encoder.hop_ms)
    except UserError as error:
        raise UserError(f"encoder.hop_ms: {error}") from None


def _check_features(features: LogMelConfig) -> None:
    """Log-mel frames are centred on their hop (``n_fft - hop_length`` even) and the mel bands lie below Nyquist."""
    if (features.n_fft - features.hop_length) % 2:
        raise UserError(
            f"features.n_fft - features.hop_length must be even for centred frames; got "
            f"{features.n_fft} - {features.hop_length}"
        )
    nyquist = features.sample_rate / 2
    f_max = nyquist if features.f_max is None else features.f_max
    if f_max > nyquist:
        raise UserError(
            f"features.f_max={f_max:g} lies above Nyquist ({nyquist:g} Hz at features.sample_rate="
            f"{features.sample_rate}); give at most {nyquist:g} or none"
        )
    if not features.f_min < f_max:
        raise UserError(f"features.f_min={features.f_min:g} must lie below features.f_max ({f_max:g} Hz)")


def _check_crnn(crnn: CRNNConfig, features: LogMelConfig) -> None:
    """A known preset and block, one pooling factor per conv block, and the frequency reduction divides the
    mel bands (WeakCRNN's shape)."""
    if crnn.preset not in CRNN_PRESETS:
        raise UserError(f"crnn.preset={crnn.preset!r}; choose one of {', '.join(CRNN_PRESETS)}")
    if crnn.conv_block not in CONV_BLOCKS:
        raise UserError(f"crnn.conv_block={crnn.conv_block!r}; choose one of {', '.join(CONV_BLOCKS)}")
    if crnn.rnn_cell not in RNN_CELLS:
        raise UserError(f"crnn.rnn_cell={crnn.rnn_cell!r}; choose one of {', '.join(RNN_CELLS)}")
    if not len(crnn.conv_channels) == len(crnn.freq_pool) == len(crnn.time_pool):
        raise UserError(
            f"crnn.conv_channels, crnn.freq_pool and crnn.time_pool need one value per block each; got "
            f"{len(crnn.conv_channels)}, {len(crnn.freq_pool)} and {len(crnn.time_pool)} values"
        )
    reduction = crnn.freq_reduction
    if features.n_mels % reduction:
        raise UserError(
            f"features.n_mels={features.n_mels} is not divisible by the CRNN's frequency reduction "
            f"{reduction} (crnn.stem_bands, with a stem, x crnn.freq_pool); change one of them"
        )


__all__ = [
    "ENCODER_LAYER_WORDS",
    "EncoderSettings",
    "EvaluationSettings",
    "RunSettings",
    "SECTIONS",
    "ScorerSettings",
    "TrainingBudget",
    "WorkflowSettings",
    "resolve_settings",
    "validate",
]
