"""Perceptual quality measures from their maintained implementations: ViSQOL, PESQ, STOI/ESTOI.

Each measure has a fixed rate at which it is defined; the signals are resampled to it with soxr
('HQ', as everywhere in audioenc) and compared per channel (the mean is reported):

=================  ===========  =====================================================  ==============
measure            rate         implementation (package)                               range
=================  ===========  =====================================================  ==============
``visqol_audio``   48 kHz       ViSQOL v3 audio mode, SVR model (``visqol-python``)    MOS-LQO 1–4.75
``visqol_speech``  16 kHz       ViSQOL v3 speech mode, lattice model                   MOS-LQO 1–5
``pesq_wb``        16 kHz       ITU-T P.862.2 wide-band (``pesq``)                     1.04–4.64
``stoi``/``estoi`` 10 kHz (*)   (extended) short-time objective intelligibility        0–1
                                (``pystoi``; (*) it resamples itself)
=================  ===========  =====================================================  ==============

``visqol-python`` reproduces the reference C++ implementation's conformance values (v333): nine of
the ten audio-mode pairs to 1e-6, contrabassoon 2.346751 against 2.346868 (1.2e-4), and the speech
pair ``CA01_01`` 3.3153 against 3.3129 (lattice model); :func:`score` gives the same audio-mode
values on the mono downmix. The check is ``benchmarks/check_visqol_conformance.py``. They are
optional: ``pip install -e '.[eval]'``.

A measure that does not apply is not computed: :func:`skip_reason` says why (PESQ and STOI are
defined for speech; PESQ needs at least 0.25 s and some signal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soxr

from audioenc.audio.io import SOXR_QUALITY
from audioenc.errors import UserError

EXTRA_HINT = "install the evaluation extra: pip install -e '.[eval]'"


@dataclass(frozen=True)
class Measure:
    """One perceptual measure: its name, rate, whether it is meant for speech only, and its scorer."""

    name: str
    sample_rate: int
    speech_only: bool
    score: Callable[[np.ndarray, np.ndarray], float]
    """``score(reference, estimate)`` for one channel ``[T]`` at ``sample_rate``."""
    package: str


@lru_cache(maxsize=2)
def _visqol(mode: str):
    try:
        from visqol import VisqolApi
    except ImportError as error:
        raise UserError(f"ViSQOL needs the package visqol-python; {EXTRA_HINT}") from error
    api = VisqolApi()
    api.create(mode=mode)
    return api


def _visqol_score(mode: str, rate: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def score(reference: np.ndarray, estimate: np.ndarray) -> float:
        return float(_visqol(mode).measure_from_arrays(reference, estimate, sample_rate=rate).moslqo)

    return score


def _pesq_wb(reference: np.ndarray, estimate: np.ndarray) -> float:
    try:
        from pesq import pesq
    except ImportError as error:
        raise UserError(f"PESQ needs the package pesq; {EXTRA_HINT}") from error
    return float(pesq(16000, reference, estimate, "wb"))


def _stoi(extended: bool) -> Callable[[np.ndarray, np.ndarray], float]:
    def score(reference: np.ndarray, estimate: np.ndarray) -> float:
        try:
            from pystoi import stoi
        except ImportError as error:
            raise UserError(f"STOI needs the package pystoi; {EXTRA_HINT}") from error
        return float(stoi(reference, estimate, 16000, extended=extended))

    return score


MEASURES: dict[str, Measure] = {
    "visqol_audio": Measure("visqol_audio", 48000, False, _visqol_score("audio", 48000), "visqol"),
    "visqol_speech": Measure("visqol_speech", 16000, True, _visqol_score("speech", 16000), "visqol"),
    "pesq_wb": Measure("pesq_wb", 16000, True, _pesq_wb, "pesq"),
    "stoi": Measure("stoi", 16000, True, _stoi(False), "pystoi"),
    "estoi": Measure("estoi", 16000, True, _stoi(True), "pystoi"),
}
"""Every perceptual measure by name (STOI is handed 16 kHz audio and resamples it to 10 kHz itself)."""

MIN_SECONDS = {"pesq_wb": 0.25, "stoi": 0.4, "estoi": 0.4, "visqol_audio": 1.0, "visqol_speech": 0.75}
"""Shortest input each implementation accepts (PESQ needs 1/4 s; STOI's 384 ms analysis window;
ViSQOL audio mode needs 45 spectrum frames, measured: 0.75 s fails, 1.0 s works; speech mode
fails at 0.5 s and works at 0.75 s)."""


def available(name: str) -> bool:
    """Whether the package behind ``name`` is installed."""
    import importlib.util

    return importlib.util.find_spec(MEASURES[name].package) is not None


def skip_reason(name: str, *, content: str, channels: int, seconds: float) -> str | None:
    """Why ``name`` is not computed for this material, or None when it is.

    Args:
        content: ``speech``, ``music`` or ``general`` (what the files hold; the user says it).
        channels: the files' channel count (measured per channel either way; only a note).
        seconds: the file's duration.
    """
    measure = MEASURES[name]
    if measure.speech_only and content != "speech":
        return f"{name} is defined for speech; the material is {content} (--content speech to compute it)"
    if seconds < MIN_SECONDS[name]:
        return f"{name} needs at least {MIN_SECONDS[name]} s; the file has {seconds:.3f} s"
    if not available(name):
        return f"{name}: package {measure.package} is not installed ({EXTRA_HINT})"
    return None


def score(name: str, reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """``name`` between ``reference`` and ``estimate`` ``[C, T]`` at ``sample_rate``: mean over channels.

    A channel that is digital silence in the reference has no defined quality; it is left out
    (NaN when every channel is silent).
    """
    measure = MEASURES[name]
    reference = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    estimate = np.atleast_2d(np.asarray(estimate, dtype=np.float64))
    values = []
    for ref_channel, est_channel in zip(reference, estimate, strict=True):
        if not np.any(ref_channel):
            continue
        ref_channel = _resample(ref_channel, sample_rate, measure.sample_rate)
        est_channel = _resample(est_channel, sample_rate, measure.sample_rate)
        values.append(measure.score(ref_channel, est_channel))
    return float(np.mean(values)) if values else float("nan")


def _resample(x: np.ndarray, source: int, target: int) -> np.ndarray:
    if source == target:
        return x
    return soxr.resample(x, source, target, quality=SOXR_QUALITY)
