"""Diagnostic: does a codec's reconstruction depend on its input, and did it at initialisation?

For a run folder (``audioenc train ... --run-dir RUN``) it loads ``model_best.safetensors`` and the
run's fixed validation segments and prints:

- ``ref-ref`` / ``rec-rec``: the median log-mel distance (the mean L1 of
  :func:`audioenc.metrics.reconstruction.validation_mel` per pair) between two *different* validation
  segments, and between their reconstructions. A codec
  that ignores its input has ``rec-rec`` near 0 while ``ref-ref`` is not;
- ``mel_identified``: the share of segments whose reconstruction is nearest its own reference;
- the latents' spread across segments against their magnitude;
- input and output RMS per segment;
- at initialisation (``--seed``), layer by layer through the encoder: the spread of each layer's
  output across segments against its mean magnitude (how much of the input survives the biases),
  on the input as the encoder sees it (divided by its level when ``model.normalize``).

Usage::

    python benchmarks/check_codec_collapse.py runs/mono
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from audioenc.config import Config
from audioenc.core.distributed import DistributedContext
from audioenc.metrics.reconstruction import identification_accuracy, pairwise_distances, validation_mel
from audioenc.models.codec import CodecModel
from audioenc.models.files import load_codec
from audioenc.training.data import build_datasets


def median_pair_distance(features: torch.Tensor) -> float:
    """Median mean-absolute distance between the rows of ``[N, ...]`` features, pairs ``i != j``."""
    distances = pairwise_distances(features, features)
    return float(distances[~torch.eye(len(features), dtype=torch.bool)].median())


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="seed of the untrained model inspected layer by layer")
    args = parser.parse_args()

    config = Config.load(args.run_dir / "config.json")
    _, valid = build_datasets(config, DistributedContext())
    audio = torch.stack([valid[i] for i in range(len(valid))])  # [N, C, T]
    model, _ = load_codec(args.run_dir / "model_best.safetensors")
    model.eval()
    output = model(audio)
    mel = validation_mel(config.model.sample_rate)
    reference_mel, reconstruction_mel = mel(audio), mel(output.audio)

    print(f"validation segments: {len(audio)}")
    print(f"ref-ref median log-mel distance: {median_pair_distance(reference_mel):.4f}")
    print(f"rec-rec median log-mel distance: {median_pair_distance(reconstruction_mel):.4f}")
    identified = identification_accuracy(reference_mel, reconstruction_mel).float().mean()
    print(f"mel_identified: {float(identified):.4f} (chance {1 / len(audio):.4f})")
    latents = output.latents
    print(
        f"latents: spread across segments {float(latents.std(0).mean()):.4f}, "
        f"magnitude {float(latents.abs().mean()):.4f}"
    )
    print("input RMS per segment: ", " ".join(f"{v:.3f}" for v in audio.pow(2).mean((1, 2)).sqrt().tolist()))
    print("output RMS per segment:", " ".join(f"{v:.3f}" for v in output.audio.pow(2).mean((1, 2)).sqrt().tolist()))

    torch.manual_seed(args.seed)
    untrained = CodecModel.from_config(config.model).eval()
    print(f"\nuntrained encoder (seed {args.seed}), layer by layer:")
    print(f"{'layer':>5} {'module':<18} {'spread across segments':>24} {'mean magnitude':>16} {'ratio':>7}")
    hidden = audio / untrained.input_scale(audio)  # what the encoder sees (unit RMS with model.normalize)
    for index, layer in enumerate(untrained.encoder.model):
        hidden = layer(hidden)
        spread, magnitude = float(hidden.std(0).mean()), float(hidden.abs().mean())
        print(f"{index:>5} {type(layer).__name__:<18} {spread:>24.4f} {magnitude:>16.4f} {spread / magnitude:>7.3f}")


if __name__ == "__main__":
    main()
