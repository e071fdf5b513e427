"""The workflow's settings: typed sections, ``section.key=value`` overrides, a JSON settings file.

A run's settings are built in three layers, each overriding the last (as ``audioenc train``'s
config is): the defaults (:class:`WorkflowSettings`, or :meth:`WorkflowSettings.fast` with
``--fast``), a JSON file (``--config FILE``: any subset of the sections, e.g.
``{"weak": {"max_epochs": 60}}``), and dotted overrides (``weak.patience=8``). Unknown sections
or keys are errors that list the valid ones. The resolved settings are written to the run folder
as ``settings.json`` (loadable with ``--config``).

Sections:

==============  =========================================================================
``features``    log-mel settings of the log-mel models (:class:`~audioenc.timing.features.LogMelConfig`)
``crnn``        the weak-label CRNN's size (:class:`~audioenc.timing.weak.CRNNConfig`)
``weak``        how every CRNN trains (:class:`TrainingBudget`)
``scorer``      step 1's pooling-neutral scorer (:class:`ScorerSettings`)
``probe``       the probe head and its training, adaptation's schedule (:class:`~audioenc.timing.probe.ProbeConfig`)
``rule``        when to adapt (:class:`~audioenc.timing.adapt.AdaptationRule`)
``postprocess`` median filter and decision threshold (:class:`~audioenc.timing.postprocess.PostprocessSettings`)
``evaluation``  collars, bootstrap, the pooling margin, the sanity gates (:class:`EvaluationSettings`)
``run``         clip limits, plots, worker processes (:class:`RunSettings`)
==============  =========================================================================
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audioenc.config import coerce_value
from audioenc.errors import UnknownKeyError, UserError
from audioenc.timing.adapt import AdaptationRule
from audioenc.timing.features import LogMelConfig
from audioenc.timing.postprocess import PostprocessSettings
from audioenc.timing.probe import ProbeConfig
from audioenc.timing.weak import CRNNConfig


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
    """

    max_epochs: int = 40
    patience: int | None = 6
    budget_seconds: float | None = None
    batch_size: int = 16
    learning_rate: float = 3e-3


@dataclass(frozen=True)
class ScorerSettings:
    """Step 1's pooling-neutral frame scorer and the learned pooling parameters.

    Attributes:
        hidden: hidden channels of the scorer.
        steps: Adam steps of the scorer (16 clips each).
        pool_fit_steps: Adam steps fitting the attention and AutoPool parameters.
    """

    hidden: int = 32
    steps: int = 150
    pool_fit_steps: int = 150


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

    onset_collar: float = 0.2
    offset_collar: float = 0.2
    offset_collar_rate: float = 0.2
    onset_only_collars: tuple[float, ...] = (0.2, 0.05)
    bootstrap_resamples: int = 1000
    f1_resamples: int = 200
    psds_resamples: int = 0
    pooling_ap_margin: float = 0.10
    held_out_classes: int = 2
    min_detected_share: float = 0.1

    @property
    def collars(self) -> dict[str, float]:
        """Collar F1's collars as sed_scores_eval (and :class:`~audioenc.timing.evaluation.ClipEvaluator`) name them."""
        return {"onset_collar": self.onset_collar, "offset_collar": self.offset_collar,
                "offset_collar_rate": self.offset_collar_rate}


@dataclass(frozen=True)
class RunSettings:
    """How the run is carried out.

    Attributes:
        max_clips: at most this many clips per split (train, validation, test), None = all.
        plot_clips: sample clips in the frame-score plots.
        workers: processes training CRNNs at once (1: in this process).
    """

    max_clips: tuple[int, int, int] | None = None
    plot_clips: int = 4
    workers: int = 2


