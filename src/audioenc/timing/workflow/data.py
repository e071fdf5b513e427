"""The corpus of one workflow run: read, validated, split and featurised once (step 0).

Layout (``--data DIR``, default the embedded event corpus): that of
:mod:`audioenc.audio.synth_events` — ``DIR/audio/{train,validation,test}/`` and
``DIR/metadata/{split}_strong.tsv`` and/or ``{split}_weak.tsv``, plus an optional
``DIR/audio/unlabeled/`` of clips without labels (no TSV; the mean teacher's consistency clips,
like ``unlabeled_folder`` in a DESED data config, :mod:`audioenc.audio.desed`). ``train`` is
required; a missing ``validation`` or ``test`` split is carved from ``train`` (20 % each, seeded)
and the report says so. Any sample rate and channel count: clips are downmixed to mono (mean of
the channels) and resampled with soxr (24 kHz for the log-mel models, the encoder's own rate for
the frozen encoder). Bad label rows and unreadable audio files never stop the run: each becomes an
:class:`~audioenc.audio.formats.Issue` (file, line, what, what was done).

Each clip's log-mel is computed once and kept in the array cache (:mod:`audioenc.core.cache`,
namespace ``logmel``), keyed by every :class:`LogMelConfig` field, the feature code's version and
the clip's bytes: a rerun reads them back bit for bit; ``audioenc workflow --no-cache`` computes
them all afresh and stores nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audioenc.audio.desed import UNLABELED_SUBSET, is_desed_config, read_desed_config, read_unlabeled_folder
from audioenc.audio.formats import EventSplit, Issue, read_corpus_split, split_paths
from audioenc.audio.io import AudioReadError, read_clip, read_info
from audioenc.core.cache import ArrayCache, CacheStats
from audioenc.errors import UserError
from audioenc.timing.encoders import EncoderHandle
from audioenc.timing.features import LogMel, LogMelConfig, log_mel_fingerprint
from audioenc.timing.weak import FeatureSet

SPLITS: tuple[str, ...] = ("train", "validation", "test")
CARVE_SHARE = 0.2
"""Share of the training clips carved out for a missing validation or test split."""
MIN_CLIP_SECONDS = 0.1
"""Shorter clips are left out (and listed): a frame-level encoder gives them fewer than two frames."""


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread (the same numbers on any machine), restoring the setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
        audio_formats: ``"<rate> Hz, <channels> ch" -> clip count`` over all splits and the unlabeled clips.
        unlabeled: log-mels of the clips without labels (``audio/unlabeled/`` or a DESED config's
            ``unlabeled_folder``; empty weak labels), None when the corpus has none.
        feature_cache: how many clips' features came from the array cache, its size and location.
    """

    root: Path
    splits: dict[str, EventSplit]
    classes: tuple[str, ...]
    features: dict[str, FeatureSet]
    issues: list[Issue]
    notes: list[str]
    audio_formats: dict[str, int]
    unlabeled: FeatureSet | None = None
    feature_cache: CacheStats = field(default_factory=lambda: CacheStats(location="", enabled=False))


@dataclass
class CorpusSplits:
    """A corpus's labels read, split and checked, before any audio sample is read (step 0 then
    featurises it).

    Attributes:
        splits: ``train``, ``validation`` and ``test`` :class:`EventSplit`.
        classes: the class vocabulary.
        issues: every label row and file left out or changed.
        notes: how the splits were formed.
        unlabeled: the clips without labels (empty weak labels), None when the corpus has none.
    """

    splits: dict[str, EventSplit]
    classes: tuple[str, ...]
    issues: list[Issue]
    notes: list[str]
    unlabeled: EventSplit | None = None


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


