"""Step 5: the frozen encoder + probe against a scratch baseline on the same split, with paired
bootstrap intervals over test clips (``comparison.tsv/json``, ``comparison.png``, ``probe/``, and
``encoder/`` and ``scratch/`` when trained here).

The frozen encoder is the one the user named (probed on all classes; scratch = the step-3 CRNN
with the chosen pooling), or, without one, a weak-label CRNN trained here on the *other* classes
(``held_out_classes`` are hidden from it) and probed on the held-out ones — a transfer test, not a
re-read of its own labels.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from audioenc.timing.encoders import (
    embedding_cache,
    encoder_embeddings,
    load_encoder,
    parameters_fingerprint,
    same_parameters,
)
from audioenc.timing.evaluation import ClipEvaluator, Evaluation, clip_targets
from audioenc.timing.fitting import predict_frames
from audioenc.timing.postprocess import choose_postprocessing
from audioenc.timing.probe import probe_layers_text, train_probe
from audioenc.timing.weak import WeakCRNN, predict, save_weak_encoder
from audioenc.timing.workflow.artifacts import (
    interval,
    number,
    postprocessing_text,
    save_module,
    with_ci,
    write_json,
    write_tsv,
)
from audioenc.timing.workflow.context import RunContext
from audioenc.timing.workflow.data import SPLITS, channel_policy, one_thread
from audioenc.timing.workflow.gates import chance_map, check_learned
from audioenc.timing.workflow.jobs import WeakJob, train_jobs
from audioenc.timing.workflow.plots import plot_comparison, plot_histories
from audioenc.timing.workflow.results import EncoderInfo, FrozenPath, ProbeComparison
from audioenc.timing.workflow.sections import Claim, ReportSection

NAME = "probe"
FOLDER = "05_probe"
TITLE = "frozen encoder + probe against a scratch baseline on the same split"
HEADING = "5. Frozen encoder + probe vs scratch"
COMPARISON_TSV = f"{FOLDER}/comparison.tsv"
COMPARISON_JSON = f"{FOLDER}/comparison.json"


def held_out_classes(classes: Sequence[str], count: int, seed: int) -> tuple[str, ...]:
    """``count`` classes picked by the seed (at least one, at most all but one), in vocabulary order."""
    if len(classes) < 2:
        raise ValueError(f"held-out classes need at least two classes, got {list(classes)}")
    count = max(1, min(count, len(classes) - 1))
    picked = set(np.random.default_rng(seed).permutation(len(classes))[:count].tolist())
    return tuple(name for index, name in enumerate(classes) if index in picked)


def run(context: RunContext) -> ProbeComparison:
    """Probe the frozen encoder and compare it with scratch on the same test clips."""
    data, settings = context.data, context.settings
    chosen = context.results.need("boundaries").chosen
    weak = context.results.need("weak")
    handle = context.encoder
    if handle is not None:
        task = data.classes
        scratch_model: WeakCRNN = weak.models[chosen]
        scratch_history = weak.rules[chosen].history
        histories = {}
        scratch_source = f"03_weak/{chosen}/model.safetensors"
        trained_on, encoder_seconds = None, None
        notes = [
            f"scratch baseline = the step-3 CRNN with the chosen pooling ({chosen}): same split, same labels, same seed"
        ]
    elif len(data.classes) >= 2:
        task = held_out_classes(data.classes, settings.evaluation.held_out_classes, context.seed)
        trained_on = tuple(name for name in data.classes if name not in task)
        jobs = [
            WeakJob(name, chosen, classes, context.seed, settings.weak, settings.crnn, settings.augment)
            for name, classes in (("encoder", trained_on), ("scratch", task))
        ]
        trained = train_jobs(jobs, data, settings.run.workers, context.log)
        scratch_history, histories = (
            trained["scratch"].history,
            {"encoder (CRNN, other classes)": trained["encoder"].history},
        )
        handle = load_encoder(save_weak_encoder(trained["encoder"].model, context.path(FOLDER, "encoder")))
        scratch_model, encoder_seconds = trained["scratch"].model, trained["encoder"].seconds
        save_weak_encoder(scratch_model, context.path(FOLDER, "scratch"))
        scratch_source = f"{FOLDER}/scratch/model.safetensors"
        notes = [
            f"frozen encoder = a weak-label CRNN trained here on the other classes {list(trained_on)}; probe and "
            f"scratch are trained and evaluated on the held-out classes {list(task)}"
        ]
    else:
        raise ValueError("one class only: no other class to train an encoder on; pass --encoder")
    with one_thread():
        fingerprint = parameters_fingerprint(handle.model)
        embed_started = time.perf_counter()
        cache = embedding_cache(handle)  # one for the three splits: one count; hashing the weights is timed too
        embeddings = {
            name: encoder_embeddings(handle, data.splits[name].audio_dir, data.splits[name].files, cache=cache)
            for name in SPLITS
        }
        embed_seconds = time.perf_counter() - embed_started
        context.log(f"  embeddings: {cache.stats.summary()}, {embed_seconds:.1f} s")
        frame_rate = embeddings["train"].frame_rate
        targets = {name: clip_targets(data.splits[name], task) for name in SPLITS}
        probe, probe_history = train_probe(
            embeddings["train"].frames,
            targets["train"],
            embeddings["validation"].frames,
            targets["validation"],
            task,
            chosen,
            config=settings.probe,
            seed=context.seed,
            layers=getattr(handle.model, "layers", 1),  # a stack of hidden states: learned layer weights
        )
        if not same_parameters(fingerprint, parameters_fingerprint(handle.model)):
            raise RuntimeError("internal: the frozen encoder's parameters changed while probing")
        raw = {
            "frozen + probe": {
                name: predict_frames(probe, embeddings[name].frames, frame_rate, task)
                for name in ("validation", "test")
            },
            "scratch": {
                name: predict(scratch_model, data.features[name].log_mels).restricted_to(task)
                for name in ("validation", "test")
            },
        }
        evaluation = settings.evaluation
        collars = evaluation.collars
        postprocessing = {
            system: choose_postprocessing(
                scores["validation"], data.splits["validation"], task, settings.postprocess, **collars
            )
            for system, scores in raw.items()
        }
        frozen_test = postprocessing["frozen + probe"].apply(raw["frozen + probe"]["test"])
        scratch_test = postprocessing["scratch"].apply(raw["scratch"]["test"])
        evaluator = ClipEvaluator(
            data.splits["test"],
            task,
            evaluation.bootstrap_resamples,
            seed=context.seed,
            f1_resamples=evaluation.f1_resamples,
            psds_resamples=evaluation.psds_resamples,
            onset_only_collars=evaluation.onset_only_collars,
            **collars,
        )
        frozen = evaluator.evaluate(frozen_test, with_psds=evaluator.boundaries_available)
        scratch = evaluator.evaluate(scratch_test, with_psds=evaluator.boundaries_available)
        difference = evaluator.paired_difference(frozen_test, scratch_test)
    chance = chance_map(evaluator.targets)
    gates = {
        system: check_learned(
            f"the {system} path" if system != "scratch" else "the scratch baseline",
            metrics,
            chance,
            evaluation.min_detected_share,
        )
        for system, metrics in (("frozen + probe", frozen), ("scratch", scratch))
    }
    histories = {"frozen + probe": probe_history, "scratch": scratch_history, **histories}
    curves = plot_histories(
        context.path(FOLDER, "training_curves.png"),
        histories,
        "probe and scratch baseline: validation clip BCE per epoch",
    )
    encoder = EncoderInfo(
        handle.describe(),
        context.encoder is None,
        frame_rate,
        embed_seconds,
        all(e.identity_map for e in embeddings.values()),
        trained_on,
        encoder_seconds,
        cache.stats,
    )
    save_module(
        probe,
        context.path(FOLDER, "probe"),
        {
            "kind": "audioenc.probe_head",
            "classes": list(task),
            "pooling": chosen,
            "embedding_size": handle.embedding_size,
            "layers": probe.layers,
            "frame_rate": frame_rate,
            "config": asdict(settings.probe),
            "encoder": _encoder_description(encoder),
        },
    )
    rows = [
        (
            metric,
            frozen.point.get(metric),
            interval(frozen.interval(metric)),
            scratch.point.get(metric),
            interval(scratch.interval(metric)),
            difference[metric].value if metric in difference else None,
            interval(difference.get(metric)),
        )
        for metric in frozen.point
    ]
    write_tsv(
        context.path(FOLDER, "comparison.tsv"),
        ("metric", "frozen_probe", "frozen_95ci", "scratch", "scratch_95ci", "frozen_minus_scratch", "difference_95ci"),
        rows,
    )
    plot = plot_comparison(
        context.path(FOLDER, "comparison.png"),
        {"frozen + probe": frozen, "scratch": scratch},
        "frozen encoder + probe vs scratch (test split, 95 % bootstrap intervals over clips)",
    )
    artifacts = [
        f"{FOLDER}/comparison.json",
        f"{FOLDER}/comparison.tsv",
        context.rel(plot),
        context.rel(curves),
        f"{FOLDER}/probe/model.safetensors",
        scratch_source,
    ]
    if encoder.trained_here:
        artifacts.append(f"{FOLDER}/encoder/model.safetensors")
    result = ProbeComparison(
        encoder,
        channel_policy(data.audio_formats, handle, settings.features.sample_rate),
        task,
        chosen,
        tuple(notes),
        True,
        frozen,
        scratch,
        difference,
        tuple(artifacts),
        settings.probe.description + probe_layers_text(probe),
        postprocessing,
        gates,
        histories,
        FrozenPath(handle, probe, embeddings, targets, evaluator, frozen_test, fingerprint),
    )
    write_json(
        context.path(FOLDER, "comparison.json"),
        {
            "what": "frozen encoder + probe head vs a CRNN trained from scratch, same split and labels; "
            "metrics on the test "
            "split, bootstrap intervals over clips (paired for the difference)",
            "encoder": encoder.to_json(),
            "channel_policy": result.channel_policy,
            "task_classes": list(task),
            "pooling": chosen,
            "notes": notes,
            "encoder_parameters_unchanged": True,
            "probe": {
                "config": asdict(settings.probe),
                "description": settings.probe.description,
                "history": probe_history.as_dict(),
                "frame_rate": frame_rate,
                "layer": handle.details.get("layer"),
                "layers": probe.layers,
                "layer_weights": probe.layer_weights().to_json() if probe.layers > 1 else None,
            },
            "scratch": {
                "source": scratch_source,
                "frame_rate": scratch_model.frame_rate,
                "history": scratch_history.as_dict(),
            },
            "postprocessing": {system: item.to_json() for system, item in postprocessing.items()},
            "gates": {system: item.to_json() for system, item in gates.items()},
            "train_clips": {
                "frozen_probe": list(embeddings["train"].frames),
                "scratch": list(data.features["train"].split.files),
            },
            "test_clips": evaluator.files,
            "frozen": frozen.to_json(),
            "scratch_metrics": scratch.to_json(),
            "difference": {name: ci.as_dict() for name, ci in difference.items()},
            "bootstrap": {
                "resamples": evaluation.bootstrap_resamples,
                "collar_f1_resamples": evaluation.f1_resamples,
                "psds_resamples": evaluation.psds_resamples,
                "confidence": 0.95,
                "seed": context.seed,
            },
        },
    )
    for metric in frozen.point:
        context.log(
            f"  {metric:>16}: frozen {number(frozen.point.get(metric))} [{interval(frozen.interval(metric))}]"
            f", scratch {number(scratch.point.get(metric))} [{interval(scratch.interval(metric))}]"
        )
    return result


def _encoder_description(encoder: EncoderInfo) -> dict:
    """The encoder as the probe's config.json records it (without the embedding timing)."""
    content = encoder.to_json()
    for key in ("frame_rate", "embedding_seconds", "grid_is_encoder_frames", "embedding_cache"):
        content.pop(key, None)
    return content


