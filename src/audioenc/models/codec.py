"""The codec model: SEANet encoder -> quantizer (identity, residual VQ, FSQ, ...) -> SEANet decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from audioenc.config import DiscriminatorConfig, ModelConfig
from audioenc.models.discriminators import MultiScaleSTFTDiscriminator
from audioenc.models.seanet import SEANetDecoder, SEANetEncoder, seanet_options
from audioenc.models.streaming import StreamState, initial_state, stream_step
from audioenc.quantization.base import Quantizer
from audioenc.quantization.registry import build_quantizer


def as_scale(scale: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A level (a number, ``[B]`` or ``[B, 1, 1]``) as ``[B or 1, 1, 1]`` in ``like``'s dtype and device."""
    return torch.as_tensor(scale, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)


@dataclass
class CodecOutput:
    """What one codec forward pass returns.

    Attributes:
        audio: reconstruction ``[B, C, T]``, trimmed to the input length.
        latents: encoder output after quantization (the continuous latents themselves without codes) ``[B, D, F]``.
        codes: integer codes ``[B, K, F]``, or ``None`` for a continuous codec.
        penalty: the quantizer's commitment loss (scalar; 0 when it has none).
        bandwidth: kbps actually used this pass (0 for a continuous codec).
        scale: the input level the codec divided by and restored ``[B, 1, 1]`` (ones when the
            model does not normalise).
    """

    audio: torch.Tensor
    latents: torch.Tensor
    codes: torch.Tensor | None
    penalty: torch.Tensor
    bandwidth: torch.Tensor
    scale: torch.Tensor


