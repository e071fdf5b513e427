"""Boundary inspection on positive clips: onset/offset errors, collar F1 and PSDS.

Inputs everywhere: frame scores ``[classes, frames]`` per filename at ``frame_rate`` frames/s
(frame ``j`` spans ``[j, j + 1) / frame_rate`` seconds), the strong labels (``Event`` tuples
per filename, :mod:`audioenc.audio.formats`) and the class order of the score rows.

**Onset and offset errors** (our rule, computed here). Only *positive* clips take part: a
clip without events has no boundary to miss, and mixing negatives in would turn a boundary
measure into a detection measure. For each true event of class ``k``:

1. its *region* runs from the midpoint between the previous event of class ``k`` in the clip
   (its offset) and this onset — or the clip start — to the midpoint between this offset and
   the next event of class ``k`` — or the clip end;
2. the frames of the region (frame midpoint inside the region) whose class-``k`` score is
   strictly above ``threshold`` (0.5) are active — "strictly above", as in sed_scores_eval;
3. predicted onset = start of the first active frame, predicted offset = end of the last;
   without an active frame the event is *missed*.

Errors are ``predicted - true`` in seconds (negative: early). The summary reports medians of
the absolute errors with **missed events counted as infinitely wrong** (so a model that misses
more than half the events has an infinite median, not a flattering one), the median signed
error over detected events (a bias), and the share of events whose absolute error is within
200 ms (missed events count as outside).

**Collar F1 and PSDS** are computed by sed_scores_eval (the DCASE task 4 reference), never by
hand: collar F1 with onset collar 200 ms and offset collar max(200 ms, 20 % of the event
length), at a fixed threshold; PSDS1 and PSDS2 with the DCASE 2021+ settings
(:data:`PSDS1`, :data:`PSDS2`). sed_scores_eval keys clips by audio id, the filename without
its extension; the wrappers convert. A class without any reference event in the evaluated
clips has no defined recall, so it is left out of these two metrics and named in the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from audioenc.audio.formats import Event
from audioenc.core.frames import frame_centres, frame_starts, frame_times

ONSET_COLLAR_SECONDS = 0.2
"""Collar F1 onset tolerance (DCASE task 4)."""

OFFSET_COLLAR_SECONDS = 0.2
"""Collar F1 offset tolerance floor (DCASE task 4)."""

OFFSET_COLLAR_RATE = 0.2
"""Collar F1 offset tolerance as a share of the event length (DCASE task 4)."""


def collar_keywords(onset_collar: float, offset_collar: float, offset_collar_rate: float) -> dict[str, float]:
    """The three collars under the keyword names :func:`collar_f1` and sed_scores_eval take."""
    return {"onset_collar": onset_collar, "offset_collar": offset_collar, "offset_collar_rate": offset_collar_rate}


@dataclass(frozen=True)
class PSDSSettings:
    """The parameters of one PSDS scenario (Bilen et al. 2020; sed_scores_eval's names).

    Attributes:
        dtc_threshold: detection tolerance criterion.
        gtc_threshold: ground-truth intersection criterion.
        cttc_threshold: cross-trigger tolerance criterion, or None (no cross-trigger term).
        alpha_ct: weight of the cross-trigger rate in the effective FP rate.
        alpha_st: weight of the across-class standard deviation subtracted from the mean TPR.
        max_efpr: effective false positives per hour up to which the ROC is integrated.
    """

    dtc_threshold: float
    gtc_threshold: float
    cttc_threshold: float | None
    alpha_ct: float
    alpha_st: float
    max_efpr: float = 100.0


PSDS1 = PSDSSettings(dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0.0, alpha_st=1.0)
"""DCASE 2021+ scenario 1: tight localisation, no cross-trigger penalty."""

PSDS2 = PSDSSettings(dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1.0)
"""DCASE 2021+ scenario 2: loose localisation, cross-triggers penalised."""


# --------------------------------------------------------------------------- onset/offset errors


@dataclass(frozen=True)
class BoundaryError:
    """The predicted boundaries of one true event.

    Attributes:
        filename: the clip.
        label: the event class.
        onset, offset: true boundaries, seconds.
        predicted_onset, predicted_offset: from the rule in the module docstring, seconds;
            None when the event was missed.
    """

    filename: str
    label: str
    onset: float
    offset: float
    predicted_onset: float | None
    predicted_offset: float | None

    @property
    def detected(self) -> bool:
        """Whether any frame of the event's region was active."""
        return self.predicted_onset is not None

    @property
    def onset_error(self) -> float:
        """``predicted - true`` onset in seconds; NaN when missed."""
        return self.predicted_onset - self.onset if self.predicted_onset is not None else math.nan

    @property
    def offset_error(self) -> float:
        """``predicted - true`` offset in seconds; NaN when missed."""
        return self.predicted_offset - self.offset if self.predicted_offset is not None else math.nan


def positive_files(strong: Mapping[str, Sequence[Event]]) -> list[str]:
    """Files with at least one labelled event, sorted."""
    return sorted(name for name, events in strong.items() if events)


def boundary_errors(
    frame_scores: Mapping[str, np.ndarray],
    strong: Mapping[str, Sequence[Event]],
    classes: Sequence[str],
    frame_rate: float,
    *,
    threshold: float = 0.5,
    durations: Mapping[str, float] | None = None,
) -> list[BoundaryError]:
    """Onset/offset predictions for every event of every positive clip.

    Args:
        frame_scores: ``[classes, frames]`` per filename.
        strong: events per filename; clips without events are skipped (positives only).
        classes: class of each score row.
        frame_rate: frames per second of the scores.
        threshold: a frame is active when its score is strictly above this.
        durations: clip lengths in seconds (regions end there); default: the frames' end.

    Returns:
        One :class:`BoundaryError` per event, in filename then onset order.
    """
    row_of = {name: row for row, name in enumerate(classes)}
    results: list[BoundaryError] = []
    for filename in positive_files(strong):
        if filename not in frame_scores:
            raise KeyError(f"no frame scores for positive clip {filename!r}; score every clip of the evaluated split")
        scores = np.asarray(frame_scores[filename])
        if scores.ndim != 2 or scores.shape[0] != len(classes):
            raise ValueError(
                f"frame scores of {filename!r} must be [{len(classes)} classes, frames], got {scores.shape}"
            )
        frames = scores.shape[1]
        starts = frame_starts(frames, frame_rate)
        middles = frame_centres(frames, frame_rate)
        clip_end = durations[filename] if durations is not None else frames / frame_rate
        for label in sorted({event.label for event in strong[filename]}):
            if label not in row_of:
                raise KeyError(f"class {label!r} of {filename!r} has no score row; classes are {list(classes)}")
            events = sorted(event for event in strong[filename] if event.label == label)
            active = scores[row_of[label]] > threshold
            for index, event in enumerate(events):
                low = (events[index - 1].offset + event.onset) / 2 if index > 0 else 0.0
                high = (event.offset + events[index + 1].onset) / 2 if index + 1 < len(events) else clip_end
                in_region = np.flatnonzero(active & (middles >= low) & (middles < high))
                if len(in_region):
                    first, last = in_region[0], in_region[-1]
                    predicted = (float(starts[first]), float(min(starts[last] + 1 / frame_rate, clip_end)))
                else:
                    predicted = (None, None)
                results.append(BoundaryError(filename, label, event.onset, event.offset, *predicted))
    return results


@dataclass(frozen=True)
class BoundarySummary:
    """Summary of :func:`boundary_errors` (definitions in the module docstring).

    Attributes:
        events: true events on positive clips.
        detected: events with a predicted boundary.
        median_abs_onset_error: seconds; missed events count as infinite.
        median_abs_offset_error: seconds; missed events count as infinite.
        median_onset_error: signed, detected events only (NaN if none).
        median_offset_error: signed, detected events only (NaN if none).
        onset_within: share of events with ``|onset error| <= tolerance``.
        offset_within: share of events with ``|offset error| <= tolerance``.
        tolerance: seconds (0.2).
        per_class: the same summary per class (without its own ``per_class``).
    """

    events: int
    detected: int
    median_abs_onset_error: float
    median_abs_offset_error: float
    median_onset_error: float
    median_offset_error: float
    onset_within: float
    offset_within: float
    tolerance: float
    per_class: dict[str, BoundarySummary] = field(default_factory=dict)

    @property
    def missed(self) -> int:
        """Events without a predicted boundary."""
        return self.events - self.detected

    def as_dict(self) -> dict:
        """Plain-JSON form: non-finite numbers become None (with ``missed`` to explain them)."""

        def clean(value):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {key: clean(item) for key, item in value.items()}
            return value

        return clean({**asdict(self), "missed": self.missed})


def _summary(errors: Sequence[BoundaryError], tolerance: float) -> BoundarySummary:
    onset = np.array([abs(error.onset_error) if error.detected else math.inf for error in errors])
    offset = np.array([abs(error.offset_error) if error.detected else math.inf for error in errors])
    detected = [error for error in errors if error.detected]
    return BoundarySummary(
        events=len(errors),
        detected=len(detected),
        median_abs_onset_error=float(np.median(onset)) if len(errors) else math.nan,
        median_abs_offset_error=float(np.median(offset)) if len(errors) else math.nan,
        median_onset_error=float(np.median([e.onset_error for e in detected])) if detected else math.nan,
        median_offset_error=float(np.median([e.offset_error for e in detected])) if detected else math.nan,
        onset_within=float(np.mean(onset <= tolerance)) if len(errors) else math.nan,
        offset_within=float(np.mean(offset <= tolerance)) if len(errors) else math.nan,
        tolerance=tolerance,
    )


def summarize_boundaries(errors: Sequence[BoundaryError], tolerance: float = 0.2) -> BoundarySummary:
    """Medians and shares within ``tolerance`` seconds, overall and per class.

    ``np.median`` of an even count averages the two middle values; with an infinite one
    among them the median is infinite.
    """
    overall = _summary(errors, tolerance)
    per_class = {
        label: _summary([error for error in errors if error.label == label], tolerance)
        for label in sorted({error.label for error in errors})
    }
    return replace(overall, per_class=per_class)


# --------------------------------------------------------------------------- sed_scores_eval


def audio_id(filename: str) -> str:
    """sed_scores_eval's clip key: the filename without its extension."""
    return filename.rsplit(".", 1)[0] if "." in filename.rsplit("/", 1)[-1] else filename


def score_dataframes(
    frame_scores: Mapping[str, np.ndarray],
    classes: Sequence[str],
    frame_rate: float,
    *,
    durations: Mapping[str, float] | None = None,
    files: Sequence[str] | None = None,
) -> dict:
    """sed_scores_eval score DataFrames keyed by audio id.

    Frame ``j`` becomes the row ``[j / rate, (j + 1) / rate)``; with ``durations`` the frames
    starting at or after the clip end are dropped and the last offset is cut to the end.
    ``files`` selects clips (default: all).
    """
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    dataframes = {}
    for filename in files if files is not None else sorted(frame_scores):
        scores = np.asarray(frame_scores[filename], dtype=np.float64)
        timestamps = frame_times(scores.shape[1], frame_rate)
        if durations is not None:
            keep = max(1, int(np.sum(timestamps[:-1] < durations[filename] - 1e-9)))
            scores, timestamps = scores[:, :keep], timestamps[: keep + 1].copy()
            timestamps[-1] = min(timestamps[-1], durations[filename])
        dataframes[audio_id(filename)] = create_score_dataframe(scores.T, timestamps, list(classes))
    return dataframes


def _ground_truth(
    strong: Mapping[str, Sequence[Event]], files: Sequence[str]
) -> dict[str, list[tuple[float, float, str]]]:
    return {audio_id(name): [(event.onset, event.offset, event.label) for event in strong[name]] for name in files}


def _classes_with_events(strong: Mapping[str, Sequence[Event]], files: Sequence[str], classes: Sequence[str]):
    present = {event.label for name in files for event in strong[name]}
    return [name for name in classes if name in present], [name for name in classes if name not in present]


def _restrict(dataframes: dict, classes: Sequence[str]) -> dict:
    return {key: frame[["onset", "offset", *classes]] for key, frame in dataframes.items()}


@dataclass(frozen=True)
class CollarF1:
    """Collar-based F1 at one threshold (sed_scores_eval).

    Attributes:
        f1: macro average over the evaluated classes (higher is better).
        micro_f1: F1 over all events pooled.
        precision, recall: macro averages.
        per_class: F1 per evaluated class.
        threshold: the decision threshold (active: score above it).
        classes_without_events: classes left out (no reference event in these clips).
    """

    f1: float
    micro_f1: float
    precision: float
    recall: float
    per_class: dict[str, float]
    threshold: float
    classes_without_events: tuple[str, ...]

    def as_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def collar_f1(
    frame_scores: Mapping[str, np.ndarray],
    strong: Mapping[str, Sequence[Event]],
    classes: Sequence[str],
    frame_rate: float,
    *,
    files: Sequence[str] | None = None,
    durations: Mapping[str, float] | None = None,
    threshold: float = 0.5,
    onset_collar: float = ONSET_COLLAR_SECONDS,
    offset_collar: float = OFFSET_COLLAR_SECONDS,
    offset_collar_rate: float = OFFSET_COLLAR_RATE,
) -> CollarF1:
    """Collar-based F1 by ``sed_scores_eval.collar_based.fscore``.

    Args:
        frame_scores: ``[classes, frames]`` per filename.
        strong: events per filename (files without events map to ``[]``).
        classes: class of each score row.
        frame_rate: frames per second.
        files: clips to evaluate; default :func:`positive_files` of ``strong`` (the
            boundary view). Pass every file for a detection view.
        durations: clip lengths in seconds (crop frames past the end).
        threshold: decision threshold.
        onset_collar, offset_collar, offset_collar_rate: DCASE task 4 collars (defaults).
    """
    from sed_scores_eval import collar_based

    files = list(files) if files is not None else positive_files(strong)
    evaluated, left_out = _classes_with_events(strong, files, classes)
    if not evaluated:
        raise ValueError("collar F1 needs at least one reference event in the evaluated clips")
    scores = _restrict(score_dataframes(frame_scores, classes, frame_rate, durations=durations, files=files), evaluated)
    f, p, r, _ = collar_based.fscore(
        scores,
        _ground_truth(strong, files),
        threshold,
        onset_collar=onset_collar,
        offset_collar=offset_collar,
        offset_collar_rate=offset_collar_rate,
    )
    return CollarF1(
        f1=float(f["macro_average"]),
        micro_f1=float(f["micro_average"]),
        precision=float(p["macro_average"]),
        recall=float(r["macro_average"]),
        per_class={name: float(f[name]) for name in evaluated},
        threshold=threshold,
        classes_without_events=tuple(left_out),
    )


def collar_f1_at_thresholds(
    frame_scores: Mapping[str, np.ndarray],
    strong: Mapping[str, Sequence[Event]],
    classes: Sequence[str],
    frame_rate: float,
    thresholds: Sequence[float],
    *,
    durations: Mapping[str, float] | None = None,
    onset_collar: float = ONSET_COLLAR_SECONDS,
    offset_collar: float = OFFSET_COLLAR_SECONDS,
    offset_collar_rate: float = OFFSET_COLLAR_RATE,
) -> dict[float, float]:
    """Macro collar F1 (positive clips, as :func:`collar_f1`) at each of ``thresholds``: the score
    dataframes and sed_scores_eval's intermediate statistics are built once, then read at every
    threshold (the same values as one :func:`collar_f1` call per threshold, at a fraction of the cost)."""
    collars = collar_keywords(onset_collar, offset_collar, offset_collar_rate)
    per_threshold = _collar_fscores(frame_scores, strong, classes, frame_rate, thresholds, durations, collars)
    return {threshold: float(scores["macro_average"]) for threshold, scores in per_threshold.items()}


def collar_f1_per_class_at_thresholds(
    frame_scores: Mapping[str, np.ndarray],
    strong: Mapping[str, Sequence[Event]],
    classes: Sequence[str],
    frame_rate: float,
    thresholds: Sequence[float],
    *,
    durations: Mapping[str, float] | None = None,
    onset_collar: float = ONSET_COLLAR_SECONDS,
    offset_collar: float = OFFSET_COLLAR_SECONDS,
    offset_collar_rate: float = OFFSET_COLLAR_RATE,
) -> dict[float, tuple[float, dict[str, float]]]:
    """Macro and per-class collar F1 (positive clips) at each of ``thresholds``:
    ``{threshold: (macro F1, {class: F1})}``, the macro value exactly :func:`collar_f1_at_thresholds`'s
    and the per-class values the terms it averages; classes without a reference event in these
    clips are left out (nothing to detect, no F1)."""
    collars = collar_keywords(onset_collar, offset_collar, offset_collar_rate)
    per_threshold = _collar_fscores(frame_scores, strong, classes, frame_rate, thresholds, durations, collars)
    return {
        threshold: (
            float(scores["macro_average"]),
            {name: float(value) for name, value in scores.items() if name != "macro_average"},
        )
        for threshold, scores in per_threshold.items()
    }


def _collar_fscores(
    frame_scores: Mapping[str, np.ndarray],
    strong: Mapping[str, Sequence[Event]],
    classes: Sequence[str],
    frame_rate: float,
    thresholds: Sequence[float],
    durations: Mapping[str, float] | None,
    collars: Mapping[str, float],
) -> dict[float, dict[str, float]]:
    """sed_scores_eval's collar F-scores (per evaluated class and ``macro_average``) at each threshold."""
    from sed_scores_eval import collar_based
    from sed_scores_eval.collar_based.intermediate_statistics import intermediate_statistics_deltas

    files = positive_files(strong)
    evaluated, _ = _classes_with_events(strong, files, classes)
    if not evaluated:
        raise ValueError("collar F1 needs at least one reference event in the evaluated clips")
    scores = _restrict(score_dataframes(frame_scores, classes, frame_rate, durations=durations, files=files), evaluated)
    truth = _ground_truth(strong, files)
    deltas = intermediate_statistics_deltas(scores=scores, ground_truth=truth, **collars)
    return {
        threshold: dict(collar_based.fscore(None, truth, threshold, deltas=deltas, **collars)[0])
        for threshold in thresholds
    }


@dataclass(frozen=True)
class PSDSResult:
    """A PSDS value (sed_scores_eval), in [0, 1], higher is better.

    Attributes:
        value: the PSDS.
        per_class: single-class PSDS per evaluated class.
        settings: the scenario.
        classes_without_events: classes left out (no reference event in these clips).
    """

    value: float
    per_class: dict[str, float]
    settings: PSDSSettings
    classes_without_events: tuple[str, ...]

    def as_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def psds(
    frame_scores: Mapping[str, np.ndarray],
    strong: Mapping[str, Sequence[Event]],
    classes: Sequence[str],
    frame_rate: float,
    durations: Mapping[str, float],
    *,
    settings: PSDSSettings = PSDS1,
    files: Sequence[str] | None = None,
) -> PSDSResult:
    """PSDS by ``sed_scores_eval.intersection_based.psds`` (eFPR per hour).

    Args:
        frame_scores, strong, classes, frame_rate: as for :func:`collar_f1`.
        durations: clip lengths in seconds (the false-positive rate's denominator).
        settings: :data:`PSDS1` (default) or :data:`PSDS2`.
        files: clips to evaluate; default the positive clips.
    """
    from sed_scores_eval import intersection_based

    files = list(files) if files is not None else positive_files(strong)
    evaluated, left_out = _classes_with_events(strong, files, classes)
    if len(evaluated) < 2:  # sed_scores_eval's cross-trigger statistics fail (TypeError) with one class
        raise ValueError(f"PSDS needs reference events of at least two classes in the evaluated clips; got {evaluated}")
    scores = _restrict(score_dataframes(frame_scores, classes, frame_rate, durations=durations, files=files), evaluated)
    value, per_class, _, _ = intersection_based.psds(
        scores,
        _ground_truth(strong, files),
        {audio_id(name): float(durations[name]) for name in files},
        dtc_threshold=settings.dtc_threshold,
        gtc_threshold=settings.gtc_threshold,
        cttc_threshold=settings.cttc_threshold,
        alpha_ct=settings.alpha_ct,
        alpha_st=settings.alpha_st,
        max_efpr=settings.max_efpr,
        unit_of_time="hour",
    )
    return PSDSResult(
        value=float(value),
        per_class={name: float(per_class[name]) for name in evaluated},
        settings=settings,
        classes_without_events=tuple(left_out),
    )
