"""Build a real speech-event corpus from Debian's klettres-data (KDE KLettres: recorded spoken letters).

No code of this project generated the events: they are KLettres' recordings of the alphabet read
aloud, one native speaker per language folder (GPL-2+, see the package's
``/usr/share/doc/klettres-data/copyright``). This script only trims them, places them at known
onsets into realistic backgrounds (pink noise with a slowly varying level), and writes the corpus
in the workflow's layout exactly as ``build_drum_corpus.py`` does (:mod:`corpus_writing`):
``audio/{train,validation,test}/*.wav`` (16 kHz mono, 6 s), ``metadata/{split}_strong.tsv`` and
``{split}_weak.tsv``, ``corpus.json`` and ``desed.yaml`` (weakly labelled training clips, strongly
labelled validation and test). The audio is not committed; this script is, and it rebuilds the
corpus byte for byte from the same package and seed.

Classes (ten spoken letter names): a, b, d, e, f, k, l, m, o, s — ten of the twenty letters that
every Latin-alphabet folder with recordings holds (Dutch has no c, Italian no v, Lithuanian no q, w,
x): three vowels, three plosive names (b, d, k) and four /ɛ/ + consonant names (f, l, m, s).
**A letter's name is pronounced differently across languages** (English "ay", "ee", "kay", "oh"
against German "ah", "eh", "kah", "oh"; Italian "bi", "di", "cappa", "effe"; Spanish "efe", "ele");
recognising the letter across those pronunciations is part of the task, as a new speaker is. The
letter of a file is read from the folder's ``sounds.xml`` (its ``<alphabet>`` maps each letter to a
file): the file names do not say it in several folders (``cs``, ``da``, ``fr``, ``nl`` number the
files ``a-0.ogg, a-1.ogg, ...`` in alphabet order, and Dutch, lacking c, has d in ``a-2.ogg``).

Splits are **speaker-disjoint** (each language folder is one speaker): see :data:`LANGUAGES`. The
folders' median pitch (pyin on the vowels) puts en (~135 Hz) and en_GB (~230 Hz), de (~200 Hz) and
nds (~95 Hz), da (~120 Hz) and nb (~250 Hz) clearly apart, so related languages are different voices.
Each folder gives one recording per letter: a split with N languages has N recordings per class.

Each recording is mixed to mono, resampled to 16 kHz, high-passed (4th-order Butterworth at
100 Hz, zero-phase: several folders carry 50-60 Hz hum and rumble) and trimmed to its audible
extent (:func:`audible_extent`), with 10 ms fades inside the extent; the event's label is exactly
the trimmed word: ``offset = onset + length``. Per clip: a background of RMS -50 to -35 dBFS, 0-4
non-overlapping words (a draw of none in 15 % of clips; the classes in shuffled rounds, so
each is about as frequent), each scaled to an SNR drawn from 5-20 dB: the
word's RMS over its extent against the background's RMS over the same samples.

    dpkg-deb -x klettres-data_*.deb /tmp/klettres      # apt-get download klettres-data
    python benchmarks/real_events/build_speech_corpus.py \\
        --klettres /tmp/klettres/usr/share/klettres --out /tmp/speech_events
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from corpus_writing import Event, background, write_corpus_files, write_split
from scipy.signal import butter, sosfiltfilt

CLASSES: tuple[str, ...] = ("a", "b", "d", "e", "f", "k", "l", "m", "o", "s")
"""The letters, lower case (a ``sounds.xml`` name matches its lower-cased class)."""

LANGUAGES: dict[str, tuple[str, ...]] = {
    "train": ("cs", "da", "de", "en_GB", "fr", "hu", "nb", "nds", "pt_BR"),
    "validation": ("es", "lt"),
    "test": ("en", "it", "nl"),
}
"""Language folders (one speaker each), disjoint across splits. Left out: ar, he, ml, ru, uk (not the
Latin alphabet), id and nn (``sounds.xml`` names files the package does not ship), tn (7 letters)."""

CLIPS: dict[str, int] = {"train": 300, "validation": 60, "test": 60}
RATE = 16_000
SECONDS = 6.0
MAX_EVENT_SECONDS = 1.5
EVENT_COUNTS = (0, 1, 2, 3, 4)
EVENT_COUNT_PROBABILITIES = (0.15, 0.25, 0.25, 0.2, 0.15)
SNR_DB = (5.0, 20.0)
BACKGROUND_DBFS = (-50.0, -35.0)
HIGHPASS_HZ = 100.0
FADE_SECONDS = 0.01

FRAME_SECONDS = 0.01
FLOOR_DB = 30.0
"""The extent's threshold is the peak frame energy minus this ..."""
NOISE_MARGIN_DB = 10.0
"""... raised to the recording's noise floor plus this (where the floor is high) ..."""
MAX_THRESHOLD_DB = 20.0
"""... but never above the peak minus this (a file that is all word has its 'floor' inside the word)."""
GAP_SECONDS = 0.25
"""Quieter gaps up to this long stay inside the extent (geminates: Italian "cap-pa", "ef-fe")."""


