"""`audioenc info --1ch|--32ch [--quantizer NAME] [--preset P] [key=value …]`: the model summary."""

from __future__ import annotations

import argparse

from audioenc.quantization.registry import QUANTIZER_NAMES


def add_channel_mode(parser: argparse.ArgumentParser) -> None:
    """``--1ch`` / ``--32ch``: exactly one is required: it sets the batch and what one sample is."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--1ch",
        dest="channel_mode",
        action="store_const",
        const="1ch",
        help="mono: batch 32, one random channel per sample",
    )
    group.add_argument(
        "--32ch", dest="channel_mode", action="store_const", const="32ch", help="32 channels: batch 4, all channels"
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="print the model summary and exact parameter counts")
    add_channel_mode(parser)
    parser.add_argument("--quantizer", choices=QUANTIZER_NAMES, default="none")
    parser.add_argument("--preset", default="paper", help="size preset: paper (default) or small")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. model.n_q=8")
    parser.set_defaults(func=run)


def summary_lines(config) -> list[str]:
    """The lines `audioenc info` prints, one fact per line."""
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.models.codec import CodecModel, build_discriminator

    model = CodecModel.from_config(config.model)
    discriminator = build_discriminator(config.discriminator, config.model)

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    lines = [
        f"sample_rate: {model.sample_rate} Hz",
        f"channels: {model.channels}",
        f"hop_length: {model.hop_length} samples",
        f"frame_rate: {model.frame_rate:g} frames/s",
        f"latent_dimension: {config.model.dimension}",
    ]
    quantizer = model.quantizer
    lines.append(f"quantizer: {quantizer.summary()}")
    if quantizer.discrete:
        per_codebook = quantizer.bandwidth_for(1, model.frame_rate)
        lines.append(f"bitrate: {per_codebook * quantizer.total_codebooks:g} kbps ({per_codebook:g} kbps per codebook)")
    note = quantizer.state_note()
    lines += [
        f"params_encoder: {count(model.encoder)}",
        f"params_decoder: {count(model.decoder)}",
        f"params_quantizer: {count(quantizer)}" + (f" ({note})" if note else ""),
        f"params_discriminator: {count(discriminator)}",
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.config import build_config

    config = build_config(args.channel_mode, args.preset, [f"model.quantizer={args.quantizer}", *args.overrides])
    print("\n".join(summary_lines(config)))
    return 0
