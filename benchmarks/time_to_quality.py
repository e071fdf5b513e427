"""Time to quality: audioenc's trainer against audiocraft's ``CompressionSolver`` step, side by side.

A step that is cheaper but learns less is not faster. Here every side trains from the **same
initial weights** (audioenc's, copied into audiocraft's modules by ``audiocraft_sides``) on the
**same batches in the same order** (the embedded corpus through the run's own dataset, drawn once
before any side trains), and every side is evaluated on the **same fixed validation segments** by
the **same metric code** (:func:`audioenc.metrics.reconstruction.evaluate_codec`, the numbers a
training run logs) at the same steps. Steps are interleaved (every side does step ``k`` before any
side does ``k + 1``, the side that goes first rotating), so a change in the machine's load hits
every side alike; only the training steps are timed, never the evaluations.

Sides:

* ``audiocraft``: audiocraft's SEANet codec, MS-STFT discriminator, adversarial/feature/mel/L1
  losses, balancer and Adam, built at audioenc's configuration (``audiocraft_reference``), its
  ``run_step`` order (EnCodec's recipe: adversarial losses from step 0, no level normalisation).
* ``audioenc``: ``audioenc train``'s recipe for the preset as a user gets it (the small preset:
  level normalisation, reconstruction-only warm-up of 80 steps, relative feature matching), fp32.
* ``audioenc-bf16``: the same in bf16 autocast (``train.precision=bf16``).
* ``audioenc-as-audiocraft``: audioenc with audiocraft's settings (no normalisation, no warm-up,
  audiocraft's feature matching): the float64 conformance check shows this step computes what
  audiocraft's does, so its curve should follow audiocraft's and its time shows the step speed alone.

Reported: the validation curves (table; a plot with ``--out``), each side's training wall time, and
the wall time each audioenc side needs to reach audiocraft's final validation mel distance (the
first evaluation at or below it: conservative by up to ``--eval-every`` steps), as a fraction of
audiocraft's wall time for all its steps; the issue's goal is ≤ 1/3. The reverse too: how long
audiocraft takes to reach each audioenc side's final value (often never within the run).

The continuous codec only (the seed's baseline; with RVQ the two sides' k-means initialisations
differ by design, see ``check_conformance_audiocraft.py``).

Usage::

    .venv/bin/python benchmarks/time_to_quality.py --audiocraft /tmp/audiocraft \\
        --audiocraft-deps /tmp/audiocraft-deps --steps 480 --eval-every 40 --out /tmp/ttq

Exit code 0 when the run completes (the goal's verdict is printed, not the exit code), 2 when no
audiocraft checkout is given or it cannot be loaded (the message says what to do).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audiocraft_sides import add_audiocraft_arguments, build_sides, load_or_explain  # noqa: E402
from bench_model import load_average, machine_line  # noqa: E402

from audioenc.audio.manifest import require_usable, scan  # noqa: E402
from audioenc.config import build_config  # noqa: E402
from audioenc.core.distributed import DistributedContext, resolve_device  # noqa: E402
from audioenc.errors import UserError  # noqa: E402
from audioenc.metrics.file_evaluation import EvalSettings, evaluate_files  # noqa: E402
from audioenc.metrics.file_evaluation import format_summary as format_file_summary  # noqa: E402
from audioenc.metrics.reconstruction import evaluate_codec  # noqa: E402
from audioenc.metrics.systems import System, identity  # noqa: E402
from audioenc.training.data import build_datasets  # noqa: E402
from audioenc.training.loop import StepSampler  # noqa: E402
from audioenc.training.trainer import Trainer  # noqa: E402

# audioenc settings that make its step compute what audiocraft's run_step computes.
AUDIOCRAFT_SETTINGS = (
    "model.normalize=false",
    "train.adversarial_warmup_steps=0",
    "losses.relative_feature_matching=false",
    "model.q_dropout=false",
)
VARIANTS: dict[str, tuple[str, ...]] = {
    "audioenc": (),
    "audioenc-bf16": ("train.precision=bf16",),
    "audioenc-as-audiocraft": AUDIOCRAFT_SETTINGS,
}
METRICS = ("mel_distance", "stft_distance", "si_snr", "l1")


class AudiocraftCodec(nn.Module):
    """audiocraft's encoder and decoder behind the interface :func:`evaluate_codec` calls."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, audio: torch.Tensor) -> SimpleNamespace:
        """``audio`` ``[B, C, T]`` -> ``.audio`` ``[B, C, T]`` (the decoder's output trimmed to T)."""
        return SimpleNamespace(audio=self.decoder(self.encoder(audio))[..., : audio.shape[-1]])


