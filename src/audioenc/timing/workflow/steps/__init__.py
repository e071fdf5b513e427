"""The workflow's steps in the track's order: :data:`STEPS`, the one list the run and the note
follow.

A step is a module with the attributes of :class:`Step`: its result's name, its folder in the run
folder, its title, ``run(context) -> result`` (writes the step's artifacts into its folder) and
``report_section(result, results)`` (its part of the note). Adding a step touches its module, its
settings section and :data:`STEPS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.sections import ReportSection
from audioenc.timing.workflow.steps import (
    step0_data,
    step1_pooling,
    step2_frames,
    step3_weak,
    step4_boundaries,
    step5_probe,
    step6_adapt,
)


class Step(Protocol):
    """One step of the track (each step module provides these names)."""

    NAME: str
    """The key of its result in :class:`~audioenc.timing.workflow.results.StepResults`."""
    FOLDER: str
    """Its folder in the run folder (``00_data`` ...): what it writes goes there."""
    TITLE: str
    """What it does, for the progress log."""

    def run(self, context: RunContext) -> Any:
        """Do the step's work, write its artifacts, return its typed result."""

    def report_section(self, result: Any, results: Mapping[str, Any]) -> ReportSection:
        """Its part of the note, from its result and the other steps' results."""


STEPS: tuple[Step, ...] = (
    step0_data,
    step1_pooling,
    step2_frames,
    step3_weak,
    step4_boundaries,
    step5_probe,
    step6_adapt,
)
"""The steps in the order they run and appear in the note."""


def timing_key(step: Step) -> str:
    """``0_data`` ... ``6_adapt``: the step's key in ``report.json``'s ``run.step_seconds``."""
    return f"{int(step.FOLDER[:2])}_{step.FOLDER[3:]}"


__all__ = ["STEPS", "Step", "timing_key"]
