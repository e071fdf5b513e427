"""The learner's note of the lab workflow: ``report.md`` and ``report.json``, from the steps'
typed results.

Every statement the report makes is a *claim* tied to the artifact files (relative to the run
folder) that back it, so a reader can open the table or plot behind each sentence:

``report.json``::

    headline     the numbers `make demo` prints (pooling chosen, onset errors, F1/PSDS, frozen vs
                 scratch with 95 % intervals, the adaptation decision)
    pooling      the chosen rule, the rule that chose it, step-1 and step-3 evidence
    frames       step 2's frame view
    boundaries   step 4 per rule, disagreements between clip and boundary quality
    probe        step 5: encoder, task classes, frozen vs scratch with intervals
    adaptation   step 6: the rule, whether it triggered, the verdict
    decision     frozen / adapted / scratch, with the reason (:func:`decide_path`)
    next_change  the smallest next change worth testing, and why (:func:`next_change`)
    dropped      every input row or file the workflow left out or changed (file, line, message)
    claims       [{"id", "text", "artifacts": [paths]}] — the sentences of report.md
    run, data    settings, timings, data summary, channel policy

The pooling choice and the disagreements are step 4's decisions
(:mod:`audioenc.timing.workflow.steps.step4_boundaries`); the adaptation rule is
:class:`audioenc.timing.adapt.AdaptationRule`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audioenc.timing.evaluation import Evaluation
from audioenc.timing.fitting import TrainingHistory
from audioenc.timing.postprocess import PostProcessing
from audioenc.timing.workflow.artifacts import clean, interval, number
from audioenc.timing.workflow.context import RunInfo
from audioenc.timing.workflow.results import (
    AdaptationOutcome,
    BoundaryInspection,
    ProbeComparison,
    StepResults,
    WeakTraining,
)

REPORT_VERSION = 1


# =========================================================================== decisions


@dataclass(frozen=True)
class Decision:
    """The path the evidence supports (``frozen``, ``adapted`` or ``scratch``) and why."""

    path: str
    statement: str

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {"path": self.path, "statement": self.statement}


@dataclass(frozen=True)
class NextChange:
    """The smallest next change worth testing, and the evidence that points at it."""

    text: str
    because: str

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {"text": self.text, "because": self.because}


def decide_path(adaptation: AdaptationOutcome) -> Decision:
    """The path step 6 supports, with the reason.

    * ``frozen`` — the frozen encoder + probe does not stop short of scratch (the adaptation
      rule did not trigger): keep it; a stronger model would not be justified.
    * ``adapted`` — it stopped short and adapting the top block cleared the rule.
    * ``scratch`` — it stopped short and adaptation did not clear the rule (or could not be
      run): the encoder, frozen or lightly adapted, does not carry what this task needs, so the
      model trained from scratch is the one to use until a change (``next_change``) fixes that.
    * ``none`` — a sanity gate failed (the scratch baseline learned nothing): no comparison
      with it means anything, so no path is recommended; the reason names what failed.
    """
    if adaptation.no_decision:
        return Decision("none", adaptation.no_decision)
    trigger = adaptation.trigger
    if not trigger.triggered:
        return Decision("frozen", "keep the frozen encoder with its probe: " + trigger.reason)
    short = ", ".join(trigger.short_on) or "the rule's metrics"
    if not adaptation.ran:
        return Decision("scratch", f"use the scratch model: the frozen path stops short on {short} "
                        f"({trigger.reason}) and adaptation could not be tried ({adaptation.unavailable})")
    if adaptation.verdict.justified:
        return Decision("adapted", "adapt the encoder (top block unfrozen): " + adaptation.verdict.reason)
    return Decision("scratch", f"use the scratch model: the frozen path stops short on {short} "
                    f"({trigger.reason}) and adapting the top block does not justify changing the encoder "
                    f"({adaptation.verdict.reason})")


def next_change(results: StepResults) -> NextChange:
    """The smallest next change worth testing, from the run's evidence (first matching case).

    1. No decision (a sanity gate failed): what the gate advises (train longer, more data,
       a lower threshold, another layer).
    2. No strong labels on the evaluation split: label event times there.
    3. The chosen rule misses more than a third of the events on positive clips even after
       post-processing: widen the threshold candidates (no retraining).
    4. Adaptation was needed and not available: expose the encoder's top block.
    5. Adaptation was tried, not justified, and scratch is still ahead: a probe with temporal
       context on the same frozen frames (tells whether the timing is in the sequence at all).
    6. Adaptation justified: confirm the gain with a second seed before adopting it.
    7. The frozen path answers the task: keep it; try the next pooling rule's boundary plot.
    """
    boundaries, adaptation = results.need("boundaries"), results.need("adaptation")
    if adaptation.no_decision:
        scratch = results.need("probe").gates.get("scratch")
        advice = scratch.advice if scratch is not None else "train longer or add data"
        return NextChange(f"Make the scratch baseline learn first: {advice}; then rerun.", adaptation.no_decision)
    if not boundaries.available:
        return NextChange("Add strong labels (event onsets and offsets) for the evaluation split and rerun.",
                          f"boundary metrics were not computed: {boundaries.reason}")
    chosen = boundaries.chosen
    summary = boundaries.per_rule[chosen].boundary.summary
    events, detected = (summary.events, summary.detected) if summary is not None else (0, 0)
    if events and detected / events < 2 / 3:
        threshold = boundaries.postprocessing[chosen].threshold if chosen in boundaries.postprocessing else 0.5
        return NextChange(f"Add lower decision thresholds to postprocess.thresholds (the {chosen} CRNN used {threshold}) "
                          "and re-read 04_boundaries: a read-out change, no retraining.",
                          f"{events - detected} of {events} events on positive test clips have no frame above "
                          f"{threshold}, so their boundaries are counted as missed")
    trigger = adaptation.trigger
    if trigger.triggered and not adaptation.ran:
        return NextChange("Make the encoder's top block trainable (a codec or CRNN folder, or a HEAR module that exposes "
                          "its layers) and rerun step 6.", adaptation.unavailable or "adaptation was not available")
    if trigger.triggered and adaptation.ran and not adaptation.verdict.justified:
        return NextChange("Probe the same frozen frames with temporal context (a kernel-5 convolution over frames "
                          "instead of the per-frame layer): if boundaries improve, the timing is in the frame sequence "
                          "but not in single frames; if not, probe a layer below the top block.",
                          f"the frozen path stopped short of scratch ({_gaps_text(trigger.gaps)}) and unfreezing the "
                          "top block did not clear the rule")
    if adaptation.ran and adaptation.verdict.justified:
        return NextChange("Rerun with a second seed (--seed 1) and keep the adapted encoder only if the gain holds.",
                          "adaptation cleared the rule on one seed: " + adaptation.verdict.reason)
    return NextChange(f"Keep the frozen encoder and probe; next, compare the {chosen} boundary plot with the runner-up "
                      "rule's on the clips where they disagree (04_boundaries/around_boundaries.png).",
                      f"the frozen path is within the margins of scratch ({_gaps_text(trigger.gaps)})")


def _sizes(weak: WeakTraining) -> str:
    """``; CRNN ... at N frames/s`` from the recorded sizes."""
    crnn = weak.crnn
    rate = next((item.frame_rate for item in weak.rules.values() if item.frame_rate), None)
    text = (f"; CRNN stem {crnn.stem_channels} channels, conv blocks {tuple(crnn.conv_channels)}, BiGRU "
            f"2 x {crnn.rnn_hidden}, batch {weak.budget.batch_size}, learning rate {weak.budget.learning_rate}")
    return text + (f", {rate:g} output frames/s" if rate else "")


def _gaps_text(gaps: Mapping[str, float]) -> str:
    return ", ".join(f"scratch - frozen {metric} {value:+.3f}" for metric, value in gaps.items()) or "no gaps"


def _postprocessing_text(item: PostProcessing) -> str:
    window = f"median filter {item.window_frames} frames ({item.window_seconds:g} s)" if item.window_frames > 1 else "no median filter"
    return f"{window}, threshold {item.threshold:g}, {item.basis}"


def _training_text(histories: Mapping[str, TrainingHistory]) -> str:
    """Every model's epochs and why it stopped; the ones cut short while improving named first."""
    short = [name for name, history in histories.items() if history.still_improving]
    parts = [f"{name} {len(history.valid_loss)} epochs (best {history.best_epoch + 1}, {history.stopped.replace('_', ' ')})"
             for name, history in histories.items()]
    text = "Training with early stopping on the validation loss (best state kept): " + "; ".join(parts) + "."
    if short:
        text += (f" Stopped by the epoch limit or the budget while the validation loss was still falling: "
                 f"{', '.join(short)} — their numbers would likely improve with a larger weak.max_epochs / "
                 "probe.max_epochs or budget.")
    return text


