"""Tests for audioenc.models.seanet: lengths, causality, parameter counts, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from audioenc.models.seanet import SEANetDecoder, SEANetEncoder

HOP = 320  # 8 * 5 * 4 * 2
SMALL = dict(n_filters=4, dimension=8)  # fast models where the width does not matter

# Published reference: audiocraft encodec_base_24khz SEANet (audiocraft/modules/seanet.py with
# config/model/encodec/default.yaml: n_filters 32, dimension 128, ratios [8, 5, 4, 2],
# n_residual_layers 1, lstm 2, weight_norm, compress 2, true_skip), counted from the reference
# implementation (facebookresearch/audiocraft commit 896ec7c4) on 2026-11-25.
AUDIOCRAFT_PARAMETER_COUNTS = {
    # channels: (encoder, decoder)
    1: (7_337_792, 7_338_018),
    32: (7_344_736, 7_345_024),
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _random_lengths(count: int, low: int, high: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high + 1, (count,), generator=generator).tolist()


# ---- closed-form parameter count, by hand from the architecture ----------------------------------
# A convolution has in * out * k weights and out biases; weight norm adds one gain per output
# channel (per *input* channel for a transposed convolution, whose weight is [in, out, k]).
# An LSTM layer of size d has 4 gates, each with d x d input and recurrent weights and two biases:
# 8 d^2 + 8 d.


def _conv(cin: int, cout: int, k: int, weight_norm: bool) -> int:
    return cin * cout * k + cout + (cout if weight_norm else 0)


def _conv_transpose(cin: int, cout: int, k: int, weight_norm: bool) -> int:
    return cin * cout * k + cout + (cin if weight_norm else 0)


def _residual_unit(d: int, kernel: int, compress: int, true_skip: bool, wn: bool) -> int:
    hidden = d // compress
    shortcut = 0 if true_skip else _conv(d, d, 1, wn)
    return _conv(d, hidden, kernel, wn) + _conv(hidden, d, 1, wn) + shortcut


def _lstm(d: int, layers: int) -> int:
    return layers * (8 * d * d + 8 * d)


def _hand_counts(
    channels: int,
    dimension: int = 128,
    n_filters: int = 32,
    n_residual_layers: int = 1,
    ratios: tuple[int, ...] = (8, 5, 4, 2),
    kernel: int = 7,
    last_kernel: int = 7,
    residual_kernel: int = 3,
    compress: int = 2,
    lstm: int = 2,
    true_skip: bool = True,
    weight_norm: bool = True,
) -> tuple[int, int]:
    wn = weight_norm
    residuals = lambda d: n_residual_layers * _residual_unit(d, residual_kernel, compress, true_skip, wn)  # noqa: E731
    encoder = _conv(channels, n_filters, kernel, wn)
    width = n_filters
    for stride in reversed(ratios):
        encoder += residuals(width) + _conv(width, 2 * width, 2 * stride, wn)
        width *= 2
    encoder += _lstm(width, lstm) + _conv(width, dimension, last_kernel, wn)

    decoder = _conv(dimension, width, kernel, wn) + _lstm(width, lstm)
    for stride in ratios:
        decoder += _conv_transpose(width, width // 2, 2 * stride, wn) + residuals(width // 2)
        width //= 2
    decoder += _conv(width, channels, last_kernel, wn)
    return encoder, decoder


@pytest.mark.parametrize("channels", [1, 32])
def test_parameter_counts_match_audiocraft(channels: int) -> None:
    torch.manual_seed(0)
    encoder, decoder = SEANetEncoder(channels=channels), SEANetDecoder(channels=channels)
    assert (_count(encoder), _count(decoder)) == AUDIOCRAFT_PARAMETER_COUNTS[channels]


def test_hand_count_of_default_encoder_by_layers() -> None:
    # Hand arithmetic, layer by layer, for channels = 1 (the sum is the audiocraft value above):
    # first conv 1*32*7+32+32 = 288; block 32/s2: 1568 + 576 + 8320 = 10464; block 64/s4:
    # 6208 + 2176 + 65792 = 74176; block 128/s5: 24704 + 8448 + 328192 = 361344; block 256/s8:
    # 98560 + 33280 + 2098176 = 2230016; LSTM 2*(8*512^2 + 8*512) = 4202496; last conv
    # 512*128*7+128+128 = 459008.
    by_hand = 288 + 10464 + 74176 + 361344 + 2230016 + 4202496 + 459008
    assert by_hand == AUDIOCRAFT_PARAMETER_COUNTS[1][0]
    assert _hand_counts(1) == AUDIOCRAFT_PARAMETER_COUNTS[1]


@pytest.mark.parametrize(
    "config",
    [
        dict(channels=1),
        dict(channels=32),
        dict(channels=2, n_filters=4, dimension=8),
        dict(channels=3, n_filters=6, dimension=10, n_residual_layers=2, ratios=(4, 3), lstm=0),
        dict(channels=2, n_filters=8, dimension=16, true_skip=False, compress=4, lstm=1),
        dict(channels=1, n_filters=4, dimension=8, kernel_size=5, last_kernel_size=3, residual_kernel_size=5),
    ],
)
@pytest.mark.parametrize("norm", ["weight_norm", "none"])
def test_parameter_count_matches_closed_form(config: dict, norm: str) -> None:
    torch.manual_seed(0)
    model_args = dict(config, norm=norm)
    hand_args = dict(
        channels=config["channels"],
        dimension=config.get("dimension", 128),
        n_filters=config.get("n_filters", 32),
        n_residual_layers=config.get("n_residual_layers", 1),
        ratios=config.get("ratios", (8, 5, 4, 2)),
        kernel=config.get("kernel_size", 7),
        last_kernel=config.get("last_kernel_size", 7),
        residual_kernel=config.get("residual_kernel_size", 3),
        compress=config.get("compress", 2),
        lstm=config.get("lstm", 2),
        true_skip=config.get("true_skip", True),
        weight_norm=norm == "weight_norm",
    )
    encoder, decoder = SEANetEncoder(**model_args), SEANetDecoder(**model_args)
    assert (_count(encoder), _count(decoder)) == _hand_counts(**hand_args)


def test_hop_length_and_frame_rate() -> None:
    encoder, decoder = SEANetEncoder(**SMALL), SEANetDecoder(**SMALL)
    assert encoder.hop_length == decoder.hop_length == HOP
    assert encoder.frame_rate(24_000) == decoder.frame_rate(24_000) == 75.0
    assert [encoder.num_frames(t) for t in (1, 320, 321, 24_000)] == [1, 1, 2, 75]
    assert SEANetEncoder(ratios=(4, 3), **SMALL).hop_length == 12


@pytest.mark.parametrize("channels", [1, 2, 32])
@pytest.mark.parametrize("causal", [False, True])
def test_encoder_output_length_is_ceil_of_hop(channels: int, causal: bool) -> None:
    torch.manual_seed(0)
    encoder = SEANetEncoder(channels=channels, causal=causal, **SMALL).eval()
    lengths = [1, 2, 3, 319, 320, 321] + _random_lengths(30, 1, 5000, seed=channels + 7 * causal)
    with torch.no_grad():
        for length in lengths:
            frames = encoder(torch.randn(1, channels, length))
            assert frames.shape == (1, 8, math.ceil(length / HOP)), (length, frames.shape)
            assert torch.isfinite(frames).all()


@pytest.mark.parametrize("channels", [1, 2, 32])
@pytest.mark.parametrize("causal", [False, True])
def test_decoder_output_length_is_frames_times_hop(channels: int, causal: bool) -> None:
    torch.manual_seed(0)
    decoder = SEANetDecoder(channels=channels, causal=causal, **SMALL).eval()
    with torch.no_grad():
        for n_frames in [1, 2] + _random_lengths(8, 1, 16, seed=channels):
            audio = decoder(torch.randn(2, 8, n_frames))
            assert audio.shape == (2, channels, n_frames * HOP)


@pytest.mark.parametrize("pad_mode", ["reflect", "constant", "replicate"])
def test_inputs_shorter_than_padding(pad_mode: str) -> None:
    # The first convolution pads 6 samples (kernel 7): a 1..5-sample input is shorter than that,
    # which torch's reflect padding alone refuses.
    torch.manual_seed(0)
    for causal in (False, True):
        encoder = SEANetEncoder(channels=2, causal=causal, pad_mode=pad_mode, **SMALL)
        decoder = SEANetDecoder(channels=2, causal=causal, pad_mode=pad_mode, **SMALL)
        for length in range(1, 6):
            frames = encoder(torch.randn(1, 2, length))
            assert frames.shape == (1, 8, 1)
            assert decoder(frames).shape == (1, 2, HOP)


def test_causal_encoder_frame_ignores_later_samples() -> None:
    # Causal with zero padding: frame k reads only samples < (k + 1) * hop.
    torch.manual_seed(0)
    encoder = SEANetEncoder(channels=2, causal=True, pad_mode="constant", **SMALL).eval()
    n_frames = 10
    audio = torch.randn(1, 2, n_frames * HOP - 37)
    with torch.no_grad():
        frames = encoder(audio)
        for k in range(n_frames - 1):
            changed = audio.clone()
            changed[..., (k + 1) * HOP :] = torch.randn_like(changed[..., (k + 1) * HOP :])
            changed_frames = encoder(changed)
            assert torch.equal(frames[..., : k + 1], changed_frames[..., : k + 1]), f"frame {k} saw the future"
            assert not torch.allclose(frames[..., k + 1], changed_frames[..., k + 1])


def test_causal_reflect_encoder_looks_ahead_only_at_the_start() -> None:
    # With reflect padding (EnCodec's default) the final kernel-7 convolution mirrors frames 1..6
    # into the left padding: frame k reads samples < max(k + 1, 7) * hop, as the docstring says.
    torch.manual_seed(0)
    encoder = SEANetEncoder(channels=1, causal=True, pad_mode="reflect", **SMALL).eval()
    n_frames = 12
    audio = torch.randn(1, 1, n_frames * HOP)
    with torch.no_grad():
        frames = encoder(audio)
        for k in range(n_frames - 1):
            boundary = max(k + 1, 7) * HOP
            changed = audio.clone()
            changed[..., boundary:] = torch.randn_like(changed[..., boundary:])
            assert torch.equal(frames[..., : k + 1], encoder(changed)[..., : k + 1])
        # The look-ahead is real: frame 0 changes when only samples after hop change.
        changed = audio.clone()
        changed[..., HOP:] = torch.randn_like(changed[..., HOP:])
        assert not torch.allclose(frames[..., 0], encoder(changed)[..., 0])


def test_non_causal_encoder_looks_ahead() -> None:
    # Contrast for the causal tests: a non-causal frame 0 does depend on later samples.
    torch.manual_seed(0)
    encoder = SEANetEncoder(channels=1, causal=False, pad_mode="constant", **SMALL).eval()
    audio = torch.randn(1, 1, 6 * HOP)
    changed = audio.clone()
    changed[..., HOP:] += 1.0
    with torch.no_grad():
        assert not torch.allclose(encoder(audio)[..., 0], encoder(changed)[..., 0])


def test_causal_decoder_sample_ignores_later_frames() -> None:
    # Causal, trim_right_ratio 1, zero padding: samples < (f + 1) * hop use frames <= f only.
    torch.manual_seed(0)
    decoder = SEANetDecoder(channels=2, causal=True, pad_mode="constant", **SMALL).eval()
    latent = torch.randn(1, 8, 8)
    with torch.no_grad():
        audio = decoder(latent)
        for f in range(7):
            changed = latent.clone()
            changed[..., f + 1 :] = torch.randn_like(changed[..., f + 1 :])
            changed_audio = decoder(changed)
            assert torch.equal(audio[..., : (f + 1) * HOP], changed_audio[..., : (f + 1) * HOP])
            assert not torch.allclose(audio[..., (f + 1) * HOP :], changed_audio[..., (f + 1) * HOP :])


def test_deterministic() -> None:
    def build_and_run() -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(123)
        encoder = SEANetEncoder(channels=2, **SMALL)
        decoder = SEANetDecoder(channels=2, **SMALL)
        audio = torch.randn(2, 2, 1000)
        frames = encoder(audio)
        return frames, decoder(frames)

    first, second = build_and_run(), build_and_run()
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert first[1].shape == (2, 2, 4 * HOP)


@pytest.mark.parametrize("causal", [False, True])
def test_gradient_reaches_every_parameter(causal: bool) -> None:
    torch.manual_seed(0)
    encoder = SEANetEncoder(channels=2, causal=causal, **SMALL)
    decoder = SEANetDecoder(channels=2, causal=causal, **SMALL)
    audio = torch.randn(2, 2, 1500)
    reconstruction = decoder(encoder(audio))[..., : audio.shape[-1]]
    loss = (reconstruction - audio).abs().mean()
    loss.backward()
    for name, parameter in list(encoder.named_parameters()) + list(decoder.named_parameters()):
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_structure_uses_named_blocks_and_weight_norm() -> None:
    encoder = SEANetEncoder(**SMALL)
    names = [type(layer).__name__ for layer in encoder.model]
    assert names == ["StreamableConv1d"] + ["EncoderBlock"] * 4 + ["StreamableLSTM", "ELU", "StreamableConv1d"]
    decoder = SEANetDecoder(**SMALL)
    names = [type(layer).__name__ for layer in decoder.model]
    assert names == ["StreamableConv1d", "StreamableLSTM"] + ["DecoderBlock"] * 4 + ["ELU", "StreamableConv1d"]
    # Strides in encoder order 2, 4, 5, 8 (reversed ratios), kernels 2 * stride.
    strided = [block[-1].conv for block in encoder.model[1:5]]
    assert [(c.stride[0], c.kernel_size[0]) for c in strided] == [(2, 4), (4, 8), (5, 10), (8, 16)]
    assert all(
        "parametrizations" in name for name, _ in encoder.named_parameters() if "weight" in name and "lstm" not in name
    )


def test_final_activation_and_errors() -> None:
    torch.manual_seed(0)
    decoder = SEANetDecoder(final_activation="Tanh", **SMALL)
    audio = decoder(10 * torch.randn(1, 8, 3))
    assert audio.abs().max() < 1.0
    with pytest.raises(ValueError, match="final_activation"):
        SEANetDecoder(final_activation="NotAnActivation", **SMALL)
    encoder = SEANetEncoder(channels=2, **SMALL)
    with pytest.raises(ValueError, match=r"\[batch, 2, time\]"):
        encoder(torch.randn(1, 1, 100))
    with pytest.raises(ValueError, match=r"\[batch, 8, time\]"):
        SEANetDecoder(**SMALL)(torch.randn(1, 7, 3))
    with pytest.raises(ValueError, match="ratios"):
        SEANetEncoder(ratios=(), **SMALL)
