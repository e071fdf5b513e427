"""Multi-scale STFT (MS-STFT) discriminator of EnCodec.

The discriminator sees the audio through several complex STFTs (one per scale). Each scale has its
own small 2-D convolutional network over the ``[time frames, frequency bins]`` plane of the real and
imaginary parts of every audio channel. It returns, per scale, a map of logits and the activations
of each inner layer (used by feature matching).

Architecture per scale (as EnCodec / audiocraft's ``msstftd`` with the compression solver's config):

    layer 0:  2C -> F,             kernel (3, 9), stride (1, 1), no weight norm (as upstream)
    layer 1:  F -> min(s F, M),    kernel (3, 9), stride (1, 2), time dilation 1
    layer 2:  -> min(s^2 F, M),    kernel (3, 9), stride (1, 2), time dilation 2
    layer 3:  -> min(s^3 F, M),    kernel (3, 9), stride (1, 2), time dilation 4
    layer 4:  -> min(s^4 F, M),    kernel (3, 3), stride (1, 1)
    post:     -> out_channels,     kernel (3, 3), stride (1, 1), no activation (the logits)

with C the audio channels, F = ``filters``, s = ``filters_scale``, M = ``max_filters``, "same"
padding everywhere, weight normalisation on every layer but layer 0 and LeakyReLU after layers
0-4. The feature maps are the five activated outputs of layers 0-4.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from audioenc.core.mel import uncentred_stft

DEFAULT_N_FFTS: tuple[int, ...] = (1024, 2048, 512, 256, 128)
DEFAULT_HOP_LENGTHS: tuple[int, ...] = (256, 512, 128, 64, 32)
DEFAULT_WIN_LENGTHS: tuple[int, ...] = (1024, 2048, 512, 256, 128)


def same_padding_2d(kernel_size: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Symmetric padding ``(pad_time, pad_freq)`` that keeps the output size of a stride-1 conv.

    ``pad = (kernel - 1) * dilation // 2`` on each axis (odd kernels only give exact "same").
    """
    return ((kernel_size[0] - 1) * dilation[0] // 2, (kernel_size[1] - 1) * dilation[1] // 2)


def _conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    normalize_weight: bool = True,
) -> nn.Module:
    """A "same"-padded ``Conv2d``, weight-normalised (``w = g · v / ‖v‖`` per output channel) if asked."""
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        stride=stride,
        dilation=dilation,
        padding=same_padding_2d(kernel_size, dilation),
    )
    return weight_norm(conv) if normalize_weight else conv


