"""Evaluate systems file by file with the measures codec papers report, and summarise with intervals.

For every file and every :class:`~audioenc.metrics.systems.System` (the codec at each bitrate and
the reference systems) the reconstruction is compared with the file by:

* ``si_sdr``, ``mel_distance``, ``stft_distance`` (:mod:`audioenc.metrics.distances`), per channel;
* ``visqol_audio`` (general audio, music) or ``visqol_speech``, ``pesq_wb``, ``stoi``, ``estoi``
  (speech) (:mod:`audioenc.metrics.perceptual`), on at most :data:`PERCEPTUAL_CHANNELS` channels;
* ``ild_error_db`` and ``coherence_error`` for multichannel files (spatial fidelity).

Each file is scored as :func:`load_clip` reads it: a mono codec hears (and is scored on) the mono
downmix of a multichannel file, which each row's ``scored`` says; a file whose channels cancel in
that downmix (anti-phase stereo) or that is shorter than the distances' STFTs is left out with
its reason in :attr:`Evaluation.failed_files`. A measure that does not apply is absent from the
rows and its reason is in :attr:`Evaluation.skipped`. The summary is the mean over files per
system and measure with a 95 % percentile bootstrap interval over files (the same resamples for
every system, so intervals are paired).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audioenc.audio.io import AudioReadError, read_clip
from audioenc.core.bootstrap import percentile_interval, resample_indices
from audioenc.errors import UserError
from audioenc.metrics import distances, perceptual
from audioenc.metrics.reconstruction import spatial_errors
from audioenc.metrics.systems import System

CONTENTS = ("general", "music", "speech")
HIGHER_IS_BETTER = {
    "si_sdr": True,
    "mel_distance": False,
    "stft_distance": False,
    "visqol_audio": True,
    "visqol_speech": True,
    "pesq_wb": True,
    "stoi": True,
    "estoi": True,
    "ild_error_db": False,
    "coherence_error": False,
}
DOWNMIX_CANCELLATION_DB = 10.0
"""A downmix this many dB below what uncorrelated channels give (``1 / C`` of the mean channel energy)
means the channels cancel (anti-phase stereo: the downmix is silence): such a file is left out,
since the mono codec would be scored on a signal the file does not hold."""
PERCEPTUAL_CHANNELS = 2
"""Perceptual measures run on the first two channels at most: they are defined for mono or stereo
listening, and 32 ViSQOL runs per file would cost minutes; the distances cover every channel."""


@dataclass(frozen=True)
class EvalSettings:
    """What to measure and on how much audio.

    Attributes:
        content: ``general``, ``music`` or ``speech``: picks ViSQOL's mode and whether PESQ/STOI apply.
        perceptual: compute the perceptual measures at all (off: the distances only, seconds per file).
        max_seconds: each file's first seconds that are evaluated (None: all of it).
        resamples: bootstrap resamples of the summary intervals.
        seed: bootstrap seed.
    """

    content: str = "general"
    perceptual: bool = True
    max_seconds: float | None = 10.0
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.content not in CONTENTS:
            raise UserError(f"--content {self.content}: choose one of {', '.join(CONTENTS)}")


@dataclass
class Evaluation:
    """Rows (one per file × system), the measures computed, and why the others were not."""

    rows: list[dict]
    measures: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    failed_files: dict[str, str] = field(default_factory=dict)

    def systems(self) -> list[str]:
        return list(dict.fromkeys(row["system"] for row in self.rows))

    def scored_channels(self) -> str:
        """Which channels the scores are of, with the number of files each way ("mono downmix of 2
        channels (1 file), mono (2 files)"): a mono codec's scores of a stereo file are of its downmix."""
        per_file = dict((row["file"], row.get("scored", "")) for row in self.rows)
        counts: dict[str, int] = {}
        for scored in per_file.values():
            counts[scored] = counts.get(scored, 0) + 1
        return ", ".join(f"{scored} ({n} file{'s' if n > 1 else ''})" for scored, n in counts.items())

    def summary(self, resamples: int = 1000, seed: int = 0) -> list[dict]:
        """Per system: kbps, files, and ``{measure: {mean, low, high}}`` (95 % bootstrap over files)."""
        files = list(dict.fromkeys(row["file"] for row in self.rows))
        index = {name: i for i, name in enumerate(files)}
        indices = resample_indices(len(files), resamples, seed) if files else None
        result = []
        for system in self.systems():
            rows = [row for row in self.rows if row["system"] == system]
            entry = {
                "system": system,
                "kind": rows[0]["kind"],
                "kbps": rows[0]["kbps"],
                "files": len(rows),
                "measures": {},
            }
            for measure in self.measures:
                values = np.full(len(files), np.nan)
                for row in rows:
                    if row.get(measure) is not None:
                        values[index[row["file"]]] = row[measure]
                if np.isnan(values).all():
                    continue
                mean = float(np.nanmean(values))
                with np.errstate(all="ignore"), _quiet_nan_means():
                    replicates = np.nanmean(values[indices], axis=1)
                interval = percentile_interval(replicates, mean)
                entry["measures"][measure] = {
                    "mean": mean,
                    "low": interval.low,
                    "high": interval.high,
                    "files": int(np.sum(~np.isnan(values))),
                }
            result.append(entry)
        return result

    def write(self, directory: str | Path, resamples: int = 1000, seed: int = 0, extra: dict | None = None) -> Path:
        """``per_file.csv``, ``evaluation.json`` (rows, summary, skipped measures) in ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        columns = ["file", "system", "kind", "kbps", "seconds", "channels", "scored", *self.measures]
        with open(directory / "per_file.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({key: _csv_value(row.get(key)) for key in columns})
        document = {
            **(extra or {}),
            "measures": self.measures,
            "scored_channels": self.scored_channels(),
            "skipped": self.skipped,
            "failed_files": self.failed_files,
            "summary": self.summary(resamples, seed),
            "rows": self.rows,
        }
        (directory / "evaluation.json").write_text(json.dumps(_finite(document), indent=2) + "\n")
        return directory


def evaluate_files(
    files: Sequence[Path],
    systems: Sequence[System],
    sample_rate: int,
    channels: int,
    settings: EvalSettings = EvalSettings(),
    progress: bool = True,
) -> Evaluation:
    """Every system on every file (see the module docstring).

    Args:
        files: audio files (any rate: resampled to ``sample_rate``; a mono codec hears the downmix);
            those :func:`load_clip` refuses are left out and listed in ``failed_files``.
        systems: what to evaluate (:mod:`audioenc.metrics.systems`).
        sample_rate, channels: the codec's.
    """
    check_max_seconds(settings.max_seconds, sample_rate)
    measures = ["si_sdr", "mel_distance", "stft_distance"]
    skipped: dict[str, str] = {}
    perceptual_names = (
        ["visqol_speech", "pesq_wb", "stoi", "estoi"] if settings.content == "speech" else ["visqol_audio"]
    )
    skipped.update(
        {
            name: perceptual.skip_reason(name, content=settings.content, channels=channels, seconds=1e9)
            or f"{settings.content} material is scored with ViSQOL's speech mode (visqol_speech)"
            for name in perceptual.MEASURES
            if name not in perceptual_names
        }
    )
    if not settings.perceptual:
        skipped.update({name: "perceptual measures turned off (--no-perceptual)" for name in perceptual_names})
        perceptual_names = []
    for name in list(perceptual_names):
        if not perceptual.available(name):
            skipped[name] = perceptual.skip_reason(name, content=settings.content, channels=channels, seconds=1e9)
            perceptual_names.remove(name)
    measures += perceptual_names
    if channels > 1:
        measures += ["ild_error_db", "coherence_error"]
        if perceptual_names:
            skipped["perceptual_channels"] = (
                f"perceptual measures on the first {PERCEPTUAL_CHANNELS} of "
                f"{channels} channels (the distances use all of them)"
            )
    rows: list[dict] = []
    failed: dict[str, str] = {}
    bar = tqdm(total=len(files) * len(systems), desc="eval", unit="run", disable=not progress, dynamic_ncols=True)
    for path in files:
        try:
            clip = load_clip(path, sample_rate, channels, settings.max_seconds)
        except (AudioReadError, UserError) as error:
            failed[str(path)] = str(error)
            bar.update(len(systems))
            continue
        audio = clip.audio
        seconds = audio.shape[-1] / sample_rate
        for system in systems:
            estimate = system.reconstruct(audio)
            if not np.isfinite(estimate).all():
                raise UserError(f"{system.name} produced NaN/Inf samples on {path}; the model is broken")
            row = {
                "file": str(path),
                "system": system.name,
                "kind": system.kind,
                "kbps": system.kbps,
                "seconds": seconds,
                "channels": audio.shape[0],
                "scored": clip.scored,
            }
            row["si_sdr"] = distances.si_sdr(audio, estimate)
            row["mel_distance"] = distances.mel_distance(audio, estimate, sample_rate)
            row["stft_distance"] = distances.stft_distance(audio, estimate)
            if audio.shape[0] > 1:
                row["si_sdr_per_channel"] = [distances.si_sdr(a, b) for a, b in zip(audio, estimate, strict=True)]
                row.update(_spatial(audio, estimate, sample_rate))
            for name in perceptual_names:
                reason = perceptual.skip_reason(name, content=settings.content, channels=channels, seconds=seconds)
                if reason is None:
                    row[name] = perceptual.score(
                        name, audio[:PERCEPTUAL_CHANNELS], estimate[:PERCEPTUAL_CHANNELS], sample_rate
                    )
                else:
                    skipped.setdefault(f"{name} ({Path(path).name})", reason)
            rows.append(row)
            bar.update(1)
    bar.close()
    if not rows:
        raise UserError("no file could be evaluated: " + "; ".join(list(failed.values())[:3]))  # each names its file
    return Evaluation(rows, measures, {k: v for k, v in skipped.items() if v}, failed)


@dataclass(frozen=True)
class Clip:
    """One file as the evaluation scores it.

    Attributes:
        audio: ``[C, T]`` float64 at the codec's rate, the file's first ``max_seconds``.
        scored: which of the file's channels the scores are of ("mono", "all 2 channels",
            "mono downmix of 2 channels").
    """

    audio: np.ndarray
    scored: str


def load_clip(path: Path, sample_rate: int, channels: int, max_seconds: float | None) -> Clip:
    """``path`` read for a ``channels``-channel codec at ``sample_rate``: the clip every system
    reconstructs and every measure compares with.

    Raises:
        AudioReadError: the file cannot be read.
        UserError: its channels do not fit the codec, cancel in the mono downmix, or it is shorter
            than :data:`~audioenc.metrics.distances.MIN_SAMPLES` (after ``max_seconds``).
    """
    audio = read_clip(path, sample_rate, mono=False).astype(np.float64)  # [C, T]
    if max_seconds is not None:
        audio = audio[:, : int(round(max_seconds * sample_rate))]
    given = audio.shape[0]
    if channels == 1 and given > 1:
        audio = _downmix(path, audio)
        scored = f"mono downmix of {given} channels"
    elif given != channels:
        raise UserError(f"{path}: {given} channel(s); the codec takes {channels}")
    else:
        scored = "mono" if channels == 1 else f"all {channels} channels"
    _check_length(path, audio, sample_rate)
    return Clip(np.ascontiguousarray(audio), scored)


def _downmix(path: Path, audio: np.ndarray) -> np.ndarray:
    """The mono mean of ``audio`` ``[C, T]``, refused when the channels cancel in it (see
    :data:`DOWNMIX_CANCELLATION_DB`): the codec would then be scored on near-silence."""
    mix = audio.mean(axis=0, keepdims=True)
    channel_energy = float(np.mean(audio**2))
    if channel_energy == 0:
        return mix  # digital silence: nothing to cancel
    ratio = float(np.mean(mix**2)) / channel_energy
    uncorrelated = 1.0 / audio.shape[0]
    if ratio < uncorrelated * 10 ** (-DOWNMIX_CANCELLATION_DB / 10):
        level = "is silent" if ratio == 0 else f"is {-10 * np.log10(ratio):.0f} dB below the mean channel level"
        raise UserError(
            f"{path}: its {audio.shape[0]} channels cancel in the mono downmix the mono codec hears "
            f"(the downmix {level}, e.g. anti-phase stereo), so its scores would be of near-silence; "
            "evaluate one channel of it (e.g. sox IN OUT remix 1) or a codec with its channel count"
        )
    return mix


def _check_length(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Refuse a clip the distances cannot measure (shorter than their longest STFT's padding)."""
    if audio.shape[-1] < distances.MIN_SAMPLES:
        raise UserError(
            f"{path}: {audio.shape[-1]} sample(s) ({audio.shape[-1] / sample_rate * 1000:.2f} ms) at "
            f"{sample_rate} Hz; the measures need at least {distances.MIN_SAMPLES} samples "
            f"({distances.MIN_SAMPLES / sample_rate * 1000:.2f} ms): left out (use a longer file)"
        )


