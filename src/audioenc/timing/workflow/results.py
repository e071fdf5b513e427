"""The typed results of the workflow's steps: one frozen dataclass per step, each with
``to_json()`` (the step's section of ``report.json``), and :class:`StepResults`, which holds them
in the track's order. Step modules compute them; the report reads them; nothing here computes.

In-memory products a later step continues from (the scorer's predictions, the trained CRNNs,
the frozen path) ride on the result as fields outside ``to_json()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from audioenc.core.bootstrap import BootstrapCI
from audioenc.core.cache import CacheStats
from audioenc.timing.adapt import AdaptationTrigger, AdaptationVerdict
from audioenc.timing.encoders import EncoderHandle, FrameEmbeddings
from audioenc.timing.evaluation import ClipEvaluator, ClipMetrics, Evaluation
from audioenc.timing.fitting import Predictions, TrainingHistory
from audioenc.timing.postprocess import PostProcessing
from audioenc.timing.probe import ProbeHead
from audioenc.timing.weak import CRNNConfig, WeakCRNN
from audioenc.timing.workflow.artifacts import clean
from audioenc.timing.workflow.data import WorkflowData
from audioenc.timing.workflow.gates import SanityCheck
from audioenc.timing.workflow.settings import TrainingBudget

TRAINED_ENCODER_FOLDER = "05_probe/encoder"
"""Where step 5 saves the encoder it trains when none is given."""


def cache_json(stats: CacheStats) -> dict:
    """What an array cache did, for ``report.json``: ``{"enabled", "clips", "from_cache", "bytes", "location"}``."""
    return {
        "enabled": stats.enabled,
        "clips": stats.lookups,
        "from_cache": stats.hits,
        "bytes": stats.bytes,
        "location": stats.location,
    }


def _training_json(history: TrainingHistory) -> dict:
    """How one model's training ended: epochs run, the best epoch, why it stopped."""
    return {
        "epochs_run": len(history.valid_loss),
        "best_epoch": history.best_epoch,
        "stopped": history.stopped,
        "still_improving": history.still_improving,
    }


def intervals_json(intervals: dict[str, BootstrapCI]) -> dict:
    """Metric -> interval, in plain JSON."""
    return {name: ci.as_dict() for name, ci in intervals.items()}


# --------------------------------------------------------------------------- step0_data


@dataclass(frozen=True)
class SplitSummary:
    """One split as read: clips, clips with events, whether strong labels exist, its folder and hours."""

    clips: int
    with_events: int
    strong_labels: bool
    audio_dir: str
    seconds: float


@dataclass(frozen=True)
class DataSummary:
    """What step 0 found.

    Attributes:
        corpus: the validated, featurised corpus (in memory, for the later steps).
        splits: per split its :class:`SplitSummary`.
        channel_policy: the sentence on channels and rates the report states.
        artifacts: files written, relative to the run folder.
    """

    corpus: WorkflowData = field(repr=False)
    splits: dict[str, SplitSummary]
    channel_policy: str
    artifacts: tuple[str, ...]

    def to_json(self) -> dict:
        """``report.json``'s ``data`` section."""
        return {
            "root": str(self.corpus.root),
            "classes": list(self.corpus.classes),
            "splits": {name: asdict(summary) for name, summary in self.splits.items()},
            "notes": list(self.corpus.notes),
            "audio_formats": dict(self.corpus.audio_formats),
            "channel_policy": self.channel_policy,
            "issues": len(self.corpus.issues),
            "unlabeled_clips": len(self.corpus.unlabeled.split.files) if self.corpus.unlabeled is not None else 0,
            "feature_cache": self.feature_cache_json(),
            "artifacts": list(self.artifacts),
        }

    def feature_cache_json(self) -> dict:
        """Where step 0's log-mels came from: ``{"enabled", "clips", "from_cache", "bytes", "location"}``."""
        return cache_json(self.corpus.feature_cache)

    def dropped_json(self) -> list[dict]:
        """Every dropped or changed row or file: ``{"file", "line", "action", "message"}``."""
        return [
            {"file": issue.file, "line": issue.line, "action": issue.action, "message": issue.message}
            for issue in self.corpus.issues
        ]


# --------------------------------------------------------------------------- step1_pooling


