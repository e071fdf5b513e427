"""Exercise 5 — adapt or not: reference solution (read TASK.md first).

Metrics are higher-is-better numbers on the same evaluation split: a clip metric and a boundary
metric.
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
    """The track's rule: adapt only when the frozen path stops short (see TASK.md's table).

    Returns:
        ``(path, reason)``, the reason quoting both gaps as ``f"{gap:+.2f}"``.
    """
    clip_gap = frozen_clip - scratch_clip
    boundary_gap = frozen_boundary - scratch_boundary
    gaps = (
        f"clip gap {clip_gap:+.2f} (margin {clip_margin:.2f}), "
        f"boundary gap {boundary_gap:+.2f} (margin {boundary_margin:.2f})"
    )
    # The clip question first: if the frozen features cannot tell the classes apart, better
    # boundaries would not rescue them, and a light top-block update is not the smallest fix.
    if clip_gap < -clip_margin:
        return (
            "scratch",
            f"scratch: the frozen probe is behind on the clip metric ({gaps}); the frozen features miss the classes",
        )
    if boundary_gap < -boundary_margin:
        return (
            "adapt",
            f"adapt: close to scratch on clips but behind on boundaries ({gaps}); the timing signal is what is missing",
        )
    return "frozen", f"frozen: the frozen probe answers the task ({gaps}); no change to the encoder is justified"


def keep_adapted(
    frozen_clip: float,
    frozen_boundary: float,
    adapted_clip: float,
    adapted_boundary: float,
    *,
    min_boundary_gain: float = 0.05,
    clip_margin: float = 0.02,
) -> bool:
    """True when the boundary metric gains at least ``min_boundary_gain`` and the clip metric
    drops by no more than ``clip_margin`` (both inclusive)."""
    return adapted_boundary - frozen_boundary >= min_boundary_gain and adapted_clip - frozen_clip >= -clip_margin


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

    Raises:
        ValueError: when the rule says ``adapt`` but ``adapted`` is None.
    """
    path, _ = choose_path(*frozen, *scratch, clip_margin=clip_margin, boundary_margin=boundary_margin)
    if path != "adapt":
        return path
    if adapted is None:
        raise ValueError("the rule says adapt, but no adapted result was given: run the light adaptation, then decide")
    keep = keep_adapted(*frozen, *adapted, min_boundary_gain=min_boundary_gain, clip_margin=clip_margin)
    return "adapted" if keep else "frozen"
