"""Step 6: light adaptation, only if the frozen path stops short (the rule:
:class:`audioenc.timing.adapt.AdaptationRule`): ``adaptation.json``, and when it ran ``adapted/``
and ``comparison.png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from audioenc.audio.io import read_clip
from audioenc.errors import UserError
from audioenc.hear import TopSplit
from audioenc.timing.adapt import (
    AdaptationVerdict,
    adaptation_split,
    check_adaptation_split,
    frame_grid,
    train_adapted,
)
from audioenc.timing.encoders import parameters_fingerprint, same_parameters
from audioenc.timing.fitting import predict_frames
from audioenc.timing.postprocess import PostProcessing, choose_postprocessing
from audioenc.timing.workflow.artifacts import save_module, with_ci, write_json
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.data import SPLITS, WorkflowData, one_thread
from audioenc.timing.workflow.plots import plot_comparison
from audioenc.timing.workflow.results import AdaptationOutcome, FrozenPath, StepResults, intervals_json
from audioenc.timing.workflow.sections import Claim, ReportSection
from audioenc.timing.workflow.steps import step4_boundaries, step5_probe

NAME = "adaptation"
FOLDER = "06_adapt"
TITLE = "light adaptation, only if the frozen path stops short"
HEADING = "6. Adapt or not"
DECISION_HEADING = "7. Decision and the smallest next change"


def run(context: RunContext) -> AdaptationOutcome:
    """Apply the trigger; when it fires, unfreeze the top block and judge the gain."""
    settings, data = context.settings, context.data
    rule = settings.rule
    comparison = context.results.need("probe")
    path = comparison.frozen_path
    trigger = rule.should_adapt(comparison.frozen.point, comparison.scratch.point)
    details = {"rule": rule.statement(), "margins": asdict(rule), **trigger.to_json(), "ran": False}
    scratch_gate = comparison.gates["scratch"]
    if not scratch_gate.passed:
        reason = (
            f"no decision: the scratch baseline learned nothing the comparison could rest on ({scratch_gate.reason})"
        )
        details.update(no_decision=reason)
        context.log(f"  {reason}")
        write_json(context.path(FOLDER, "adaptation.json"), details)
        return AdaptationOutcome(
            rule.statement(), trigger, no_decision=reason, artifacts=(f"{FOLDER}/adaptation.json",)
        )
    outcome = AdaptationOutcome(rule.statement(), trigger, artifacts=(f"{FOLDER}/adaptation.json",))
    context.log(f"  {trigger.reason}")
    top_layers = settings.probe.adapt_top_layers
    split, reason = adaptation_split(path.handle, top_layers) if trigger.triggered else (None, "")
    if split is not None:
        with one_thread():
            clips, reason = _lower_activations(split, data, path)
        split = split if clips is not None else None
    if trigger.triggered and split is None:
        details["unavailable"] = reason
        outcome = AdaptationOutcome(outcome.rule, trigger, unavailable=reason, artifacts=outcome.artifacts)
        context.log(f"  adaptation not available: {reason}")
    elif split is not None:
        with one_thread():
            first, lower = data.splits["train"].files[0], clips.lower
            rate, task = path.embeddings["train"].frame_rate, comparison.task_classes
            grid = frame_grid(path.handle, rate)
            error = check_adaptation_split(
                split,
                read_clip(data.splits["train"].audio_dir / first, path.handle.sample_rate),
                path.embeddings["train"].frames[first],
                f"{path.handle.source} on {first}",
                grid,
            )
            adapted, history = train_adapted(
                split,
                path.probe,
                lower["train"],
                path.targets["train"],
                lower["validation"],
                path.targets["validation"],
                config=settings.probe,
                seed=context.seed,
            )
            if not same_parameters(path.fingerprint, parameters_fingerprint(path.handle.model)):
                raise RuntimeError("internal: adaptation changed the original encoder (it must train a copy)")
            evaluation = settings.evaluation
            # the adapted model scores the encoder's own frames; the grid is where the frozen path's were
            postprocessing = choose_postprocessing(
                grid.predictions(predict_frames(adapted, lower["validation"], rate, task), clips.samples["validation"]),
                data.splits["validation"],
                task,
                settings.postprocess,
                **evaluation.collars,
            )
            adapted_test = postprocessing.apply(
                grid.predictions(predict_frames(adapted, lower["test"], rate, task), clips.samples["test"])
            )
            adapted_metrics = path.evaluator.evaluate(adapted_test, with_psds=path.evaluator.boundaries_available)
            gain = path.evaluator.paired_difference(adapted_test, path.frozen_test)
        verdict = rule.verdict(trigger.short_on, gain)
        if history.best_epoch == -1:
            verdict = AdaptationVerdict(
                verdict.justified,
                "no adapted epoch lowered the validation loss below the frozen "
                "start, so the adapted model is the frozen encoder + probe; " + verdict.reason,
            )
        save_module(
            adapted,
            context.path(FOLDER, "adapted"),
            {
                "kind": "audioenc.adapted_top_and_probe",
                "top": split.description,
                "classes": list(comparison.task_classes),
                "pooling": comparison.pooling,
                "lr_factor": settings.probe.adapt_lr_factor,
                "max_epochs": settings.probe.adapt_epochs,
                "top_layers": top_layers,
            },
        )
        plot = plot_comparison(
            context.path(FOLDER, "comparison.png"),
            {"frozen + probe": comparison.frozen, "adapted": adapted_metrics, "scratch": comparison.scratch},
            "frozen vs adapted vs scratch (test split, 95 % bootstrap intervals over clips)",
        )
        details.update(
            ran=True,
            top_block=split.description,
            top_layers=top_layers,
            layer_weights=adapted.probe.layer_weights().to_json() if adapted.probe.layers > 1 else None,
            cut_check_relative_error=error,
            learning_rates={
                "top": settings.probe.learning_rate * settings.probe.adapt_lr_factor,
                "probe": settings.probe.learning_rate,
            },
            epochs=settings.probe.adapt_epochs,
            history=history.as_dict(),
            best_epoch=history.best_epoch,
            adapted=adapted_metrics.to_json(),
            gain_over_frozen=intervals_json(gain),
            verdict=verdict.to_json(),
            postprocessing=postprocessing.to_json(),
            original_encoder_unchanged=True,
        )
        outcome = AdaptationOutcome(
            outcome.rule,
            trigger,
            None,
            split.description,
            verdict,
            adapted_metrics,
            gain,
            (*outcome.artifacts, context.rel(plot), f"{FOLDER}/adapted/model.safetensors"),
            postprocessing=postprocessing,
            history=history,
        )
        context.log(f"  adapted ({split.description}): {verdict.reason}")
    write_json(context.path(FOLDER, "adaptation.json"), details)
    return outcome


@dataclass(frozen=True)
class _CutClips:
    """Every clip below the cut: ``lower[split][file]`` ``[D, P]`` and ``samples[split][file]``, its length."""

    lower: dict[str, dict[str, np.ndarray]]
    samples: dict[str, dict[str, int]]


def _lower_activations(split: TopSplit, data: WorkflowData, path: FrozenPath) -> tuple[_CutClips | None, str]:
    """The frozen lower activations of every clip of every split, or ``(None, reason)`` when a clip cannot
    go through the cut (the encoder's :class:`~audioenc.errors.UserError`, e.g. a clip longer than the one
    window a transformer's top layers take)."""
    clips = _CutClips({}, {})
    try:
        for name in SPLITS:
            clips.lower[name], clips.samples[name] = {}, {}
            for filename in data.splits[name].files:
                audio = read_clip(data.splits[name].audio_dir / filename, path.handle.sample_rate)
                clips.lower[name][filename], clips.samples[name][filename] = split.lower(audio), len(audio)
    except UserError as error:
        return None, f"the encoder's top block(s) cannot take this corpus's clips: {error}"
    return clips, ""


# =========================================================================== the decision


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
        return Decision(
            "scratch",
            f"use the scratch model: the frozen path stops short on {short} "
            f"({trigger.reason}) and adaptation could not be tried ({adaptation.unavailable})",
        )
    if adaptation.verdict.justified:
        return Decision("adapted", "adapt the encoder (top block unfrozen): " + adaptation.verdict.reason)
    return Decision(
        "scratch",
        f"use the scratch model: the frozen path stops short on {short} "
        f"({trigger.reason}) and adapting the top block does not justify changing the encoder "
        f"({adaptation.verdict.reason})",
    )


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
    boundaries, adaptation = results.need(step4_boundaries.NAME), results.need(NAME)
    if adaptation.no_decision:
        scratch = results.need(step5_probe.NAME).gates.get("scratch")
        advice = scratch.advice if scratch is not None else "train longer or add data"
        return NextChange(f"Make the scratch baseline learn first: {advice}; then rerun.", adaptation.no_decision)
    if not boundaries.available:
        return NextChange(
            "Add strong labels (event onsets and offsets) for the evaluation split and rerun.",
            f"boundary metrics were not computed: {boundaries.reason}",
        )
    chosen = boundaries.chosen
    summary = boundaries.per_rule[chosen].boundary.summary
    events, detected = (summary.events, summary.detected) if summary is not None else (0, 0)
    folder = step4_boundaries.FOLDER
    if events and detected / events < 2 / 3:
        used = _thresholds_used(boundaries.postprocessing.get(chosen))
        return NextChange(
            f"Add lower decision thresholds to postprocess.thresholds (the {chosen} CRNN used {used}) "
            f"and re-read {folder}: a read-out change, no retraining.",
            f"{events - detected} of {events} events on positive test clips have no frame above "
            f"{used}, so their boundaries are counted as missed",
        )
    trigger = adaptation.trigger
    if trigger.triggered and not adaptation.ran:
        return NextChange(
            "Make the encoder's top block trainable (a codec or CRNN folder, or a HEAR module that exposes "
            "its layers) and rerun step 6.",
            adaptation.unavailable or "adaptation was not available",
        )
    if trigger.triggered and adaptation.ran and not adaptation.verdict.justified:
        return NextChange(
            "Probe the same frozen frames with temporal context (a kernel-5 convolution over frames "
            "instead of the per-frame layer): if boundaries improve, the timing is in the frame sequence "
            "but not in single frames; if not, probe a layer below the top block.",
            f"the frozen path stopped short of scratch ({_gaps_text(trigger.gaps)}) and unfreezing the "
            "top block did not clear the rule",
        )
    if adaptation.ran and adaptation.verdict.justified:
        return NextChange(
            "Rerun with a second seed (--seed 1) and keep the adapted encoder only if the gain holds.",
            "adaptation cleared the rule on one seed: " + adaptation.verdict.reason,
        )
    return NextChange(
        f"Keep the frozen encoder and probe; next, compare the {chosen} boundary plot with the runner-up "
        f"rule's on the clips where they disagree ({folder}/around_boundaries.png).",
        f"the frozen path is within the margins of scratch ({_gaps_text(trigger.gaps)})",
    )


def _gaps_text(gaps: Mapping[str, float]) -> str:
    return ", ".join(f"scratch - frozen {metric} {value:+.3f}" for metric, value in gaps.items()) or "no gaps"


def report_section(result: AdaptationOutcome, results: StepResults) -> ReportSection:
    """The adaptation rule and its outcome, then the note's conclusion: the path the evidence
    supports and the smallest next change worth testing."""
    boundaries_available = results.need(step5_probe.NAME).boundaries_available
    decision, change = decide_path(result), next_change(results)
    text = f"Adaptation rule: {result.rule} Outcome: {result.no_decision or result.trigger.reason}."
    if result.ran:
        text += (
            f" Adapted ({result.top_block}): clip mAP {with_ci(result.adapted, 'clip_map')}"
            + (f", collar F1 {with_ci(result.adapted, 'collar_f1')}" if boundaries_available else "")
            + f". Verdict: {result.verdict.reason}."
        )
    elif result.unavailable:
        text += f" Not run: {result.unavailable}."
    claims = (
        Claim("adaptation", text, result.artifacts, HEADING),
        Claim(
            "decision",
            f"Decision: {decision.path} — {decision.statement}.",
            (step5_probe.COMPARISON_TSV, *result.artifacts),
            DECISION_HEADING,
        ),
        Claim(
            "next_change",
            f"Smallest next change worth testing: {change.text} Why: {change.because}.",
            (step4_boundaries.METRICS_JSON, step5_probe.COMPARISON_JSON, f"{FOLDER}/adaptation.json"),
            DECISION_HEADING,
        ),
    )
    headline = {
        "adaptation_triggered": result.trigger.triggered,
        "adaptation_ran": result.ran,
        "decision": decision.path,
    }
    return ReportSection(
        json={"adaptation": result.to_json(), "decision": decision.to_json(), "next_change": change.to_json()},
        headline=headline,
        claims=claims,
    )


def _thresholds_used(postprocessing: PostProcessing | None) -> str:
    """The decision threshold(s) a system's post-processing used, in words: ``0.3``, or with per-class
    post-processing ``per-class thresholds 0.2-0.6`` (the shared value would misstate what was applied)."""
    if postprocessing is None:
        return "0.5"
    if postprocessing.per_class is None:
        return f"{postprocessing.threshold:g}"
    values = sorted({choice.threshold for choice in postprocessing.per_class.values()})
    return f"per-class thresholds {values[0]:g}-{values[-1]:g}" if len(values) > 1 else f"{values[0]:g} (every class)"