@dataclass(frozen=True)
class PoolingComparison:
    """Step 1's evidence.

    Attributes:
        metrics: rule -> split (``validation``, ``test``) -> :class:`ClipMetrics`.
        best_on_validation_map: the rule with the highest validation clip mAP.
        autopool_alpha: AutoPool's fitted alpha per class.
        artifacts: files written, relative to the run folder.
        predictions: the scorer's frame scores per split (in memory, for step 2).
    """

    metrics: dict[str, dict[str, ClipMetrics]]
    best_on_validation_map: str
    autopool_alpha: dict[str, float]
    artifacts: tuple[str, ...]
    predictions: dict[str, Predictions] = field(repr=False, default_factory=dict)

    def metrics_json(self) -> dict:
        """``rule -> split -> metrics`` in plain JSON."""
        return clean(
            {rule: {name: item.to_json() for name, item in splits.items()} for rule, splits in self.metrics.items()}
        )

    def to_json(self) -> dict:
        """``report.json``'s ``pooling.same_frame_scores``."""
        return {
            "metrics": self.metrics_json(),
            "best_on_validation_map": self.best_on_validation_map,
            "autopool_alpha": dict(self.autopool_alpha),
            "artifacts": list(self.artifacts),
        }


# --------------------------------------------------------------------------- step2_frames


@dataclass(frozen=True)
class FrameView:
    """How the true class's frame scores behave on positive test clips.

    Attributes:
        available: whether the test split has strong labels to measure against.
        reason: why not, when unavailable.
        inside_mean: mean score of the true class inside its events.
        outside_mean: ... outside its events, on the same clips.
        absent_class_mean: mean score of classes absent from a clip.
        peak_inside: (clip, class) pairs whose highest frame lies inside an event of the class.
        positive_pairs: (clip, class) pairs with an event.
        sample_clips: the clips plotted.
        artifacts: files written, relative to the run folder.
    """

    available: bool
    reason: str | None
    inside_mean: float | None = None
    outside_mean: float | None = None
    absent_class_mean: float | None = None
    peak_inside: int = 0
    positive_pairs: int = 0
    sample_clips: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()

    def measurements(self) -> dict:
        """The numbers (or the reason), without the clips and artifacts."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        return clean(
            {
                "available": True,
                "inside_mean": self.inside_mean,
                "outside_mean": self.outside_mean,
                "absent_class_mean": self.absent_class_mean,
                "peak_inside": self.peak_inside,
                "positive_pairs": self.positive_pairs,
            }
        )

    def to_json(self) -> dict:
        """``report.json``'s ``frames`` section."""
        return {**self.measurements(), "sample_clips": list(self.sample_clips), "artifacts": list(self.artifacts)}


# --------------------------------------------------------------------------- step3_weak


@dataclass(frozen=True)
class RuleTraining:
    """One CRNN of step 3: its training and its clip metrics.

    Attributes:
        seconds: training wall time.
        history: per-epoch losses and the best epoch kept.
        frame_rate: output frames per second.
        validation, test: clip metrics on those splits.
    """

    seconds: float
    history: TrainingHistory
    frame_rate: float
    validation: ClipMetrics
    test: ClipMetrics

    def to_json(self, curves: bool = False) -> dict:
        """Plain JSON; with ``curves`` also the per-epoch losses."""
        content = {
            "seconds": self.seconds,
            "best_epoch": self.history.best_epoch,
            "epochs_run": len(self.history.valid_loss),
            "stopped": self.history.stopped,
            "still_improving": self.history.still_improving,
        }
        if curves:
            content.update(valid_loss=self.history.valid_loss, train_loss=self.history.train_loss)
        content.update(frame_rate=self.frame_rate, validation=self.validation.to_json(), test=self.test.to_json())
        return clean(content)


