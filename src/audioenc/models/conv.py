"""Streamable 1-d convolutions: all padding arithmetic of the codec lives in this module.

A SEANet encoder stacks stride-1 and strided convolutions; its decoder mirrors them with
transposed convolutions. For the decoder to give back exactly ``frames * hop`` samples and
for the encoder to give exactly ``ceil(T / hop)`` frames, every layer pads its input the same
way (EnCodec's scheme):

* a convolution with effective kernel ``k = (kernel_size - 1) * dilation + 1`` and stride ``s``
  gets ``padding_total = k - s`` samples of padding, all on the left when causal, split
  ``left = padding_total - padding_total // 2``, ``right = padding_total // 2`` otherwise;
* plus ``extra`` samples on the right so that the last window is complete
  (:func:`extra_padding_for_conv1d`), which makes the output exactly ``ceil(T / s)`` frames;
* a transposed convolution removes the same ``padding_total = k - s`` samples from its output
  (:func:`conv_transpose1d_unpaddings`), which makes the output exactly ``frames * s`` samples.

Models never compute a padding themselves; they compose :class:`StreamableConv1d`,
:class:`StreamableConvTranspose1d` and :class:`StreamableLSTM`.

Streaming: each of the three layers is a :class:`~audioenc.models.streaming.StreamingLayer` and
steps itself over consecutive chunks with an explicit state (``step(x, state) -> (y, state)``): the
convolution keeps its last ``k - s`` input samples, the transposed convolution its ``k - s``
overlap-add tail, the LSTM its ``(h, c)``. A step computes exactly what the one-shot pass computes
at those positions, so chunked = one-shot up to float rounding. The length arithmetic is written
with non-negative integer operations only (no ``max``, no floor division of negative numbers), so
that ``torch.export`` keeps it symbolic and an exported graph pads every length as PyTorch does.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from audioenc.errors import UserError
from audioenc.models.streaming import StreamingLayer, StreamState

NORMS = ("weight_norm", "none")
PAD_MODES = ("reflect", "constant", "replicate")


def _check_norm(norm: str, where: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"{where}: norm={norm!r} is not supported; use one of {NORMS}.")


def _apply_norm(module: nn.Module, norm: str) -> nn.Module:
    """Wrap ``module``'s weight in a weight-norm parametrization (``w = g * v / ||v||``, the
    norm taken over every dimension except dim 0) when ``norm == 'weight_norm'``."""
    if norm == "weight_norm":
        return weight_norm(module, name="weight", dim=0)
    return module


def extra_padding_for_conv1d(length: int, kernel_size: int, stride: int, padding_total: int = 0) -> int:
    """Samples to append on the right so that the last convolution window is complete.

    A convolution over ``length + padding_total`` samples yields
    ``n = ceil((length + padding_total - kernel_size) / stride) + 1`` frames once the input is
    extended to ``ideal = (n - 1) * stride + kernel_size - padding_total`` samples; the answer is
    ``ideal - length`` (in ``[0, stride)``
    for the streamable case ``padding_total = kernel_size - stride``). Without it the trailing samples that do not fill
    a whole window are dropped and a transposed convolution cannot rebuild them.

    Args:
        length: input length in samples (>= 1).
        kernel_size: effective kernel size in samples (dilation already applied).
        stride: stride in samples.
        padding_total: the fixed padding the caller adds anyway (left + right).

    Returns:
        The number of samples to add at the end (int >= 0).
    """
    if length < 1:
        raise ValueError(f"extra_padding_for_conv1d: length={length}; the input needs at least one sample.")
    if kernel_size < 1 or stride < 1 or padding_total < 0:
        raise ValueError(
            f"extra_padding_for_conv1d: kernel_size={kernel_size}, stride={stride}, "
            f"padding_total={padding_total}; need kernel_size >= 1, stride >= 1, padding_total >= 0."
        )
    span = length + padding_total - kernel_size
    # Integer ceiling division (exact, unlike float division for long inputs).
    n_frames = max(-(-span // stride) + 1, 1)
    ideal_length = (n_frames - 1) * stride + kernel_size - padding_total
    return max(ideal_length - length, 0)


def conv1d_paddings(
    length: int, kernel_size: int, stride: int = 1, dilation: int = 1, causal: bool = False
) -> tuple[int, int]:
    """(left, right) padding in samples that :class:`StreamableConv1d` adds to an input of ``length``.

    With effective kernel ``k = (kernel_size - 1) * dilation + 1`` and ``p = k - stride``:
    causal: ``(p, extra)``; non-causal: ``(p - p // 2, p // 2 + extra)``, where ``extra`` is
    :func:`extra_padding_for_conv1d`. The convolution then returns ``ceil(length / stride)`` frames.
    """
    effective_kernel = (kernel_size - 1) * dilation + 1
    padding_total = effective_kernel - stride
    if padding_total < 0:
        raise ValueError(
            f"conv1d_paddings: effective kernel {effective_kernel} is smaller than stride {stride}; "
            "such a convolution skips samples and cannot be streamed; use kernel_size >= stride."
        )
    extra = streamable_extra_padding(length, stride)
    if causal:
        return padding_total, extra
    right = padding_total // 2
    return padding_total - right, right + extra


def streamable_extra_padding(length: int, stride: int) -> int:
    """:func:`extra_padding_for_conv1d` for the streamable case ``padding_total = kernel - stride``.

    There the padded input holds ``n = ceil(length / stride)`` windows once it is
    ``n * stride - length`` samples longer, i.e. ``extra = (stride - length mod stride) mod stride``
    (tests check it against the general formula). Written with non-negative operands only, so a
    symbolic ``length`` (``torch.export``) stays one exact expression for every length.
    """
    return (stride - length % stride) % stride


def conv_transpose1d_unpaddings(
    kernel_size: int, stride: int, causal: bool = False, trim_right_ratio: float = 1.0
) -> tuple[int, int]:
    """(left, right) samples that :class:`StreamableConvTranspose1d` removes from its raw output.

    The raw output of ``F`` frames is ``(F - 1) * stride + kernel_size`` samples; removing
    ``p = kernel_size - stride`` leaves exactly ``F * stride``. Causal: ``right = ceil(p * r)``,
    ``left = p - right`` with ``r = trim_right_ratio`` (r = 1 trims only on the right, so no output
    sample waits for a future frame). Non-causal: ``right = p // 2``, ``left = p - right``.
    """
    padding_total = kernel_size - stride
    if padding_total < 0:
        raise ValueError(
            f"conv_transpose1d_unpaddings: kernel_size={kernel_size} < stride={stride} leaves gaps in "
            "the output; use kernel_size >= stride."
        )
    if causal:
        right = math.ceil(padding_total * trim_right_ratio)
    else:
        right = padding_total // 2
    return padding_total - right, right


def pad1d(x: torch.Tensor, paddings: tuple[int, int], mode: str = "constant", value: float = 0.0) -> torch.Tensor:
    """Pad the last axis of ``x`` ([..., time]) by ``(left, right)`` samples.

    Like :func:`torch.nn.functional.pad`, except that ``mode='reflect'`` also works when a pad is
    as long as or longer than the input (torch refuses that): zeros are appended first so that the
    signal is longer than the largest pad, the result is reflected, and the appended zeros are cut
    from the end again. The output always has ``time + left + right`` samples.

    Args:
        x: tensor [..., time].
        paddings: (left, right) in samples, both >= 0.
        mode: 'constant', 'reflect' or 'replicate'.
        value: fill value for 'constant'.
    """
    left, right = paddings
    if left < 0 or right < 0:
        raise ValueError(f"pad1d: paddings={paddings}; both must be >= 0.")
    if mode not in PAD_MODES:
        raise ValueError(f"pad1d: mode={mode!r} is not supported; use one of {PAD_MODES}.")
    if mode == "constant":
        return F.pad(x, (left, right), mode="constant", value=value)
    if mode == "replicate":
        return F.pad(x, (left, right), mode="replicate")
    # Reflection needs pad < length: lengthen a short input with zeros, remove them afterwards.
    # torch.sym_max instead of a branch: an exported graph (symbolic length) handles both cases.
    zeros_added = torch.sym_max(torch.sym_max(left, right) - x.shape[-1] + 1, 0)
    if not isinstance(zeros_added, int) or zeros_added:  # eager and long enough: no copy
        x = F.pad(x, (0, zeros_added))
    padded = F.pad(x, (left, right), mode="reflect")
    return padded[..., : padded.shape[-1] - zeros_added]


def unpad1d(x: torch.Tensor, paddings: tuple[int, int]) -> torch.Tensor:
    """Remove ``(left, right)`` samples from the last axis of ``x`` ([..., time]).

    Works for zero paddings too (``x[..., left:-0]`` would be empty; this returns ``x``).
    """
    left, right = paddings
    if left < 0 or right < 0:
        raise ValueError(f"unpad1d: paddings={paddings}; both must be >= 0.")
    if left + right > x.shape[-1]:
        raise ValueError(f"unpad1d: cannot remove {left}+{right} samples from a signal of {x.shape[-1]}.")
    return x[..., left : x.shape[-1] - right]


class StreamableConv1d(StreamingLayer):
    """1-d convolution that pads its own input so that output length is ``ceil(T / stride)``.

    ``[B, in_channels, T] -> [B, out_channels, ceil(T / stride)]``.

    Padding (see :func:`conv1d_paddings`): with effective kernel ``k = (kernel_size - 1) * dilation
    + 1`` the input gets ``p = k - stride`` samples of context, all on the left when ``causal``
    (output frame ``n`` then sees only input samples ``< (n + 1) * stride``), centred otherwise,
    plus ``extra < stride`` samples on the right so the last window is complete.

    Causality caveat (as in EnCodec): with ``pad_mode='reflect'`` the left padding of a causal
    convolution mirrors samples ``1..p``, so the first few outputs depend on a few samples after
    their window. ``pad_mode='constant'`` makes every output strictly causal.

    Streaming (causal only): the state is the last ``p`` input samples ``[B, in_channels, p]``
    (no tensor when ``p = 0``). A chunk of ``L`` samples is convolved as ``[state | L new]`` plus
    ``extra`` right padding (0 when ``L`` is a multiple of the stride), giving ``ceil(L / stride)``
    outputs: the one-shot outputs at those positions, since each window sees the same ``k`` inputs.
    The first chunk (``state=None``) gets the one-shot left padding; with 'constant' that equals
    the zero state, with 'reflect'/'replicate' it mirrors the chunk, which must then be longer than
    ``p``. Only the last chunk of a signal may have a length that is not a multiple of the stride.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: kernel size in samples (before dilation).
        stride: stride in samples.
        dilation: kernel dilation.
        groups: grouped convolution.
        bias: add a learned bias.
        causal: all padding on the left.
        norm: 'weight_norm' (``w = g * v / ||v||``, one gain per output channel) or 'none'.
        pad_mode: how the padding is filled: 'reflect', 'constant' (zeros) or 'replicate'.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
    ) -> None:
        _check_norm(norm, "StreamableConv1d")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"StreamableConv1d: pad_mode={pad_mode!r} is not supported; use one of {PAD_MODES}.")
        if (kernel_size - 1) * dilation + 1 < stride:
            raise ValueError(
                f"StreamableConv1d: kernel_size={kernel_size}, dilation={dilation} is shorter than "
                f"stride={stride}; samples would be skipped. Use a kernel at least as long as the stride."
            )
        super().__init__()
        self.conv = _apply_norm(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation, groups=groups, bias=bias),
            norm,
        )
        self.causal = causal
        self.norm = norm
        self.pad_mode = pad_mode

    def paddings(self, length: int) -> tuple[int, int]:
        """(left, right) padding in samples for an input of ``length`` samples."""
        return conv1d_paddings(
            length, self.conv.kernel_size[0], self.conv.stride[0], self.conv.dilation[0], self.causal
        )

    @property
    def context_size(self) -> int:
        """``p = (kernel_size - 1) * dilation + 1 - stride``: past input samples each chunk needs."""
        return (self.conv.kernel_size[0] - 1) * self.conv.dilation[0] + 1 - self.conv.stride[0]

    @property
    def state_size(self) -> int:
        return 1 if self.context_size > 0 else 0

    def one_shot(self, x: torch.Tensor) -> torch.Tensor:
        """[B, in_channels, T] -> [B, out_channels, ceil(T / stride)]."""
        x = pad1d(x, self.paddings(x.shape[-1]), mode=self.pad_mode)
        return self.conv(x)

    def _check_streamable(self) -> None:
        if not self.causal:
            raise UserError(
                "Streaming: the model is not causal (a convolution pads on the right), so it needs the "
                "whole signal at once; encode it in a single final chunk."
            )

    def initial_state(self, batch: int, dtype: torch.dtype, device: torch.device | str) -> StreamState:
        """Zeros ``[batch, in_channels, p]``: the first chunk's left padding for ``pad_mode='constant'``."""
        self._check_streamable()
        if self.pad_mode != "constant":
            raise UserError(
                f"Streaming: pad_mode={self.pad_mode!r} pads the first chunk with its own mirrored samples, so "
                "the state before it is not a fixed tensor; start from state=None, or use pad_mode='constant'."
            )
        if not self.state_size:
            return ()
        return (torch.zeros(batch, self.conv.in_channels, self.context_size, dtype=dtype, device=device),)

    def step(self, x: torch.Tensor, state: StreamState | None) -> tuple[torch.Tensor, StreamState]:
        """Next chunk ``[B, in_channels, L]`` -> ``([B, out_channels, ceil(L / stride)], new_state)``."""
        self._check_streamable()
        p = self.context_size
        if state is None:
            if self.pad_mode != "constant" and x.shape[-1] <= p:
                raise UserError(
                    f"Streaming: the first chunk is only {x.shape[-1]} samples long at a layer with {p} samples "
                    f"of {self.pad_mode!r} left padding; use chunks of more frames (or pad_mode='constant')."
                )
            context = pad1d(x, (p, 0), mode=self.pad_mode)
        elif p:
            context = torch.cat([state[0], x], dim=-1)
        else:
            context = x
        new_state = (context[..., context.shape[-1] - p :],) if p else ()
        # Same right padding as the one-shot pass gives the whole signal: 0 for a chunk that is a
        # multiple of the stride; for the last chunk, what the signal's end needs. Padding the
        # context (not x) lets 'reflect'/'replicate' see the true last samples.
        context = pad1d(context, (0, streamable_extra_padding(x.shape[-1], self.conv.stride[0])), mode=self.pad_mode)
        return self.conv(context), new_state


