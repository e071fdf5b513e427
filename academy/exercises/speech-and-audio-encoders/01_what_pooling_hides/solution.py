"""Exercise 1 — what pooling hides: reference solution (read TASK.md first).

The library's versions of these rules are :class:`audioenc.timing.pooling.MeanPooling`,
``MaxPooling`` and ``LinearSoftmaxPooling`` (batched torch modules over ``[batch, classes,
frames]``); here they are written out in NumPy for one class of one clip, ``[frames]``.
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
    scores = np.asarray(frame_scores, dtype=np.float64)
    total = scores.sum()
    return {
        "mean": float(scores.mean()),
        "max": float(scores.max()),
        # Σy²/Σy: each frame weighted by its own score, so quiet frames hardly count.
        "linear_softmax": float((scores * scores).sum() / total) if total > 0 else 0.0,
    }


def pooling_weights(frame_scores: np.ndarray, rule: str) -> np.ndarray:
    """The weights ``w_t`` of one rule, so that ``clip = sum_t w_t * y_t``.

    Args:
        frame_scores: ``[frames]`` probabilities in [0, 1], not all zero.
        rule: one of :data:`RULES`.

    Returns:
        ``[frames]`` float64 weights, non-negative, summing to one.

    Raises:
        ValueError: for a rule not in :data:`RULES`.
    """
    scores = np.asarray(frame_scores, dtype=np.float64)
    if rule == "mean":
        return np.full(scores.shape, 1.0 / scores.size)
    if rule == "max":
        weights = np.zeros(scores.shape)
        weights[int(np.argmax(scores))] = 1.0
        return weights
    if rule == "linear_softmax":
        return scores / scores.sum()
    raise ValueError(f"unknown pooling rule {rule!r}; choose one of {', '.join(RULES)}")


def most_visible_rule(positive: np.ndarray, negative: np.ndarray) -> str:
    """The rule that keeps the event most visible in the clip summary.

    Visibility of a rule = ``score(positive) - score(negative)``.

    Args:
        positive: ``[frames]`` frame scores of a clip with the event.
        negative: ``[frames]`` frame scores of a clip without it.

    Returns:
        The name (from :data:`RULES`) with the largest visibility; ties go to the first in
        :data:`RULES` order.
    """
    with_event, without_event = clip_scores(positive), clip_scores(negative)
    return max(RULES, key=lambda rule: with_event[rule] - without_event[rule])