def _with_ci(evaluation: Evaluation, metric: str) -> str:
    return f"{number(evaluation.point.get(metric))} [95 % CI {interval(evaluation.interval(metric))}]"


# =========================================================================== the report


def build_report(results: StepResults, run: RunInfo, out: str | Path) -> dict:
    """Assemble ``report.json`` from the steps' results (see the module docstring).

    Args:
        results: every step's typed result.
        run: how the run was made.
        out: the run folder (claims name artifacts relative to it).

    Returns:
        The report as plain JSON; raises ``FileNotFoundError`` if a claim names an artifact that
        does not exist (a report must never point at nothing).
    """
    out = Path(out)
    data, pooling, frames = results.need("data"), results.need("pooling"), results.need("frames")
    weak, boundaries = results.need("weak"), results.need("boundaries")
    probe, adaptation = results.need("probe"), results.need("adaptation")
    chosen = boundaries.chosen
    decision = decide_path(adaptation)
    change = next_change(results)
    claims: list[dict] = []

    def claim(claim_id: str, text: str, artifacts: Sequence[str]) -> None:
        claims.append({"id": claim_id, "text": text, "artifacts": list(artifacts)})

    # 1. pooling on the same frame scores
    mean_test, max_test = pooling.metrics["mean"]["test"], pooling.metrics["max"]["test"]
    best1 = pooling.best_on_validation_map
    claim("pooling_same_scores",
          f"On the same frame scores, mean pooling gives test clip mAP {number(mean_test.map)} (accuracy "
          f"{number(mean_test.accuracy)}) and max pooling {number(max_test.map)} (accuracy {number(max_test.accuracy)}); "
          f"the best clip summary on validation is {best1} (test mAP {number(pooling.metrics[best1]['test'].map)}).",
          pooling.artifacts)
    # 2. frames
    if frames.available and frames.inside_mean is not None:
        claim("frame_view",
              f"The frame view keeps what the clip summary averages away: on positive test clips the true class scores "
              f"{number(frames.inside_mean)} inside its events and {number(frames.outside_mean)} outside them, and its "
              f"highest frame lies inside one of its events for {frames.peak_inside} of {frames.positive_pairs} "
              "(clip, class) pairs.", frames.artifacts)
    else:
        claim("frame_view", "Frame scores per class over time are plotted for sample clips (no strong labels on the test "
              "split to measure them against).", frames.artifacts)
    # 3. weak-label training
    claim("weak_training",
          f"A weak-label CRNN was trained from clip labels only, once per pooling rule (up to {weak.budget.max_epochs} "
          f"epochs, patience {weak.budget.patience}, {len(weak.train_clips)} training clips, seed {weak.seed}"
          f"{_sizes(weak)}); test clip mAP: "
          + ", ".join(f"{rule} {number(item.test.map)}" for rule, item in weak.rules.items()) + ".",
          weak.artifacts)
    histories = {**{f"{rule} CRNN": item.history for rule, item in weak.rules.items()}, **probe.histories}
    if adaptation.history is not None:
        histories["adapted"] = adaptation.history
    claim("training", _training_text(histories), [*weak.artifacts[:2], "05_probe/training_curves.png"])
    # 4. boundaries and the choice
    selection = boundaries.selection
    if boundaries.available:
        chosen_evaluation = boundaries.per_rule[chosen]
        chosen_summary = chosen_evaluation.boundary.summary
        mean_summary = boundaries.per_rule["mean"].boundary.summary
        claim("boundaries",
              f"On {boundaries.positives} positive test clips (negatives excluded), the {chosen} CRNN places onsets with "
              f"a median absolute error of {number(chosen_summary.median_abs_onset_error)} s after its post-processing "
              f"({_postprocessing_text(boundaries.postprocessing[chosen]) if chosen in boundaries.postprocessing else 'none'}) "
              f"({number(100 * chosen_summary.onset_within, 0)} % within 200 ms; offsets "
              f"{number(chosen_summary.median_abs_offset_error)} s), collar F1 "
              f"{number(chosen_evaluation.point.get('collar_f1'))}, PSDS1 {number(chosen_evaluation.point.get('psds1'))}, "
              f"PSDS2 {number(chosen_evaluation.point.get('psds2'))}, onset-only F1 (HEAR) "
              f"{number(chosen_evaluation.point.get('onset_f1_200ms'))} at 200 ms and "
              f"{number(chosen_evaluation.point.get('onset_f1_50ms'))} at 50 ms; mean pooling: median onset error "
              f"{number(mean_summary.median_abs_onset_error)} s, collar F1 "
              f"{number(boundaries.per_rule['mean'].point.get('collar_f1'))}. (Medians count missed events as "
              f"infinitely wrong; {chosen_summary.events - chosen_summary.detected} of {chosen_summary.events} events "
              f"missed by {chosen}.)",
              [a for a in boundaries.artifacts if "boundary_metrics" in a or "error" in a or "aligned" in a or "around" in a])
        if boundaries.disagreements:
            claim("disagreements",
                  "Clip accuracy and boundary quality disagree: "
                  + "; ".join(d["text"] for d in boundaries.disagreements[:4]) + ".",
                  ["04_boundaries/boundary_metrics.tsv", "04_boundaries/boundary_metrics.json"])
        else:
            claim("disagreements", "Clip mAP and collar F1 rank the pooling rules the same way (no pair differs by more "
                  "than 0.02 in opposite directions).", ["04_boundaries/boundary_metrics.tsv"])
    else:
        claim("boundaries", f"Boundary inspection was not possible: {boundaries.reason}.",
              ["04_boundaries/boundary_metrics.json"])
    if boundaries.decided:
        failed = [gate.reason for gate in boundaries.gates.values() if not gate.passed]
        claim("pooling_choice", f"Chosen pooling rule: {chosen} — {selection.basis}. Rule: {selection.rule}."
              + (f" Left out by the sanity gates: {'; '.join(failed)}." if failed else ""),
              ["04_boundaries/boundary_metrics.json", "01_pooling/clip_metrics.tsv"])
    else:
        claim("pooling_choice", f"No pooling decision: no rule's CRNN passed the sanity gates "
              f"({boundaries.gates[chosen].reason}). Steps 5-6 carry {chosen} (the rule the choosing rule picks among all "
              "six) on only to show their evidence.", ["04_boundaries/boundary_metrics.json", "04_boundaries/boundary_metrics.tsv"])
    # 5. probe vs scratch
    encoder = probe.encoder.to_json()
    clip_difference = probe.difference["clip_map"]
    probe_text = (f"Frozen encoder ({encoder['kind']}, {encoder['source']}, {number(encoder['frame_rate'], 1)} frames/s, "
                  f"{encoder['embedding_size']}-dim) + probe vs scratch CRNN on the same split, classes "
                  f"{', '.join(probe.task_classes)}: clip mAP {_with_ci(probe.frozen, 'clip_map')} vs "
                  f"{_with_ci(probe.scratch, 'clip_map')} (difference {number(clip_difference.value)}, "
                  f"CI {interval(clip_difference)})")
    if probe.boundaries_available:
        probe_text += (f"; collar F1 {_with_ci(probe.frozen, 'collar_f1')} vs {_with_ci(probe.scratch, 'collar_f1')}; "
                       f"onsets within 200 ms {_with_ci(probe.frozen, 'onset_within')} vs "
                       f"{_with_ci(probe.scratch, 'onset_within')}")
    probe_text += (f"; onset-only F1 (HEAR, 200 ms) {number(probe.frozen.point.get('onset_f1_200ms'))} vs "
                   f"{number(probe.scratch.point.get('onset_f1_200ms'))}. Probe: {probe.probe_description}. "
                   "Post-processing, chosen on validation for each system alike: "
                   + "; ".join(f"{system} {_postprocessing_text(item)}" for system, item in probe.postprocessing.items()))
    if probe.boundaries_available:
        probe_text += (f"; PSDS1 {_with_ci(probe.frozen, 'psds1')} vs {_with_ci(probe.scratch, 'psds1')}"
                       + ("" if probe.frozen.interval("psds1") else " (point values: evaluation.psds_resamples=0, as each "
                          "resample costs a full PSDS evaluation; set it for intervals)"))
    failed = [gate.reason for gate in probe.gates.values() if not gate.passed]
    if failed:
        probe_text += ". Sanity gates failed: " + "; ".join(failed)
    claim("probe_vs_scratch", probe_text + ". " + " ".join(probe.notes), probe.artifacts)
    # 6. adaptation
    outcome = adaptation.no_decision or adaptation.trigger.reason
    adapt_text = f"Adaptation rule: {adaptation.rule} Outcome: {outcome}."
    if adaptation.ran:
        adapt_text += (f" Adapted ({adaptation.top_block}): clip mAP {_with_ci(adaptation.adapted, 'clip_map')}"
                       + (f", collar F1 {_with_ci(adaptation.adapted, 'collar_f1')}" if probe.boundaries_available else "")
                       + f". Verdict: {adaptation.verdict.reason}.")
    elif adaptation.unavailable:
        adapt_text += f" Not run: {adaptation.unavailable}."
    claim("adaptation", adapt_text, adaptation.artifacts)
    claim("decision", f"Decision: {decision.path} — {decision.statement}.", ["05_probe/comparison.tsv", *adaptation.artifacts])
    claim("next_change", f"Smallest next change worth testing: {change.text} Why: {change.because}.",
          ["04_boundaries/boundary_metrics.json", "05_probe/comparison.json", "06_adapt/adaptation.json"])
    dropped = data.dropped_json()
    claim("dropped", f"{len(dropped)} input row(s) or file(s) were dropped or changed while reading the data; every one is "
          "listed below with its file and line.", ["00_data/dropped.tsv"])

    for item in claims:
        missing = [path for path in item["artifacts"] if not (out / path).exists()]
        if missing:
            raise FileNotFoundError(f"report claim {item['id']!r} names artifacts that do not exist in {out}: {missing}")

    weak_json = weak.to_json()
    return clean({
        "version": REPORT_VERSION,
        "headline": _headline(boundaries, probe, adaptation, decision, run),
        "run": run.to_json(),
        "data": data.to_json(),
        "pooling": {"chosen": chosen, "decision": chosen if boundaries.decided else "none",
                    "no_decision": None if boundaries.decided else boundaries.gates[chosen].reason,
                    "basis": selection.basis, "rule": selection.rule,
                    "same_frame_scores": pooling.to_json(), "trained": weak_json["rules"],
                    "artifacts": ["01_pooling/clip_metrics.tsv", "04_boundaries/boundary_metrics.json"]},
        "frames": frames.to_json(),
        "boundaries": boundaries.to_json(),
        "probe": probe.to_json(),
        "adaptation": adaptation.to_json(),
        "decision": decision.to_json(),
        "next_change": change.to_json(),
        "dropped": dropped,
        "claims": claims,
    })


