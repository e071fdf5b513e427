"""The mel front-end: every mel spectrogram in audioenc is a :class:`MelSpectrogram`.

``M[..., m, n] = Σ_k W[m, k] · |X[..., k, n]|^power`` with ``X`` the STFT of a Hann window and
``W`` a librosa mel filterbank; with ``log``, ``log(floor_level + M)``. Its users differ in three
choices, and each keeps its own because its numbers are defined by them:

* **scale** of ``W``: ``"htk"`` — HTK-scale triangles of peak 1 (librosa ``htk=True, norm=None``,
  torchaudio's ``MelSpectrogram`` defaults as audiocraft's losses use them), built in float64;
  ``"slaney"`` — librosa's default Slaney-scale, area-normalised filters, built in float32 as
  librosa builds them (DAC's distances and the timing features).
* **framing**, where frame ``n`` sits in the signal of ``T`` samples:

  - ``"reflect"``: reflect-pad ``p = (n_fft - hop) // 2`` samples on each side, zero-pad the end
    so that the last frame is full: ``ceil((T + 2p - n_fft) / hop) + 1`` frames (audiocraft's
    ``MelSpectrogramWrapper``; needs ``T > p``);
  - ``"interval"``: zero-pad the same ``p`` so that frame ``n`` is centred on the middle of
    ``[n · hop, (n + 1) · hop)``: ``ceil(T / hop)`` frames (the timing half's exact frame grid;
    needs ``n_fft - hop`` even);
  - ``"centre"``: ``torch.stft``'s ``center=True`` with reflect padding, frame ``n`` centred on
    sample ``n · hop``: ``T // hop + 1`` frames (audiotools' STFT as DAC calls it; needs
    ``T > n_fft // 2``).
* **power**: 2 (power spectrum) or 1 (magnitude).

The window is computed in ``window_dtype`` and the filterbank held in float32; both are cast to
the signal's dtype at use, so a float64 signal meets exactly the window and filters it met before
(float32 Hann values are not the float64 ones rounded).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Literal

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Scale = Literal["htk", "slaney"]
Framing = Literal["reflect", "interval", "centre"]
LogKind = Literal["log10", "ln"]
_LOGS = {"log10": torch.log10, "ln": torch.log}


@functools.lru_cache(maxsize=64)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, scale: Scale = "htk"
) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` mel filters, read-only: float64 for ``"htk"``, float32 for ``"slaney"``.

    Small FFTs give bands that fall between two FFT bins and are all zero (e.g. n_fft 32 at
    24 kHz has 17 bins for 64 bands). librosa warns about them; they are expected here (EnCodec's
    and DAC's smallest scales have them too) and counted in :attr:`MelSpectrogram.empty_bands`.
    """
    if scale not in ("htk", "slaney"):
        raise ValueError(f"mel scale {scale!r}: choose htk or slaney.")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ee]mpty filters.*", category=UserWarning)
        if scale == "htk":
            bank = librosa.filters.mel(
                sr=sample_rate,
                n_fft=n_fft,
                n_mels=n_mels,
                fmin=f_min,
                fmax=f_max,
                htk=True,
                norm=None,
                dtype=np.float64,
            )
        else:
            bank = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    bank.setflags(write=False)
    return bank


def uncentred_stft(x: torch.Tensor, n_fft: int, hop_length: int, win_length: int, window: torch.Tensor) -> torch.Tensor:
    """Complex one-sided STFT of ``[N, T]`` signals as given (the caller pads, or not):
    ``[N, n_fft // 2 + 1, (T - n_fft) // hop_length + 1]``. ``window`` carries any normalisation."""
    return torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )


