"""Check for exercise 4 — frozen probe against scratch, on the same split.

Run from the repository root (``--solution`` checks the reference, ``--module PATH`` any file):

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/04_frozen_probe_vs_scratch/check.py

References: the observed differences are hand-counted (gained minus lost clips over 200); the
intervals are compared with the normal approximation of the paired mean difference,
``d̄ ± z · std(d) / sqrt(n)`` in float64 (a bootstrap percentile interval of a mean of 200
clips lies within a fraction of a standard error of it), and an unpaired bootstrap written
here shows the interval that ignores the pairing.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _check_support import CheckFailed, as_float, expect, expect_close, main  # noqa: E402

CLIPS = 200
SCRATCH_RIGHT = 150
Z = {0.95: 1.959963984540054, 0.9: 1.6448536269514722}  # standard normal quantiles


def same_split(gained: int, lost: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip correctness on 200 clips: scratch right on 150; the frozen probe right on the
    same clips except ``lost`` of them, plus ``gained`` of the clips scratch gets wrong.
    Difference of accuracies = (gained - lost) / 200 exactly."""
    order = np.random.default_rng(seed).permutation(CLIPS)
    scratch = np.zeros(CLIPS)
    scratch[order[:SCRATCH_RIGHT]] = 1.0
    frozen = scratch.copy()
    frozen[order[SCRATCH_RIGHT : SCRATCH_RIGHT + gained]] = 1.0
    frozen[order[:lost]] = 0.0
    return frozen, scratch


CASES = {  # name: (gained, lost, expected decision)
    "clear gain (+16 / -4)": (16, 4, "frozen_better"),
    "small gain (+8 / -5)": (8, 5, "no_clear_difference"),
    "clear loss (+4 / -16)": (4, 16, "scratch_better"),
}


