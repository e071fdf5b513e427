"""Exercise 4 — frozen probe against scratch: complete the two functions (read TASK.md).

Inputs are per-clip values of two systems on the **same** clips in the same order — per-clip
correctness (1 right, 0 wrong) or any per-clip metric where higher is better: shape ``[clips]``.

Check your work from the repository root:

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/04_frozen_probe_vs_scratch/check.py
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

    Args:
        frozen: ``[clips]`` per-clip values of the frozen encoder + probe.
        scratch: ``[clips]`` per-clip values of the scratch model, same clips, same order.
        n_resamples: bootstrap resamples.
        confidence: coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
        seed: seed of ``np.random.default_rng``; the same seed gives the same interval.

    Returns:
        ``(difference, low, high)``: the observed mean difference and the interval bounds.

    Raises:
        ValueError: when the two arrays differ in length or are empty (not the same split).
    """
    raise NotImplementedError(
        "Exercise 4: check the lengths; d = frozen - scratch per clip; rng = np.random.default_rng(seed); "
        "idx = rng.integers(0, n, size=(n_resamples, n)); means = d[idx].mean(axis=1); "
        "np.percentile(means, [50 * (1 - confidence), 50 * (1 + confidence)])"
    )


def decide(ci: tuple[float, float, float]) -> str:
    """Decision from ``(difference, low, high)``.

    Returns:
        ``"frozen_better"`` if ``low > 0``, ``"scratch_better"`` if ``high < 0``, else
        ``"no_clear_difference"`` (an interval touching zero does not exclude it).
    """
    raise NotImplementedError("Exercise 4: compare the interval bounds (ci[1], ci[2]) with zero")
