"""Exercise 1 — what pooling hides: complete the three functions below (read TASK.md).

Frame scores are the probabilities ``y_t`` in [0, 1] of one class in one clip, one per
frame: a 1-D array of shape ``[frames]``. Every pooling rule here is a weighted average over
time, ``clip = sum_t w_t * y_t`` with ``w_t >= 0`` and ``sum_t w_t = 1``:

- ``mean``:           ``w_t = 1 / F``                       -> ``mean_t y_t``
- ``max``:            one-hot at the first largest frame    -> ``max_t y_t``
- ``linear_softmax``: ``w_t = y_t / sum_s y_s``             -> ``sum_t y_t^2 / sum_t y_t``

Check your work from the repository root:

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/01_what_pooling_hides/check.py
"""

from __future__ import annotations

import numpy as np

RULES: tuple[str, ...] = ("mean", "max", "linear_softmax")
"""The pooling rules of this exercise, in the order ties are broken."""


def clip_scores(frame_scores: np.ndarray) -> dict[str, float]:
    """Clip score of one clip by each pooling rule.

    Args:
        frame_scores: ``[frames]`` probabilities in [0, 1].

    Returns:
        ``{"mean": ..., "max": ..., "linear_softmax": ...}`` as Python floats, computed in
        float64. The linear softmax of an all-zero clip is 0.0 (not 0/0 = NaN).
    """
    raise NotImplementedError(
        "Exercise 1: convert to float64 (np.asarray(..., dtype=np.float64)) and return mean, max and "
        "sum(y**2) / sum(y) in a dict; when sum(y) == 0 the linear softmax is 0.0"
    )


def pooling_weights(frame_scores: np.ndarray, rule: str) -> np.ndarray:
    """The weights ``w_t`` of one rule, so that ``clip = sum_t w_t * y_t``.

    Args:
        frame_scores: ``[frames]`` probabilities in [0, 1], not all zero.
        rule: one of :data:`RULES`.

    Returns:
        ``[frames]`` float64 weights, non-negative, summing to one.

    Raises:
        ValueError: for a rule not in :data:`RULES` (name the rule and the valid ones).
    """
    raise NotImplementedError(
        "Exercise 1: mean -> np.full(F, 1/F); max -> zeros with a 1 at np.argmax (the first largest frame); "
        "linear_softmax -> y / y.sum(); anything else -> raise ValueError naming the valid rules"
    )


def most_visible_rule(positive: np.ndarray, negative: np.ndarray) -> str:
    """The rule that keeps the event most visible in the clip summary.

    Visibility of a rule = ``score(positive) - score(negative)``: how far the clip with the
    event rises above the clip without it once time has been pooled away.

    Args:
        positive: ``[frames]`` frame scores of a clip with the event.
        negative: ``[frames]`` frame scores of a clip without it.

    Returns:
        The name (from :data:`RULES`) with the largest visibility; ties go to the first in
        :data:`RULES` order.
    """
    raise NotImplementedError(
        "Exercise 1: use clip_scores on both clips, compute positive - negative per rule and return the "
        "rule with the largest difference (max(RULES, key=...) keeps the first on ties)"
    )
