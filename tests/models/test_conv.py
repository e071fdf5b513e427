"""Tests for audioenc.models.conv: padding arithmetic, streamable convolutions, the LSTM."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from audioenc.models.conv import (
    StreamableConv1d,
    StreamableConvTranspose1d,
    StreamableLSTM,
    conv1d_paddings,
    conv_transpose1d_unpaddings,
    extra_padding_for_conv1d,
    pad1d,
    unpad1d,
)


def _random_lengths(count: int, low: int, high: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high + 1, (count,), generator=generator).tolist()


def _brute_force_extra(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Reference: the smallest e >= 0 such that length + padding_total + e covers whole windows,
    i.e. is >= kernel_size and (length + padding_total + e - kernel_size) % stride == 0."""
    extra = 0
    while True:
        padded = length + padding_total + extra
        if padded >= kernel_size and (padded - kernel_size) % stride == 0:
            return extra
        extra += 1


@pytest.mark.parametrize("kernel_size,stride", [(7, 1), (4, 2), (8, 4), (10, 5), (16, 8), (3, 3), (5, 2)])
def test_extra_padding_matches_brute_force(kernel_size: int, stride: int) -> None:
    for padding_total in (0, kernel_size - stride, kernel_size + 3):
        for length in range(1, 120):
            assert extra_padding_for_conv1d(length, kernel_size, stride, padding_total) == _brute_force_extra(
                length, kernel_size, stride, padding_total
            ), (length, kernel_size, stride, padding_total)


def test_extra_padding_hand_example() -> None:
    # Hand computation: kernel 4, stride 2, fixed padding 2: 5 + 2 = 7 samples hold windows at
    # 0, 2 and a partial one at 4..7; one extra sample completes it.
    assert extra_padding_for_conv1d(5, 4, 2, 2) == 1
    # Kernel 16, stride 8, padding 8, one sample: 9 < 16, so 7 samples are needed.
    assert extra_padding_for_conv1d(1, 16, 8, 8) == 7
    with pytest.raises(ValueError, match="at least one sample"):
        extra_padding_for_conv1d(0, 4, 2, 2)


def test_conv1d_paddings_by_hand() -> None:
    # kernel 3, dilation 2 -> effective kernel 5, p = 4; length 10 needs no extra.
    assert conv1d_paddings(10, 3, 1, 2, causal=True) == (4, 0)
    assert conv1d_paddings(10, 3, 1, 2, causal=False) == (2, 2)
    # kernel 10, stride 5 -> p = 5 (odd: the extra sample of the split goes left); length 12:
    # 12 + 5 = 17, windows at 0, 5 need 20 -> extra 3.
    assert conv1d_paddings(12, 10, 5, 1, causal=False) == (3, 2 + 3)
    assert conv1d_paddings(12, 10, 5, 1, causal=True) == (5, 3)


def test_conv_transpose1d_unpaddings_by_hand() -> None:
    # kernel 16, stride 8 -> 8 samples to remove.
    assert conv_transpose1d_unpaddings(16, 8, causal=True, trim_right_ratio=1.0) == (0, 8)
    assert conv_transpose1d_unpaddings(16, 8, causal=True, trim_right_ratio=0.5) == (4, 4)
    assert conv_transpose1d_unpaddings(16, 8, causal=True, trim_right_ratio=0.3) == (5, 3)  # ceil(2.4)
    assert conv_transpose1d_unpaddings(10, 5, causal=False) == (3, 2)


def test_pad1d_reflect_shorter_than_pad_hand_values() -> None:
    # Hand computation: [1, 2] + two zeros = [1, 2, 0, 0]; reflect by 3 on both sides:
    # [0, 0, 2 | 1, 2, 0, 0 | 0, 2, 1]; remove the 2 added zeros from the end.
    x = torch.tensor([[[1.0, 2.0]]])
    assert pad1d(x, (3, 3), mode="reflect").flatten().tolist() == [0, 0, 2, 1, 2, 0, 0, 0]
    # One sample, six on the left: [5, 0 x 6] reflected by 6 gives zeros, then the sample.
    single = torch.tensor([[[5.0]]])
    assert pad1d(single, (6, 0), mode="reflect").flatten().tolist() == [0, 0, 0, 0, 0, 0, 5]


