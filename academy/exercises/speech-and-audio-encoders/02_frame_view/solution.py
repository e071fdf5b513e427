"""Exercise 2 — the frame view: reference solution (read TASK.md first).

Frame scores: ``[frames]`` probabilities of one class in one clip at ``frame_rate`` frames/s;
frame ``j`` covers ``[j / frame_rate, (j + 1) / frame_rate)`` seconds (the convention of
:mod:`audioenc.timing.features`).
"""

from __future__ import annotations

import math

import numpy as np


def frame_peak_time(frame_scores: np.ndarray, frame_rate: float) -> float:
    """Time of the highest frame score: the middle of the first largest frame.

    Args:
        frame_scores: ``[frames]`` scores.
        frame_rate: frames per second.

    Returns:
        ``(argmax + 0.5) / frame_rate`` in seconds (the first largest frame on ties).
    """
    return (int(np.argmax(frame_scores)) + 0.5) / frame_rate


def event_span_around_peak(
    frame_scores: np.ndarray, frame_rate: float, threshold: float = 0.5
) -> tuple[float, float] | None:
    """Onset and offset of the run of active frames that contains the peak.

    A frame is active when its score is strictly above ``threshold``. Starting at the peak
    frame (the first largest), extend left and right while the neighbouring frame is active.

    Args:
        frame_scores: ``[frames]`` scores.
        frame_rate: frames per second.
        threshold: activity threshold (a score equal to it is not active).

    Returns:
        ``(onset, offset)`` in seconds, or None when the peak is not above ``threshold``.
    """
    scores = np.asarray(frame_scores, dtype=np.float64)
    peak = int(np.argmax(scores))
    if scores[peak] <= threshold:
        return None
    active = scores > threshold
    # Walk out from the peak: an isolated active frame elsewhere in the clip is another
    # (or a spurious) event, not this one's boundary.
    first = peak
    while first > 0 and active[first - 1]:
        first -= 1
    last = peak
    while last + 1 < scores.size and active[last + 1]:
        last += 1
    return first / frame_rate, (last + 1) / frame_rate


def onset_error(frame_scores: np.ndarray, frame_rate: float, true_onset: float, threshold: float = 0.5) -> float:
    """Predicted minus true onset, in seconds (negative: the prediction is early).

    Returns:
        ``predicted_onset - true_onset``, or NaN when there is no span.
    """
    span = event_span_around_peak(frame_scores, frame_rate, threshold)
    return math.nan if span is None else span[0] - true_onset
