"""Benchmark: time of one training step of ``Trainer.train_step``, split into its phases.

For each configuration (channel mode ``1ch`` / ``32ch`` × size preset ``paper`` / ``small``; the
batch is the preset's: 32 × 1 ch or 4 × 32 ch of 1 s at 24 kHz for ``paper``, 8 × 1 ch or 2 × 32 ch
of 0.5 s for ``small``) this builds a :class:`audioenc.training.trainer.Trainer` on random audio
(no data loading is timed) and measures:

* ``s/step`` — the median time of the plain ``trainer.train_step(audio)``, wall and CPU clock;
* the same step with a timer around each phase, calling the trainer's own pieces in the order
  ``train_step`` calls them:

  1. ``forward`` — ``trainer.model_ddp(audio)``;
  2. ``D update`` — ``trainer._discriminator_update(audio, reconstruction.detach())``: the
     discriminator on real and fake in one batch, hinge loss, backward, its optimizer step;
  3. ``losses`` — ``trainer._generator_losses``: L1, multi-scale mel, and the discriminator on the
     estimate (with input gradient) and on the reference (no gradient) for the adversarial and
     feature-matching losses, plus reading the scalars (``.item()``) as ``train_step`` does;
  4. ``balancer`` — ``trainer.balancer.backward`` *without* its final backward: one gradient per
     loss with respect to the reconstruction (four passes back through the loss graphs; two in the
     adversarial warm-up) and the rescaling;
  5. ``backward`` — the balancer's final backward of the combined gradient through decoder and
     encoder (timed by wrapping ``torch.autograd.backward``, which the balancer calls exactly once);
  6. ``optimizer`` — gradient clipping (when ``optim.grad_clip > 0``), ``trainer.optimizer.step()``
     and the weight EMA (when enabled).

  The phase sum is printed next to the plain step (their ratio should be close to 1; the phased step
  only adds device synchronisations). Plain and phased steps alternate, so a load change on a shared
  machine hits both alike.

Configurations are ``MODE:PRESET`` (the full GAN step: the trainer's step counter is set past
``train.adversarial_warmup_steps``) or ``MODE:PRESET:warmup`` (the small preset's first steps, which
use only the reconstruction losses with their own balancer, while the discriminator is still
updated).

Clocks: the plain step is timed on the wall clock and on the process CPU clock
(``time.process_time``); the phases on ``--clock`` (``wall`` by default). On a loaded shared machine
with ``--threads 1``, CPU time is what the step costs on an idle core.

``audio s/s`` is seconds of audio trained per second of ``--clock``, ``batch × segment_seconds /
(s/step)``; a second of 32-channel audio counts as one second (``channel-s/s`` multiplies by the
channels). ``GFLOP/step`` counts one plain step with :class:`torch.utils.flop_counter.FlopCounterMode`
plus the CPU LSTM and the FFTs (see ``bench_model.py``); CPU only.

With ``--device cuda`` every timer is wrapped in ``torch.cuda.synchronize``; ``--precision bf16``
uses the trainer's autocast.

The machine is shared: the load average (``os.getloadavg``) before and after, and the thread count,
are printed with every table; ``--wait-load`` waits for a quiet machine first. Two OpenMP threads on
two busy cores thrash; use ``--threads 1`` when the load stays high.

Usage::

    python benchmarks/bench_train_step.py                          # 1ch/32ch x paper/small
    python benchmarks/bench_train_step.py --configs 1ch:small,32ch:small:warmup --repeats-small 20
    python benchmarks/bench_train_step.py --threads 1 --clock cpu     # on a busy shared machine
    python benchmarks/bench_train_step.py --device cuda --precision bf16
    python benchmarks/bench_train_step.py --threads 1 --wait-load 1.5 --wait-max 600
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import (  # noqa: E402
    CLOCKS,
    flop_counter,
    get_clock,
    load_average,
    machine_line,
    set_threads,
    synchronize,
    wait_for_quiet,
)

from audioenc.config import build_config  # noqa: E402
from audioenc.training.trainer import Trainer  # noqa: E402

DEFAULT_CONFIGS = "1ch:paper,32ch:paper,1ch:small,32ch:small,1ch:small:warmup,32ch:small:warmup"
PHASES = ("forward", "D update", "losses", "balancer", "backward", "optimizer")


@dataclass
class StepTimes:
    """Per-repeat times: the plain step on both clocks, the phases on the chosen clock."""

    plain_s: list[float] = field(default_factory=list)
    plain_cpu_s: list[float] = field(default_factory=list)
    phases_s: dict[str, list[float]] = field(default_factory=lambda: {phase: [] for phase in PHASES})

    def phase_median(self, phase: str) -> float:
        return statistics.median(self.phases_s[phase])

    @property
    def phase_sum_median(self) -> float:
        sums = [sum(values) for values in zip(*(self.phases_s[p] for p in PHASES))]
        return statistics.median(sums)

    @property
    def plain_median(self) -> float:
        return statistics.median(self.plain_s)

    @property
    def plain_cpu_median(self) -> float:
        return statistics.median(self.plain_cpu_s)


class _BackwardTimer:
    """Wraps ``torch.autograd.backward`` (which ``Tensor.backward`` calls too) to time each call."""

    def __init__(self, device: torch.device, clock: Callable[[], float]) -> None:
        self.device = device
        self.clock = clock
        self.seconds: list[float] = []

    @contextlib.contextmanager
    def installed(self):
        original = torch.autograd.backward

        def timed_backward(*args, **kwargs):
            synchronize(self.device)
            start = self.clock()
            result = original(*args, **kwargs)
            synchronize(self.device)
            self.seconds.append(self.clock() - start)
            return result

        torch.autograd.backward = timed_backward
        try:
            yield self
        finally:
            torch.autograd.backward = original


def phased_step(
    trainer: Trainer, audio: torch.Tensor, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """One step exactly as ``Trainer.train_step`` runs it, with a timer (``clock``) per phase, seconds."""
    config, device = trainer.config, trainer.device
    times: dict[str, float] = {}

    def mark(phase: str, start: float) -> float:
        synchronize(device)
        now = clock()
        times[phase] = now - start
        return now

    trainer.model.train()
    trainer.discriminator.train()
    synchronize(device)
    start = clock()
    if trainer.model.normalize:  # as train_step: every segment at unit RMS (timed with the forward)
        audio = audio / trainer.model.input_scale(audio)

    # 1. forward
    with trainer._autocast():
        output = trainer.model_ddp(audio)
    reconstruction = output.audio.float()
    start = mark("forward", start)

    # 2. discriminator update on the detached reconstruction
    if trainer.step % config.train.discriminator_every == 0:
        trainer._discriminator_update(audio, reconstruction.detach())
    start = mark("D update", start)

    # 3. generator losses, discriminator frozen (and the scalars read, as train_step does); during
    #    the adversarial warm-up only the reconstruction losses, with their own balancer
    adversarial = trainer.step >= config.train.adversarial_warmup_steps
    losses = trainer._generator_losses(audio, reconstruction, adversarial)
    balancer = trainer.balancer if adversarial else trainer.warmup_balancer
    penalty = output.penalty.float()
    values = {key: value.item() for key, value in losses.items()}
    values["commitment"] = penalty.item()
    if not all(math.isfinite(v) for v in values.values()):
        raise FloatingPointError(f"non-finite loss in the benchmark step: {values}; the timing would be meaningless.")
    start = mark("losses", start)

    # 4. + 5. balancer, with its one final backward through the model timed apart
    trainer.optimizer.zero_grad(set_to_none=True)
    timer = _BackwardTimer(device, clock)
    with timer.installed():
        balancer.backward(losses, reconstruction, penalty=penalty).item()
    if len(timer.seconds) != 1:
        raise RuntimeError(
            f"Balancer.backward called torch.autograd.backward {len(timer.seconds)} times (expected 1); "
            "the balancer/backward split of this benchmark no longer matches the balancer — update it."
        )
    start = mark("balancer", start)
    times["balancer"] -= timer.seconds[0]
    times["backward"] = timer.seconds[0]

    # 6. clip, step, EMA
    if config.optim.grad_clip > 0:
        nn.utils.clip_grad_norm_(trainer.model.parameters(), config.optim.grad_clip).item()
    trainer.optimizer.step()
    if trainer.ema is not None:
        trainer.ema.update_parameters(trainer.model)
    mark("optimizer", start)
    trainer.step += 1
    return times


def plain_step(trainer: Trainer, audio: torch.Tensor) -> tuple[float, float]:
    """Wall time and process CPU time of one ``trainer.train_step(audio)``, seconds."""
    synchronize(trainer.device)
    start, start_cpu = time.perf_counter(), time.process_time()
    result = trainer.train_step(audio)
    synchronize(trainer.device)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    if result.skipped:
        raise FloatingPointError(f"train_step skipped a non-finite step: {result.values}.")
    return wall, cpu


def measure_config(
    channel_mode: str,
    preset: str,
    overrides: list[str],
    device: torch.device,
    repeats: int,
    warmup: int,
    count_flops: bool,
    run_dir: Path,
    clock_name: str = "wall",
    adversarial_warmup: bool = False,
) -> dict:
    """Times (and FLOPs) of one configuration's step.

    ``adversarial_warmup=False`` times the full GAN step (the trainer's step counter starts at
    ``train.adversarial_warmup_steps``); ``True`` times the cheaper warm-up step of the presets that
    have one (reconstruction losses only; the discriminator is still updated).
    """
    config = build_config(channel_mode, preset, [*overrides, f"train.device={device.type}"])
    trainer = Trainer(config, run_dir, device)
    steps = 2 * (warmup + repeats) + int(count_flops)
    warmup_steps = config.train.adversarial_warmup_steps
    if adversarial_warmup and steps > warmup_steps:
        raise ValueError(
            f"{channel_mode}:{preset}:warmup needs {steps} steps inside the adversarial warm-up, but "
            f"train.adversarial_warmup_steps is {warmup_steps}; drop ':warmup' or use fewer repeats."
        )
    if not adversarial_warmup:
        trainer.step = warmup_steps  # past the warm-up: every timed step is a full GAN step
    batch, channels = config.train.batch_size, config.model.channels
    length = round(config.data.segment_seconds * config.model.sample_rate)
    generator = torch.Generator().manual_seed(0)
    audio = (0.1 * torch.randn(batch, channels, length, generator=generator)).to(device)

    clock = get_clock(clock_name, device)
    for _ in range(warmup):
        plain_step(trainer, audio)
        phased_step(trainer, audio, clock)
    times = StepTimes()
    for _ in range(repeats):
        wall, cpu = plain_step(trainer, audio)
        times.plain_s.append(wall)
        times.plain_cpu_s.append(cpu)
        for phase, seconds in phased_step(trainer, audio, clock).items():
            times.phases_s[phase].append(seconds)
    gflop = None
    if count_flops:
        with flop_counter() as counter:
            trainer.train_step(audio)
        gflop = counter.get_total_flops() / 1e9
    return {
        "config": f"{channel_mode}:{preset}" + (":warmup" if adversarial_warmup else ""),
        "shape": [batch, channels, length],
        "audio_seconds": batch * config.data.segment_seconds,
        "channels": channels,
        "times": times,
        "gflop": gflop,
    }


def format_table(rows: list[dict], clock_name: str = "wall", cpu_column: bool = True) -> str:
    """Markdown: one row per configuration; medians in seconds.

    ``s/step`` columns are the plain ``train_step`` on the wall clock and on the process CPU clock;
    the phases, their sum, the ratio (phase sum / plain step) and the throughputs use ``clock_name``.
    """
    unit = "s" if clock_name == "wall" else "CPU s"
    lines = [
        "| config | batch [B, C, T] | s/step wall | s/step CPU | "
        + f"phase sum ({unit}) | ratio | "
        + " | ".join(f"{p} ({unit})" for p in PHASES)
        + f" | audio s/s ({clock_name}) | channel-s/s ({clock_name}) | GFLOP/step |",
        "| --- | --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in PHASES) + " | ---: | ---: | ---: |",
    ]
    for row in rows:
        times: StepTimes = row["times"]
        step = times.plain_median if clock_name == "wall" else times.plain_cpu_median
        phases = " | ".join(f"{times.phase_median(p):.3f}" for p in PHASES)
        audio_rate = row["audio_seconds"] / step
        gflop = f"{row['gflop']:,.0f}" if row["gflop"] is not None else "n/a"
        cpu = f"{times.plain_cpu_median:.3f}" if cpu_column else "n/a"
        lines.append(
            f"| {row['config']} | {row['shape']} | {times.plain_median:.3f} | {cpu} | {times.phase_sum_median:.3f} | "
            f"{times.phase_sum_median / step:.2f} | {phases} | {audio_rate:.3f} | "
            f"{audio_rate * row['channels']:.2f} | {gflop} |"
        )
    return "\n".join(lines)


def format_shares(rows: list[dict]) -> str:
    """Markdown: each phase's share of the phase sum, in percent."""
    lines = ["| config | " + " | ".join(PHASES) + " |", "| --- | " + " | ".join("---:" for _ in PHASES) + " |"]
    for row in rows:
        times: StepTimes = row["times"]
        total = sum(times.phase_median(p) for p in PHASES)
        shares = " | ".join(f"{100 * times.phase_median(p) / total:.0f}%" for p in PHASES)
        lines.append(f"| {row['config']} | {shares} |")
    return "\n".join(lines)


