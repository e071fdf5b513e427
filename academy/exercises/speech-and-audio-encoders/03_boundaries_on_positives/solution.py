"""Exercise 3 — boundary checks on positive clips only: reference solution (read TASK.md first).

The library's general version (several events and classes per clip, medians, per-class
summaries, collar F1 and PSDS via sed_scores_eval) is :mod:`audioenc.timing.boundaries`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def predicted_span(frame_scores: np.ndarray, frame_rate: float, threshold: float = 0.5) -> tuple[float, float] | None:
    """Given (not part of the exercise): the predicted event of a one-event clip.

    Active frames score strictly above ``threshold``; the prediction runs from the start of the
    first active frame to the end of the last one.

    Returns:
        ``(onset, offset)`` in seconds, or None when no frame is active.
    """
    active = np.flatnonzero(np.asarray(frame_scores, dtype=np.float64) > threshold)
    if active.size == 0:
        return None
    return active[0] / frame_rate, (active[-1] + 1) / frame_rate


def positive_boundary_errors(
    frame_scores: Mapping[str, np.ndarray],
    truth: Mapping[str, tuple[float, float] | None],
    frame_rate: float,
    threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Absolute onset and offset errors on the positive clips.

    Returns:
        ``(onset_errors, offset_errors)``: float64 arrays, one entry per positive clip in sorted
        clip-name order, ``|predicted - true|`` seconds, ``np.inf`` for a missed event.
    """
    onset_errors, offset_errors = [], []
    for name in sorted(truth):
        event = truth[name]
        if event is None:  # a negative clip has no boundary to get wrong
            continue
        span = predicted_span(frame_scores[name], frame_rate, threshold)
        if span is None:  # missed: infinitely wrong, so it can never flatter a median or a share
            onset_errors.append(np.inf)
            offset_errors.append(np.inf)
        else:
            onset_errors.append(abs(span[0] - event[0]))
            offset_errors.append(abs(span[1] - event[1]))
    return np.array(onset_errors, dtype=np.float64), np.array(offset_errors, dtype=np.float64)


def share_within(abs_errors: np.ndarray, tolerance: float = 0.2) -> float:
    """Share of errors ``<= tolerance`` seconds (``np.inf`` never is).

    Raises:
        ValueError: when ``abs_errors`` is empty (no positive clip, no boundary evidence).
    """
    errors = np.asarray(abs_errors, dtype=np.float64)
    if errors.size == 0:
        raise ValueError("no positive clips: there is no boundary evidence to summarise; evaluate clips with events")
    return float(np.mean(errors <= tolerance))


def share_within_all_clips(
    frame_scores: Mapping[str, np.ndarray],
    truth: Mapping[str, tuple[float, float] | None],
    frame_rate: float,
    threshold: float = 0.5,
    tolerance: float = 0.2,
) -> float:
    """The misleading number, for contrast: onset "share within" over *every* clip.

    Positive clips count as within when ``|onset error| <= tolerance`` (missed: outside);
    negative clips count as within when nothing is detected, outside on a false alarm.
    """
    within = []
    for name in sorted(truth):
        span = predicted_span(frame_scores[name], frame_rate, threshold)
        event = truth[name]
        if event is None:
            within.append(span is None)  # "no boundary, none predicted": a detection fact, not a boundary one
        else:
            within.append(span is not None and abs(span[0] - event[0]) <= tolerance)
    return float(np.mean(within))