def report_section(result: ProbeComparison, results: Mapping[str, Any]) -> ReportSection:
    """Frozen + probe against scratch with intervals: the claim, ``report.json``'s ``probe``, the
    headline's two systems and the metric table."""
    probe = result.to_json()
    headline = {
        "frozen": _headline_side(result.frozen),
        "scratch": _headline_side(result.scratch),
        "encoder": result.encoder.to_json()["source"],
    }
    return ReportSection(
        json={"probe": probe},
        headline=headline,
        claims=(Claim("probe_vs_scratch", _claim_text(result), result.artifacts, HEADING),),
        tables=_table(probe),
    )


def _claim_text(probe: ProbeComparison) -> str:
    """Frozen + probe against scratch on clip mAP and the boundary metrics, with the post-processing
    each was measured after, the failed gates and what the encoder and baseline are."""
    encoder = probe.encoder.to_json()
    clip_difference = probe.difference["clip_map"]
    text = (
        f"Frozen encoder ({encoder['kind']}, {encoder['source']}, {number(encoder['frame_rate'], 1)} frames/s, "
        f"{encoder['embedding_size']}-dim{_details_text(encoder)}) + probe vs scratch CRNN on the same split, classes "
        f"{', '.join(probe.task_classes)}: clip mAP {with_ci(probe.frozen, 'clip_map')} vs "
        f"{with_ci(probe.scratch, 'clip_map')} (difference {number(clip_difference.value)}, "
        f"CI {interval(clip_difference)})"
    )
    if probe.boundaries_available:
        text += (
            f"; collar F1 {with_ci(probe.frozen, 'collar_f1')} vs {with_ci(probe.scratch, 'collar_f1')}; "
            f"onsets within 200 ms {with_ci(probe.frozen, 'onset_within')} vs "
            f"{with_ci(probe.scratch, 'onset_within')}"
        )
    text += (
        f"; onset-only F1 (HEAR, 200 ms) {number(probe.frozen.point.get('onset_f1_200ms'))} vs "
        f"{number(probe.scratch.point.get('onset_f1_200ms'))}. Probe: {probe.probe_description}. "
        "Post-processing, chosen on validation for each system alike: "
        + "; ".join(f"{system} {postprocessing_text(item)}" for system, item in probe.postprocessing.items())
    )
    if probe.boundaries_available:
        text += f"; PSDS1 {with_ci(probe.frozen, 'psds1')} vs {with_ci(probe.scratch, 'psds1')}" + (
            ""
            if probe.frozen.interval("psds1")
            else " (point values: evaluation.psds_resamples=0, as each "
            "resample costs a full PSDS evaluation; set it for intervals)"
        )
    failed = [gate.reason for gate in probe.gates.values() if not gate.passed]
    if failed:
        text += ". Sanity gates failed: " + "; ".join(failed)
    text += f". Embeddings: {_embedding_text(probe.encoder)}"
    return text + ". " + " ".join(probe.notes)


