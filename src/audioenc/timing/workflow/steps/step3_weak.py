"""Step 3: the weak-label encoder — the CRNN of :mod:`audioenc.timing.weak` trained from clip
labels only, once per pooling rule, same split, same seed (``<rule>/`` weights,
``training.json``, ``training_curves.png``).
"""

from __future__ import annotations

from dataclasses import asdict

from audioenc.timing.evaluation import clip_metrics, clip_targets
from audioenc.timing.pooling import POOLING_NAMES
from audioenc.timing.weak import predict, save_weak_encoder
from audioenc.timing.workflow.artifacts import write_json
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.results import RuleTraining, WeakTraining
from audioenc.timing.workflow.data import one_thread
from audioenc.timing.workflow.jobs import WeakJob, train_jobs
from audioenc.timing.workflow.plots import plot_histories

FOLDER = "03_weak"
TITLE = "weak-label CRNN, trained from clip labels only, once per pooling rule"


def run(context: RunContext) -> WeakTraining:
    """Train one CRNN per pooling rule (in ``settings.workers`` processes) and score both splits."""
    settings, data = context.settings, context.data
    jobs = [WeakJob(rule, rule, data.classes, context.seed, settings.weak, settings.crnn) for rule in POOLING_NAMES]
    trained = train_jobs(jobs, data, settings.run.workers, context.log)
    rules, models, predictions = {}, {}, {}
    with one_thread():
        for rule in POOLING_NAMES:
            model, history = trained[rule].model, trained[rule].history
            save_weak_encoder(model, context.path(FOLDER, rule))
            write_json(context.path(FOLDER, rule, "history.json"), history.as_dict())
            models[rule] = model
            predictions[rule] = {name: predict(model, data.features[name].log_mels) for name in ("validation", "test")}
            metrics = {
                name: clip_metrics(predictions[rule][name].stacked_clip_scores(data.splits[name].files),
                                   clip_targets(data.splits[name], data.classes), data.classes)
                for name in ("validation", "test")
            }
            rules[rule] = RuleTraining(trained[rule].seconds, history, model.frame_rate, metrics["validation"],
                                       metrics["test"])
            if history.still_improving:
                context.log(f"  {rule}: stopped by {history.stopped.replace('_', ' ')} after {len(history.valid_loss)} "
                            "epochs with the validation loss still falling")
    plot = plot_histories(context.path(FOLDER, "training_curves.png"), {rule: item.history for rule, item in rules.items()})
    result = WeakTraining(
        settings.crnn, settings.weak, context.seed, tuple(data.splits["train"].files), rules,
        (f"{FOLDER}/training.json", context.rel(plot), *[f"{FOLDER}/{rule}/model.safetensors" for rule in POOLING_NAMES]),
        models, predictions,
    )
    write_json(context.path(FOLDER, "training.json"), {
        "what": "weak-label CRNN (audioenc.timing.weak) trained from clip labels only, one run per pooling rule, "
                "same training/validation split, same seed; weights of the best validation-loss epoch",
        "crnn": asdict(settings.crnn),
        "budget": asdict(settings.weak),
        "seed": context.seed,
        "train_clips": list(result.train_clips),
        "rules": {rule: item.to_json(curves=True) for rule, item in rules.items()},
    })
    return result
