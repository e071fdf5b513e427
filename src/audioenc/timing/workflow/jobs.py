"""CRNN trainings of steps 3 and 5, several processes at once.

Every model trains on one torch thread per process, so a seed gives the same weights on any
machine and in any number of workers (a test checks parallel = in-process, bit for bit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import torch

from audioenc.timing.augment import AugmentSettings
from audioenc.timing.fitting import TrainingHistory
from audioenc.timing.shared_trunk import train_shared_trunk
from audioenc.timing.weak import CRNNConfig, FeatureSet, WeakCRNN, train_weak_encoder
from audioenc.timing.workflow.data import WorkflowData, one_thread
from audioenc.timing.workflow.settings import TrainingBudget


@dataclass(frozen=True)
class TrainedCRNN:
    """A trained CRNN, its history and its training wall time (s)."""

    model: WeakCRNN
    history: TrainingHistory
    seconds: float


@dataclass(frozen=True)
class WeakJob:
    """One CRNN training: a name, its pooling rule, its classes and the shared settings (augmentation
    and mean teacher off unless ``augment`` turns them on)."""

    name: str
    pooling: str
    classes: tuple[str, ...]
    seed: int
    budget: TrainingBudget
    config: CRNNConfig
    augment: AugmentSettings = AugmentSettings()


_WORKER_SETS: dict[str, FeatureSet] = {}


def _init_worker(*sets: FeatureSet | None) -> None:
    """Worker start: one torch thread; the feature sets (passed under spawn, inherited under fork)."""
    torch.set_num_threads(1)
    if sets:
        _share(*sets)


def _share(train: FeatureSet, validation: FeatureSet, unlabeled: FeatureSet | None) -> None:
    """The feature sets every job of this process trains on (unlabeled: the mean teacher's clips without labels)."""
    _WORKER_SETS["train"], _WORKER_SETS["validation"] = train, validation
    if unlabeled is not None:
        _WORKER_SETS["unlabeled"] = unlabeled


def _run_job(job: WeakJob) -> TrainedCRNN:
    started = time.perf_counter()
    model, history = train_weak_encoder(
        (_WORKER_SETS["train"], _WORKER_SETS["validation"]),
        job.pooling,
        job.seed,
        epochs=job.budget.max_epochs,
        batch_size=job.budget.batch_size,
        learning_rate=job.budget.learning_rate,
        config=job.config,
        classes=job.classes,
        patience=job.budget.patience,
        budget_seconds=job.budget.budget_seconds,
        augment=job.augment,
        # The corpus's clips without labels feed the mean teacher's consistency loss; without any, it is
        # taken on the labeled batch (train_weak_encoder).
        unlabeled=_WORKER_SETS.get("unlabeled") if job.augment.mean_teacher else None,
    )
    return TrainedCRNN(model, history, time.perf_counter() - started)


def train_shared(
    rules: Sequence[str],
    classes: tuple[str, ...],
    seed: int,
    budget: TrainingBudget,
    config: CRNNConfig,
    data: WorkflowData,
    log: Callable[[str], None],
) -> dict[str, TrainedCRNN]:
    """Train one CRNN per rule on a shared trunk (:mod:`audioenc.timing.shared_trunk`), here, on one torch
    thread; each rule's ``seconds`` is the shared wall time."""
    with one_thread():
        models, histories, seconds = train_shared_trunk(
            (data.features["train"], data.features["validation"]),
            rules,
            seed,
            epochs=budget.max_epochs,
            batch_size=budget.batch_size,
            learning_rate=budget.learning_rate,
            config=config,
            classes=classes,
            patience=budget.patience,
            budget_seconds=budget.budget_seconds,
        )
    log(f"  trained {', '.join(rules)} on a shared trunk in {seconds:.1f} s")
    return {rule: TrainedCRNN(models[rule], histories[rule], seconds) for rule in rules}


def train_jobs(
    jobs: Sequence[WeakJob], data: WorkflowData, workers: int, log: Callable[[str], None]
) -> dict[str, TrainedCRNN]:
    """Train CRNN jobs, ``workers`` processes at once (1: here, one thread)."""
    results = {}
    sets = (data.features["train"], data.features["validation"], data.unlabeled)
    if workers <= 1 or len(jobs) == 1:
        with one_thread():
            _share(*sets)
            try:
                for job in jobs:
                    results[job.name] = _run_job(job)
                    log(f"  trained {job.name} in {results[job.name].seconds:.1f} s")
            finally:
                _WORKER_SETS.clear()
        return results
    import multiprocessing

    # fork where available: workers share the features copy-on-write and start at once, and the
    # caller's main module is not re-imported (spawn would need an `if __name__ == "__main__"`
    # guard in every script calling run_workflow). Workers set one torch thread before any
    # torch work, the pattern of torch's DataLoader workers, so the parent's OpenMP pool is
    # never used in a child.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    _share(*sets)
    try:
        with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)),
            mp_context=context,
            initializer=_init_worker,
            initargs=sets if method == "spawn" else (),
        ) as pool:
            futures = {job.name: pool.submit(_run_job, job) for job in jobs}
            for name, future in futures.items():
                results[name] = future.result()
                log(f"  trained {name} in {results[name].seconds:.1f} s")
    finally:
        _WORKER_SETS.clear()
    return results
