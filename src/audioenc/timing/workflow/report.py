"""The learner's note of the lab workflow: ``report.md`` and ``report.json``, assembled from the
sections the steps return (:class:`~audioenc.timing.workflow.sections.ReportSection`), in the
order of :data:`~audioenc.timing.workflow.steps.STEPS`; nothing here names a step or its folder.

Every statement the report makes is a *claim* tied to the artifact files (relative to the run
folder) that back it, so a reader can open the table or plot behind each sentence:

``report.json``::

    version      the layout's version
    headline     the numbers `make demo` prints (pooling chosen, onset errors, F1/PSDS, frozen vs
                 scratch with 95 % intervals, the adaptation decision), one entry per step's part
    run          settings, timings (:class:`~audioenc.timing.workflow.context.RunInfo`)
    ...          each step's sections: data and dropped (step 0), frames (2), pooling and
                 boundaries (4), probe (5), adaptation, decision and next_change (6)
    claims       [{"id", "text", "artifacts": [paths]}] — the sentences of report.md

``report.md``: the data line and its notes, the claims under their headings (in the order the
headings first appear), the steps' tables, their appendices (the dropped rows), the timings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audioenc.timing.workflow.artifacts import clean, interval, number
from audioenc.timing.workflow.context import RunInfo
from audioenc.timing.workflow.results import StepResults
from audioenc.timing.workflow.sections import Claim, ReportSection
from audioenc.timing.workflow.steps import STEPS, Step

REPORT_VERSION = 1


@dataclass(frozen=True)
class Note:
    """The note of one run: ``report.json``'s content and ``report.md``'s text."""

    report: dict
    markdown: str


def note_sections(results: StepResults, out: str | Path, steps: Sequence[Step] = STEPS) -> list[ReportSection]:
    """Each step's part of the note, in the steps' order.

    Raises:
        FileNotFoundError: a claim names an artifact that does not exist in ``out`` (a report
            must never point at nothing).
    """
    out = Path(out)
    sections = [step.report_section(results.need(step.NAME), results) for step in steps]
    for claim in _claims(sections):
        missing = [path for path in claim.artifacts if not (out / path).exists()]
        if missing:
            raise FileNotFoundError(f"report claim {claim.id!r} names artifacts that do not exist in {out}: {missing}")
    return sections


def assemble_note(sections: Sequence[ReportSection], run: RunInfo) -> Note:
    """``report.json`` and ``report.md`` from the steps' sections and how the run was made."""
    headline: dict[str, Any] = {}
    content: dict[str, Any] = {}
    for section in sections:
        headline.update(section.headline)
        content.update(section.json)
    claims = _claims(sections)
    report = clean(
        {
            "version": REPORT_VERSION,
            "headline": {**headline, "wall_seconds": run.wall_seconds},
            "run": run.to_json(),
            **content,
            "claims": [claim.to_json() for claim in claims],
        }
    )
    return Note(report, render_markdown(sections, report["run"]))


def build_note(results: StepResults, run: RunInfo, out: str | Path, steps: Sequence[Step] = STEPS) -> Note:
    """:func:`note_sections` then :func:`assemble_note`."""
    return assemble_note(note_sections(results, out, steps), run)


def _claims(sections: Sequence[ReportSection]) -> list[Claim]:
    """The claims listed under a heading (in the steps' order), then those the steps place in their
    appendices."""
    claims = [claim for section in sections for claim in section.claims]
    return [claim for claim in claims if claim.heading] + [claim for claim in claims if not claim.heading]


def render_markdown(sections: Sequence[ReportSection], run: Mapping[str, Any]) -> str:
    """``report.md``: the note, each claim followed by the artifacts behind it, then the tables."""
    about = "; ".join(section.about for section in sections if section.about)
    encoder = run["encoder"] or "a weak-label CRNN trained here on other classes"
    lines = [
        "# Learner's note: the lab workflow",
        "",
        f"Data: `{run['data']}` ({about}). Encoder: `{encoder}`. "
        f"Seed {run['seed']}. Wall time {number(run.get('wall_seconds'), 0)} s.",
    ]
    for section in sections:
        lines += section.preamble
    headings: dict[str, list[Claim]] = {}
    for claim in _claims(sections):
        if claim.heading:
            headings.setdefault(claim.heading, []).append(claim)
    for heading, claims in headings.items():
        lines += ["", f"## {heading}", ""]
        lines += [f"- {claim.markdown()}" for claim in claims]
    for section in sections:
        lines += section.tables
    for section in sections:
        lines += section.appendix
    timings = " · ".join(f"{name} {value:.1f}" for name, value in run["step_seconds"].items())
    lines += ["", "## Timings (s)", "", timings, ""]
    return "\n".join(lines)


def headline_text(report: Mapping[str, Any]) -> str:
    """A few lines for the terminal: the numbers `make demo` ends with."""
    h = report["headline"]
    onset = ", ".join(f"{rule} {number(value)} s" for rule, value in h["median_abs_onset_s"].items())
    frozen, scratch = h["frozen"], h["scratch"]
    return "\n".join(
        [
            f"pooling chosen: {h['pooling_chosen']}; collar F1 {number(h['collar_f1'])}, PSDS1 {number(h['psds1'])}, "
            f"PSDS2 {number(h['psds2'])}",
            f"median |onset error| on positive clips: {onset}",
            f"frozen + probe: clip mAP {number(frozen['clip_map'])} [{interval(frozen['clip_map_ci'])}], collar F1 "
            f"{number(frozen['collar_f1'])} [{interval(frozen['collar_f1_ci'])}]",
            f"scratch:        clip mAP {number(scratch['clip_map'])} [{interval(scratch['clip_map_ci'])}], collar F1 "
            f"{number(scratch['collar_f1'])} [{interval(scratch['collar_f1_ci'])}]",
            f"adaptation: {'triggered' if h['adaptation_triggered'] else 'not triggered'}"
            f"{', ran' if h['adaptation_ran'] else ''}; decision: {h['decision']}",
        ]
    )


def write_note(note: Note, out: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out``; returns their paths."""
    out = Path(out)
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(clean(note.report), indent=2, default=str, allow_nan=False) + "\n")
    md_path.write_text(note.markdown)
    return json_path, md_path
