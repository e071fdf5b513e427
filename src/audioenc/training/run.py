"""One training run from a resolved config: devices, data, trainer, logger, loop, summary."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from audioenc.config import Config
from audioenc.core.atomic import atomic_write, write_json
from audioenc.core.distributed import (
    init_distributed,
    resolve_device,
    shutdown,
    wait_for_all_ranks,
)
from audioenc.errors import UserError
from audioenc.models.files import load_training_state, model_weights_hash, require_training_state
from audioenc.outputs import RunFolderLock, check_output
from audioenc.training.checkpoint import (
    check_compatible,
    describe_changes,
    remove_stale_temporaries,
    training_changes,
)
from audioenc.training.data import build_datasets
from audioenc.training.logging import RunLogger
from audioenc.training.loop import fit
from audioenc.training.trainer import Trainer


def train(
    config: Config,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    allow_changed_training: bool = False,
    init_from: tuple[str, torch.nn.Module] | None = None,
) -> dict:
    """Train ``config`` in ``run_dir``; with ``resume`` continue from ``checkpoint_last.pt`` exactly.

    Everything that can refuse the run (the checkpoint, its model and training settings, the data)
    is checked before anything is written: a refused resume leaves the run folder as it was, and a
    refused new run leaves no folder behind. A resume whose training settings (batch size, segment
    length, seed, data, schedule, objective, optimiser: see
    :func:`~audioenc.training.checkpoint.training_changes`) differ from the checkpoint's is refused
    unless ``allow_changed_training``; then the change is printed and recorded in
    ``run_dir/changes.jsonl``.

    ``init_from = (source, codec)`` starts a new run from ``codec``'s weights (``audioenc train
    --init-from``; ``config.model`` must be the codec's): the codec and its weight EMA start from
    them, the discriminator, optimisers and balancers start fresh. Said on stdout and recorded in
    ``run_dir/init_from.json``.

    Returns the run summary (also written to ``run_dir/summary.json``).
    """
    run_dir = Path(run_dir)
    last = run_dir / "checkpoint_last.pt"
    if init_from is not None and resume:
        raise UserError("--init-from starts a new run; --resume continues a run's own checkpoint: use one of them.")
    # A run folder is continued (--resume), never replaced: only "is it a folder, can it be written" applies here.
    check_output(run_dir, "--run-dir", overwrite=True, folder=True)
    _refuse_existing_run(last, resume)
    created = _first_missing_folder(run_dir)  # what this call creates (None: the folder exists already)
    device = resolve_device(config.train.device)
    context = init_distributed(device)
    started = False
    lock = RunFolderLock(run_dir, "--run-dir")
    try:
        if context.is_main:
            lock.acquire()  # one process per run folder: a second one would log every epoch twice
            _refuse_existing_run(last, resume)  # again, now that no other process can start the run
        state, changes = None, []
        if resume:
            state = require_training_state(load_training_state(last), last)
            check_compatible(state["config"], config, last)
            changes = training_changes(state["config"], config)
            if changes and not allow_changed_training:
                raise UserError(
                    f"Checkpoint {last} was made with other training settings: {describe_changes(changes)}. "
                    "Resuming would not continue that run exactly where it stopped: use the settings of that run, "
                    "a new --run-dir, or --allow-changed-training to continue with the change "
                    "(it is then recorded in changes.jsonl)."
                )
            total = config.train.epochs * config.train.updates_per_epoch
            if int(state["step"]) > total:
                raise UserError(
                    f"Checkpoint {last} is at step {int(state['step'])}, past the end of this run "
                    f"(train.epochs={config.train.epochs} × train.updates_per_epoch="
                    f"{config.train.updates_per_epoch} = {total} steps); raise --epochs to continue it."
                )
        train_set, valid_set = build_datasets(config, context)
        trainer = Trainer(config, run_dir, device, context)
        if state is not None:
            trainer.load_state_dict(state, last)
            del state
        if init_from is not None:
            initialise_from(trainer, *init_from)
        if context.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(run_dir)  # half-written files of a killed run
            atomic_write(run_dir / "config.json", config.save)
            if changes:
                record_changes(run_dir, trainer.step, changes)
            if init_from is not None:
                record_init(run_dir, init_from[0], trainer.model)
        logger = RunLogger(config.train.logger, run_dir, config.to_dict(), enabled=context.is_main)
        started = True
        try:
            summary = fit(trainer, train_set, valid_set, logger, progress=progress)
        finally:
            logger.close()
        if context.is_main:
            print(summary_table(run_dir, summary))
        wait_for_all_ranks()
        return summary
    except BaseException:
        if not started and created is not None and lock.held:
            shutil.rmtree(created, ignore_errors=True)  # only the folders this call made
        raise
    finally:
        lock.release()
        shutdown()


RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoint_best.pt",
    "model_best.safetensors",
    "model_best.json",
    "changes.jsonl",
    "init_from.json",
)
"""Names a run writes into its folder besides ``checkpoint_last.pt`` (and logger folders)."""


def _refuse_existing_run(last: Path, resume: bool) -> None:
    """A new run must not start over a run folder's checkpoint (its history would mix with the new one),
    nor replace files of another kind that happen to carry a run's names. Other files (a data folder,
    notes) may share the folder; a run killed before its first checkpoint (its ``config.json`` and
    nothing to resume) is started again."""
    if resume:
        return
    if last.exists():
        raise FileExistsError(
            f"{last.parent} already holds a run ({last.name}); pass --resume to continue it or choose a new --run-dir."
        )
    if (last.parent / "config.json").is_file():
        return
    clashes = [name for name in RUN_FILES if (last.parent / name).exists()]
    if clashes:
        raise UserError(
            f"--run-dir {last.parent} already holds {', '.join(clashes)}, not from an audioenc run; "
            "a new run would replace them: choose a new or empty --run-dir."
        )


def initialise_from(trainer: Trainer, source: str, codec: torch.nn.Module) -> None:
    """Load ``codec``'s weights (codebooks included) into the trainer's codec and its weight EMA."""
    try:
        trainer.model.load_state_dict(codec.state_dict())
    except RuntimeError as error:  # a model.* override changed the architecture
        message = " ".join(str(error).split())[:300]
        raise UserError(
            f"--init-from {source}: its weights do not fit this run's model settings ({message}); "
            "drop the model.* overrides that change the architecture."
        ) from None
    if trainer.ema is not None:
        trainer.ema.module.load_state_dict(codec.state_dict())


def record_init(run_dir: Path, source: str, model: torch.nn.Module) -> None:
    """Say where the run's weights came from, on stdout and in ``run_dir/init_from.json``."""
    message = f"initialised from {source}; the discriminator starts fresh"
    row = {
        "init_from": str(Path(source).resolve()),
        "model_weights_sha256": model_weights_hash(model),
        "note": message + " (and so do the optimisers and the loss balancers)",
    }
    write_json(Path(run_dir) / "init_from.json", row)
    print(f"{message} (recorded in {Path(run_dir) / 'init_from.json'}).")