def _given_splits(root: Path) -> tuple[dict[str, EventSplit], EventSplit | None, list[Issue], list[str]]:
    """The splits the corpus names and its unlabeled clips (or None): the embedded layout's folders,
    or a DESED data config (YAML)."""
    if is_desed_config(root):
        desed = read_desed_config(root)
        parts = [*desed.splits.values(), *([desed.unlabeled] if desed.unlabeled is not None else [])]
        issues = list(desed.issues) + [issue for split in parts for issue in split.issues]
        notes = [f"DESED data config {root}: {note}" for note in desed.notes]
        return dict(desed.splits), desed.unlabeled, issues, notes
    train_paths = split_paths(root, "train")
    if not train_paths["audio_dir"].is_dir() or not (train_paths["strong"].is_file() or train_paths["weak"].is_file()):
        raise FileNotFoundError(
            f"{root} is neither a corpus in the expected layout (need {train_paths['audio_dir']} and "
            f"{train_paths['weak']} and/or {train_paths['strong']}, DESED-style TSVs) nor a DESED data config (.yaml); "
            "see `audioenc workflow --help`"
        )
    splits = {"train": read_corpus_split(root, "train")}
    for name in ("validation", "test"):
        paths = split_paths(root, name)
        if paths["audio_dir"].is_dir() and (paths["strong"].is_file() or paths["weak"].is_file()):
            splits[name] = read_corpus_split(root, name, classes=splits["train"].classes)
    issues = [issue for split in splits.values() for issue in split.issues]
    unlabeled_dir = split_paths(root, UNLABELED_SUBSET)["audio_dir"]
    if not unlabeled_dir.is_dir():
        return splits, None, issues, []
    unlabeled = read_unlabeled_folder(unlabeled_dir, classes=splits["train"].classes)
    issues += unlabeled.issues
    if not unlabeled.files:
        return splits, None, issues, []
    return splits, unlabeled, issues, [f"{UNLABELED_SUBSET}: {len(unlabeled.files)} clips without labels"]


def load_workflow_data(
    root: str | Path,
    *,
    seed: int = 0,
    max_clips: tuple[int, int, int] | None = None,
    feature_config: LogMelConfig = LogMelConfig(),
    log: Callable[[str], None] = print,
    cache_enabled: bool | None = None,
) -> WorkflowData:
    """Read, validate and featurise a corpus (layout in the module docstring).

    Bad label rows and unreadable audio files never stop the run: each becomes an
    :class:`~audioenc.audio.formats.Issue` (file, line, what, what was done) and the clip or row is
    left out. ``cache_enabled``: use the feature cache (None: unless ``AUDIOENC_NO_CACHE`` is set,
    :func:`audioenc.core.cache.caching_enabled`); the features are the same to the bit either way.
    """
    root = Path(root)
    corpus = read_workflow_splits(root, seed=seed, max_clips=max_clips)
    splits, issues = corpus.splits, corpus.issues
    formats: dict[str, int] = {}
    features: dict[str, FeatureSet] = {}
    extractor = LogMel(feature_config)
    cache = ArrayCache("logmel", log_mel_fingerprint(feature_config), enabled=cache_enabled)
    with one_thread():  # the same features (to the last bit) on any machine
        _featurise(splits, extractor, cache, features, formats, issues, root, log)
        unlabeled = _featurise_unlabeled(corpus.unlabeled, extractor, cache, formats, issues, log)
    log(f"  features: {cache.stats.summary()}")
    return WorkflowData(root, splits, corpus.classes, features, issues, corpus.notes, formats, unlabeled, cache.stats)


