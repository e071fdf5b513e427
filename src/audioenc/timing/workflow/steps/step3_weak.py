"""Step 3: the weak-label encoder — the CRNN of :mod:`audioenc.timing.weak` trained from clip
labels only, once per pooling rule, same split, same seed (``<rule>/`` weights,
``training.json``, ``training_curves.png``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from audioenc.timing.evaluation import clip_metrics, clip_targets
from audioenc.timing.fitting import TrainingHistory
from audioenc.timing.pooling import POOLING_NAMES
from audioenc.timing.weak import predict, save_weak_encoder
from audioenc.timing.workflow.artifacts import number, write_json
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.data import one_thread
from audioenc.timing.workflow.jobs import WeakJob, train_jobs, train_shared
from audioenc.timing.workflow.plots import plot_histories
from audioenc.timing.workflow.results import RuleTraining, StepResults, WeakTraining
from audioenc.timing.workflow.sections import Claim, ReportSection

NAME = "weak"
FOLDER = "03_weak"
TITLE = "weak-label CRNN, trained from clip labels only, once per pooling rule"
HEADING = "3. Weak-label encoder"


def run(context: RunContext) -> WeakTraining:
    """Train one CRNN per pooling rule (in ``settings.workers`` processes) and score both splits."""
    settings, data = context.settings, context.data
    shared = settings.weak.shared_trunk and not settings.augment.active
    if shared:
        trained = train_shared(
            POOLING_NAMES, data.classes, context.seed, settings.weak, settings.crnn, data, context.log
        )
    else:
        jobs = [
            WeakJob(rule, rule, data.classes, context.seed, settings.weak, settings.crnn, settings.augment)
            for rule in POOLING_NAMES
        ]
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
                name: clip_metrics(
                    predictions[rule][name].stacked_clip_scores(data.splits[name].files),
                    clip_targets(data.splits[name], data.classes),
                    data.classes,
                )
                for name in ("validation", "test")
            }
            rules[rule] = RuleTraining(
                trained[rule].seconds, history, model.frame_rate, metrics["validation"], metrics["test"]
            )
            if history.still_improving:
                context.log(
                    f"  {rule}: stopped by {history.stopped.replace('_', ' ')} after {len(history.valid_loss)} "
                    "epochs with the validation loss still falling"
                )
    context.log(_parameter_line(settings.crnn.preset, {rule: model.parameter_count for rule, model in models.items()}))
    plot = plot_histories(
        context.path(FOLDER, "training_curves.png"), {rule: item.history for rule, item in rules.items()}
    )
    result = WeakTraining(
        settings.crnn,
        settings.weak,
        context.seed,
        tuple(data.splits["train"].files),
        rules,
        (
            f"{FOLDER}/training.json",
            context.rel(plot),
            *[f"{FOLDER}/{rule}/model.safetensors" for rule in POOLING_NAMES],
        ),
        models,
        predictions,
        shared_trunk=shared,
    )
    write_json(
        context.path(FOLDER, "training.json"),
        {
            "what": "weak-label CRNN (audioenc.timing.weak) trained from clip labels only, "
            + ("one head per pooling rule on a shared trunk" if shared else "one run per pooling rule")
            + ", same training/validation split, same seed; weights of the best validation-loss epoch",
            "shared_trunk": shared,
            "crnn": asdict(settings.crnn),
            "budget": asdict(settings.weak),
            "seed": context.seed,
            "train_clips": list(result.train_clips),
            "rules": {rule: item.to_json(curves=True) for rule, item in rules.items()},
        },
    )
    return result


def report_section(result: WeakTraining, results: StepResults) -> ReportSection:
    """The weak-label CRNNs' clip mAP, and how every model of the run trained (this step's and the
    later steps' models: the note states all early stopping in one place)."""
    how = (
        "one head and pooling per rule on a shared trunk (conv stack and recurrent layer trained by every rule's "
        "loss; each rule kept its own best epoch)"
        if result.shared_trunk
        else "once per pooling rule"
    )
    text = (
        f"A weak-label CRNN was trained from clip labels only, {how} (up to "
        f"{result.budget.max_epochs} epochs, patience {result.budget.patience}, {len(result.train_clips)} training "
        f"clips, seed {result.seed}{_sizes(result)}); test clip mAP: "
        + ", ".join(f"{rule} {number(item.test.map)}" for rule, item in result.rules.items())
        + "."
    )
    histories, curves = results.training_records()
    return ReportSection(
        claims=(
            Claim("weak_training", text, result.artifacts, HEADING),
            Claim("training", training_text(histories), curves, HEADING),
        )
    )


def _parameter_line(preset: str, counts: Mapping[str, int]) -> str:
    """``  CRNN preset small: 43,114 parameters`` (the range over pooling rules when their heads differ)."""
    low, high = min(counts.values()), max(counts.values())
    return f"  CRNN preset {preset}: {low:,} parameters" + (
        f" ({high:,} with the largest pooling head)" if high > low else ""
    )


def _sizes(weak: WeakTraining) -> str:
    """``; CRNN ... at N frames/s`` from the recorded sizes."""
    crnn = weak.crnn
    rate = next((item.frame_rate for item in weak.rules.values() if item.frame_rate), None)
    stem = f"stem {crnn.stem_channels} channels" if crnn.stem_channels else "no stem"
    gru = f"2 x {crnn.rnn_hidden}" if crnn.rnn_layers == 1 else f"{crnn.rnn_layers} layers of 2 x {crnn.rnn_hidden}"
    preset = f" preset {crnn.preset}," if crnn.preset != "small" else ""
    blocks = f" ({crnn.conv_block})" if crnn.conv_block != "relu" else ""
    text = (
        f"; CRNN{preset} {stem}, conv blocks {tuple(crnn.conv_channels)}{blocks}, Bi{crnn.rnn_cell.upper()} "
        f"{gru}, batch {weak.budget.batch_size}, learning rate {weak.budget.learning_rate}"
    )
    return text + (f", {rate:g} output frames/s" if rate else "")


def training_text(histories: Mapping[str, TrainingHistory]) -> str:
    """Every model's epochs and why it stopped; the ones cut short while improving named first."""
    short = [name for name, history in histories.items() if history.still_improving]
    parts = [
        f"{name} {len(history.valid_loss)} epochs (best {history.best_epoch + 1}, {history.stopped.replace('_', ' ')})"
        for name, history in histories.items()
    ]
    text = "Training with early stopping on the validation loss (best state kept): " + "; ".join(parts) + "."
    if short:
        text += (
            f" Stopped by the epoch limit or the budget while the validation loss was still falling: "
            f"{', '.join(short)} — their numbers would likely improve with a larger weak.max_epochs / "
            "probe.max_epochs or budget."
        )
    return text