def normal_interval(frozen: np.ndarray, scratch: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """``d̄ ± z · std(d) / sqrt(n)`` of the paired differences, and the standard error."""
    differences = frozen - scratch
    standard_error = float(differences.std() / math.sqrt(differences.size))
    half = Z[confidence] * standard_error
    return float(differences.mean()) - half, float(differences.mean()) + half, standard_error


def unpaired_interval(
    frozen: np.ndarray, scratch: np.ndarray, n_resamples: int = 2000, seed: int = 1
) -> tuple[float, float]:
    """What an unpaired bootstrap gives: the two systems resampled with independent clip draws."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, frozen.size, size=(2, n_resamples, frozen.size))
    means = frozen[draws[0]].mean(axis=1) - scratch[draws[1]].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _ci(module, frozen, scratch, what: str, **kwargs) -> tuple[float, float, float]:
    result = module.paired_bootstrap_ci(frozen, scratch, **kwargs)
    hint = "return (difference, low, high) as three floats"
    try:
        difference, low, high = result
    except (TypeError, ValueError):
        raise CheckFailed(what, "(difference, low, high)", repr(result)[:120], hint) from None
    return as_float(difference, what, hint), as_float(low, what, hint), as_float(high, what, hint)


def check_difference(module) -> str:
    """The observed difference is (gained - lost) / 200 in each case."""
    rows = []
    for name, (gained, lost, _) in CASES.items():
        frozen, scratch = same_split(gained, lost)
        difference, _, _ = _ci(module, frozen, scratch, name)
        expect_close(
            difference,
            (gained - lost) / CLIPS,
            f"{name}: observed mean difference frozen - scratch",
            f"({gained} - {lost}) / {CLIPS}: the mean of frozen - scratch over the clips, not resampled",
        )
        rows.append(f"{difference:+.3f}")
    return "observed differences " + ", ".join(rows)


def check_interval(module) -> str:
    """Paired intervals contain the difference and match the normal approximation."""
    details = []
    for name, (gained, lost, _) in CASES.items():
        frozen, scratch = same_split(gained, lost)
        for confidence in (0.95, 0.9):
            difference, low, high = _ci(module, frozen, scratch, name, confidence=confidence)
            ref_low, ref_high, standard_error = normal_interval(frozen, scratch, confidence)
            tolerance = 0.3 * standard_error + 1 / CLIPS  # bootstrap noise + the 1/200 grid of the means
            hint = (
                "resample clip indices with replacement and use the SAME indices for frozen and scratch (resample the "
                "per-clip differences); take percentiles 50*(1-c) and 50*(1+c) of the resampled mean differences"
            )
            what = f"{name}: {confidence:.0%} interval"
            expect(
                low <= difference <= high,
                f"{what} contains the observed difference",
                f"low <= {difference:+.3f} <= high",
                f"({low:+.4f}, {high:+.4f})",
                hint,
            )
            expect(
                abs(low - ref_low) <= tolerance and abs(high - ref_high) <= tolerance,
                f"{what} against the normal approximation of the paired difference",
                f"about ({ref_low:+.4f}, {ref_high:+.4f}), each bound within ± {tolerance:.4f}",
                f"({low:+.4f}, {high:+.4f})",
                hint,
            )
            if confidence == 0.95:
                unpaired = unpaired_interval(frozen, scratch)
                details.append(
                    f"{name}: {difference:+.3f} [{low:+.3f}, {high:+.3f}] "
                    f"(unpaired would say [{unpaired[0]:+.3f}, {unpaired[1]:+.3f}])"
                )
    return "\n         ".join(details)


def check_per_clip_metric(module) -> None:
    """The interval of a continuous per-clip metric matches the normal approximation."""
    rng = np.random.default_rng(11)
    scratch = rng.uniform(0.3, 0.9, size=150)  # per-clip scores, e.g. a per-clip boundary F1
    frozen = scratch + rng.normal(0.02, 0.05, size=150)
    difference, low, high = _ci(module, frozen, scratch, "continuous per-clip metric")
    expect_close(
        difference,
        float(np.mean(frozen - scratch)),
        "continuous metric: observed mean difference",
        "mean of frozen - scratch",
    )
    ref_low, ref_high, standard_error = normal_interval(frozen, scratch, 0.95)
    expect(
        abs(low - ref_low) <= 0.3 * standard_error and abs(high - ref_high) <= 0.3 * standard_error,
        "continuous metric: 95 % interval against the normal approximation",
        f"about ({ref_low:+.4f}, {ref_high:+.4f}) ± {0.3 * standard_error:.4f}",
        f"({low:+.4f}, {high:+.4f})",
        "the same recipe works for any per-clip metric: resample the per-clip differences",
    )


def check_reproducible_and_same_split(module) -> None:
    """Same seed, same interval; identical systems give zeros; unequal lengths are rejected."""
    frozen, scratch = same_split(16, 4)
    first = _ci(module, frozen, scratch, "seed 5, first call", seed=5)
    second = _ci(module, frozen, scratch, "seed 5, second call", seed=5)
    expect(
        first == second,
        "the same seed gives the same interval",
        repr(first),
        repr(second),
        "draw from np.random.default_rng(seed)",
    )
    identical = _ci(module, scratch, scratch.copy(), "identical systems")
    expect(
        identical == (0.0, 0.0, 0.0),
        "two identical systems",
        "(0.0, 0.0, 0.0)",
        repr(identical),
        "every per-clip difference is 0, so every resampled mean is 0",
    )
    try:
        module.paired_bootstrap_ci(frozen, scratch[:-1])
    except ValueError:
        pass
    else:
        raise CheckFailed(
            "frozen scored on 200 clips, scratch on 199",
            "ValueError",
            "no error",
            "a paired comparison needs the same clips: reject arrays of different lengths",
        )


def check_decide(module) -> str:
    """Hand-made intervals and the three cases give the expected decisions."""
    hand = [
        ((0.06, 0.02, 0.10), "frozen_better"),
        ((-0.06, -0.10, -0.02), "scratch_better"),
        ((0.015, -0.02, 0.05), "no_clear_difference"),
        ((0.01, 0.0, 0.03), "no_clear_difference"),
        ((0.0, 0.0, 0.0), "no_clear_difference"),
    ]
    for ci, expected in hand:
        got = module.decide(ci)
        expect(
            got == expected,
            f"decide({ci})",
            repr(expected),
            repr(got),
            "frozen_better only if low > 0, scratch_better only if high < 0; "
            "an interval that reaches 0 does not exclude it",
        )
    verdicts = []
    for name, (gained, lost, expected) in CASES.items():
        frozen, scratch = same_split(gained, lost)
        got = module.decide(module.paired_bootstrap_ci(frozen, scratch))
        expect(got == expected, f"decision for the {name} case", repr(expected), repr(got), "see the intervals above")
        verdicts.append(f"{name}: {got}")
    return "; ".join(verdicts)


CHECKS = [
    ("observed difference frozen - scratch (hand-counted)", check_difference),
    ("paired bootstrap interval (against the normal approximation)", check_interval),
    ("the same recipe on a continuous per-clip metric", check_per_clip_metric),
    ("reproducible; identical systems; different clip counts rejected", check_reproducible_and_same_split),
    ("the decision from the interval", check_decide),
]

if __name__ == "__main__":
    main(
        __file__,
        "Exercise 4 — frozen probe against scratch, on the same split",
        CHECKS,
        on_success="Now write the note (TASK.md): does the frozen probe beat scratch on the same split — the "
        "difference with its 95 % interval over clips?",
    )
