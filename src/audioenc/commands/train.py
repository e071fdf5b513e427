"""`audioenc train --1ch|--32ch …`: EnCodec-style training of a codec, mono or 32-channel.

Scale out with ``torchrun --nproc_per_node=N -m audioenc train …``; ``--batch-size`` is global.
"""

from __future__ import annotations

import argparse

from audioenc.commands.info import add_channel_mode
from audioenc.quantization.registry import QUANTIZER_NAMES
from audioenc.validation import number

SETTINGS_ORDER = (
    "Train a codec into --run-dir. Settings, each layer overriding the last: the defaults (EnCodec's numbers), "
    "then --1ch/--32ch and --preset, then --config FILE, then the flags (--epochs, --batch-size, ...), then "
    "KEY=VALUE overrides. The resolved settings are written to RUN_DIR/config.json, which --config takes back."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a codec (continuous baseline or RVQ)", description=SETTINGS_ORDER
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_channel_mode(parser)
    parser.add_argument("--data", help="audio folder (default: the embedded eigenscape-like corpus)")
    parser.add_argument("--run-dir", default=None, help="run folder (default: runs/train-<mode>-<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint_last.pt")
    parser.add_argument(
        "--allow-changed-training",
        action="store_true",
        help="with --resume: accept training settings that differ from the checkpoint's (batch size, segment "
        "length, seed, data, schedule, losses, optimiser); the change is printed and recorded in "
        "RUN_DIR/changes.jsonl. Without it such a resume is refused.",
    )
    parser.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start a new run from a codec's weights (a run folder, model_best.safetensors, checkpoint_*.pt, or a "
        "folder of `audioenc import-hf`): its model settings replace the preset's and --config's (model.* "
        "overrides still apply), the discriminator and optimisers start fresh. Not with --resume.",
    )
    parser.add_argument("--preset", default="paper", help="paper (default: EnCodec's numbers) or small (CPU)")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings file, JSON or YAML (.yaml/.yml): any subset of the sections, e.g. "
        '{"optim": {"lr": 1e-4}}; a run\'s config.json reproduces that run\'s settings',
    )
    parser.add_argument("--epochs", type=number(minimum=1, integer=True))
    parser.add_argument("--updates-per-epoch", type=number(minimum=1, integer=True))
    parser.add_argument(
        "--batch-size", type=number(minimum=1, integer=True), help="global batch size (split across ranks)"
    )
    parser.add_argument("--segment-seconds", type=number(above=0))
    parser.add_argument(
        "--quantizer",
        choices=QUANTIZER_NAMES,
        help="none: continuous latents (default); rvq: residual VQ; fsq: finite scalar quantization",
    )
    parser.add_argument("--logger", choices=("tensorboard", "wandb", "none"))
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 …")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=1e-4")


def config_from_args(args: argparse.Namespace):
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.config import build_config

    flags = {
        "train.epochs": args.epochs,
        "train.updates_per_epoch": args.updates_per_epoch,
        "train.batch_size": args.batch_size,
        "data.segment_seconds": args.segment_seconds,
        "model.quantizer": args.quantizer,
        "train.logger": args.logger,
        "train.device": args.device,
        "data.root": args.data,
    }
    overrides = [f"{key}={value}" for key, value in flags.items() if value is not None]
    return build_config(args.channel_mode, args.preset, [*overrides, *args.overrides], config_file=args.config)


def adopt_model(config, model_config, args: argparse.Namespace, source: str):
    """``config`` with the model section of the codec at ``source`` (``--init-from``); the user's own
    ``model.*`` overrides (and ``--quantizer``) are applied on top, and must leave the weights loadable."""
    import dataclasses

    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.config import CHANNEL_MODES, validate
    from audioenc.errors import UserError

    explicit = [item for item in args.overrides if item.partition("=")[0].strip().startswith("model.")]
    if args.quantizer is not None:
        explicit.insert(0, f"model.quantizer={args.quantizer}")
    mode_channels = CHANNEL_MODES[args.channel_mode]["model.channels"]
    if model_config.channels != mode_channels and not any(i.startswith("model.channels=") for i in explicit):
        raise UserError(
            f"--init-from {source}: that codec has {model_config.channels} channel(s), --{args.channel_mode} trains "
            f"{mode_channels}; add model.channels={model_config.channels} (and a matching data.channel_mode) or "
            "choose the other channel mode."
        )
    return validate(dataclasses.replace(config, model=dataclasses.replace(model_config)).with_overrides(explicit))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.training.run import train

    config = config_from_args(args)
    init_from = None
    if args.init_from is not None:
        # imported when the command runs, not at start-up: `audioenc --help` stays fast
        from audioenc.errors import UserError
        from audioenc.models.files import load_codec

        if args.resume:
            raise UserError(
                "--init-from starts a new run from a codec's weights and --resume continues a run's own "
                "checkpoint: use one of them."
            )
        codec, model_config = load_codec(args.init_from)
        config = adopt_model(config, model_config, args, args.init_from)
        init_from = (str(args.init_from), codec)
    run_dir = Path(args.run_dir or f"runs/train-{args.channel_mode}-{args.preset}")
    summary = train(
        config,
        run_dir,
        resume=args.resume,
        progress=not args.no_progress,
        allow_changed_training=args.allow_changed_training,
        init_from=init_from,
    )
    return 130 if summary.get("stopped_by_signal") else 0