@dataclass(frozen=True)
class WeakTraining:
    """Step 3's CRNNs, one per pooling rule.

    Attributes:
        crnn, budget, seed: how every CRNN was trained.
        train_clips: the training clips (the same for every rule).
        rules: rule -> :class:`RuleTraining`.
        artifacts: files written, relative to the run folder.
        models: rule -> the trained CRNN (in memory, for steps 4 and 5).
        predictions: rule -> split (``validation``, ``test``) -> scores (in memory).
        shared_trunk: the rules were trained together on one shared trunk (``weak.shared_trunk``).
    """

    crnn: CRNNConfig
    budget: TrainingBudget
    seed: int
    train_clips: tuple[str, ...]
    rules: dict[str, RuleTraining]
    artifacts: tuple[str, ...]
    models: dict[str, WeakCRNN] = field(repr=False, default_factory=dict)
    predictions: dict[str, dict[str, Predictions]] = field(repr=False, default_factory=dict)
    shared_trunk: bool = False

    def training_record(self) -> tuple[dict[str, TrainingHistory], tuple[str, ...]]:
        """Each rule's CRNN and its training, and ``training.json`` and ``training_curves.png``."""
        return {f"{rule} CRNN": item.history for rule, item in self.rules.items()}, self.artifacts[:2]

    def to_json(self) -> dict:
        """``report.json``'s account of step 3 (``pooling.trained`` holds its ``rules``)."""
        return clean(
            {
                "crnn": asdict(self.crnn),
                "budget": asdict(self.budget),
                "seed": self.seed,
                "train_clips": len(self.train_clips),
                "rules": {rule: item.to_json() for rule, item in self.rules.items()},
                "shared_trunk": self.shared_trunk,
                "artifacts": list(self.artifacts),
            }
        )


# --------------------------------------------------------------------------- step4_boundaries


@dataclass(frozen=True)
class PoolingChoice:
    """The pooling rule chosen on validation (:func:`choose_pooling`).

    Attributes:
        chosen: the rule.
        basis: why, with the numbers.
        rule: the choosing rule in one sentence.
        candidates: the rules within the mAP margin of the best.
        validation_metrics: rule -> the validation point metrics it was chosen from.
    """

    chosen: str
    basis: str
    rule: str
    candidates: tuple[str, ...]
    validation_metrics: dict[str, dict[str, float | None]]

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return clean(
            {
                "chosen": self.chosen,
                "basis": self.basis,
                "rule": self.rule,
                "candidates": list(self.candidates),
                "validation_metrics": self.validation_metrics,
            }
        )


@dataclass(frozen=True)
class BoundaryInspection:
    """Step 4's evidence.

    Attributes:
        available: whether the test split has strong labels (with events of the classes).
        reason: why not, when unavailable.
        positives: positive test clips.
        per_rule: rule -> :class:`~audioenc.timing.evaluation.Evaluation` on the test split.
        selection: the :class:`PoolingChoice`.
        disagreements: where clip mAP and collar F1 rank rules oppositely (among the rules that
            passed the gates).
        artifacts: files written, relative to the run folder.
        postprocessing: rule -> the median filter and threshold chosen on validation.
        gates: rule -> whether its CRNN learned anything (:mod:`audioenc.timing.workflow.gates`).
        decided: whether a rule passed the gates; without one the choice is provisional (the
            later steps still run, and the report states no pooling decision).
    """

    available: bool
    reason: str | None
    positives: int
    per_rule: dict[str, Evaluation]
    selection: PoolingChoice
    disagreements: tuple[dict, ...]
    artifacts: tuple[str, ...]
    postprocessing: dict[str, PostProcessing] = field(default_factory=dict)
    gates: dict[str, SanityCheck] = field(default_factory=dict)
    decided: bool = True

    @property
    def chosen(self) -> str:
        """The chosen pooling rule."""
        return self.selection.chosen

    def to_json(self) -> dict:
        """``report.json``'s ``boundaries`` section."""
        per_rule = {
            rule: {**item.scores_json(), "summary": item.boundary.summary.as_dict() if item.boundary.summary else None}
            for rule, item in self.per_rule.items()
        }
        return clean(
            {
                "available": self.available,
                "reason": self.reason,
                "positives": self.positives,
                "per_rule": per_rule,
                "selection": self.selection.to_json(),
                "decided": self.decided,
                "postprocessing": {rule: item.to_json() for rule, item in self.postprocessing.items()},
                "gates": {rule: item.to_json() for rule, item in self.gates.items()},
                "disagreements": list(self.disagreements),
                "artifacts": list(self.artifacts),
            }
        )


# --------------------------------------------------------------------------- step5_probe


