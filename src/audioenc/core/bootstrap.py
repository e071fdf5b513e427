"""Percentile bootstrap over clips: intervals of any statistic of a resample, paired comparisons.

Clips are resampled with replacement (``B`` resamples, indices from
``numpy.random.default_rng(seed).integers(0, n, size=(B, n))``); a statistic is evaluated on every
resample and the interval is the ``(1 - c) / 2`` and ``(1 + c) / 2`` percentiles of the replicates
(percentile method). Statistics take resamples as indices ``[B, n]`` and return ``[B]`` values (NaN
where undefined), so a metric can be written once for the point value (the identity resample)
and for all replicates; :func:`counts_from_indices` turns indices into per-clip weights, for
metrics computed as weighted sums (AP, shares, :func:`weighted_median`). Comparing two models on
the *same* resamples (paired) makes the interval of a difference reflect only how the models
differ on the same clips.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapCI:
    """A statistic with its percentile bootstrap interval.

    Attributes:
        value: the statistic on the original clips.
        low, high: the interval ends.
        confidence: e.g. 0.95.
        resamples: resamples used (those where the statistic is defined).
    """

    value: float | None
    low: float | None
    high: float | None
    confidence: float
    resamples: int

    def as_dict(self) -> dict:
        """Plain-JSON form (non-finite numbers become None)."""
        return {
            key: (None if isinstance(item, float) and not math.isfinite(item) else item)
            for key, item in asdict(self).items()
        }


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap indices ``[resamples, n]``: ``default_rng(seed).integers(0, n, size=(resamples, n))``."""
    if n < 1:
        raise ValueError("cannot bootstrap zero clips")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def counts_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` items occurs in each resample: ``[B, n]`` from indices ``[B, n']``."""
    counts = np.zeros((indices.shape[0], n), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(indices.shape[0]), indices.shape[1]), indices.ravel()), 1.0)
    return counts


def percentile_interval(replicates: np.ndarray, value: float | None, confidence: float = 0.95) -> BootstrapCI:
    """:class:`BootstrapCI` from replicates ``[B]`` (NaN replicates, where undefined, are dropped)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    defined = np.sort(replicates[~np.isnan(replicates)])
    if not len(defined):
        return BootstrapCI(value, None, None, confidence, 0)
    low = _percentile_sorted(defined, 100 * (1 - confidence) / 2)
    high = _percentile_sorted(defined, 100 * (1 + confidence) / 2)
    return BootstrapCI(value, low, high, confidence, len(defined))


def _percentile_sorted(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) of sorted ``values`` that may hold +inf:
    an interval end between a finite value and +inf is +inf (numpy would give NaN there)."""
    position = q / 100 * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    fraction = position - low
    if fraction == 0 or values[low] == values[high]:
        return float(values[low])
    if math.isinf(values[high]):
        return math.inf
    return float(values[low] + (values[high] - values[low]) * fraction)


def bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[BootstrapCI, np.ndarray]:
    """Percentile bootstrap of ``statistic`` over ``n`` clips.

    Args:
        statistic: ``indices [B, n] -> values [B]`` (NaN where undefined); called once with the
            identity ``[[0, 1, ..., n-1]]`` for the point value and once with the resamples.
        n: number of clips.
        resamples: ``B``.
        confidence: interval coverage.
        seed: resampling seed (see :func:`resample_indices`).

    Returns:
        ``(interval, replicates [B])``.
    """
    value = float(statistic(np.arange(n)[None])[0])
    replicates = np.asarray(statistic(resample_indices(n, resamples, seed)), dtype=np.float64)
    return percentile_interval(replicates, value, confidence), replicates


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``np.median`` of ``values`` repeated ``weights`` times, per row of integer ``weights`` ``[B, N]``.

    The median of ``W`` items is the mean of the items at 0-based positions ``(W - 1) // 2``
    and ``W // 2`` of the sorted expansion; NaN where ``W = 0``. Infinite values sort last.
    """
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    cumulative = np.cumsum(weights[:, order], axis=1)
    total = cumulative[:, -1] if cumulative.shape[1] else np.zeros(weights.shape[0])
    result = np.full(weights.shape[0], np.nan)
    for b in range(weights.shape[0]):
        if total[b] <= 0:
            continue
        low = np.searchsorted(cumulative[b], (total[b] - 1) // 2, side="right")
        high = np.searchsorted(cumulative[b], total[b] // 2, side="right")
        result[b] = (sorted_values[low] + sorted_values[high]) / 2
    return result


__all__ = [
    "BootstrapCI",
    "bootstrap",
    "counts_from_indices",
    "percentile_interval",
    "resample_indices",
    "weighted_median",
]
