"""The codec model: SEANet encoder -> (identity or residual VQ) -> SEANet decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from audioenc.config import DiscriminatorConfig, ModelConfig
from audioenc.models.discriminators import MultiScaleSTFTDiscriminator
from audioenc.models.quantization import ResidualVectorQuantizer
from audioenc.models.seanet import SEANetDecoder, SEANetEncoder


@dataclass
class CodecOutput:
    """What one codec forward pass returns.

    Attributes:
        audio: reconstruction ``[B, C, T]``, trimmed to the input length.
        latents: encoder output after quantization (or the continuous latents) ``[B, D, F]``.
        codes: integer codes ``[B, K, F]``, or ``None`` for the continuous baseline.
        penalty: RVQ commitment loss (scalar; 0 for the continuous baseline).
        bandwidth: kbps actually used this pass (0 for the continuous baseline).
    """

    audio: torch.Tensor
    latents: torch.Tensor
    codes: torch.Tensor | None
    penalty: torch.Tensor
    bandwidth: torch.Tensor


class CodecModel(nn.Module):
    """EnCodec-style codec: ``F = ceil(T / hop)`` latent frames of ``dimension`` each.

    With ``quantizer=None`` this is seed 3's continuous baseline autoencoder; with a
    :class:`ResidualVectorQuantizer` it is the EnCodec codec, ``log2(bins) · frame_rate`` bits/s per
    codebook (0.75 kbps per codebook at 75 Hz and 1024 bins).
    """

    def __init__(
        self,
        encoder: SEANetEncoder,
        decoder: SEANetDecoder,
        quantizer: ResidualVectorQuantizer | None,
        sample_rate: int,
        channels: int,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.quantizer = quantizer
        self.sample_rate = sample_rate
        self.channels = channels

    @classmethod
    def from_config(cls, config: ModelConfig) -> CodecModel:
        seanet = dict(
            channels=config.channels,
            dimension=config.dimension,
            n_filters=config.n_filters,
            n_residual_layers=config.n_residual_layers,
            ratios=tuple(config.ratios),
            lstm=config.lstm,
            causal=config.causal,
            pad_mode=config.pad_mode,
        )
        quantizer = None
        if config.quantizer == "rvq":
            quantizer = ResidualVectorQuantizer(
                dimension=config.dimension, n_q=config.n_q, bins=config.bins, q_dropout=config.q_dropout
            )
        return cls(SEANetEncoder(**seanet), SEANetDecoder(**seanet), quantizer, config.sample_rate, config.channels)

    @property
    def hop_length(self) -> int:
        return self.encoder.hop_length

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (75 at 24 kHz with hop 320)."""
        return self.sample_rate / self.hop_length

    def _check_input(self, audio: torch.Tensor) -> None:
        if audio.dim() != 3 or audio.shape[1] != self.channels:
            raise ValueError(
                f"Codec expects audio [batch, {self.channels}, time]; got {tuple(audio.shape)}. "
                "Check the channel mode (--1ch / --32ch) against the data."
            )

    def forward(self, audio: torch.Tensor) -> CodecOutput:
        """Encode, quantize (if any) and decode ``audio`` ``[B, C, T]``."""
        self._check_input(audio)
        length = audio.shape[-1]
        latents = self.encoder(audio)
        codes = None
        penalty = latents.new_zeros(())
        bandwidth = latents.new_zeros(())
        if self.quantizer is not None:
            quantized = self.quantizer(latents, self.frame_rate)
            latents, codes, penalty, bandwidth = quantized.x, quantized.codes, quantized.penalty, quantized.bandwidth
        reconstruction = self.decoder(latents)[..., :length]
        return CodecOutput(reconstruction, latents, codes, penalty, bandwidth)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> integer codes ``[B, K, F]`` (RVQ) or continuous latents ``[B, D, F]``."""
        self._check_input(audio)
        latents = self.encoder(audio)
        return latents if self.quantizer is None else self.quantizer.encode(latents)

    @torch.no_grad()
    def decode(self, encoded: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Inverse of :meth:`encode`: ``[B, K, F]`` codes or ``[B, D, F]`` latents -> ``[B, C, T]``."""
        latents = encoded if self.quantizer is None else self.quantizer.decode(encoded)
        audio = self.decoder(latents)
        return audio if length is None else audio[..., :length]


def build_discriminator(disc: DiscriminatorConfig, model: ModelConfig) -> MultiScaleSTFTDiscriminator:
    """The MS-STFT discriminator whose input channels are the audio's channels (never configured apart)."""
    return MultiScaleSTFTDiscriminator(
        in_channels=model.channels,
        filters=disc.filters,
        n_ffts=tuple(disc.n_ffts),
        hop_lengths=tuple(disc.hop_lengths),
        win_lengths=tuple(disc.win_lengths),
    )
