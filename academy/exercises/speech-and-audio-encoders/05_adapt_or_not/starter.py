"""Exercise 5 — adapt or not: complete the three functions (read TASK.md).

Metrics are higher-is-better numbers on the same evaluation split: a clip metric (clip AP or
accuracy) and a boundary metric (the share of onsets within 200 ms on positive clips, or a
collar F1).

Check your work from the repository root:

    academy/.venv/bin/python academy/exercises/speech-and-audio-encoders/05_adapt_or_not/check.py
"""

from __future__ import annotations

PATHS: tuple[str, ...] = ("frozen", "adapt", "scratch")
"""Outcomes of :func:`choose_path`."""


def choose_path(
    frozen_clip: float,
    frozen_boundary: float,
    scratch_clip: float,
    scratch_boundary: float,
    *,
    clip_margin: float = 0.02,
    boundary_margin: float = 0.05,
) -> tuple[str, str]:
    """The track's rule: adapt only when the frozen path stops short.

    With ``clip_gap = frozen_clip - scratch_clip`` and ``boundary_gap = frozen_boundary -
    scratch_boundary``, checked in this order:

    - ``clip_gap < -clip_margin``: ``"scratch"`` (the frozen features miss the classes);
    - ``boundary_gap < -boundary_margin``: ``"adapt"`` (close on clips, behind on boundaries);
    - otherwise ``"frozen"`` (the frozen encoder answers the task).

    Returns:
        ``(path, reason)``: the path and one sentence that quotes both gaps as
        ``f"{gap:+.2f}"``.
    """
    raise NotImplementedError(
        "Exercise 5: compute the two gaps (frozen minus scratch), test the clip gap first, then the boundary gap, "
        "and return (path, f'... clip gap {clip_gap:+.2f} ... boundary gap {boundary_gap:+.2f} ...')"
    )


def keep_adapted(
    frozen_clip: float,
    frozen_boundary: float,
    adapted_clip: float,
    adapted_boundary: float,
    *,
    min_boundary_gain: float = 0.05,
    clip_margin: float = 0.02,
) -> bool:
    """Whether the adapted encoder earns its place over the frozen one.

    Returns:
        True when ``adapted_boundary - frozen_boundary >= min_boundary_gain`` and
        ``adapted_clip - frozen_clip >= -clip_margin``.
    """
    raise NotImplementedError("Exercise 5: two comparisons joined by `and` (>= on both: the margins are inclusive)")


def final_encoder(
    frozen: tuple[float, float],
    scratch: tuple[float, float],
    adapted: tuple[float, float] | None,
    *,
    clip_margin: float = 0.02,
    boundary_margin: float = 0.05,
    min_boundary_gain: float = 0.05,
) -> str:
    """The encoder to keep: ``"frozen"``, ``"scratch"`` or ``"adapted"``.

    Args:
        frozen, scratch, adapted: ``(clip metric, boundary metric)`` of each path; ``adapted``
            is None when no adaptation was run.

    Returns:
        The :func:`choose_path` result for ``frozen`` and ``scratch``; when it is ``"adapt"``,
        ``"adapted"`` if :func:`keep_adapted` agrees, else ``"frozen"``.

    Raises:
        ValueError: when the rule says ``adapt`` but ``adapted`` is None (run the adaptation
            first, then decide).
    """
    raise NotImplementedError(
        "Exercise 5: call choose_path(*frozen, *scratch, ...); for 'adapt' require adapted (ValueError if None) "
        "and return 'adapted' or 'frozen' by keep_adapted(*frozen, *adapted, ...)"
    )
