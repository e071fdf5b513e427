"""Exercise 3 — boundary checks on positive clips only: complete the three functions (read TASK.md).

Inputs, for one class:

- ``frame_scores``: ``{clip name: [frames] scores}`` at ``frame_rate`` frames/s (frame ``j``
  covers ``[j, j + 1) / frame_rate`` seconds);
- ``truth``: ``{clip name: (onset, offset) in seconds}`` for a positive clip, ``None`` for a
  negative one (at most one event per clip in this exercise).

Check your work from the repository root:

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/03_boundaries_on_positives/check.py
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def predicted_span(frame_scores: np.ndarray, frame_rate: float, threshold: float = 0.5) -> tuple[float, float] | None:
    """Given (not part of the exercise): the predicted event of a one-event clip.

    Active frames score strictly above ``threshold``; the prediction runs from the start of the
    first active frame to the end of the last one (the rule of
    :func:`audioenc.timing.boundaries.boundary_errors` for a clip with one event).

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

    Args:
        frame_scores: ``{clip: [frames] scores}``.
        truth: ``{clip: (onset, offset)}`` for positives, ``{clip: None}`` for negatives.
        frame_rate: frames per second.
        threshold: activity threshold of :func:`predicted_span`.

    Returns:
        ``(onset_errors, offset_errors)``: two float64 arrays with one entry per positive clip,
        in sorted clip-name order, ``|predicted - true|`` in seconds, ``np.inf`` for a missed
        event. Negative clips do not appear.
    """
    raise NotImplementedError(
        "Exercise 3: loop over sorted(truth), skip clips whose truth is None, call predicted_span on the "
        "clip's scores and append abs(predicted - true) for onset and offset (np.inf when it returns None)"
    )


def share_within(abs_errors: np.ndarray, tolerance: float = 0.2) -> float:
    """Share of errors ``<= tolerance`` seconds (``np.inf`` never is).

    Raises:
        ValueError: when ``abs_errors`` is empty — no positive clip means no boundary evidence,
            which must be said, not reported as 0 % or 100 %.
    """
    raise NotImplementedError(
        "Exercise 3: raise ValueError on an empty array; otherwise np.mean(abs_errors <= tolerance)"
    )


def share_within_all_clips(
    frame_scores: Mapping[str, np.ndarray],
    truth: Mapping[str, tuple[float, float] | None],
    frame_rate: float,
    threshold: float = 0.5,
    tolerance: float = 0.2,
) -> float:
    """The misleading number, for contrast: onset "share within" over *every* clip.

    Positive clips count as within when ``|onset error| <= tolerance`` (missed: outside).
    Negative clips count as within when nothing is detected and as outside when
    :func:`predicted_span` finds something (a false alarm).

    Returns:
        The share over all clips of ``truth``.
    """
    raise NotImplementedError(
        "Exercise 3: one True/False per clip — positives by their onset error, negatives by "
        "predicted_span(...) is None — then the mean"
    )