class MelSpectrogram(nn.Module):
    """Mel spectrogram of every signal: ``[..., T]`` -> ``[..., n_mels, frames]`` (see the module docstring).

    Args:
        sample_rate: Hz.
        n_fft, hop_length: FFT size and hop in samples.
        win_length: Hann window in samples, centred in the FFT (``None``: ``n_fft``).
        n_mels: mel bands.
        f_min, f_max: band edges in Hz (``f_max=None``: ``sample_rate / 2``).
        scale, framing, power: see the module docstring.
        log: ``"log10"`` or ``"ln"`` of ``floor_level + M`` (``None``: the linear ``M``).
        floor_level: added before the log, so that silence has a finite log.
        normalized: divide the window by ``sqrt(Σ w²)`` (torchaudio's ``normalized=True``).
        window_dtype: the dtype the window is computed in.
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int | None = None,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        scale: Scale = "htk",
        framing: Framing = "reflect",
        power: int = 2,
        log: LogKind | None = None,
        floor_level: float = 1e-5,
        normalized: bool = False,
        window_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        f_max = sample_rate / 2 if f_max is None else f_max
        _check_settings(sample_rate, n_fft, hop_length, win_length, f_min, f_max, framing, power, log)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.n_mels = n_mels
        self.framing = framing
        self.power = power
        self.log = log
        self.floor_level = floor_level
        self.padding = (n_fft - hop_length) // 2
        window = torch.hann_window(win_length, periodic=True, dtype=window_dtype)
        if normalized:
            window = window / window.pow(2).sum().sqrt()
        bank = torch.from_numpy(np.array(mel_filterbank(sample_rate, n_fft, n_mels, float(f_min), float(f_max), scale)))
        nonempty = bank.sum(dim=1) != 0
        self.empty_bands = int((~nonempty).sum())
        # Buffers, not parameters: they follow .to(device) and are never trained.
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("filterbank", bank.float(), persistent=False)
        # The bands that can be non-zero (a loss may skip the others: they are 0 for every signal).
        self.register_buffer("filterbank_nonempty", bank[nonempty].float(), persistent=False)

    def num_frames(self, length: int) -> int:
        """Frames for ``length`` samples under this framing."""
        if self.framing == "reflect":
            return math.ceil(max(length + 2 * self.padding - self.n_fft, 0) / self.hop_length) + 1
        if self.framing == "interval":
            return -(-length // self.hop_length)
        return length // self.hop_length + 1

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """Complex STFT of ``[N, T]`` signals: ``[N, n_fft // 2 + 1, frames]``."""
        window = self.window.to(x.dtype)
        if self.framing == "centre":
            self._check_length(x.shape[-1], self.n_fft // 2)
            return torch.stft(
                x,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=window,
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
        return uncentred_stft(self._pad(x), self.n_fft, self.hop_length, self.win_length, window)

    def mel_power(self, x: torch.Tensor, nonempty_only: bool = False) -> torch.Tensor:
        """Linear mel ``M`` of ``[N, T]`` signals: ``[N, n_mels, frames]``.

        With ``nonempty_only`` only the ``n_mels - empty_bands`` bands that can be non-zero:
        ``[N, n_mels - empty_bands, frames]``.
        """
        spec = self.spectrum(x)
        if self.power == 1:
            magnitude = spec.abs()
        else:
            # |X|² from the real view: differentiable everywhere (abs() of a complex 0 is not).
            magnitude = torch.view_as_real(spec).pow(2).sum(-1)
        bank = self.filterbank_nonempty if nonempty_only else self.filterbank
        return torch.matmul(bank.to(x.dtype), magnitude)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., T]`` signals -> ``[..., n_mels, frames]`` mel (``log`` of ``floor_level + M`` if ``log``)."""
        mel = self.mel_power(x.reshape(-1, x.shape[-1]))
        if self.log is not None:
            mel = _LOGS[self.log](self.floor_level + mel)
        return mel.view(*x.shape[:-1], *mel.shape[-2:])

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, T]`` padded so that ``torch.stft(center=False)`` gives :meth:`num_frames` full frames."""
        length = x.shape[-1]
        frames = self.num_frames(length)
        if self.framing == "interval":
            # Frame n reads original samples from n·hop - p: its centre is n·hop + hop/2.
            return F.pad(x, (self.padding, (frames - 1) * self.hop_length + self.n_fft - self.padding - length))
        self._check_length(length, self.padding)
        extra = (frames - 1) * self.hop_length + self.n_fft - (length + 2 * self.padding)
        x = F.pad(x.unsqueeze(1), (self.padding, self.padding), mode="reflect").squeeze(1)
        return F.pad(x, (0, extra)) if extra > 0 else x

    def _check_length(self, length: int, pad: int) -> None:
        if length <= pad:
            raise ValueError(
                f"MelSpectrogram(n_fft={self.n_fft}, hop={self.hop_length}): audio of {length} samples "
                f"is too short for the {pad}-sample reflect padding; use more than {pad} samples."
            )


def _check_settings(
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    win_length: int,
    f_min: float,
    f_max: float,
    framing: str,
    power: int,
    log: str | None,
) -> None:
    """Refuse settings the framing or the filterbank cannot honour, naming the values."""
    if not (0 < win_length <= n_fft) or not (0 < hop_length <= n_fft):
        raise ValueError(
            f"MelSpectrogram: need 0 < win_length <= n_fft and 0 < hop_length <= n_fft, got "
            f"n_fft={n_fft}, hop_length={hop_length}, win_length={win_length}."
        )
    if not (0 <= f_min < f_max <= sample_rate / 2):
        raise ValueError(
            f"MelSpectrogram: need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, "
            f"f_max={f_max}, sample_rate={sample_rate}."
        )
    if framing not in ("reflect", "interval", "centre"):
        raise ValueError(f"MelSpectrogram: framing {framing!r}: choose reflect, interval or centre.")
    if framing == "interval" and (n_fft - hop_length) % 2:
        raise ValueError(f"n_fft - hop_length must be even for centred frames, got {n_fft} - {hop_length}")
    if power not in (1, 2):
        raise ValueError(f"MelSpectrogram: power {power}: choose 1 (magnitude) or 2 (power).")
    if log is not None and log not in _LOGS:
        raise ValueError(f"MelSpectrogram: log {log!r}: choose log10, ln or None.")


__all__ = ["MelSpectrogram", "mel_filterbank", "uncentred_stft"]
