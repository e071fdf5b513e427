"""The epoch loop: batches -> steps -> validation -> checkpoints, resumable at any step.

The data position is the step: sample ``i`` of the run is drawn from a generator seeded by
``(seed, i)``, and rank ``r`` of ``W`` takes samples ``(step·W + r)·b … + b-1`` for each step
(``b`` = per-rank batch). Resuming at step ``s`` therefore continues the exact sample stream, with
any number of DataLoader workers. ``train.batch_size`` is GLOBAL: each of ``W`` ranks gets
``batch_size / W`` items.

``metrics.jsonl`` and the checkpoints agree at every instant a run can be killed: an epoch's row
is added to the trainer's history (saved in every checkpoint) before ``checkpoint_last.pt`` is
written, and appended to the file only after it. A resumed run first rewrites the file to the
history of the checkpoint it starts from, so a row the killed run wrote (or did not get to write)
appears exactly once.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from audioenc.config import Config
from audioenc.core.atomic import atomic_write, write_json
from audioenc.core.distributed import DistributedContext
from audioenc.training.logging import RunLogger, mel_comparison_image
from audioenc.training.trainer import StopSignal, Trainer


class StepSampler(Sampler[int]):
    """Global sample indices for one rank, from ``start_step`` to ``end_step`` (exclusive)."""

    def __init__(self, per_rank_batch: int, start_step: int, end_step: int, context: DistributedContext) -> None:
        self.per_rank_batch = per_rank_batch
        self.start_step = start_step
        self.end_step = end_step
        self.context = context

    def __iter__(self) -> Iterator[int]:
        world, rank, batch = self.context.world_size, self.context.rank, self.per_rank_batch
        for step in range(self.start_step, self.end_step):
            first = (step * world + rank) * batch
            yield from range(first, first + batch)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.per_rank_batch


def leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT/SIGTERM.

    Ctrl-C, ``timeout``, SLURM and ``kill -- -PGID`` signal the whole process group. A worker that
    died of it would make the main process raise mid-step (PyTorch's SIGCHLD check) before it could
    save ``last``; ignoring the signal leaves the stop to :class:`StopSignal` in the main process,
    which then shuts the workers down. A worker still notices its parent dying and exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def per_rank_batch(config: Config, context: DistributedContext) -> int:
    global_batch = config.train.batch_size
    if global_batch % context.world_size:
        raise ValueError(
            f"train.batch_size={global_batch} is the global batch and must divide evenly by the "
            f"{context.world_size} ranks; choose a multiple of {context.world_size}."
        )
    return global_batch // context.world_size


def fit(
    trainer: Trainer,
    train_set: Dataset,
    valid_set: Dataset,
    logger: RunLogger,
    progress: bool = True,
) -> dict:
    """Train until ``epochs × updates_per_epoch`` steps, validating and checkpointing each epoch.

    Returns the summary written to ``run_dir/summary.json``.
    """
    config, context = trainer.config, trainer.context
    steps_per_epoch = config.train.updates_per_epoch
    total_steps = config.train.epochs * steps_per_epoch
    batch = per_rank_batch(config, context)
    generator = torch.Generator().manual_seed(config.train.seed)  # keeps workers off the global RNG
    loader = DataLoader(
        train_set,
        batch_size=batch,
        sampler=StepSampler(batch, trainer.step, total_steps, context),
        num_workers=config.data.num_workers,
        generator=generator,
        pin_memory=trainer.device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
        worker_init_fn=leave_stop_signals_to_the_main_process,
    )
    valid_loader = DataLoader(valid_set, batch_size=batch, shuffle=False, num_workers=0)
    history_path = trainer.run_dir / "metrics.jsonl"
    restore_history(trainer, history_path)
    bar = tqdm(
        total=total_steps,
        initial=trainer.step,
        disable=not (progress and context.is_main),
        desc="train",
        unit="step",
        dynamic_ncols=True,
    )
    last_values: dict[str, float] = {}
    stopped_by = None
    start = time.perf_counter()
    ready = trainer.model.quantizer.initialized  # learnt codebooks are k-means-initialised by step 1
    baseline_done = any(row["step"] == 0 for row in trainer.history)  # resumed from the step-0 checkpoint
    if trainer.step == 0 and ready and not baseline_done:
        # the untrained model's metrics: the baseline later epochs are read against
        _end_of_epoch(trainer, valid_loader, logger, history_path, epoch=0)
    with StopSignal() as stop:
        for audio in loader:
            result = trainer.train_step(audio)
            last_values = result.values
            bar.update(1)
            if context.is_main and trainer.step % config.train.log_every == 0:
                logger.scalars(trainer.step, {f"train/{k}": v for k, v in result.values.items()})
                logger.scalars(
                    trainer.step,
                    {
                        "train/lr": trainer.optimizer.param_groups[0]["lr"],
                        "train/nonfinite_steps": trainer.nonfinite_total,
                    },
                )
                bar.set_postfix({k: f"{result.values[k]:.3g}" for k in ("l1", "mel", "adv") if k in result.values})
            epoch_end = trainer.step % steps_per_epoch == 0
            if epoch_end:
                _end_of_epoch(trainer, valid_loader, logger, history_path, trainer.step // steps_per_epoch)
            elif trainer.step % config.train.checkpoint_every == 0:
                trainer.save("last")
            if stop.received is not None:
                trainer.save("last")
                stopped_by = stop.received
                break
    bar.close()
    summary = {
        "rank_checksums": rank_checksums(trainer),
        "steps": trainer.step,
        "stopped_by_signal": stopped_by,
        "best_" + config.train.best_metric: trainer.best_value,
        "nonfinite_steps": trainer.nonfinite_total,
        "last_train_losses": last_values,
        "train_seconds_this_session": time.perf_counter() - start,
    }
    if context.is_main:
        write_json(trainer.run_dir / "summary.json", summary)
    return summary


def restore_history(trainer: Trainer, history_path: Path) -> None:
    """Make ``metrics.jsonl`` hold exactly the validation rows of the state the run starts from.

    A checkpoint from before the history was saved in it (``trainer.history is None``) takes the
    file's rows up to its step, each epoch once. The file is rewritten atomically, and only when it
    differs.
    """
    if trainer.history is None:
        trainer.history = rows_up_to(history_path, trainer.step)
    if not trainer.context.is_main:
        return
    text = "".join(json.dumps(row) + "\n" for row in trainer.history)
    current = history_path.read_text() if history_path.exists() else ""
    if current == text:
        return
    if text:
        atomic_write(history_path, lambda tmp: tmp.write_text(text))
    else:
        history_path.unlink()


def rows_up_to(history_path: Path, step: int) -> list[dict]:
    """The rows of ``history_path`` with ``step <= step``, the first of each epoch; torn lines skipped."""
    rows: list[dict] = []
    if not history_path.exists():
        return rows
    seen = set()
    for line in history_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill mid-append
        if not isinstance(row, dict) or "epoch" not in row or "step" not in row:
            continue
        if row["step"] <= step and row["epoch"] not in seen:
            seen.add(row["epoch"])
            rows.append(row)
    return rows


def rank_checksums(trainer: Trainer) -> list[float]:
    """A float64 checksum of generator + discriminator weights from every rank (rank order).

    DDP keeps ranks in sync by construction; this makes it visible (and catches a diverged rank).
    """
    parameters = [*trainer.model.parameters(), *trainer.discriminator.parameters()]
    local = torch.stack([p.detach().double().sum() + p.detach().double().abs().sum() for p in parameters]).sum()
    local = local.reshape(1).to(trainer.device)
    if not trainer.context.enabled:
        return [local.item()]
    gathered = [torch.zeros_like(local) for _ in range(trainer.context.world_size)]
    torch.distributed.all_gather(gathered, local)
    return [g.item() for g in gathered]


@torch.no_grad()
def _log_example(trainer: Trainer, valid_set: Dataset, logger: RunLogger) -> None:
    """The first validation segment (channel 0) and its reconstruction: audio and mel images."""
    model = trainer.ema.module if trainer.ema is not None else trainer.model
    was_training = model.training
    model.eval()
    try:
        reference = valid_set[0].unsqueeze(0).to(trainer.device)
        reconstruction = model(reference).audio.float()
    finally:
        model.train(was_training)
    sample_rate = trainer.config.model.sample_rate
    reference_np = reference[0, 0].cpu().numpy()
    reconstruction_np = reconstruction[0, 0].clamp(-1, 1).cpu().numpy()
    logger.audio(trainer.step, "valid/reference", reference_np, sample_rate)
    logger.audio(trainer.step, "valid/reconstruction", reconstruction_np, sample_rate)
    logger.image(trainer.step, "valid/mel", mel_comparison_image(reference_np, reconstruction_np, sample_rate))


def _end_of_epoch(
    trainer: Trainer, valid_loader: DataLoader, logger: RunLogger, history_path: Path, epoch: int
) -> None:
    metrics = trainer.validate(valid_loader)  # every rank: identical weights, identical metrics
    value = metrics[trainer.config.train.best_metric]
    if trainer.best_step <= trainer.config.train.adversarial_warmup_steps < trainer.step:
        # The first model trained with the full objective. Earlier ones (the untrained model, the
        # reconstruction-only warm-up) no longer compete: a codec that outputs the corpus's average
        # spectrum can score a lower mel distance than one that has begun to follow its input.
        trainer.best_value = math.inf
    improved = math.isfinite(value) and value < trainer.best_value
    if improved:
        trainer.best_value = value
        trainer.best_step = trainer.step
    # Plain numbers only: the row goes into the checkpoint, which loads with weights_only=True.
    row = {
        "epoch": epoch,
        "step": trainer.step,
        "best": improved,
        **{k: v if isinstance(v, (bool, int, float, str)) else float(v) for k, v in metrics.items()},
    }
    trainer.history.append(row)
    # Order matters for a kill at any point: best files first (a run resumed from the previous
    # ``last`` redoes this epoch and writes them again), then ``last`` with the row in its history,
    # then the row in the file (a resume restores it from ``last`` if the kill came before).
    if improved:
        trainer.save("best")
        trainer.export_best()
    trainer.save("last")
    if trainer.context.is_main:
        with open(history_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        logger.scalars(trainer.step, {f"valid/{k}": v for k, v in metrics.items()})
        if logger.kind != "none":
            _log_example(trainer, valid_loader.dataset, logger)
