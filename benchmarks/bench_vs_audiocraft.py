"""Benchmark: audioenc's training step against audiocraft's, side by side in one run.

For each shape (``[32, 1, 24000]`` and ``[4, 32, 24000]`` by default: the seed's ``--1ch`` and
``--32ch`` batches) both sides are built at the same configuration (audioenc's ``paper`` preset:
SEANet ``encodec_base_24khz`` without quantizer, 5-scale MS-STFT discriminator, 7-scale mel loss,
hinge + relative feature matching, the gradient balancer, Adam) on the same random audio, and their
steps are timed **interleaved** (audioenc, audiocraft, audioenc, …, after one warm-up step each),
so a change of load hits both alike. audiocraft's side is its own classes, imported from a checkout
the user names (see ``audiocraft_reference.py``); without one, only audioenc is timed and the
reason is printed.

Printed per shape and side: median s/step (wall clock), audio-seconds per second, the throughput
ratio audioenc / audiocraft (> 1: audioenc is faster), GFLOP per step (one step under
``torch.utils.flop_counter.FlopCounterMode`` plus the LSTM and FFTs it does not know, as in
``bench_model.py``) and the fraction of the machine's measured peak that the step reaches
(``peak`` = a large matrix product at the same thread count, measured at start, in the precision
the side computes in: fp32 for audiocraft, ``--precision`` for audioenc).

``--precision`` sets audioenc's side (``fp32``, ``bf16`` autocast); audiocraft's side stays fp32,
as its solver trains on CPU. ``--compile`` uses ``train.compile=true``.

Usage::

    python benchmarks/bench_vs_audiocraft.py --audiocraft ~/src/audiocraft --audiocraft-deps /tmp/audiocraft-deps
    AUDIOCRAFT_PATH=~/src/audiocraft python benchmarks/bench_vs_audiocraft.py --shapes 4x32x24000 --repeats 5
    python benchmarks/bench_vs_audiocraft.py --precision bf16 --json /tmp/vs.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audiocraft_reference  # noqa: E402
from bench_model import (  # noqa: E402
    flop_counter,
    load_average,
    machine_line,
    parse_shapes,
    set_threads,
    synchronize,
    wait_for_quiet,
)

from audioenc.config import build_config  # noqa: E402
from audioenc.training.trainer import Trainer  # noqa: E402


def measure_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``³ matrix product in ``dtype`` at the current thread count (best of ``repeats``)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def timed_step(step, audio: torch.Tensor, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    step(audio)
    synchronize(device)
    return time.perf_counter() - start


def counted_gflop(step, audio: torch.Tensor) -> float:
    with flop_counter() as counter:
        step(audio)
    return counter.get_total_flops() / 1e9


def build_sides(shape, precision: str, compile_step: bool, reference, device: torch.device, run_dir: Path):
    """``{name: callable(audio)}`` for audioenc and (when available) audiocraft at one shape."""
    batch, channels, length = shape
    mode = "1ch" if channels == 1 else "32ch"
    overrides = [
        f"model.channels={channels}",
        f"train.batch_size={batch}",
        f"data.segment_seconds={length / 24000}",
        f"train.precision={precision}",
        f"train.device={device.type}",
    ] + (["train.compile=true"] if compile_step else [])
    config = build_config(mode, "paper", overrides)
    torch.manual_seed(0)
    trainer = Trainer(config, run_dir, device)
    trainer.step = config.train.adversarial_warmup_steps

    def audioenc_step(audio):
        result = trainer.train_step(audio)
        if result.skipped:
            raise FloatingPointError(f"audioenc skipped a non-finite step: {result.values}")
        return result

    sides = {"audioenc": audioenc_step}
    if reference is not None:
        torch.manual_seed(0)
        ref = audiocraft_reference.build_reference_step(reference, config, channels)
        for module in (ref.encoder, ref.decoder, ref.adversary):
            module.to(device)
        ref.mel_loss.to(device)
        sides["audiocraft"] = ref
    return sides, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audiocraft", default=None, help="audiocraft checkout (or AUDIOCRAFT_PATH)")
    parser.add_argument(
        "--audiocraft-deps", default=None, help="folder with einops/flashy/torchaudio (or AUDIOCRAFT_DEPS)"
    )
    parser.add_argument("--shapes", default="32x1x24000,4x32x24000")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per side (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="audioenc's side")
    parser.add_argument("--compile", action="store_true", help="audioenc's side with torch.compile")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count (one extra step per side)")
    parser.add_argument("--wait-load", type=float, default=None, help="wait for a 1-minute load below this")
    parser.add_argument("--wait-max", type=float, default=900.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    # torchaudio warns that the smallest FFTs leave mel bands empty (true on both sides).
    warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
    set_threads(args.threads)
    device = torch.device(args.device)
    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)

    reference = audiocraft_reference.load_if_given(args.audiocraft, args.audiocraft_deps)

    print(machine_line(device))
    peaks = {}
    if device.type == "cpu":
        peaks = {"fp32": measure_peak_gflops(torch.float32), "bf16": measure_peak_gflops(torch.bfloat16)}
        print(
            f"measured peak (2048³ matrix product): fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s"
        )
    # Each side against the peak of the precision it computes in (audiocraft: fp32).
    side_peak = {"audioenc": peaks.get(args.precision), "audiocraft": peaks.get("fp32")}

    results = []
    for shape in parse_shapes(args.shapes):
        load_before = load_average()
        with tempfile.TemporaryDirectory() as run_dir:
            sides, config = build_sides(shape, args.precision, args.compile, reference, device, Path(run_dir))
            generator = torch.Generator().manual_seed(0)
            audio = (0.1 * torch.randn(*shape, generator=generator)).to(device)
            for _ in range(args.warmup):
                for step in sides.values():
                    step(audio)
            times = {name: [] for name in sides}
            for repeat in range(args.repeats):
                order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
                for name in order:
                    times[name].append(timed_step(sides[name], audio, device))
            gflop = {}
            if not args.no_flops and device.type == "cpu" and not args.compile:
                gflop = {name: counted_gflop(step, audio) for name, step in sides.items()}
        audio_seconds = shape[0] * shape[2] / config.model.sample_rate
        row = {
            "shape": list(shape),
            "precision": args.precision,
            "compile": args.compile,
            "threads": torch.get_num_threads(),
            "load_before": load_before,
            "load_after": load_average(),
        }
        for name, values in times.items():
            median = statistics.median(values)
            row[name] = {
                "s_per_step": median,
                "all_s": values,
                "audio_s_per_s": audio_seconds / median,
                "gflop": gflop.get(name),
            }
            if gflop.get(name) and side_peak[name]:
                row[name]["fraction_of_peak"] = gflop[name] / median / side_peak[name]
        if "audiocraft" in row:
            row["speedup"] = row["audiocraft"]["s_per_step"] / row["audioenc"]["s_per_step"]
        results.append(row)
        print_row(row)

    if args.json:
        args.json.write_text(json.dumps({"machine": machine_line(device), "peaks": peaks, "rows": results}, indent=2))
    return 0


def print_row(row: dict) -> None:
    shape = "[" + ", ".join(str(v) for v in row["shape"]) + "]"
    print(
        f"\n{shape}  audioenc {row['precision']}{' compiled' if row['compile'] else ''}; "
        f"threads {row['threads']}; load {row['load_before']} -> {row['load_after']}"
    )
    print(
        "| side | s/step (median) | steps timed | audio s/s | GFLOP/step | fraction of peak | throughput "
        "vs audiocraft |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("audioenc", "audiocraft"):
        if name not in row:
            continue
        side = row[name]
        gflop = f"{side['gflop']:,.0f}" if side.get("gflop") else "—"
        fraction = f"{side['fraction_of_peak']:.0%}" if "fraction_of_peak" in side else "—"
        ratio = (
            f"{row['speedup']:.2f}×"
            if name == "audioenc" and "speedup" in row
            else ("1.00×" if name == "audiocraft" else "—")
        )
        print(
            f"| {name} | {side['s_per_step']:.3f} | {len(side['all_s'])} | {side['audio_s_per_s']:.3f} | "
            f"{gflop} | {fraction} | {ratio} |"
        )


if __name__ == "__main__":
    sys.exit(main())