def _details_text(encoder: Mapping[str, Any]) -> str:
    """What a pretrained encoder's report details say (``describe()["pretrained"]``), as a clause: family,
    layer(s), sample rate, receptive field, window; ``""`` for an encoder without them."""
    details = encoder.get("pretrained")
    if not details:
        return ""
    parts = [f"{details['family']}, layer {details['layer']}", f"{details['sample_rate']} Hz"]
    if details.get("receptive_field_ms") is not None:
        parts.append(f"receptive field {number(details['receptive_field_ms'], 1)} ms")
    if details.get("window_seconds"):
        parts.append(
            f"windows of {number(details['window_seconds'], 2)} s overlapping by "
            f"{number(details.get('overlap_seconds') or 0.0, 2)} s"
        )
    else:
        parts.append("each clip in one pass")
    return "; " + ", ".join(parts)


def _embedding_text(encoder: EncoderInfo) -> str:
    """How the clips' embeddings were obtained: the cache's count, size and place, and the seconds taken."""
    stats = encoder.embedding_cache
    where = stats.summary() if stats is not None else "cache not recorded"
    return f"{where}; {number(encoder.embedding_seconds, 1)} s to embed (cache lookups included)"


def _headline_side(evaluation: Evaluation) -> dict:
    """One system's clip mAP and collar F1 with their intervals, for the headline."""

    def ci(metric: str) -> dict | None:
        found = evaluation.interval(metric)
        return found.as_dict() if found is not None else None

    return {
        "clip_map": evaluation.point.get("clip_map"),
        "clip_map_ci": ci("clip_map"),
        "collar_f1": evaluation.point.get("collar_f1"),
        "collar_f1_ci": ci("collar_f1"),
    }


def _table(probe: dict) -> tuple[str, ...]:
    """Every metric of both systems and their paired difference, with intervals."""

    def cell(block: Mapping, metric: str) -> str:
        return f"{number(block['point'].get(metric))} [95 % CI {interval(block.get('intervals', {}).get(metric))}]"

    lines = [
        "",
        "### Frozen + probe vs scratch (95 % bootstrap intervals over test clips; difference paired)",
        "",
        "| metric | frozen + probe | scratch | frozen - scratch |",
        "|---|---|---|---|",
    ]
    for metric in probe["frozen"]["point"]:
        difference = probe["difference"].get(metric)
        lines.append(
            f"| {metric} | {cell(probe['frozen'], metric)} | {cell(probe['scratch'], metric)} "
            f"| {number((difference or {}).get('value'))} [{interval(difference)}] |"
        )
    return tuple(lines)
