"""The embedded sound-event corpus: weak- and strong-labelled clips made from a seed.

Every clip is 4-10 s of 24 kHz mono audio: a background (coloured noise, hum, a room
tone, a band-limited murmur) at a random level, and 0-3 events at random onsets, each
mixed at its own signal-to-noise ratio. Five event classes differ in character and
duration so that timing matters:

========== ======================================================= ===========
class      what it sounds like                                     duration
========== ======================================================= ===========
click      resonant clicks a few ms long, repeating every 20-80 ms 0.04-0.30 s
tone       a harmonic beep (300-1500 Hz) with a little vibrato      0.25-1.50 s
chirp      a sine sweep up or down between 400 Hz and 6 kHz         0.20-0.80 s
noise_band a band of noise (1/3 to 1 octave wide, 500 Hz-6 kHz)     0.50-3.00 s
speech     a pulse train through moving formants, in syllables      0.60-2.50 s
========== ======================================================= ===========

Each event is mixed at 6-20 dB SNR (its RMS over its own span against the background RMS);
backgrounds sit at -45 to -28 dBFS with a broadband floor 25-35 dB below them.

Labels are exact: an event's onset is the first sample of its signal and its offset the
last, both on a 1 ms grid, so the TSVs (3 decimals) carry no rounding. Events of the same
class never overlap or touch (a DESED requirement, checked by sed_scores_eval); events of
different classes may overlap (polyphony). About a fifth of the clips hold no event at all
(negatives).

Layout written by :func:`synthesize_event_corpus` (DESED-style, tab-separated, header line)::

    OUT/audio/{train,validation,test}/{split}_{index:04d}.wav   24 kHz mono PCM-16
    OUT/metadata/{split}_strong.tsv      filename onset offset event_label   (events only)
    OUT/metadata/{split}_weak.tsv        filename event_labels               (every clip;
                                         labels comma-separated, empty for a negative)
    OUT/metadata/{split}_durations.tsv   filename duration                   (seconds)
    OUT/corpus.json                      classes, sizes, seed, sample rate, generator version

Every clip draws from its own random stream, ``SeedSequence([seed, split, index])``, so the
corpus is the same for a seed whatever the order or the number of clips generated.

The cached default corpus (:func:`default_event_corpus`, seed 0) has 300 / 100 / 100 clips
(train / validation / test; 35 / 12 / 12 minutes, 478 / 166 / 169 events, 55 / 19 / 18
negatives), about 160 MB, and takes about 15 s to generate on one core.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from scipy.fft import next_fast_len

from audioenc import SAMPLE_RATE
from audioenc.audio.formats import write_durations_tsv, write_strong_tsv, write_weak_tsv

EVENT_CLASSES: tuple[str, ...] = ("click", "tone", "chirp", "noise_band", "speech")
"""The event classes of the embedded corpus, in column order."""

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""Split names, in the order of the ``clips`` tuple."""

DEFAULT_CLIPS: tuple[int, int, int] = (300, 100, 100)
"""Default clips per split (train, validation, test) of the cached corpus."""

GENERATOR_VERSION = 1
"""Bumped whenever the audio or labels a seed produces change (invalidates caches)."""

COMPLETE_MARKER = ".complete"
"""File written last into a finished corpus folder; its content is the generator version."""

_DURATION_RANGE = {  # seconds, per class: (shortest, longest)
    "click": (0.04, 0.30),
    "tone": (0.25, 1.50),
    "chirp": (0.20, 0.80),
    "noise_band": (0.50, 3.00),
    "speech": (0.60, 2.50),
}


@dataclass(frozen=True)
class EventSpec:
    """One labelled event of a synthetic clip.

    Attributes:
        onset: start in seconds from the clip start (on a 1 ms grid).
        offset: end in seconds (exclusive sample bound, on a 1 ms grid).
        label: one of :data:`EVENT_CLASSES`.
        snr_db: event RMS over its own span relative to the background RMS, in dB.
    """

    onset: float
    offset: float
    label: str
    snr_db: float


@dataclass(frozen=True)
class SyntheticClip:
    """A generated clip and its labels.

    Attributes:
        audio: float32 samples, shape ``[time]``, 24 kHz, peak below 1.
        events: labelled events, sorted by onset.
        background: the background kind used (for inspection only).
    """

    audio: np.ndarray
    events: tuple[EventSpec, ...]
    background: str


# --------------------------------------------------------------------------- event sounds


