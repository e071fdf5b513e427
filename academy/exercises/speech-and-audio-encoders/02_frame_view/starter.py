"""Exercise 2 — the frame view: complete the three functions below (read TASK.md).

Frame scores: ``[frames]`` probabilities of one class in one clip at ``frame_rate`` frames/s;
frame ``j`` covers ``[j / frame_rate, (j + 1) / frame_rate)`` seconds.

Check your work from the repository root:

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/02_frame_view/check.py
"""

from __future__ import annotations

import numpy as np


def frame_peak_time(frame_scores: np.ndarray, frame_rate: float) -> float:
    """Time of the highest frame score: the middle of the first largest frame.

    Args:
        frame_scores: ``[frames]`` scores.
        frame_rate: frames per second.

    Returns:
        ``(argmax + 0.5) / frame_rate`` in seconds (the first largest frame on ties).
    """
    raise NotImplementedError(
        "Exercise 2: np.argmax gives the first largest frame j; its middle is (j + 0.5) / frame_rate"
    )


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
        ``(onset, offset)`` in seconds — the start of the run's first frame and the end of its
        last frame — or None when the peak itself is not above ``threshold``.
    """
    raise NotImplementedError(
        "Exercise 2: find the peak frame; return None if its score <= threshold; otherwise move left while "
        "the previous frame is > threshold and right while the next one is; onset = first / frame_rate, "
        "offset = (last + 1) / frame_rate"
    )


def onset_error(frame_scores: np.ndarray, frame_rate: float, true_onset: float, threshold: float = 0.5) -> float:
    """Predicted minus true onset, in seconds (negative: the prediction is early).

    Args:
        frame_scores: ``[frames]`` scores.
        frame_rate: frames per second.
        true_onset: the labelled onset, seconds.
        threshold: activity threshold, as for :func:`event_span_around_peak`.

    Returns:
        ``predicted_onset - true_onset``, or NaN (``float('nan')``) when there is no span.
    """
    raise NotImplementedError(
        "Exercise 2: use event_span_around_peak; subtract true_onset from its onset, NaN when it is None"
    )
