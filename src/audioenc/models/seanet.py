"""SEANet encoder and decoder, as in EnCodec (Défossez et al. 2022) and audiocraft.

The whole architecture at the defaults (channels C, n_filters 32, ratios (8, 5, 4, 2),
dimension 128, hop 320 samples = 75 frames/s at 24 kHz)::

    SEANetEncoder                                   [B, C, T]
      StreamableConv1d(C -> 32, k=7)                [B, 32, T]
      EncoderBlock(32,  stride 2)                   [B, 64, ceil(T/2)]
      EncoderBlock(64,  stride 4)                   [B, 128, ceil(T/8)]
      EncoderBlock(128, stride 5)                   [B, 256, ceil(T/40)]
      EncoderBlock(256, stride 8)                   [B, 512, ceil(T/320)]
      StreamableLSTM(512, 2 layers, skip)
      ELU, StreamableConv1d(512 -> 128, k=7)        [B, 128, ceil(T/320)]

    EncoderBlock(d, s) = ResidualUnit(d, dilation 2**j) for j < n_residual_layers,
                         ELU, StreamableConv1d(d -> 2d, k=2s, stride s)
    ResidualUnit(d)    = x + [ELU, Conv(d -> d/2, k=3, dilation), ELU, Conv(d/2 -> d, k=1)](x)

    SEANetDecoder                                   [B, 128, F]
      StreamableConv1d(128 -> 512, k=7)             [B, 512, F]
      StreamableLSTM(512, 2 layers, skip)
      DecoderBlock(512, stride 8)                   [B, 256, 8F]
      DecoderBlock(256, stride 5)                   [B, 128, 40F]
      DecoderBlock(128, stride 4)                   [B, 64, 160F]
      DecoderBlock(64,  stride 2)                   [B, 32, 320F]
      ELU, StreamableConv1d(32 -> C, k=7)           [B, C, 320F]
      (optional final activation)

    DecoderBlock(d, s) = ELU, StreamableConvTranspose1d(d -> d/2, k=2s, stride s),
                         ResidualUnit(d/2, dilation 2**j) for j < n_residual_layers

Layer order and parameter shapes equal audiocraft's ``encodec_base_24khz`` SEANet
(``modules/seanet.py`` with ``config/model/encodec/default.yaml``), so parameter counts match.
All padding is done inside the streamable layers of :mod:`audioenc.models.conv`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from audioenc.config import ModelConfig
from audioenc.models.conv import StreamableConv1d, StreamableConvTranspose1d, StreamableLSTM


def seanet_options(config: ModelConfig) -> dict[str, Any]:
    """The keyword arguments of :class:`SEANetEncoder` / :class:`SEANetDecoder` that a
    :class:`~audioenc.config.ModelConfig` sets (every other argument keeps its EnCodec default).

    ``true_skip`` is among them: ``model.true_skip=false`` gives every residual unit a kernel-1
    convolution shortcut, the layout of the released EnCodec 24 kHz weights.
    """
    return dict(
        channels=config.channels,
        dimension=config.dimension,
        n_filters=config.n_filters,
        n_residual_layers=config.n_residual_layers,
        ratios=tuple(config.ratios),
        lstm=config.lstm,
        causal=config.causal,
        pad_mode=config.pad_mode,
        true_skip=config.true_skip,
    )


def _check_ratios(ratios: tuple[int, ...], where: str) -> tuple[int, ...]:
    ratios = tuple(int(r) for r in ratios)
    if not ratios or any(r < 1 for r in ratios):
        raise ValueError(f"{where}: ratios={ratios}; need a non-empty sequence of positive integers.")
    return ratios


def _check_input(x: torch.Tensor, channels: int, where: str, what: str) -> None:
    if x.dim() != 3 or x.shape[1] != channels:
        raise ValueError(f"{where}: expected {what} [batch, {channels}, time], got shape {tuple(x.shape)}.")
    if x.shape[-1] < 1:
        raise ValueError(f"{where}: the input has no time steps (shape {tuple(x.shape)}).")


class ResidualUnit(nn.Module):
    """SEANet residual unit: ``y = shortcut(x) + Conv_1(ELU(Conv_k(ELU(x))))``.

    ``Conv_k`` maps ``dim -> dim // compress`` with kernel ``kernel_size`` and ``dilation``,
    ``Conv_1`` maps back with kernel 1. ``shortcut`` is the identity when ``true_skip``, else a
    kernel-1 convolution. Shape: [B, dim, T] -> [B, dim, T].
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = 3,
        dilation: int = 1,
        compress: int = 2,
        true_skip: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
    ) -> None:
        super().__init__()
        hidden = dim // compress
        if hidden < 1:
            raise ValueError(f"ResidualUnit: dim={dim} // compress={compress} leaves no hidden channels.")
        conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
        self.block = nn.Sequential(
            nn.ELU(alpha=1.0),
            StreamableConv1d(dim, hidden, kernel_size, dilation=dilation, **conv),
            nn.ELU(alpha=1.0),
            StreamableConv1d(hidden, dim, 1, **conv),
        )
        self.shortcut: nn.Module = nn.Identity() if true_skip else StreamableConv1d(dim, dim, 1, **conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, dim, T] -> [B, dim, T]."""
        return self.shortcut(x) + self.block(x)


class EncoderBlock(nn.Sequential):
    """Residual units at width ``dim`` (dilations ``dilation_base ** j``), then ELU and a strided
    convolution (kernel ``2 * stride``) to ``2 * dim``. [B, dim, T] -> [B, 2 dim, ceil(T / stride)]."""

    def __init__(
        self,
        dim: int,
        stride: int,
        n_residual_layers: int = 1,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        compress: int = 2,
        true_skip: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
    ) -> None:
        conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
        units = [
            ResidualUnit(dim, residual_kernel_size, dilation_base**j, compress, true_skip, **conv)
            for j in range(n_residual_layers)
        ]
        super().__init__(
            *units,
            nn.ELU(alpha=1.0),
            StreamableConv1d(dim, 2 * dim, kernel_size=2 * stride, stride=stride, **conv),
        )


class DecoderBlock(nn.Sequential):
    """ELU and a transposed convolution (kernel ``2 * stride``) from ``dim`` to ``dim // 2``, then
    residual units at ``dim // 2``. [B, dim, F] -> [B, dim // 2, F * stride]."""

    def __init__(
        self,
        dim: int,
        stride: int,
        n_residual_layers: int = 1,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        compress: int = 2,
        true_skip: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
        trim_right_ratio: float = 1.0,
    ) -> None:
        out_dim = dim // 2
        conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
        units = [
            ResidualUnit(out_dim, residual_kernel_size, dilation_base**j, compress, true_skip, **conv)
            for j in range(n_residual_layers)
        ]
        super().__init__(
            nn.ELU(alpha=1.0),
            StreamableConvTranspose1d(
                dim,
                out_dim,
                kernel_size=2 * stride,
                stride=stride,
                causal=causal,
                norm=norm,
                trim_right_ratio=trim_right_ratio,
            ),
            *units,
        )