class StreamableConvTranspose1d(StreamingLayer):
    """1-d transposed convolution whose output is exactly ``frames * stride`` samples long.

    ``[B, in_channels, F] -> [B, out_channels, F * stride]``.

    The raw transposed convolution gives ``(F - 1) * stride + kernel_size`` samples; the
    ``p = kernel_size - stride`` overhanging samples are removed (see
    :func:`conv_transpose1d_unpaddings`): split as in :class:`StreamableConv1d` when not causal;
    when causal, ``ceil(p * trim_right_ratio)`` from the right and the rest from the left. The
    extra right padding a matching encoder layer added is not removed here; the codec trims the
    final output to the input length.

    Streaming (causal, ``trim_right_ratio = 1``, so no output waits for a later frame): the state
    is the overlap-add tail ``[B, out_channels, k - s]`` of the raw output beyond the chunk's
    ``F * stride`` samples, added to the start of the next chunk's raw output; the bias is added
    once, after the overlap-add (a bias in the tail would count twice).

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: kernel size in samples.
        stride: upsampling factor.
        causal: trim according to ``trim_right_ratio`` instead of symmetrically.
        norm: 'weight_norm' (one gain per *input* channel, dim 0 of the [in, out, k] weight) or 'none'.
        trim_right_ratio: share of the trimming done on the right, in [0, 1]; only causal layers
            may use a value other than 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        causal: bool = False,
        norm: str = "weight_norm",
        trim_right_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        _check_norm(norm, "StreamableConvTranspose1d")
        if not 0.0 <= trim_right_ratio <= 1.0:
            raise ValueError(f"StreamableConvTranspose1d: trim_right_ratio={trim_right_ratio} must lie in [0, 1].")
        if not causal and trim_right_ratio != 1.0:
            raise ValueError(
                f"StreamableConvTranspose1d: trim_right_ratio={trim_right_ratio} only applies to causal "
                "layers (non-causal layers trim symmetrically); set causal=True or trim_right_ratio=1.0."
            )
        if kernel_size < stride:
            raise ValueError(
                f"StreamableConvTranspose1d: kernel_size={kernel_size} < stride={stride} leaves gaps; "
                "use kernel_size >= stride."
            )
        self.convtr = _apply_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride), norm)
        self.causal = causal
        self.norm = norm
        self.trim_right_ratio = trim_right_ratio

    def unpaddings(self) -> tuple[int, int]:
        """(left, right) samples removed from the raw transposed-convolution output."""
        return conv_transpose1d_unpaddings(
            self.convtr.kernel_size[0], self.convtr.stride[0], self.causal, self.trim_right_ratio
        )

    @property
    def overlap(self) -> int:
        """``kernel_size - stride``: raw output samples that spill into the next chunk."""
        return self.convtr.kernel_size[0] - self.convtr.stride[0]

    @property
    def state_size(self) -> int:
        return 1 if self.overlap > 0 else 0

    def one_shot(self, x: torch.Tensor) -> torch.Tensor:
        """[B, in_channels, F] -> [B, out_channels, F * stride]."""
        return unpad1d(self.convtr(x), self.unpaddings())

    def _check_streamable(self) -> None:
        if not self.causal or self.unpaddings()[0] != 0:
            raise UserError(
                "Streaming: a transposed convolution trims its output on the left (non-causal, or "
                "trim_right_ratio < 1), so its output waits for future frames; decode in a single chunk."
            )

    def initial_state(self, batch: int, dtype: torch.dtype, device: torch.device | str) -> StreamState:
        """Zeros ``[batch, out_channels, k - s]``: nothing to overlap before the first frame."""
        self._check_streamable()
        if not self.state_size:
            return ()
        return (torch.zeros(batch, self.convtr.out_channels, self.overlap, dtype=dtype, device=device),)

    def step(self, x: torch.Tensor, state: StreamState | None) -> tuple[torch.Tensor, StreamState]:
        """Next frames ``[B, in_channels, F]`` -> ``([B, out_channels, F * stride], new_state)``."""
        self._check_streamable()
        convtr = self.convtr
        stride = convtr.stride[0]
        raw = F.conv_transpose1d(x, convtr.weight, None, stride, 0, 0, convtr.groups, convtr.dilation[0])
        if state is not None and self.overlap:
            raw = torch.cat([raw[..., : self.overlap] + state[0], raw[..., self.overlap :]], dim=-1)
        emitted = x.shape[-1] * stride
        new_state = (raw[..., emitted:],) if self.overlap else ()  # k - s samples: the one-shot's right trim
        out = raw[..., :emitted]
        if convtr.bias is not None:
            out = out + convtr.bias[:, None]
        return out, new_state


class StreamableLSTM(StreamingLayer):
    """Unidirectional LSTM over the time axis of a [B, D, T] tensor, with an optional skip.

    ``y[:, :, t] = LSTM(x[:, :, :t + 1])[t] + x[:, :, t]`` (the skip term only when ``skip``):
    the recurrence runs over time, independently per batch item, so output ``t`` depends on
    inputs ``0..t`` of the same item only (causal).

    Streaming: the state is ``(h, c)``, each ``[num_layers, B, D]`` (zeros before the first
    step, as ``nn.LSTM`` starts); the recurrence continues exactly where it stopped.

    Args:
        dimension: D, input and hidden size.
        num_layers: stacked LSTM layers.
        skip: add the input to the output (residual connection).
    """

    def __init__(self, dimension: int, num_layers: int = 2, skip: bool = True) -> None:
        super().__init__()
        self.skip = skip
        # batch_first: [B, T, D] so the recurrence is over T, never over the batch.
        self.lstm = nn.LSTM(dimension, dimension, num_layers, batch_first=True)

    @property
    def state_size(self) -> int:
        return 2

    def one_shot(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D, T] -> [B, D, T]."""
        return self.step(x, None)[0]

    def initial_state(self, batch: int, dtype: torch.dtype, device: torch.device | str) -> StreamState:
        """``(h, c)`` zeros, each ``[num_layers, batch, D]``."""
        shape = (self.lstm.num_layers, batch, self.lstm.hidden_size)
        return torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)

    def step(self, x: torch.Tensor, state: StreamState | None) -> tuple[torch.Tensor, StreamState]:
        """Next chunk ``[B, D, T]`` -> ``([B, D, T], (h, c))``."""
        if x.dim() != 3 or x.shape[1] != self.lstm.input_size:
            raise ValueError(f"StreamableLSTM: expected [batch, {self.lstm.input_size}, time], got {tuple(x.shape)}.")
        sequence = x.transpose(1, 2)
        y, (h, c) = self.lstm(sequence, None if state is None else tuple(state))
        if self.skip:
            y = y + sequence
        return y.transpose(1, 2), (h, c)