@dataclass(frozen=True)
class EncoderInfo:
    """The frozen encoder as the report states it.

    Attributes:
        description: :meth:`EncoderHandle.describe` (kind, source, rates, sizes, channel policy).
        trained_here: whether step 5 trained it (on the other classes).
        trained_on_classes: those classes, when trained here.
        seconds: its training time, when trained here.
        frame_rate: frames per second of its embeddings on the grid.
        embedding_seconds: time to embed every clip (reading the cached ones included).
        grid_is_encoder_frames: whether the grid is exactly the encoder's frames.
        embedding_cache: what the embedding cache did for those clips (None: not recorded).
    """

    description: dict
    trained_here: bool
    frame_rate: float
    embedding_seconds: float
    grid_is_encoder_frames: bool
    trained_on_classes: tuple[str, ...] | None = None
    seconds: float | None = None
    embedding_cache: CacheStats | None = None

    def __post_init__(self) -> None:
        if self.trained_here and self.trained_on_classes is None:
            raise ValueError("an encoder trained here needs the classes it was trained on")

    def to_json(self) -> dict:
        """Plain-JSON form."""
        content = {**self.description, "trained_here": self.trained_here}
        if self.trained_here:
            content.update(
                source=TRAINED_ENCODER_FOLDER, trained_on_classes=list(self.trained_on_classes), seconds=self.seconds
            )
        content = {
            **content,
            "frame_rate": self.frame_rate,
            "embedding_seconds": self.embedding_seconds,
            "grid_is_encoder_frames": self.grid_is_encoder_frames,
        }
        if self.embedding_cache is not None:
            content["embedding_cache"] = cache_json(self.embedding_cache)
        return content


@dataclass(frozen=True)
class FrozenPath:
    """What step 6 continues from (in memory): the encoder, its embeddings, the probe, the
    evaluator and the frozen path's test scores."""

    handle: EncoderHandle
    probe: ProbeHead
    embeddings: dict[str, FrameEmbeddings]
    targets: dict[str, np.ndarray]
    evaluator: ClipEvaluator
    frozen_test: Predictions
    fingerprint: dict[str, np.ndarray]


@dataclass(frozen=True)
class ProbeComparison:
    """Step 5's evidence.

    Attributes:
        encoder: :class:`EncoderInfo`.
        channel_policy: how clip audio reached each model.
        task_classes: the classes probed and compared.
        pooling: the pooling rule of probe and scratch (step 4's choice).
        notes: what the baseline and the encoder are.
        encoder_parameters_unchanged: the frozen encoder's weights after probing equal those before.
        frozen, scratch: :class:`~audioenc.timing.evaluation.Evaluation` on the test split.
        difference: metric -> paired interval of ``frozen - scratch``.
        artifacts: files written, relative to the run folder.
        probe_description: which probe was used, in words.
        postprocessing: system -> the median filter and threshold chosen on validation.
        gates: system -> whether it learned anything (:mod:`audioenc.timing.workflow.gates`).
        histories: model -> its training history (probe, scratch, the encoder when trained here).
        frozen_path: in memory, for step 6.
    """

    encoder: EncoderInfo
    channel_policy: str
    task_classes: tuple[str, ...]
    pooling: str
    notes: tuple[str, ...]
    encoder_parameters_unchanged: bool
    frozen: Evaluation
    scratch: Evaluation
    difference: dict[str, BootstrapCI]
    artifacts: tuple[str, ...]
    probe_description: str = ""
    postprocessing: dict[str, PostProcessing] = field(default_factory=dict)
    gates: dict[str, SanityCheck] = field(default_factory=dict)
    histories: dict[str, TrainingHistory] = field(default_factory=dict)
    frozen_path: FrozenPath = field(repr=False, default=None)

    @property
    def boundaries_available(self) -> bool:
        """Whether boundary metrics were computed (strong test labels with task-class events)."""
        return self.frozen.boundary.available

    def training_record(self) -> tuple[dict[str, TrainingHistory], tuple[str, ...]]:
        """The probe, the scratch baseline (and the encoder when trained here), and their curves."""
        return dict(self.histories), tuple(path for path in self.artifacts if path.endswith("training_curves.png"))

    def to_json(self) -> dict:
        """``report.json``'s ``probe`` section."""
        return clean(
            {
                "encoder": self.encoder.to_json(),
                "channel_policy": self.channel_policy,
                "task_classes": list(self.task_classes),
                "pooling": self.pooling,
                "notes": list(self.notes),
                "encoder_parameters_unchanged": self.encoder_parameters_unchanged,
                "boundaries_available": self.boundaries_available,
                "boundary_reason": self.frozen.boundary.reason,
                "frozen": self.frozen.scores_json(),
                "scratch": self.scratch.scores_json(),
                "difference": {name: ci.as_dict() for name, ci in self.difference.items()},
                "artifacts": list(self.artifacts),
                "probe_description": self.probe_description,
                "postprocessing": {system: item.to_json() for system, item in self.postprocessing.items()},
                "gates": {system: item.to_json() for system, item in self.gates.items()},
                "training": {name: _training_json(history) for name, history in self.histories.items()},
            }
        )