def _headline(boundaries: BoundaryInspection, probe: ProbeComparison, adaptation: AdaptationOutcome, decision: Decision, run: RunInfo) -> dict:
    def onset(rule: str) -> float | None:
        summary = boundaries.per_rule[rule].boundary.summary
        return summary.median_abs_onset_error if summary is not None else None

    def side(evaluation: Evaluation) -> dict:
        return {"clip_map": evaluation.point.get("clip_map"), "clip_map_ci": _ci_json(evaluation, "clip_map"),
                "collar_f1": evaluation.point.get("collar_f1"), "collar_f1_ci": _ci_json(evaluation, "collar_f1")}

    chosen = boundaries.per_rule[boundaries.chosen].point
    return {
        "pooling_chosen": boundaries.chosen,
        "median_abs_onset_s": {rule: onset(rule) for rule in boundaries.per_rule},
        "collar_f1": chosen.get("collar_f1"),
        "psds1": chosen.get("psds1"),
        "psds2": chosen.get("psds2"),
        "frozen": side(probe.frozen),
        "scratch": side(probe.scratch),
        "encoder": probe.encoder.to_json()["source"],
        "adaptation_triggered": adaptation.trigger.triggered,
        "adaptation_ran": adaptation.ran,
        "decision": decision.path,
        "wall_seconds": run.wall_seconds,
    }


