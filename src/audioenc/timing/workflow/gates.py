"""Sanity gates: did a system learn anything, before any decision is drawn from it?

A decision (the pooling rule, frozen / adapt / scratch) compares systems; numbers at chance
compare nothing. A system passes when, on the evaluation split:

1. **clip mAP above chance**: its clip mAP exceeds the mAP that random scores get in
   expectation (:func:`chance_map`) and the lower end of its 95 % bootstrap interval does too.
   That expectation is not the class prevalence ``R / N`` on small splits: one positive among
   8 clips gets AP 0.34 from a random ranking on average, not 0.125;
2. **events detected** (when strong labels exist): after post-processing, at least
   ``min_detected_share`` of the true events on positive clips have an active frame.

A failed gate names the system, the metric, its value against chance, and what to try.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audioenc.timing.evaluation import Evaluation

TRAIN_MORE = (
    "train longer (weak.max_epochs / probe.max_epochs, or a larger budget_seconds), add training clips, "
    "or probe another layer or encoder"
)
DETECT_MORE = "lower the decision threshold candidates (postprocess.thresholds) or train longer"


def expected_random_ap(positives: int, clips: int) -> float:
    """Expected average precision of a uniformly random ranking of ``clips`` items, ``positives`` of them positive.

    A positive at rank ``r`` (uniform on ``1..N``) has each of the other ``R - 1`` positives above it
    with probability ``(r - 1) / (N - 1)``, so its expected precision is ``(1 + (R - 1)(r - 1) / (N - 1)) / r``
    and, averaging over ``r``::

        E[AP] = (H_N + (R - 1) / (N - 1) * (N - H_N)) / N,      H_N = sum_{r=1..N} 1 / r

    (1 when ``R = N``; ``H_N / N`` for a single positive; tends to ``R / N`` for large ``N``).
    """
    if not 1 <= positives <= clips:
        raise ValueError(f"need 1 <= positives <= clips, got {positives} of {clips}")
    if clips == 1:
        return 1.0
    harmonic = float(np.sum(1.0 / np.arange(1, clips + 1)))
    return (harmonic + (positives - 1) / (clips - 1) * (clips - harmonic)) / clips


def chance_map(targets: np.ndarray) -> float:
    """Chance level of macro clip AP for labels ``[N, K]``: :func:`expected_random_ap` averaged over
    the classes with a positive clip (NaN when none has one)."""
    targets = np.asarray(targets) >= 0.5
    values = [expected_random_ap(int(column.sum()), len(column)) for column in targets.T if column.any()]
    return float(np.mean(values)) if values else float("nan")


@dataclass(frozen=True)
class SanityCheck:
    """The gates of one system.

    Attributes:
        system: its name in the report.
        passed: every gate passed.
        failures: one sentence per failed gate (metric, value, chance level).
        advice: what to try when a gate failed ("" when none did).
        chance_map: the chance level its clip mAP was held against (:func:`chance_map`).
    """

    system: str
    passed: bool
    failures: tuple[str, ...]
    advice: str
    chance_map: float

    @property
    def reason(self) -> str:
        """The failures and the advice in one sentence ("" when passed)."""
        return "" if self.passed else f"{self.system}: {'; '.join(self.failures)} — {self.advice}"

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {
            "system": self.system,
            "passed": self.passed,
            "failures": list(self.failures),
            "advice": self.advice,
            "chance_map": self.chance_map,
        }


def check_learned(system: str, evaluation: Evaluation, chance_map: float, min_detected_share: float) -> SanityCheck:
    """Apply the gates (module docstring) to one system's evaluation."""
    failures, advice = [], []
    if not np.isfinite(chance_map):
        return SanityCheck(
            system,
            False,
            ("no class has a positive clip in the evaluation split, so clip mAP is undefined",),
            "add clips with events to the evaluation split",
            chance_map,
        )
    value = evaluation.point.get("clip_map")
    interval = evaluation.interval("clip_map")
    low = interval.low if interval is not None else None
    if value is None or not value > chance_map:
        failures.append(f"clip mAP {_text(value)} is not above chance ({chance_map:.3f}, the mAP of random scores)")
    elif low is None or not low > chance_map:
        failures.append(
            f"clip mAP {value:.3f} is above chance ({chance_map:.3f}) but its 95 % interval reaches down to "
            f"{_text(low)}"
        )
    if failures:
        advice.append(TRAIN_MORE)
    summary = evaluation.boundary.summary
    if summary is not None and summary.events:
        share = summary.detected / summary.events
        if share < min_detected_share:
            failures.append(
                f"{summary.detected} of {summary.events} events detected ({share:.0%}, below {min_detected_share:.0%})"
            )
            advice.append(DETECT_MORE)
    return SanityCheck(system, not failures, tuple(failures), "; ".join(dict.fromkeys(advice)), chance_map)


def _text(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


__all__ = ["SanityCheck", "chance_map", "check_learned", "expected_random_ap"]