# --------------------------------------------------------------------------- step6_adapt


@dataclass(frozen=True)
class AdaptationOutcome:
    """Step 6's evidence.

    Attributes:
        rule: the adaptation rule in one paragraph.
        trigger: whether the frozen path stopped short (:class:`~audioenc.timing.adapt.AdaptationTrigger`).
        unavailable: why adaptation could not run although triggered (None otherwise).
        top_block: the layers unfrozen, when it ran.
        verdict: whether the adapted encoder is justified, when it ran.
        adapted: its :class:`~audioenc.timing.evaluation.Evaluation` on the test split, when it ran.
        gain_over_frozen: metric -> paired interval of ``adapted - frozen``, when it ran.
        artifacts: files written, relative to the run folder.
        no_decision: why no decision could be drawn (a sanity gate failed), else None.
        postprocessing: the adapted model's median filter and threshold, when it ran.
        history: the adapted model's training, when it ran.
    """

    rule: str
    trigger: AdaptationTrigger
    unavailable: str | None = None
    top_block: str | None = None
    verdict: AdaptationVerdict | None = None
    adapted: Evaluation | None = None
    gain_over_frozen: dict[str, BootstrapCI] | None = None
    artifacts: tuple[str, ...] = ()
    no_decision: str | None = None
    postprocessing: PostProcessing | None = None
    history: TrainingHistory | None = None

    @property
    def ran(self) -> bool:
        """Whether the adapted model was trained."""
        return self.verdict is not None

    def training_record(self) -> tuple[dict[str, TrainingHistory], tuple[str, ...]]:
        """The adapted model's training, when it ran (its curve is in ``adaptation.json``)."""
        return ({"adapted": self.history} if self.history is not None else {}), ()

    def to_json(self) -> dict:
        """``report.json``'s ``adaptation`` section."""
        content = {
            "rule": self.rule,
            **self.trigger.to_json(),
            "ran": self.ran,
            "unavailable": self.unavailable,
            "no_decision": self.no_decision,
        }
        if self.ran:
            content.update(
                top_block=self.top_block,
                verdict=self.verdict.to_json(),
                adapted=self.adapted.scores_json(),
                gain_over_frozen=intervals_json(self.gain_over_frozen),
                postprocessing=self.postprocessing.to_json() if self.postprocessing else None,
                training=_training_json(self.history) if self.history else None,
            )
        return clean({**content, "artifacts": list(self.artifacts)})


class StepResults(dict):
    """The result of each step run so far, by the step's ``NAME``, in the order the steps ran."""

    def need(self, name: str) -> Any:
        """The result of step ``name``; raises when that step has not run (a step out of order)."""
        result = self.get(name)
        if result is None:
            raise RuntimeError(f"internal: the {name} step has not run yet")
        return result

    def training_records(self) -> tuple[dict[str, TrainingHistory], tuple[str, ...]]:
        """Every model trained so far (name -> history) and the artifacts that show their training,
        gathered from the results that train models (those with ``training_record()``)."""
        histories: dict[str, TrainingHistory] = {}
        artifacts: list[str] = []
        for result in self.values():
            record = getattr(result, "training_record", None)
            if record is not None:
                trained, shown = record()
                histories.update(trained)
                artifacts += shown
        return histories, tuple(artifacts)
