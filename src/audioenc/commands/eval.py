"""`audioenc eval CKPT --data DIR`: reconstruction metrics of a trained codec on any audio folder."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="reconstruction metrics of a codec on an audio folder")
    parser.add_argument("checkpoint", help="model_best.safetensors or checkpoint_*.pt of a run")
    parser.add_argument("--data", required=True, help="audio folder (every usable file is evaluated)")
    parser.add_argument("--segments", type=int, default=64, help="fixed evaluation segments (default 64)")
    parser.add_argument("--segment-seconds", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", dest="json_path", help="also write the metrics to this JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from audioenc.audio.datasets import FixedSegmentDataset
    from audioenc.codec_io import load_codec
    from audioenc.metrics.reconstruction import evaluate_codec
    from audioenc.training.distributed import resolve_device

    device = resolve_device(args.device)
    model, config = load_codec(args.checkpoint)
    channel_mode = "mono" if config.channels == 1 else "all"
    dataset = FixedSegmentDataset(
        args.data, args.segments, segment_seconds=args.segment_seconds, sample_rate=config.sample_rate,
        channel_mode=channel_mode, channels=config.channels, seed=args.seed, name="eval",
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size)
    metrics = evaluate_codec(model.to(device), loader, config.sample_rate, device)
    metrics["read_failures"] = dataset.read_failures
    width = max(len(k) for k in metrics)
    print(f"{'metric':<{width}}  value")
    for key, value in metrics.items():
        print(f"{key:<{width}}  {value:.6g}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"checkpoint": str(args.checkpoint), **metrics}, indent=2) + "\n")
    return 0