def _fade(samples: int, fade_samples: int) -> np.ndarray:
    """Raised-cosine attack and release envelope, shape ``[samples]``, starting and ending
    at a small non-zero value so the labelled first and last samples carry signal."""
    envelope = np.ones(samples)
    fade_samples = max(1, min(fade_samples, samples // 2))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade_samples) + 1) / (fade_samples + 1))
    envelope[:fade_samples] = ramp
    envelope[samples - fade_samples :] = ramp[::-1]
    return envelope


def _bandpass_noise(rng: np.random.Generator, samples: int, low_hz: float, high_hz: float) -> np.ndarray:
    """White noise restricted to ``[low_hz, high_hz]`` by zeroing FFT bins, shape ``[samples]``."""
    # Work at a fast FFT length (a clip length can have large prime factors) and crop.
    length = next_fast_len(samples, real=True)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length, 1.0 / SAMPLE_RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    return np.fft.irfft(spectrum, n=length)[:samples]


def _click_event(rng: np.random.Generator, samples: int) -> np.ndarray:
    """A train of decaying resonant clicks (each 3-8 ms) repeating every 20-80 ms; the first
    click starts at sample 0 and the last ends at the final sample, so the label spans
    exactly the train (a single click for the shortest spans)."""
    out = np.zeros(samples)
    click_len = min(int(rng.uniform(0.003, 0.008) * SAMPLE_RATE), samples)
    period = int(rng.uniform(0.02, 0.08) * SAMPLE_RATE)
    latest_start = samples - click_len
    starts = list(range(0, latest_start, period)) + [latest_start]
    resonance_hz = rng.uniform(1500, 7000)
    b, a = signal.iirpeak(resonance_hz, Q=rng.uniform(3, 10), fs=SAMPLE_RATE)
    decay = np.exp(-np.arange(click_len) / (0.25 * click_len))
    for start in starts:
        burst = rng.standard_normal(click_len) * decay
        out[start : start + click_len] += signal.lfilter(b, a, burst) + 0.3 * burst
    return out


def _tone_event(rng: np.random.Generator, samples: int) -> np.ndarray:
    """A harmonic beep: f0 in 300-1500 Hz, 1-4 harmonics with falling amplitudes, 4-7 Hz
    vibrato of up to 1 %."""
    t = np.arange(samples) / SAMPLE_RATE
    f0 = rng.uniform(300, 1500)
    vibrato = 1.0 + rng.uniform(0, 0.01) * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / SAMPLE_RATE
    harmonics = int(rng.integers(1, 5))
    out = sum((0.6**h) * np.sin((h + 1) * phase) for h in range(harmonics))
    return out * _fade(samples, int(0.01 * SAMPLE_RATE))


def _chirp_event(rng: np.random.Generator, samples: int) -> np.ndarray:
    """A logarithmic sine sweep between two frequencies in 400 Hz-6 kHz, up or down."""
    t = np.arange(samples) / SAMPLE_RATE
    low, high = sorted(rng.uniform(np.log(400), np.log(6000), size=2))
    if high - low < np.log(2):  # at least one octave of sweep
        high = min(low + np.log(2), np.log(8000))
    start, end = (low, high) if rng.random() < 0.5 else (high, low)
    frequency = np.exp(start + (end - start) * t / max(t[-1], 1e-9))
    phase = 2 * np.pi * np.cumsum(frequency) / SAMPLE_RATE
    return np.sin(phase) * _fade(samples, int(0.005 * SAMPLE_RATE))


def _noise_band_event(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Noise in a band 1/3 to 1 octave wide centred in 500 Hz-6 kHz, with a slow tremolo."""
    center = np.exp(rng.uniform(np.log(500), np.log(6000)))
    half_width_octaves = rng.uniform(1 / 6, 1 / 2)
    noise = _bandpass_noise(rng, samples, center * 2 ** (-half_width_octaves), center * 2**half_width_octaves)
    t = np.arange(samples) / SAMPLE_RATE
    tremolo = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t + rng.uniform(0, 2 * np.pi))
    return noise * tremolo * _fade(samples, int(0.02 * SAMPLE_RATE))


# Vowel formants (F1, F2, F3) in Hz: a coarse average adult set.
_VOWEL_FORMANTS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410], [440, 1020, 2240]]
)


def _speech_event(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Speech-like babble from one talker: a glottal pulse train (f0 90-230 Hz with a falling
    intonation) through three formant resonators, in syllables of 120-260 ms whose vowels
    change and whose amplitudes rise and fall at the syllable rate."""
    t = np.arange(samples) / SAMPLE_RATE
    f0_start = rng.uniform(90, 230)
    f0 = f0_start * (1.0 - 0.2 * t / max(t[-1], 1e-9)) * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))
    phase = np.cumsum(f0) / SAMPLE_RATE
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal period
    source = signal.lfilter([1.0], [1.0, -0.95], pulses) + 0.02 * rng.standard_normal(samples)
    out = np.zeros(samples)
    position = 0
    while position < samples:
        syllable = min(int(rng.uniform(0.12, 0.26) * SAMPLE_RATE), samples - position)
        segment = source[position : position + syllable]
        formants = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))] * rng.uniform(0.9, 1.15)
        voiced = np.zeros(syllable)
        for number, frequency in enumerate(formants):
            b, a = signal.iirpeak(min(frequency, 0.45 * SAMPLE_RATE), Q=5.0 + 3 * number, fs=SAMPLE_RATE)
            voiced += signal.lfilter(b, a, segment) * (0.8**number)
        # Syllable envelope: rises and falls but never to silence, so the event has no gaps.
        envelope = 0.35 + 0.65 * np.sin(np.pi * (np.arange(syllable) + 0.5) / syllable)
        out[position : position + syllable] = voiced * envelope
        position += syllable
    return out * _fade(samples, int(0.01 * SAMPLE_RATE))


