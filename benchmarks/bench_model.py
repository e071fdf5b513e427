"""Benchmark: forward+backward cost of the codec's blocks at the ``encodec_base_24khz`` configuration.

For each audio shape ``[batch, channels, time]`` (defaults ``32x1x24000`` and ``4x32x24000``, the
``--1ch`` and ``--32ch`` presets' batches of 1 s at 24 kHz) this times, on one device, the pieces of
one training step as :meth:`audioenc.training.trainer.Trainer.train_step` runs them:

* ``encoder`` — SEANet encoder, forward and backward to its parameters (the gradient w.r.t. the
  latents is a fixed random tensor);
* ``quantizer`` — the residual VQ (32 codebooks × 1024 entries, quantizer dropout off so all 32
  layers run; EMA updates in the forward), forward and backward of the straight-through output and
  the commitment penalty. Only the codec has it; the continuous baseline (the preset default) does not;
* ``decoder`` — SEANet decoder, forward and backward to its parameters and its input latents;
* ``discriminator update`` — the MS-STFT discriminator (5 scales) on real and detached fake audio in
  one batch of ``2·batch`` items, the hinge loss, backward to its parameters (no optimizer step);
* ``losses`` — ``Trainer._generator_losses``: L1, multi-scale mel (7 scales), and the adversarial
  and feature-matching losses, which need the discriminator on the estimate (with a gradient to its
  input) and on the reference (no gradient); backward = the plain weighted sum back to the estimate.
  Its three parts are also timed alone (indented rows);
* ``balancer`` — ``Balancer.backward`` on those losses: one gradient per loss with respect to the
  estimate (four backward passes through the loss graphs), the rescaling, and the combined backward,
  which here stops at the estimate (a leaf), because the model's backward is in the rows above.

One training step of the continuous baseline costs about ``encoder + decoder + discriminator update
+ losses (forward) + balancer`` plus the optimizer steps; the script prints that sum.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts 2), counted
on one forward+backward. It does not know two ops this model uses, so they are added here:
the CPU LSTM (``aten.mkldnn_rnn_layer``: ``2·T·B·(4H·I + 4H·H)`` forward, twice that backward) and
the FFTs of the STFTs (``2.5·N·log2 N`` per real FFT of length N, ``5·N·log2 N`` complex).
Element-wise work (activations, weight norm, magnitudes) is not counted. FLOPs are counted on the
CPU only; with ``--device cuda`` the column says ``n/a`` (the CPU numbers hold).

"GFLOP per s of audio" divides by ``batch × time / 24000`` seconds: a second of 32-channel audio
counts as one second.

The machine is shared: the script prints the load average (``os.getloadavg``) before and after each
table, and can wait for a quiet machine first (``--wait-load``). Two OpenMP threads on two busy cores
thrash (20× slowdowns were seen); use ``--threads 1`` when the load stays high, and ``--clock cpu``
to time with the process CPU clock (``time.process_time``), which with one thread is what the work
costs on an idle core whatever the load.

Usage::

    python benchmarks/bench_model.py                          # both shapes, 3 repeats + 1 warm-up
    python benchmarks/bench_model.py --quick                  # batch 4 (mono) / 1 (32 ch), 1 repeat
    python benchmarks/bench_model.py --threads 1 --shapes 8x1x24000 --repeats 5
    python benchmarks/bench_model.py --wait-load 1.5 --wait-max 600
    python benchmarks/bench_model.py --threads 1 --clock cpu     # on a busy shared machine
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from audioenc.config import build_config
from audioenc.losses.adversarial import (
    discriminator_adversarial_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from audioenc.quantization.rvq import ResidualVectorQuantizer
from audioenc.training.trainer import Trainer

DEFAULT_SHAPES = "32x1x24000,4x32x24000"
QUICK_SHAPES = "4x1x24000,1x32x24000"


# ---------------------------------------------------------------------------- machine and timing
def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    """1-, 5- and 15-minute load averages, e.g. ``"0.52, 0.80, 1.10"``."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def machine_line(device: torch.device) -> str:
    """One line naming the machine: CPU model and cores, torch version, threads, device."""
    text = (
        f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); torch {torch.__version__}; "
        f"torch threads {torch.get_num_threads()}; device {device}"
    )
    if device.type == "cuda":
        text += f" ({torch.cuda.get_device_name(device)})"
    return text


