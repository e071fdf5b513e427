"""Evaluating a model's scores on one split: clip AP and accuracy, boundary metrics on positive
clips, bootstrap intervals over clips, paired differences between models.

Clip metrics (all clips): ``clip_map`` — macro average precision (:func:`average_precision`,
``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, scikit-learn's definition) over
the classes with a positive clip — and ``clip_accuracy`` (share of correct (clip, class)
decisions at 0.5). Boundary metrics (positive clips only, when the split has strong labels):
``onset_within`` / ``offset_within`` (share of true events with ``|error| <= 0.2 s``, missed
events outside), ``median_abs_onset`` (s, missed = infinite), ``collar_f1`` (macro,
sed_scores_eval, the DCASE collars) and, as point values only, ``psds1`` / ``psds2``
(:mod:`audioenc.timing.boundaries`). Intervals: :mod:`audioenc.core.bootstrap`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from audioenc.audio.formats import Event, EventSplit
from audioenc.core.bootstrap import (
    BootstrapCI,
    counts_from_indices,
    percentile_interval,
    resample_indices,
    weighted_median,
)
from audioenc.timing.boundaries import (
    OFFSET_COLLAR_RATE,
    OFFSET_COLLAR_SECONDS,
    ONSET_COLLAR_SECONDS,
    PSDS1,
    PSDS2,
    BoundaryError,
    BoundarySummary,
    CollarF1,
    PSDSSettings,
    audio_id,
    boundary_errors,
    collar_f1,
    collar_keywords,
    positive_files,
    psds,
    score_dataframes,
    summarize_boundaries,
)
from audioenc.timing.fitting import Predictions
from audioenc.timing.postprocess import decode_events, onset_only_f1

TOLERANCE_SECONDS = 0.2
"""Onset/offset tolerance of the boundary shares (the DCASE onset collar)."""


# =========================================================================== labels and clip metrics


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


@dataclass(frozen=True)
class ClipMetrics:
    """Clip-level metrics of one model on one split.

    Attributes:
        map: macro AP over the classes with a positive clip (None: no positive clip).
        per_class_ap: AP per class (None where the class has no positive clip).
        accuracy: share of correct (clip, class) decisions ``score >= threshold``.
        clips: clips evaluated.
        threshold: the decision threshold.
    """

    map: float | None
    per_class_ap: dict[str, float | None]
    accuracy: float
    clips: int
    threshold: float

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def clip_metrics(
    clip_scores: np.ndarray, targets: np.ndarray, classes: Sequence[str], threshold: float = 0.5
) -> ClipMetrics:
    """Clip-level metrics: macro AP over classes with a positive clip, and accuracy of the
    (clip, class) decisions ``score >= threshold``.

    Args:
        clip_scores: ``[N, K]``.
        targets: ``[N, K]`` multi-hot.
        classes: names of the K columns.
    """
    per_class = {name: float(average_precision(targets[:, k], clip_scores[:, k])) for k, name in enumerate(classes)}
    defined = [value for value in per_class.values() if not math.isnan(value)]
    return ClipMetrics(
        map=float(np.mean(defined)) if defined else None,
        per_class_ap={name: (None if math.isnan(value) else value) for name, value in per_class.items()},
        accuracy=float(np.mean((clip_scores >= threshold) == (targets >= 0.5))),
        clips=len(targets),
        threshold=threshold,
    )


# =========================================================================== evaluating a model


@dataclass(frozen=True)
class BoundaryEvidence:
    """Boundary metrics of one model on the positive clips of a split.

    Attributes:
        available: whether the split has strong labels with an event of the task classes.
        reason: why not, when unavailable.
        positives: positive clips evaluated.
        summary: onset/offset errors (:class:`~audioenc.timing.boundaries.BoundarySummary`).
        collar: collar F1 at 0.5 (:class:`~audioenc.timing.boundaries.CollarF1`).
        psds1, psds2: PSDS values when computed.
    """

    available: bool
    reason: str | None
    positives: int = 0
    summary: BoundarySummary | None = None
    collar: CollarF1 | None = None
    psds1: float | None = None
    psds2: float | None = None

    def to_json(self) -> dict:
        """Plain-JSON form (non-finite numbers become None)."""
        content: dict = {"available": self.available, "reason": self.reason}
        if self.available:
            content.update(positives=self.positives, summary=self.summary.as_dict(), collar_f1=self.collar.as_dict())
            content.update(
                {key: value for key, value in (("psds1", self.psds1), ("psds2", self.psds2)) if value is not None}
            )
        return content


@dataclass(frozen=True)
class Evaluation:
    """All metrics of one model on one split.

    Attributes:
        point: metric name -> value on the split's clips (None: undefined).
        intervals: metric name -> 95 % bootstrap interval (for the metrics asked for).
        boundary: the boundary details behind the boundary metrics.
    """

    point: dict[str, float | None]
    intervals: dict[str, BootstrapCI]
    boundary: BoundaryEvidence

    def interval(self, metric: str) -> BootstrapCI | None:
        """The interval of ``metric``, None when it has none."""
        return self.intervals.get(metric)

    def scores_json(self) -> dict:
        """``{"point", "intervals"}`` in plain JSON."""
        return {"point": dict(self.point), "intervals": {name: ci.as_dict() for name, ci in self.intervals.items()}}

    def to_json(self) -> dict:
        """``{"point", "intervals", "boundary"}`` in plain JSON."""
        return {**self.scores_json(), "boundary": self.boundary.to_json()}


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
    DCASE collars), ``psds1`` / ``psds2`` (intervals only with ``psds_resamples``) and, on
    every clip, HEAR's onset-only F1 ``onset_f1_<ms>ms`` (point values:
    :func:`audioenc.timing.postprocess.onset_only_f1`). Decisions use the predictions' own
    ``threshold`` (:mod:`audioenc.timing.postprocess` chooses it on validation).

    Args:
        split: the evaluation split.
        classes: the task classes (score rows).
        resamples: bootstrap resamples.
        confidence: interval coverage.
        seed: resampling seed.
        f1_resamples: the first this many resamples are used for collar F1 (one
            sed_scores_eval evaluation each, ~15 ms per 100 clips).
        psds_resamples: the first this many resamples give PSDS intervals (one PSDS
            evaluation each; 0: point values only).
        onset_collar, offset_collar, offset_collar_rate: collar F1's collars (DCASE's).
        onset_only_collars: HEAR's onset tolerances (s).
    """

    split: EventSplit
    classes: tuple[str, ...]
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    f1_resamples: int = 200
    psds_resamples: int = 0
    onset_collar: float = ONSET_COLLAR_SECONDS
    offset_collar: float = OFFSET_COLLAR_SECONDS
    offset_collar_rate: float = OFFSET_COLLAR_RATE
    onset_only_collars: tuple[float, ...] = (0.2, 0.05)
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

    @property
    def collars(self) -> dict[str, float]:
        """Collar F1's collars as sed_scores_eval names them."""
        return collar_keywords(self.onset_collar, self.offset_collar, self.offset_collar_rate)

    def _indices_for(self, metric: str) -> np.ndarray:
        if metric == "collar_f1":
            return self.indices[: self.f1_resamples]
        if metric in ("psds1", "psds2"):
            return self.indices[: self.psds_resamples]
        return self.indices

    def evaluate(
        self, predictions: Predictions, *, with_psds: bool = True, interval_metrics: Sequence[str] | None = None
    ) -> Evaluation:
        """All metrics of one model (:class:`Evaluation`).

        Args:
            predictions: the model's scores on every clip of the split (rows = ``classes``).
            with_psds: also compute PSDS1 and PSDS2 (point values).
            interval_metrics: metrics that get a bootstrap interval (None: all).

        ``boundary`` holds the full :class:`~audioenc.timing.boundaries.BoundarySummary`, collar
        F1 and PSDS details; ``intervals`` one :class:`BootstrapCI` per metric.
        """
        _check_rows(predictions, self.classes)
        names = list(self._entry(predictions)["statistics"])
        point = {name: _finite(self._point(predictions, name)) for name in names}
        intervals = {
            name: percentile_interval(self._replicates(predictions, name), point[name], self.confidence)
            for name in names
            if interval_metrics is None or name in interval_metrics
        }
        if not self.boundaries_available:
            return Evaluation(point, intervals, BoundaryEvidence(False, self.boundary_reason))
        errors = self._boundary_errors(predictions)
        collar = collar_f1(
            predictions.frame_scores,
            self.strong,
            self.classes,
            predictions.frame_rate,
            durations=self.split.durations,
            threshold=predictions.threshold,
            **self.collars,
        )
        psds_values = {}
        if with_psds:
            for key, settings in (("psds1", PSDS1), ("psds2", PSDS2)):
                psds_values[key] = self._psds_statistic(predictions, settings)(np.arange(len(self.files))[None])[0]
                point[key] = _finite(psds_values[key])
                if self.psds_resamples > 0 and (interval_metrics is None or key in interval_metrics):
                    replicates = self._psds_statistic(predictions, settings)(self._indices_for(key))
                    intervals[key] = percentile_interval(replicates, point[key], self.confidence)
        detected = decode_events(
            predictions.frame_scores, self.classes, predictions.frame_rate, predictions.threshold, self.split.durations
        )
        for collar_seconds in self.onset_only_collars:
            point[f"onset_f1_{round(1000 * collar_seconds)}ms"] = _finite(
                onset_only_f1(detected, self.strong, self.classes, collar_seconds)
            )
        evidence = BoundaryEvidence(
            True,
            None,
            len(self.positives),
            summarize_boundaries(errors, TOLERANCE_SECONDS),
            collar,
            psds_values.get("psds1"),
            psds_values.get("psds2"),
        )
        return Evaluation(point, intervals, evidence)

    def paired_difference(self, a: Predictions, b: Predictions) -> dict[str, BootstrapCI]:
        """Intervals of ``metric(a) - metric(b)`` on the same resamples, per metric."""
        _check_rows(a, self.classes)
        _check_rows(b, self.classes)
        result = {}
        for name in self._entry(a)["statistics"]:
            value = _finite(self._point(a, name) - self._point(b, name))
            with np.errstate(invalid="ignore"):  # inf - inf (both medians infinite): undefined, dropped
                replicates = self._replicates(a, name) - self._replicates(b, name)
            result[name] = percentile_interval(replicates, value, self.confidence)
        return result

    # ------------------------------------------------------------------ cache

    def _entry(self, predictions: Predictions) -> dict:
        """Statistics of one model, with point values and replicates computed once (a model's
        intervals and its paired differences reuse them)."""
        entry = self._cache.get(id(predictions))
        if entry is None or entry["predictions"] is not predictions:
            entry = {
                "predictions": predictions,
                "statistics": self._statistics(predictions),
                "point": {},
                "replicates": {},
            }
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
            per_class = np.stack(
                [average_precision(self.targets[:, k], scores[:, k], counts) for k in range(len(self.classes))]
            )
            with np.errstate(invalid="ignore"):
                defined = ~np.isnan(per_class)
                return np.where(
                    defined.any(axis=0), np.nansum(per_class, axis=0) / np.maximum(defined.sum(axis=0), 1), np.nan
                )

        def clip_accuracy(indices: np.ndarray) -> np.ndarray:
            return counts_from_indices(indices, n) @ per_clip_accuracy / n

        statistics = {"clip_map": clip_map, "clip_accuracy": clip_accuracy}
        if not self.boundaries_available:
            return statistics
        errors = self._boundary_errors(predictions)
        row = {name: index for index, name in enumerate(self.files)}
        event_clip = np.array([row[error.filename] for error in errors])
        onset = np.array([abs(error.onset_error) if error.detected else np.inf for error in errors])
        offset = np.array([abs(error.offset_error) if error.detected else np.inf for error in errors])

        def share_within(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            def statistic(indices: np.ndarray) -> np.ndarray:
                weights = counts_from_indices(indices, n)[:, event_clip]
                total = weights.sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    return np.where(
                        total > 0, weights @ (values <= TOLERANCE_SECONDS) / np.where(total > 0, total, 1), np.nan
                    )

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

    def _boundary_errors(self, predictions: Predictions) -> list[BoundaryError]:
        """One onset/offset error per true event of the split (``evaluate`` and the bootstrap share them)."""
        return boundary_errors(
            predictions.frame_scores,
            self.strong,
            self.classes,
            predictions.frame_rate,
            threshold=predictions.threshold,
            durations=self.split.durations,
        )

    def _collar_statistic(self, predictions: Predictions) -> Callable[[np.ndarray], np.ndarray]:
        """Macro collar F1 on the positive clips of each resample, by sed_scores_eval from per-clip
        intermediate statistics (computed once); NaN for a resample lacking an evaluated class."""
        from sed_scores_eval import collar_based
        from sed_scores_eval.collar_based.intermediate_statistics import (
            intermediate_statistics_deltas,
        )

        present = {event.label for name in self.positives for event in self.strong[name]}
        evaluated = [name for name in self.classes if name in present]
        dataframes = score_dataframes(
            predictions.frame_scores,
            self.classes,
            predictions.frame_rate,
            durations=self.split.durations,
            files=self.positives,
        )
        dataframes = {key: frame[["onset", "offset", *evaluated]] for key, frame in dataframes.items()}
        truth = {audio_id(name): [(e.onset, e.offset, e.label) for e in self.strong[name]] for name in self.positives}
        collars = self.collars
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
                    None,
                    {key: truth[audio_id(name)] for key, name in zip(keys, chosen)},
                    predictions.threshold,
                    deltas={key: deltas[audio_id(name)] for key, name in zip(keys, chosen)},
                    **collars,
                )
                values[b] = float(f["macro_average"])
            return values

        return statistic

    def _psds_statistic(self, predictions: Predictions, settings: PSDSSettings) -> Callable[[np.ndarray], np.ndarray]:
        """PSDS (sed_scores_eval, threshold-free) on the positive clips of each resample (a clip
        drawn twice is evaluated twice); NaN for a resample lacking an evaluated class, and NaN throughout
        when fewer than two classes have events (:func:`~audioenc.timing.boundaries.psds` needs two)."""
        present = {event.label for name in self.positives for event in self.strong[name]}
        positive_set = set(self.positives)

        def statistic(indices: np.ndarray) -> np.ndarray:
            values = np.full(indices.shape[0], np.nan)
            for b, row in enumerate(indices):
                chosen = [self.files[i] for i in row if self.files[i] in positive_set]
                if len(present) < 2 or {event.label for name in chosen for event in self.strong[name]} != present:
                    continue
                keys = [f"{audio_id(name)}#{copy_index}.wav" for copy_index, name in enumerate(chosen)]
                values[b] = psds(
                    {key: predictions.frame_scores[name] for key, name in zip(keys, chosen)},
                    {key: self.strong[name] for key, name in zip(keys, chosen)},
                    self.classes,
                    predictions.frame_rate,
                    {key: self.split.durations[name] for key, name in zip(keys, chosen)},
                    settings=settings,
                ).value
            return values

        return statistic


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _check_rows(predictions: Predictions, classes: tuple[str, ...]) -> None:
    if tuple(predictions.classes) != classes:
        raise ValueError(f"predictions have classes {predictions.classes}, the evaluation expects {classes}")


__all__ = [
    "BoundaryEvidence",
    "ClipEvaluator",
    "ClipMetrics",
    "Evaluation",
    "TOLERANCE_SECONDS",
    "average_precision",
    "clip_metrics",
    "clip_targets",
    "restrict_strong",
]