_EVENT_MAKERS = {
    "click": _click_event,
    "tone": _tone_event,
    "chirp": _chirp_event,
    "noise_band": _noise_band_event,
    "speech": _speech_event,
}


def make_event(rng: np.random.Generator, label: str, duration: float) -> np.ndarray:
    """Synthesize one event of ``label`` lasting ``duration`` seconds.

    Args:
        rng: the random stream to draw from.
        label: one of :data:`EVENT_CLASSES`.
        duration: seconds; the result has ``round(duration * 24000)`` samples.

    Returns:
        float64 samples ``[time]`` with unit RMS (scaled by the caller to an SNR).
    """
    if label not in _EVENT_MAKERS:
        raise ValueError(f"unknown event class {label!r}; known classes: {', '.join(EVENT_CLASSES)}")
    samples = int(round(duration * SAMPLE_RATE))
    if samples < 16:
        raise ValueError(f"event duration {duration} s is too short to synthesize (needs >= 16 samples)")
    event = _EVENT_MAKERS[label](rng, samples)
    return event / max(float(np.sqrt(np.mean(event**2))), 1e-12)


# --------------------------------------------------------------------------- backgrounds

BACKGROUND_KINDS: tuple[str, ...] = ("pink", "brown_hum", "room_tone", "murmur")
"""Background kinds: 1/f noise; 1/f^2 noise plus mains hum; low-passed noise with a
ventilation hum; several slowly modulated low bands (a distant crowd without pitch). Each
gets a broadband 1/f floor 25-35 dB below it."""


