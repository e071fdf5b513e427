"""Step 4: boundaries on positive clips only, beside clip accuracy — the step-3 CRNNs on the test
split (onset/offset errors, collar F1, PSDS1/PSDS2), the pooling rule chosen on validation, and
where clip and boundary quality disagree (``boundary_metrics.tsv/json``, ``event_errors.tsv``,
``error_distributions.png``, ``onset_aligned_scores.png``, ``around_boundaries.png``).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import permutations

from audioenc.timing.boundaries import boundary_errors
from audioenc.timing.evaluation import ClipEvaluator, Evaluation
from audioenc.timing.pooling import POOLING_NAMES
from audioenc.timing.postprocess import choose_postprocessing
from audioenc.timing.workflow.artifacts import number, postprocessing_text, write_json, write_tsv
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.data import one_thread
from audioenc.timing.workflow.gates import chance_map, check_learned
from audioenc.timing.workflow.plots import plot_around_boundaries, plot_error_distributions, plot_onset_aligned
from audioenc.timing.workflow.results import BoundaryInspection, PoolingChoice, StepResults
from audioenc.timing.workflow.sections import Claim, ReportSection
from audioenc.timing.workflow.steps import step1_pooling, step3_weak

NAME = "boundaries"
FOLDER = "04_boundaries"
TITLE = "boundary inspection on positive clips only, beside clip accuracy"
HEADING = "4. Boundary evidence on positive clips"
METRICS_TSV = f"{FOLDER}/boundary_metrics.tsv"
METRICS_JSON = f"{FOLDER}/boundary_metrics.json"
INTERVAL_METRICS = ("clip_map", "clip_accuracy", "onset_within", "median_abs_onset")
"""Metrics of the per-rule table that get bootstrap intervals (collar F1's are costly: step 5)."""


def run(context: RunContext) -> BoundaryInspection:
    """Post-process each rule's CRNN (chosen on validation), evaluate it on the test split, gate
    it, and choose the rule on validation among those that pass."""
    data, settings = context.data, context.settings
    classes = data.classes
    raw = context.results.need("weak").predictions
    evaluation = settings.evaluation
    collars = evaluation.collars
    with one_thread():
        postprocessing = {
            rule: choose_postprocessing(
                raw[rule]["validation"], data.splits["validation"], classes, settings.postprocess, **collars
            )
            for rule in POOLING_NAMES
        }
        predictions = {
            rule: {name: postprocessing[rule].apply(raw[rule][name]) for name in ("validation", "test")}
            for rule in POOLING_NAMES
        }
        test = ClipEvaluator(
            data.splits["test"],
            classes,
            evaluation.bootstrap_resamples,
            seed=context.seed,
            onset_only_collars=evaluation.onset_only_collars,
            **collars,
        )
        valid = ClipEvaluator(
            data.splits["validation"], classes, resamples=1, seed=context.seed, onset_only_collars=(), **collars
        )
        per_rule = {
            rule: test.evaluate(
                predictions[rule]["test"], with_psds=test.boundaries_available, interval_metrics=INTERVAL_METRICS
            )
            for rule in POOLING_NAMES
        }
        selection_metrics = {
            rule: valid.evaluate(predictions[rule]["validation"], with_psds=False, interval_metrics=()).point
            for rule in POOLING_NAMES
        }
    chance = chance_map(test.targets)
    gates = {
        rule: check_learned(f"the {rule} CRNN", per_rule[rule], chance, evaluation.min_detected_share)
        for rule in POOLING_NAMES
    }
    passing = [rule for rule in POOLING_NAMES if gates[rule].passed]
    choice = choose_pooling(
        {rule: selection_metrics[rule] for rule in passing or POOLING_NAMES}, evaluation.pooling_ap_margin
    )
    disagreements = find_disagreements({rule: per_rule[rule].point for rule in passing})
    rows = []
    for rule in POOLING_NAMES:
        point, summary = per_rule[rule].point, _summary(per_rule[rule])
        rows.append(
            (
                rule,
                point.get("clip_map"),
                point.get("clip_accuracy"),
                summary.get("median_abs_onset_error"),
                summary.get("median_abs_offset_error"),
                summary.get("onset_within"),
                summary.get("offset_within"),
                point.get("collar_f1"),
                point.get("onset_f1_200ms"),
                point.get("onset_f1_50ms"),
                point.get("psds1"),
                point.get("psds2"),
                summary.get("detected"),
                summary.get("events"),
                postprocessing[rule].window_frames if postprocessing[rule].per_class is None else "per class",
                postprocessing[rule].threshold if postprocessing[rule].per_class is None else "per class",
                "yes" if gates[rule].passed else "no",
            )
        )
    write_tsv(
        context.path(FOLDER, "boundary_metrics.tsv"),
        (
            "pooling",
            "clip_map",
            "clip_accuracy",
            "median_abs_onset_s",
            "median_abs_offset_s",
            "onset_within_200ms",
            "offset_within_200ms",
            "collar_f1",
            "onset_f1_200ms",
            "onset_f1_50ms",
            "psds1",
            "psds2",
            "detected_events",
            "events",
            "median_frames",
            "threshold",
            "learned",
        ),
        rows,
    )
    artifacts = [f"{FOLDER}/boundary_metrics.tsv", f"{FOLDER}/boundary_metrics.json"]
    per_class_rows = [
        (rule, name, choice.window_seconds, choice.window_frames, choice.threshold, choice.own, choice.validation_f1)
        for rule in POOLING_NAMES
        if postprocessing[rule].per_class is not None
        for name, choice in postprocessing[rule].per_class.items()
    ]
    if per_class_rows:  # postprocess.per_class: the values each class used, beside the rows' "per class"
        write_tsv(
            context.path(FOLDER, "postprocessing_per_class.tsv"),
            ("pooling", "class", "median_s", "median_frames", "threshold", "own_choice", "validation_collar_f1"),
            per_class_rows,
        )
        artifacts.append(f"{FOLDER}/postprocessing_per_class.tsv")
    if test.boundaries_available:
        event_rows, errors_by_rule = [], {}
        for rule in POOLING_NAMES:
            scores = predictions[rule]["test"]
            errors = boundary_errors(
                scores.frame_scores,
                test.strong,
                classes,
                scores.frame_rate,
                threshold=scores.threshold,
                durations=data.splits["test"].durations,
            )
            errors_by_rule[rule] = errors
            event_rows += [
                (
                    rule,
                    e.filename,
                    e.label,
                    e.onset,
                    e.offset,
                    e.predicted_onset,
                    e.predicted_offset,
                    e.onset_error if e.detected else None,
                    e.offset_error if e.detected else None,
                )
                for e in errors
            ]
        write_tsv(
            context.path(FOLDER, "event_errors.tsv"),
            (
                "pooling",
                "file",
                "label",
                "onset",
                "offset",
                "predicted_onset",
                "predicted_offset",
                "onset_error",
                "offset_error",
            ),
            event_rows,
        )
        plots = [
            plot_error_distributions(context.path(FOLDER, "error_distributions.png"), errors_by_rule),
            plot_onset_aligned(context.path(FOLDER, "onset_aligned_scores.png"), predictions, test),
            plot_around_boundaries(
                context.path(FOLDER, "around_boundaries.png"),
                predictions,
                test,
                errors_by_rule,
                settings.run.plot_clips + 2,
            ),
        ]
        artifacts += [f"{FOLDER}/event_errors.tsv", *[context.rel(p) for p in plots]]
    result = BoundaryInspection(
        test.boundaries_available,
        test.boundary_reason,
        len(test.positives),
        per_rule,
        choice,
        tuple(disagreements),
        tuple(artifacts),
        postprocessing,
        gates,
        bool(passing),
    )
    write_json(
        context.path(FOLDER, "boundary_metrics.json"),
        {
            "what": "weak-label CRNNs of step 3 on the test split, each post-processed as chosen on validation (median "
            "filter, threshold): clip metrics on all clips, boundary metrics on positive clips only (onset/offset "
            "errors: audioenc.timing.boundaries; collar F1 and PSDS1/PSDS2: sed_scores_eval; onset-only F1 on every "
            "clip: sed_eval, HEAR's metric); sanity gates before the choice",
            "available": test.boundaries_available,
            "reason": test.boundary_reason,
            "per_rule": {rule: item.to_json() for rule, item in per_rule.items()},
            "selection": choice.to_json(),
            "postprocessing": {rule: item.to_json() for rule, item in postprocessing.items()},
            "gates": {rule: item.to_json() for rule, item in gates.items()},
            "pooling_decided": bool(passing),
            "disagreements": disagreements,
        },
    )
    if test.boundary_reason:
        context.log(f"  boundary metrics unavailable: {test.boundary_reason}")
    for rule in POOLING_NAMES:
        point, summary = per_rule[rule].point, _summary(per_rule[rule])
        context.log(
            f"  {rule:>14}: clip mAP {number(point.get('clip_map'))}, median |onset| "
            f"{number(summary.get('median_abs_onset_error'))} s, collar F1 {number(point.get('collar_f1'))}, "
            f"PSDS1 {number(point.get('psds1'))}"
        )
    if passing:
        context.log(f"  chosen pooling: {choice.chosen} ({choice.basis})")
    else:
        context.log(
            f"  no pooling decision: no rule's CRNN passed the sanity gates ({gates[choice.chosen].reason}); "
            f"{choice.chosen} is carried on provisionally"
        )
    for item in disagreements:
        context.log(f"  disagreement: {item['text']}")
    return result


def report_section(result: BoundaryInspection, results: StepResults) -> ReportSection:
    """The boundary evidence, the disagreements, the pooling choice (in the note's pooling section,
    with step 1's and step 3's evidence in ``report.json``'s ``pooling``), the headline's pooling
    numbers and the per-rule table."""
    pooling, weak = results.need(step1_pooling.NAME), results.need(step3_weak.NAME)
    chosen = result.chosen
    claims = [*_boundary_claims(result), _choice_claim(result, pooling.artifacts[0])]
    content = {
        "chosen": chosen,
        "decision": chosen if result.decided else "none",
        "no_decision": None if result.decided else result.gates[chosen].reason,
        "basis": result.selection.basis,
        "rule": result.selection.rule,
        "same_frame_scores": pooling.to_json(),
        "trained": weak.to_json()["rules"],
        "artifacts": [pooling.artifacts[0], METRICS_JSON],
    }

    def onset(rule: str) -> float | None:
        summary = result.per_rule[rule].boundary.summary
        return summary.median_abs_onset_error if summary is not None else None

    point = result.per_rule[chosen].point
    headline = {
        "pooling_chosen": chosen,
        "median_abs_onset_s": {rule: onset(rule) for rule in result.per_rule},
        "collar_f1": point.get("collar_f1"),
        "psds1": point.get("psds1"),
        "psds2": point.get("psds2"),
    }
    boundaries = result.to_json()
    return ReportSection(
        json={"pooling": content, "boundaries": boundaries},
        headline=headline,
        claims=tuple(claims),
        tables=_table(boundaries, chosen),
    )


def _boundary_claims(result: BoundaryInspection) -> list[Claim]:
    """The boundary numbers of the chosen rule against mean pooling, and where clip and boundary
    quality disagree."""
    if not result.available:
        return [
            Claim("boundaries", f"Boundary inspection was not possible: {result.reason}.", (METRICS_JSON,), HEADING)
        ]
    chosen = result.chosen
    evaluation = result.per_rule[chosen]
    summary, point = evaluation.boundary.summary, evaluation.point
    mean_summary = result.per_rule["mean"].boundary.summary
    postprocessing = postprocessing_text(result.postprocessing[chosen]) if chosen in result.postprocessing else "none"
    text = (
        f"On {result.positives} positive test clips (negatives excluded), the {chosen} CRNN places onsets with "
        f"a median absolute error of {number(summary.median_abs_onset_error)} s after its post-processing "
        f"({postprocessing}) ({number(100 * summary.onset_within, 0)} % within 200 ms; offsets "
        f"{number(summary.median_abs_offset_error)} s), collar F1 {number(point.get('collar_f1'))}, PSDS1 "
        f"{number(point.get('psds1'))}, PSDS2 {number(point.get('psds2'))}, onset-only F1 (HEAR) "
        f"{number(point.get('onset_f1_200ms'))} at 200 ms and {number(point.get('onset_f1_50ms'))} at 50 ms; mean "
        f"pooling: median onset error {number(mean_summary.median_abs_onset_error)} s, collar F1 "
        f"{number(result.per_rule['mean'].point.get('collar_f1'))}. (Medians count missed events as infinitely "
        f"wrong; {summary.events - summary.detected} of {summary.events} events missed by {chosen}.)"
    )
    shown = tuple(
        path
        for path in result.artifacts
        if "boundary_metrics" in path or "error" in path or "aligned" in path or "around" in path
    )
    claims = [Claim("boundaries", text, shown, HEADING)]
    if result.disagreements:
        claims.append(
            Claim(
                "disagreements",
                "Clip accuracy and boundary quality disagree: "
                + "; ".join(d["text"] for d in result.disagreements[:4])
                + ".",
                (METRICS_TSV, METRICS_JSON),
                HEADING,
            )
        )
    else:
        claims.append(
            Claim(
                "disagreements",
                "Clip mAP and collar F1 rank the pooling rules the same way (no pair "
                "differs by more than 0.02 in opposite directions).",
                (METRICS_TSV,),
                HEADING,
            )
        )
    return claims


def _choice_claim(result: BoundaryInspection, clip_table: str) -> Claim:
    """The pooling rule chosen (or that none could be), under the note's pooling heading."""
    chosen, selection = result.chosen, result.selection
    if result.decided:
        failed = [gate.reason for gate in result.gates.values() if not gate.passed]
        return Claim(
            "pooling_choice",
            f"Chosen pooling rule: {chosen} — {selection.basis}. Rule: {selection.rule}."
            + (f" Left out by the sanity gates: {'; '.join(failed)}." if failed else ""),
            (METRICS_JSON, clip_table),
            step1_pooling.HEADING,
        )
    return Claim(
        "pooling_choice",
        f"No pooling decision: no rule's CRNN passed the sanity gates "
        f"({result.gates[chosen].reason}). Steps 5-6 carry {chosen} (the rule the choosing rule picks among "
        "all six) on only to show their evidence.",
        (METRICS_JSON, METRICS_TSV),
        step1_pooling.HEADING,
    )


def _table(boundaries: dict, chosen: str) -> tuple[str, ...]:
    """Clip and boundary metrics of every rule side by side (none without boundary metrics)."""
    if not boundaries.get("available"):
        return ()
    lines = [
        "",
        "### Clip and boundary metrics side by side (test split; boundaries on positive clips only)",
        "",
        "| pooling | learned | clip mAP | clip accuracy | median abs onset (s) | median abs offset (s) "
        "| onsets within 200 ms | collar F1 | onset F1 200 ms | PSDS1 | PSDS2 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rule, item in boundaries["per_rule"].items():
        point, summary = item["point"], item["summary"] or {}
        learned = "yes" if boundaries.get("gates", {}).get(rule, {}).get("passed", True) else "no"
        lines.append(
            f"| {rule}{' (chosen)' if rule == chosen else ''} | {learned} "
            f"| {number(point.get('clip_map'))} "
            f"| {number(point.get('clip_accuracy'))} | {number(summary.get('median_abs_onset_error'))} "
            f"| {number(summary.get('median_abs_offset_error'))} | {number(summary.get('onset_within'))} "
            f"| {number(point.get('collar_f1'))} | {number(point.get('onset_f1_200ms'))} "
            f"| {number(point.get('psds1'))} | {number(point.get('psds2'))} |"
        )
    return tuple(lines)


def _summary(evaluation: Evaluation) -> dict:
    summary = evaluation.boundary.summary
    return summary.as_dict() if summary is not None else {}


# =========================================================================== the decisions of step 4


def choose_pooling(validation: Mapping[str, Mapping[str, float | None]], ap_margin: float = 0.10) -> PoolingChoice:
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
        The :class:`PoolingChoice` (its ``validation_metrics`` are ``validation``).
    """
    if not validation:
        raise ValueError("no pooling rules to choose from")
    maps = {rule: metrics.get("clip_map") for rule, metrics in validation.items()}
    defined = [value for value in maps.values() if value is not None]
    if not defined:
        raise ValueError("no rule has a defined validation clip mAP (no positive validation clip?)")
    best_map = max(defined)
    candidates = [rule for rule, value in maps.items() if value is not None and value >= best_map - ap_margin]
    statement = (
        f"among the rules whose validation clip mAP is within {ap_margin:.2f} of the best, the highest validation "
        "collar F1 on positive clips (ties: onsets within 200 ms, then mAP); clip mAP alone without strong labels"
    )
    with_f1 = [rule for rule in candidates if validation[rule].get("collar_f1") is not None]
    if with_f1:

        def key(rule: str) -> tuple:
            metrics = validation[rule]
            return (metrics["collar_f1"], metrics.get("onset_within") or 0.0, metrics.get("clip_map") or 0.0)

        chosen = max(with_f1, key=key)
        basis = (
            f"validation collar F1 {validation[chosen]['collar_f1']:.3f}, the highest among {', '.join(candidates)} "
            f"(clip mAP within {ap_margin:.2f} of the best, {best_map:.3f})"
        )
    else:
        chosen = max(candidates, key=lambda rule: maps[rule])
        basis = f"validation clip mAP {maps[chosen]:.3f} (no boundary metric: no strong validation labels)"
    return PoolingChoice(chosen, basis, statement, tuple(candidates), {rule: dict(m) for rule, m in validation.items()})


def find_disagreements(
    table: Mapping[str, Mapping[str, float | None]],
    margin: float = 0.02,
    clip_key: str = "clip_map",
    boundary_key: str = "collar_f1",
) -> list[dict]:
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
            found.append(
                {
                    "kind": "pair",
                    "better_clip": a,
                    "better_boundary": b,
                    "clip_gap": clip_gap,
                    "boundary_gap": boundary_gap,
                    "text": f"{a} beats {b} on clip mAP by {clip_gap:.3f} ({usable[a][clip_key]:.3f} vs "
                    f"{usable[b][clip_key]:.3f}) "
                    f"but {b} beats {a} on collar F1 by {boundary_gap:.3f} ({usable[b][boundary_key]:.3f} vs "
                    f"{usable[a][boundary_key]:.3f})",
                }
            )
    best_clip = max(usable, key=lambda rule: usable[rule][clip_key])
    best_boundary = max(usable, key=lambda rule: usable[rule][boundary_key])
    clip_lead = usable[best_clip][clip_key] - usable[best_boundary][clip_key]
    boundary_lead = usable[best_boundary][boundary_key] - usable[best_clip][boundary_key]
    if best_clip != best_boundary and clip_lead > margin and boundary_lead > margin:
        found.insert(
            0,
            {
                "kind": "best",
                "better_clip": best_clip,
                "better_boundary": best_boundary,
                "clip_gap": clip_lead,
                "boundary_gap": boundary_lead,
                "text": f"the best clip mAP ({best_clip}, {usable[best_clip][clip_key]:.3f}) and the best collar F1 "
                f"({best_boundary}, {usable[best_boundary][boundary_key]:.3f}) come from different pooling rules",
            },
        )
    return found
