"""What the real-event corpus builders share: the background and the workflow's corpus layout.

A builder makes clips (``audio [samples]`` float32 at ``rate`` plus events
``[(onset_s, offset_s, label, source)]``) and hands them, in order, to :func:`write_split`; then
:func:`write_corpus_files` writes ``corpus.json`` and ``desed.yaml``. The layout is the one
``audioenc workflow --data OUT`` (or ``--data OUT/desed.yaml``) reads::

    OUT/audio/{train,validation,test}/{split}_{index:04d}.wav     16-bit PCM, mono
    OUT/metadata/{split}_strong.tsv     filename  onset  offset  event_label   (seconds, 3 decimals)
    OUT/metadata/{split}_weak.tsv       filename  event_labels                 (comma-joined, sorted)
    OUT/corpus.json                     the builder's summary (``classes`` is the vocabulary)
    OUT/desed.yaml                      weakly labelled train, strongly labelled validation and test

Nothing here draws from a random generator except :func:`background`, so a builder's clips, and
hence its files, depend only on its own seeded draws.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

Event = tuple[float, float, str, str]
"""``(onset_s, offset_s, label, source)``; ``source`` names the recording and is not written to the TSVs."""


def pink_noise(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Unit-RMS pink (1/f power) noise by spectral shaping of white noise."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    frequencies = np.fft.rfftfreq(samples)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, samples)
    return noise / np.sqrt(np.mean(noise**2))


def background(rng: np.random.Generator, level: float, samples: int, rate: int) -> np.ndarray:
    """Pink noise of RMS ``level`` (linear) whose level sways slowly: ``level · (1 + 0.3 sin(2π f t + φ)) · pink``,
    ``f`` ~ U(0.05, 0.3) Hz, ``φ`` ~ U(0, 2π); ``[samples]`` float64. The sway is ±30 % (about ±2.5 dB)."""
    sway = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * np.arange(samples) / rate + rng.uniform(0, 2 * np.pi))
    return level * sway * pink_noise(rng, samples)


def write_split(
    out: Path, split: str, clips: Iterable[tuple[np.ndarray, Sequence[Event]]], rate: int, classes: Sequence[str]
) -> dict[str, int]:
    """Write one split's clips (consumed in order) and its strong and weak TSVs; returns events per class."""
    folder = out / "audio" / split
    folder.mkdir(parents=True, exist_ok=True)
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    strong, weak = ["filename\tonset\toffset\tevent_label"], ["filename\tevent_labels"]
    counts = {label: 0 for label in classes}
    for index, (audio, events) in enumerate(clips):
        name = f"{split}_{index:04d}.wav"
        sf.write(folder / name, audio, rate, subtype="PCM_16")
        strong += [f"{name}\t{onset:.3f}\t{offset:.3f}\t{label}" for onset, offset, label, _ in events]
        weak.append(f"{name}\t{','.join(sorted({label for _, _, label, _ in events}))}")
        for _, _, label, _ in events:
            counts[label] += 1
    (out / "metadata" / f"{split}_strong.tsv").write_text("\n".join(strong) + "\n")
    (out / "metadata" / f"{split}_weak.tsv").write_text("\n".join(weak) + "\n")
    return counts


def write_corpus_files(out: Path, summary: dict) -> None:
    """``corpus.json`` (the summary) and ``desed.yaml`` (a DESED_task-style data config: weakly labelled
    training clips, strongly labelled validation and test; absolute paths under ``out``)."""
    (out / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "desed.yaml").write_text(
        "# DESED_task-style data config: weakly labelled training clips, strongly labelled validation and test.\n"
        "data:\n"
        f"  weak_folder: {out / 'audio' / 'train'}\n  weak_tsv: {out / 'metadata' / 'train_weak.tsv'}\n"
        f"  synth_val_folder: {out / 'audio' / 'validation'}\n  synth_val_tsv: "
        f"{out / 'metadata' / 'validation_strong.tsv'}\n"
        f"  test_folder: {out / 'audio' / 'test'}\n  test_tsv: {out / 'metadata' / 'test_strong.tsv'}\n"
    )