def wait_for_quiet(max_load: float, max_wait_s: float, poll_s: float = 30.0) -> bool:
    """Sleep until the 1-minute load average is below ``max_load`` or ``max_wait_s`` has passed.

    Returns whether the machine got quiet; prints each poll so a long wait is visible.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        load = os.getloadavg()[0]
        if load < max_load:
            print(f"load average {load_average()}: below {max_load}, measuring", file=sys.stderr)
            return True
        if time.monotonic() >= deadline:
            print(
                f"load average {load_average()}: still >= {max_load} after {max_wait_s:.0f} s; measuring anyway "
                "(consider --threads 1)",
                file=sys.stderr,
            )
            return False
        print(f"load average {load_average()}: waiting for < {max_load}", file=sys.stderr)
        time.sleep(min(poll_s, max(1.0, deadline - time.monotonic())))


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so a wall-clock timer measures it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
"""``wall``: elapsed time. ``cpu``: this process's CPU time (all its threads). On a shared machine
with ``--threads 1`` the CPU time is the time the work takes on an idle core, whatever the load;
with several threads it also counts OpenMP spinning, so read it with care."""


def get_clock(name: str, device: torch.device) -> Callable[[], float]:
    """The timer called ``name``; the CPU clock cannot time GPU work."""
    if name not in CLOCKS:
        raise ValueError(f"Unknown clock {name!r}; choose one of {', '.join(CLOCKS)}.")
    if name == "cpu" and device.type != "cpu":
        raise ValueError(f"--clock cpu measures host CPU time and cannot time work on {device}; use --clock wall.")
    return CLOCKS[name]


def timed(
    function: Callable[[], Any], device: torch.device, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, Any]:
    """``(seconds, result)`` of ``function()`` on ``clock``, synchronised on both sides."""
    synchronize(device)
    start = clock()
    result = function()
    synchronize(device)
    return clock() - start, result


def set_threads(threads: int | None) -> None:
    """Use ``threads`` intra-op threads (None: leave torch's default, the core count)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1; got {threads}.")
        torch.set_num_threads(threads)


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """``"32x1x24000,4x32x24000"`` -> ``[(32, 1, 24000), (4, 32, 24000)]``."""
    shapes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(
                f"--shapes item {item!r} is not BATCHxCHANNELSxTIME with positive integers (e.g. 32x1x24000)."
            )
        shapes.append(tuple(int(p) for p in parts))
    return shapes


# ---------------------------------------------------------------------------- FLOP counting
def _lstm_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """``aten.mkldnn_rnn_layer``: one LSTM layer over ``input [T, B, I]`` (or batch first; same count)."""
    steps_times_batch = input_shape[0] * input_shape[1]
    return 2 * steps_times_batch * (w_ih_shape[0] * w_ih_shape[1] + w_hh_shape[0] * w_hh_shape[1])


def _lstm_layer_backward_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """Backward of one LSTM layer: gradients w.r.t. inputs and weights, twice the forward matmuls."""
    return 2 * _lstm_layer_flops(input_shape, w_ih_shape, w_hh_shape)


def _fft_flops(input_shape, dim, *args, out_shape=None, complex_input: bool, **kwargs) -> int:
    dims = [d % len(input_shape) for d in dim]
    # For c2r the transform length is the output's last dimension.
    sizes_shape = out_shape if (not complex_input and out_shape is not None) else input_shape
    length = math.prod(sizes_shape[d] for d in dims)
    if length <= 1:
        return 0
    batch = math.prod(s for i, s in enumerate(sizes_shape) if i not in dims)
    per_transform = 5.0 * length * math.log2(length)
    return int(batch * per_transform / (1 if complex_input else 2))


def _fft_r2c_flops(input_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(input_shape, dim, complex_input=False, out_shape=None)


def _fft_c2r_flops(input_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(input_shape, dim, complex_input=False, out_shape=out_shape)


def _fft_c2c_flops(input_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(input_shape, dim, complex_input=True)


EXTRA_FLOP_FORMULAS = {
    torch.ops.aten.mkldnn_rnn_layer.default: _lstm_layer_flops,
    torch.ops.aten.mkldnn_rnn_layer_backward.default: _lstm_layer_backward_flops,
    torch.ops.aten._fft_r2c.default: _fft_r2c_flops,
    torch.ops.aten._fft_c2r.default: _fft_c2r_flops,
    torch.ops.aten._fft_c2c.default: _fft_c2c_flops,
}


def flop_counter() -> FlopCounterMode:
    """A silent :class:`FlopCounterMode` that also knows the CPU LSTM and the FFTs."""
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)


# ---------------------------------------------------------------------------- components
@dataclass
class Component:
    """One timed piece: ``prepare()`` (untimed) -> ``forward(inputs)`` -> ``backward(inputs, out)``."""

    name: str
    parameters: str
    prepare: Callable[[], Any]
    forward: Callable[[Any], Any] | None
    backward: Callable[[Any, Any], None] | None
    in_step: bool = True  # part of the continuous baseline's step-cost sum
    indent: bool = False  # a breakdown row of the row above


@dataclass
class Measurement:
    name: str
    parameters: str
    forward_s: list[float] = field(default_factory=list)
    backward_s: list[float] = field(default_factory=list)
    forward_gflop: float | None = None
    total_gflop: float | None = None
    in_step: bool = True
    indent: bool = False

    @property
    def forward_median(self) -> float:
        return statistics.median(self.forward_s) if self.forward_s else 0.0

    @property
    def backward_median(self) -> float:
        return statistics.median(self.backward_s) if self.backward_s else 0.0

    @property
    def total_median(self) -> float:
        if self.forward_s and self.backward_s:
            return statistics.median(f + b for f, b in zip(self.forward_s, self.backward_s))
        return self.forward_median + self.backward_median


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_components(shape: tuple[int, int, int], device: torch.device, run_dir: Path) -> list[Component]:
    """The step's pieces for audio ``shape``, built from the paper preset with ``channels`` set."""
    batch, channels, length = shape
    preset = "1ch" if channels == 1 else "32ch"
    config = build_config(preset, "paper", [f"model.channels={channels}", f"train.batch_size={batch}"])
    trainer = Trainer(config, run_dir, device)
    model, discriminator = trainer.model, trainer.discriminator
    model.train()
    discriminator.train()
    generator = torch.Generator().manual_seed(0)
    audio = (0.1 * torch.randn(shape, generator=generator)).to(device)
    with torch.no_grad():
        latents = model.encoder(audio)
        estimate = model.decoder(latents)[..., :length]
    latent_grad = torch.randn(latents.shape, generator=generator).to(device)
    audio_grad = torch.randn(estimate.shape, generator=generator).to(device)
    quantizer = (
        ResidualVectorQuantizer(
            dimension=config.model.dimension, n_q=config.model.n_q, bins=config.model.bins, q_dropout=False
        )
        .to(device)
        .train()
    )
    frame_rate = model.frame_rate
    kind = config.losses.adversarial
    weights = trainer.losses.weights()

    def zero_grads() -> None:
        for module in (model, discriminator, quantizer):
            module.zero_grad(set_to_none=True)

    def leaf_estimate() -> torch.Tensor:
        zero_grads()
        return estimate.detach().clone().requires_grad_(True)

    def input_audio() -> torch.Tensor:
        zero_grads()
        return audio

    def real_and_fake() -> torch.Tensor:
        # The discriminator update's batch: reference and detached estimate, [2B, C, T].
        zero_grads()
        return torch.cat([audio, estimate.detach()], dim=0)

    def leaf_latents() -> torch.Tensor:
        zero_grads()
        return latents.detach().clone().requires_grad_(True)

    def discriminator_update(inputs: torch.Tensor) -> torch.Tensor:
        logits, _ = discriminator(inputs)
        real_logits = [scale[:batch] for scale in logits]
        fake_logits = [scale[batch:] for scale in logits]
        return discriminator_adversarial_loss(real_logits, fake_logits, kind=kind)

    def adversarial_and_features(y_hat: torch.Tensor) -> torch.Tensor:
        # As Trainer._generator_losses: discriminator frozen, reference features without gradient.
        discriminator.requires_grad_(False)
        try:
            fake_logits, fake_features = discriminator(y_hat)
            with torch.no_grad():
                _, real_features = discriminator(audio)
        finally:
            discriminator.requires_grad_(True)
        adv = generator_adversarial_loss(fake_logits, kind=kind)
        feat = feature_matching_loss(real_features, fake_features, relative=config.losses.relative_feature_matching)
        return weights["adv"] * adv + weights["feat"] * feat

    def weighted_sum(losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(weights[key] * losses[key] for key in weights)

    def estimate_and_losses() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # The balancer's input: the four losses' graphs, built untimed.
        y_hat = leaf_estimate()
        return y_hat, trainer._generator_losses(audio, y_hat)

    codebook_entries = sum(b.numel() for name, b in quantizer.named_buffers() if name.endswith(".embed"))
    return [
        Component(
            "encoder",
            f"{count_parameters(model.encoder):,}",
            input_audio,
            lambda x: model.encoder(x),
            lambda x, z: z.backward(latent_grad),
        ),
        Component(
            f"quantizer (RVQ {config.model.n_q}x{config.model.bins}, codec only)",
            f"0 (+{codebook_entries:,} codebook values, EMA)",
            leaf_latents,
            lambda z: quantizer(z, frame_rate),
            lambda z, out: torch.autograd.backward([out.x, out.penalty], [latent_grad, torch.ones_like(out.penalty)]),
            in_step=False,
        ),
        Component(
            "decoder",
            f"{count_parameters(model.decoder):,}",
            leaf_latents,
            lambda z: model.decoder(z)[..., :length],
            lambda z, y: y.backward(audio_grad),
        ),
        Component(
            f"discriminator update ({len(discriminator.discriminators)} scales, 2x batch)",
            f"{count_parameters(discriminator):,}",
            real_and_fake,
            discriminator_update,
            lambda x, loss: loss.backward(),
        ),
        Component(
            "losses: L1 + mel + adv + feat",
            "0",
            leaf_estimate,
            lambda y_hat: trainer._generator_losses(audio, y_hat),
            lambda y_hat, losses: weighted_sum(losses).backward(),
        ),
        Component(
            "L1",
            "0",
            leaf_estimate,
            lambda y_hat: weights["l1"] * torch.nn.functional.l1_loss(y_hat, audio),
            lambda y_hat, loss: loss.backward(),
            in_step=False,
            indent=True,
        ),
        Component(
            f"multi-scale mel ({len(trainer.mel_loss.mels)} scales)",
            "0",
            leaf_estimate,
            lambda y_hat: weights["mel"] * trainer.mel_loss(audio, y_hat),
            lambda y_hat, loss: loss.backward(),
            in_step=False,
            indent=True,
        ),
        Component(
            "adv + feat (D on fake with input grad, D on real no-grad)",
            "0",
            leaf_estimate,
            adversarial_and_features,
            lambda y_hat, loss: loss.backward(),
            in_step=False,
            indent=True,
        ),
        Component(
            "balancer (4 loss grads + combined backward to the estimate)",
            "0",
            estimate_and_losses,
            None,
            lambda inputs, _: trainer.balancer.backward(inputs[1], inputs[0]),
        ),
    ]


def measure(
    component: Component,
    repeats: int,
    warmup: int,
    device: torch.device,
    count_flops: bool,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Forward/backward times of ``component`` on ``clock`` (one per repeat) and optionally its FLOPs."""
    result = Measurement(component.name, component.parameters, in_step=component.in_step, indent=component.indent)
    for index in range(warmup + repeats):
        inputs = component.prepare()
        output = None
        if component.forward is not None:
            forward_s, output = timed(partial(component.forward, inputs), device, clock)
            if index >= warmup:
                result.forward_s.append(forward_s)
        if component.backward is not None:
            backward_s, _ = timed(partial(component.backward, inputs, output), device, clock)
            if index >= warmup:
                result.backward_s.append(backward_s)
        del inputs, output
    if count_flops:
        inputs = component.prepare()
        output = None
        with flop_counter() as counter:
            if component.forward:
                output = component.forward(inputs)
        forward_flops = counter.get_total_flops()
        with flop_counter() as counter:
            if component.backward:
                component.backward(inputs, output)
        result.forward_gflop = forward_flops / 1e9
        result.total_gflop = (forward_flops + counter.get_total_flops()) / 1e9
    return result


# ---------------------------------------------------------------------------- report
def _ms(seconds: float) -> str:
    return f"{1000 * seconds:,.0f}"


def format_table(measurements: list[Measurement], audio_seconds: float, clock_name: str = "wall") -> str:
    """The markdown table of one shape, with a step-cost sum row; times in ms on ``clock_name``."""
    unit = "ms" if clock_name == "wall" else "CPU ms"
    lines = [
        f"| component | parameters | forward ({unit}) | backward ({unit}) | fwd+bwd ({unit}) | GFLOP fwd+bwd | "
        "GFLOP per s of audio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in measurements:
        name = f"&nbsp;&nbsp;↳ {m.name}" if m.indent else m.name
        forward = _ms(m.forward_median) if m.forward_s else "—"
        backward = _ms(m.backward_median) if m.backward_s else "—"
        gflop = f"{m.total_gflop:,.1f}" if m.total_gflop is not None else "n/a"
        per_second = f"{m.total_gflop / audio_seconds:,.1f}" if m.total_gflop is not None else "n/a"
        lines.append(
            f"| {name} | {m.parameters} | {forward} | {backward} | {_ms(m.total_median)} | {gflop} | {per_second} |"
        )
    # In the step, the losses' own backward is replaced by the balancer's.
    step = [m for m in measurements if m.in_step]
    step_s = sum(m.total_median for m in step if not m.name.startswith("losses")) + next(
        m.forward_median for m in step if m.name.startswith("losses")
    )
    flops = [m for m in step if m.total_gflop is not None]
    if len(flops) == len(step):
        losses = next(m for m in step if m.name.startswith("losses"))
        step_gflop = sum(m.total_gflop for m in step if m is not losses) + losses.forward_gflop
        gflop_text, per_second_text = f"{step_gflop:,.1f}", f"{step_gflop / audio_seconds:,.1f}"
    else:
        gflop_text = per_second_text = "n/a"
    lines.append(
        f"| **step estimate** (encoder + decoder + D update + losses fwd + balancer) | | | | **{_ms(step_s)}** | "
        f"{gflop_text} | {per_second_text} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Usage::")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--shapes", default=None, help=f"comma-separated BATCHxCHANNELSxTIME (default {DEFAULT_SHAPES})"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per component (default 3; 1 with --quick)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed repeats first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    parser.add_argument("--quick", action="store_true", help=f"small batches ({QUICK_SHAPES}) and 1 repeat")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall (default) or cpu: process CPU time, robust to load with --threads 1",
    )
    parser.add_argument("--no-flops", action="store_true", help="skip FLOP counting")
    parser.add_argument("--wait-load", type=float, default=None, help="wait until the 1-min load average is below this")
    parser.add_argument(
        "--wait-max", type=float, default=600.0, help="longest wait for --wait-load, seconds (default 600)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    try:
        shapes = parse_shapes(args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES))
    except ValueError as error:
        parser.error(str(error))
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch.cuda.is_available() is False on this machine")
    set_threads(args.threads)
    try:
        clock = get_clock(args.clock, device)
    except ValueError as error:
        parser.error(str(error))
    count_flops = not args.no_flops and device.type == "cpu"
    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)

    print(machine_line(device))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"repeats {repeats} (median) after {args.warmup} warm-up; times in ms, {args.clock} clock\n")
    report = []
    with tempfile.TemporaryDirectory() as run_dir:
        for shape in shapes:
            load_before = load_average()
            started = time.perf_counter()
            components = build_components(shape, device, Path(run_dir))
            measurements = [measure(c, repeats, args.warmup, device, count_flops, clock) for c in components]
            audio_seconds = shape[0] * shape[2] / 24000
            print(f"### [{shape[0]}, {shape[1]}, {shape[2]}] ({audio_seconds:g} s of audio)\n")
            print(
                f"load average before: {load_before}; after: {load_average()}; threads {torch.get_num_threads()}; "
                f"wall time {time.perf_counter() - started:.0f} s\n"
            )
            print(format_table(measurements, audio_seconds, args.clock))
            print()
            report.append(
                {
                    "shape": list(shape),
                    "load_before": load_before,
                    "load_after": load_average(),
                    "threads": torch.get_num_threads(),
                    "components": [
                        {
                            "name": m.name,
                            "parameters": m.parameters,
                            "forward_s": m.forward_s,
                            "backward_s": m.backward_s,
                            "forward_gflop": m.forward_gflop,
                            "total_gflop": m.total_gflop,
                        }
                        for m in measurements
                    ],
                }
            )
            del components, measurements
    if args.json is not None:
        payload = {"machine": machine_line(device), "clock": args.clock, "repeats": repeats, "results": report}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