class STFTDiscriminator(nn.Module):
    """One scale of the MS-STFT discriminator: a 2-D conv net over one complex STFT.

    Input spectrogram. For audio ``x`` of shape ``[B, C, T]`` (every audio channel is kept), the
    complex STFT ``X_c[n, k] = Σ_m x_c[n·hop + m] · w[m] · exp(-2πi·k·m / n_fft)`` is taken with a
    periodic Hann window ``w`` of ``win_length`` samples (zero-padded to ``n_fft`` in the middle),
    no centring padding (frames ``N = (T - n_fft) // hop + 1``) and ``k = 0 .. n_fft/2``. With
    ``normalized=True`` the window is divided by ``sqrt(Σ w²)``, which is what torchaudio's
    ``Spectrogram(normalized=True)`` (used upstream) does; note this differs from
    ``torch.stft(normalized=True)``, which divides by ``sqrt(n_fft)``. The network input is
    ``[Re X_1 .. Re X_C, Im X_1 .. Im X_C]`` stacked on channels, laid out as
    ``[B, 2C, N, n_fft/2 + 1]`` (time frames, then frequency), the channel order upstream uses.

    The layer table is in the module docstring. Strides ``(1, 2)`` halve the frequency axis three
    times; time is never strided, only dilated (1, 2, 4).

    Args:
        in_channels: audio channels C the discriminator accepts (1 for mono, 32 for em32 audio).
        out_channels: logit channels per position.
        filters: width F of the first layer.
        n_fft, hop_length, win_length: STFT size, hop and window length in samples.
        max_filters: cap M on any layer's width.
        filters_scale: growth s of the width per layer (1: all layers are F wide).
        kernel_size: ``(time, frequency)`` kernel of layers 0-3; layers 4 and post use
            ``(kernel_size[0], kernel_size[0])``.
        dilations: time dilations of the strided layers 1, 2, 3.
        stride: ``(time, frequency)`` stride of the strided layers.
        normalized: divide the window by ``sqrt(Σ w²)`` (see above).
        negative_slope: LeakyReLU slope. audiocraft's class default is 0.2, but its compression
            solver config (``config/solver/compression/default.yaml``, ``msstftd``) trains with 0.3;
            we default to the trained value, 0.3.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        filters: int = 32,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        max_filters: int = 1024,
        filters_scale: int = 1,
        kernel_size: tuple[int, int] = (3, 9),
        dilations: tuple[int, ...] = (1, 2, 4),
        stride: tuple[int, int] = (1, 2),
        normalized: bool = True,
        negative_slope: float = 0.3,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1 or filters < 1:
            raise ValueError(
                f"STFTDiscriminator: in_channels, out_channels and filters must be >= 1, got "
                f"{in_channels}, {out_channels}, {filters}."
            )
        if not (0 < win_length <= n_fft) or hop_length < 1:
            raise ValueError(
                f"STFTDiscriminator: need 0 < win_length <= n_fft and hop_length >= 1, got "
                f"n_fft={n_fft}, hop_length={hop_length}, win_length={win_length}."
            )
        if len(kernel_size) != 2 or len(stride) != 2:
            raise ValueError(
                f"STFTDiscriminator: kernel_size and stride are (time, frequency) pairs, got "
                f"kernel_size={kernel_size}, stride={stride}."
            )
        if negative_slope < 0:
            # In-place LeakyReLU (used below to save a copy per layer) cannot back-propagate a
            # negative slope.
            raise ValueError(f"STFTDiscriminator: negative_slope must be >= 0, got {negative_slope}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.normalized = normalized
        self.negative_slope = negative_slope

        window = torch.hann_window(win_length, periodic=True)
        if normalized:
            # Folding the normalisation into the window costs nothing per call.
            window = window / window.pow(2).sum().sqrt()
        # Derived from the arguments, so not saved in checkpoints.
        self.register_buffer("window", window, persistent=False)

        kernel_size = tuple(kernel_size)
        square_kernel = (kernel_size[0], kernel_size[0])
        layers = [_conv2d(2 * in_channels, filters, kernel_size, normalize_weight=False)]
        width = min(filters_scale * filters, max_filters)
        for index, dilation in enumerate(dilations):
            next_width = min(filters_scale ** (index + 1) * filters, max_filters)
            layers.append(_conv2d(width, next_width, kernel_size, stride=tuple(stride), dilation=(dilation, 1)))
            width = next_width
        next_width = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        layers.append(_conv2d(width, next_width, square_kernel))
        self.convs = nn.ModuleList(layers)
        self.conv_post = _conv2d(next_width, out_channels, square_kernel)

    def num_frames(self, length: int) -> int:
        """STFT frames for ``length`` samples (no centring): ``(length - n_fft) // hop + 1``."""
        return (length - self.n_fft) // self.hop_length + 1

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """Real and imaginary STFT parts stacked on channels.

        Args:
            x: audio ``[B, C, T]`` with ``C == in_channels`` and ``T >= n_fft``.

        Returns:
            ``[B, 2C, frames, n_fft // 2 + 1]``: channels ``0..C-1`` are the real parts of audio
            channels ``0..C-1``, channels ``C..2C-1`` their imaginary parts.
        """
        self._check_input(x)
        batch, channels, length = x.shape
        window = self.window if self.window.dtype == x.dtype else self.window.to(x.dtype)
        spec = uncentred_stft(
            x.reshape(batch * channels, length), self.n_fft, self.hop_length, self.win_length, window
        )  # [B*C, freq, frames]
        freqs, frames = spec.shape[-2:]
        # [B*C, freq, frames, 2] (a view) -> [B, 2(re/im), C, frames, freq]: one copy in all.
        parts = torch.view_as_real(spec).view(batch, channels, freqs, frames, 2).permute(0, 4, 1, 3, 2)
        return parts.reshape(batch, 2 * channels, frames, freqs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and feature maps of one scale.

        Args:
            x: audio ``[B, C, T]``, ``C == in_channels``, ``T >= n_fft``.

        Returns:
            ``(logits, feature_maps)``: logits ``[B, out_channels, frames, freq']`` with
            ``freq'`` the frequency bins after the strided layers (513 -> 65 for n_fft 1024);
            feature_maps, the 5 activated layer outputs ``[B, width, frames, freq_l]``.
        """
        z = self.spectrogram(x)
        feature_maps = []
        for conv in self.convs:
            # In place: a conv's backward needs its input, not its output, so the pre-activation
            # tensor is never needed again.
            z = F.leaky_relu(conv(z), self.negative_slope, inplace=True)
            feature_maps.append(z)
        return self.conv_post(z), feature_maps

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3:
            raise ValueError(f"STFTDiscriminator: expected audio [batch, channels, time], got shape {tuple(x.shape)}.")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"STFTDiscriminator: built for {self.in_channels} audio channel(s) but got audio with "
                f"{x.shape[1]} channel(s) (shape {tuple(x.shape)}). Build the discriminator with "
                f"in_channels equal to the audio's channels, e.g. "
                f"MultiScaleSTFTDiscriminator.for_audio({x.shape[1]})."
            )
        if x.shape[-1] < self.n_fft:
            raise ValueError(
                f"STFTDiscriminator: audio of {x.shape[-1]} samples is shorter than n_fft={self.n_fft}; "
                f"use segments of at least {self.n_fft} samples."
            )


class MultiScaleSTFTDiscriminator(nn.Module):
    """Multi-scale STFT discriminator: one :class:`STFTDiscriminator` per STFT resolution.

    ``D(x) = [D_k(STFT_k(x)) for k in scales]``. The default scales (EnCodec's five) are n_fft /
    hop / window = 1024/256/1024, 2048/512/2048, 512/128/512, 256/64/256, 128/32/128 samples.

    The input channels are the audio's channels: build it with :meth:`for_audio` (or pass
    ``in_channels``); a forward call with another channel count raises, instead of silently
    reading the wrong spectrogram channels (upstream leaves ``in_channels`` unrelated to the audio).

    Parameters: with F = 32 filters, ``filters_scale`` 1 and the default kernels, one scale has
    ``(2C·27·F + F) + 3·(27·F² + 2F) + (9·F² + 2F) + (9·F + 2)`` parameters (weights, biases and
    weight-norm gains), i.e. 94,466 for C = 1 and 148,034 for C = 32; 472,330 and 740,170 for the
    five scales, equal to audiocraft's ``msstftd`` at the same configuration.

    Args:
        in_channels: audio channels C.
        out_channels: logit channels per position.
        filters: width of the first layer of every scale.
        n_ffts, hop_lengths, win_lengths: one entry per scale, in samples.
        max_filters, filters_scale, kernel_size, dilations, stride, normalized, negative_slope:
            passed to every :class:`STFTDiscriminator` (see there).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        filters: int = 32,
        n_ffts: tuple[int, ...] = DEFAULT_N_FFTS,
        hop_lengths: tuple[int, ...] = DEFAULT_HOP_LENGTHS,
        win_lengths: tuple[int, ...] = DEFAULT_WIN_LENGTHS,
        max_filters: int = 1024,
        filters_scale: int = 1,
        kernel_size: tuple[int, int] = (3, 9),
        dilations: tuple[int, ...] = (1, 2, 4),
        stride: tuple[int, int] = (1, 2),
        normalized: bool = True,
        negative_slope: float = 0.3,
    ) -> None:
        super().__init__()
        if not (len(n_ffts) == len(hop_lengths) == len(win_lengths)) or len(n_ffts) == 0:
            raise ValueError(
                "MultiScaleSTFTDiscriminator: n_ffts, hop_lengths and win_lengths need one entry per "
                f"scale (same, non-zero length), got {len(n_ffts)}, {len(hop_lengths)}, {len(win_lengths)}."
            )
        self.in_channels = in_channels
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(
                in_channels=in_channels,
                out_channels=out_channels,
                filters=filters,
                n_fft=n_fft,
                hop_length=hop_length,
                win_length=win_length,
                max_filters=max_filters,
                filters_scale=filters_scale,
                kernel_size=kernel_size,
                dilations=dilations,
                stride=stride,
                normalized=normalized,
                negative_slope=negative_slope,
            )
            for n_fft, hop_length, win_length in zip(n_ffts, hop_lengths, win_lengths)
        )

    @classmethod
    def for_audio(cls, channels: int, **kwargs) -> MultiScaleSTFTDiscriminator:
        """A discriminator whose input channels are the audio's ``channels``.

        ``kwargs`` are the other constructor arguments; ``in_channels`` may not be among them.
        """
        if "in_channels" in kwargs:
            raise ValueError("MultiScaleSTFTDiscriminator.for_audio: in_channels follows `channels`; do not pass it.")
        return cls(in_channels=channels, **kwargs)

    @property
    def num_discriminators(self) -> int:
        """Number of scales."""
        return len(self.discriminators)

    @property
    def min_length(self) -> int:
        """Shortest audio (samples) every scale can take: the largest n_fft."""
        return max(disc.n_fft for disc in self.discriminators)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """Logits and feature maps of every scale.

        Args:
            x: audio ``[B, C, T]`` with ``C == in_channels`` and ``T >= min_length``.

        Returns:
            ``(logits, feature_maps)``: ``logits[k]`` is ``[B, out_channels, frames_k, freq_k]``;
            ``feature_maps[k]`` is the list of the 5 layer activations of scale k.
        """
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"MultiScaleSTFTDiscriminator: built for audio [batch, {self.in_channels}, time] but got "
                f"shape {tuple(x.shape)}. Build it with the audio's channel count, e.g. "
                f"MultiScaleSTFTDiscriminator.for_audio(channels={x.shape[1] if x.dim() == 3 else '?'})."
            )
        logits, feature_maps = [], []
        for disc in self.discriminators:
            logit, fmap = disc(x)
            logits.append(logit)
            feature_maps.append(fmap)
        return logits, feature_maps


__all__ = [
    "MultiScaleSTFTDiscriminator",
    "STFTDiscriminator",
    "same_padding_2d",
]
