"""Per-class test AP of a workflow run's frozen encoder + probe (step 5 reports only the macro mean).

    AUDIOENC_CACHE=/tmp/h8/cache_drum python benchmarks/real_events/probe_per_class_ap.py \
        /tmp/h8/drum_crepe_tiny --data /tmp/drum_events

Loads the saved probe (``05_probe/probe``), embeds the test clips with the run's encoder through
:func:`audioenc.timing.encoders.encoder_embeddings` (the run's embedding cache when
``AUDIOENC_CACHE`` points at it), scores each clip and prints each class's average precision
(:func:`audioenc.timing.evaluation.average_precision`) next to the scratch CRNN's from
``report.json``. The macro mean is printed beside step 5's ``clip_map``: equal values confirm the
probe and embeddings were rebuilt as the run used them.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from audioenc.timing.encoders import encoder_embeddings, load_encoder
from audioenc.timing.evaluation import average_precision
from audioenc.timing.probe import ProbeHead


def test_targets(data: Path, files: list[str], classes: list[str]) -> np.ndarray:
    """``[N, K]`` 0/1: clip ``n`` holds an event of class ``k`` in ``metadata/test_strong.tsv``."""
    targets = np.zeros((len(files), len(classes)))
    row = {name: index for index, name in enumerate(files)}
    with open(data / "metadata" / "test_strong.tsv", newline="") as handle:
        for event in csv.DictReader(handle, delimiter="\t"):
            if event["filename"] in row and event["event_label"] in classes:
                targets[row[event["filename"]], classes.index(event["event_label"])] = 1
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a workflow run folder with --encoder (holds 05_probe/probe)")
    parser.add_argument("--data", type=Path, required=True, help="its corpus folder (audio/test, metadata)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = json.loads((args.run / "05_probe" / "probe" / "config.json").read_text())
    comparison = json.loads((args.run / "05_probe" / "comparison.json").read_text())
    classes = list(config["classes"])
    probe = ProbeHead(
        config["embedding_size"],
        classes,
        config["pooling"],
        config["config"]["hidden"],
        config["config"]["dropout"],
        context_frames=config["config"]["context_frames"] if config["config"]["kind"] == "conv" else 1,
        layers=config["layers"],
    )
    probe.load_state_dict(load_file(args.run / "05_probe" / "probe" / "model.safetensors"))
    probe.eval()
    files = list(comparison["test_clips"])
    frames = encoder_embeddings(load_encoder(comparison["encoder"]["source"]), args.data / "audio" / "test", files)
    with torch.no_grad():
        scores = np.stack(
            [probe(torch.from_numpy(frames.frames[name]).float()[None]).clip_scores[0].numpy() for name in files]
        )
    targets = test_targets(args.data, files, classes)
    per_class = np.array([float(average_precision(targets[:, k], scores[:, k])) for k in range(len(classes))])
    report = json.loads((args.run / "report.json").read_text())
    chosen = report["pooling"]["chosen"]
    scratch = report["pooling"]["trained"][chosen]["test"]["per_class_ap"]
    print(f"{frames.cache.summary()}")
    print(f"| class | frozen + probe AP | scratch ({chosen}) AP |\n|---|---|---|")
    for name, value in zip(classes, per_class):
        print(f"| {name} | {value:.3f} | {scratch[name]:.3f} |")
    print(f"macro: {np.nanmean(per_class):.4f} (step 5 clip_map {comparison['frozen']['point']['clip_map']:.4f})")


if __name__ == "__main__":
    main()
