"""The learner's note of the lab workflow: ``report.md`` and ``report.json``.

Every statement the report makes is a *claim* tied to the artifact files (relative to the run
folder) that back it, so a reader can open the table or plot behind each sentence:

``report.json``::

    headline     the numbers `make demo` prints (pooling chosen, onset errors, F1/PSDS, frozen vs
                 scratch with 95 % intervals, the adaptation decision)
    pooling      the chosen rule, the rule that chose it, step-1 and step-4 evidence
    frames       step 2's frame view
    boundaries   step 4 per rule, disagreements between clip and boundary quality
    probe        step 5: encoder, task classes, frozen vs scratch with intervals
    adaptation   step 6: the rule, whether it triggered, the verdict
    decision     frozen / adapted / scratch, with the reason (:func:`decide_path`)
    next_change  the smallest next change worth testing, and why
    dropped      every input row or file the workflow left out or changed (file, line, message)
    claims       [{"id", "text", "artifacts": [paths]}] — the sentences of report.md
    run, data    settings, timings, data summary, channel policy

Decision rules live here when they are about choosing what to report:
:func:`choose_pooling` (the pooling rule) and :func:`find_disagreements` (where clip accuracy
and boundary quality disagree); the adaptation rule is
:class:`audioenc.timing.probe.AdaptationRule`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from itertools import permutations
from pathlib import Path
from typing import Any

REPORT_VERSION = 1


# =========================================================================== decisions


def choose_pooling(validation: Mapping[str, Mapping[str, float | None]], ap_margin: float = 0.10) -> dict:
    """Choose the pooling rule from validation metrics of the weak CRNNs (one per rule).

    Rule: among the rules whose validation clip mAP is within ``ap_margin`` of the best, take
    the one with the highest collar F1 on positive clips (ties: more onsets within 200 ms,
    then higher mAP). Without boundary metrics (no strong validation labels) take the highest
    clip mAP. Clip metrics alone would reward a rule that detects events without placing them
    — the boundary metric decides among rules that classify about equally well.

    Args:
        validation: per rule the point metrics (``clip_map``, optionally ``collar_f1`` and
            ``onset_within``; None = undefined).
        ap_margin: how far below the best mAP a rule may be and still be chosen.

    Returns:
        ``{"chosen", "basis", "rule", "candidates"}``.
    """
    if not validation:
        raise ValueError("no pooling rules to choose from")
    maps = {rule: metrics.get("clip_map") for rule, metrics in validation.items()}
    defined = [value for value in maps.values() if value is not None]
    if not defined:
        raise ValueError("no rule has a defined validation clip mAP (no positive validation clip?)")
    best_map = max(defined)
    candidates = [rule for rule, value in maps.items() if value is not None and value >= best_map - ap_margin]
    statement = (f"among the rules whose validation clip mAP is within {ap_margin:.2f} of the best, the highest validation "
                 "collar F1 on positive clips (ties: onsets within 200 ms, then mAP); clip mAP alone without strong labels")
    with_f1 = [rule for rule in candidates if validation[rule].get("collar_f1") is not None]
    if with_f1:
        def key(rule: str) -> tuple:
            metrics = validation[rule]
            return (metrics["collar_f1"], metrics.get("onset_within") or 0.0, metrics.get("clip_map") or 0.0)

        chosen = max(with_f1, key=key)
        basis = (f"validation collar F1 {validation[chosen]['collar_f1']:.3f}, the highest among {', '.join(candidates)} "
                 f"(clip mAP within {ap_margin:.2f} of the best, {best_map:.3f})")
    else:
        chosen = max(candidates, key=lambda rule: maps[rule])
        basis = f"validation clip mAP {maps[chosen]:.3f} (no boundary metric: no strong validation labels)"
    return {"chosen": chosen, "basis": basis, "rule": statement, "candidates": candidates}


def find_disagreements(table: Mapping[str, Mapping[str, float | None]], margin: float = 0.02,
                       clip_key: str = "clip_map", boundary_key: str = "collar_f1") -> list[dict]:
    """Pairs of rules where clip quality and boundary quality point opposite ways.

    A pair (a, b) disagrees when ``a`` beats ``b`` in ``clip_key`` by more than ``margin`` while
    ``b`` beats ``a`` in ``boundary_key`` by more than ``margin``. Listed first: when the rule
    with the best clip metric is not the one with the best boundary metric (each leading the
    other by more than ``margin`` on its own metric).

    Returns:
        ``[{"kind", "better_clip", "better_boundary", "clip_gap", "boundary_gap", "text"}]``.
    """
    usable = {rule: m for rule, m in table.items() if m.get(clip_key) is not None and m.get(boundary_key) is not None}
    if len(usable) < 2:
        return []
    found = []
    for a, b in permutations(usable, 2):
        clip_gap = usable[a][clip_key] - usable[b][clip_key]
        boundary_gap = usable[b][boundary_key] - usable[a][boundary_key]
        if clip_gap > margin and boundary_gap > margin:
            found.append({
                "kind": "pair",
                "better_clip": a,
                "better_boundary": b,
                "clip_gap": clip_gap,
                "boundary_gap": boundary_gap,
                "text": f"{a} beats {b} on clip mAP by {clip_gap:.3f} ({usable[a][clip_key]:.3f} vs {usable[b][clip_key]:.3f}) "
                        f"but {b} beats {a} on collar F1 by {boundary_gap:.3f} ({usable[b][boundary_key]:.3f} vs "
                        f"{usable[a][boundary_key]:.3f})",
            })
    best_clip = max(usable, key=lambda rule: usable[rule][clip_key])
    best_boundary = max(usable, key=lambda rule: usable[rule][boundary_key])
    clip_lead = usable[best_clip][clip_key] - usable[best_boundary][clip_key]
    boundary_lead = usable[best_boundary][boundary_key] - usable[best_clip][boundary_key]
    if best_clip != best_boundary and clip_lead > margin and boundary_lead > margin:
        found.insert(0, {
            "kind": "best",
            "better_clip": best_clip,
            "better_boundary": best_boundary,
            "clip_gap": clip_lead,
            "boundary_gap": boundary_lead,
            "text": f"the best clip mAP ({best_clip}, {usable[best_clip][clip_key]:.3f}) and the best collar F1 "
                    f"({best_boundary}, {usable[best_boundary][boundary_key]:.3f}) come from different pooling rules",
        })
    return found


def decide_path(adaptation: Mapping[str, Any]) -> dict:
    """The path step 6 supports, with the reason.

    * ``frozen`` — the frozen encoder + probe does not stop short of scratch (the adaptation
      rule did not trigger): keep it; a stronger model would not be justified.
    * ``adapted`` — it stopped short and adapting the top block cleared the rule.
    * ``scratch`` — it stopped short and adaptation did not clear the rule (or could not be
      run): the encoder, frozen or lightly adapted, does not carry what this task needs, so the
      model trained from scratch is the one to use until a change (``next_change``) fixes that.
    """
    if not adaptation.get("triggered"):
        return {"path": "frozen", "statement": "keep the frozen encoder with its probe: " + adaptation["reason"]}
    short = ", ".join(adaptation.get("short_on", [])) or "the rule's metrics"
    if not adaptation.get("ran"):
        return {"path": "scratch", "statement": f"use the scratch model: the frozen path stops short on {short} "
                f"({adaptation['reason']}) and adaptation could not be tried ({adaptation.get('unavailable')})"}
    verdict = adaptation["verdict"]
    if verdict["justified"]:
        return {"path": "adapted", "statement": "adapt the encoder (top block unfrozen): " + verdict["reason"]}
    return {"path": "scratch", "statement": f"use the scratch model: the frozen path stops short on {short} "
            f"({adaptation['reason']}) and adapting the top block does not justify changing the encoder "
            f"({verdict['reason']})"}


def next_change(results: Mapping[str, Any]) -> dict:
    """The smallest next change worth testing, from the run's evidence (first matching case).

    1. No strong labels on the evaluation split: label event times there.
    2. The chosen rule misses more than a third of the events on positive clips: lower the
       frame threshold (no retraining).
    3. Adaptation was needed and not available: expose the encoder's top block.
    4. Adaptation was tried, not justified, and scratch is still ahead: a probe with temporal
       context on the same frozen frames (tells whether the timing is in the sequence at all).
    5. Adaptation justified: confirm the gain with a second seed before adopting it.
    6. The frozen path answers the task: keep it; try the next pooling rule's boundary plot.
    """
    step4, step6 = results["step4"], results["step6"]
    if not step4.get("available"):
        return {"text": "Add strong labels (event onsets and offsets) for the evaluation split and rerun.",
                "because": f"boundary metrics were not computed: {step4.get('reason')}"}
    chosen = results["step4"]["selection"]["chosen"]
    summary = step4["per_rule"][chosen].get("summary") or {}
    events, detected = summary.get("events") or 0, summary.get("detected") or 0
    if events and detected / events < 2 / 3:
        return {"text": f"Lower the frame decision threshold of the {chosen} CRNN from 0.5 (e.g. to 0.3) and re-read "
                        "04_boundaries: a read-out change, no retraining.",
                "because": f"{events - detected} of {events} events on positive test clips have no frame above 0.5, "
                           "so their boundaries are counted as missed"}
    gaps = step6.get("gaps") or {}
    if step6.get("triggered") and not step6.get("ran"):
        return {"text": "Make the encoder's top block trainable (a codec or CRNN folder, or a HEAR module that exposes "
                        "its layers) and rerun step 6.",
                "because": step6.get("unavailable") or "adaptation was not available"}
    if step6.get("triggered") and step6.get("ran") and not step6["verdict"]["justified"]:
        return {"text": "Probe the same frozen frames with temporal context (a kernel-5 convolution over frames "
                        "instead of the per-frame layer): if boundaries improve, the timing is in the frame sequence "
                        "but not in single frames; if not, probe a layer below the top block.",
                "because": f"the frozen path stopped short of scratch ({_gaps_text(gaps)}) and unfreezing the top "
                           "block did not clear the rule"}
    if step6.get("ran") and step6["verdict"]["justified"]:
        return {"text": "Rerun with a second seed (--seed 1) and keep the adapted encoder only if the gain holds.",
                "because": "adaptation cleared the rule on one seed: " + step6["verdict"]["reason"]}
    return {"text": f"Keep the frozen encoder and probe; next, compare the {chosen} boundary plot with the runner-up "
                    "rule's on the clips where they disagree (04_boundaries/around_boundaries.png).",
            "because": f"the frozen path is within the margins of scratch ({_gaps_text(gaps)})"}


def _sizes(step3: Mapping[str, Any]) -> str:
    """``, CRNN ... at N frames/s`` from the recorded sizes, when present."""
    crnn = step3.get("crnn")
    if not crnn:
        return ""
    rate = next((item.get("frame_rate") for item in step3["rules"].values() if item.get("frame_rate")), None)
    text = (f"; CRNN stem {crnn['stem_channels']} channels, conv blocks {tuple(crnn['conv_channels'])}, BiGRU "
            f"2 x {crnn['rnn_hidden']}, batch {step3.get('batch_size')}, learning rate {step3.get('learning_rate')}")
    return text + (f", {rate:g} output frames/s" if rate else "")


def _gaps_text(gaps: Mapping[str, float]) -> str:
    return ", ".join(f"scratch - frozen {metric} {value:+.3f}" for metric, value in gaps.items()) or "no gaps"


# =========================================================================== the report


def _f(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _ci(interval: Mapping | None) -> str:
    """``low to high``; an end stored as None (JSON has no infinity) next to a defined one is
    infinite: ``-inf`` below, ``inf`` above (a median that may be infinite, or its difference)."""
    if not interval or (interval.get("low") is None and interval.get("high") is None):
        return "n/a"
    low = f"{interval['low']:.3f}" if interval.get("low") is not None else "-inf"
    high = f"{interval['high']:.3f}" if interval.get("high") is not None else "inf"
    return f"{low} to {high}"


def _with_ci(block: Mapping, metric: str) -> str:
    return f"{_f(block['point'].get(metric))} [95 % CI {_ci(block.get('intervals', {}).get(metric))}]"


def build_report(results: Mapping[str, Any], out: str | Path) -> dict:
    """Assemble ``report.json`` from the workflow's step results (see the module docstring).

    Args:
        results: ``run``, ``data``, ``dropped`` and ``step1`` ... ``step6`` as the workflow
            records them.
        out: the run folder (claims name artifacts relative to it).

    Returns:
        The report dict; raises ``FileNotFoundError`` if a claim names an artifact that does not
        exist (a report must never point at nothing).
    """
    out = Path(out)
    step1, step2, step3, step4, step5, step6 = (results[f"step{n}"] for n in range(1, 7))
    chosen = step4["selection"]["chosen"]
    decision = decide_path(step6)
    change = next_change(results)
    claims: list[dict] = []

    def claim(claim_id: str, text: str, artifacts: Sequence[str]) -> None:
        claims.append({"id": claim_id, "text": text, "artifacts": list(artifacts)})

    # 1. pooling on the same frame scores
    metrics1 = step1["metrics"]
    mean_test, max_test = metrics1["mean"]["test"], metrics1["max"]["test"]
    best1 = step1["best_on_validation_map"]
    claim("pooling_same_scores",
          f"On the same frame scores, mean pooling gives test clip mAP {_f(mean_test['map'])} (accuracy "
          f"{_f(mean_test['accuracy'])}) and max pooling {_f(max_test['map'])} (accuracy {_f(max_test['accuracy'])}); "
          f"the best clip summary on validation is {best1} (test mAP {_f(metrics1[best1]['test']['map'])}).",
          step1["artifacts"])
    # 2. frames
    if step2.get("available") and step2.get("inside_mean") is not None:
        claim("frame_view",
              f"The frame view keeps what the clip summary averages away: on positive test clips the true class scores "
              f"{_f(step2['inside_mean'])} inside its events and {_f(step2['outside_mean'])} outside them, and its highest "
              f"frame lies inside one of its events for {step2['peak_inside']} of {step2['positive_pairs']} (clip, class) pairs.",
              step2["artifacts"])
    else:
        claim("frame_view", "Frame scores per class over time are plotted for sample clips (no strong labels on the test "
              "split to measure them against).", step2["artifacts"])
    # 3. weak-label training
    rules3 = step3["rules"]
    claim("weak_training",
          f"A weak-label CRNN was trained from clip labels only, once per pooling rule ({step3['epochs']} epochs, "
          f"{step3['train_clips']} training clips, seed {step3['seed']}{_sizes(step3)}); test clip mAP: "
          + ", ".join(f"{rule} {_f(item['test']['map'])}" for rule, item in rules3.items()) + ".",
          step3["artifacts"])
    # 4. boundaries and the choice
    selection = step4["selection"]
    if step4["available"]:
        per_rule = step4["per_rule"]
        chosen_summary = per_rule[chosen]["summary"]
        mean_summary = per_rule["mean"]["summary"]
        claim("boundaries",
              f"On {step4['positives']} positive test clips (negatives excluded), the {chosen} CRNN places onsets with a "
              f"median absolute error of {_f(chosen_summary['median_abs_onset_error'])} s "
              f"({_f(100 * chosen_summary['onset_within'] if chosen_summary['onset_within'] is not None else None, 0)} % "
              f"within 200 ms; offsets {_f(chosen_summary['median_abs_offset_error'])} s), collar F1 "
              f"{_f(per_rule[chosen]['point'].get('collar_f1'))}, PSDS1 {_f(per_rule[chosen]['point'].get('psds1'))}, "
              f"PSDS2 {_f(per_rule[chosen]['point'].get('psds2'))}; mean pooling: median onset error "
              f"{_f(mean_summary['median_abs_onset_error'])} s, collar F1 {_f(per_rule['mean']['point'].get('collar_f1'))}. "
              f"(Medians count missed events as infinitely wrong; {chosen_summary['events'] - chosen_summary['detected']} "
              f"of {chosen_summary['events']} events missed by {chosen}.)",
              [a for a in step4["artifacts"] if "boundary_metrics" in a or "error" in a or "aligned" in a or "around" in a])
        if step4["disagreements"]:
            claim("disagreements",
                  "Clip accuracy and boundary quality disagree: " + "; ".join(d["text"] for d in step4["disagreements"][:4]) + ".",
                  ["04_boundaries/boundary_metrics.tsv", "04_boundaries/boundary_metrics.json"])
        else:
            claim("disagreements", "Clip mAP and collar F1 rank the pooling rules the same way (no pair differs by more "
                  "than 0.02 in opposite directions).", ["04_boundaries/boundary_metrics.tsv"])
    else:
        claim("boundaries", f"Boundary inspection was not possible: {step4['reason']}.", ["04_boundaries/boundary_metrics.json"])
    claim("pooling_choice", f"Chosen pooling rule: {chosen} — {selection['basis']}. Rule: {selection['rule']}.",
          ["04_boundaries/boundary_metrics.json", "01_pooling/clip_metrics.tsv"])
    # 5. probe vs scratch
    frozen, scratch, difference = step5["frozen"], step5["scratch"], step5["difference"]
    encoder = step5["encoder"]
    probe_text = (f"Frozen encoder ({encoder['kind']}, {encoder['source']}, {_f(encoder['frame_rate'], 1)} frames/s, "
                  f"{encoder['embedding_size']}-dim) + probe vs scratch CRNN on the same split, classes "
                  f"{', '.join(step5['task_classes'])}: clip mAP {_with_ci(frozen, 'clip_map')} vs "
                  f"{_with_ci(scratch, 'clip_map')} (difference {_f(difference['clip_map']['value'])}, "
                  f"CI {_ci(difference['clip_map'])})")
    if step5.get("boundaries_available"):
        probe_text += (f"; collar F1 {_with_ci(frozen, 'collar_f1')} vs {_with_ci(scratch, 'collar_f1')}; onsets within "
                       f"200 ms {_with_ci(frozen, 'onset_within')} vs {_with_ci(scratch, 'onset_within')}")
    claim("probe_vs_scratch", probe_text + ". " + " ".join(step5.get("notes", [])), step5["artifacts"])
    # 6. adaptation
    adapt_text = f"Adaptation rule: {step6['rule']} Outcome: {step6['reason']}."
    if step6.get("ran"):
        adapt_text += (f" Adapted ({step6['top_block']}): clip mAP {_with_ci(step6['adapted'], 'clip_map')}"
                       + (f", collar F1 {_with_ci(step6['adapted'], 'collar_f1')}" if step5.get("boundaries_available") else "")
                       + f". Verdict: {step6['verdict']['reason']}.")
    elif step6.get("unavailable"):
        adapt_text += f" Not run: {step6['unavailable']}."
    claim("adaptation", adapt_text, step6["artifacts"])
    claim("decision", f"Decision: {decision['path']} — {decision['statement']}.", ["05_probe/comparison.tsv", *step6["artifacts"]])
    claim("next_change", f"Smallest next change worth testing: {change['text']} Why: {change['because']}.",
          ["04_boundaries/boundary_metrics.json", "05_probe/comparison.json", "06_adapt/adaptation.json"])
    dropped = list(results.get("dropped", []))
    claim("dropped", f"{len(dropped)} input row(s) or file(s) were dropped or changed while reading the data; every one is "
          "listed below with its file and line.", ["00_data/dropped.tsv"])

    for item in claims:
        missing = [path for path in item["artifacts"] if not (out / path).exists()]
        if missing:
            raise FileNotFoundError(f"report claim {item['id']!r} names artifacts that do not exist in {out}: {missing}")

    headline = _headline(results, chosen, decision)
    return {
        "version": REPORT_VERSION,
        "headline": headline,
        "run": dict(results["run"]),
        "data": results["data"],
        "pooling": {"chosen": chosen, "basis": selection["basis"], "rule": selection["rule"],
                    "same_frame_scores": step1, "trained": step3["rules"],
                    "artifacts": ["01_pooling/clip_metrics.tsv", "04_boundaries/boundary_metrics.json"]},
        "frames": step2,
        "boundaries": step4,
        "probe": step5,
        "adaptation": step6,
        "decision": decision,
        "next_change": change,
        "dropped": dropped,
        "claims": claims,
    }


def _headline(results: Mapping[str, Any], chosen: str, decision: Mapping[str, str]) -> dict:
    step4, step5, step6 = results["step4"], results["step5"], results["step6"]

    def summary(rule: str, key: str):
        item = step4["per_rule"].get(rule, {}).get("summary") or {}
        return item.get(key)

    def point(block: Mapping, key: str):
        return block["point"].get(key)

    return {
        "pooling_chosen": chosen,
        "median_abs_onset_s": {rule: summary(rule, "median_abs_onset_error") for rule in step4["per_rule"]},
        "collar_f1": step4["per_rule"][chosen]["point"].get("collar_f1"),
        "psds1": step4["per_rule"][chosen]["point"].get("psds1"),
        "psds2": step4["per_rule"][chosen]["point"].get("psds2"),
        "frozen": {"clip_map": point(step5["frozen"], "clip_map"), "clip_map_ci": step5["frozen"]["intervals"].get("clip_map"),
                   "collar_f1": point(step5["frozen"], "collar_f1"),
                   "collar_f1_ci": step5["frozen"]["intervals"].get("collar_f1")},
        "scratch": {"clip_map": point(step5["scratch"], "clip_map"),
                    "clip_map_ci": step5["scratch"]["intervals"].get("clip_map"),
                    "collar_f1": point(step5["scratch"], "collar_f1"),
                    "collar_f1_ci": step5["scratch"]["intervals"].get("collar_f1")},
        "encoder": step5["encoder"]["source"],
        "adaptation_triggered": step6["triggered"],
        "adaptation_ran": step6["ran"],
        "decision": decision["path"],
        "wall_seconds": results["run"].get("wall_seconds"),
    }


def headline_text(report: Mapping[str, Any]) -> str:
    """A few lines for the terminal: the numbers `make demo` ends with."""
    h = report["headline"]
    onset = ", ".join(f"{rule} {_f(value)} s" for rule, value in h["median_abs_onset_s"].items())
    frozen, scratch = h["frozen"], h["scratch"]
    return "\n".join([
        f"pooling chosen: {h['pooling_chosen']}; collar F1 {_f(h['collar_f1'])}, PSDS1 {_f(h['psds1'])}, PSDS2 {_f(h['psds2'])}",
        f"median |onset error| on positive clips: {onset}",
        f"frozen + probe: clip mAP {_f(frozen['clip_map'])} [{_ci(frozen['clip_map_ci'])}], collar F1 "
        f"{_f(frozen['collar_f1'])} [{_ci(frozen['collar_f1_ci'])}]",
        f"scratch:        clip mAP {_f(scratch['clip_map'])} [{_ci(scratch['clip_map_ci'])}], collar F1 "
        f"{_f(scratch['collar_f1'])} [{_ci(scratch['collar_f1_ci'])}]",
        f"adaptation: {'triggered' if h['adaptation_triggered'] else 'not triggered'}"
        f"{', ran' if h['adaptation_ran'] else ''}; decision: {h['decision']}",
    ])


# =========================================================================== markdown


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
        f"Seed {run['seed']}. Wall time {_f(run.get('wall_seconds'), 0)} s.",
        "",
        f"Channel policy: {data['channel_policy']}",
        "",
    ]
    for note in data.get("notes", []):
        lines.append(f"- note: {note}")
    sections = [
        ("1. Clip summary and pooling choice", ["pooling_same_scores", "pooling_choice"]),
        ("2. Frame-level behaviour", ["frame_view"]),
        ("3. Weak-label encoder", ["weak_training"]),
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
                  "| pooling | clip mAP | clip accuracy | median abs onset (s) | median abs offset (s) | onsets within 200 ms "
                  "| collar F1 | PSDS1 | PSDS2 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for rule, item in boundaries["per_rule"].items():
            point, summary = item["point"], item["summary"] or {}
            lines.append(f"| {rule}{' (chosen)' if rule == report['pooling']['chosen'] else ''} | {_f(point.get('clip_map'))} "
                         f"| {_f(point.get('clip_accuracy'))} | {_f(summary.get('median_abs_onset_error'))} "
                         f"| {_f(summary.get('median_abs_offset_error'))} | {_f(summary.get('onset_within'))} "
                         f"| {_f(point.get('collar_f1'))} | {_f(point.get('psds1'))} | {_f(point.get('psds2'))} |")
    probe = report["probe"]
    lines += ["", "### Frozen + probe vs scratch (95 % bootstrap intervals over test clips; difference paired)", "",
              "| metric | frozen + probe | scratch | frozen - scratch |", "|---|---|---|---|"]
    for metric in probe["frozen"]["point"]:
        lines.append(f"| {metric} | {_with_ci(probe['frozen'], metric)} | {_with_ci(probe['scratch'], metric)} "
                     f"| {_f(probe['difference'].get(metric, {}).get('value'))} [{_ci(probe['difference'].get(metric))}] |")
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
    json_path.write_text(json.dumps(_clean(report), indent=2, default=str, allow_nan=False) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value
