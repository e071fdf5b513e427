"""Tests for audioenc.models.streaming and the layers' own steps (models/conv.py).

Reference: each layer's one-shot forward on the whole signal, in float64, so chunked and one-shot
agree to rounding of float64 sums (asserted: atol 1e-12 on values of order 1). Chunks are
multiples of the layer's stride except the last, which has any length (the contract).
"""

from __future__ import annotations

import pytest
import torch

from audioenc.config import ModelConfig
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel
from audioenc.models.conv import (
    StreamableConv1d,
    StreamableConvTranspose1d,
    StreamableLSTM,
    extra_padding_for_conv1d,
    streamable_extra_padding,
)
from audioenc.models.streaming import initial_state, state_names, state_numel, stream_step, streaming_layers

ATOL = 1e-12


def _signal(channels: int, length: int, seed: int = 0, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, channels, length, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _chunked(layer, x: torch.Tensor, sizes: list[int], state=None) -> torch.Tensor:
    """Run ``layer.step`` over consecutive chunks of ``sizes`` (the rest of ``x`` is the last chunk)."""
    parts, position = [], 0
    for size in sizes:
        y, state = layer.step(x[..., position : position + size], state)
        parts.append(y)
        position += size
    y, _ = layer.step(x[..., position:], state)
    return torch.cat([*parts, y], dim=-1)


def test_streamable_extra_padding_equals_the_general_formula():
    for stride in (1, 2, 3, 4, 5, 8):
        for kernel in (stride, 2 * stride, 2 * stride + 3):
            for length in range(1, 60):
                assert streamable_extra_padding(length, stride) == extra_padding_for_conv1d(
                    length, kernel, stride, kernel - stride
                ), (length, kernel, stride)


@pytest.mark.parametrize("kernel_size,stride,dilation", [(7, 1, 1), (3, 1, 4), (4, 2, 1), (10, 5, 1), (1, 1, 1)])
@pytest.mark.parametrize("pad_mode", ["constant", "reflect", "replicate"])
def test_conv_steps_equal_one_shot(kernel_size, stride, dilation, pad_mode):
    conv = StreamableConv1d(3, 5, kernel_size, stride, dilation, causal=True, pad_mode=pad_mode).double()
    x = _signal(3, 23 * stride + stride // 2 + 1)  # the last chunk is not a multiple of the stride
    with torch.no_grad():
        reference = conv(x)
        streamed = _chunked(conv, x, [12 * stride, stride, 3 * stride, stride])  # first chunk longer than the pad
    assert streamed.shape == reference.shape
    torch.testing.assert_close(streamed, reference, rtol=0, atol=ATOL)


def test_conv_zero_state_is_the_first_chunks_padding_for_constant_mode():
    conv = StreamableConv1d(2, 4, 4, 2, causal=True, pad_mode="constant").double()
    x = _signal(2, 12)
    with torch.no_grad():
        fresh, fresh_state = conv.step(x, None)
        zero, zero_state = conv.step(x, conv.initial_state(2, torch.float64, "cpu"))
    assert zero_state[0].shape == (2, 2, 2)  # p = k - s = 2 past samples
    torch.testing.assert_close(fresh, zero, rtol=0, atol=0)
    torch.testing.assert_close(fresh_state[0], zero_state[0], rtol=0, atol=0)


def test_conv_streaming_errors_are_clear():
    with pytest.raises(UserError, match="not causal"):
        StreamableConv1d(1, 1, 3, causal=False).step(torch.zeros(1, 1, 8), None)
    reflect = StreamableConv1d(1, 1, 7, causal=True, pad_mode="reflect")
    with pytest.raises(UserError, match="first chunk is only 4 samples"):
        reflect.step(torch.zeros(1, 1, 4), None)
    with pytest.raises(UserError, match="start from state=None"):
        reflect.initial_state(1, torch.float32, "cpu")
    assert StreamableConv1d(1, 1, 1, causal=True).state_size == 0


@pytest.mark.parametrize("kernel_size,stride", [(4, 2), (10, 5), (16, 8), (3, 3)])
def test_conv_transpose_steps_equal_one_shot(kernel_size, stride):
    layer = StreamableConvTranspose1d(4, 3, kernel_size, stride, causal=True).double()
    z = _signal(4, 23)
    with torch.no_grad():
        reference = layer(z)
        streamed = _chunked(layer, z, [1, 5, 2, 7])
        from_zeros = _chunked(layer, z, [3], layer.initial_state(2, torch.float64, "cpu"))
    torch.testing.assert_close(streamed, reference, rtol=0, atol=ATOL)
    torch.testing.assert_close(from_zeros, reference, rtol=0, atol=ATOL)


def test_conv_transpose_that_trims_on_the_left_cannot_stream():
    with pytest.raises(UserError, match="trims its output on the left"):
        StreamableConvTranspose1d(1, 1, 4, 2, causal=True, trim_right_ratio=0.5).step(torch.zeros(1, 1, 3), None)
    with pytest.raises(UserError, match="trims its output on the left"):
        StreamableConvTranspose1d(1, 1, 4, 2, causal=False).step(torch.zeros(1, 1, 3), None)


def test_lstm_steps_equal_one_shot():
    layer = StreamableLSTM(6, num_layers=2).double()
    x = _signal(6, 31)
    with torch.no_grad():
        reference = layer(x)
        streamed = _chunked(layer, x, [1, 10, 4])
        from_zeros = _chunked(layer, x, [9], layer.initial_state(2, torch.float64, "cpu"))
    torch.testing.assert_close(streamed, reference, rtol=0, atol=ATOL)
    torch.testing.assert_close(from_zeros, reference, rtol=0, atol=ATOL)


def _codec(**overrides) -> CodecModel:
    torch.manual_seed(0)
    options = dict(n_filters=4, dimension=8, ratios=(4, 2), lstm=1, normalize=False)
    options.update(overrides)
    return CodecModel.from_config(ModelConfig(**options)).double().eval()


@pytest.mark.parametrize("true_skip", [True, False])
def test_codec_encode_and_decode_streams_equal_one_shot(true_skip):
    """The whole SEANet composes its layers' steps through its ordinary forward (residual sums,
    Sequential, activations): chunked = one-shot in float64."""
    model = _codec(true_skip=true_skip)
    hop = model.hop_length
    audio = _signal(1, 21 * hop + 5)
    with torch.no_grad():
        latents = model.encoder(audio)
        decoded = model.decoder(latents)
        state, parts = model.initial_encoder_state(2, torch.float64), []
        for start in range(0, 18 * hop, 3 * hop):
            part, state = model.encode_stream(audio[..., start : start + 3 * hop], state)
            parts.append(part)
        part, _ = model.encode_stream(audio[..., 18 * hop :], state)
        streamed = torch.cat([*parts, part], dim=-1)
        state, audio_parts = None, []
        for start in range(0, latents.shape[-1], 4):
            chunk, state = model.decode_stream(latents[..., start : start + 4], state)
            audio_parts.append(chunk)
    assert streamed.shape == latents.shape == (2, 8, 22)
    torch.testing.assert_close(streamed, latents, rtol=0, atol=ATOL)
    torch.testing.assert_close(torch.cat(audio_parts, dim=-1), decoded, rtol=0, atol=ATOL)


def test_state_is_flat_named_and_checked():
    model = _codec()
    state = initial_state(model.encoder, 3, torch.float64)
    layers = streaming_layers(model.encoder)
    assert len(state) == sum(layer.state_size for layer in layers) == len(state_names(model.encoder))
    assert state_numel(state) == sum(t.numel() for t in state) and state_numel(None) == 0
    with pytest.raises(ValueError, match="the state has 1 tensors"):
        stream_step(model.encoder, _signal(1, 8, batch=3), state[:1])
    assert all(layer._slot is None for layer in layers)  # nothing left attached after an error


def test_non_causal_codec_cannot_stream():
    model = _codec(causal=False, pad_mode="reflect")
    with pytest.raises(UserError, match="not causal"):
        model.encode_stream(_signal(1, 64), None)
