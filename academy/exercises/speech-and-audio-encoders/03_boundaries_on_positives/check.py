"""Check for exercise 3 — boundary checks on positive clips only.

Run from the repository root (``--solution`` checks the reference, ``--module PATH`` any file):

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/03_boundaries_on_positives/check.py

References: ten hand-made clips whose errors and shares are worked out in the comments, and the
library's boundary inspection (:func:`audioenc.timing.boundaries.boundary_errors` and
:func:`~audioenc.timing.boundaries.summarize_boundaries`) on those and on 30 random clips.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _check_support import CheckFailed, expect, expect_array_close, expect_close, main  # noqa: E402

FRAME_RATE = 100.0
FRAMES = 500  # 5 s clips
LABEL = "tone"


def hand_clips() -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float] | None]]:
    """Ten clips; frames 'active' at 0.8, the rest between 0.05 and 0.45 (seeded noise).

    clip_01 positive (1.00, 1.50) s, active frames 103..147 -> predicted (1.03, 1.48):
            |errors| onset 0.03, offset 0.02
    clip_04 positive (2.00, 2.40) s, active frames 235..299 -> predicted (2.35, 3.00):
            |errors| onset 0.35, offset 0.60
    clip_08 positive (3.00, 3.30) s, nothing active -> missed: inf, inf
    clip_09 negative with a false alarm, active frames 50..60
    the six other clips negative and quiet.

    Positives only: onset errors [0.03, 0.35, inf] -> share within 0.2 s = 1/3, median 0.35;
    offset errors [0.02, 0.60, inf] -> 1/3.
    All clips (the misleading view): within = clip_01 and the six quiet negatives = 7 of 10.
    """
    rng = np.random.default_rng(3)
    scores = {f"clip_{index:02d}": rng.uniform(0.05, 0.45, size=FRAMES) for index in range(10)}
    truth: dict[str, tuple[float, float] | None] = {name: None for name in scores}
    truth["clip_01"] = (1.00, 1.50)
    scores["clip_01"][103:148] = 0.8
    truth["clip_04"] = (2.00, 2.40)
    scores["clip_04"][235:300] = 0.8
    truth["clip_08"] = (3.00, 3.30)
    scores["clip_09"][50:61] = 0.8
    return scores, truth


def random_clips(count: int = 30, seed: int = 4):
    """Random one-event clips with jittered, sometimes missed predictions and false alarms."""
    rng = np.random.default_rng(seed)
    scores, truth = {}, {}
    for index in range(count):
        name = f"random_{index:03d}"
        track = rng.uniform(0.0, 0.5, size=FRAMES)
        if rng.random() < 0.6:
            onset = round(float(rng.uniform(0.3, 3.0)), 3)
            offset = round(onset + float(rng.uniform(0.2, 1.2)), 3)
            truth[name] = (onset, offset)
            if rng.random() > 0.15:  # detected, with jittered boundaries
                start = int(np.clip(round((onset + rng.normal(0, 0.15)) * FRAME_RATE), 0, FRAMES - 2))
                stop = int(np.clip(round((offset + rng.normal(0, 0.2)) * FRAME_RATE), start + 1, FRAMES))
                track[start:stop] = rng.uniform(0.55, 1.0, size=stop - start)
        else:
            truth[name] = None
        if rng.random() < 0.25:  # a short false alarm anywhere
            start = int(rng.integers(0, FRAMES - 10))
            track[start : start + 5] = 0.9
        scores[name] = track
    return scores, truth


def library_errors(scores, truth) -> tuple[list[float], list[float], float, float]:
    """Absolute errors (missed: inf) and onset/offset shares within 0.2 s from audioenc.timing.boundaries."""
    from audioenc.audio.formats import Event
    from audioenc.timing.boundaries import boundary_errors, summarize_boundaries

    strong = {name: ([Event(event[0], event[1], LABEL)] if event is not None else []) for name, event in truth.items()}
    errors = boundary_errors({name: track[None, :] for name, track in scores.items()}, strong, [LABEL], FRAME_RATE)
    onset = [abs(error.onset_error) if error.detected else math.inf for error in errors]
    offset = [abs(error.offset_error) if error.detected else math.inf for error in errors]
    summary = summarize_boundaries(errors, tolerance=0.2)
    return onset, offset, summary.onset_within, summary.offset_within


def _errors(module, scores, truth, what: str) -> tuple[np.ndarray, np.ndarray]:
    result = module.positive_boundary_errors(scores, truth, FRAME_RATE)
    try:
        onset, offset = (np.asarray(values, dtype=np.float64) for values in result)
    except (TypeError, ValueError):
        raise CheckFailed(
            what, "(onset_errors, offset_errors): two arrays", repr(result)[:120], "return a tuple of two arrays"
        ) from None
    positives = sum(event is not None for event in truth.values())
    expect(
        onset.shape == (positives,) and offset.shape == (positives,),
        f"{what}: one error per positive clip",
        f"{positives} onset and {positives} offset errors",
        f"{onset.shape} and {offset.shape}",
        "skip the clips whose truth is None: a negative clip has no boundary to get wrong"
        if onset.size > positives
        else "every positive clip gets an error, a missed one np.inf",
    )
    return onset, offset


def check_hand_errors(module) -> str:
    """Errors on the three positive clips equal the hand-computed ones (missed = inf)."""
    scores, truth = hand_clips()
    onset, offset = _errors(module, scores, truth, "hand-made clips")
    hint = (
        "absolute errors |predicted - true| in sorted clip order (clip_01, clip_04, clip_08); a missed event is np.inf "
        "(not NaN, not 0: it must count as wrong in every median and share)"
    )
    expect_array_close(onset, [0.03, 0.35, math.inf], "onset errors of the positive clips", hint)
    expect_array_close(offset, [0.02, 0.60, math.inf], "offset errors of the positive clips", hint)
    return f"onset errors {onset.round(3).tolist()} s, median {float(np.median(onset)):.2f} s (the miss counts)"


def check_hand_shares(module) -> str:
    """Shares within 200 ms equal 1/3; no positive clip raises ValueError."""
    hint = "np.mean(errors <= tolerance): 0.03 is within, 0.35 and inf are not"
    onset = module.share_within(np.array([0.03, 0.35, math.inf]))
    expect_close(onset, 1 / 3, "share of onset errors [0.03, 0.35, inf] within 0.2 s", hint)
    expect_close(
        module.share_within(np.array([0.02, 0.60, math.inf])), 1 / 3, "share of offset errors within 0.2 s", hint
    )
    expect_close(
        module.share_within(np.array([0.15, 0.25]), tolerance=0.3),
        1.0,
        "share within a 0.3 s tolerance",
        "use the tolerance argument",
    )
    try:
        module.share_within(np.array([]))
    except ValueError:
        pass
    else:
        raise CheckFailed(
            "share_within of no errors (no positive clip)",
            "ValueError",
            "a number",
            "without positive clips there is no boundary evidence; raise ValueError instead of reporting 0 or 1",
        )
    return "positives only: 1/3 of the onsets within 200 ms"


def check_against_library(module) -> str:
    """Errors and shares agree with audioenc.timing.boundaries on hand-made and random clips."""
    for what, (scores, truth) in (("hand-made clips", hand_clips()), ("30 random clips", random_clips())):
        onset, offset = _errors(module, scores, truth, what)
        lib_onset, lib_offset, lib_onset_share, lib_offset_share = library_errors(scores, truth)
        hint = "the library uses the same rule: first to last active frame (> threshold), missed = inf"
        expect_array_close(onset, lib_onset, f"{what}: onset errors against audioenc.timing.boundaries", hint)
        expect_array_close(offset, lib_offset, f"{what}: offset errors against audioenc.timing.boundaries", hint)
        expect_close(
            module.share_within(onset), lib_onset_share, f"{what}: onset share within 0.2 s against the library", hint
        )
        expect_close(
            module.share_within(offset),
            lib_offset_share,
            f"{what}: offset share within 0.2 s against the library",
            hint,
        )
    return (
        f"30 random clips: onset share within 200 ms {lib_onset_share:.2f}, "
        f"offset {lib_offset_share:.2f} (library agrees)"
    )


def check_mixing_negatives(module) -> str:
    """The all-clips share is the hand-computed 0.7, above the positives-only 1/3."""
    scores, truth = hand_clips()
    mixed = expect_close(
        module.share_within_all_clips(scores, truth, FRAME_RATE),
        0.7,
        "onset share within 0.2 s over all ten clips (the misleading view)",
        "clip_01 and the six quiet negatives count as within, "
        "clip_04, clip_08 and the false alarm clip_09 as outside: 7/10",
    )
    positives = float(module.share_within(module.positive_boundary_errors(scores, truth, FRAME_RATE)[0]))
    expect(
        mixed > positives,
        "the all-clips share is larger than the positives-only share",
        "0.70 > 0.33",
        f"{mixed:.2f} vs {positives:.2f}",
        "the quiet negatives inflate the all-clips share",
    )
    return (
        f"positives only {positives:.2f} vs all clips {mixed:.2f}: "
        "six quiet negatives add 'hits' with no boundary in them"
    )


CHECKS = [
    ("onset/offset errors on positive clips only (hand-computed)", check_hand_errors),
    ("share within 200 ms (hand-computed), and no positives is an error", check_hand_shares),
    ("agreement with audioenc.timing.boundaries (hand-made and random clips)", check_against_library),
    ("why mixing negatives misleads", check_mixing_negatives),
]

if __name__ == "__main__":
    main(
        __file__,
        "Exercise 3 — boundary checks on positive clips only",
        CHECKS,
        on_success="Now write the note (TASK.md): the boundary evidence on positives, the all-clips number beside it, "
        "and why the latter is not boundary quality.",
    )
