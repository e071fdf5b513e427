"""Check for exercise 1 — what pooling hides.

Run from the repository root (``--solution`` checks the reference, ``--module PATH`` any file):

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/01_what_pooling_hides/check.py

References: hand-computed clip scores of a constructed clip (worked out in the comments
below), an independent float64 NumPy computation on random clips, and the library's pooling
modules (:mod:`audioenc.timing.pooling`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _check_support import CheckFailed, expect, expect_array_close, expect_close, main  # noqa: E402

FRAME_RATE = 100.0  # frames per second: 800 frames = an 8 s clip
EVENT_FRAMES = slice(300, 330)  # a 0.3 s event from 3.00 s to 3.30 s


def positive_clip() -> np.ndarray:
    """800 frames at 0.1 with the 30 event frames at 0.9."""
    scores = np.full(800, 0.1)
    scores[EVENT_FRAMES] = 0.9
    return scores


def negative_clip() -> np.ndarray:
    """The same background without the event."""
    return np.full(800, 0.1)


def glitch_clip() -> np.ndarray:
    """No event, but one 10 ms glitch frame at 0.95 (a click, a codec artefact)."""
    scores = np.full(800, 0.1)
    scores[600] = 0.95
    return scores


# Hand computation.
#   positive: mean = (770*0.1 + 30*0.9) / 800 = (77 + 27) / 800 = 0.13
#             max = 0.9
#             linear softmax = (770*0.01 + 30*0.81) / (77 + 27) = (7.7 + 24.3) / 104 = 32 / 104
#   negative: 0.1 by every rule.
#   glitch:   mean = (799*0.1 + 0.95) / 800 = 80.85 / 800
#             max = 0.95
#             linear softmax = (799*0.01 + 0.95**2) / 80.85 = (7.99 + 0.9025) / 80.85
#   event share of the weights on the positive clip: mean 30/800, max 1, linear softmax 27/104
#   visibility (positive - negative): mean 0.03, max 0.8, linear softmax 32/104 - 0.1 = 0.2077 -> max
#   visibility (positive - glitch):   mean 0.0289, max -0.05, linear softmax 0.1977 -> linear softmax
EXPECTED_POSITIVE = {"mean": 0.13, "max": 0.9, "linear_softmax": 32 / 104}
EXPECTED_NEGATIVE = {"mean": 0.1, "max": 0.1, "linear_softmax": 0.1}
EXPECTED_GLITCH = {"mean": 80.85 / 800, "max": 0.95, "linear_softmax": 8.8925 / 80.85}
EXPECTED_EVENT_SHARE = {"mean": 30 / 800, "max": 1.0, "linear_softmax": 27 / 104}
RULES = ("mean", "max", "linear_softmax")


def _scores(module, frame_scores: np.ndarray, what: str) -> dict[str, float]:
    result = module.clip_scores(frame_scores)
    expect(
        isinstance(result, dict) and set(result) >= set(RULES),
        f"{what}: clip_scores returns a dict with the keys {RULES}",
        f"a dict with keys {RULES}",
        repr(result)[:120],
        "return {'mean': ..., 'max': ..., 'linear_softmax': ...}",
    )
    return result


def _compare_scores(module, frame_scores: np.ndarray, expected: dict[str, float], what: str) -> dict[str, float]:
    result = _scores(module, frame_scores, what)
    hints = {
        "mean": "the mean over all frames: np.mean(y)",
        "max": "the largest frame score: np.max(y)",
        "linear_softmax": "sum(y**2) / sum(y): each frame weighted by its own score (not mean(y**2), not softmax(y))",
    }
    for rule in RULES:
        expect_close(result[rule], expected[rule], f"{what}: {rule} clip score", hints[rule])
    return result


def check_positive(module) -> str:
    """Clip scores of the event clip equal the hand-computed 0.13, 0.9 and 32/104."""
    result = _compare_scores(module, positive_clip(), EXPECTED_POSITIVE, "clip with a 0.3 s event")
    return "mean {mean:.4f}  max {max:.4f}  linear softmax {linear_softmax:.4f}".format(**result)


def check_negatives(module) -> None:
    """Clip scores of the clean and the glitch clip equal the hand-computed values."""
    _compare_scores(module, negative_clip(), EXPECTED_NEGATIVE, "clip without the event")
    _compare_scores(module, glitch_clip(), EXPECTED_GLITCH, "clip with one glitch frame")


def check_all_zero(module) -> None:
    """Linear softmax of an all-zero clip is 0.0, not 0/0."""
    result = _scores(module, np.zeros(50), "all-zero clip")
    expect_close(
        result["linear_softmax"],
        0.0,
        "all-zero clip: linear softmax",
        "Σy²/Σy is 0/0 here; return 0.0 when sum(y) == 0 (the library floors the denominator at 1e-7)",
    )


def check_random_against_references(module) -> str:
    """Random clips: an independent float64 NumPy computation and the library's torch modules."""
    module.clip_scores(np.array([0.5]))  # a cheap call first: an unfinished function says so before torch loads
    import torch

    from audioenc.timing.pooling import LinearSoftmaxPooling, MaxPooling, MeanPooling

    library = {"mean": MeanPooling(), "max": MaxPooling(), "linear_softmax": LinearSoftmaxPooling()}
    rng = np.random.default_rng(1)
    for clip in range(5):
        frames = rng.uniform(0.0, 1.0, size=int(rng.integers(20, 400))) ** 3  # skewed, like real scores
        reference = {
            "mean": float(np.sum(frames) / frames.size),
            "max": float(sorted(frames)[-1]),
            "linear_softmax": float(np.dot(frames, frames) / np.sum(frames)),
        }
        result = _compare_scores(module, frames, reference, f"random clip {clip} (float64 NumPy reference)")
        as_tensor = torch.from_numpy(frames)[None, None]  # [batch 1, classes 1, frames]
        for rule in RULES:
            expect_close(
                result[rule],
                float(library[rule](as_tensor)[0, 0]),
                f"random clip {clip}: {rule} against audioenc.timing.pooling",
                "the library and your function should agree to float64 precision",
            )
        expect(
            result["mean"] <= result["linear_softmax"] <= result["max"],
            f"random clip {clip}: mean <= linear softmax <= max",
            "linear softmax between mean and max (it is a weighted mean that favours high frames)",
            f"mean {result['mean']:.4f}, linear softmax {result['linear_softmax']:.4f}, max {result['max']:.4f}",
            "check the linear softmax formula",
        )
    return "agrees with a float64 NumPy version and with audioenc.timing.pooling on 5 random clips"


