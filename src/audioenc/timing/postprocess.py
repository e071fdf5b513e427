"""Post-processing of frame scores as the field does it, applied equally to every compared system.

1. **Median filter** per class over time (``scipy.ndimage.median_filter``, a window of ``w``
   frames, odd, edges repeated): removes one-frame flickers that would split an event in two
   or add a false one. DCASE's baselines filter their frame scores the same way (7 frames).
2. **Decision threshold** ``t``: a frame is active when its filtered score is strictly above
   ``t`` (sed_scores_eval's convention); runs of active frames are the detected events.

Both are chosen **per system on the validation split** (:func:`choose_postprocessing`): the
window (from ``median_seconds``) and threshold (from ``thresholds``) with the highest collar
F1 on the validation split's positive clips; ties go to the smaller window, then the threshold
nearest 0.5, then the higher threshold. Without strong validation labels, or when every candidate scores 0 (nothing to
choose from), the documented fixed values are used (``fixed_median_seconds``,
``fixed_threshold``) and the choice says why. PSDS stays threshold-free, on the filtered scores.

**Per class** (``per_class=True``, DCASE 2024 style; off by default): the window and threshold
are chosen for each class on its own validation collar F1 (the same candidates and tie rules),
and each class's frame scores are filtered with its own window. A class with no validation
event, or with F1 0 at every candidate, keeps the per-system choice (said in its basis). The
per-class thresholds are applied as a monotone map of each class's filtered scores that puts
its threshold ``t_k`` on the shared threshold 0.5 (:func:`threshold_map`)::

    r_k(s) = 0.5 * s / t_k                          for s <= t_k
    r_k(s) = 0.5 + 0.5 * (s - t_k) / (1 - t_k)      for s >  t_k

so ``r_k(s) > 0.5`` exactly when ``s > t_k`` compared in float64 as sed_scores_eval compares (the
mapped scores stay float64 so that holds to the last bit), and everything downstream keeps one
threshold. Being strictly increasing per class, the map
leaves each class's score ranking, hence PSDS and per-class AP, unchanged; clip scores are not
touched. The mapped scores are what the step's frame-score files and plots then show.

**Onset-only F1** (:func:`onset_only_f1`), the HEAR benchmark's event metric: detected events
against the true ones with sed_eval's event-based F-measure, an onset tolerance ``c`` (200 and
50 ms in HEAR), offsets ignored, micro-averaged over all clips of the split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from audioenc.audio.formats import Event, EventSplit
from audioenc.core.frames import frame_starts
from audioenc.timing.boundaries import (
    collar_f1_at_thresholds,
    collar_f1_per_class_at_thresholds,
    collar_keywords,
    positive_files,
)
from audioenc.timing.fitting import Predictions
from audioenc.validation import bounded


@dataclass(frozen=True)
class PostprocessSettings:
    """Candidates and fixed values of the post-processing (module docstring).

    Attributes:
        median_seconds: candidate median-filter windows, seconds (0: no filter); one value
            fixes the window.
        thresholds: candidate decision thresholds in (0, 1); one value fixes the threshold.
        fixed_median_seconds: the window when nothing can be chosen on validation.
        fixed_threshold: the threshold when nothing can be chosen on validation.
        per_class: choose the window and threshold per class (DCASE 2024) instead of one pair
            per system (module docstring).
    """

    median_seconds: tuple[float, ...] = bounded((0.0, 0.12, 0.24, 0.48), minimum=0)
    thresholds: tuple[float, ...] = bounded((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7), above=0, below=1)
    fixed_median_seconds: float = bounded(0.0, minimum=0)
    fixed_threshold: float = bounded(0.5, above=0, below=1)
    per_class: bool = False


def window_frames(seconds: float, frame_rate: float) -> int:
    """An odd number of frames nearest ``seconds`` at ``frame_rate`` (at least 1: no filter)."""
    frames = max(1, int(round(seconds * frame_rate)))
    return frames if frames % 2 else frames + 1


def median_filter(frame_scores: Mapping[str, np.ndarray], frames: int) -> dict[str, np.ndarray]:
    """Each class's scores ``[classes, F]`` filtered over time with a ``frames``-long median (1: copies)."""
    from scipy.ndimage import median_filter as scipy_median

    if frames <= 1:
        return {name: np.array(scores) for name, scores in frame_scores.items()}
    return {
        name: scipy_median(np.asarray(scores), size=(1, frames), mode="nearest")
        for name, scores in frame_scores.items()
    }


