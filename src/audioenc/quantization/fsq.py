"""Finite scalar quantization (FSQ; Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Each latent frame ``[D]`` is projected to ``d = len(levels)`` numbers; number ``i`` is bounded to
``L_i`` values and rounded, so the frame takes one of ``Π L_i`` points of a fixed grid: no codebook
to learn, no commitment loss, no dead codes. One code per frame, the grid point's mixed-radix index
``Σ_i digit_i · Π_{j<i} L_j``, so ``log2(Π L_i) · frame_rate / 1000`` kbps ((8, 5, 5, 5): 1000 points,
about 9.97 bits per frame, 0.75 kbps at 75 Hz).

Math per projected number ``z`` and level count ``L`` (``half = (L − 1)(1 + ε) / 2``, ``offset = 0.5``
for even ``L`` else 0, ``shift = atanh(offset / half)``):

* bound: ``b = tanh(z + shift) · half − offset``, inside ``(−L/2, L/2)`` so rounding gives ``L`` values;
* round with a straight-through estimator: ``q = b + (round(b) − b).detach()`` (``∂q/∂b = 1``);
* digit ``round(b) + L // 2`` in ``[0, L − 1]``; the decoder reads ``q / (L // 2)`` in ``[−1, 1]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from audioenc.quantization.base import QuantizedResult, Quantizer, QuantizerOptions

EPSILON = 1e-3
"""Widens the bound slightly so that ``tanh``'s limit ±1 still rounds to the outermost level."""


class FiniteScalarQuantizer(Quantizer):
    """FSQ on latents ``[B, D, F]`` with kernel-1 projections ``D -> len(levels) -> D`` (learnt).

    Args:
        dimension: latent dimension ``D``.
        levels: values per projected dimension, each ``>= 2`` (the paper's 10-bit choice: (8, 5, 5, 5)).
    """

    def __init__(self, dimension: int = 128, levels: tuple[int, ...] = (8, 5, 5, 5)) -> None:
        super().__init__()
        if dimension < 1 or not levels or min(levels) < 2:
            raise ValueError(
                f"FiniteScalarQuantizer: need dimension >= 1 and levels >= 2; got dimension={dimension}, "
                f"levels={tuple(levels)}."
            )
        self.dimension = dimension
        self.levels = tuple(int(level) for level in levels)
        self.bins = math.prod(self.levels)
        self.total_codebooks = 1
        self._n_q = 1
        self.project_in = nn.Conv1d(dimension, len(self.levels), kernel_size=1)
        self.project_out = nn.Conv1d(len(self.levels), dimension, kernel_size=1)
        levels_tensor = torch.tensor(self.levels)
        basis = torch.cumprod(torch.tensor((1, *self.levels[:-1])), dim=0)
        # Constants derived from ``levels`` (not saved: the configuration rebuilds them).
        self.register_buffer("_levels", levels_tensor, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    @classmethod
    def from_options(cls, options: QuantizerOptions) -> FiniteScalarQuantizer:
        """One grid of ``fsq_levels`` on ``dimension``-dimensional latents (``n_q``, ``bins``, ``q_dropout`` unused)."""
        return cls(dimension=options.dimension, levels=tuple(options.fsq_levels))

    def summary(self) -> str:
        return f"fsq, levels {' x '.join(map(str, self.levels))} = {self.bins} codes per frame"

    # --- the grid, per projected number ``[B, d, F]`` ---------------------------------------------

    def _level_shape(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(torch.float32)[None, :, None]

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, d, F] -> [B, d, F]`` inside ``(−L/2, L/2)`` per row (see the module docstring)."""
        levels = self._level_shape(self._levels)
        half = (levels - 1) * (1 + EPSILON) / 2
        offset = torch.where(self._level_shape(self._levels % 2) == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def _quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Rounded bounded values ``[B, d, F]`` with a straight-through gradient (``∂/∂bound = 1``)."""
        bounded = self.bound(z)
        return bounded + (torch.round(bounded) - bounded).detach()

    def _normalized(self, rounded: torch.Tensor) -> torch.Tensor:
        """Grid values ``[B, d, F]`` scaled to ``[−1, 1]`` (the decoder's input scale)."""
        return rounded / self._level_shape(self._levels // 2)

    def codes_from_rounded(self, rounded: torch.Tensor) -> torch.Tensor:
        """Grid values ``[B, d, F]`` -> codes ``[B, 1, F]`` int64 (mixed-radix index of the digits)."""
        digits = torch.round(rounded).long() + (self._levels // 2)[None, :, None]
        return (digits * self._basis[None, :, None]).sum(dim=1, keepdim=True)

    def rounded_from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, 1, F]`` -> grid values ``[B, d, F]`` float32 (the digits, centred on 0)."""
        digits = (codes.long() // self._basis[None, :, None]) % self._levels[None, :, None]
        return (digits - (self._levels // 2)[None, :, None]).to(torch.float32)

    # --- the quantizer interface -------------------------------------------------------------------

    def _check_latents(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.dimension:
            raise ValueError(
                f"FiniteScalarQuantizer: expected latents [batch, {self.dimension}, frames], "
                f"got shape {tuple(x.shape)}."
            )

    def forward(self, x: torch.Tensor, frame_rate: float, generator: torch.Generator | None = None) -> QuantizedResult:
        """Quantize ``x [B, D, F]``: latents ``[B, D, F]`` (through the projections), codes ``[B, 1, F]``,
        the bandwidth and a zero penalty (the grid is fixed; nothing to commit to)."""
        self._check_latents(x)
        with torch.autocast(device_type=x.device.type, enabled=False):  # rounding in float32 even under autocast
            rounded = self._quantize(self.project_in(x.to(torch.float32)))
            latents = self.project_out(self._normalized(rounded))
        codes = self.codes_from_rounded(rounded.detach())
        bandwidth = torch.tensor(self.bandwidth_for(1, frame_rate), device=x.device)
        return QuantizedResult(x=latents.to(x.dtype), codes=codes, bandwidth=bandwidth, penalty=x.new_zeros(()))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Codes ``[B, 1, F]`` int64 of latents ``x [B, D, F]`` (``n_q``, if given, must be 1)."""
        if n_q is not None:
            self._check_n_q(n_q)
        self._check_latents(x)
        return self.codes_from_rounded(torch.round(self.bound(self.project_in(x.to(torch.float32)))))

    @torch.no_grad()
    def decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, F]`` float32 from codes ``[B, 1, F]`` (any integer dtype)."""
        if encoded.dim() != 3 or encoded.shape[1] != 1:
            raise ValueError(
                f"FiniteScalarQuantizer.decode: expected codes [batch, 1, frames], got shape {tuple(encoded.shape)}."
            )
        return self.project_out(self._normalized(self.rounded_from_codes(encoded)))

    def export_encode(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`encode` without the shape check (a traced graph keeps operations, not Python checks)."""
        return self.codes_from_rounded(torch.round(self.bound(self.project_in(x))))

    def export_decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` without the shape check."""
        return self.project_out(self._normalized(self.rounded_from_codes(encoded)))
