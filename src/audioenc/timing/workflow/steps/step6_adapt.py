"""Step 6: light adaptation, only if the frozen path stops short (the rule:
:class:`audioenc.timing.adapt.AdaptationRule`): ``adaptation.json``, and when it ran ``adapted/``
and ``comparison.png``.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from audioenc.audio.io import read_clip
from audioenc.timing.adapt import (
    AdaptationVerdict,
    adaptation_split,
    check_adaptation_split,
    train_adapted,
)
from audioenc.timing.encoders import parameters_fingerprint, same_parameters
from audioenc.timing.fitting import predict_frames
from audioenc.timing.postprocess import choose_postprocessing
from audioenc.timing.workflow.artifacts import save_module, write_json
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.results import AdaptationOutcome, intervals_json
from audioenc.timing.workflow.data import SPLITS, one_thread
from audioenc.timing.workflow.plots import plot_comparison

FOLDER = "06_adapt"
TITLE = "light adaptation, only if the frozen path stops short"


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
        reason = (f"no decision: the scratch baseline learned nothing the comparison could rest on "
                  f"({scratch_gate.reason})")
        details.update(no_decision=reason)
        context.log(f"  {reason}")
        write_json(context.path(FOLDER, "adaptation.json"), details)
        return AdaptationOutcome(rule.statement(), trigger, no_decision=reason, artifacts=(f"{FOLDER}/adaptation.json",))
    outcome = AdaptationOutcome(rule.statement(), trigger, artifacts=(f"{FOLDER}/adaptation.json",))
    context.log(f"  {trigger.reason}")
    split, reason = adaptation_split(path.handle) if trigger.triggered else (None, "")
    if trigger.triggered and split is None:
        details["unavailable"] = reason
        outcome = AdaptationOutcome(outcome.rule, trigger, unavailable=reason, artifacts=outcome.artifacts)
        context.log(f"  adaptation not available: {reason}")
    elif split is not None:
        with one_thread():
            first = data.splits["train"].files[0]

            def audio_of(name: str, filename: str) -> np.ndarray:
                return read_clip(data.splits[name].audio_dir / filename, path.handle.sample_rate)

            if not all(e.identity_map for e in path.embeddings.values()):
                raise RuntimeError("internal: adaptation needs embeddings on the encoder's own frames")
            error = check_adaptation_split(split, audio_of("train", first), path.embeddings["train"].frames[first],
                                           f"{path.handle.source} on {first}")
            lower = {name: {f: split.lower(audio_of(name, f)) for f in data.splits[name].files} for name in SPLITS}
            adapted, history = train_adapted(split, path.probe, lower["train"], path.targets["train"],
                                             lower["validation"], path.targets["validation"], config=settings.probe,
                                             seed=context.seed)
            if not same_parameters(path.fingerprint, parameters_fingerprint(path.handle.model)):
                raise RuntimeError("internal: adaptation changed the original encoder (it must train a copy)")
            rate, task = path.embeddings["train"].frame_rate, comparison.task_classes
            evaluation = settings.evaluation
            postprocessing = choose_postprocessing(
                predict_frames(adapted, lower["validation"], rate, task), data.splits["validation"], task,
                settings.postprocess, **evaluation.collars)
            adapted_test = postprocessing.apply(predict_frames(adapted, lower["test"], rate, task))
            adapted_metrics = path.evaluator.evaluate(adapted_test, with_psds=path.evaluator.boundaries_available)
            gain = path.evaluator.paired_difference(adapted_test, path.frozen_test)
        verdict = rule.verdict(trigger.short_on, gain)
        if history.best_epoch == -1:
            verdict = AdaptationVerdict(verdict.justified, "no adapted epoch lowered the validation loss below the frozen "
                                        "start, so the adapted model is the frozen encoder + probe; " + verdict.reason)
        save_module(adapted, context.path(FOLDER, "adapted"), {
            "kind": "audioenc.adapted_top_and_probe", "top": split.description, "classes": list(comparison.task_classes),
            "pooling": comparison.pooling, "lr_factor": settings.probe.adapt_lr_factor,
            "max_epochs": settings.probe.adapt_epochs})
        plot = plot_comparison(context.path(FOLDER, "comparison.png"),
                               {"frozen + probe": comparison.frozen, "adapted": adapted_metrics,
                                "scratch": comparison.scratch},
                               "frozen vs adapted vs scratch (test split, 95 % bootstrap intervals over clips)")
        details.update(
            ran=True, top_block=split.description, cut_check_relative_error=error,
            learning_rates={"top": settings.probe.learning_rate * settings.probe.adapt_lr_factor,
                            "probe": settings.probe.learning_rate},
            epochs=settings.probe.adapt_epochs, history=history.as_dict(), best_epoch=history.best_epoch,
            adapted=adapted_metrics.to_json(), gain_over_frozen=intervals_json(gain), verdict=verdict.to_json(),
            postprocessing=postprocessing.to_json(), original_encoder_unchanged=True,
        )
        outcome = AdaptationOutcome(outcome.rule, trigger, None, split.description, verdict, adapted_metrics, gain,
                                    (*outcome.artifacts, context.rel(plot), f"{FOLDER}/adapted/model.safetensors"),
                                    postprocessing=postprocessing, history=history)
        context.log(f"  adapted ({split.description}): {verdict.reason}")
    write_json(context.path(FOLDER, "adaptation.json"), details)
    return outcome