def check_max_seconds(max_seconds: float | None, sample_rate: int, option: str = "--max-seconds") -> None:
    """Refuse a ``max_seconds`` that would cut every file shorter than the measures need."""
    if max_seconds is not None and int(round(max_seconds * sample_rate)) < distances.MIN_SAMPLES:
        raise UserError(
            f"{option} {max_seconds:g} keeps {int(round(max_seconds * sample_rate))} samples of each "
            f"file at {sample_rate} Hz; the measures need at least {distances.MIN_SAMPLES} "
            f"({distances.MIN_SAMPLES / sample_rate:.3f} s): give a longer {option}"
        )


def _spatial(audio: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict[str, float]:
    errors = spatial_errors(torch.from_numpy(audio)[None], torch.from_numpy(estimate)[None], sample_rate)
    return {key: float(value[0]) for key, value in errors.items()}


class _quiet_nan_means:
    """``np.nanmean`` of an all-NaN resample warns; the NaN it returns is dropped by the interval."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


def _csv_value(value):
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return "" if value is None else value


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def format_summary(summary: list[dict], measures: Sequence[str]) -> str:
    """A plain-text table: one row per system, ``mean [low, high]`` per measure."""
    header = ["system", "kbps", *measures]
    lines = []
    for entry in summary:
        cells = [entry["system"], "" if entry["kbps"] is None else f"{entry['kbps']:g}"]
        for measure in measures:
            stats = entry["measures"].get(measure)
            cells.append("—" if stats is None else f"{stats['mean']:.3f} [{_fmt(stats['low'])}, {_fmt(stats['high'])}]")
        lines.append(cells)
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    text = ["  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True))]
    text += ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in lines]
    return "\n".join(text)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"
