"""The embedded eigenscape-like corpus: 32-channel em32 scenes simulated from a seed.

In the spirit of EigenScape (Green et al., 2017: 8 acoustic scene classes recorded with an
Eigenmike em32), each scene here is 32 channels, 48 kHz, 24-bit WAV, made of

* a shoebox room simulated with pyroomacoustics' image-source method (outdoor classes: a
  large box with absorbing walls and sky and a reflecting ground; street classes: a street
  canyon with two reflecting facades; indoor classes: a reverberant hall);
* the em32 capsule geometry (:mod:`audioenc.audio.em32`) placed 1.5 m above the floor;
* 3-6 point sources of different character — noise bursts, harmonic tones, bird-like
  chirps, speech-like formant sounds, clicks — at different positions, some moving;
* a spatially diffuse background whose spectrum and slow modulation depend on the class.

Approximations (stated, not hidden): capsules are free-field omnidirectional points at the
em32 positions — the rigid sphere's scattering (level differences, longer low-frequency
delays) is not modelled. A moving source is rendered block-wise: its signal is cut into
50 %-overlapping Hann windows (hop :data:`MOVING_HOP_SECONDS`), each block convolved with the
room impulse responses for the source position at the block's centre and overlap-added
(the windows sum to one), so the position changes smoothly but Doppler shift is not
modelled. The diffuse background mixes 32 independent noises per STFT bin with the square
root of the diffuse-field coherence matrix ``Γ_ij(f) = sin(k d_ij) / (k d_ij)``,
``k = 2πf/c``, ``d_ij`` = distance between capsules ``i`` and ``j`` — the coherence of
uncorrelated plane waves from all directions at free-field points.

Deterministic for a seed: scene ``i`` draws from ``SeedSequence([seed, i])`` alone, so a
corpus of N scenes is a prefix of a corpus of N + 1 scenes.

Default corpus (:func:`default_eigenscape_corpus`): :data:`DEFAULT_SCENES` = 8 scenes (one
per class) of :data:`DEFAULT_SECONDS` = 10 s = 80 s of audio, 8 x 46 MB = 369 MB of 24-bit
WAV, generated in about 20-40 s on one core and cached.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

from audioenc.audio.em32 import EM32_RADIUS_M, NUM_CAPSULES, SPEED_OF_SOUND_M_S, capsule_positions, unit_vector
from audioenc.audio.io import audio_cache_dir, write_audio

LOGGER = logging.getLogger(__name__)

SCENE_SAMPLE_RATE = 48_000
"""Sample rate of the scenes in Hz (EigenScape's)."""

SCENE_CLASSES: tuple[str, ...] = (
    "Beach",
    "BusyStreet",
    "Park",
    "PedestrianZone",
    "QuietStreet",
    "ShoppingCentre",
    "TrainStation",
    "Woodland",
)
"""The eight EigenScape scene classes; scene ``i`` of a corpus has class ``SCENE_CLASSES[i % 8]``."""

SOURCE_KINDS: tuple[str, ...] = ("noise_burst", "tone", "chirp", "speech", "click")
"""Kinds of point source :func:`source_signal` makes."""

DEFAULT_SCENES = 8
"""Scenes in the default cached corpus (one per class)."""

DEFAULT_SECONDS = 10.0
"""Length of each default scene in seconds."""

MOVING_HOP_SECONDS = 0.25
"""Hop of the block-wise rendering of moving sources (windows are twice as long)."""

GENERATOR_VERSION = 2
"""Bumped when the synthesis changes; part of the cache key and of the completion marker."""

COMPLETE_MARKER = ".eigenscape_like_complete.json"
"""Written last into a corpus directory; its absence means the corpus is incomplete."""

_SCENE_FILE = re.compile(r"^[A-Za-z]+-\d{2,}\.wav$")
_CORPUS_FILES = frozenset({"scenes.tsv", "sources.tsv", "corpus.json"})


# --------------------------------------------------------------------------- specifications


@dataclass(frozen=True)
class RoomSpec:
    """A shoebox room and where the array sits in it.

    Attributes:
        dimensions_m: ``(x, y, z)`` size in metres.
        absorption: energy absorption per surface (``east, west, north, south, floor,
            ceiling``), each in [0, 1].
        max_order: image-source reflection order.
        array_center_m: centre of the em32 in room coordinates (metres).
    """

    dimensions_m: tuple[float, float, float]
    absorption: tuple[float, float, float, float, float, float]
    max_order: int
    array_center_m: tuple[float, float, float]


@dataclass(frozen=True)
class SourceSpec:
    """A point source.

    Attributes:
        kind: one of :data:`SOURCE_KINDS` (informational; the sound is ``signal``).
        signal: ``[time]`` float64 at the scene rate, as long as the scene (zeros where silent).
        start_m: position at the start of the scene (room coordinates, metres).
        end_m: position at the end; equal to ``start_m`` for a static source.
        onset_s, offset_s: where ``signal`` is non-zero, seconds (for the metadata).
    """

    kind: str
    signal: np.ndarray = field(repr=False)
    start_m: tuple[float, float, float]
    end_m: tuple[float, float, float]
    onset_s: float = 0.0
    offset_s: float = 0.0

    @property
    def moving(self) -> bool:
        """True when the source changes position during the scene."""
        return tuple(self.start_m) != tuple(self.end_m)


@dataclass(frozen=True)
class BackgroundSpec:
    """Diffuse background: spectrum and slow level modulation.

    Attributes:
        slope_db_per_octave: spectral tilt relative to white (pink is -3, brown -6).
        band_hz: a band that is raised by ``band_gain_db`` (babble, surf, hum region).
        band_gain_db: gain of that band in dB.
        lowpass_hz: above this the spectrum falls by 12 dB/octave.
        modulation_hz: rate of the slow level modulation (waves, gusts, crowd swell).
        modulation_depth: 0 (steady) .. 1 (fully modulated).
        level: RMS of the background per channel (full scale 1.0) before scene normalisation.
    """

    slope_db_per_octave: float = -3.0
    band_hz: tuple[float, float] = (300.0, 3000.0)
    band_gain_db: float = 0.0
    lowpass_hz: float = 16_000.0
    modulation_hz: float = 0.1
    modulation_depth: float = 0.0
    level: float = 0.01


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to render one scene.

    Attributes:
        scene_class: one of :data:`SCENE_CLASSES` (or any label).
        num_samples: scene length in samples at ``sample_rate``.
        room: the room and array placement.
        sources: point sources.
        background: diffuse background, or ``None`` for none.
        sample_rate: Hz.
        peak: the rendered scene is scaled to this absolute peak (``None``: no scaling).
    """

    scene_class: str
    num_samples: int
    room: RoomSpec
    sources: tuple[SourceSpec, ...]
    background: BackgroundSpec | None
    sample_rate: int = SCENE_SAMPLE_RATE
    peak: float | None = 0.5


# --------------------------------------------------------------------------- source signals


def _envelope(num_samples: int, sample_rate: int, attack_s: float, release_s: float) -> np.ndarray:
    envelope = np.ones(num_samples)
    attack = min(num_samples // 2, max(1, int(attack_s * sample_rate)))
    release = min(num_samples // 2, max(1, int(release_s * sample_rate)))
    envelope[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False) ** 2
    envelope[num_samples - release :] = np.linspace(1.0, 0.0, release) ** 2
    return envelope


def _bandpass(noise: np.ndarray, low_hz: float, high_hz: float, sample_rate: int) -> np.ndarray:
    high_hz = min(high_hz, 0.45 * sample_rate)
    sos = signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, noise)


def _noise_burst(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    low = rng.uniform(80.0, 2000.0)
    band = _bandpass(rng.standard_normal(num_samples), low, low * rng.uniform(2.0, 8.0), sample_rate)
    # A slow swell (a wave, a passing car, a gust) rather than a flat block.
    time_s = np.arange(num_samples) / sample_rate
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * time_s + rng.uniform(0, 2 * np.pi))
    return band * swell * _envelope(num_samples, sample_rate, rng.uniform(0.05, 0.5), rng.uniform(0.1, 0.8))


def _tone(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    time_s = np.arange(num_samples) / sample_rate
    f0 = rng.uniform(220.0, 1500.0)
    vibrato = 1.0 + 0.01 * np.sin(2 * np.pi * rng.uniform(4.0, 7.0) * time_s)
    phase = 2 * np.pi * f0 * np.cumsum(vibrato) / sample_rate
    harmonics = sum((0.6**k) * np.sin((k + 1) * phase) for k in range(4) if (k + 1) * f0 < 0.45 * sample_rate)
    # Beeps: on/off gating at a random rate (chimes, horns, alarms).
    gate_rate = rng.uniform(1.0, 4.0)
    gate = (np.sin(2 * np.pi * gate_rate * time_s) > -0.3).astype(float)
    gate = signal.sosfilt(signal.butter(2, 60.0, fs=sample_rate, output="sos"), gate)
    return harmonics * gate * _envelope(num_samples, sample_rate, 0.01, 0.05)


def _chirp(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    out = np.zeros(num_samples)
    position = 0
    while position < num_samples:
        length = int(rng.uniform(0.04, 0.2) * sample_rate)
        length = min(length, num_samples - position)
        if length < 16:
            break
        time_s = np.arange(length) / sample_rate
        start_hz, end_hz = rng.uniform(1500.0, 8000.0, size=2)
        sweep = signal.chirp(time_s, start_hz, time_s[-1], end_hz, method="quadratic")
        out[position : position + length] = sweep * np.hanning(length)
        position += length + int(rng.uniform(0.03, 0.25) * sample_rate)
    return out


def _speech(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    time_s = np.arange(num_samples) / sample_rate
    f0 = rng.uniform(95.0, 230.0) * (1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * time_s))
    phase = np.cumsum(f0) / sample_rate
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal period
    # Glottal tilt (leaky integrator) times lip radiation (a differencer): the source has no DC.
    # Without the differencer the positive pulse train leaves a DC offset that the syllable
    # windows turn into a strong sub-audio drift no microphone chain would record.
    source = signal.lfilter([1.0, -1.0], [1.0, -0.95], pulses) + 0.02 * rng.standard_normal(num_samples)
    vowels = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))
    syllable = int(rng.uniform(0.15, 0.3) * sample_rate)
    out = np.zeros(num_samples)
    for start in range(0, num_samples, syllable):
        stop = min(num_samples, start + syllable)
        formants = vowels[int(rng.integers(len(vowels)))]
        chunk = np.zeros(stop - start)
        for centre, bandwidth in zip(formants, (80.0, 100.0, 140.0), strict=True):
            radius = np.exp(-np.pi * bandwidth / sample_rate)
            angle = 2 * np.pi * centre / sample_rate
            chunk += signal.lfilter([1.0 - radius], [1.0, -2 * radius * np.cos(angle), radius**2], source[start:stop])
        out[start:stop] = chunk * np.hanning(stop - start) ** 0.5
    return out


def _click(rng: np.random.Generator, num_samples: int, sample_rate: int) -> np.ndarray:
    # Footsteps, ticks, clatter: short decaying resonances at an irregular pace.
    out = np.zeros(num_samples)
    decay = np.exp(-np.arange(int(0.01 * sample_rate)) / (0.002 * sample_rate))
    position = 0
    while position < num_samples:
        length = min(len(decay), num_samples - position)
        resonance = np.sin(2 * np.pi * rng.uniform(800.0, 4000.0) * np.arange(length) / sample_rate)
        out[position : position + length] += resonance * decay[:length]
        position += int(rng.uniform(0.15, 0.6) * sample_rate)
    return out


_SIGNAL_MAKERS = {"noise_burst": _noise_burst, "tone": _tone, "chirp": _chirp, "speech": _speech, "click": _click}


def source_signal(kind: str, num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One source's sound, ``[num_samples]`` float64 with unit RMS.

    Kinds: ``'noise_burst'`` (band of noise with a slow swell), ``'tone'`` (harmonic beeps
    with vibrato), ``'chirp'`` (bird-like series of short sweeps, 1.5-8 kHz), ``'speech'``
    (a glottal pulse train through syllable-wise vowel formants), ``'click'`` (footstep-like
    decaying resonances, 2 ms decay, every 0.15-0.6 s).
    """
    if kind not in _SIGNAL_MAKERS:
        raise ValueError(f"kind={kind!r}: choose one of {SOURCE_KINDS}")
    sound = _SIGNAL_MAKERS[kind](rng, num_samples, sample_rate)
    rms = float(np.sqrt(np.mean(sound**2)))
    return sound / rms if rms > 0 else sound


# --------------------------------------------------------------------------- rendering


def _room_impulse_responses(room: RoomSpec, positions: Sequence[Sequence[float]], sample_rate: int) -> np.ndarray:
    """RIRs ``[len(positions), 32, length]`` from each position to each em32 capsule."""
    import pyroomacoustics as pra

    names = ("east", "west", "north", "south", "floor", "ceiling")
    materials = {name: pra.Material(float(value)) for name, value in zip(names, room.absorption, strict=True)}
    shoebox = pra.ShoeBox(
        list(room.dimensions_m), fs=sample_rate, materials=materials, max_order=room.max_order, air_absorption=False
    )
    shoebox.add_microphone_array(capsule_positions(room.array_center_m).T)
    for position in positions:
        shoebox.add_source(list(position))
    # pyroomacoustics high-passes every RIR at 10 Hz by default (a zero-phase filter that
    # costs more than building the RIR); the scenes have no content that low, so skip it.
    hpf_enabled = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        shoebox.compute_rir()
    finally:
        pra.constants.set("rir_hpf_enable", hpf_enabled)
    length = max(len(shoebox.rir[mic][source]) for mic in range(NUM_CAPSULES) for source in range(len(positions)))
    rirs = np.zeros((len(positions), NUM_CAPSULES, length))
    for source in range(len(positions)):
        for mic in range(NUM_CAPSULES):
            response = shoebox.rir[mic][source]
            rirs[source, mic, : len(response)] = response
    return rirs


def render_sources(
    room: RoomSpec, sources: Sequence[SourceSpec], num_samples: int, sample_rate: int = SCENE_SAMPLE_RATE
) -> np.ndarray:
    """The 32 capsule signals ``[32, num_samples]`` of point sources in a room.

    A static source is one convolution with its RIRs; a moving one is overlap-added from
    Hann-windowed blocks (hop :data:`MOVING_HOP_SECONDS`, 50 % overlap, windows summing to
    one), each convolved with the RIRs at the block centre's position (linear path from
    ``start_m`` to ``end_m``). RIRs include pyroomacoustics' fixed fractional-delay offset
    (40 samples), identical for every capsule.
    """
    out = np.zeros((NUM_CAPSULES, num_samples))
    for source in sources:
        sound = np.asarray(source.signal, dtype=np.float64)[:num_samples]
        nonzero = np.flatnonzero(sound)
        if nonzero.size == 0:
            continue
        if not source.moving:
            # Convolve only the sounding span: most sources sound for a few seconds of a scene.
            first, last = int(nonzero[0]), int(nonzero[-1]) + 1
            rirs = _room_impulse_responses(room, [source.start_m], sample_rate)[0]
            wet = signal.oaconvolve(sound[None, first:last], rirs, axes=-1)[:, : num_samples - first]
            out[:, first : first + wet.shape[1]] += wet
            continue
        hop = max(1, int(MOVING_HOP_SECONDS * sample_rate))
        window = np.sin(np.pi * np.arange(2 * hop) / (2 * hop)) ** 2  # periodic Hann: shifted copies sum to 1
        centres = np.arange(0, num_samples + hop, hop)
        start, end = np.asarray(source.start_m), np.asarray(source.end_m)
        fraction = np.clip(centres / max(1, num_samples - 1), 0.0, 1.0)[:, None]
        positions = start[None, :] + fraction * (end - start)[None, :]
        active = [k for k, centre in enumerate(centres) if np.any(sound[max(0, centre - hop) : centre + hop])]
        if not active:
            continue
        rirs = _room_impulse_responses(room, positions[active], sample_rate)
        for rir, k in zip(rirs, active, strict=True):
            begin = centres[k] - hop
            block = np.zeros(2 * hop)
            lo, hi = max(0, begin), min(num_samples, begin + 2 * hop)
            block[lo - begin : hi - begin] = sound[lo:hi]
            wet = signal.fftconvolve((block * window)[None, :], rir, axes=-1)
            lo_out, hi_out = max(0, begin), min(num_samples, begin + wet.shape[1])
            out[:, lo_out:hi_out] += wet[:, lo_out - begin : hi_out - begin]
    return out


def diffuse_background(
    spec: BackgroundSpec, num_samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """A spatially diffuse noise field at the 32 capsules, ``[32, num_samples]``.

    Per STFT bin (1024-point Hann, hop 512): ``X(f, t) = g(f) m(t) A(f) Z(f, t)`` with ``Z``
    32 independent complex Gaussian noises, ``A(f) A(f)^H = Γ(f)`` the diffuse-field coherence
    (``Γ_ij = sinc(2 f d_ij / c)`` in NumPy's normalised sinc, i.e. ``sin(k d)/(k d)``),
    ``g(f)`` the class spectrum and ``m(t)`` the slow modulation; then inverse STFT and scaling
    to RMS ``spec.level`` per channel.
    """
    n_fft, hop = 1024, 512
    frequencies = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    positions = capsule_positions()
    distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    coherence = np.sinc(2.0 * frequencies[:, None, None] * distances[None] / SPEED_OF_SOUND_M_S)
    eigenvalues, eigenvectors = np.linalg.eigh(coherence)
    mixing = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None, :]).astype(np.complex64)
    frames = num_samples // hop + 3
    noise = (
        rng.standard_normal((len(frequencies), NUM_CAPSULES, frames))
        + 1j * rng.standard_normal((len(frequencies), NUM_CAPSULES, frames))
    ).astype(np.complex64)
    field_stft = np.matmul(mixing, noise)  # [F, 32, frames]
    octaves = np.log2(np.maximum(frequencies, 20.0) / 1000.0)
    gain_db = spec.slope_db_per_octave * octaves
    in_band = (frequencies >= spec.band_hz[0]) & (frequencies <= spec.band_hz[1])
    gain_db = gain_db + spec.band_gain_db * in_band
    gain_db = gain_db - 12.0 * np.log2(np.maximum(frequencies / spec.lowpass_hz, 1.0))
    gain = 10.0 ** (gain_db / 20.0)
    gain[frequencies < 20.0] = 0.0
    frame_times = np.arange(frames) * hop / sample_rate
    modulation = 1.0 + spec.modulation_depth * np.sin(
        2 * np.pi * spec.modulation_hz * frame_times + rng.uniform(0, 2 * np.pi)
    )
    field_stft *= (gain[:, None, None] * modulation[None, None, :]).astype(np.complex64)
    _, audio = signal.istft(
        np.transpose(field_stft, (1, 0, 2)), fs=sample_rate, window="hann", nperseg=n_fft, noverlap=n_fft - hop
    )
    audio = np.asarray(audio, dtype=np.float64)[:, hop : hop + num_samples]
    if audio.shape[1] < num_samples:
        audio = np.pad(audio, ((0, 0), (0, num_samples - audio.shape[1])))
    rms = float(np.sqrt(np.mean(audio**2)))
    return audio * (spec.level / rms) if rms > 0 else audio