def parse_configs(text: str) -> list[tuple[str, str, bool]]:
    """``"1ch:paper,32ch:small:warmup"`` -> ``[("1ch", "paper", False), ("32ch", "small", True)]``."""
    configs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if (
            len(parts) not in (2, 3)
            or parts[0] not in ("1ch", "32ch")
            or parts[1] not in ("paper", "small")
            or (len(parts) == 3 and parts[2] != "warmup")
        ):
            raise ValueError(
                f"--configs item {item!r} is not MODE:PRESET[:warmup] with MODE in 1ch/32ch and PRESET in paper/small."
            )
        configs.append((parts[0], parts[1], len(parts) == 3))
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Usage::")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--configs", default=DEFAULT_CONFIGS, help=f"comma-separated MODE:PRESET[:warmup] (default {DEFAULT_CONFIGS})"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed plain + phased steps for the paper preset (default 3)"
    )
    parser.add_argument("--repeats-small", type=int, default=10, help="the same for the small preset (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed plain + phased steps first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="train.precision (bf16: autocast)"
    )
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="clock of the phases: wall (default) or cpu (process CPU time; robust to load with --threads 1)",
    )
    parser.add_argument("--no-flops", action="store_true", help="skip counting one step's FLOPs")
    parser.add_argument("--wait-load", type=float, default=None, help="wait until the 1-min load average is below this")
    parser.add_argument(
        "--wait-max", type=float, default=600.0, help="longest wait for --wait-load, seconds (default 600)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument(
        "overrides", nargs="*", help="extra dotted key=value config overrides (e.g. optim.grad_clip=1.0)"
    )
    args = parser.parse_args(argv)

    try:
        configs = parse_configs(args.configs)
        for mode, preset, adversarial_warmup in configs:  # fail now, not after an hour of measuring
            steps = 2 * (args.warmup + (args.repeats if preset == "paper" else args.repeats_small)) + 1
            warmup_steps = build_config(mode, preset, args.overrides).train.adversarial_warmup_steps
            if adversarial_warmup and steps > warmup_steps:
                raise ValueError(
                    f"{mode}:{preset}:warmup needs up to {steps} steps inside the adversarial warm-up, but "
                    f"train.adversarial_warmup_steps is {warmup_steps}; drop ':warmup' or use fewer repeats."
                )
    except (KeyError, ValueError) as error:
        parser.error(str(error))
    if args.repeats < 1 or args.repeats_small < 1 or args.warmup < 0:
        parser.error("--repeats and --repeats-small must be >= 1, --warmup >= 0")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch.cuda.is_available() is False on this machine")
    set_threads(args.threads)
    try:
        get_clock(args.clock, device)
    except ValueError as error:
        parser.error(str(error))
    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)
    overrides = [f"train.precision={args.precision}", *args.overrides]

    print(machine_line(device))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"precision {args.precision}; medians of {args.repeats} (paper) / {args.repeats_small} (small) steps after "
        f"{args.warmup} warm-up; phases on the {args.clock} clock\n"
    )
    load_before = load_average()
    rows = []
    with tempfile.TemporaryDirectory() as run_dir:
        for mode, preset, adversarial_warmup in configs:
            repeats = args.repeats if preset == "paper" else args.repeats_small
            row = measure_config(
                mode,
                preset,
                overrides,
                device,
                repeats,
                args.warmup,
                not args.no_flops and device.type == "cpu",
                Path(run_dir),
                args.clock,
                adversarial_warmup,
            )
            row["load_after"] = load_average()
            print(
                f"{row['config']}: {row['times'].plain_median:.3f} s/step (load average now {row['load_after']})",
                file=sys.stderr,
            )
            rows.append(row)
    print(f"load average before: {load_before}; after: {load_average()}; threads {torch.get_num_threads()}\n")
    print(format_table(rows, args.clock, cpu_column=device.type == "cpu"))
    print("\nShare of the phase sum:\n")
    print(format_shares(rows))
    if args.json is not None:
        payload = [
            {
                "config": r["config"],
                "shape": r["shape"],
                "plain_s": r["times"].plain_s,
                "plain_cpu_s": r["times"].plain_cpu_s,
                "phases_s": r["times"].phases_s,
                "phase_clock": args.clock,
                "gflop": r["gflop"],
                "load_after": r["load_after"],
            }
            for r in rows
        ]
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_line(device),
                    "load_before": load_before,
                    "threads": torch.get_num_threads(),
                    "results": payload,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