def test_pad1d_long_input_equals_torch_pad() -> None:
    # Reference: torch's own padding when the input is long enough for it.
    x = torch.randn(2, 3, 20, generator=torch.Generator().manual_seed(0))
    for mode in ("reflect", "replicate", "constant"):
        assert torch.equal(pad1d(x, (4, 7), mode=mode), F.pad(x, (4, 7), mode=mode))


def test_pad1d_and_unpad1d_errors_and_zero_padding() -> None:
    x = torch.arange(6.0).reshape(1, 1, 6)
    assert torch.equal(unpad1d(x, (0, 0)), x)
    assert unpad1d(x, (1, 2)).flatten().tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="cannot remove"):
        unpad1d(x, (4, 3))
    with pytest.raises(ValueError, match=">= 0"):
        pad1d(x, (-1, 0))
    with pytest.raises(ValueError, match="not supported"):
        pad1d(x, (1, 1), mode="circular")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant", "replicate"])
@pytest.mark.parametrize("kernel_size,stride,dilation", [(7, 1, 1), (3, 1, 4), (4, 2, 1), (10, 5, 1), (16, 8, 1)])
def test_conv1d_output_length_is_ceil(
    causal: bool, pad_mode: str, kernel_size: int, stride: int, dilation: int
) -> None:
    torch.manual_seed(0)
    conv = StreamableConv1d(2, 3, kernel_size, stride=stride, dilation=dilation, causal=causal, pad_mode=pad_mode)
    for length in [1, 2, 3] + _random_lengths(30, 1, 5000, seed=kernel_size * 10 + stride):
        y = conv(torch.randn(1, 2, length))
        assert y.shape == (1, 3, math.ceil(length / stride)), (length, y.shape)


def test_conv1d_non_causal_equals_centered_torch_conv() -> None:
    # Reference: F.conv1d with symmetric zero padding (kernel 7, stride 1 -> 3 each side).
    torch.manual_seed(0)
    conv = StreamableConv1d(2, 4, 7, causal=False, pad_mode="constant", norm="none")
    x = torch.randn(3, 2, 50)
    expected = F.conv1d(x, conv.conv.weight, conv.conv.bias, padding=3)
    torch.testing.assert_close(conv(x), expected)


def test_conv1d_causal_receptive_field_exact() -> None:
    # Hand derivation: with p = k_eff - s zeros on the left, output n reads input samples
    # [(n + 1) * s - k_eff, (n + 1) * s - 1], clipped to the signal.
    torch.manual_seed(0)
    kernel_size, stride, dilation, length = 3, 2, 2, 23  # k_eff = 5
    conv = StreamableConv1d(
        1, 1, kernel_size, stride=stride, dilation=dilation, causal=True, pad_mode="constant", norm="none", bias=False
    )
    with torch.no_grad():
        conv.conv.weight.copy_(torch.tensor([[[1.0, 2.0, 3.0]]]))  # every tap non-zero
    x = torch.randn(1, 1, length, requires_grad=True)
    y = conv(x)
    effective = (kernel_size - 1) * dilation + 1
    for n in range(y.shape[-1]):
        (grad,) = torch.autograd.grad(y[0, 0, n], x, retain_graph=True)
        touched = set(torch.nonzero(grad[0, 0]).flatten().tolist())
        last = (n + 1) * stride - 1
        expected = {i for i in range(last - effective + 1, last + 1, dilation) if 0 <= i < length}
        assert touched == expected, (n, touched, expected)


@pytest.mark.parametrize("causal,trim_right_ratio", [(False, 1.0), (True, 1.0), (True, 0.5)])
@pytest.mark.parametrize("kernel_size,stride", [(4, 2), (10, 5), (16, 8), (3, 1)])
def test_conv_transpose_length_and_trim(causal: bool, trim_right_ratio: float, kernel_size: int, stride: int) -> None:
    torch.manual_seed(0)
    layer = StreamableConvTranspose1d(3, 2, kernel_size, stride, causal=causal, trim_right_ratio=trim_right_ratio)
    padding_total = kernel_size - stride
    # Hand-derived trims (independent of conv_transpose1d_unpaddings).
    if causal:
        right = math.ceil(padding_total * trim_right_ratio)
    else:
        right = padding_total // 2
    left = padding_total - right
    for frames in [1, 2] + _random_lengths(10, 1, 300, seed=kernel_size):
        x = torch.randn(2, 3, frames)
        y = layer(x)
        assert y.shape == (2, 2, frames * stride)
        raw = layer.convtr(x)  # untrimmed: (frames - 1) * stride + kernel_size samples
        assert raw.shape[-1] == (frames - 1) * stride + kernel_size
        torch.testing.assert_close(y, raw[..., left : left + frames * stride])


