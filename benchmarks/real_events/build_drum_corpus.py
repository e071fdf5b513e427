"""Build a real-audio sound-event corpus from Debian's hydrogen-drumkits (real recorded drums).

No code of this project generated the events: they are the acoustic kits' recorded drum hits
(GPL-2+, see the package's copyright file). This script only places them, at known onsets, into
realistic backgrounds (pink noise with a slowly varying level, 30-50 dB below full scale), and
writes the corpus in the workflow's layout — ``audio/{train,validation,test}/*.wav`` (16 kHz
mono, 6 s) with ``metadata/{split}_strong.tsv`` and ``{split}_weak.tsv`` — plus ``desed.yaml``, a
DESED_task-style data config (weakly labelled training clips, strongly labelled validation and
test) that ``audioenc workflow --data OUT/desed.yaml`` reads. The audio is not committed; this
script is, and it rebuilds the corpus byte for byte from the same kits and seed.

Classes (five, by sample file name): kick, snare, hihat, cymbal, tom. Splits are **kit-disjoint**
(as speech corpora are speaker-disjoint): the test clips use kits no training clip heard.
An event's offset is where the sample's 10 ms energy envelope last exceeds its peak minus 30 dB
(an audible-extent label), capped at 1.5 s.

    apt-get download hydrogen-drumkits && dpkg-deb -x hydrogen-drumkits_*.deb /tmp/hydrogen
    python benchmarks/real_events/build_drum_corpus.py \\
        --kits /tmp/hydrogen/usr/share/hydrogen/data/drumkits --out /tmp/drum_events
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from corpus_writing import background, write_corpus_files, write_split

CLASSES: dict[str, str] = {
    "kick": r"kick|bassdrum|(^|[_\W])bd",
    "snare": r"snare|(^|[_\W])(sn|sd)(\d|_|\b)",
    "hihat": r"hh|hihat|hat",
    "cymbal": r"crash|ride|china|cymbal|splash|(^|[_\W])(cc|rc)_",
    "tom": r"tom|(^|[_\W])(ft|t\d)_",
}
"""File-name patterns of each class, tried in this order (the first match wins)."""

KITS: dict[str, tuple[str, ...]] = {
    "train": ("ForzeeStereo", "Millo_MultiLayered2", "The Black Pearl 1.0", "BJA_Pacific", "Audiophob", "VariBreaks"),
    "validation": ("Millo_MultiLayered3",),
    "test": ("ColomboAcousticDrumkit", "Millo-Drums_v.1"),
}
"""The acoustic kits, disjoint across splits (the electronic kits are left out: not recordings)."""

CLIPS: dict[str, int] = {"train": 300, "validation": 60, "test": 60}
RATE = 16_000
SECONDS = 6.0
MAX_EVENT_SECONDS = 1.5


def classify(name: str) -> str | None:
    """The class of a sample file name, or None."""
    low = name.lower()
    for label, pattern in CLASSES.items():
        if re.search(pattern, low):
            return label
    return None


def audible_seconds(audio: np.ndarray, rate: int, floor_db: float = 30.0) -> float:
    """Where the 10 ms energy envelope last exceeds its peak minus ``floor_db`` (s)."""
    hop = max(1, rate // 100)
    frames = len(audio) // hop
    if frames == 0:
        return len(audio) / rate
    energy = (audio[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    above = np.flatnonzero(energy > energy.max() * 10 ** (-floor_db / 10))
    return float((above[-1] + 1) * hop / rate)


def load_samples(kits_dir: Path, kits: tuple[str, ...]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Mono samples at :data:`RATE` per class, from the given kits: ``class -> [(name, audio)]``."""
    samples: dict[str, list[tuple[str, np.ndarray]]] = {label: [] for label in CLASSES}
    for kit in kits:
        for path in sorted((kits_dir / kit).iterdir()):
            label = classify(path.name)
            if label is None or path.suffix.lower() not in (".wav", ".flac", ".aiff", ".aif"):
                continue
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
            mono = soxr.resample(audio.mean(axis=1), rate, RATE).astype(np.float32)
            if np.abs(mono).max() < 1e-4:
                continue  # an empty placeholder sample
            samples[label].append((f"{kit}/{path.name}", mono / np.abs(mono).max()))
    missing = [label for label, found in samples.items() if not found]
    if missing:
        raise SystemExit(f"kits {kits} have no sample of {missing}: check --kits (the hydrogen drumkits folder)")
    return samples


def make_clip(rng: np.random.Generator, samples: dict[str, list[tuple[str, np.ndarray]]]) -> tuple[np.ndarray, list]:
    """One clip: background plus 0-3 non-overlapping events; returns audio and ``[(onset, offset, label, source)]``."""
    length = int(SECONDS * RATE)
    level = 10 ** (rng.uniform(-50, -30) / 20)
    audio = background(rng, level, length, RATE)
    events = []
    count = int(rng.choice([0, 1, 2, 3], p=[0.2, 0.35, 0.3, 0.15]))
    taken: list[tuple[float, float]] = []
    for _ in range(count * 4):  # a few tries to place each event without overlap
        if len(events) == count:
            break
        label = str(rng.choice(list(CLASSES)))
        name, sample = samples[label][int(rng.integers(len(samples[label])))]
        extent = min(audible_seconds(sample, RATE), MAX_EVENT_SECONDS)
        onset = round(float(rng.uniform(0.2, SECONDS - extent - 0.1)), 3)
        offset = round(onset + extent, 3)
        if any(onset < stop + 0.2 and start < offset + 0.2 for start, stop in taken):
            continue
        start = int(onset * RATE)
        piece = sample[: length - start] * level * 10 ** (rng.uniform(10, 30) / 20)
        audio[start : start + len(piece)] += piece
        taken.append((onset, offset))
        events.append((onset, offset, label, name))
    peak = np.abs(audio).max()
    if peak > 0.99:
        audio *= 0.99 / peak
    return audio.astype(np.float32), sorted(events)


def build(kits_dir: Path, out: Path, seed: int = 0) -> dict:
    """Write the corpus (module docstring); returns its summary (also ``corpus.json``)."""
    summary = {"classes": list(CLASSES), "kits": KITS, "rate": RATE, "seconds": SECONDS, "seed": seed, "splits": {}}
    for split_index, (split, kits) in enumerate(KITS.items()):
        samples = load_samples(kits_dir, kits)
        rng = np.random.default_rng([seed, split_index])
        clips = (make_clip(rng, samples) for _ in range(CLIPS[split]))
        counts = write_split(out, split, clips, RATE, list(CLASSES))
        summary["splits"][split] = {
            "clips": CLIPS[split],
            "events": counts,
            "samples": {label: len(found) for label, found in samples.items()},
        }
    write_corpus_files(out, summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kits", required=True, type=Path, help="hydrogen-drumkits' drumkits folder")
    parser.add_argument("--out", required=True, type=Path, help="corpus folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    summary = build(args.kits, args.out, args.seed)
    for split, item in summary["splits"].items():
        print(f"{split:>10}: {item['clips']} clips, events {item['events']}, samples {item['samples']}")
    print(f"wrote {args.out} (layout + desed.yaml)")


if __name__ == "__main__":
    main()