def read_workflow_splits(
    root: str | Path, *, seed: int = 0, max_clips: tuple[int, int, int] | None = None, own_encoder: bool = False
) -> CorpusSplits:
    """The corpus's labels read, split (carving what is missing) and checked, without touching audio
    samples. Cheap enough to run before the run folder is touched, so a corpus the workflow cannot
    use is refused before any work (:func:`check_distribution`). ``own_encoder``: no ``--encoder`` was
    given, so step 5 trains its frozen encoder here on classes held out from the probe's task, which
    takes at least two classes. ``max_clips``' training limit applies to the unlabeled clips too."""
    root = Path(root)
    splits, unlabeled, issues, notes = _given_splits(root)
    classes = splits["train"].classes
    if not classes or not splits["train"].positive_files():
        rejected = _rejected_rows(splits["train"].issues)
        raise UserError(
            f"{root}: the training labels hold no usable event{rejected}; the workflow "
            "needs training clips labelled with events: fix the label rows named here"
        )
    if own_encoder and len(classes) < 2:
        raise UserError(
            f"{root}: one event class only ({classes[0]}); without --encoder the frozen encoder is a "
            "CRNN trained here on other classes: add a second class, or pass --encoder"
        )
    _carve_missing(root, splits, seed, notes)
    if max_clips is not None:
        for name, limit in zip(SPLITS, max_clips):
            if len(splits[name].files) > limit:
                splits[name] = _subset(splits[name], splits[name].files[:limit])
                notes.append(f"{name}: first {limit} clips used (max_clips)")
        if unlabeled is not None and len(unlabeled.files) > max_clips[0]:
            unlabeled = _subset(unlabeled, unlabeled.files[: max_clips[0]])
            notes.append(f"{UNLABELED_SUBSET}: first {max_clips[0]} clips used (max_clips, the training limit)")
    check_distribution(root, splits)
    return CorpusSplits(splits, tuple(classes), issues, notes, unlabeled)


def _rejected_rows(issues: Sequence[Issue], shown: int = 3) -> str:
    """`` (N label rows rejected: first ...)`` from the readers' issues, or an empty string."""
    rejected = [issue for issue in issues if issue.action in ("dropped", "error")]
    if not rejected:
        return ""
    first = "; ".join(
        issue.message if issue.message.startswith(issue.file) else str(issue) for issue in rejected[:shown]
    )
    return f" ({len(rejected)} label row(s) or file(s) rejected, first: {first})"


def check_distribution(root: Path, splits: Mapping[str, EventSplit]) -> None:
    """Refuse a corpus whose validation or test split holds no event: the rule choices (step 1-4) are
    made on validation events and every comparison (steps 4-6) is measured on test events, so with none
    there is nothing to decide on or measure."""
    for name in ("validation", "test"):
        if not splits[name].positive_files():
            raise UserError(
                f"{root}: the {name} split ({len(splits[name].files)} clips) holds no labelled event; "
                f"the workflow measures on {name} events: add {name} clips with events (or remove the "
                f"{name} split to carve one from train)"
            )


def _carve_missing(root: Path, splits: dict[str, EventSplit], seed: int, notes: list[str]) -> None:
    """Carve a missing validation or test split from train (in place), seeded; notes say what was carved."""
    rng = np.random.default_rng(seed)
    given_train = len(splits["train"].files)
    for name in ("validation", "test"):
        if name in splits:
            continue
        pool = splits["train"].files
        count = max(1, round(CARVE_SHARE * given_train))
        if len(pool) - count < 2:
            raise UserError(f"{root}: no {name} split and too few training clips ({len(pool)}) to carve one from")
        chosen = sorted(rng.choice(pool, size=count, replace=False).tolist())
        splits[name] = _subset(splits["train"], chosen, name)
        splits["train"] = _subset(splits["train"], sorted(set(pool) - set(chosen)), "train")
        notes.append(f"no {name} split in {root}: {count} clips carved from train (seed {seed})")


def _featurise(
    splits: dict[str, EventSplit],
    extractor: LogMel,
    cache: ArrayCache,
    features: dict[str, FeatureSet],
    formats: dict[str, int],
    issues: list[Issue],
    root: Path,
    log: Callable[[str], None],
) -> None:
    """Log-mel of every clip of the three splits (in place); unreadable files become dropped-file issues."""
    for name in SPLITS:
        split = splits[name]
        log_mels = _split_log_mels(split, extractor, cache, formats, issues)
        if len(log_mels) < 2:
            raise UserError(f"{root}: split {name!r} has {len(log_mels)} usable clip(s); need at least 2")
        splits[name] = _subset(split, list(log_mels))
        features[name] = FeatureSet(split=splits[name], log_mels=log_mels, config=extractor.config)
        log(
            f"  {name}: {len(log_mels)} clips, {len(splits[name].positive_files())} with events, "
            f"strong labels: {'yes' if split.strong is not None else 'no'}"
        )