class SEANetEncoder(nn.Module):
    """SEANet encoder: audio [B, channels, T] -> latent frames [B, dimension, ceil(T / hop_length)].

    ``hop_length = prod(ratios)`` (320 at the defaults: 75 frames/s at 24 kHz). Strides are applied
    in the reverse order of ``ratios`` (which are given in decoder order, as in audiocraft). With
    ``causal=True`` and ``pad_mode='constant'`` frame ``k`` depends only on samples
    ``< (k + 1) * hop_length``. With ``causal=True`` and ``pad_mode='reflect'`` (EnCodec's
    behaviour) the reflected left padding of the final kernel-``last_kernel_size`` convolution
    mirrors frames ``1..last_kernel_size - 1``, so frame ``k`` depends on samples
    ``< max(k + 1, last_kernel_size) * hop_length``: the first frames look a little ahead.

    Args:
        channels: audio channels C (1, 2, 32, ...).
        dimension: latent dimension D.
        n_filters: width of the first convolution; doubled after each stride.
        n_residual_layers: residual units per block (dilations ``dilation_base ** j``).
        ratios: strides in decoder order; the encoder uses them reversed.
        kernel_size: kernel of the first convolution.
        last_kernel_size: kernel of the final convolution to ``dimension``.
        residual_kernel_size: kernel of the first convolution of each residual unit.
        dilation_base: dilation growth across residual units.
        causal: causal padding everywhere.
        pad_mode: 'reflect', 'constant' or 'replicate' (audiocraft's encodec config uses 'constant').
        true_skip: identity shortcut in residual units (else a kernel-1 convolution).
        compress: channel reduction inside residual units.
        lstm: number of LSTM layers before the final convolution (0: none).
        norm: 'weight_norm' or 'none'.
    """

    def __init__(
        self,
        channels: int = 1,
        dimension: int = 128,
        n_filters: int = 32,
        n_residual_layers: int = 1,
        ratios: tuple[int, ...] = (8, 5, 4, 2),
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        causal: bool = False,
        pad_mode: str = "reflect",
        true_skip: bool = True,
        compress: int = 2,
        lstm: int = 2,
        norm: str = "weight_norm",
    ) -> None:
        super().__init__()
        self.ratios = _check_ratios(ratios, "SEANetEncoder")
        self.channels = channels
        self.dimension = dimension
        self.causal = causal
        conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
        block = dict(
            n_residual_layers=n_residual_layers,
            residual_kernel_size=residual_kernel_size,
            dilation_base=dilation_base,
            compress=compress,
            true_skip=true_skip,
            **conv,
        )
        layers: list[nn.Module] = [StreamableConv1d(channels, n_filters, kernel_size, **conv)]
        width = n_filters
        for stride in reversed(self.ratios):
            layers.append(EncoderBlock(width, stride, **block))
            width *= 2
        if lstm:
            layers.append(StreamableLSTM(width, num_layers=lstm))
        layers += [nn.ELU(alpha=1.0), StreamableConv1d(width, dimension, last_kernel_size, **conv)]
        self.model = nn.Sequential(*layers)

    @property
    def hop_length(self) -> int:
        """Samples per latent frame: ``prod(ratios)``."""
        return math.prod(self.ratios)

    def frame_rate(self, sample_rate: int) -> float:
        """Latent frames per second at ``sample_rate`` Hz: ``sample_rate / hop_length``."""
        return sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` input samples: ``ceil(num_samples / hop_length)``."""
        return -(-num_samples // self.hop_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, channels, T] -> [B, dimension, ceil(T / hop_length)]."""
        _check_input(x, self.channels, "SEANetEncoder", "audio")
        return self.model(x)


class SEANetDecoder(nn.Module):
    """SEANet decoder: latent frames [B, dimension, F] -> audio [B, channels, F * hop_length].

    Mirrors :class:`SEANetEncoder` with transposed convolutions in ``ratios`` order. The output is
    ``F * hop_length`` samples; the codec trims it to the original input length. With
    ``causal=True``, ``trim_right_ratio=1`` and ``pad_mode='constant'``, output samples
    ``< (f + 1) * hop_length`` depend only on frames ``<= f`` (with 'reflect', the first
    convolution's mirrored padding makes the first ``kernel_size - 1`` frames look ahead).

    Args:
        channels, dimension, n_filters, n_residual_layers, ratios, kernel_size, last_kernel_size,
        residual_kernel_size, dilation_base, causal, pad_mode, true_skip, compress, lstm, norm:
            as in :class:`SEANetEncoder` (``kernel_size`` is the first convolution from
            ``dimension``, ``last_kernel_size`` the last one to ``channels``).
        trim_right_ratio: share of each causal transposed convolution's trimming taken from the
            right (1.0: all; must be 1.0 when not causal).
        final_activation: name of a ``torch.nn`` activation applied to the output (e.g. 'Tanh'),
            or None for a linear output.
    """

    def __init__(
        self,
        channels: int = 1,
        dimension: int = 128,
        n_filters: int = 32,
        n_residual_layers: int = 1,
        ratios: tuple[int, ...] = (8, 5, 4, 2),
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        causal: bool = False,
        pad_mode: str = "reflect",
        true_skip: bool = True,
        compress: int = 2,
        lstm: int = 2,
        norm: str = "weight_norm",
        trim_right_ratio: float = 1.0,
        final_activation: str | None = None,
    ) -> None:
        super().__init__()
        self.ratios = _check_ratios(ratios, "SEANetDecoder")
        self.channels = channels
        self.dimension = dimension
        self.causal = causal
        conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
        block = dict(
            n_residual_layers=n_residual_layers,
            residual_kernel_size=residual_kernel_size,
            dilation_base=dilation_base,
            compress=compress,
            true_skip=true_skip,
            trim_right_ratio=trim_right_ratio,
            **conv,
        )
        width = n_filters * 2 ** len(self.ratios)
        layers: list[nn.Module] = [StreamableConv1d(dimension, width, kernel_size, **conv)]
        if lstm:
            layers.append(StreamableLSTM(width, num_layers=lstm))
        for stride in self.ratios:
            layers.append(DecoderBlock(width, stride, **block))
            width //= 2
        layers += [nn.ELU(alpha=1.0), StreamableConv1d(width, channels, last_kernel_size, **conv)]
        if final_activation is not None:
            activation = getattr(nn, final_activation, None)
            if not (isinstance(activation, type) and issubclass(activation, nn.Module)):
                raise ValueError(
                    f"SEANetDecoder: final_activation={final_activation!r} is not a torch.nn module name; "
                    "use e.g. 'Tanh' or None."
                )
            layers.append(activation())
        self.model = nn.Sequential(*layers)

    @property
    def hop_length(self) -> int:
        """Samples per latent frame: ``prod(ratios)``."""
        return math.prod(self.ratios)

    def frame_rate(self, sample_rate: int) -> float:
        """Latent frames per second at ``sample_rate`` Hz: ``sample_rate / hop_length``."""
        return sample_rate / self.hop_length

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """[B, dimension, F] -> [B, channels, F * hop_length]."""
        _check_input(z, self.dimension, "SEANetDecoder", "latent frames")
        return self.model(z)
