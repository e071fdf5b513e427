"""The lab workflow of the Speech and Audio Encoders track: seven steps, one artifact each.

``run_workflow(data, encoder, out, seed)`` runs, in the track's order, each step writing into
its own folder of the run folder ``out``:

==== ================== ==================================================================
step folder             what it does and writes
==== ================== ==================================================================
0    ``00_data``        reads the DESED-layout corpus, validates every label row, extracts
                        log-mels; ``data.json`` and ``dropped.tsv`` (every row or file left
                        out, with its file and line)
1    ``01_pooling``     **clip summary and pooling choice**: one pooling-neutral frame scorer
                        (every frame trained towards its clip's labels, no pooling in its
                        loss), then the six pooling rules on the *same* frame scores (the
                        attention and AutoPool parameters fitted on the training clips);
                        clip AP and accuracy per rule: ``clip_metrics.tsv/json``,
                        ``pooled_levels.png``
2    ``02_frames``      **frame-level behaviour**: frame scores per class over time on sample
                        clips with the true events marked: ``frame_scores.png``,
                        ``frame_view.json``
3    ``03_weak``        **weak-label encoder**: the CRNN of :mod:`audioenc.timing.weak` trained
                        from clip labels only, once per pooling rule, same split, same seed:
                        ``<rule>/`` (weights), ``training.json``, ``training_curves.png``
4    ``04_boundaries``  **boundaries on positive clips only**: onset/offset errors, collar F1
                        and PSDS1/PSDS2 (sed_scores_eval) beside clip AP and accuracy; the
                        pooling rule chosen on the validation split; disagreements called
                        out: ``boundary_metrics.tsv/json``, ``event_errors.tsv``,
                        ``error_distributions.png``, ``onset_aligned_scores.png``,
                        ``around_boundaries.png``
5    ``05_probe``       **frozen encoder + probe against scratch**, same split, bootstrap
                        intervals over clips: ``comparison.tsv/json``, ``comparison.png``,
                        ``probe/``, ``encoder/`` and ``scratch/`` when trained here
6    ``06_adapt``       **light adaptation only if the frozen path stops short** (rule in
                        :class:`audioenc.timing.probe.AdaptationRule`): ``adaptation.json``,
                        ``adapted/``, ``comparison.png`` when it ran
7    (root)             **the note**: ``report.md`` and ``report.json``
==== ================== ==================================================================

Data (``--data DIR``, default the embedded event corpus): the layout of
:mod:`audioenc.audio.synth_events` — ``DIR/audio/{train,validation,test}/`` and
``DIR/metadata/{split}_strong.tsv`` and/or ``{split}_weak.tsv``. ``train`` is required; a
missing ``validation`` or ``test`` split is carved from ``train`` (20 % each, seeded) and the
report says so. Any sample rate and channel count: clips are downmixed to mono (mean of the
channels) and resampled with soxr (24 kHz for the log-mel models, the encoder's own rate for
the frozen encoder). Training uses clip (weak) labels only; the boundary steps need strong
labels on the evaluation split and say so when they are absent.

The frozen encoder (step 5): ``--encoder`` (a codec run folder / ``model_best.safetensors`` /
``checkpoint_*.pt``, a weak-CRNN folder, or a HEAR module) probed on all classes; without it,
a weak-label CRNN trained here on the *other* classes (``held_out_classes`` are hidden from
it) and probed on the held-out ones — a transfer test, not a re-read of its own labels.

Run time: every model trains on one thread per process (the same numbers on any machine for
a seed); the CRNN trainings run in ``workers`` processes at once. Default settings take about
five minutes on two CPU cores; ``fast=True`` is a reduced run for tests.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from audioenc.audio.formats import EventSplit, Issue, read_corpus_split, split_paths
from audioenc.timing import report as report_module
from audioenc.timing.boundaries import boundary_errors
from audioenc.timing.features import LogMel, LogMelConfig, load_audio
from audioenc.timing.pooling import POOLING_NAMES, make_pooling
from audioenc.timing.probe import (
    AdaptationRule,
    ClipEvaluator,
    EncoderHandle,
    ProbeConfig,
    adaptation_split,
    check_adaptation_split,
    clip_metrics,
    clip_targets,
    encoder_embeddings,
    load_encoder,
    parameters_fingerprint,
    predict_frames,
    save_module,
    train_adapted,
    train_probe,
)
from audioenc.timing.weak import (
    CRNNConfig,
    FeatureSet,
    Predictions,
    TrainingHistory,
    WeakCRNN,
    collate_padded,
    feature_statistics,
    predict,
    save_weak_encoder,
    train_weak_encoder,
)

SPLITS: tuple[str, ...] = ("train", "validation", "test")
STEP_FOLDERS: tuple[str, ...] = ("00_data", "01_pooling", "02_frames", "03_weak", "04_boundaries", "05_probe", "06_adapt")
CARVE_SHARE = 0.2
"""Share of the training clips carved out for a missing validation or test split."""


@dataclass(frozen=True)
class WorkflowSettings:
    """Sizes of one workflow run (defaults: about five minutes on two CPU cores).

    Attributes:
        crnn: the weak-label CRNN (steps 3 and 5; :class:`audioenc.timing.weak.CRNNConfig`).
        weak_epochs: epochs of every CRNN training.
        weak_batch_size: clips per CRNN step.
        weak_learning_rate: Adam step size of the CRNN (cosine-decayed by the trainer).
        scorer_hidden: hidden channels of the step-1 frame scorer.
        scorer_steps: Adam steps of the step-1 frame scorer (16 clips each).
        pool_fit_steps: Adam steps fitting the attention and AutoPool parameters in step 1.
        probe: the probe head and the adaptation schedule (:class:`ProbeConfig`).
        rule: when to adapt and when adaptation pays off (:class:`AdaptationRule`).
        pooling_ap_margin: a rule may be chosen if its validation clip mAP is within this
            of the best (see :func:`audioenc.timing.report.choose_pooling`).
        held_out_classes: classes hidden from the default (self-trained) frozen encoder.
        bootstrap_resamples: bootstrap resamples of the clip and onset metrics.
        f1_resamples: bootstrap resamples of collar F1 (a sed_scores_eval call each).
        max_clips: at most this many clips per split (train, validation, test), None = all.
        plot_clips: sample clips in the frame-score plots.
        workers: processes training CRNNs at once (1: in this process).
    """

    crnn: CRNNConfig = CRNNConfig()
    weak_epochs: int = 8
    weak_batch_size: int = 16
    weak_learning_rate: float = 3e-3
    scorer_hidden: int = 32
    scorer_steps: int = 150
    pool_fit_steps: int = 150
    probe: ProbeConfig = ProbeConfig()
    rule: AdaptationRule = AdaptationRule()
    pooling_ap_margin: float = 0.10
    held_out_classes: int = 2
    bootstrap_resamples: int = 1000
    f1_resamples: int = 200
    max_clips: tuple[int, int, int] | None = None
    plot_clips: int = 4
    workers: int = 2

    @classmethod
    def fast(cls) -> WorkflowSettings:
        """A reduced run for tests (tiny models, few epochs; numbers are not meaningful)."""
        return cls(
            crnn=CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8),
            weak_epochs=2,
            scorer_hidden=8,
            scorer_steps=20,
            pool_fit_steps=20,
            probe=ProbeConfig(hidden=16, epochs=3, adapt_epochs=2),
            bootstrap_resamples=200,
            f1_resamples=20,
            max_clips=(48, 16, 16),
            plot_clips=3,
            workers=1,
        )


# =========================================================================== data


@dataclass
class WorkflowData:
    """The validated corpus of one run.

    Attributes:
        root: the corpus folder.
        splits: ``train``, ``validation`` and ``test`` :class:`EventSplit` (only usable clips).
        classes: the class vocabulary (from ``corpus.json``, else the training labels).
        features: log-mel :class:`FeatureSet` per split.
        issues: every dropped, merged or clipped row and every unreadable file.
        notes: how the splits were formed (e.g. a carved validation split).
        audio_formats: ``"<rate> Hz, <channels> ch" -> clip count`` over all splits.
    """

    root: Path
    splits: dict[str, EventSplit]
    classes: tuple[str, ...]
    features: dict[str, FeatureSet]
    issues: list[Issue]
    notes: list[str]
    audio_formats: dict[str, int]


def _subset(split: EventSplit, files: Sequence[str], name: str | None = None) -> EventSplit:
    files = sorted(files)
    return EventSplit(
        name=name or split.name,
        audio_dir=split.audio_dir,
        files=files,
        durations={f: split.durations[f] for f in files},
        weak={f: split.weak[f] for f in files},
        strong={f: split.strong[f] for f in files} if split.strong is not None else None,
        classes=split.classes,
        issues=[],
    )


def load_workflow_data(root: str | Path, *, seed: int = 0, max_clips: tuple[int, int, int] | None = None,
                       log: Callable[[str], None] = print) -> WorkflowData:
    """Read, validate and featurise a corpus (layout in the module docstring).

    Bad label rows and unreadable audio files never stop the run: each becomes an
    :class:`~audioenc.audio.formats.Issue` (file, line, what, what was done) and the clip or row is
    left out.
    """
    root = Path(root)
    train_paths = split_paths(root, "train")
    if not train_paths["audio_dir"].is_dir() or not (train_paths["strong"].is_file() or train_paths["weak"].is_file()):
        raise FileNotFoundError(
            f"{root} is not a corpus in the expected layout: need {train_paths['audio_dir']} and "
            f"{train_paths['weak']} and/or {train_paths['strong']} (DESED-style TSVs; see `audioenc workflow --help`)"
        )
    train = read_corpus_split(root, "train")
    classes = train.classes
    if not classes:
        raise ValueError(f"{root}: the training labels name no event class; nothing to learn")
    issues = list(train.issues)
    notes: list[str] = []
    splits: dict[str, EventSplit] = {"train": train}
    rng = np.random.default_rng(seed)
    for name in ("validation", "test"):
        paths = split_paths(root, name)
        if paths["audio_dir"].is_dir() and (paths["strong"].is_file() or paths["weak"].is_file()):
            split = read_corpus_split(root, name, classes=classes)
            issues += split.issues
            splits[name] = split
            continue
        pool = splits["train"].files
        count = max(1, round(CARVE_SHARE * len(train.files)))
        if len(pool) - count < 2:
            raise ValueError(f"{root}: no {name} split and too few training clips ({len(pool)}) to carve one from")
        chosen = sorted(rng.choice(pool, size=count, replace=False).tolist())
        splits[name] = _subset(splits["train"], chosen, name)
        splits["train"] = _subset(splits["train"], sorted(set(pool) - set(chosen)), "train")
        notes.append(f"no {name} split in {root}: {count} clips carved from train (seed {seed})")
    if max_clips is not None:
        for name, limit in zip(SPLITS, max_clips):
            if len(splits[name].files) > limit:
                splits[name] = _subset(splits[name], splits[name].files[:limit])
                notes.append(f"{name}: first {limit} clips used (max_clips)")
    formats: dict[str, int] = {}
    features: dict[str, FeatureSet] = {}
    extractor = LogMel(LogMelConfig())
    with _one_thread():  # the same features (to the last bit) on any machine
        _featurise(splits, extractor, features, formats, issues, root, log)
    return WorkflowData(root, splits, tuple(classes), features, issues, notes, formats)


def _featurise(splits: dict[str, EventSplit], extractor: LogMel, features: dict[str, FeatureSet],
               formats: dict[str, int], issues: list[Issue], root: Path, log: Callable[[str], None]) -> None:
    """Log-mel of every clip; unreadable files become dropped-file issues (in place)."""
    for name in SPLITS:
        split = splits[name]
        log_mels, usable = {}, []
        for filename in split.files:
            path = split.audio_dir / filename
            try:
                info = sf.info(str(path))
                audio = load_audio(path, extractor.config.sample_rate)
            except (ValueError, sf.LibsndfileError, RuntimeError) as error:
                issues.append(Issue(str(path), None, f"{path}: cannot be used: {error}", "dropped"))
                continue
            key = f"{info.samplerate} Hz, {info.channels} ch"
            formats[key] = formats.get(key, 0) + 1
            with torch.no_grad():
                log_mels[filename] = extractor(torch.from_numpy(audio)[None])[0].numpy()
            usable.append(filename)
        if len(usable) < 2:
            raise ValueError(f"{root}: split {name!r} has {len(usable)} usable clip(s); need at least 2")
        splits[name] = _subset(split, usable)
        features[name] = FeatureSet(split=splits[name], log_mels=log_mels, config=extractor.config)
        log(f"  {name}: {len(usable)} clips, {len(splits[name].positive_files())} with events, "
            f"strong labels: {'yes' if split.strong is not None else 'no'}")


def channel_policy(formats: Mapping[str, int], encoder: EncoderHandle | None = None) -> str:
    """The sentence the report states about channels and sample rates."""
    seen = ", ".join(f"{key} ({count} clips)" for key, count in sorted(formats.items()))
    text = (f"audio found: {seen}. Every clip is downmixed to mono (mean of its channels) and resampled with soxr "
            f"to 24000 Hz for the log-mel models (steps 1-4 and the scratch baseline)")
    if encoder is not None:
        text += f"; for the frozen encoder: {encoder.channel_policy}"
    return text + "."


# =========================================================================== helpers


@contextmanager
def _one_thread():
    """Run torch on one thread (the same numbers on any machine), restoring the setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _write_json(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Non-finite numbers become null (strict JSON; `missed` counts and notes explain them).
    path.write_text(json.dumps(_clean(content), indent=2, default=_json_default, allow_nan=False) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _clean(value: Any) -> Any:
    """Non-finite floats -> None, recursively (JSON has no inf/nan); NumPy scalars -> Python."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def _write_tsv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if cell is None else (f"{cell:.4f}" if isinstance(cell, float) else cell) for cell in row])
    return path


# =========================================================================== step 1 model


class FrameScorer(nn.Module):
    """The pooling-neutral frame scorer of step 1: log-mel ``[B, M, F]`` -> frame probabilities
    ``[B, K, F]`` (100 frames/s) and hidden features ``[B, H, F]``.

    Math (``mu``, ``sigma``: per-band train statistics)::

        h = ReLU(conv5((x - mu) / sigma))        [B, H, F]   kernel 5 over time (50 ms)
        y = sigmoid(conv5(h))                    [B, K, F]   receptive field 90 ms

    Trained with every frame's target set to its clip's labels (frame-wise binary cross-entropy,
    no pooling in the loss), so no pooling rule shapes the scores the rules are compared on:
    event frames learn to score high; background frames settle near the share of clips that
    carry the class.
    """

    def __init__(self, n_mels: int, n_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(n_mels))
        self.register_buffer("feature_std", torch.ones(n_mels))
        self.hidden = nn.Conv1d(n_mels, hidden, kernel_size=5, padding=2)
        self.head = nn.Conv1d(hidden, n_classes, kernel_size=5, padding=2)

    def forward(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normalised = (log_mel - self.feature_mean[:, None]) / self.feature_std[:, None]
        hidden = torch.relu(self.hidden(normalised))
        return torch.sigmoid(self.head(hidden)), hidden


def train_frame_scorer(features: FeatureSet, classes: Sequence[str], *, hidden: int, steps: int, seed: int,
                       batch_size: int = 16, learning_rate: float = 3e-3) -> tuple[FrameScorer, list[float]]:
    """Train :class:`FrameScorer` with clip labels broadcast to frames (masked padding)."""
    torch.manual_seed(seed)
    model = FrameScorer(features.config.n_mels, len(classes), hidden)
    mean, std = feature_statistics(features)
    model.feature_mean.copy_(mean)
    model.feature_std.copy_(std.clamp_min(1e-5))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    files = features.split.files
    targets = clip_targets(features.split, classes, files)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        rows = torch.randint(len(files), (min(batch_size, len(files)),), generator=generator).tolist()
        batch, mask = collate_padded([features.log_mels[files[row]] for row in rows])
        scores, _ = model(batch)
        target = torch.from_numpy(targets[rows])[:, :, None].expand_as(scores)
        loss = nn.functional.binary_cross_entropy(scores.clamp(1e-6, 1 - 1e-6), target, reduction="none")
        loss = (loss * mask[:, None, :]).sum() / (mask.sum() * len(classes))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


# =========================================================================== CRNN jobs


@dataclass(frozen=True)
class _WeakJob:
    """One CRNN training: a name, its pooling rule, its classes and the shared settings."""

    name: str
    pooling: str
    classes: tuple[str, ...]
    seed: int
    epochs: int
    batch_size: int
    learning_rate: float
    config: CRNNConfig


_WORKER_SETS: dict[str, FeatureSet] = {}


def _init_worker(*sets: FeatureSet) -> None:
    """Worker start: one torch thread; the feature sets (passed under spawn, inherited under fork)."""
    torch.set_num_threads(1)
    if sets:
        _WORKER_SETS["train"], _WORKER_SETS["validation"] = sets


def _run_job(job: _WeakJob) -> tuple[WeakCRNN, TrainingHistory, float]:
    started = time.perf_counter()
    model, history = train_weak_encoder(
        (_WORKER_SETS["train"], _WORKER_SETS["validation"]), job.pooling, job.seed, epochs=job.epochs,
        batch_size=job.batch_size, learning_rate=job.learning_rate, config=job.config, classes=job.classes,
    )
    return model, history, time.perf_counter() - started


def _train_jobs(jobs: Sequence[_WeakJob], data: WorkflowData, workers: int,
                log: Callable[[str], None]) -> dict[str, tuple[WeakCRNN, TrainingHistory, float]]:
    """Train CRNN jobs, ``workers`` processes at once (1: here, one thread)."""
    results = {}
    sets = (data.features["train"], data.features["validation"])
    if workers <= 1 or len(jobs) == 1:
        with _one_thread():
            _WORKER_SETS["train"], _WORKER_SETS["validation"] = sets
            try:
                for job in jobs:
                    results[job.name] = _run_job(job)
                    log(f"  trained {job.name} in {results[job.name][2]:.1f} s")
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
    _WORKER_SETS["train"], _WORKER_SETS["validation"] = sets
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context, initializer=_init_worker,
                                 initargs=sets if method == "spawn" else ()) as pool:
            futures = {job.name: pool.submit(_run_job, job) for job in jobs}
            for name, future in futures.items():
                results[name] = future.result()
                log(f"  trained {name} in {results[name][2]:.1f} s")
    finally:
        _WORKER_SETS.clear()
    return results


# =========================================================================== the run


@dataclass
class _Run:
    out: Path
    seed: int
    settings: WorkflowSettings
    data: WorkflowData
    log: Callable[[str], None]
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    scorer_predictions: dict[str, Predictions] = field(default_factory=dict)
    weak_predictions: dict[str, dict[str, Predictions]] = field(default_factory=dict)
    weak_models: dict[str, WeakCRNN] = field(default_factory=dict)
    chosen: str = ""

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.out).as_posix()


def run_workflow(
    data: str | Path | None = None,
    encoder: str | Path | None = None,
    out: str | Path = Path("runs/workflow"),
    seed: int = 0,
    fast: bool = False,
    *,
    settings: WorkflowSettings | None = None,
    encoder_weights: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the seven steps (module docstring) into ``out`` and return the report dict.

    Args:
        data: corpus folder in the DESED-style layout; None = the embedded event corpus
            (generated into the data cache on first use).
        encoder: frozen encoder for step 5 (codec run folder / ``.safetensors`` / ``.pt``,
            weak-CRNN folder, ``.py`` or module name with the HEAR API); None = a weak-label
            CRNN trained here on the other classes.
        out: run folder. A previous workflow's step folders and report in it are replaced.
        seed: every random choice (models, batches, carved splits, bootstrap) draws from it.
        fast: reduced sizes for tests (:meth:`WorkflowSettings.fast`).
        settings: explicit sizes (overrides ``fast``).
        encoder_weights: passed to a HEAR module's ``load_model``.
        log: progress lines (default ``print``).

    Returns:
        The content of ``report.json`` (see :func:`audioenc.timing.report.build_report`).
    """
    started = time.perf_counter()
    log = log or (lambda line: print(line, flush=True))
    settings = settings or (WorkflowSettings.fast() if fast else WorkflowSettings())
    out = Path(out)
    if (out / "report.json").exists():
        log(f"{out} holds an earlier workflow run: its step folders and report are replaced")
    for name in (*STEP_FOLDERS, "report.md", "report.json"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    encoder_handle = None
    if encoder is not None:
        encoder_handle = load_encoder(encoder, encoder_weights)  # fail early, before any training
    if data is None:
        from audioenc.audio.synth_events import default_event_corpus

        log("data: the embedded event corpus (made in the data cache on first use)")
        data = default_event_corpus(seed=0)
    log(f"step 0/7: reading and checking {data}")
    step_started = time.perf_counter()
    corpus = load_workflow_data(data, seed=seed, max_clips=settings.max_clips, log=log)
    run = _Run(out=out, seed=seed, settings=settings, data=corpus, log=log)
    _step0_data(run, encoder_handle)
    run.timings["0_data"] = time.perf_counter() - step_started
    for number, (name, step) in enumerate(
        (("1_pooling", _step1_pooling), ("2_frames", _step2_frames), ("3_weak", _step3_weak),
         ("4_boundaries", _step4_boundaries)), start=1):
        step_started = time.perf_counter()
        log(f"step {number}/7: {step.__doc__.splitlines()[0]}")
        step(run)
        run.timings[name] = time.perf_counter() - step_started
        log(f"  ({run.timings[name]:.1f} s)")
    step_started = time.perf_counter()
    log(f"step 5/7: {_step5_probe.__doc__.splitlines()[0]}")
    handle, probe_state = _step5_probe(run, encoder_handle, encoder_weights)
    run.timings["5_probe"] = time.perf_counter() - step_started
    log(f"  ({run.timings['5_probe']:.1f} s)")
    step_started = time.perf_counter()
    log(f"step 6/7: {_step6_adapt.__doc__.splitlines()[0]}")
    _step6_adapt(run, handle, probe_state)
    run.timings["6_adapt"] = time.perf_counter() - step_started
    log(f"  ({run.timings['6_adapt']:.1f} s)")
    step_started = time.perf_counter()
    log("step 7/7: the note (report.md, report.json)")
    run.results["run"] = {
        "out": str(out.resolve()),
        "data": str(Path(data).resolve()),
        "encoder": str(encoder) if encoder is not None else None,
        "seed": seed,
        "fast": fast,
        "settings": _clean(asdict(settings)),
        "threads": "one torch thread per process; CRNN trainings in "
                   f"{settings.workers} process(es) at once",
    }
    run.timings["7_note"] = 0.0
    run.results["run"]["step_seconds"] = run.timings
    run.results["run"]["wall_seconds"] = time.perf_counter() - started
    report = report_module.build_report(run.results, out)
    run.timings["7_note"] = time.perf_counter() - step_started
    report["run"]["wall_seconds"] = time.perf_counter() - started
    report_module.write_report(report, out)
    log(report_module.headline_text(report))
    log(f"report: {out / 'report.md'} ({report['run']['wall_seconds']:.0f} s)")
    return report


# =========================================================================== step 0


def _step0_data(run: _Run, encoder: EncoderHandle | None) -> None:
    data = run.data
    rows = [(issue.file, issue.line, issue.action, issue.message) for issue in data.issues]
    dropped = _write_tsv(run.path("00_data", "dropped.tsv"), ("file", "line", "action", "message"), rows)
    splits = {
        name: {
            "clips": len(split.files),
            "with_events": len(split.positive_files()),
            "strong_labels": split.strong is not None,
            "audio_dir": str(split.audio_dir),
            "seconds": float(sum(split.durations.values())),
        }
        for name, split in data.splits.items()
    }
    content = {
        "root": str(data.root),
        "classes": list(data.classes),
        "splits": splits,
        "notes": data.notes,
        "audio_formats": data.audio_formats,
        "channel_policy": channel_policy(data.audio_formats, encoder),
        "issues": len(data.issues),
    }
    _write_json(run.path("00_data", "data.json"), content)
    for issue in data.issues[:20]:
        run.log(f"  {issue}")
    if len(data.issues) > 20:
        run.log(f"  ... and {len(data.issues) - 20} more in {dropped}")
    run.results["data"] = {**content, "artifacts": ["00_data/data.json", "00_data/dropped.tsv"]}
    run.results["dropped"] = [
        {"file": issue.file, "line": issue.line, "action": issue.action, "message": issue.message} for issue in data.issues
    ]


# =========================================================================== step 1


def _step1_pooling(run: _Run) -> None:
    """clip summary and pooling choice: six pooling rules on the same frame scores"""
    data, settings = run.data, run.settings
    classes = data.classes
    with _one_thread():
        scorer, losses = train_frame_scorer(data.features["train"], classes, hidden=settings.scorer_hidden,
                                            steps=settings.scorer_steps, seed=run.seed)
        frames: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        with torch.no_grad():
            for name in SPLITS:
                frames[name] = {f: scorer(torch.from_numpy(m)[None]) for f, m in data.features[name].log_mels.items()}
        # Learned pooling parameters (attention, AutoPool) fitted on the training clips' frame scores.
        learned = {}
        fit_seconds = {}
        for rule in ("attention", "autopool"):
            fit_started = time.perf_counter()
            learned[rule] = _fit_pooling(rule, frames["train"], data.splits["train"], classes, settings.pool_fit_steps, run.seed)
            fit_seconds[rule] = time.perf_counter() - fit_started
        pooled: dict[str, dict[str, np.ndarray]] = {}
        metrics = {}
        with torch.no_grad():
            for rule in POOLING_NAMES:
                module = learned.get(rule) or make_pooling(rule, len(classes))
                pooled[rule] = {}
                metrics[rule] = {}
                for name in ("validation", "test"):
                    split = data.splits[name]
                    scores = np.stack([module(frames[name][f][0], frames[name][f][1])[0].numpy() for f in split.files])
                    pooled[rule][name] = scores
                    metrics[rule][name] = clip_metrics(scores, clip_targets(split, classes), classes)
    for name in SPLITS:
        run.scorer_predictions[name] = Predictions(
            {f: value[0][0].numpy().astype(np.float64) for f, value in frames[name].items()},
            {}, data.features[name].config.frame_rate, classes)
    best = max(POOLING_NAMES, key=lambda rule: (metrics[rule]["validation"]["map"] or -1.0))
    alphas = {name: float(value) for name, value in zip(classes, learned["autopool"].alpha.detach().numpy())}
    rows = [
        (rule, metrics[rule]["validation"]["map"], metrics[rule]["validation"]["accuracy"],
         metrics[rule]["test"]["map"], metrics[rule]["test"]["accuracy"])
        for rule in POOLING_NAMES
    ]
    _write_tsv(run.path("01_pooling", "clip_metrics.tsv"),
               ("pooling", "validation_map", "validation_accuracy", "test_map", "test_accuracy"), rows)
    content = {
        "what": "six pooling rules applied to the SAME frame scores (a pooling-neutral frame scorer trained with "
                "clip labels broadcast to every frame); attention and AutoPool parameters fitted on the training clips",
        "frame_scorer": {"hidden": settings.scorer_hidden, "steps": settings.scorer_steps, "final_loss": losses[-1],
                         "frame_rate": data.features["train"].config.frame_rate},
        "metrics": metrics,
        "best_on_validation_map": best,
        "autopool_alpha": alphas,
        "pool_fit_seconds": fit_seconds,
    }
    _write_json(run.path("01_pooling", "clip_metrics.json"), _clean(content))
    filename, label = _showcase(data.splits["test"], run.scorer_predictions["test"], classes)
    plot = _plot_pooled_levels(run.path("01_pooling", "pooled_levels.png"), filename, label, data.splits["test"],
                               run.scorer_predictions["test"], pooled, metrics, classes)
    for rule in POOLING_NAMES:
        run.log(f"  {rule:>14}: test mAP {_f(metrics[rule]['test']['map'])}, accuracy {_f(metrics[rule]['test']['accuracy'])}")
    run.results["step1"] = {
        "metrics": _clean(metrics),
        "best_on_validation_map": best,
        "autopool_alpha": alphas,
        "artifacts": ["01_pooling/clip_metrics.tsv", "01_pooling/clip_metrics.json", run.rel(plot)],
    }


def _showcase(split: EventSplit, predictions: Predictions, classes: Sequence[str]) -> tuple[str, str]:
    """The (clip, class) whose frame scores stand out most inside a short (< 1 s) event: the
    highest in-event score minus the clip's median score; the first positive clip without
    strong labels."""
    best, chosen = -np.inf, None
    for filename in split.files:
        if split.strong is None:
            if split.weak[filename]:
                return filename, split.weak[filename][0]
            continue
        scores = predictions.frame_scores[filename]
        middles = (np.arange(scores.shape[1]) + 0.5) / predictions.frame_rate
        for event in split.strong[filename]:
            if event.offset - event.onset >= 1.0:
                continue
            row = scores[list(classes).index(event.label)]
            inside = row[(middles >= event.onset) & (middles < event.offset)]
            if len(inside) and inside.max() - np.median(row) > best:
                best, chosen = inside.max() - np.median(row), (filename, event.label)
    return chosen or (split.files[0], split.weak[split.files[0]][0] if split.weak[split.files[0]] else classes[0])


def _fit_pooling(rule: str, frames: Mapping[str, tuple[torch.Tensor, torch.Tensor]], split: EventSplit,
                 classes: Sequence[str], steps: int, seed: int) -> nn.Module:
    """Fit a learned pooling's parameters on frozen frame scores (clip BCE, Adam)."""
    torch.manual_seed(seed)
    files = split.files
    hidden = next(iter(frames.values()))[1].shape[1]
    module = make_pooling(rule, len(classes), in_features=hidden)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05 if rule == "autopool" else 0.01)
    targets = torch.from_numpy(clip_targets(split, classes, files))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = torch.randint(len(files), (min(16, len(files)),), generator=generator).tolist()
        scores, mask = collate_padded([frames[files[row]][0][0].numpy() for row in rows])
        hidden_batch, _ = collate_padded([frames[files[row]][1][0].numpy() for row in rows])
        clip = module(scores, hidden_batch, mask)
        loss = nn.functional.binary_cross_entropy(clip.clamp(1e-6, 1 - 1e-6), targets[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return module.eval()


# =========================================================================== step 2


def _step2_frames(run: _Run) -> None:
    """frame-level score behaviour on sample clips"""
    data = run.data
    split = data.splits["test"]
    predictions = run.scorer_predictions["test"]
    classes = data.classes
    view = _frame_view(predictions, split, classes)
    samples = _sample_clips(split, classes, run.settings.plot_clips - 1)
    negatives = [f for f in split.files if not split.weak[f]]
    if negatives:
        samples.append(negatives[0])
    plot = _plot_frame_scores(run.path("02_frames", "frame_scores.png"), samples, split, data.features["test"],
                              predictions, classes)
    content = {"model": "the step-1 frame scorer", "sample_clips": samples, **view}
    _write_json(run.path("02_frames", "frame_view.json"), _clean(content))
    if view.get("inside_mean") is not None:
        run.log(f"  frame scores of the true class: {view['inside_mean']:.3f} inside events, "
                f"{view['outside_mean']:.3f} outside (positive clips); peak inside an event for "
                f"{view['peak_inside']}/{view['positive_pairs']} (clip, class) pairs")
    run.results["step2"] = {**_clean(view), "sample_clips": samples,
                            "artifacts": [run.rel(plot), "02_frames/frame_view.json"]}


def _frame_view(predictions: Predictions, split: EventSplit, classes: Sequence[str]) -> dict:
    """Frame scores of the true class inside vs outside its events (positive clips), and how often
    the class's highest frame lies inside one of its events; needs strong labels."""
    if split.strong is None:
        return {"available": False, "reason": f"the {split.name} split has no strong labels"}
    rate = predictions.frame_rate
    inside, outside, negative, peak_inside, pairs = [], [], [], 0, 0
    for filename in split.files:
        scores = predictions.frame_scores[filename]
        middles = (np.arange(scores.shape[1]) + 0.5) / rate
        for k, label in enumerate(classes):
            events = [e for e in split.strong[filename] if e.label == label]
            if not events:
                negative.append(scores[k].mean())
                continue
            in_event = np.zeros(scores.shape[1], dtype=bool)
            for event in events:
                in_event |= (middles >= event.onset) & (middles < event.offset)
            if in_event.any():
                inside.append(scores[k][in_event].mean())
            if (~in_event).any():
                outside.append(scores[k][~in_event].mean())
            pairs += 1
            peak_inside += bool(in_event[int(np.argmax(scores[k]))])
    return {
        "available": True,
        "inside_mean": float(np.mean(inside)) if inside else None,
        "outside_mean": float(np.mean(outside)) if outside else None,
        "absent_class_mean": float(np.mean(negative)) if negative else None,
        "peak_inside": peak_inside,
        "positive_pairs": pairs,
    }


def _sample_clips(split: EventSplit, classes: Sequence[str], count: int) -> list[str]:
    """Positive clips for plots: one per class in turn (the clip with that class's shortest event)."""
    if count <= 0:
        return []
    chosen: list[str] = []
    for label in classes:
        candidates = []
        for filename in split.files:
            if filename in chosen:
                continue
            if split.strong is not None:
                lengths = [e.offset - e.onset for e in split.strong[filename] if e.label == label]
                if lengths:
                    candidates.append((min(lengths), filename))
            elif label in split.weak[filename]:
                candidates.append((0.0, filename))
        if candidates:
            chosen.append(min(candidates)[1])
        if len(chosen) == count:
            break
    return chosen


# =========================================================================== step 3


def _step3_weak(run: _Run) -> None:
    """weak-label CRNN, trained from clip labels only, once per pooling rule"""
    settings, data = run.settings, run.data
    jobs = [
        _WeakJob(rule, rule, data.classes, run.seed, settings.weak_epochs, settings.weak_batch_size,
                 settings.weak_learning_rate, settings.crnn)
        for rule in POOLING_NAMES
    ]
    trained = _train_jobs(jobs, data, settings.workers, run.log)
    summary = {}
    with _one_thread():
        for rule in POOLING_NAMES:
            model, history, seconds = trained[rule]
            save_weak_encoder(model, run.path("03_weak", rule))
            _write_json(run.path("03_weak", rule, "history.json"), history.as_dict())
            run.weak_models[rule] = model
            run.weak_predictions[rule] = {name: predict(model, data.features[name].log_mels) for name in ("validation", "test")}
            summary[rule] = {
                "seconds": seconds,
                "best_epoch": history.best_epoch,
                "valid_loss": history.valid_loss,
                "train_loss": history.train_loss,
                "frame_rate": model.frame_rate,
                "validation": clip_metrics(_stack(run.weak_predictions[rule]["validation"], data.splits["validation"]),
                                           clip_targets(data.splits["validation"], data.classes), data.classes),
                "test": clip_metrics(_stack(run.weak_predictions[rule]["test"], data.splits["test"]),
                                     clip_targets(data.splits["test"], data.classes), data.classes),
            }
    content = {
        "what": "weak-label CRNN (audioenc.timing.weak) trained from clip labels only, one run per pooling rule, "
                "same training/validation split, same seed; weights of the best validation-loss epoch",
        "crnn": asdict(settings.crnn),
        "epochs": settings.weak_epochs,
        "batch_size": settings.weak_batch_size,
        "learning_rate": settings.weak_learning_rate,
        "seed": run.seed,
        "train_clips": data.splits["train"].files,
        "rules": summary,
    }
    _write_json(run.path("03_weak", "training.json"), _clean(content))
    plot = _plot_training(run.path("03_weak", "training_curves.png"), summary)
    run.results["step3"] = {
        "crnn": asdict(settings.crnn),
        "batch_size": settings.weak_batch_size,
        "learning_rate": settings.weak_learning_rate,
        "epochs": settings.weak_epochs,
        "seed": run.seed,
        "train_clips": len(data.splits["train"].files),
        "rules": {rule: {key: value for key, value in item.items() if key not in ("valid_loss", "train_loss")}
                  for rule, item in _clean(summary).items()},
        "artifacts": ["03_weak/training.json", run.rel(plot), *[f"03_weak/{rule}/model.safetensors" for rule in POOLING_NAMES]],
    }


def _stack(predictions: Predictions, split: EventSplit) -> np.ndarray:
    return np.stack([predictions.clip_scores[f] for f in split.files])


# =========================================================================== step 4


def _step4_boundaries(run: _Run) -> None:
    """boundary inspection on positive clips only, beside clip accuracy"""
    data, settings = run.data, run.settings
    classes = data.classes
    with _one_thread():
        test = ClipEvaluator(data.splits["test"], classes, settings.bootstrap_resamples, seed=run.seed)
        valid = ClipEvaluator(data.splits["validation"], classes, resamples=1, seed=run.seed)
        per_rule, selection_metrics = {}, {}
        for rule in POOLING_NAMES:
            result = test.evaluate(run.weak_predictions[rule]["test"], with_psds=test.boundaries_available,
                                   interval_metrics=("clip_map", "clip_accuracy", "onset_within", "median_abs_onset"))
            per_rule[rule] = result
            selection = valid.evaluate(run.weak_predictions[rule]["validation"], with_psds=False, interval_metrics=())
            selection_metrics[rule] = selection["point"]
    choice = report_module.choose_pooling(selection_metrics, settings.pooling_ap_margin)
    run.chosen = choice["chosen"]
    table = {rule: per_rule[rule]["point"] for rule in POOLING_NAMES}
    disagreements = report_module.find_disagreements(table)
    rows = []
    for rule in POOLING_NAMES:
        point = per_rule[rule]["point"]
        summary = per_rule[rule]["boundary"].get("summary", {})
        rows.append((rule, point.get("clip_map"), point.get("clip_accuracy"), summary.get("median_abs_onset_error"),
                     summary.get("median_abs_offset_error"), summary.get("onset_within"), summary.get("offset_within"),
                     point.get("collar_f1"), point.get("psds1"), point.get("psds2"),
                     summary.get("detected"), summary.get("events")))
    _write_tsv(run.path("04_boundaries", "boundary_metrics.tsv"),
               ("pooling", "clip_map", "clip_accuracy", "median_abs_onset_s", "median_abs_offset_s", "onset_within_200ms",
                "offset_within_200ms", "collar_f1", "psds1", "psds2", "detected_events", "events"), rows)
    artifacts = ["04_boundaries/boundary_metrics.tsv", "04_boundaries/boundary_metrics.json"]
    if test.boundaries_available:
        event_rows = []
        errors_by_rule = {}
        for rule in POOLING_NAMES:
            predictions = run.weak_predictions[rule]["test"]
            errors = boundary_errors(predictions.frame_scores, test.strong, classes, predictions.frame_rate,
                                     durations=data.splits["test"].durations)
            errors_by_rule[rule] = errors
            event_rows += [(rule, e.filename, e.label, e.onset, e.offset, e.predicted_onset, e.predicted_offset,
                            e.onset_error if e.detected else None, e.offset_error if e.detected else None) for e in errors]
        _write_tsv(run.path("04_boundaries", "event_errors.tsv"),
                   ("pooling", "file", "label", "onset", "offset", "predicted_onset", "predicted_offset", "onset_error",
                    "offset_error"), event_rows)
        plots = [
            _plot_error_distributions(run.path("04_boundaries", "error_distributions.png"), errors_by_rule),
            _plot_onset_aligned(run.path("04_boundaries", "onset_aligned_scores.png"), run.weak_predictions, test),
            _plot_around_boundaries(run.path("04_boundaries", "around_boundaries.png"), run.weak_predictions, test,
                                    errors_by_rule, run.settings.plot_clips + 2),
        ]
        artifacts += ["04_boundaries/event_errors.tsv", *[run.rel(p) for p in plots]]
    content = {
        "what": "weak-label CRNNs of step 3 on the test split: clip metrics on all clips, boundary metrics on positive "
                "clips only (onset/offset errors: audioenc.timing.boundaries; collar F1 (onset 200 ms, offset "
                "max(200 ms, 20 %)) and PSDS1/PSDS2: sed_scores_eval)",
        "available": test.boundaries_available,
        "reason": test.boundary_reason,
        "per_rule": per_rule,
        "selection": {**choice, "validation_metrics": selection_metrics},
        "disagreements": disagreements,
    }
    _write_json(run.path("04_boundaries", "boundary_metrics.json"), _clean(content))
    if test.boundary_reason:
        run.log(f"  boundary metrics unavailable: {test.boundary_reason}")
    for rule in POOLING_NAMES:
        point, summary = per_rule[rule]["point"], per_rule[rule]["boundary"].get("summary", {})
        run.log(f"  {rule:>14}: clip mAP {_f(point.get('clip_map'))}, median |onset| "
                f"{_f(summary.get('median_abs_onset_error'))} s, collar F1 {_f(point.get('collar_f1'))}, "
                f"PSDS1 {_f(point.get('psds1'))}")
    run.log(f"  chosen pooling: {run.chosen} ({choice['basis']})")
    for item in disagreements:
        run.log(f"  disagreement: {item['text']}")
    run.results["step4"] = {
        "available": test.boundaries_available,
        "reason": test.boundary_reason,
        "positives": len(test.positives),
        "per_rule": {rule: {"point": per_rule[rule]["point"], "intervals": per_rule[rule]["intervals"],
                            "summary": per_rule[rule]["boundary"].get("summary")} for rule in POOLING_NAMES},
        "selection": _clean({**choice, "validation_metrics": selection_metrics}),
        "disagreements": disagreements,
        "artifacts": artifacts,
    }
    run.results["step4"] = _clean(run.results["step4"])


# =========================================================================== step 5


def _held_out(classes: Sequence[str], count: int, seed: int) -> tuple[str, ...]:
    """``count`` classes picked by the seed (at most all but one), in vocabulary order."""
    count = max(1, min(count, len(classes) - 1))
    picked = set(np.random.default_rng(seed).permutation(len(classes))[:count].tolist())
    return tuple(name for index, name in enumerate(classes) if index in picked)


def _step5_probe(run: _Run, handle: EncoderHandle | None, weights: str | None):
    """frozen encoder + probe against a scratch baseline on the same split"""
    data, settings = run.data, run.settings
    chosen = run.chosen
    notes = []
    scratch_model: WeakCRNN | None = None
    if handle is not None:
        task = data.classes
        scratch_model = run.weak_models[chosen]
        scratch_source = f"03_weak/{chosen}/model.safetensors"
        encoder_info = {**handle.describe(), "trained_here": False}
        notes.append(f"scratch baseline = the step-3 CRNN with the chosen pooling ({chosen}): same split, same labels, "
                     "same seed")
    elif len(data.classes) >= 2:
        task = _held_out(data.classes, settings.held_out_classes, run.seed)
        other = tuple(name for name in data.classes if name not in task)
        jobs = [
            _WeakJob("encoder", chosen, other, run.seed, settings.weak_epochs, settings.weak_batch_size,
                     settings.weak_learning_rate, settings.crnn),
            _WeakJob("scratch", chosen, task, run.seed, settings.weak_epochs, settings.weak_batch_size,
                     settings.weak_learning_rate, settings.crnn),
        ]
        trained = _train_jobs(jobs, data, settings.workers, run.log)
        encoder_dir = save_weak_encoder(trained["encoder"][0], run.path("05_probe", "encoder"))
        scratch_model = trained["scratch"][0]
        save_weak_encoder(scratch_model, run.path("05_probe", "scratch"))
        scratch_source = "05_probe/scratch/model.safetensors"
        handle = load_encoder(encoder_dir)
        encoder_info = {**handle.describe(), "source": "05_probe/encoder", "trained_here": True,
                        "trained_on_classes": list(other), "seconds": trained["encoder"][2]}
        notes.append(f"frozen encoder = a weak-label CRNN trained here on the other classes {list(other)}; probe and "
                     f"scratch are trained and evaluated on the held-out classes {list(task)}")
    else:
        raise ValueError("one class only: no other class to train an encoder on; pass --encoder")
    data_policy = channel_policy(data.audio_formats, handle)
    with _one_thread():
        fingerprint = parameters_fingerprint(handle.model)
        embed_started = time.perf_counter()
        embeddings = {
            name: encoder_embeddings(handle, data.splits[name].audio_dir, data.splits[name].files) for name in SPLITS
        }
        embed_seconds = time.perf_counter() - embed_started
        frame_rate = embeddings["train"].frame_rate
        targets = {name: clip_targets(data.splits[name], task) for name in SPLITS}
        probe, probe_history = train_probe(
            embeddings["train"].frames, targets["train"], embeddings["validation"].frames, targets["validation"], task,
            chosen, config=settings.probe, seed=run.seed)
        unchanged = _same_parameters(fingerprint, parameters_fingerprint(handle.model))
        if not unchanged:
            raise RuntimeError("internal: the frozen encoder's parameters changed while probing")
        frozen_test = predict_frames(probe, embeddings["test"].frames, frame_rate, task)
        scratch_test = _restrict_predictions(predict(scratch_model, data.features["test"].log_mels), task)
        evaluator = ClipEvaluator(data.splits["test"], task, settings.bootstrap_resamples, seed=run.seed,
                                  f1_resamples=settings.f1_resamples)
        frozen_metrics = evaluator.evaluate(frozen_test, with_psds=evaluator.boundaries_available)
        scratch_metrics = evaluator.evaluate(scratch_test, with_psds=evaluator.boundaries_available)
        difference = evaluator.paired_difference(frozen_test, scratch_test)
    save_module(probe, run.path("05_probe", "probe"), {
        "kind": "audioenc.probe_head", "classes": list(task), "pooling": chosen, "embedding_size": handle.embedding_size,
        "frame_rate": frame_rate, "config": asdict(settings.probe), "encoder": encoder_info})
    metric_names = list(frozen_metrics["point"])
    rows = [(metric, frozen_metrics["point"].get(metric), _ci(frozen_metrics["intervals"].get(metric)),
             scratch_metrics["point"].get(metric), _ci(scratch_metrics["intervals"].get(metric)),
             difference.get(metric, {}).get("value"), _ci(difference.get(metric))) for metric in metric_names]
    _write_tsv(run.path("05_probe", "comparison.tsv"),
               ("metric", "frozen_probe", "frozen_95ci", "scratch", "scratch_95ci", "frozen_minus_scratch", "difference_95ci"), rows)
    plot = _plot_comparison(run.path("05_probe", "comparison.png"), {"frozen + probe": frozen_metrics, "scratch": scratch_metrics},
                            "frozen encoder + probe vs scratch (test split, 95 % bootstrap intervals over clips)")
    content = {
        "what": "frozen encoder + probe head vs a CRNN trained from scratch, same split and labels; metrics on the test "
                "split, bootstrap intervals over clips (paired for the difference)",
        "encoder": {**encoder_info, "frame_rate": frame_rate, "embedding_seconds": embed_seconds,
                    "grid_is_encoder_frames": all(e.identity_map for e in embeddings.values())},
        "channel_policy": data_policy,
        "task_classes": list(task),
        "pooling": chosen,
        "notes": notes,
        "encoder_parameters_unchanged": unchanged,
        "probe": {"config": asdict(settings.probe), "history": probe_history.as_dict(), "frame_rate": frame_rate},
        "scratch": {"source": scratch_source, "frame_rate": scratch_model.frame_rate},
        "train_clips": {"frozen_probe": list(embeddings["train"].frames), "scratch": list(data.features["train"].split.files)},
        "test_clips": evaluator.files,
        "frozen": frozen_metrics,
        "scratch_metrics": scratch_metrics,
        "difference": difference,
        "bootstrap": {"resamples": settings.bootstrap_resamples, "collar_f1_resamples": settings.f1_resamples,
                      "confidence": 0.95, "seed": run.seed},
    }
    _write_json(run.path("05_probe", "comparison.json"), _clean(content))
    for metric in metric_names:
        run.log(f"  {metric:>16}: frozen {_f(frozen_metrics['point'].get(metric))} [{_ci(frozen_metrics['intervals'].get(metric))}]"
                f", scratch {_f(scratch_metrics['point'].get(metric))} [{_ci(scratch_metrics['intervals'].get(metric))}]")
    run.results["step5"] = _clean({
        "encoder": content["encoder"],
        "channel_policy": data_policy,
        "task_classes": list(task),
        "pooling": chosen,
        "notes": notes,
        "encoder_parameters_unchanged": unchanged,
        "boundaries_available": evaluator.boundaries_available,
        "boundary_reason": evaluator.boundary_reason,
        "frozen": {"point": frozen_metrics["point"], "intervals": frozen_metrics["intervals"]},
        "scratch": {"point": scratch_metrics["point"], "intervals": scratch_metrics["intervals"]},
        "difference": difference,
        "artifacts": ["05_probe/comparison.json", "05_probe/comparison.tsv", run.rel(plot), "05_probe/probe/model.safetensors",
                      scratch_source] + (["05_probe/encoder/model.safetensors"] if encoder_info.get("trained_here") else []),
    })
    state = {"probe": probe, "embeddings": embeddings, "targets": targets, "task": task, "evaluator": evaluator,
             "frozen_test": frozen_test, "frozen_metrics": frozen_metrics, "scratch_metrics": scratch_metrics,
             "fingerprint": fingerprint}
    return handle, state


def _restrict_predictions(predictions: Predictions, classes: Sequence[str]) -> Predictions:
    rows = [predictions.classes.index(name) for name in classes]
    return Predictions({f: s[rows] for f, s in predictions.frame_scores.items()},
                       {f: s[rows] for f, s in predictions.clip_scores.items()}, predictions.frame_rate, tuple(classes))


def _same_parameters(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> bool:
    return before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


# =========================================================================== step 6


def _step6_adapt(run: _Run, handle: EncoderHandle, state: dict) -> None:
    """light adaptation, only if the frozen path stops short"""
    settings, data = run.settings, run.data
    rule = settings.rule
    frozen_point, scratch_point = state["frozen_metrics"]["point"], state["scratch_metrics"]["point"]
    decision = rule.should_adapt(frozen_point, scratch_point)
    content: dict[str, Any] = {"rule": rule.statement(), "margins": asdict(rule), **decision, "ran": False}
    artifacts = ["06_adapt/adaptation.json"]
    run.log(f"  {decision['reason']}")
    if decision["triggered"]:
        split, reason = adaptation_split(handle)
        if split is None:
            content["unavailable"] = reason
            run.log(f"  adaptation not available: {reason}")
        else:
            with _one_thread():
                first = data.splits["train"].files[0]

                def audio_of(name: str, filename: str) -> np.ndarray:
                    return load_audio(data.splits[name].audio_dir / filename, handle.sample_rate)

                if not all(e.identity_map for e in state["embeddings"].values()):
                    raise RuntimeError("internal: adaptation needs embeddings on the encoder's own frames")
                error = check_adaptation_split(split, audio_of("train", first), state["embeddings"]["train"].frames[first],
                                               f"{handle.source} on {first}")
                lower = {name: {f: split.lower(audio_of(name, f)) for f in data.splits[name].files} for name in SPLITS}
                adapted, history = train_adapted(split, state["probe"], lower["train"], state["targets"]["train"],
                                                 lower["validation"], state["targets"]["validation"],
                                                 config=settings.probe, seed=run.seed)
                if not _same_parameters(state["fingerprint"], parameters_fingerprint(handle.model)):
                    raise RuntimeError("internal: adaptation changed the original encoder (it must train a copy)")
                rate = state["embeddings"]["train"].frame_rate
                adapted_test = predict_frames(adapted, lower["test"], rate, state["task"])
                evaluator: ClipEvaluator = state["evaluator"]
                adapted_metrics = evaluator.evaluate(adapted_test, with_psds=evaluator.boundaries_available)
                gain = evaluator.paired_difference(adapted_test, state["frozen_test"])
            verdict = rule.verdict(decision["short_on"], gain)
            if history.best_epoch == -1:
                verdict["reason"] = ("no adapted epoch lowered the validation loss below the frozen start, so the "
                                     "adapted model is the frozen encoder + probe; " + verdict["reason"])
            save_module(adapted, run.path("06_adapt", "adapted"), {
                "kind": "audioenc.adapted_top_and_probe", "top": split.description, "classes": list(state["task"]),
                "pooling": run.chosen, "lr_factor": settings.probe.adapt_lr_factor, "epochs": settings.probe.adapt_epochs})
            plot = _plot_comparison(run.path("06_adapt", "comparison.png"),
                                    {"frozen + probe": state["frozen_metrics"], "adapted": adapted_metrics,
                                     "scratch": state["scratch_metrics"]},
                                    "frozen vs adapted vs scratch (test split, 95 % bootstrap intervals over clips)")
            content.update(
                ran=True, top_block=split.description, cut_check_relative_error=error,
                learning_rates={"top": settings.probe.learning_rate * settings.probe.adapt_lr_factor,
                                "probe": settings.probe.learning_rate},
                epochs=settings.probe.adapt_epochs, history=history.as_dict(), best_epoch=history.best_epoch,
                adapted=adapted_metrics,
                gain_over_frozen=gain, verdict=verdict, original_encoder_unchanged=True,
            )
            artifacts += [run.rel(plot), "06_adapt/adapted/model.safetensors"]
            run.log(f"  adapted ({split.description}): {verdict['reason']}")
    _write_json(run.path("06_adapt", "adaptation.json"), _clean(content))
    result = {key: content[key] for key in ("rule", "triggered", "short_on", "gaps", "reason", "ran")}
    result["unavailable"] = content.get("unavailable")
    if content["ran"]:
        result.update(top_block=content["top_block"], verdict=content["verdict"],
                      adapted={"point": content["adapted"]["point"], "intervals": content["adapted"]["intervals"]},
                      gain_over_frozen=content["gain_over_frozen"])
    run.results["step6"] = _clean({**result, "artifacts": artifacts})


# =========================================================================== plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
           "tab:olive", "tab:cyan")


def _plot_pooled_levels(path: Path, filename: str, label: str, split: EventSplit, predictions: Predictions, pooled,
                        metrics, classes: Sequence[str]) -> Path:
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6), constrained_layout=True, gridspec_kw={"width_ratios": [2, 1]})
    k = list(classes).index(label)
    scores = predictions.frame_scores[filename][k]
    times = (np.arange(len(scores)) + 0.5) / predictions.frame_rate
    left.plot(times, scores, color="0.3", linewidth=0.8, label=f"frame score: {classes[k]}")
    row = split.files.index(filename)
    for index, rule in enumerate(POOLING_NAMES):
        left.axhline(pooled[rule]["test"][row, k], color=COLOURS[index], linestyle="--", linewidth=1.0,
                     label=f"{rule}: {pooled[rule]['test'][row, k]:.2f}")
    if split.strong is not None:
        for event in split.strong[filename]:
            if event.label == classes[k]:
                left.axvspan(event.onset, event.offset, color="gold", alpha=0.3)
    left.set(xlabel="time (s)", ylabel="score", ylim=(-0.02, 1.02), title=f"{filename}: one frame view, six clip summaries")
    left.legend(fontsize=7, loc="upper right", ncol=2)
    x = np.arange(len(POOLING_NAMES))
    right.bar(x - 0.2, [metrics[r]["test"]["map"] or 0 for r in POOLING_NAMES], 0.4, label="mAP")
    right.bar(x + 0.2, [metrics[r]["test"]["accuracy"] for r in POOLING_NAMES], 0.4, label="accuracy")
    right.set_xticks(x, POOLING_NAMES, rotation=30, fontsize=8)
    right.set(ylim=(0, 1), title="test clips, same frame scores")
    right.legend(fontsize=7)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _plot_frame_scores(path: Path, samples: Sequence[str], split: EventSplit, features: FeatureSet,
                       predictions: Predictions, classes: Sequence[str]) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = max(1, len(samples))
    figure, axes = plt.subplots(2, columns, figsize=(4.2 * columns, 5), squeeze=False, constrained_layout=True)
    for column, filename in enumerate(samples):
        mel, score = axes[0, column], axes[1, column]
        log_mel = features.log_mels[filename]
        duration = log_mel.shape[1] / features.config.frame_rate
        mel.imshow(log_mel, origin="lower", aspect="auto", extent=(0, duration, 0, log_mel.shape[0]), cmap="magma")
        mel.set_title(f"{filename}: {', '.join(split.weak[filename]) or 'no event'}", fontsize=8)
        scores = predictions.frame_scores[filename]
        times = (np.arange(scores.shape[1]) + 0.5) / predictions.frame_rate
        for k, name in enumerate(classes):
            score.plot(times, scores[k], color=COLOURS[k % len(COLOURS)], linewidth=0.8, label=name)
            if split.strong is not None:
                for event in split.strong[filename]:
                    if event.label == name:
                        score.axvspan(event.onset, event.offset, color=COLOURS[k % len(COLOURS)], alpha=0.15)
        score.set(ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="frame score")
        for axis in (mel, score):
            axis.set_xlim(0, duration)
        if column == 0:
            score.legend(fontsize=6, loc="upper right")
    figure.suptitle("Frame scores per class over time (shaded: true events of that class)", fontsize=9)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _plot_training(path: Path, summary: Mapping[str, Mapping]) -> Path:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    for index, (rule, item) in enumerate(summary.items()):
        axis.plot(np.arange(1, len(item["valid_loss"]) + 1), item["valid_loss"], color=COLOURS[index], label=rule)
    axis.set(xlabel="epoch", ylabel="validation clip BCE", title="weak-label CRNN, one run per pooling rule")
    axis.legend(fontsize=7)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _plot_error_distributions(path: Path, errors_by_rule: Mapping[str, list]) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    bins = np.linspace(-2, 2, 41)
    for which, axis in zip(("onset", "offset"), axes):
        for index, (rule, errors) in enumerate(errors_by_rule.items()):
            values = np.clip([getattr(e, f"{which}_error") for e in errors if e.detected], -2, 2)
            missed = sum(not e.detected for e in errors)
            axis.hist(values, bins=bins, histtype="step", color=COLOURS[index], label=f"{rule} ({missed} missed)")
        axis.axvspan(-0.2, 0.2, color="0.85", zorder=0)
        axis.set(xlabel=f"{which} error, predicted - true (s; clipped to ±2)", ylabel="events",
                 title=f"{which} errors on positive clips (grey: ±200 ms)")
        axis.legend(fontsize=6)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _plot_onset_aligned(path: Path, predictions: Mapping[str, Mapping[str, Predictions]], evaluator: ClipEvaluator) -> Path:
    """Mean frame score of the event's class against time relative to the true onset and offset."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    window = np.linspace(-1.0, 1.0, 101)
    classes = evaluator.classes
    for which, axis in zip(("onset", "offset"), axes):
        for index, rule in enumerate(predictions):
            prediction = predictions[rule]["test"]
            curves = []
            for filename in evaluator.positives:
                scores = prediction.frame_scores[filename]
                times = (np.arange(scores.shape[1]) + 0.5) / prediction.frame_rate
                for event in evaluator.strong[filename]:
                    anchor = getattr(event, which)
                    curves.append(np.interp(anchor + window, times, scores[classes.index(event.label)], left=np.nan, right=np.nan))
            if curves:
                axis.plot(window, np.nanmean(np.array(curves), axis=0), color=COLOURS[index], label=rule)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.axvspan(-0.2, 0.2, color="0.9", zorder=0)
        axis.set(xlabel=f"time from the true {which} (s)", ylabel="mean frame score of the event's class",
                 ylim=(0, 1), title=f"aligned on true {which}s (positive test clips)")
        axis.legend(fontsize=7)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _plot_around_boundaries(path: Path, predictions: Mapping[str, Mapping[str, Predictions]], evaluator: ClipEvaluator,
                            errors_by_rule: Mapping[str, list], count: int) -> Path:
    """Frame scores of sample events' classes from 1 s before the onset to 1 s after the offset."""
    plt = _pyplot()
    events = []
    seen_labels = set()
    for filename in evaluator.positives:  # one event per class first, then any
        for event in evaluator.strong[filename]:
            if event.label not in seen_labels:
                events.append((filename, event))
                seen_labels.add(event.label)
    for filename in evaluator.positives:
        for event in evaluator.strong[filename]:
            if len(events) < count and (filename, event) not in events:
                events.append((filename, event))
    events = events[:count]
    rows = max(1, len(events))
    figure, axes = plt.subplots(rows, 1, figsize=(9, 1.9 * rows), squeeze=False, constrained_layout=True)
    for row, (filename, event) in enumerate(events):
        axis = axes[row, 0]
        for index, rule in enumerate(predictions):
            prediction = predictions[rule]["test"]
            scores = prediction.frame_scores[filename][evaluator.classes.index(event.label)]
            times = (np.arange(len(scores)) + 0.5) / prediction.frame_rate
            keep = (times >= event.onset - 1.0) & (times <= event.offset + 1.0)
            axis.plot(times[keep], scores[keep], color=COLOURS[index], linewidth=0.9, label=rule)
        axis.axvline(event.onset, color="black", linewidth=1.0)
        axis.axvline(event.offset, color="black", linewidth=1.0, linestyle="--")
        axis.axhline(0.5, color="0.6", linewidth=0.6)
        axis.set(ylim=(-0.02, 1.02), ylabel="score")
        axis.set_title(f"{filename}: {event.label} {event.onset:.2f}-{event.offset:.2f} s (black: true onset, dashed: offset)",
                       fontsize=8)
        if row == 0:
            axis.legend(fontsize=6, ncol=3, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _plot_comparison(path: Path, models: Mapping[str, Mapping], title: str) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = [m for m in ("clip_map", "clip_accuracy", "onset_within", "offset_within", "collar_f1", "psds1", "psds2")
               if any(result["point"].get(m) is not None for result in models.values())]
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(metrics) * len(models) / 2), 3.8), constrained_layout=True)
    width = 0.8 / max(1, len(models))
    for index, (name, result) in enumerate(models.items()):
        x = np.arange(len(metrics)) + (index - (len(models) - 1) / 2) * width
        values = [result["point"].get(m) or 0.0 for m in metrics]
        low = [values[i] - (result["intervals"].get(m, {}).get("low") if result["intervals"].get(m, {}).get("low") is not None else values[i])
               for i, m in enumerate(metrics)]
        high = [(result["intervals"].get(m, {}).get("high") if result["intervals"].get(m, {}).get("high") is not None else values[i]) - values[i]
                for i, m in enumerate(metrics)]
        axis.bar(x, values, width, color=COLOURS[index], label=name, yerr=[np.maximum(low, 0), np.maximum(high, 0)], capsize=3)
    axis.set_xticks(np.arange(len(metrics)), metrics, fontsize=8)
    axis.set(ylim=(0, 1.05), title=title)
    axis.title.set_fontsize(9)
    axis.legend(fontsize=7)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(interval: Mapping | None) -> str:
    """``low to high``; an end stored as None (JSON has no infinity) next to a defined one is
    infinite: ``-inf`` below, ``inf`` above (a median that may be infinite, or its difference)."""
    if not interval or (interval.get("low") is None and interval.get("high") is None):
        return "n/a"
    low = f"{interval['low']:.3f}" if interval.get("low") is not None else "-inf"
    high = f"{interval['high']:.3f}" if interval.get("high") is not None else "inf"
    return f"{low} to {high}"


__all__ = ["FrameScorer", "WorkflowData", "WorkflowSettings", "channel_policy", "load_workflow_data", "run_workflow",
           "train_frame_scorer"]