def render_scene(spec: SceneSpec, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render a scene: sources in the room plus the diffuse background, ``[32, num_samples]``.

    ``rng`` draws the background noise (required when ``spec.background`` is set). The
    result is scaled to ``spec.peak`` (if set), float64.
    """
    audio = render_sources(spec.room, spec.sources, spec.num_samples, spec.sample_rate)
    if spec.background is not None:
        if rng is None:
            raise ValueError("render_scene: a background needs an rng")
        audio += diffuse_background(spec.background, spec.num_samples, spec.sample_rate, rng)
    if spec.peak is not None:
        peak = float(np.max(np.abs(audio)))
        if peak > 0:
            audio *= spec.peak / peak
    return audio


# --------------------------------------------------------------------------- random scenes


_OUTDOOR = dict(absorption=(0.97, 0.97, 0.97, 0.97, 0.15, 0.99), max_order=2)
_STREET = dict(absorption=(0.95, 0.95, 0.15, 0.15, 0.1, 0.99), max_order=3)
_HALL = dict(absorption=(0.3, 0.3, 0.3, 0.3, 0.2, 0.4), max_order=4)

_RECIPES: dict[str, dict] = {
    # room, (min, max) sources, source-kind weights (noise_burst, tone, chirp, speech, click),
    # background, probability that a source moves.
    "Beach": dict(
        room=(_OUTDOOR, (50.0, 50.0, 25.0)),
        count=(3, 4),
        kinds=(4, 0, 2, 1, 0),
        moving=0.2,
        background=BackgroundSpec(-4.0, (200.0, 2000.0), 6.0, 6000.0, 0.12, 0.7, 0.03),
    ),
    "BusyStreet": dict(
        room=(_STREET, (60.0, 16.0, 20.0)),
        count=(4, 6),
        kinds=(4, 2, 0, 2, 1),
        moving=0.6,
        background=BackgroundSpec(-6.0, (50.0, 400.0), 8.0, 4000.0, 0.3, 0.3, 0.05),
    ),
    "Park": dict(
        room=(_OUTDOOR, (50.0, 50.0, 25.0)),
        count=(3, 5),
        kinds=(1, 0, 4, 2, 0),
        moving=0.3,
        background=BackgroundSpec(-3.0, (300.0, 3000.0), 0.0, 8000.0, 0.05, 0.3, 0.008),
    ),
    "PedestrianZone": dict(
        room=(_STREET, (50.0, 14.0, 18.0)),
        count=(4, 6),
        kinds=(1, 1, 1, 5, 1),
        moving=0.5,
        background=BackgroundSpec(-3.0, (300.0, 3000.0), 6.0, 8000.0, 0.2, 0.3, 0.02),
    ),
    "QuietStreet": dict(
        room=(_STREET, (50.0, 14.0, 15.0)),
        count=(3, 4),
        kinds=(3, 0, 2, 1, 1),
        moving=0.5,
        background=BackgroundSpec(-6.0, (50.0, 300.0), 4.0, 3000.0, 0.05, 0.2, 0.005),
    ),
    "ShoppingCentre": dict(
        room=(_HALL, (30.0, 20.0, 8.0)),
        count=(4, 6),
        kinds=(0, 2, 0, 6, 1),
        moving=0.4,
        background=BackgroundSpec(-3.0, (300.0, 3000.0), 10.0, 6000.0, 0.25, 0.3, 0.03),
    ),
    "TrainStation": dict(
        room=(_HALL, (40.0, 25.0, 12.0)),
        count=(4, 6),
        kinds=(3, 3, 0, 3, 1),
        moving=0.4,
        background=BackgroundSpec(-6.0, (40.0, 200.0), 10.0, 5000.0, 0.1, 0.4, 0.04),
    ),
    "Woodland": dict(
        room=(_OUTDOOR, (50.0, 50.0, 25.0)),
        count=(3, 5),
        kinds=(2, 0, 5, 0, 0),
        moving=0.1,
        background=BackgroundSpec(-5.0, (100.0, 1000.0), 4.0, 5000.0, 0.15, 0.8, 0.01),
    ),
}


def _random_position(rng: np.random.Generator, room: RoomSpec, margin: float = 0.5) -> tuple[float, float, float]:
    """A point 1.5-8 m from the array, elevation -15..40 degrees, kept ``margin`` m inside the room."""
    centre = np.asarray(room.array_center_m)
    upper = np.asarray(room.dimensions_m) - margin
    for _ in range(100):
        distance = rng.uniform(1.5, 8.0)
        direction = unit_vector(90.0 - rng.uniform(-15.0, 40.0), rng.uniform(0.0, 360.0))
        point = centre + distance * direction
        if np.all(point > margin) and np.all(point < upper):
            return tuple(float(value) for value in point)
    return tuple(float(value) for value in np.clip(centre + np.array([1.5, 0.0, 0.0]), margin, upper))


def random_scene(
    scene_class: str, seconds: float, rng: np.random.Generator, sample_rate: int = SCENE_SAMPLE_RATE
) -> SceneSpec:
    """Draw a scene of ``scene_class`` (one of :data:`SCENE_CLASSES`) from ``rng``."""
    if scene_class not in _RECIPES:
        raise ValueError(f"scene_class={scene_class!r}: choose one of {SCENE_CLASSES}")
    recipe = _RECIPES[scene_class]
    surfaces, dimensions = recipe["room"]
    dimensions = tuple(float(value) for value in dimensions)
    centre = (dimensions[0] * rng.uniform(0.4, 0.6), dimensions[1] * rng.uniform(0.4, 0.6), 1.5)
    room = RoomSpec(dimensions, surfaces["absorption"], surfaces["max_order"], centre)
    num_samples = int(round(seconds * sample_rate))
    weights = np.asarray(recipe["kinds"], dtype=float)
    sources = []
    for _ in range(int(rng.integers(recipe["count"][0], recipe["count"][1] + 1))):
        kind = SOURCE_KINDS[int(rng.choice(len(SOURCE_KINDS), p=weights / weights.sum()))]
        duration = min(seconds, rng.uniform(0.3, 4.0))
        onset = rng.uniform(0.0, max(0.0, seconds - duration))
        length = max(1, int(duration * sample_rate))
        start_sample = int(onset * sample_rate)
        full = np.zeros(num_samples)
        sound = source_signal(kind, length, sample_rate, rng)
        gain = 10.0 ** (rng.uniform(-12.0, 0.0) / 20.0)
        full[start_sample : start_sample + length] = (gain * sound)[: num_samples - start_sample]
        start = _random_position(rng, room)
        end = _random_position(rng, room) if rng.random() < recipe["moving"] else start
        sources.append(SourceSpec(kind, full, start, end, onset, onset + length / sample_rate))
    return SceneSpec(scene_class, num_samples, room, tuple(sources), recipe["background"], sample_rate)


def synthesize_scene(
    index: int, seconds: float, seed: int, sample_rate: int = SCENE_SAMPLE_RATE
) -> tuple[np.ndarray, SceneSpec]:
    """Scene ``index`` of the corpus for ``seed``: ``([32, T] float64 audio, its spec)``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    spec = random_scene(SCENE_CLASSES[index % len(SCENE_CLASSES)], seconds, rng, sample_rate)
    return render_scene(spec, rng), spec


# --------------------------------------------------------------------------- corpus


def _direction_of(point: Sequence[float], centre: Sequence[float]) -> tuple[float, float, float]:
    offset = np.asarray(point) - np.asarray(centre)
    distance = float(np.linalg.norm(offset))
    colatitude = float(np.degrees(np.arccos(np.clip(offset[2] / distance, -1.0, 1.0))))
    azimuth = float(np.degrees(np.arctan2(offset[1], offset[0])) % 360.0)
    return azimuth, colatitude, distance


def _clear_previous(out_dir: Path) -> None:
    """Remove an incomplete corpus; refuse to touch a directory that holds anything else."""
    foreign = [
        path.name
        for path in out_dir.iterdir()
        if not (path.name.startswith(".") or path.name in _CORPUS_FILES or _SCENE_FILE.match(path.name))
    ]
    if foreign:
        raise FileExistsError(
            f"{out_dir} holds files that are not part of an eigenscape-like corpus ({', '.join(sorted(foreign)[:5])}); "
            "give an empty or new directory"
        )
    for path in out_dir.iterdir():
        if path.is_file() and (path.name in _CORPUS_FILES or _SCENE_FILE.match(path.name)):
            path.unlink()


def synthesize_eigenscape_corpus(
    out_dir: str | os.PathLike,
    scenes: int = DEFAULT_SCENES,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    *,
    progress: bool = False,
) -> Path:
    """Write the eigenscape-like corpus to ``out_dir`` (reused if already complete).

    Layout::

        OUT/{Class}-{NN}.wav   32 ch, 48 kHz, PCM-24; NN counts scenes of a class from 01
        OUT/scenes.tsv         filename  scene_class  recording  seconds
        OUT/sources.tsv        filename  source  kind  onset  offset  azimuth_deg  colatitude_deg
                               distance_m  end_azimuth_deg  end_colatitude_deg  end_distance_m
                               (angles of the source seen from the array centre; em32 axes)
        OUT/corpus.json        parameters, classes, generator version
        OUT/.eigenscape_like_complete.json   written last: the corpus is complete

    Args:
        out_dir: target directory (created; must be empty or hold an earlier corpus).
        scenes: number of scenes (classes cycle through :data:`SCENE_CLASSES`).
        seconds: length of each scene in seconds.
        seed: base seed; scene ``i`` uses ``SeedSequence([seed, i])``.
        progress: show a progress bar.

    Returns:
        ``out_dir`` as a :class:`Path`.
    """
    if scenes < 1:
        raise ValueError(f"scenes={scenes}: must be >= 1")
    if seconds <= 0:
        raise ValueError(f"seconds={seconds}: must be > 0")
    out_dir = Path(out_dir).expanduser()
    parameters = {
        "generator_version": GENERATOR_VERSION,
        "scenes": int(scenes),
        "seconds": float(seconds),
        "seed": int(seed),
        "sample_rate": SCENE_SAMPLE_RATE,
        "channels": NUM_CAPSULES,
        "subtype": "PCM_24",
    }
    marker = out_dir / COMPLETE_MARKER
    if marker.exists():
        try:
            if json.loads(marker.read_text()) == parameters:
                return out_dir
        except (OSError, json.JSONDecodeError) as error:
            LOGGER.warning("%s unreadable (%s); generating the corpus again", marker, error)
        marker.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous(out_dir)
    started = time.perf_counter()
    scene_rows, source_rows = [], []
    per_class: dict[str, int] = {}
    indices = range(scenes)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="eigenscape-like scenes", unit="scene")
    for index in indices:
        audio, spec = synthesize_scene(index, seconds, seed)
        per_class[spec.scene_class] = per_class.get(spec.scene_class, 0) + 1
        name = f"{spec.scene_class}-{per_class[spec.scene_class]:02d}.wav"
        write_audio(out_dir / name, audio, SCENE_SAMPLE_RATE, subtype="PCM_24")
        scene_rows.append((name, spec.scene_class, Path(name).stem, f"{spec.num_samples / spec.sample_rate:.3f}"))
        for number, source in enumerate(spec.sources):
            start = _direction_of(source.start_m, spec.room.array_center_m)
            end = _direction_of(source.end_m, spec.room.array_center_m)
            source_rows.append(
                (
                    name,
                    number,
                    source.kind,
                    f"{source.onset_s:.3f}",
                    f"{source.offset_s:.3f}",
                    *(f"{value:.2f}" for value in start + end),
                )
            )
    with (out_dir / "scenes.tsv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(("filename", "scene_class", "recording", "seconds"))
        writer.writerows(scene_rows)
    with (out_dir / "sources.tsv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(
            (
                "filename",
                "source",
                "kind",
                "onset",
                "offset",
                "azimuth_deg",
                "colatitude_deg",
                "distance_m",
                "end_azimuth_deg",
                "end_colatitude_deg",
                "end_distance_m",
            )
        )
        writer.writerows(source_rows)
    description = dict(
        parameters, classes=list(SCENE_CLASSES), radius_m=EM32_RADIUS_M, files=[row[0] for row in scene_rows]
    )
    (out_dir / "corpus.json").write_text(json.dumps(description, indent=1) + "\n")
    marker.write_text(json.dumps(parameters))
    LOGGER.info(
        "eigenscape-like corpus: %d scenes x %.1f s written to %s in %.1f s",
        scenes,
        seconds,
        out_dir,
        time.perf_counter() - started,
    )
    return out_dir


def default_eigenscape_corpus(cache_dir: str | os.PathLike | None = None) -> Path:
    """The default corpus (8 scenes x 10 s, seed 0) in the data cache, generated on first use.

    Lives in ``{cache_dir or audio_cache_dir()}/eigenscape-like-v{GENERATOR_VERSION}``
    (``audio_cache_dir()`` = ``$AUDIOENC_CACHE`` or ``~/.cache/audioenc``). A lock file makes
    concurrent callers (several ranks) wait for one generation; the completion marker makes a
    half-written corpus (a killed run) be generated again.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else audio_cache_dir()
    out_dir = root / f"eigenscape-like-v{GENERATOR_VERSION}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{out_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (out_dir / COMPLETE_MARKER).exists():
                LOGGER.info("generating the default eigenscape-like corpus in %s (once; ~30 s)", out_dir)
            return synthesize_eigenscape_corpus(out_dir, DEFAULT_SCENES, DEFAULT_SECONDS, seed=0)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