@dataclass
class Side:
    """One trainer in the race: its step, the model evaluated, its time and curve."""

    name: str
    step: Callable[[torch.Tensor], dict]
    model: nn.Module
    seconds: float = 0.0  # training steps only
    skipped: int = 0  # steps a side refused (non-finite loss)
    curve: list[dict] = field(default_factory=list)

    def evaluate(self, batches: list[torch.Tensor], sample_rate: int, step: int) -> dict:
        device = next(self.model.parameters()).device
        metrics = evaluate_codec(self.model, batches, sample_rate, device)
        row = {"step": step, "seconds": self.seconds, **{k: metrics[k] for k in METRICS}}
        self.curve.append(row)
        return row


def audioenc_side(name: str, trainer: Trainer) -> Side:
    def step(audio: torch.Tensor) -> dict:
        result = trainer.train_step(audio)
        if result.skipped:
            side.skipped += 1
        return result.values

    side = Side(name, step, trainer.ema.module if trainer.ema is not None else trainer.model)
    return side


def data(config, steps: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``steps`` training batches in the run's own order and the fixed validation batches."""
    context = DistributedContext()
    train_set, valid_set = build_datasets(config, context)
    batch = config.train.batch_size
    loader = DataLoader(
        train_set,
        batch_size=batch,
        sampler=StepSampler(batch, 0, steps, context),
        num_workers=0,
        generator=torch.Generator().manual_seed(config.train.seed),
        drop_last=True,
    )
    return list(loader), list(DataLoader(valid_set, batch_size=batch, shuffle=False, num_workers=0))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    one, two = a.state_dict(), b.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


def build(modules, args, run_dir: Path) -> tuple[list[Side], object]:
    """audiocraft's side and the audioenc variants, all from audioenc's initial weights."""
    overrides = [f"train.seed={args.seed}", f"train.device={args.device}", "train.logger=none", *args.overrides]
    conformant = build_config(args.mode, args.preset, [*AUDIOCRAFT_SETTINGS, *overrides])
    if conformant.model.quantizer != "none":
        raise SystemExit("time_to_quality compares the continuous codec only (model.quantizer=none)")
    pair = build_sides(modules, conformant, run_dir / "audiocraft", dtype=torch.float32, device=args.device)
    sides = [Side("audiocraft", pair.reference, AudiocraftCodec(pair.reference.encoder, pair.reference.decoder))]
    for name in args.variants:
        if name == "audioenc-as-audiocraft":
            trainer = pair.trainer
        else:
            trainer = Trainer(
                build_config(args.mode, args.preset, [*VARIANTS[name], *overrides]), run_dir / name, args.device
            )
            if not (
                same_weights(trainer.model, pair.trainer.model)
                and same_weights(trainer.discriminator, pair.trainer.discriminator)
            ):
                raise RuntimeError(f"{name}: initial weights differ from the others' (same seed expected)")
        sides.append(audioenc_side(name, trainer))
    return sides, conformant


def race(
    sides: list[Side],
    batches: list[torch.Tensor],
    valid: list[torch.Tensor],
    sample_rate: int,
    eval_every: int,
    device: torch.device,
) -> None:
    """Interleaved steps (the first side rotating), evaluations at step 0, every ``eval_every``, the end."""
    for side in sides:
        side.evaluate(valid, sample_rate, 0)
    for step, audio in enumerate(batches, start=1):
        first = step % len(sides)
        for side in sides[first:] + sides[:first]:
            batch = audio.to(device, copy=True)  # a step never sees what another did to its input
            start = time.perf_counter()
            side.step(batch)
            side.seconds += time.perf_counter() - start
        if step % eval_every == 0 or step == len(batches):
            rows = [side.evaluate(valid, sample_rate, step) for side in sides]
            print(
                f"step {step}: "
                + "; ".join(
                    f"{s.name} mel {r['mel_distance']:.4f} ({r['seconds']:.0f} s)" for s, r in zip(sides, rows)
                ),
                flush=True,
            )


def reach(curve: list[dict], target: float) -> dict | None:
    """The first evaluation after step 0 at or below ``target`` mel distance, or None."""
    return next((row for row in curve if row["step"] > 0 and row["mel_distance"] <= target), None)


def summarise(sides: list[Side]) -> dict:
    reference = sides[0]
    target = reference.curve[-1]["mel_distance"]
    summary = {"audiocraft_final_mel": target, "audiocraft_seconds": reference.seconds, "sides": {}}
    for side in sides:
        final = side.curve[-1]
        hit = reach(side.curve, target)
        back = reach(reference.curve, final["mel_distance"])
        at_equal_steps = [
            ours["mel_distance"] / theirs["mel_distance"] for ours, theirs in zip(side.curve[1:], reference.curve[1:])
        ]
        summary["sides"][side.name] = {
            "final": final,
            "seconds": side.seconds,
            "seconds_per_step": side.seconds / max(final["step"], 1),
            "skipped_steps": side.skipped,
            "reaches_audiocraft_final": None
            if hit is None
            else {
                "step": hit["step"],
                "seconds": hit["seconds"],
                "fraction_of_audiocraft": hit["seconds"] / reference.seconds,
            },
            "audiocraft_reaches_this_final": None
            if back is None
            else {"step": back["step"], "seconds": back["seconds"]},
            "mel_ratio_to_audiocraft_at_equal_steps": at_equal_steps,
        }
    return summary


def format_curves(sides: list[Side]) -> str:
    names = [s.name for s in sides]
    lines = [
        "| step | " + " | ".join(f"{n} mel (s)" for n in names) + " |",
        "| ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for index, row in enumerate(sides[0].curve):
        cells = [f"{s.curve[index]['mel_distance']:.4f} ({s.curve[index]['seconds']:.0f})" for s in sides]
        lines.append(f"| {row['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_summary(summary: dict, steps: int, eval_every: int) -> str:
    lines = [
        f"audiocraft's final validation mel distance (step {steps}): {summary['audiocraft_final_mel']:.4f}, "
        f"reached in {summary['audiocraft_seconds']:.1f} s of training",
        "",
        "| side | final mel | final STFT dist | final SI-SNR dB | train s | s/step | to audiocraft's final: step, s | "
        "fraction of audiocraft's time | goal ≤ 1/3 | mel / audiocraft's at equal steps (median, worst) | "
        "audiocraft to this final: step |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, info in summary["sides"].items():
        final, hit, back = info["final"], info["reaches_audiocraft_final"], info["audiocraft_reaches_this_final"]
        ratios = sorted(info["mel_ratio_to_audiocraft_at_equal_steps"])
        if name == "audiocraft":
            reached, fraction, goal, ratio_text = "—", "1", "—", "—"
        else:
            reached = "not reached" if hit is None else f"{hit['step']}, {hit['seconds']:.1f}"
            fraction = "—" if hit is None else f"{hit['fraction_of_audiocraft']:.3f}"
            goal = "—" if hit is None else ("met" if hit["fraction_of_audiocraft"] <= 1 / 3 else "**not met**")
            ratio_text = f"{ratios[len(ratios) // 2]:.3f}, {ratios[-1]:.3f}" if ratios else "—"
        back_text = "—" if name == "audiocraft" else ("not within the run" if back is None else str(back["step"]))
        lines.append(
            f"| {name} | {final['mel_distance']:.4f} | {final['stft_distance']:.4f} | {final['si_snr']:.2f} | "
            f"{info['seconds']:.1f} | {info['seconds_per_step']:.3f} | {reached} | {fraction} | {goal} | "
            f"{ratio_text} | {back_text} |"
        )
    lines.append(f"\n(time to a value: the first evaluation at or below it; evaluations every {eval_every} steps)")
    return "\n".join(lines)


def on_real_audio(
    sides: list[Side], folder: Path, content: str, sample_rate: int, channels: int, out: Path | None
) -> str:
    """Every side's final model on the real recordings in ``folder`` (whole files, up to 10 s each),
    with ``audioenc eval``'s measures and bootstrap intervals; returns the table."""
    manifest = scan(
        folder, write_cache=False
    )  # what `audioenc eval` reads: every usable file, the rest refused with a reason
    files = [Path(manifest.root) / entry.path for entry in require_usable(manifest)]

    def reconstructor(model: nn.Module):
        @torch.no_grad()
        def reconstruct(audio: np.ndarray) -> np.ndarray:
            model.eval()
            device = next(model.parameters()).device
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0).to(device)
            return model(x).audio[0].double().cpu().numpy()

        return reconstruct

    systems = [identity(), *(System(side.name, None, reconstructor(side.model), "codec") for side in sides)]
    evaluation = evaluate_files(
        files, systems, sample_rate, channels, EvalSettings(content=content, resamples=1000), progress=False
    )
    if out is not None:
        evaluation.write(out / f"real_{folder.name}")
    return f"real recordings: {folder} ({len(files)} files, content {content})\n" + format_file_summary(
        evaluation.summary(1000), evaluation.measures
    )


def plot(sides: list[Side], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for side in sides:
        steps = [r["step"] for r in side.curve]
        seconds = [r["seconds"] for r in side.curve]
        mel = [r["mel_distance"] for r in side.curve]
        by_step.plot(steps, mel, marker="o", markersize=3, label=side.name)
        by_time.plot(seconds, mel, marker="o", markersize=3, label=side.name)
    target = sides[0].curve[-1]["mel_distance"]
    for axis, label in ((by_step, "training step"), (by_time, "training wall time (s)")):
        axis.axhline(target, color="grey", linestyle=":", linewidth=1)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    by_step.set_ylabel("validation mel distance (lower is better)")
    by_step.set_yscale("log")
    by_time.legend()
    figure.suptitle("Same initial weights, same batches: validation mel distance")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_audiocraft_arguments(parser)
    parser.add_argument("--steps", type=int, default=480)
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"audioenc sides, among {list(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    parser.add_argument(
        "--device",
        default="cpu",
        help="where every side trains: cpu, cuda, cuda:N (the step's "
        "losses are read back each step, so the timing is synchronous)",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for time_to_quality.{json,md,png}")
    parser.add_argument(
        "--real",
        action="append",
        default=[],
        metavar="DIR:CONTENT",
        help="after training, evaluate every side on the recordings in DIR (content speech, music "
        "or general: picks the perceptual measures); repeatable",
    )
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every side")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := [v for v in args.variants if v not in VARIANTS]:
        parser.error(f"unknown variants {unknown}; choose among {list(VARIANTS)}")

    loaded = load_or_explain(
        args,
        "This comparison trains audiocraft's own step beside audioenc's and",
        ".venv/bin/python benchmarks/time_to_quality.py --audiocraft /tmp/audiocraft "
        "--audiocraft-deps /tmp/audiocraft-deps --out /tmp/ttq",
    )
    if loaded is None:
        return 2
    modules, root, commit = loaded
    try:
        args.device = resolve_device(args.device)
    except UserError as error:
        print(error, file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*weight_norm.*")

    print(machine_line(args.device))
    print(f"audiocraft: {root} (commit {commit}); load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        sides, config = build(modules, args, Path(tmp))
        batches, valid = data(config, args.steps)
        shape = list(batches[0].shape)
        print(
            f"{args.preset} preset, {args.mode}, batch {shape}, {args.steps} steps, lr {config.optim.lr}, "
            f"{len(valid)} validation batches ({sum(len(b) for b in valid)} segments)",
            flush=True,
        )
        started = time.perf_counter()
        race(sides, batches, valid, config.model.sample_rate, args.eval_every, args.device)
        total = time.perf_counter() - started
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for side in sides:  # the final weights, to evaluate again later
            torch.save(side.model.state_dict(), args.out / f"{side.name}.pt")
    real_tables = []
    for item in args.real:
        folder, _, content = item.rpartition(":")
        real_tables.append(
            on_real_audio(sides, Path(folder), content, config.model.sample_rate, config.model.channels, args.out)
        )
    print(f"load average after: {load_average()}; whole race {total:.0f} s")
    summary = summarise(sides)
    curves, table = format_curves(sides), format_summary(summary, args.steps, args.eval_every)
    print("\n" + curves + "\n\n" + table)
    for text in real_tables:
        print("\n" + text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report = {
            "machine": machine_line(args.device),
            "audiocraft_commit": commit,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "batch_shape": shape,
            "summary": summary,
            "curves": {s.name: s.curve for s in sides},
        }
        (args.out / "time_to_quality.json").write_text(json.dumps(report, indent=2))
        (args.out / "time_to_quality.md").write_text("\n\n".join([curves, table, *real_tables]) + "\n")
        plot(sides, args.out / "time_to_quality.png")
        print(f"wrote {args.out}/time_to_quality.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
