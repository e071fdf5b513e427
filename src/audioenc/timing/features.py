"""Log-mel (log-band) features with an exact frame-to-time mapping.

The timing half works on log-mel frames: 64 mel bands, 1024-point FFT (42.7 ms Hann window)
and a 240-sample hop at 24 kHz, i.e. **100 frames per second**. The STFT is padded so that
frame ``i`` is *centred* on the middle of the interval ``[i * hop, (i + 1) * hop)``, hence

    frame i  <->  [i / 100 s, (i + 1) / 100 s)        and        F = ceil(T / hop) frames.

That makes every later time statement exact: a model that pools time by a factor ``p`` has
output frame ``j <-> [j * p / 100, (j + 1) * p / 100)`` seconds (see
:func:`audioenc.core.frames.frame_times`).

Math, for audio ``x`` ``[batch, time]``::

    X[b, f, i] = STFT(x)[b, f, i]                      (Hann, n_fft 1024, hop 240)
    M[b, m, i] = sum_f W[m, f] * |X[b, f, i]|^2         (W: librosa/Slaney mel filters)
    L[b, m, i] = log(M[b, m, i] + 1e-10)                 (natural log of power)

Audio at another sample rate is resampled to 24 kHz with soxr (band-limited); several
channels are averaged to mono (the channel policy of the timing half: a downmix, stated in
reports); :func:`audioenc.audio.io.read_clip` does both.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from audioenc import SAMPLE_RATE
from audioenc.audio.io import read_clip
from audioenc.core.mel import MelSpectrogram
from audioenc.validation import bounded

LOG_FLOOR = 1e-10
"""Added to mel power before the log, so silence maps to log(1e-10) ~ -23 instead of -inf."""

LOG_MEL_VERSION = 1
"""Version of the features' code: bumped when :class:`LogMel` or the clip reading before it (downmix,
resampling) gives other numbers for the same settings, so cached features of the old code are not reused."""


@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel settings. Defaults give 64 bands at 100 frames/s from 24 kHz audio.

    Attributes:
        sample_rate: audio sample rate in Hz.
        n_fft: FFT size (and Hann window length) in samples.
        hop_length: samples between frames.
        n_mels: number of mel bands.
        f_min: lowest mel band edge, Hz.
        f_max: highest mel band edge, Hz (None: Nyquist).
    """

    sample_rate: int = bounded(SAMPLE_RATE, minimum=1, integer=True)
    n_fft: int = bounded(1024, minimum=2, integer=True)
    hop_length: int = bounded(240, minimum=1, integer=True)
    n_mels: int = bounded(64, minimum=1, integer=True)
    f_min: float = bounded(20.0, minimum=0)
    f_max: float | None = bounded(None, above=0)

    @property
    def frame_rate(self) -> float:
        """Feature frames per second (100 with the defaults)."""
        return self.sample_rate / self.hop_length


class LogMel(nn.Module):
    """Audio ``[batch, time]`` or ``[batch, 1, time]`` -> log-mel ``[batch, n_mels, frames]``.

    ``frames = ceil(time / hop_length)``; frame ``i`` covers ``[i, i + 1) * hop_length``
    samples (window centred on that interval, zero padding at the clip edges: the ``"interval"``
    framing of :class:`~audioenc.core.mel.MelSpectrogram`). The math is in the module docstring.
    Not trainable; runs on the input's device.
    """

    def __init__(self, config: LogMelConfig = LogMelConfig()) -> None:
        super().__init__()
        self.config = config
        self.mel = MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            f_min=config.f_min,
            f_max=config.f_max,
            scale="slaney",
            framing="interval",
            log="ln",
            floor_level=LOG_FLOOR,
        )

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.config.frame_rate

    def num_frames(self, samples: int) -> int:
        """Frames produced for ``samples`` samples: ``ceil(samples / hop_length)``."""
        return self.mel.num_frames(samples)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 3:
            if audio.shape[1] != 1:
                raise ValueError(f"LogMel expects mono audio [batch, 1, time], got shape {tuple(audio.shape)}")
            audio = audio[:, 0]
        if audio.dim() != 2:
            raise ValueError(f"LogMel expects [batch, time] or [batch, 1, time], got shape {tuple(audio.shape)}")
        return self.mel(audio)


def log_mel_fingerprint(config: LogMelConfig) -> dict[str, Any]:
    """Everything a clip's log-mel depends on besides the clip, as JSON data (the key of the feature
    cache, :class:`audioenc.core.cache.ArrayCache`): every :class:`LogMelConfig` field,
    :data:`LOG_MEL_VERSION`, and the versions of the libraries that compute the numbers (libsndfile
    decodes, soxr resamples, librosa builds the mel filters, torch takes the STFT)."""
    return {
        "config": asdict(config),
        "version": LOG_MEL_VERSION,
        "libraries": {
            "libsndfile": sf.__libsndfile_version__,
            "soxr": importlib.metadata.version("soxr"),
            "librosa": importlib.metadata.version("librosa"),
            "torch": torch.__version__,
        },
    }


def compute_log_mel(audio: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Log-mel of one clip: ``[time]`` float -> ``[n_mels, frames]`` float32 (see :class:`LogMel`)."""
    with torch.no_grad():
        return LogMel(config)(torch.as_tensor(audio, dtype=torch.float32)[None])[0].numpy()


def split_log_mels(
    audio_dir: str | Path, files: list[str], config: LogMelConfig = LogMelConfig()
) -> dict[str, np.ndarray]:
    """Log-mel ``[n_mels, frames]`` for each file of a split (mono downmix, resampled to
    ``config.sample_rate``), keyed by the filename as given."""
    extractor = LogMel(config)
    features = {}
    with torch.no_grad():
        for filename in files:
            audio = read_clip(Path(audio_dir) / filename, config.sample_rate)
            features[filename] = extractor(torch.from_numpy(audio)[None])[0].numpy()
    return features
