"""Log-mel (log-band) features with an exact frame-to-time mapping.

The timing half works on log-mel frames: 64 mel bands, 1024-point FFT (42.7 ms Hann window)
and a 240-sample hop at 24 kHz, i.e. **100 frames per second**. The STFT is padded so that
frame ``i`` is *centred* on the middle of the interval ``[i * hop, (i + 1) * hop)``, hence

    frame i  <->  [i / 100 s, (i + 1) / 100 s)        and        F = ceil(T / hop) frames.

That makes every later time statement exact: a model that pools time by a factor ``p`` has
output frame ``j <-> [j * p / 100, (j + 1) * p / 100)`` seconds (see :func:`frame_times`).

Math, for audio ``x`` ``[batch, time]``::

    X[b, f, i] = STFT(x)[b, f, i]                      (Hann, n_fft 1024, hop 240)
    M[b, m, i] = sum_f W[m, f] * |X[b, f, i]|^2         (W: librosa/Slaney mel filters)
    L[b, m, i] = log(M[b, m, i] + 1e-10)                 (natural log of power)

Audio at another sample rate is resampled to 24 kHz with soxr (band-limited); several
channels are averaged to mono (the channel policy of the timing half: a downmix, stated in
reports); :func:`audioenc.audio.io.read_clip` does both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audioenc import SAMPLE_RATE
from audioenc.audio.io import read_clip
from audioenc.validation import bounded

LOG_FLOOR = 1e-10
"""Added to mel power before the log, so silence maps to log(1e-10) ~ -23 instead of -inf."""


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
    samples (window centred on that interval, zero padding at the clip edges). The math is in
    the module docstring. Not trainable; runs on the input's device.
    """

    def __init__(self, config: LogMelConfig = LogMelConfig()) -> None:
        super().__init__()
        import librosa  # the mel filterbank only (DESIGN: no torchaudio)

        if (config.n_fft - config.hop_length) % 2:
            raise ValueError(
                f"n_fft - hop_length must be even for centred frames, got {config.n_fft} - {config.hop_length}"
            )
        self.config = config
        mel = librosa.filters.mel(
            sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.f_min, fmax=config.f_max
        )
        self.register_buffer("mel_filters", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.config.frame_rate

    def num_frames(self, samples: int) -> int:
        """Frames produced for ``samples`` samples: ``ceil(samples / hop_length)``."""
        return -(-samples // self.config.hop_length)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 3:
            if audio.shape[1] != 1:
                raise ValueError(f"LogMel expects mono audio [batch, 1, time], got shape {tuple(audio.shape)}")
            audio = audio[:, 0]
        if audio.dim() != 2:
            raise ValueError(f"LogMel expects [batch, time] or [batch, 1, time], got shape {tuple(audio.shape)}")
        hop, n_fft = self.config.hop_length, self.config.n_fft
        frames = self.num_frames(audio.shape[-1])
        side = (n_fft - hop) // 2
        # Frame i reads padded samples [i*hop, i*hop + n_fft), i.e. original samples from
        # i*hop - side: its centre is i*hop + hop/2. Right pad so the last window fits exactly.
        right = (frames - 1) * hop + n_fft - side - audio.shape[-1]
        padded = torch.nn.functional.pad(audio, (side, right))
        spectrum = torch.stft(
            padded, n_fft=n_fft, hop_length=hop, window=self.window, center=False, return_complex=True
        )
        power = spectrum.real**2 + spectrum.imag**2
        return torch.log(torch.matmul(self.mel_filters, power) + LOG_FLOOR)


def frame_times(num_frames: int, frame_rate: float) -> np.ndarray:
    """Boundaries of ``num_frames`` frames at ``frame_rate`` frames/s: shape ``[num_frames + 1]``,
    seconds; frame ``j`` spans ``[t[j], t[j + 1])``."""
    return np.arange(num_frames + 1, dtype=np.float64) / frame_rate


def compute_log_mel(audio: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Log-mel of one clip: ``[time]`` float -> ``[n_mels, frames]`` float32 (see :class:`LogMel`)."""
    with torch.no_grad():
        return LogMel(config)(torch.as_tensor(audio, dtype=torch.float32)[None])[0].numpy()


def split_log_mels(audio_dir: str | Path, files: list[str], config: LogMelConfig = LogMelConfig()) -> dict[str, np.ndarray]:
    """Log-mel ``[n_mels, frames]`` for each file of a split (mono downmix, resampled to
    ``config.sample_rate``), keyed by the filename as given."""
    extractor = LogMel(config)
    features = {}
    with torch.no_grad():
        for filename in files:
            audio = read_clip(Path(audio_dir) / filename, config.sample_rate)
            features[filename] = extractor(torch.from_numpy(audio)[None])[0].numpy()
    return features
