"""Exercise 4 — frozen probe against scratch: reference solution (read TASK.md first).

Inputs are per-clip values of two systems on the same clips in the same order, ``[clips]``,
higher is better.
"""

from __future__ import annotations

import numpy as np

DECISIONS: tuple[str, ...] = ("frozen_better", "scratch_better", "no_clear_difference")
"""The possible outcomes of :func:`decide`."""


def paired_bootstrap_ci(
    frozen: np.ndarray,
    scratch: np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean per-clip difference ``frozen - scratch`` and its paired percentile bootstrap interval.

    Math: ``d_i = frozen_i - scratch_i``; for ``b = 1..B`` draw ``n`` clip indices with
    replacement, ``m_b = mean(d[indices_b])``; the interval is the ``(1 - c) / 2`` and
    ``(1 + c) / 2`` percentiles of ``m``. Resampling the per-clip *differences* keeps each
    clip's two outcomes together, so difficulty shared by both systems cancels.

    Returns:
        ``(difference, low, high)``.

    Raises:
        ValueError: when the two arrays differ in length or are empty.
    """
    frozen = np.asarray(frozen, dtype=np.float64)
    scratch = np.asarray(scratch, dtype=np.float64)
    if frozen.shape != scratch.shape or frozen.ndim != 1 or frozen.size == 0:
        raise ValueError(
            f"frozen {frozen.shape} and scratch {scratch.shape} must be non-empty [clips] arrays of the same clips; "
            "score both systems on the same split"
        )
    differences = frozen - scratch
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, differences.size, size=(n_resamples, differences.size))
    means = differences[indices].mean(axis=1)
    low, high = np.percentile(means, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(differences.mean()), float(low), float(high)


def decide(ci: tuple[float, float, float]) -> str:
    """Decision from ``(difference, low, high)``: ``frozen_better`` if ``low > 0``,
    ``scratch_better`` if ``high < 0``, else ``no_clear_difference``."""
    _, low, high = ci
    if low > 0:
        return "frozen_better"
    if high < 0:
        return "scratch_better"
    return "no_clear_difference"
