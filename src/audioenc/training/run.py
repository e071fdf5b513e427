"""One training run from a resolved config: devices, data, trainer, logger, loop, summary."""

from __future__ import annotations

import json
from pathlib import Path

from audioenc.config import Config
from audioenc.training.checkpoint import load_training_state
from audioenc.training.data import build_datasets
from audioenc.training.distributed import init_distributed, resolve_device, shutdown, wait_for_all_ranks
from audioenc.training.logging import RunLogger
from audioenc.training.loop import fit
from audioenc.training.trainer import Trainer


def train(config: Config, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Train ``config`` in ``run_dir``; with ``resume`` continue from ``checkpoint_last.pt`` exactly.

    Returns the run summary (also written to ``run_dir/summary.json``).
    """
    run_dir = Path(run_dir)
    last = run_dir / "checkpoint_last.pt"
    if last.exists() and not resume:
        raise FileExistsError(
            f"{run_dir} already holds a run ({last.name}); pass --resume to continue it or choose a new --run-dir."
        )
    device = resolve_device(config.train.device)
    context = init_distributed(device)
    try:
        if context.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            config.save(run_dir / "config.json")
        train_set, valid_set = build_datasets(config, context)
        trainer = Trainer(config, run_dir, device, context)
        if resume:
            trainer.load_state_dict(load_training_state(last), last)
        logger = RunLogger(config.train.logger, run_dir, config.to_dict(), enabled=context.is_main)
        try:
            summary = fit(trainer, train_set, valid_set, logger, progress=progress)
        finally:
            logger.close()
        if context.is_main:
            print(summary_table(run_dir, summary))
        wait_for_all_ranks()
        return summary
    finally:
        shutdown()


def summary_table(run_dir: Path, summary: dict) -> str:
    """A plain-text table of the run's validation history and where its files are."""
    lines = [f"run folder: {run_dir}"]
    history_path = Path(run_dir) / "metrics.jsonl"
    if history_path.exists():
        rows = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
        keys = [k for k in ("l1", "mel_distance", "si_snr", "mel_identified", "ild_error_db", "coherence_error")
                if k in rows[0]]
        lines.append(" ".join(f"{h:>14}" for h in ["epoch", "step", *keys, "best"]))
        for row in rows:
            cells = [f"{row['epoch']:>14}", f"{row['step']:>14}"]
            cells += [f"{row[k]:>14.4f}" for k in keys]
            cells.append(f"{'*' if row['best'] else '':>14}")
            lines.append(" ".join(cells))
    lines.append(f"steps: {summary['steps']}, non-finite steps skipped: {summary['nonfinite_steps']}")
    if (Path(run_dir) / "model_best.safetensors").exists():
        lines.append(f"best model: {Path(run_dir) / 'model_best.safetensors'}")
    return "\n".join(lines)
