"""DESED data configs as their users keep them: the ``data:`` section of a DESED_task recipe.

DESED_task's recipes (``recipes/dcase2023_task4_baseline/confs/default.yaml`` and kin) name each
subset by an audio folder and a TSV::

    data:
      synth_folder: ../../data/dcase/dataset/dcase_synth/audio/train/synthetic21_train/soundscapes_16k/
      synth_tsv: ../../data/dcase/dataset/dcase_synth/metadata/train/synthetic21_train/soundscapes.tsv
      strong_folder: ...      strong_tsv: ...        (real strongly labelled clips)
      weak_folder: ...        weak_tsv: ...          (clip labels: filename, event_labels)
      synth_val_folder: ...   synth_val_tsv: ...
      test_folder: ...        test_tsv: ...

:func:`read_desed_config` reads that section (the whole recipe file, or a file holding only the
section) into the workflow's three splits: ``train`` = every training subset present (synth,
strong, weak; their folders merged under their common parent), ``validation`` = synth_val,
``test`` = test. ``unlabeled_folder`` (clips without labels, DESED's ``unlabel_in_domain``; no
TSV) gives :attr:`DesedSplits.unlabeled`: every audio file under it, for the mean teacher's
consistency loss (:func:`read_unlabeled_folder`, which also reads the embedded layout's
``audio/unlabeled/``). A ``<key>_44k`` folder stands in when its ``<key>`` folder is absent (the
workflow resamples anyway). Other keys (eval, durations, ``fs``, ...) are not used: durations
come from the audio headers. A TSV with ``onset``/``offset`` columns is strong, one with
``event_labels`` weak. Relative paths are tried against the working directory (where DESED_task's
scripts run), then the config's folder, then its parent (a recipe's root).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from audioenc.audio.formats import EventSplit, Issue, read_event_split
from audioenc.audio.io import read_info
from audioenc.audio.manifest import AUDIO_EXTENSIONS
from audioenc.errors import UserError
from audioenc.textfiles import read_text, read_yaml

TRAIN_SUBSETS: tuple[str, ...] = ("synth", "strong", "weak")
SPLIT_SUBSETS: dict[str, tuple[str, ...]] = {"train": TRAIN_SUBSETS, "validation": ("synth_val",), "test": ("test",)}
UNLABELED_SUBSET = "unlabeled"
"""The subset of clips without labels: ``unlabeled_folder`` (or ``unlabeled_folder_44k``), no TSV."""


@dataclass
class DesedSplits:
    """The splits a DESED data config gives.

    Attributes:
        splits: ``train`` and, when configured, ``validation`` and ``test``.
        notes: which subsets made each split and how paths were resolved.
        issues: unusable entries (a folder or TSV that does not exist), never fatal.
        unlabeled: the clips of ``unlabeled_folder`` (no labels; :func:`read_unlabeled_folder`),
            None when the key is absent, its folder missing or without a readable audio file.
    """

    splits: dict[str, EventSplit]
    notes: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    unlabeled: EventSplit | None = None


def is_desed_config(path: str | Path) -> bool:
    """Whether ``path`` names a YAML file (a DESED data config)."""
    return Path(path).suffix.lower() in (".yaml", ".yml") and Path(path).is_file()


def read_desed_config(path: str | Path, classes: tuple[str, ...] | None = None) -> DesedSplits:
    """Read a DESED data config into validated splits (module docstring).

    Raises:
        ValueError: the file is not YAML, has no usable training subset, or names no folder/TSV pair.
    """
    path = Path(path)
    content = read_yaml(path, "DESED data config", "A DESED data config has a `data:` section of folders and TSVs.")
    section = content.get("data", content) if isinstance(content, dict) else None
    if not isinstance(section, dict):
        raise UserError(f"{path}: no `data:` section of folders and TSVs (DESED_task's recipe config layout)")
    result = DesedSplits({})
    for split, subsets in SPLIT_SUBSETS.items():
        parts = []
        for subset in subsets:
            pair = _subset_paths(path, section, subset, result)
            if pair is None:
                continue
            folder, tsv = pair
            strong = _is_strong(tsv)
            parts.append(
                read_event_split(
                    folder,
                    name=f"{split}:{subset}",
                    classes=classes,
                    strong_tsv=tsv if strong else None,
                    weak_tsv=None if strong else tsv,
                )
            )
            result.notes.append(f"{split}: {subset} ({folder}, {'strong' if strong else 'weak'} labels from {tsv})")
        if parts:
            merged = parts[0] if len(parts) == 1 else merge_splits(split, parts)
            merged.name = split
            result.splits[split] = merged
            if classes is None and split == "train":
                classes = merged.classes
    if "train" not in result.splits:
        raise UserError(
            f"{path}: no training subset with both a folder and a TSV (keys "
            f"{', '.join(f'{s}_folder/{s}_tsv' for s in TRAIN_SUBSETS)})"
        )
    result.unlabeled = _read_unlabeled_subset(path, section, classes or (), result)
    return result


def read_unlabeled_folder(
    folder: str | Path, *, classes: tuple[str, ...] = (), name: str = UNLABELED_SUBSET
) -> EventSplit:
    """Clips without labels: every audio file under ``folder`` (recursively, by extension, hidden
    names skipped), as a split whose clips all have empty weak labels and no strong labels.

    A file with an audio extension whose header cannot be read, or that holds no samples, is an
    :class:`~audioenc.audio.formats.Issue` of the split (``dropped``), never fatal; files of other
    extensions (a README, a TSV) are not clips and are passed over.
    """
    folder = Path(folder)
    durations: dict[str, float] = {}
    issues: list[Issue] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.suffix.lower() not in AUDIO_EXTENSIONS or any(part.startswith(".") for part in relative.parts):
            continue
        if not path.is_file():
            continue
        try:
            info = read_info(path)
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            issues.append(Issue(str(path), None, f"{path}: cannot be used: {error}", "dropped"))
            continue
        if info.frames == 0:
            issues.append(Issue(str(path), None, f"{path}: cannot be used: the file has no samples", "dropped"))
            continue
        durations[relative.as_posix()] = info.duration_seconds
    files = sorted(durations)
    return EventSplit(
        name=name,
        audio_dir=folder,
        files=files,
        durations=durations,
        weak={filename: () for filename in files},
        strong=None,
        classes=tuple(classes),
        issues=issues,
    )


def _read_unlabeled_subset(
    config: Path, section: dict[str, Any], classes: tuple[str, ...], result: DesedSplits
) -> EventSplit | None:
    """The configured unlabeled clips, or None (an absent key is silent; a missing folder, or one
    without a readable clip, is an issue)."""
    folder = _configured_folder(config, section, UNLABELED_SUBSET)
    if folder is None:
        return None
    if not folder.is_dir():
        result.issues.append(
            Issue(str(config), None, f"{UNLABELED_SUBSET}: {folder} does not exist; no unlabeled clips", "dropped")
        )
        return None
    unlabeled = read_unlabeled_folder(folder, classes=classes)
    if not unlabeled.files:
        result.issues += unlabeled.issues
        result.issues.append(
            Issue(str(config), None, f"{UNLABELED_SUBSET}: no readable audio file in {folder}; none used", "dropped")
        )
        return None
    result.notes.append(f"{UNLABELED_SUBSET}: {len(unlabeled.files)} clips without labels ({folder})")
    return unlabeled


def merge_splits(name: str, parts: list[EventSplit]) -> EventSplit:
    """One split from several folders: files keyed relative to the folders' common parent; strong
    labels kept only when every part has them; the vocabulary is the union."""
    root = Path(os.path.commonpath([str(part.audio_dir.resolve()) for part in parts]))
    files, durations, weak, strong, issues = [], {}, {}, {}, []
    for part in parts:
        prefix = part.audio_dir.resolve().relative_to(root)
        for filename in part.files:
            key = str(prefix / filename) if str(prefix) != "." else filename
            files.append(key)
            durations[key], weak[key] = part.durations[filename], part.weak[filename]
            if part.strong is not None:
                strong[key] = part.strong[filename]
        issues += part.issues
    every_strong = all(part.strong is not None for part in parts)
    classes = tuple(sorted({name for part in parts for name in part.classes}))
    return EventSplit(
        name=name,
        audio_dir=root,
        files=sorted(files),
        durations=durations,
        weak=weak,
        strong=strong if every_strong else None,
        classes=classes,
        issues=issues,
    )


def _subset_paths(config: Path, section: dict[str, Any], subset: str, result: DesedSplits) -> tuple[Path, Path] | None:
    """The existing (folder, TSV) of one subset, or None (absent keys are silent, missing paths are issues)."""
    folder = _configured_folder(config, section, subset)
    tsv_value = section.get(f"{subset}_tsv")
    if folder is None and not tsv_value:
        return None
    if folder is None or not tsv_value:
        result.issues.append(
            Issue(
                str(config), None, f"{subset}: needs both {subset}_folder and {subset}_tsv; subset left out", "dropped"
            )
        )
        return None
    tsv = _resolve(config, section, f"{subset}_tsv", tsv_value)
    missing = [str(item) for item in (folder, tsv) if not item.exists()]
    if missing:
        result.issues.append(
            Issue(str(config), None, f"{subset}: {', '.join(missing)} does not exist; subset left out", "dropped")
        )
        return None
    return folder, tsv


def _configured_folder(config: Path, section: dict[str, Any], subset: str) -> Path | None:
    """The folder a subset names (``<subset>_folder``, its ``_44k`` twin standing in when it does not
    exist), resolved (:func:`_resolve`); None when neither key is set."""
    folder_value = section.get(f"{subset}_folder") or section.get(f"{subset}_folder_44k")
    if not folder_value:
        return None
    folder = _resolve(config, section, f"{subset}_folder", folder_value)
    if not folder.is_dir() and section.get(f"{subset}_folder_44k"):
        folder = _resolve(config, section, f"{subset}_folder_44k", section[f"{subset}_folder_44k"])
    return folder


def _resolve(config: Path, section: dict[str, Any], key: str, value: Any) -> Path:
    """A configured path: as given when absolute, else the first existing of cwd / the config's
    folder / its parent (the cwd one when none exists, for the message)."""
    path = Path(os.path.expanduser(str(value)))
    if path.is_absolute():
        return path
    for base in (Path.cwd(), config.parent, config.parent.parent):
        if (base / path).exists():
            return (base / path).resolve()
    return (Path.cwd() / path).resolve()


def _is_strong(tsv: Path) -> bool:
    """A TSV whose header names ``onset`` (strong) rather than ``event_labels`` (weak)."""
    header = read_text(tsv, "label file").split("\n", 1)[0].strip().lower().split("\t")
    return "onset" in header


__all__ = [
    "DesedSplits",
    "SPLIT_SUBSETS",
    "UNLABELED_SUBSET",
    "is_desed_config",
    "merge_splits",
    "read_desed_config",
    "read_unlabeled_folder",
]
