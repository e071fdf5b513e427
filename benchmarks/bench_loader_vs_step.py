"""Benchmark: does the data loader keep up with the training step?

For each configuration (``1ch:paper``, ``32ch:paper``, ``1ch:small``, ``32ch:small`` by default) this
builds the run's own training dataset (the embedded eigenscape-like corpus unless ``--data``) and
the same ``DataLoader`` as ``audioenc train`` (``StepSampler``, ``data.num_workers`` workers unless
``--workers``), and measures, one after the other in the same process:

* the loader alone: median seconds per batch over ``--batches`` batches after the first (worker
  start-up is printed apart);
* the step alone: median ``Trainer.train_step`` seconds on batches from that loader (past the
  adversarial warm-up, so a full GAN step).

``headroom`` = step time / batch time: how many times faster the loader delivers than the step
consumes. The loader's workers run in parallel with the step in a real run (on this 2-core machine
they share the cores), so a headroom of 5 means the loader needs about a fifth of the cores' time.

Usage::

    python benchmarks/bench_loader_vs_step.py
    python benchmarks/bench_loader_vs_step.py --configs 1ch:small,32ch:small --batches 20 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import load_average, machine_line  # noqa: E402

from audioenc.config import build_config  # noqa: E402
from audioenc.core.distributed import DistributedContext  # noqa: E402
from audioenc.training.data import build_datasets  # noqa: E402
from audioenc.training.loop import StepSampler  # noqa: E402
from audioenc.training.trainer import Trainer  # noqa: E402


def measure(mode: str, preset: str, batches: int, steps: int, workers: int | None, data: str | None) -> dict:
    overrides = [f"data.root={data}"] if data else []
    if workers is not None:
        overrides.append(f"data.num_workers={workers}")
    config = build_config(mode, preset, overrides)
    context = DistributedContext()
    train_set, _ = build_datasets(config, context)
    batch = config.train.batch_size
    loader = DataLoader(
        train_set,
        batch_size=batch,
        sampler=StepSampler(batch, 0, batches + steps + 1, context),
        num_workers=config.data.num_workers,
        generator=torch.Generator().manual_seed(0),
        drop_last=True,
    )
    start = time.perf_counter()
    iterator = iter(loader)
    first = next(iterator)
    startup = time.perf_counter() - start
    batch_times, kept = [], [first]
    for _ in range(batches):
        start = time.perf_counter()
        kept.append(next(iterator))
        batch_times.append(time.perf_counter() - start)
    del iterator  # stop the workers before timing the step

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir), torch.device("cpu"))
        trainer.step = config.train.adversarial_warmup_steps
        trainer.train_step(kept[0])  # warm-up
        step_times = []
        for audio in kept[1 : steps + 1]:
            start = time.perf_counter()
            trainer.train_step(audio)
            step_times.append(time.perf_counter() - start)
    batch_s, step_s = statistics.median(batch_times), statistics.median(step_times)
    return {
        "config": f"{mode}:{preset}",
        "shape": list(first.shape),
        "workers": config.data.num_workers,
        "startup_s": startup,
        "batch_s": batch_s,
        "step_s": step_s,
        "headroom": step_s / batch_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="1ch:paper,32ch:paper,1ch:small,32ch:small")
    parser.add_argument("--batches", type=int, default=20, help="timed loader batches")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--workers", type=int, default=None, help="default: the config's data.num_workers")
    parser.add_argument("--data", default=None, help="audio folder (default: the embedded corpus)")
    args = parser.parse_args(argv)
    print(machine_line(torch.device("cpu")))
    print(f"load average before: {load_average()}")
    print("\n| config | batch [B, C, T] | workers | start-up s | s/batch (loader) | s/step | headroom (step / batch) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for item in args.configs.split(","):
        mode, preset = item.strip().split(":")
        row = measure(mode, preset, args.batches, args.steps, args.workers, args.data)
        shape = "[" + ", ".join(str(v) for v in row["shape"]) + "]"
        print(
            f"| {row['config']} | {shape} | {row['workers']} | {row['startup_s']:.2f} | {row['batch_s']:.4f} | "
            f"{row['step_s']:.3f} | {row['headroom']:.1f}× |",
            flush=True,
        )
    print(f"\nload average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