class CodecModel(nn.Module):
    """EnCodec-style codec: ``F = ceil(T / hop)`` latent frames of ``dimension`` each.

    The quantizer decides what the codec transmits: with the
    :class:`~audioenc.quantization.null.NullQuantizer` it is a continuous autoencoder (latents); with a
    :class:`~audioenc.quantization.rvq.ResidualVectorQuantizer` it is the EnCodec codec, ``log2(bins) ·
    frame_rate`` bits/s per codebook (0.75 kbps per codebook at 75 Hz and 1024 bins).

    With ``normalize`` the codec works on level-normalised audio: each input item is divided by its
    RMS over channels and time (one number per item, so inter-channel level differences survive),
    and the decoder's output is multiplied by the same number. That scale is side information: it
    travels beside the latents or codes (:meth:`encode` returns it, :meth:`decode` takes it; one
    number per file in ``audioenc encode``'s container, not counted in the codes' bitrate).

    Streaming (causal models): :meth:`encode_stream` / :meth:`decode_stream` run the encoder or
    decoder on the next chunk with an explicit state in and out (pure functions of their inputs,
    see :mod:`audioenc.models.streaming`); :meth:`initial_encoder_state` /
    :meth:`initial_decoder_state` give the zero state for a batch. The level and the quantizer act
    frame by frame, so they carry no state: a caller divides each chunk by the signal's fixed
    ``scale`` and quantizes the latents a step returns (``quantizer.encode``), as
    :class:`audioenc.codec_io.StreamingEncoder` does.
    """

    #: Added to the RMS so that digital silence stays finite (EnCodec's value).
    LEVEL_FLOOR = 1e-8

    def __init__(
        self,
        encoder: SEANetEncoder,
        decoder: SEANetDecoder,
        quantizer: Quantizer,
        sample_rate: int,
        channels: int,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.encoder = encoder
        self.decoder = decoder
        self.quantizer = quantizer
        self.sample_rate = sample_rate
        self.channels = channels

    @classmethod
    def from_config(cls, config: ModelConfig) -> CodecModel:
        seanet = seanet_options(config)
        quantizer = build_quantizer(config.quantizer, config)
        return cls(
            SEANetEncoder(**seanet),
            SEANetDecoder(**seanet),
            quantizer,
            config.sample_rate,
            config.channels,
            normalize=config.normalize,
        )

    @property
    def hop_length(self) -> int:
        return self.encoder.hop_length

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (75 at 24 kHz with hop 320)."""
        return self.sample_rate / self.hop_length

    def initial_encoder_state(
        self, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> StreamState:
        """Zero state of the encoder for ``batch`` signals (flat tuple; see :meth:`encode_stream`)."""
        return initial_state(self.encoder, batch, dtype, device)

    def initial_decoder_state(
        self, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> StreamState:
        """Zero state of the decoder for ``batch`` signals (flat tuple; see :meth:`decode_stream`)."""
        return initial_state(self.decoder, batch, dtype, device)

    def encode_stream(self, audio: torch.Tensor, state: StreamState | None) -> tuple[torch.Tensor, StreamState]:
        """Encoder on the next chunk: ``[B, C, L]`` (already divided by the signal's scale) ->
        ``(latents [B, D, ceil(L / hop)], new_state)``.

        Every chunk but the last must be a multiple of ``hop_length`` samples; ``state`` is the
        previous call's, :meth:`initial_encoder_state`, or ``None`` before the first chunk. The
        concatenated latents equal ``self.encoder(signal)`` up to float rounding.
        """
        self._check_input(audio)
        return stream_step(self.encoder, audio, state)

    def decode_stream(self, latents: torch.Tensor, state: StreamState | None) -> tuple[torch.Tensor, StreamState]:
        """Decoder on the next frames: ``[B, D, f]`` -> ``(audio [B, C, f * hop], new_state)`` (any
        ``f >= 1``; multiply by the scale afterwards). Concatenated, equal to ``self.decoder(latents)``."""
        return stream_step(self.decoder, latents, state)

    def _check_input(self, audio: torch.Tensor) -> None:
        if audio.dim() != 3 or audio.shape[1] != self.channels:
            raise ValueError(
                f"Codec expects audio [batch, {self.channels}, time]; got {tuple(audio.shape)}. "
                "Check the channel mode (--1ch / --32ch) against the data."
            )

    def input_scale(self, audio: torch.Tensor) -> torch.Tensor:
        """The level each item is divided by: ``[B, C, T] -> [B, 1, 1]``.

        ``sqrt(mean over C and T of x²) + LEVEL_FLOOR`` with ``normalize``, else ones.
        """
        self._check_input(audio)
        if not self.normalize:
            return audio.new_ones(audio.shape[0], 1, 1)
        return audio.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + self.LEVEL_FLOOR

    def forward(self, audio: torch.Tensor) -> CodecOutput:
        """Encode, quantize and decode ``audio`` ``[B, C, T]`` at its own level."""
        scale = self.input_scale(audio)
        length = audio.shape[-1]
        quantized = self.quantizer(self.encoder(audio / scale), self.frame_rate)
        reconstruction = self.decoder(quantized.x)[..., :length] * scale.to(quantized.x.dtype)
        return CodecOutput(reconstruction, quantized.x, quantized.codes, quantized.penalty, quantized.bandwidth, scale)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C, T]`` -> ``(encoded, scale)``.

        ``encoded`` is the quantizer's integer codes ``[B, K, F]`` or continuous latents ``[B, D, F]`` of
        ``audio / scale``; ``scale`` ``[B, 1, 1]`` is :meth:`input_scale` unless given (a fixed gain
        for live input, or one level for a whole file streamed in chunks). A codec without
        ``normalize`` ignores a given scale and returns ones, as the streaming encoder does.
        """
        self._check_input(audio)
        if scale is None or not self.normalize:
            scale = self.input_scale(audio)
        else:
            scale = as_scale(scale, audio)
        latents = self.encoder(audio / scale)
        encoded = self.quantizer.encode(latents)
        return encoded, scale

    @torch.no_grad()
    def decode(
        self, encoded: torch.Tensor, scale: torch.Tensor | float | None = None, length: int | None = None
    ) -> torch.Tensor:
        """Inverse of :meth:`encode`: ``[B, K, F]`` codes or ``[B, D, F]`` latents -> ``[B, C, T]``.

        ``scale`` (from :meth:`encode`) restores the level; it is required when the model
        normalises, since without it the level of the input is lost, and ignored otherwise.
        """
        if scale is None and self.normalize:
            raise ValueError(
                "CodecModel.decode: this codec normalises its input level; pass the scale that encode() returned."
            )
        if not self.normalize:
            scale = 1.0
        latents = self.quantizer.decode(encoded)
        audio = self.decoder(latents) * as_scale(scale, latents)
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
