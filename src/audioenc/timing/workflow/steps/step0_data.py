"""Step 0: read and check the corpus (``00_data/data.json``, ``00_data/dropped.tsv``).

Every label row or file left out or changed is listed with its file and line, never fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audioenc.timing.workflow.artifacts import write_json, write_tsv
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.data import channel_policy, load_workflow_data
from audioenc.timing.workflow.results import DataSummary, SplitSummary
from audioenc.timing.workflow.sections import Claim, ReportSection

NAME = "data"
FOLDER = "00_data"
TITLE = "reading and checking the corpus"


def run(context: RunContext) -> DataSummary:
    """Read, validate and featurise the corpus; write what was dropped."""
    context.log(f"  {context.corpus_root}")
    data = load_workflow_data(
        context.corpus_root,
        seed=context.seed,
        max_clips=context.settings.run.max_clips,
        feature_config=context.settings.features,
        log=context.log,
    )
    rows = [(issue.file, issue.line, issue.action, issue.message) for issue in data.issues]
    dropped = write_tsv(context.path(FOLDER, "dropped.tsv"), ("file", "line", "action", "message"), rows)
    splits = {
        name: SplitSummary(
            len(split.files),
            len(split.positive_files()),
            split.strong is not None,
            str(split.audio_dir),
            float(sum(split.durations.values())),
        )
        for name, split in data.splits.items()
    }
    result = DataSummary(
        data,
        splits,
        channel_policy(data.audio_formats, context.encoder, context.settings.features.sample_rate),
        (f"{FOLDER}/data.json", f"{FOLDER}/dropped.tsv"),
    )
    content = result.to_json()
    del content["artifacts"]
    write_json(context.path(FOLDER, "data.json"), content)
    for issue in data.issues[:20]:
        context.log(f"  {issue}")
    if len(data.issues) > 20:
        context.log(f"  ... and {len(data.issues) - 20} more in {dropped}")
    return result


def report_section(result: DataSummary, results: Mapping[str, Any]) -> ReportSection:
    """The data the note opens with (splits, classes, channel policy, notes) and, at its end,
    every dropped or changed row or file with its file and line."""
    data, dropped = result.to_json(), result.dropped_json()
    claim = Claim(
        "dropped",
        f"{len(dropped)} input row(s) or file(s) were dropped or changed while reading the data; "
        "every one is listed below with its file and line.",
        (f"{FOLDER}/dropped.tsv",),
    )
    split_sizes = ", ".join(f"{name} {info['clips']} clips" for name, info in data["splits"].items())
    appendix = ["", f"## Dropped or changed input ({len(dropped)})", "", claim.markdown(), ""]
    if dropped:
        appendix += ["| file | line | action | message |", "|---|---|---|---|"]
        for item in dropped:
            message = str(item["message"]).replace("|", "\\|")
            line = item["line"] if item["line"] is not None else ""
            appendix.append(f"| `{item['file']}` | {line} | {item['action']} | {message} |")
    else:
        appendix.append("Nothing was dropped: every label row and audio file was usable.")
    return ReportSection(
        json={"data": data, "dropped": dropped},
        claims=(claim,),
        about=f"{split_sizes}; classes {', '.join(data['classes'])}",
        preamble=(
            "",
            f"Channel policy: {data['channel_policy']}",
            "",
            f"Features: {result.corpus.feature_cache.summary()}.",
            "",
            *[f"- note: {note}" for note in data["notes"]],
        ),
        appendix=tuple(appendix),
    )
