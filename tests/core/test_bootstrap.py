"""Percentile bootstrap of audioenc.core.bootstrap.

References: the same resamples computed directly in float64 NumPy, the theoretical bootstrap
variance of a mean (population variance / n), and ``np.median`` of explicitly repeated values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from audioenc.core.bootstrap import bootstrap, counts_from_indices, percentile_interval, weighted_median


def test_bootstrap_interval_matches_numpy_on_the_same_resamples():
    values = np.array([0.1, 0.4, 0.5, 0.9, 0.3])

    def mean(indices):
        return counts_from_indices(indices, len(values)) @ values / indices.shape[1]

    interval, replicates = bootstrap(mean, len(values), resamples=4000, seed=7)
    # Reference: the documented resampling, computed directly.
    reference_indices = np.random.default_rng(7).integers(0, 5, size=(4000, 5))
    reference = values[reference_indices].mean(axis=1)
    np.testing.assert_allclose(replicates, reference, rtol=0, atol=1e-12)
    low, high = np.percentile(reference, [2.5, 97.5])
    assert interval.value == pytest.approx(values.mean())
    assert interval.low == pytest.approx(low, abs=1e-12) and interval.high == pytest.approx(high, abs=1e-12)
    assert interval.resamples == 4000 and interval.confidence == 0.95
    # Theory: the bootstrap variance of a mean is the population variance / n (0.0536 / 5).
    assert replicates.std() == pytest.approx(math.sqrt(values.var() / 5), rel=0.05)


def test_interval_with_infinite_replicates():
    # A median that may be infinite (missed events): the upper end is +inf, the lower end as numpy.
    interval = percentile_interval(np.array([1.0, 2.0, 3.0, np.inf, np.inf, np.nan]), 2.0, confidence=0.5)
    # Defined replicates 1, 2, 3, inf, inf: 25th percentile at position 1 -> 2.0; 75th at 3 -> inf.
    assert interval.low == 2.0 and interval.high == math.inf and interval.resamples == 5
    assert interval.as_dict()["high"] is None  # JSON has no infinity


def test_weighted_median_equals_median_of_repeated_values():
    rng = np.random.default_rng(1)
    values = np.r_[rng.random(9), np.inf, np.inf]
    weights = rng.integers(0, 4, size=(50, len(values)))
    result = weighted_median(values, weights.astype(float))
    for row in range(50):
        repeated = np.repeat(values, weights[row])
        if len(repeated) == 0:
            assert math.isnan(result[row])
        else:
            expected = np.median(repeated)
            assert result[row] == expected or (math.isinf(expected) and math.isinf(result[row]))