def check_weights(module) -> str:
    """Weights sum to one, reproduce the clip score, match the library, and give the event share."""
    module.pooling_weights(np.array([0.5]), "mean")  # a cheap call first, as above
    import torch

    from audioenc.timing.pooling import LinearSoftmaxPooling, MaxPooling, MeanPooling

    library = {"mean": MeanPooling(), "max": MaxPooling(), "linear_softmax": LinearSoftmaxPooling()}
    positive = positive_clip()
    shares = {}
    for rule in RULES:
        weights = np.asarray(module.pooling_weights(positive, rule), dtype=np.float64)
        expect(
            weights.shape == positive.shape,
            f"pooling_weights(positive clip, {rule!r}) has one weight per frame",
            f"shape {positive.shape}",
            f"shape {weights.shape}",
            "return a [frames] array",
        )
        expect_close(weights.sum(), 1.0, f"{rule} weights sum to one", "normalise the weights over time")
        expect(
            bool(np.all(weights >= 0)),
            f"{rule} weights are non-negative",
            ">= 0",
            f"min {weights.min():.4g}",
            "weights are shares",
        )
        expect_close(
            float(np.dot(weights, positive)),
            EXPECTED_POSITIVE[rule],
            f"sum_t w_t y_t with your {rule} weights equals the {rule} clip score",
            "the weights must reproduce the clip score: see the table in TASK.md",
        )
        library_weights = library[rule].weights(torch.from_numpy(positive)[None, None])[0, 0].numpy()
        expect_array_close(
            weights, library_weights, f"{rule} weights against audioenc.timing.pooling", "see TASK.md's table"
        )
        shares[rule] = float(weights[EVENT_FRAMES].sum())
        expect_close(
            shares[rule],
            EXPECTED_EVENT_SHARE[rule],
            f"share of the {rule} weight on the 30 event frames",
            "mean: 30/800; max: all of it; linear softmax: 27/104 (the event frames' scores over the total)",
        )
    tie = np.asarray(module.pooling_weights(np.array([0.2, 0.7, 0.1, 0.7]), "max"), dtype=np.float64)
    expect_array_close(tie, [0.0, 1.0, 0.0, 0.0], "max weights on a tie go to the first largest frame", "use np.argmax")
    try:
        module.pooling_weights(positive, "median")
    except ValueError:
        pass
    else:
        raise CheckFailed(
            "pooling_weights(..., 'median') raises ValueError", "ValueError", "no error", "reject unknown rules loudly"
        )
    return "event share of the clip score: mean {mean:.1%}, max {max:.0%}, linear softmax {linear_softmax:.1%}".format(
        **shares
    )


def check_most_visible(module) -> str:
    """The clean pair favours max, the glitch pair linear softmax; returns the printed table."""
    clean = module.most_visible_rule(positive_clip(), negative_clip())
    expect(
        clean == "max",
        "most_visible_rule(event clip, clean clip without the event)",
        "'max' (visibility: mean 0.030, max 0.800, linear softmax 0.208)",
        repr(clean),
        "visibility = score(positive) - score(negative); return the rule with the largest one",
    )
    glitch = module.most_visible_rule(positive_clip(), glitch_clip())
    expect(
        glitch == "linear_softmax",
        "most_visible_rule(event clip, clip with one glitch frame)",
        "'linear_softmax' (visibility: mean 0.029, max -0.050, linear softmax 0.198)",
        repr(glitch),
        "one 10 ms glitch at 0.95 beats the event under max pooling; compute the differences again",
    )
    rows = [("with event", positive_clip()), ("without", negative_clip()), ("with glitch", glitch_clip())]
    table = ["clip          mean     max      linear softmax"]
    for name, clip in rows:
        scores = module.clip_scores(clip)
        table.append(f"{name:<13} {scores['mean']:.4f}   {scores['max']:.4f}   {scores['linear_softmax']:.4f}")
    return "\n         ".join(table + [f"most visible: {clean!r} (clean pair), {glitch!r} (glitch pair)"])


CHECKS = [
    ("clip scores of an 8 s clip with a 0.3 s event (hand-computed)", check_positive),
    ("clip scores of the clips without the event (hand-computed)", check_negatives),
    ("linear softmax of an all-zero clip is 0, not NaN", check_all_zero),
    ("random clips against float64 NumPy and audioenc.timing.pooling", check_random_against_references),
    ("pooling weights: sum to one, reproduce the score, event share", check_weights),
    ("which rule keeps the event visible", check_most_visible),
]

if __name__ == "__main__":
    main(
        __file__,
        "Exercise 1 — what pooling hides",
        CHECKS,
        on_success="Now write the note (TASK.md): what the clip summary threw away, which rule kept the event "
        "visible on each pair, and your pooling choice, with the numbers above.",
    )