def _ci_json(evaluation: Evaluation, metric: str) -> dict | None:
    ci = evaluation.interval(metric)
    return ci.as_dict() if ci is not None else None


def headline_text(report: Mapping[str, Any]) -> str:
    """A few lines for the terminal: the numbers `make demo` ends with."""
    h = report["headline"]
    onset = ", ".join(f"{rule} {number(value)} s" for rule, value in h["median_abs_onset_s"].items())
    frozen, scratch = h["frozen"], h["scratch"]
    return "\n".join([
        f"pooling chosen: {h['pooling_chosen']}; collar F1 {number(h['collar_f1'])}, PSDS1 {number(h['psds1'])}, PSDS2 {number(h['psds2'])}",
        f"median |onset error| on positive clips: {onset}",
        f"frozen + probe: clip mAP {number(frozen['clip_map'])} [{interval(frozen['clip_map_ci'])}], collar F1 "
        f"{number(frozen['collar_f1'])} [{interval(frozen['collar_f1_ci'])}]",
        f"scratch:        clip mAP {number(scratch['clip_map'])} [{interval(scratch['clip_map_ci'])}], collar F1 "
        f"{number(scratch['collar_f1'])} [{interval(scratch['collar_f1_ci'])}]",
        f"adaptation: {'triggered' if h['adaptation_triggered'] else 'not triggered'}"
        f"{', ran' if h['adaptation_ran'] else ''}; decision: {h['decision']}",
    ])