def alphabet(sounds_xml: str) -> dict[str, str]:
    """``class -> file`` (relative to the klettres folder, e.g. ``nl/alpha/a-2.ogg``) from a ``sounds.xml`` text.

    Only the ``<alphabet>`` section counts (``<syllables>`` hold syllables); a letter with several
    entries keeps the first."""
    letters: dict[str, str] = {}
    for section in ElementTree.fromstring(sounds_xml).iter("alphabet"):
        for sound in section.iter("sound"):
            label = (sound.get("name") or "").lower()
            if label in CLASSES and label not in letters:
                letters[label] = sound.get("file") or ""
    return letters


def frame_energy(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mean square per :data:`FRAME_SECONDS` frame, smoothed over 3 frames: ``[frames]``."""
    hop = int(rate * FRAME_SECONDS)
    frames = len(audio) // hop
    energy = (audio[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    return np.convolve(energy, np.ones(3) / 3, mode="same")  # a 10 ms click alone stays a third as loud


def audible_extent(audio: np.ndarray, rate: int) -> tuple[int, int]:
    """``(start, stop)`` samples of the word: the run of frames around the loudest one whose energy
    exceeds the threshold, bridging quieter gaps of up to :data:`GAP_SECONDS`.

    In dB of frame energy ``E`` (:func:`frame_energy`), with ``peak = max E`` and ``floor`` its 10th
    percentile: ``threshold = max(peak - 30, min(floor + 10, peak - 20))``. The ``-30`` is the drum
    builder's rule; the floor term keeps a hummy recording's noise (hu: 25 dB below the word) out;
    the cap keeps a file with no silence around the word (it, pt_BR) from being cut into the word.
    A click or breath more than the gap away from the word is left out."""
    energy = frame_energy(audio, rate)
    if len(energy) == 0 or energy.max() <= 0:
        return 0, len(audio)
    level = 10 * np.log10(np.maximum(energy, energy.max() * 1e-20))
    peak, floor = level.max(), float(np.percentile(level, 10))
    above = level > max(peak - FLOOR_DB, min(floor + NOISE_MARGIN_DB, peak - MAX_THRESHOLD_DB))
    gap = round(GAP_SECONDS / FRAME_SECONDS)
    first = last = int(np.argmax(level))
    while (ahead := np.flatnonzero(above[last + 1 : last + 2 + gap])).size:
        last += 1 + int(ahead[-1])
    while (behind := np.flatnonzero(above[max(0, first - 1 - gap) : first])).size:
        first = max(0, first - 1 - gap) + int(behind[0])
    hop = int(rate * FRAME_SECONDS)
    return first * hop, min(len(audio), (last + 1) * hop)


def prepare_word(audio: np.ndarray, rate: int) -> np.ndarray:
    """A recording (``[samples]`` or ``[samples, channels]`` at ``rate``) as an event: mono at :data:`RATE`,
    high-passed, trimmed to :func:`audible_extent` (at most :data:`MAX_EVENT_SECONDS`), faded in and out
    over :data:`FADE_SECONDS` and scaled to unit RMS. ``[samples]`` float64."""
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    mono = soxr.resample(mono.astype(np.float64), rate, RATE)
    mono = sosfiltfilt(butter(4, HIGHPASS_HZ, "highpass", fs=RATE, output="sos"), mono)
    start, stop = audible_extent(mono, RATE)
    word = mono[start : min(stop, start + int(MAX_EVENT_SECONDS * RATE))].copy()
    fade = int(FADE_SECONDS * RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)  # raised cosine 0 -> 1
    word[:fade] *= ramp
    word[len(word) - fade :] *= ramp[::-1]
    return word / np.sqrt(np.mean(word**2))


def load_words(klettres: Path, languages: tuple[str, ...]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Prepared words (:func:`prepare_word`) per class from the given language folders: ``class -> [(file, word)]``."""
    words: dict[str, list[tuple[str, np.ndarray]]] = {label: [] for label in CLASSES}
    for language in languages:
        index = klettres / language / "sounds.xml"
        if not index.is_file():
            raise SystemExit(f"{index}: missing; --klettres must be klettres-data's usr/share/klettres folder")
        letters = alphabet(index.read_text(encoding="utf-8"))
        missing = [label for label in CLASSES if label not in letters or not (klettres / letters[label]).is_file()]
        if missing:
            raise SystemExit(f"{index}: no recording of {missing}; use a klettres-data with {language}'s full alphabet")
        for label in CLASSES:
            audio, rate = sf.read(str(klettres / letters[label]), dtype="float64", always_2d=True)
            if not np.any(audio):
                raise SystemExit(f"{klettres / letters[label]}: silent; check the klettres-data extraction")
            words[label].append((letters[label], prepare_word(audio, rate)))
    return words


def label_cycle(rng: np.random.Generator) -> Iterator[str]:
    """Endless labels, each run of ``len(CLASSES)`` a fresh shuffle of all classes: a split's classes come
    out within about one event of each other (uniform draws leave a 60-clip split with 4 of one class)."""
    while True:
        yield from (str(label) for label in rng.permutation(CLASSES))


def make_clip(
    rng: np.random.Generator, words: dict[str, list[tuple[str, np.ndarray]]], labels: Iterator[str]
) -> tuple[np.ndarray, list[Event], list[float]]:
    """One clip: background plus 0-4 non-overlapping words (at least 0.2 s apart), labels from ``labels``.

    Returns ``audio [RATE * SECONDS]`` float32, events ``[(onset, offset, label, file)]`` sorted by onset,
    and each event's SNR in dB (same order): ``20 log10(rms(word · gain) / rms(background))`` over the
    word's samples, drawn from :data:`SNR_DB`. ``words`` hold unit-RMS words."""
    length = int(SECONDS * RATE)
    level = 10 ** (rng.uniform(*BACKGROUND_DBFS) / 20)
    noise = background(rng, level, length, RATE)
    audio = noise.copy()
    events: list[tuple[Event, float]] = []
    for _ in range(int(rng.choice(EVENT_COUNTS, p=EVENT_COUNT_PROBABILITIES))):
        label = next(labels)
        name, word = words[label][int(rng.integers(len(words[label])))]
        extent = len(word) / RATE
        for _ in range(4):  # a few tries to place the word without overlap (else it is left out)
            onset = round(float(rng.uniform(0.2, SECONDS - extent - 0.1)), 3)
            offset = round(onset + extent, 3)
            if not any(onset < stop + 0.2 and start < offset + 0.2 for (start, stop, _, _), _ in events):
                break
        else:
            continue
        snr = float(rng.uniform(*SNR_DB))
        start = round(onset * RATE)
        span = noise[start : start + len(word)]
        audio[start : start + len(word)] += word * np.sqrt(np.mean(span**2)) * 10 ** (snr / 20)
        events.append(((onset, offset, label, name), snr))
    peak = np.abs(audio).max()
    if peak > 0.99:
        audio *= 0.99 / peak  # the whole clip: every SNR is kept
    events.sort()
    return audio.astype(np.float32), [event for event, _ in events], [snr for _, snr in events]


def split_clips(
    rng: np.random.Generator, words: dict[str, list[tuple[str, np.ndarray]]], count: int, placed: list
) -> Iterator[tuple[np.ndarray, list[Event]]]:
    """``count`` clips of :func:`make_clip` as ``(audio, events)``; each one's ``(events, snrs)`` goes to ``placed``."""
    labels = label_cycle(rng)
    for _ in range(count):
        audio, events, snrs = make_clip(rng, words, labels)
        placed.append((events, snrs))
        yield audio, events


def stats(values: list[float], digits: int = 3) -> dict[str, float]:
    """Min, median and max, rounded (an empty list gives an empty dict)."""
    if not values:
        return {}
    return {
        name: round(float(f(values)), digits) for name, f in (("min", np.min), ("median", np.median), ("max", np.max))
    }


def build(klettres: Path, out: Path, seed: int = 0) -> dict:
    """Write the corpus (module docstring); returns its summary (also ``corpus.json``)."""
    summary = {
        "classes": list(CLASSES),
        "languages": LANGUAGES,
        "source": "Debian klettres-data (KDE KLettres), GPL-2+: one speaker per language folder",
        "rate": RATE,
        "seconds": SECONDS,
        "seed": seed,
        "snr_db_range": list(SNR_DB),
        "background_dbfs_range": list(BACKGROUND_DBFS),
        "splits": {},
    }
    for split_index, (split, languages) in enumerate(LANGUAGES.items()):
        words = load_words(klettres, languages)
        rng = np.random.default_rng([seed, split_index])
        placed: list[tuple[list[Event], list[float]]] = []
        counts = write_split(out, split, split_clips(rng, words, CLIPS[split], placed), RATE, CLASSES)
        snrs = [snr for _, clip_snrs in placed for snr in clip_snrs]
        lengths = [offset - onset for events, _ in placed for onset, offset, _, _ in events]
        summary["splits"][split] = {
            "clips": CLIPS[split],
            "clips_without_events": sum(not events for events, _ in placed),
            "languages": list(languages),
            "events": counts,
            "recordings": {label: len(found) for label, found in words.items()},
            "snr_db": stats(snrs, 2),
            "event_seconds": stats(lengths),
        }
    write_corpus_files(out, summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--klettres", required=True, type=Path, help="klettres-data's usr/share/klettres folder")
    parser.add_argument("--out", required=True, type=Path, help="corpus folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    summary = build(args.klettres, args.out, args.seed)
    for split, item in summary["splits"].items():
        print(
            f"{split:>10}: {item['clips']} clips ({item['clips_without_events']} without events), "
            f"languages {item['languages']}, events {item['events']}, SNR dB {item['snr_db']}, "
            f"event s {item['event_seconds']}"
        )
    print(f"wrote {args.out} (layout + desed.yaml)")


if __name__ == "__main__":
    main()