def threshold_map(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Scores in [0, 1] mapped so that ``threshold`` lands on 0.5, strictly increasing (module docstring), float64."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(scores <= threshold, 0.5 * scores / threshold, 0.5 + 0.5 * (scores - threshold) / (1.0 - threshold))


@dataclass(frozen=True)
class ClassPostProcessing:
    """The median window and threshold one class uses under per-class post-processing.

    Attributes:
        window_seconds: the median window asked for (s).
        window_frames: the window at the system's frame rate (odd).
        threshold: the class's decision threshold.
        own: chosen on this class's validation F1 (False: the per-system choice, see ``basis``).
        validation_f1: the class's validation collar F1 at this choice (None: no validation event).
    """

    window_seconds: float
    window_frames: int
    threshold: float
    own: bool
    validation_f1: float | None = None

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {
            "median_seconds": self.window_seconds,
            "median_frames": self.window_frames,
            "threshold": self.threshold,
            "own": self.own,
            "validation_collar_f1": self.validation_f1,
        }


@dataclass(frozen=True)
class PostProcessing:
    """The post-processing one system uses.

    Attributes:
        window_seconds: the median window asked for (s) (per class: the per-system choice).
        window_frames: the window at the system's frame rate (odd).
        threshold: the decision threshold (per class: the per-system choice; the classes' own
            thresholds are mapped onto 0.5, which the applied predictions carry).
        basis: how it was chosen, in words.
        validation_f1: validation collar F1 of the choice (None: not chosen on validation).
        per_class: class -> its own window and threshold (None: one pair for every class).
    """

    window_seconds: float
    window_frames: int
    threshold: float
    basis: str
    validation_f1: float | None = None
    per_class: dict[str, ClassPostProcessing] | None = None

    def apply(self, predictions: Predictions) -> Predictions:
        """Filtered frame scores with this threshold attached (clip scores unchanged); per class,
        each class's row filtered with its window and mapped by :func:`threshold_map`, threshold 0.5."""
        if self.per_class is None:
            return replace(
                predictions,
                frame_scores=median_filter(predictions.frame_scores, self.window_frames),
                threshold=self.threshold,
            )
        shared = ClassPostProcessing(self.window_seconds, self.window_frames, self.threshold, False)
        choices = [self.per_class.get(name, shared) for name in predictions.classes]
        frame_scores = {}
        for name, scores in predictions.frame_scores.items():
            rows = [
                threshold_map(
                    median_filter({name: scores[row : row + 1]}, choice.window_frames)[name][0], choice.threshold
                )
                for row, choice in enumerate(choices)
            ]
            frame_scores[name] = np.stack(rows) if rows else np.zeros((0, scores.shape[1]))
        return replace(predictions, frame_scores=frame_scores, threshold=0.5)

    def to_json(self) -> dict:
        """Plain-JSON form (``per_class`` only when chosen per class)."""
        result = {
            "median_seconds": self.window_seconds,
            "median_frames": self.window_frames,
            "threshold": self.threshold,
            "basis": self.basis,
            "validation_collar_f1": self.validation_f1,
        }
        if self.per_class is not None:
            result["per_class"] = {name: choice.to_json() for name, choice in self.per_class.items()}
        return result


def choose_postprocessing(
    validation: Predictions,
    split: EventSplit,
    classes: Sequence[str],
    settings: PostprocessSettings = PostprocessSettings(),
    *,
    onset_collar: float = 0.2,
    offset_collar: float = 0.2,
    offset_collar_rate: float = 0.2,
) -> PostProcessing:
    """The window and threshold with the best validation collar F1, per system or, with
    ``settings.per_class``, per class (module docstring).

    Args:
        validation: the system's scores on the validation split (rows = ``classes``).
        split: the validation split (strong labels decide; without them the fixed values).
        classes: the task classes.
        settings: candidates and fixed values.
        onset_collar, offset_collar, offset_collar_rate: the collars of collar F1.
    """
    rate = validation.frame_rate
    fixed = PostProcessing(
        settings.fixed_median_seconds, window_frames(settings.fixed_median_seconds, rate), settings.fixed_threshold, ""
    )
    if split.strong is None:
        return replace(fixed, basis="fixed: the validation split has no strong labels to choose on")
    strong = {name: [event for event in events if event.label in classes] for name, events in split.strong.items()}
    if not positive_files(strong):
        return replace(fixed, basis="fixed: the validation split has no event of these classes to choose on")
    collars = collar_keywords(onset_collar, offset_collar, offset_collar_rate)
    candidates, per_class = [], {}
    for seconds in settings.median_seconds:
        frames = window_frames(seconds, rate)
        filtered = median_filter(validation.frame_scores, frames)
        if settings.per_class:
            both = collar_f1_per_class_at_thresholds(
                filtered, strong, classes, rate, settings.thresholds, durations=split.durations, **collars
            )
            scores = {threshold: macro for threshold, (macro, _) in both.items()}
            for threshold, (_, by_class) in both.items():
                for name, score in by_class.items():
                    key = (score, -frames, -abs(threshold - 0.5), threshold, seconds, frames)
                    per_class.setdefault(name, []).append(key)
        else:
            scores = collar_f1_at_thresholds(
                filtered, strong, classes, rate, settings.thresholds, durations=split.durations, **collars
            )
        candidates += [
            (score, -frames, -abs(threshold - 0.5), threshold, seconds, frames) for threshold, score in scores.items()
        ]
    best = max(candidates)
    if best[0] <= 0:
        system = replace(
            fixed, basis="fixed: validation collar F1 is 0 for every candidate window and threshold", validation_f1=0.0
        )
    else:
        _, _, _, threshold, seconds, frames = best
        system = PostProcessing(
            seconds,
            frames,
            threshold,
            f"chosen on validation: the best collar F1 of {len(candidates)} (median window, threshold) pairs",
            float(best[0]),
        )
    if not settings.per_class:
        return system
    return _per_class(system, per_class, classes, len(candidates))


def _per_class(
    system: PostProcessing, candidates: Mapping[str, list[tuple]], classes: Sequence[str], pairs: int
) -> PostProcessing:
    """``system`` with each class's best (window, threshold) by its own validation F1; a class
    without a validation event or with F1 0 everywhere keeps the per-system pair."""
    chosen, own = {}, 0
    for name in classes:
        best = max(candidates[name]) if name in candidates else None
        if best is None or best[0] <= 0:
            f1 = None if best is None else 0.0
            chosen[name] = ClassPostProcessing(system.window_seconds, system.window_frames, system.threshold, False, f1)
            continue
        score, _, _, threshold, seconds, frames = best
        chosen[name] = ClassPostProcessing(seconds, frames, threshold, True, float(score))
        own += 1
    basis = (
        f"chosen per class on validation: each class's best collar F1 of {pairs} (median window, threshold) pairs "
        f"({own} of {len(classes)} classes; the others, without a validation event or with F1 0 everywhere, "
        f"keep the per-system pair: {system.basis})"
    )
    return replace(system, basis=basis, per_class=chosen)


def decode_events(
    frame_scores: Mapping[str, np.ndarray],
    classes: Sequence[str],
    frame_rate: float,
    threshold: float,
    durations: Mapping[str, float] | None = None,
) -> dict[str, list[Event]]:
    """Runs of frames strictly above ``threshold`` as events ``(onset, offset, label)`` per file
    (frame ``j`` spans ``[j, j + 1) / frame_rate``; offsets cropped to the clip's duration)."""
    events: dict[str, list[Event]] = {}
    for name, scores in frame_scores.items():
        found = []
        end = durations[name] if durations is not None else scores.shape[1] / frame_rate
        inside = frame_starts(scores.shape[1], frame_rate) < end  # frames starting past the clip's end hold no audio
        for row, label in enumerate(classes):
            active = np.r_[False, (np.asarray(scores[row]) > threshold) & inside, False]
            edges = np.flatnonzero(np.diff(active.astype(np.int8)))
            for start, stop in zip(edges[::2], edges[1::2]):
                found.append(Event(float(start / frame_rate), float(min(stop / frame_rate, end)), label))
        events[name] = sorted(found)
    return events


def onset_only_f1(
    detected: Mapping[str, Sequence[Event]],
    strong: Mapping[str, Sequence[Event]],
    classes: Sequence[str],
    collar: float,
) -> float:
    """HEAR's event-onset F-measure: sed_eval's event-based metrics with an onset collar of
    ``collar`` s, offsets not evaluated, micro-averaged over every clip of ``strong``."""
    import warnings

    with warnings.catch_warnings():  # dcase_util imports pkg_resources, which warns on every first import
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import dcase_util
        import sed_eval

    def container(events: Mapping[str, Sequence[Event]], name: str):
        return dcase_util.containers.MetaDataContainer(
            [
                {"filename": name, "onset": e.onset, "offset": e.offset, "event_label": e.label}
                for e in events.get(name, ())
                if e.label in classes
            ]
        )

    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(classes),
        t_collar=collar,
        percentage_of_length=0.5,
        evaluate_onset=True,
        evaluate_offset=False,
    )
    references = estimates = 0
    for name in strong:
        reference, estimate = container(strong, name), container(detected, name)
        references, estimates = references + len(reference), estimates + len(estimate)
        metrics.evaluate(reference_event_list=reference, estimated_event_list=estimate)
    if estimates == 0:  # sed_eval's precision is 0/0 here; nothing detected is F 0 when there was something to find
        return 0.0 if references else float("nan")
    return float(metrics.results_overall_metrics()["f_measure"]["f_measure"])


__all__ = [
    "ClassPostProcessing",
    "PostProcessing",
    "PostprocessSettings",
    "choose_postprocessing",
    "decode_events",
    "median_filter",
    "onset_only_f1",
    "threshold_map",
    "window_frames",
]