# =========================================================================== markdown


def _json_with_ci(block: Mapping, metric: str) -> str:
    return f"{number(block['point'].get(metric))} [95 % CI {interval(block.get('intervals', {}).get(metric))}]"


def render_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: the note, each claim followed by the artifacts behind it, then the tables."""
    claims = {item["id"]: item for item in report["claims"]}
    run, data = report["run"], report["data"]

    def said(claim_id: str) -> str:
        item = claims[claim_id]
        return item["text"] + "  \n  *Artifacts:* " + ", ".join(f"`{path}`" for path in item["artifacts"])

    split_sizes = ", ".join(f"{name} {info['clips']} clips" for name, info in data["splits"].items())
    lines = [
        "# Learner's note: the lab workflow",
        "",
        f"Data: `{run['data']}` ({split_sizes}; "
        f"classes {', '.join(data['classes'])}). Encoder: `{run['encoder'] or 'a weak-label CRNN trained here on other classes'}`. "
        f"Seed {run['seed']}. Wall time {number(run.get('wall_seconds'), 0)} s.",
        "",
        f"Channel policy: {data['channel_policy']}",
        "",
    ]
    for note in data.get("notes", []):
        lines.append(f"- note: {note}")
    sections = [
        ("1. Clip summary and pooling choice", ["pooling_same_scores", "pooling_choice"]),
        ("2. Frame-level behaviour", ["frame_view"]),
        ("3. Weak-label encoder", ["weak_training", "training"]),
        ("4. Boundary evidence on positive clips", ["boundaries", "disagreements"]),
        ("5. Frozen encoder + probe vs scratch", ["probe_vs_scratch"]),
        ("6. Adapt or not", ["adaptation"]),
        ("7. Decision and the smallest next change", ["decision", "next_change"]),
    ]
    for title, ids in sections:
        lines += ["", f"## {title}", ""]
        lines += [f"- {said(claim_id)}" for claim_id in ids if claim_id in claims]
    boundaries = report["boundaries"]
    if boundaries.get("available"):
        lines += ["", "### Clip and boundary metrics side by side (test split; boundaries on positive clips only)", "",
                  "| pooling | learned | clip mAP | clip accuracy | median abs onset (s) | median abs offset (s) "
                  "| onsets within 200 ms | collar F1 | onset F1 200 ms | PSDS1 | PSDS2 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for rule, item in boundaries["per_rule"].items():
            point, summary = item["point"], item["summary"] or {}
            learned = "yes" if boundaries.get("gates", {}).get(rule, {}).get("passed", True) else "no"
            lines.append(f"| {rule}{' (chosen)' if rule == report['pooling']['chosen'] else ''} | {learned} "
                         f"| {number(point.get('clip_map'))} "
                         f"| {number(point.get('clip_accuracy'))} | {number(summary.get('median_abs_onset_error'))} "
                         f"| {number(summary.get('median_abs_offset_error'))} | {number(summary.get('onset_within'))} "
                         f"| {number(point.get('collar_f1'))} | {number(point.get('onset_f1_200ms'))} "
                         f"| {number(point.get('psds1'))} | {number(point.get('psds2'))} |")
    probe = report["probe"]
    lines += ["", "### Frozen + probe vs scratch (95 % bootstrap intervals over test clips; difference paired)", "",
              "| metric | frozen + probe | scratch | frozen - scratch |", "|---|---|---|---|"]
    for metric in probe["frozen"]["point"]:
        lines.append(f"| {metric} | {_json_with_ci(probe['frozen'], metric)} | {_json_with_ci(probe['scratch'], metric)} "
                     f"| {number(probe['difference'].get(metric, {}).get('value'))} [{interval(probe['difference'].get(metric))}] |")
    dropped = report["dropped"]
    lines += ["", f"## Dropped or changed input ({len(dropped)})", "", said("dropped"), ""]
    if dropped:
        lines += ["| file | line | action | message |", "|---|---|---|---|"]
        for item in dropped:
            message = str(item["message"]).replace("|", "\\|")
            lines.append(f"| `{item['file']}` | {item['line'] if item['line'] is not None else ''} | {item['action']} | {message} |")
    else:
        lines.append("Nothing was dropped: every label row and audio file was usable.")
    lines += ["", "## Timings (s)", "", " · ".join(f"{name} {value:.1f}" for name, value in run["step_seconds"].items()), ""]
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out``; returns their paths."""
    out = Path(out)
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(clean(report), indent=2, default=str, allow_nan=False) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path
