"""The continuous autoencoder's quantizer: latents pass through unchanged.

It holds no parameters or buffers, so a continuous codec's ``state_dict`` has no ``quantizer.*`` key.
"""

from __future__ import annotations

import torch

from audioenc.quantization.base import QuantizedResult, Quantizer, QuantizerOptions


class NullQuantizer(Quantizer):
    """Identity on latents ``[B, D, F]``: no codes, no bitrate, no commitment penalty.

    ``encode`` returns the continuous latents (what a container stores for such a codec) and
    ``decode`` takes them back, so callers never ask which quantizer they hold.
    """

    discrete = False

    def __init__(self) -> None:
        super().__init__()
        self.dimension = 0  # any: the latents are not looked at
        self.bins = 0
        self.total_codebooks = 0
        self._n_q = 0

    @classmethod
    def from_options(cls, options: QuantizerOptions) -> NullQuantizer:
        return cls()

    def summary(self) -> str:
        return "none (continuous latents)"

    def forward(self, x: torch.Tensor, frame_rate: float, generator: torch.Generator | None = None) -> QuantizedResult:
        """``x [B, D, F]`` itself, no codes, zero bandwidth and zero penalty."""
        zero = x.new_zeros(())
        return QuantizedResult(x=x, codes=None, bandwidth=zero, penalty=zero.clone())

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """The latents ``[B, D, F]`` themselves (``n_q`` must be None: there are no codebooks)."""
        if n_q is not None:
            raise ValueError("NullQuantizer: n_q selects codebooks; a continuous codec has none.")
        return x

    def decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """The latents ``[B, D, F]`` themselves."""
        return encoded