def test_conv_transpose_causal_output_depends_on_past_frames_only() -> None:
    # With trim_right_ratio = 1, output sample t is built from frames n with n * s <= t only.
    torch.manual_seed(0)
    layer = StreamableConvTranspose1d(2, 2, 10, 5, causal=True)
    x = torch.randn(1, 2, 9)
    y = layer(x)
    x_changed = x.clone()
    x_changed[..., 4:] += 1.0
    y_changed = layer(x_changed)
    assert torch.equal(y[..., : 4 * 5], y_changed[..., : 4 * 5])
    assert not torch.allclose(y[..., 4 * 5 :], y_changed[..., 4 * 5 :])


def test_weight_norm_parametrization_and_none() -> None:
    torch.manual_seed(0)
    conv = StreamableConv1d(3, 4, 5)
    names = {name for name, _ in conv.named_parameters()}
    assert names == {"conv.bias", "conv.parametrizations.weight.original0", "conv.parametrizations.weight.original1"}
    # Reference: w = g * v / ||v||, the norm over (in, k) for each output channel.
    g = conv.conv.parametrizations.weight.original0
    v = conv.conv.parametrizations.weight.original1
    assert g.shape == (4, 1, 1)
    torch.testing.assert_close(conv.conv.weight, g * v / v.norm(dim=(1, 2), keepdim=True))
    transposed = StreamableConvTranspose1d(6, 3, 4, 2)
    assert transposed.convtr.parametrizations.weight.original0.shape == (6, 1, 1)  # one gain per input channel
    plain = StreamableConv1d(3, 4, 5, norm="none")
    assert {name for name, _ in plain.named_parameters()} == {"conv.weight", "conv.bias"}


def test_invalid_configurations_raise() -> None:
    with pytest.raises(ValueError, match="norm"):
        StreamableConv1d(1, 1, 3, norm="spectral_norm")
    with pytest.raises(ValueError, match="pad_mode"):
        StreamableConv1d(1, 1, 3, pad_mode="circular")
    with pytest.raises(ValueError, match="shorter than stride"):
        StreamableConv1d(1, 1, 2, stride=4)
    with pytest.raises(ValueError, match="only applies to causal"):
        StreamableConvTranspose1d(1, 1, 4, 2, causal=False, trim_right_ratio=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        StreamableConvTranspose1d(1, 1, 4, 2, causal=True, trim_right_ratio=1.5)
    with pytest.raises(ValueError, match="kernel_size"):
        StreamableConvTranspose1d(1, 1, 2, 4)


def test_lstm_recurs_over_time_not_batch() -> None:
    torch.manual_seed(0)
    lstm = StreamableLSTM(6, num_layers=2, skip=True)
    x = torch.randn(3, 6, 12)
    y = lstm(x)
    assert y.shape == x.shape
    for t in (0, 5, 11):
        changed = x.clone()
        changed[:, :, t] += 1.0
        y_changed = lstm(changed)
        assert torch.equal(y[..., :t], y_changed[..., :t]), f"outputs before t={t} changed"
        assert not torch.allclose(y[..., t], y_changed[..., t])
        if t < 11:
            assert not torch.allclose(y[..., t + 1 :], y_changed[..., t + 1 :])
    # Batch items are independent sequences: changing item 2 leaves items 0 and 1 alone.
    other = x.clone()
    other[2] += 1.0
    assert torch.equal(lstm(other)[:2], y[:2])


def test_lstm_matches_time_major_reference() -> None:
    # Reference: the same nn.LSTM run time-major ([T, 1, D]) on each item alone, plus the skip.
    torch.manual_seed(0)
    lstm = StreamableLSTM(5, num_layers=2, skip=True)
    reference = torch.nn.LSTM(5, 5, 2)
    reference.load_state_dict(lstm.lstm.state_dict())
    x = torch.randn(2, 5, 9)
    y = lstm(x)
    for b in range(2):
        sequence = x[b].T.unsqueeze(1)  # [T, 1, D]
        expected, _ = reference(sequence)
        torch.testing.assert_close(y[b], (expected + sequence).squeeze(1).T)
    no_skip = StreamableLSTM(5, num_layers=2, skip=False)
    no_skip.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(lstm(x) - no_skip(x), x)
    with pytest.raises(ValueError, match="expected"):
        lstm(torch.randn(2, 4, 9))