def _first_missing_folder(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (``mkdir(parents=True)`` creates it)."""
    path = Path(path).absolute()
    if path.exists() or path.is_symlink():
        return None
    while not (path.parent.exists() or path.parent == path):
        path = path.parent
    return path


def record_changes(run_dir: Path, step: int, changes: list) -> None:
    """Append the allowed change of training settings to ``run_dir/changes.jsonl`` and say so."""
    path = Path(run_dir) / "changes.jsonl"
    row = {
        "step": step,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "changes": {key: {"checkpoint": old, "now": new} for key, old, new in changes},
    }
    before = path.read_text() if path.exists() else ""
    if before and not before.endswith("\n"):
        before += "\n"
    atomic_write(path, lambda tmp: tmp.write_text(before + json.dumps(row) + "\n"))
    print(
        f"Resuming {run_dir} at step {step} with changed training settings (--allow-changed-training): "
        f"{describe_changes(changes)}; recorded in {path}."
    )


def summary_table(run_dir: Path, summary: dict) -> str:
    """A plain-text table of the run's validation history and where its files are."""
    lines = [f"run folder: {run_dir}"]
    history_path = Path(run_dir) / "metrics.jsonl"
    rows = []
    if history_path.exists():
        rows = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
    if rows:
        keys = [
            k
            for k in (
                "l1",
                "mel_distance",
                "stft_distance",
                "si_snr",
                "mel_identified",
                "ild_error_db",
                "coherence_error",
            )
            if k in rows[0]
        ]
        lines.append(" ".join(f"{h:>14}" for h in ["epoch", "step", *keys, "best"]))
        for row in rows:
            cells = [f"{row['epoch']:>14}", f"{row['step']:>14}"]
            cells += [f"{row[k]:>14.4f}" for k in keys]
            cells.append(f"{'*' if row['best'] else '':>14}")
            lines.append(" ".join(cells))
    lines.append(f"steps: {summary['steps']}, non-finite steps skipped: {summary['nonfinite_steps']}")
    changes_path = Path(run_dir) / "changes.jsonl"
    if changes_path.exists():
        steps = [str(json.loads(line)["step"]) for line in changes_path.read_text().splitlines() if line.strip()]
        lines.append(f"training settings changed at step {', '.join(steps)} (see {changes_path})")
    if (Path(run_dir) / "model_best.safetensors").exists():
        lines.append(f"best model: {Path(run_dir) / 'model_best.safetensors'}")
    return "\n".join(lines)
