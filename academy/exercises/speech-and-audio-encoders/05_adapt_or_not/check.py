"""Check for exercise 5 — adapt or not.

Run from the repository root (``--solution`` checks the reference, ``--module PATH`` any file):

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/05_adapt_or_not/check.py

References: each case's gaps and decision are worked out by hand in the tables below (the
margin cases use binary-exact numbers such as 0.25 and 0.5, so "exactly at the margin" is exact).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _check_support import CheckFailed, expect, main  # noqa: E402

# (description, frozen clip, frozen boundary, scratch clip, scratch boundary, margins, path, clip gap, boundary gap)
PATH_CASES = [
    ("close on both", 0.90, 0.70, 0.91, 0.72, {}, "frozen", "-0.01", "-0.02"),
    ("close on clips, behind on boundaries", 0.89, 0.50, 0.90, 0.75, {}, "adapt", "-0.01", "-0.25"),
    ("behind on clips (and boundaries)", 0.70, 0.40, 0.90, 0.75, {}, "scratch", "-0.20", "-0.35"),
    ("behind on clips, ahead on boundaries", 0.70, 0.80, 0.90, 0.75, {}, "scratch", "-0.20", "+0.05"),
    ("ahead on both", 0.95, 0.80, 0.90, 0.75, {}, "frozen", "+0.05", "+0.05"),
    ("ahead on clips, behind on boundaries", 0.95, 0.50, 0.90, 0.75, {}, "adapt", "+0.05", "-0.25"),
    (
        "exactly at both margins (0.25)",
        0.5,
        0.5,
        0.75,
        0.75,
        {"clip_margin": 0.25, "boundary_margin": 0.25},
        "frozen",
        "-0.25",
        "-0.25",
    ),
    (
        "at the clip margin, past the boundary margin",
        0.5,
        0.25,
        0.75,
        0.75,
        {"clip_margin": 0.25, "boundary_margin": 0.25},
        "adapt",
        "-0.25",
        "-0.50",
    ),
]

# (description, frozen clip, frozen boundary, adapted clip, adapted boundary, options, keep?)
KEEP_CASES = [
    ("boundary +0.12, clip +0.01", 0.89, 0.50, 0.90, 0.62, {}, True),
    ("boundary +0.02 only", 0.89, 0.50, 0.89, 0.52, {}, False),
    ("boundary +0.15 but clip -0.05", 0.89, 0.50, 0.84, 0.65, {}, False),
    ("boundary gain exactly the minimum (0.125)", 0.5, 0.5, 0.5, 0.625, {"min_boundary_gain": 0.125}, True),
    (
        "clip drop exactly the margin (0.25)",
        0.75,
        0.5,
        0.5,
        0.75,
        {"min_boundary_gain": 0.125, "clip_margin": 0.25},
        True,
    ),
]

RULE_HINT = (
    "gaps are frozen minus scratch; test clip_gap < -clip_margin first (scratch), then boundary_gap < -boundary_margin "
    "(adapt), else frozen; a gap of exactly -margin is still 'close'"
)


def check_paths(module) -> str:
    """Each metric table gives the hand-decided path and a reason quoting both gaps."""
    lines = []
    for name, f_clip, f_bound, s_clip, s_bound, margins, expected, clip_gap, boundary_gap in PATH_CASES:
        result = module.choose_path(f_clip, f_bound, s_clip, s_bound, **margins)
        try:
            path, reason = result
        except (TypeError, ValueError):
            raise CheckFailed(
                f"choose_path for '{name}'", "(path, reason)", repr(result)[:120], "return a tuple of two strings"
            ) from None
        expect(
            path == expected,
            f"path for '{name}': frozen ({f_clip}, {f_bound}) vs scratch ({s_clip}, {s_bound}) {margins or ''}",
            f"{expected!r} (clip gap {clip_gap}, boundary gap {boundary_gap})",
            repr(path),
            RULE_HINT,
        )
        expect(
            isinstance(reason, str) and clip_gap in reason and boundary_gap in reason,
            f"reason for '{name}' quotes both gaps",
            f"a sentence containing {clip_gap} and {boundary_gap}",
            repr(reason),
            "format each gap with f'{gap:+.2f}' (a sign and two decimals) inside the reason",
        )
        lines.append(f"{name:<46} -> {path:<8} {reason}")
    return "\n         ".join(lines[:3] + ["..."])


def check_keep(module) -> None:
    """keep_adapted on the hand-decided adaptation outcomes (margins inclusive)."""
    for name, f_clip, f_bound, a_clip, a_bound, options, expected in KEEP_CASES:
        got = module.keep_adapted(f_clip, f_bound, a_clip, a_bound, **options)
        expect(
            got is expected or got == expected,
            f"keep_adapted for '{name}'",
            repr(expected),
            repr(got),
            "keep only if the boundary gain >= min_boundary_gain AND the clip change >= -clip_margin (both inclusive)",
        )


def check_final(module) -> str:
    """final_encoder on five cases; adapt without an adapted result raises ValueError."""
    cases = [
        ("frozen close on both", (0.90, 0.70), (0.91, 0.72), None, "frozen"),
        ("behind on clips", (0.70, 0.40), (0.90, 0.75), None, "scratch"),
        ("adaptation pays off", (0.89, 0.50), (0.90, 0.75), (0.90, 0.62), "adapted"),
        ("adaptation too small to keep", (0.89, 0.50), (0.90, 0.75), (0.89, 0.52), "frozen"),
        ("adaptation costs clip accuracy", (0.89, 0.50), (0.90, 0.75), (0.84, 0.65), "frozen"),
    ]
    for name, frozen, scratch, adapted, expected in cases:
        got = module.final_encoder(frozen, scratch, adapted)
        expect(
            got == expected,
            f"final_encoder for '{name}': frozen {frozen}, scratch {scratch}, adapted {adapted}",
            repr(expected),
            repr(got),
            "use choose_path; only for 'adapt' look at the adapted result, and keep it only if keep_adapted agrees",
        )
    try:
        module.final_encoder((0.89, 0.50), (0.90, 0.75), None)
    except ValueError:
        pass
    else:
        raise CheckFailed(
            "final_encoder when the rule says adapt but no adapted result exists",
            "ValueError",
            "a decision",
            "deciding to keep or drop an adaptation that was never run is a guess: raise ValueError",
        )
    return "kept: frozen, scratch, adapted, frozen, frozen"


CHECKS = [
    ("choose_path on eight metric tables (hand-decided)", check_paths),
    ("keep_adapted: gain large enough, clip metric held", check_keep),
    ("final_encoder: the whole rule", check_final),
]

if __name__ == "__main__":
    main(
        __file__,
        "Exercise 5 — adapt or not",
        CHECKS,
        on_success="Now write the note (TASK.md): your frozen / probed / adapted decision with both gaps and margins, "
        "the artifact behind each number, and the smallest next change worth testing.",
    )
