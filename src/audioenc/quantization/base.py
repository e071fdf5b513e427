"""What a codec needs from the stage between its encoder and its decoder.

:class:`~audioenc.models.codec.CodecModel` always holds a :class:`Quantizer`; the continuous
autoencoder holds the :class:`~audioenc.quantization.null.NullQuantizer`, which passes latents through.
Everything above the model (training, containers, streaming, evaluation, export) asks the quantizer
instead of testing which one it is:

* ``discrete``: ``encode`` gives integer codes ``[B, K, F]`` (stored as codes, counted in kbps) or
  the continuous latents ``[B, D, F]`` themselves;
* ``total_codebooks`` / ``n_q`` / ``bins``: the rows of codes and the alphabet of each row;
* ``bandwidth_for`` / ``n_q_for``: the bitrate arithmetic;
* ``export_encode`` / ``export_decode``: the same lookups as ``encode`` / ``decode`` in operations an
  ONNX trace keeps (no Python branching on values, no in-place buffer updates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import nn


@dataclass
class QuantizedResult:
    """Output of a quantizer's training/validation forward.

    Attributes:
        x: quantized latents ``[batch, dim, frames]``; with a straight-through gradient when the
            input requires grad (the gradient w.r.t. the input is the identity).
        codes: code indices ``[batch, n_q_used, frames]``, int64; ``None`` for continuous latents.
        bandwidth: scalar tensor, kbps used by the codes at the given frame rate (0: continuous).
        penalty: scalar tensor, commitment loss averaged over the used layers (0 when none).
    """

    x: torch.Tensor
    codes: torch.Tensor | None
    bandwidth: torch.Tensor
    penalty: torch.Tensor


class QuantizerOptions(Protocol):
    """The model settings a quantizer is built from (:class:`~audioenc.config.ModelConfig` has them all)."""

    dimension: int
    n_q: int
    bins: int
    q_dropout: bool
    fsq_levels: tuple[int, ...]


class Quantizer(nn.Module):
    """Base of every quantizer: the interface above, with the bitrate arithmetic of ``K`` codebooks of
    ``bins`` entries (``log2(bins) · frame_rate / 1000`` kbps each).

    Subclasses set ``dimension``, ``bins``, ``total_codebooks`` and ``n_q`` (through its setter) and
    implement :meth:`forward`, :meth:`encode`, :meth:`decode` and :meth:`from_options`.
    """

    #: ``encode`` returns integer codes (True) or continuous latents (False).
    discrete: ClassVar[bool] = True

    dimension: int
    bins: int
    total_codebooks: int
    _n_q: int

    @classmethod
    def from_options(cls, options: QuantizerOptions) -> Quantizer:
        """The quantizer the model settings ask for."""
        raise NotImplementedError

    @property
    def encoded_kind(self) -> str:
        """What :meth:`encode` returns, as a container names it: ``codes`` or ``latents``."""
        return "codes" if self.discrete else "latents"

    @property
    def initialized(self) -> bool:
        """True when the quantizer can encode (a learnt codebook may wait for its first training batch)."""
        return True

    @property
    def n_q(self) -> int:
        """Codebooks used by ``encode`` and by ``forward`` outside quantizer dropout."""
        return self._n_q

    @n_q.setter
    def n_q(self, value: int) -> None:
        self._n_q = self._check_n_q(value)

    def _check_n_q(self, value: int) -> int:
        if int(value) != value or not 1 <= value <= self.total_codebooks:
            raise ValueError(
                f"{type(self).__name__}: n_q must be an integer in [1, {self.total_codebooks}], got {value!r}."
            )
        return int(value)

    def bandwidth_per_codebook(self, frame_rate: float) -> float:
        """kbps of one codebook: ``log2(bins) · frame_rate / 1000`` (frame_rate in Hz)."""
        if frame_rate <= 0:
            raise ValueError(f"{type(self).__name__}: frame_rate must be > 0 Hz, got {frame_rate}.")
        return math.log2(self.bins) * frame_rate / 1000.0

    def bandwidth_for(self, n_q: int, frame_rate: float) -> float:
        """kbps of ``n_q`` codebooks at ``frame_rate`` Hz (32 × 0.75 = 24 kbps at 75 Hz, 1024 bins)."""
        return self._check_n_q(n_q) * self.bandwidth_per_codebook(frame_rate)

    def n_q_for(self, bandwidth: float, frame_rate: float) -> int:
        """Most codebooks whose bitrate fits in ``bandwidth`` kbps at ``frame_rate`` Hz."""
        per_codebook = self.bandwidth_per_codebook(frame_rate)
        n_q = math.floor(bandwidth / per_codebook + 1e-9)  # 1e-9: 6.0 / 0.75 must give 8, not 7
        if not 1 <= n_q <= self.total_codebooks:
            raise ValueError(
                f"{type(self).__name__}: {bandwidth} kbps at {frame_rate} Hz is outside "
                f"[{per_codebook}, {self.total_codebooks * per_codebook}] kbps "
                f"(1 to {self.total_codebooks} codebooks of {per_codebook} kbps); choose a bandwidth "
                "in that range."
            )
        return n_q

    def summary(self) -> str:
        """One line on what the codec transmits, for ``audioenc info`` (e.g. ``rvq, 32 codebooks x 1024 bins``)."""
        raise NotImplementedError

    def state_note(self) -> str:
        """What the quantizer learns outside its parameters, for ``audioenc info`` ("" when nothing)."""
        return ""

    def forward(self, x: torch.Tensor, frame_rate: float, generator: torch.Generator | None = None) -> QuantizedResult:
        """Quantize latents ``x [B, D, F]`` for training or validation (may learn in training mode)."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """What a container stores for latents ``x [B, D, F]``: codes ``[B, n_q, F]`` or the latents."""
        raise NotImplementedError

    def decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, F]`` (float32) from what :meth:`encode` returned (codes of any integer dtype)."""
        raise NotImplementedError

    def export_encode(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`encode` with all ``n_q`` codebooks, in traceable operations (default: ``encode`` itself)."""
        return self.encode(x)

    def export_decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` in traceable operations (default: ``decode`` itself)."""
        return self.decode(encoded)