def _featurise_unlabeled(
    unlabeled: EventSplit | None,
    extractor: LogMel,
    cache: ArrayCache,
    formats: dict[str, int],
    issues: list[Issue],
    log: Callable[[str], None],
) -> FeatureSet | None:
    """Log-mel of every clip without labels, or None when there are none (or none usable)."""
    if unlabeled is None:
        return None
    log_mels = _split_log_mels(unlabeled, extractor, cache, formats, issues)
    log(f"  {UNLABELED_SUBSET}: {len(log_mels)} clips without labels")
    if not log_mels:
        return None
    return FeatureSet(split=_subset(unlabeled, list(log_mels)), log_mels=log_mels, config=extractor.config)


def _split_log_mels(
    split: EventSplit, extractor: LogMel, cache: ArrayCache, formats: dict[str, int], issues: list[Issue]
) -> dict[str, np.ndarray]:
    """``[n_mels, frames]`` float32 per usable clip of ``split``, through the feature cache; a clip
    that cannot be read, or is too short or not finite (:func:`_unusable_clip`), becomes an issue.
    The clip's length comes from its header, so a cache hit reads no sample."""
    log_mels: dict[str, np.ndarray] = {}
    for filename in split.files:
        path = split.audio_dir / filename
        try:
            info = read_info(path)
            log_mel = cache.fetch(path, lambda path=path: _log_mel(path, extractor))
        except (AudioReadError, sf.LibsndfileError, OSError) as error:
            issues.append(Issue(str(path), None, f"{path}: cannot be used: {error}", "dropped"))
            continue
        problem = _unusable_clip(info.duration_seconds, log_mel)
        if problem:
            _drop_clip(issues, path, problem)
            continue
        key = f"{info.sample_rate} Hz, {info.channels} ch"
        formats[key] = formats.get(key, 0) + 1
        log_mels[filename] = log_mel
    return log_mels


def _log_mel(path: Path, extractor: LogMel) -> np.ndarray:
    """``[n_mels, frames]`` float32 log-mel of one clip (mono, resampled to the extractor's rate)."""
    audio = read_clip(path, extractor.config.sample_rate)
    with torch.no_grad():
        return extractor(torch.from_numpy(audio)[None])[0].numpy()


def _unusable_clip(seconds: float, log_mel: np.ndarray) -> str:
    """Why a readable clip cannot take part (empty when it can): shorter than :data:`MIN_CLIP_SECONDS`
    (no encoder gives it the two frames a time axis needs), or log-mel values that are not finite
    (samples so large their power overflows: a clip scaled by mistake)."""
    if seconds < MIN_CLIP_SECONDS:
        return (
            f"{seconds * 1000:.1f} ms long, shorter than the {MIN_CLIP_SECONDS * 1000:.0f} ms a clip needs "
            "for a frame-level time axis"
        )
    if not np.isfinite(log_mel).all():
        return (
            "its log-mel features are not finite (samples far outside [-1, 1]: the clip's power overflows); "
            "rescale the clip"
        )
    return ""


def _drop_clip(issues: list[Issue], path: Path, problem: str) -> None:
    """Record a dropped clip in the issues (the report lists them) and warn on stderr at once."""
    message = f"{path}: {problem}; clip left out"
    issues.append(Issue(str(path), None, message, "dropped"))
    print(f"warning: {message}", file=sys.stderr, flush=True)


def channel_policy(formats: Mapping[str, int], encoder: EncoderHandle | None = None, sample_rate: int = 24000) -> str:
    """The sentence the report states about channels and sample rates (``sample_rate``: the log-mel models')."""
    seen = ", ".join(f"{key} ({count} clips)" for key, count in sorted(formats.items()))
    text = (
        f"audio found: {seen}. Every clip is downmixed to mono (mean of its channels) and resampled with soxr "
        f"to {sample_rate} Hz for the log-mel models (steps 1-4 and the scratch baseline)"
    )
    if encoder is not None:
        text += f"; for the frozen encoder: {encoder.channel_policy}"
    return text + "."