def _coloured_noise(rng: np.random.Generator, samples: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent above 20 Hz, shape ``[samples]``."""
    length = next_fast_len(samples, real=True)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length, 1.0 / SAMPLE_RATE)
    spectrum *= 1.0 / np.maximum(freqs, 20.0) ** (exponent / 2)
    return np.fft.irfft(spectrum, n=length)[:samples]


def make_background(rng: np.random.Generator, kind: str, samples: int) -> np.ndarray:
    """Synthesize ``samples`` of background of the given kind, unit RMS, shape ``[samples]``."""
    t = np.arange(samples) / SAMPLE_RATE
    if kind == "pink":
        out = _coloured_noise(rng, samples, 1.0)
    elif kind == "brown_hum":
        mains = 50.0 if rng.random() < 0.5 else 60.0
        out = _coloured_noise(rng, samples, 2.0)
        out /= np.sqrt(np.mean(out**2))
        out += sum(0.3 / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) for k in (1, 2, 3))
    elif kind == "room_tone":
        out = _bandpass_noise(rng, samples, 20.0, rng.uniform(800, 3000))
        out /= np.sqrt(np.mean(out**2))
        out += 0.2 * np.sin(2 * np.pi * rng.uniform(90, 140) * t)
    elif kind == "murmur":
        out = np.zeros(samples)
        for _ in range(4):
            low = rng.uniform(150, 600)
            band = _bandpass_noise(rng, samples, low, low * rng.uniform(1.5, 3.0))
            band /= np.sqrt(np.mean(band**2))
            out += band * (1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 6.3)))
    else:
        raise ValueError(f"unknown background kind {kind!r}; known kinds: {', '.join(BACKGROUND_KINDS)}")
    out /= max(float(np.sqrt(np.mean(out**2))), 1e-12)
    # A broadband floor 25-35 dB down: real rooms are never silent above a band edge, and
    # without it a log-mel shows an unnatural black band any event would light up.
    floor = _coloured_noise(rng, samples, 1.0)
    out += floor / np.sqrt(np.mean(floor**2)) * 10 ** (-rng.uniform(25, 35) / 20)
    return out / float(np.sqrt(np.mean(out**2)))


# --------------------------------------------------------------------------- clips


def _draw_events(
    rng: np.random.Generator, duration: float, count: int, classes: tuple[str, ...]
) -> list[tuple[float, float, str]]:
    """Draw up to ``count`` (onset, offset, label) on a 1 ms grid; same-class events keep a
    100 ms gap (they must not touch), other classes may overlap."""
    events: list[tuple[float, float, str]] = []
    for _ in range(count):
        for _attempt in range(20):
            label = classes[int(rng.integers(len(classes)))]
            shortest, longest = _DURATION_RANGE[label]
            length_ms = int(rng.integers(int(shortest * 1000), int(min(longest, duration - 0.2) * 1000) + 1))
            onset_ms = int(rng.integers(0, int(duration * 1000) - length_ms + 1))
            onset, offset = onset_ms / 1000, (onset_ms + length_ms) / 1000
            clash = any(
                other_label == label and onset < other_offset + 0.1 and other_onset < offset + 0.1
                for other_onset, other_offset, other_label in events
            )
            if not clash:
                events.append((onset, offset, label))
                break
    return sorted(events)


def synthesize_clip(
    rng: np.random.Generator,
    *,
    duration: float | None = None,
    events: tuple[tuple[float, float, str], ...] | None = None,
    classes: tuple[str, ...] = EVENT_CLASSES,
    negative_probability: float = 0.2,
    max_events: int = 3,
    snr_range_db: tuple[float, float] = (6.0, 20.0),
    background_level_range_db: tuple[float, float] = (-45.0, -28.0),
) -> SyntheticClip:
    """Make one clip: a background plus events at random (or given) times.

    Args:
        rng: the clip's random stream.
        duration: clip length in seconds (multiple of 1 ms); drawn from 4-10 s if None.
        events: fixed ``(onset, offset, label)`` events in seconds; drawn if None (a
            negative with ``negative_probability``, else 1..``max_events`` events).
        classes: classes to draw from.
        negative_probability: chance of a clip without events when events are drawn.
        max_events: most events per drawn clip.
        snr_range_db: each event's RMS over its span relative to the background RMS, dB.
        background_level_range_db: background RMS in dBFS.

    Returns:
        The clip, its events (sorted) and the background kind. The mix is scaled down as a
        whole (all SNRs kept) if its peak would exceed 0.9.
    """
    if duration is None:
        duration = int(rng.integers(4000, 10001)) / 1000
    samples = int(round(duration * SAMPLE_RATE))
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    background_rms = 10 ** (rng.uniform(*background_level_range_db) / 20)
    mix = make_background(rng, kind, samples) * background_rms
    if events is None:
        count = 0 if rng.random() < negative_probability else int(rng.integers(1, max_events + 1))
        events = tuple(_draw_events(rng, duration, count, classes))
    placed: list[EventSpec] = []
    for onset, offset, label in sorted(events):
        if not (0.0 <= onset < offset <= duration + 1e-9):
            raise ValueError(f"event ({onset}, {offset}, {label}) does not fit a {duration} s clip")
        snr_db = float(rng.uniform(*snr_range_db))
        start = int(round(onset * SAMPLE_RATE))
        stop = int(round(offset * SAMPLE_RATE))
        mix[start:stop] += make_event(rng, label, (stop - start) / SAMPLE_RATE) * background_rms * 10 ** (snr_db / 20)
        placed.append(EventSpec(onset=onset, offset=offset, label=label, snr_db=snr_db))
    peak = float(np.max(np.abs(mix)))
    if peak > 0.9:
        mix *= 0.9 / peak
    return SyntheticClip(audio=mix.astype(np.float32), events=tuple(placed), background=kind)


def _clip_rng(seed: int, split_index: int, clip_index: int) -> np.random.Generator:
    """The random stream of one clip, independent of generation order."""
    return np.random.default_rng(np.random.SeedSequence([seed, split_index, clip_index]))


def synthesize_event_corpus(
    out_dir: str | Path,
    clips: tuple[int, int, int] | int = DEFAULT_CLIPS,
    seed: int = 0,
    *,
    classes: tuple[str, ...] = EVENT_CLASSES,
) -> Path:
    """Write the labelled event corpus (layout in the module docstring) into ``out_dir``.

    Args:
        out_dir: target folder, created if missing; files of the same names are overwritten.
        clips: clips per split ``(train, validation, test)``, or one total split 60/20/20.
        seed: the corpus seed; the same seed gives byte-identical files.
        classes: event classes to draw from (a subset of :data:`EVENT_CLASSES`).

    Returns:
        ``out_dir`` as a Path.
    """
    unknown = [name for name in classes if name not in EVENT_CLASSES]
    if unknown:
        raise ValueError(f"unknown event classes {unknown}; known classes: {', '.join(EVENT_CLASSES)}")
    if isinstance(clips, int):
        if clips < 3:
            raise ValueError(f"clips={clips}: need at least 3 clips (one per split)")
        counts = (clips - 2 * (clips // 5), clips // 5, clips // 5)
    else:
        counts = tuple(int(count) for count in clips)
        if len(counts) != len(SPLITS) or min(counts) < 0:
            raise ValueError(f"clips={clips}: give one non-negative count per split {SPLITS}")
    out_dir = Path(out_dir)
    (out_dir / "metadata").mkdir(parents=True, exist_ok=True)
    for split_index, (split, count) in enumerate(zip(SPLITS, counts)):
        audio_dir = out_dir / "audio" / split
        audio_dir.mkdir(parents=True, exist_ok=True)
        strong: dict[str, list[tuple[float, float, str]]] = {}
        weak: dict[str, list[str]] = {}
        durations: dict[str, float] = {}
        for clip_index in range(count):
            clip = synthesize_clip(_clip_rng(seed, split_index, clip_index), classes=classes)
            filename = f"{split}_{clip_index:04d}.wav"
            sf.write(audio_dir / filename, clip.audio, SAMPLE_RATE, subtype="PCM_16")
            strong[filename] = [(event.onset, event.offset, event.label) for event in clip.events]
            weak[filename] = sorted({event.label for event in clip.events})
            durations[filename] = len(clip.audio) / SAMPLE_RATE
        write_strong_tsv(out_dir / "metadata" / f"{split}_strong.tsv", strong)
        write_weak_tsv(out_dir / "metadata" / f"{split}_weak.tsv", weak)
        write_durations_tsv(out_dir / "metadata" / f"{split}_durations.tsv", durations)
    description = {
        "name": "audioenc synthetic events",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "classes": list(classes),
        "clips": dict(zip(SPLITS, counts)),
        "clip_seconds": [4.0, 10.0],
        "layout": "audio/{split}/*.wav; metadata/{split}_strong.tsv, {split}_weak.tsv, {split}_durations.tsv",
    }
    (out_dir / "corpus.json").write_text(json.dumps(description, indent=2) + "\n")
    return out_dir


def default_cache_dir() -> Path:
    """The data cache: ``$AUDIOENC_CACHE`` if set, else ``~/.cache/audioenc``."""
    configured = os.environ.get("AUDIOENC_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "audioenc"


def default_event_corpus(cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The embedded event corpus (default size, :data:`DEFAULT_CLIPS`), made on first use.

    Generated into ``<cache>/events-seed{seed}`` (``<cache>`` from :func:`default_cache_dir`
    unless ``cache_dir`` is given). The corpus is built in a temporary sibling folder and
    renamed into place only when complete (marker :data:`COMPLETE_MARKER` holding the
    generator version), so an interrupted or concurrent first use never leaves a half
    corpus behind. A folder from another generator version is rebuilt.

    Returns:
        The corpus root folder.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / f"events-seed{seed}"
    marker = target / COMPLETE_MARKER
    if marker.is_file() and marker.read_text().strip() == str(GENERATOR_VERSION):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".events-seed{seed}.partial-{os.getpid()}-{time.monotonic_ns()}"
    synthesize_event_corpus(staging, DEFAULT_CLIPS, seed)
    (staging / COMPLETE_MARKER).write_text(f"{GENERATOR_VERSION}\n")
    if target.exists():
        if marker.is_file() and marker.read_text().strip() == str(GENERATOR_VERSION):
            shutil.rmtree(staging)  # another process finished first; theirs is identical
            return target
        shutil.rmtree(target)  # stale version or an incomplete folder from an old release
    try:
        staging.rename(target)
    except OSError:
        # Lost a race with a concurrent first use: keep the winner if it is complete.
        shutil.rmtree(staging)
        if not (marker.is_file() and marker.read_text().strip() == str(GENERATOR_VERSION)):
            raise
    return target
