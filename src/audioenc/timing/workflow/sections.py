"""A step's part of the learner's note: the claims it makes, the sections of ``report.json`` and
of its headline it fills, and the lines it adds to ``report.md``.

Each step builds its :class:`ReportSection` from its own result (and the results it builds on);
:mod:`audioenc.timing.workflow.report` only concatenates the sections in the steps' order, so a new
step reaches the note without the report naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Claim:
    """One sentence of the note and the artifact files (relative to the run folder) behind it.

    Attributes:
        id: stable key of the claim in ``report.json``.
        text: the sentence.
        artifacts: files that back it; the report refuses a claim that names a missing file.
        heading: the ``report.md`` section it is listed under (``"1. Clip summary ..."``);
            None for a claim a step places itself (in its ``appendix``), listed after the others.
    """

    id: str
    text: str
    artifacts: tuple[str, ...]
    heading: str | None = None

    def to_json(self) -> dict:
        """``report.json``'s ``claims`` entry."""
        return {"id": self.id, "text": self.text, "artifacts": list(self.artifacts)}

    def markdown(self) -> str:
        """The claim followed by its artifacts, as ``report.md`` lists it."""
        return self.text + "  \n  *Artifacts:* " + ", ".join(f"`{path}`" for path in self.artifacts)


@dataclass(frozen=True)
class ReportSection:
    """What one step adds to the note.

    Attributes:
        json: top-level sections of ``report.json`` (key -> plain JSON).
        headline: entries of ``report.json``'s ``headline`` (the numbers the terminal shows).
        claims: the step's claims, in the order ``report.json`` lists them.
        about: a phrase for the note's first line (what the data was).
        preamble: lines under the note's first line.
        tables: markdown lines after the claims (tables of numbers).
        appendix: markdown lines after every step's tables.
    """

    json: Mapping[str, Any] = field(default_factory=dict)
    headline: Mapping[str, Any] = field(default_factory=dict)
    claims: tuple[Claim, ...] = ()
    about: str = ""
    preamble: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    appendix: tuple[str, ...] = ()


__all__ = ["Claim", "ReportSection"]