@dataclass(frozen=True)
class WorkflowSettings:
    """Every setting of one workflow run, by section (module docstring)."""

    features: LogMelConfig = LogMelConfig()
    crnn: CRNNConfig = CRNNConfig()
    weak: TrainingBudget = TrainingBudget()
    scorer: ScorerSettings = ScorerSettings()
    probe: ProbeConfig = ProbeConfig()
    rule: AdaptationRule = AdaptationRule()
    postprocess: PostprocessSettings = PostprocessSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    run: RunSettings = RunSettings()

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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, section by section (what ``settings.json`` holds)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def save(self, path: str | Path) -> Path:
        """Write ``settings.json``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


SECTIONS: tuple[str, ...] = tuple(item.name for item in dataclasses.fields(WorkflowSettings))


def with_value(settings: WorkflowSettings, dotted_key: str, value: Any) -> WorkflowSettings:
    """``settings`` with ``section.key`` set to ``value`` (a string is parsed by the field's type);
    unknown sections or keys raise ``KeyError`` naming the valid ones."""
    section_name, _, key = dotted_key.partition(".")
    if section_name not in SECTIONS:
        raise UnknownKeyError(f"unknown workflow settings section {section_name!r}; valid sections: {', '.join(SECTIONS)}")
    section = getattr(settings, section_name)
    hints = typing.get_type_hints(type(section))
    if key not in hints:
        valid = ", ".join(f"{section_name}.{name}" for name in hints)
        raise UnknownKeyError(f"unknown workflow setting {dotted_key!r}; valid keys: {valid}")
    try:
        parsed = coerce_value(value, hints[key])
    except (TypeError, ValueError) as error:
        raise UserError(f"bad value {value!r} for {dotted_key}: {error}") from None
    return dataclasses.replace(settings, **{section_name: dataclasses.replace(section, **{key: parsed})})


def apply_mapping(settings: WorkflowSettings, content: Mapping[str, Any], where: str = "settings") -> WorkflowSettings:
    """Apply ``{"section": {"key": value}}`` (any subset) on top of ``settings``."""
    if not isinstance(content, Mapping):
        raise UserError(f"{where}: expected an object of sections, got {type(content).__name__}")
    for section_name, values in content.items():
        if not isinstance(values, Mapping):
            raise UserError(f"{where}: section {section_name!r} must be an object of keys, got {values!r}")
        for key, value in values.items():
            settings = with_value(settings, f"{section_name}.{key}", value)
    return settings


def resolve_settings(*, fast: bool = False, config_file: str | Path | None = None,
                     overrides: Iterable[str] = ()) -> WorkflowSettings:
    """Defaults (or :meth:`WorkflowSettings.fast`), then ``config_file`` (JSON), then ``key=value``
    ``overrides``; the result is validated."""
    settings = WorkflowSettings.fast() if fast else WorkflowSettings()
    if config_file is not None:
        path = Path(config_file)
        try:
            content = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"--config {path}: no such file") from None
        except json.JSONDecodeError as error:
            raise UserError(f"--config {path}: not JSON ({error}); write {{\"section\": {{\"key\": value}}}}") from None
        settings = apply_mapping(settings, content, str(path))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise UserError(f"override {item!r} is not of the form section.key=value (e.g. weak.max_epochs=60)")
        settings = with_value(settings, key.strip(), text.strip())
    return validate(settings)


def validate(settings: WorkflowSettings) -> WorkflowSettings:
    """Check the values no type can: positive sizes, probabilities in range; raise ``ValueError``."""
    positive = {
        "weak.max_epochs": settings.weak.max_epochs, "weak.batch_size": settings.weak.batch_size,
        "probe.max_epochs": settings.probe.max_epochs, "probe.batch_size": settings.probe.batch_size,
        "probe.hidden": settings.probe.hidden, "scorer.steps": settings.scorer.steps, "run.workers": settings.run.workers,
        "evaluation.bootstrap_resamples": settings.evaluation.bootstrap_resamples,
    }
    for key, value in positive.items():
        if value < 1:
            raise UserError(f"{key} must be >= 1; got {value}")
    for key, value in (("weak.patience", settings.weak.patience), ("probe.patience", settings.probe.patience)):
        if value is not None and value < 1:
            raise UserError(f"{key} must be >= 1 or none; got {value}")
    non_negative = {
        "weak.budget_seconds": settings.weak.budget_seconds, "probe.budget_seconds": settings.probe.budget_seconds,
        "evaluation.psds_resamples": settings.evaluation.psds_resamples,
        "evaluation.f1_resamples": settings.evaluation.f1_resamples,
        "evaluation.onset_collar": settings.evaluation.onset_collar,
        "evaluation.offset_collar": settings.evaluation.offset_collar,
        "evaluation.offset_collar_rate": settings.evaluation.offset_collar_rate,
        "postprocess.fixed_median_seconds": settings.postprocess.fixed_median_seconds,
        **{f"postprocess.median_seconds[{i}]": value for i, value in enumerate(settings.postprocess.median_seconds)},
    }
    for key, value in non_negative.items():
        if value is not None and value < 0:
            raise UserError(f"{key} must be >= 0; got {value}")
    if not 0 <= settings.evaluation.min_detected_share <= 1:
        raise UserError(f"evaluation.min_detected_share must lie in [0, 1]; got {settings.evaluation.min_detected_share}")
    for threshold in settings.postprocess.thresholds:
        if not 0 < threshold < 1:
            raise UserError(f"postprocess.thresholds must lie in (0, 1); got {threshold}")
    if not settings.postprocess.thresholds or not settings.postprocess.median_seconds:
        raise UserError("postprocess.thresholds and postprocess.median_seconds need at least one value each")
    if settings.probe.kind not in ("frame", "conv"):
        raise UserError(f"probe.kind={settings.probe.kind!r}; choose frame or conv")
    return settings


__all__ = ["EvaluationSettings", "RunSettings", "SECTIONS", "ScorerSettings", "TrainingBudget", "WorkflowSettings",
           "apply_mapping", "resolve_settings", "validate", "with_value"]
