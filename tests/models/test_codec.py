"""Tests for audioenc.models.codec: shapes, trimming, encode/decode = forward, bitrate, overfitting.

References: output lengths by hand (``F = ceil(T / hop)``, ``T`` samples back); the decoder run on
its own (``CodecModel.decode`` against the SEANet decoder called directly on the quantized
latents); EnCodec's published bitrates (0.75 kbps per 1024-entry codebook at 75 Hz, 1.5 / 6 / 24
kbps with 2 / 8 / 32 codebooks; Défossez et al. 2022).
"""

from __future__ import annotations

import math

import pytest
import torch

from audioenc.config import ModelConfig
from audioenc.losses.spectral import MultiScaleMelLoss
from audioenc.models.codec import CodecModel

# Small but complete models: every block of the paper architecture, narrow and with hop 32.
SMALL = dict(n_filters=4, dimension=16, ratios=(4, 4, 2), lstm=1)
SMALL_HOP = 32


def _codec(channels: int = 1, quantizer: str = "none", **overrides) -> CodecModel:
    options = dict(SMALL, channels=channels, quantizer=quantizer, n_q=4, bins=16)
    options.update(overrides)
    return CodecModel.from_config(ModelConfig(**options))


def _audio(batch: int, channels: int, length: int, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.randn(batch, channels, length, generator=torch.Generator().manual_seed(seed))


def _initialise_codebooks(model: CodecModel, audio: torch.Tensor) -> None:
    """k-means initialisation needs one training forward through every codebook (quantizer dropout
    off for that pass, or only the first few layers would be initialised); then back to eval."""
    dropout = model.quantizer.q_dropout
    model.quantizer.q_dropout = False
    model.train()
    with torch.no_grad():
        model(audio)
    model.eval()
    model.quantizer.q_dropout = dropout


@pytest.mark.parametrize("channels", [1, 2, 32])
@pytest.mark.parametrize("quantizer", ["none", "rvq"])
def test_shapes_for_channels_and_quantizers(channels, quantizer):
    torch.manual_seed(0)
    model = _codec(channels, quantizer)
    length = 7 * SMALL_HOP + 5  # not a multiple of the hop: 8 frames by hand
    audio = _audio(2, channels, length)
    if quantizer == "rvq":
        _initialise_codebooks(model, audio)
    model.eval()
    with torch.no_grad():
        out = model(audio)
    frames = math.ceil(length / SMALL_HOP)
    assert out.audio.shape == (2, channels, length)  # trimmed to T
    assert out.latents.shape == (2, 16, frames)
    if quantizer == "rvq":
        assert out.codes.shape == (2, 4, frames)
        assert out.codes.dtype == torch.int64
        assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 16
    else:
        assert out.codes is None
        assert float(out.penalty) == 0.0 and float(out.bandwidth) == 0.0


def test_reconstruction_is_the_decoder_output_trimmed_to_the_input_length():
    torch.manual_seed(0)
    model = _codec().eval()
    for length in (1, SMALL_HOP - 1, SMALL_HOP, 5 * SMALL_HOP + 1):
        audio = _audio(1, 1, length, seed=length)
        with torch.no_grad():
            out = model(audio)
            scale = model.input_scale(audio)
            full = model.decoder(model.encoder(audio / scale)) * scale  # F * hop samples, computed apart
        assert full.shape[-1] == math.ceil(length / SMALL_HOP) * SMALL_HOP
        assert out.audio.shape[-1] == length
        torch.testing.assert_close(out.audio, full[..., :length], rtol=0, atol=0)


@pytest.mark.parametrize("quantizer", ["none", "rvq"])
def test_encode_decode_round_trip_equals_forward_in_eval_mode(quantizer):
    torch.manual_seed(0)
    model = _codec(2, quantizer)
    audio = _audio(3, 2, 9 * SMALL_HOP + 7, seed=1)
    if quantizer == "rvq":
        _initialise_codebooks(model, _audio(4, 2, 40 * SMALL_HOP, seed=2))
    with torch.no_grad():
        out = model(audio)
        encoded, scale = model.encode(audio)
        decoded = model.decode(encoded, scale, length=audio.shape[-1])
    if quantizer == "rvq":
        assert torch.equal(encoded, out.codes)
        assert encoded.shape == (3, 4, 10)
    else:
        torch.testing.assert_close(encoded, out.latents, rtol=0, atol=0)
    # The same decoder on the same latents: equal up to float rounding of the codebook sum.
    torch.testing.assert_close(decoded, out.audio, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scale, out.scale, rtol=0, atol=0)
    assert model.decode(encoded, scale).shape[-1] == 10 * SMALL_HOP  # untrimmed without a length


def test_bitrate_arithmetic_through_the_wrapper():
    # Paper hop (320 at 24 kHz = 75 frames/s) and 1024 bins: 0.75 kbps per codebook (EnCodec).
    torch.manual_seed(0)
    model = CodecModel.from_config(
        ModelConfig(n_filters=2, dimension=8, lstm=0, quantizer="rvq", n_q=32, bins=1024, q_dropout=True)
    )
    assert model.hop_length == 320 and model.frame_rate == 75.0
    audio = _audio(2, 1, 24000)  # 1 s: 75 frames × 2 = 150 vectors (k-means warns: fewer than bins)
    with pytest.warns(UserWarning):
        _initialise_codebooks(model, audio)
    quantizer = model.quantizer
    assert [quantizer.bandwidth_for(n, model.frame_rate) for n in (2, 8, 32)] == [1.5, 6.0, 24.0]
    assert quantizer.n_q_for(6.0, model.frame_rate) == 8
    with torch.no_grad():
        assert float(model(audio).bandwidth) == pytest.approx(24.0)  # eval: all codebooks
        quantizer.n_q = quantizer.n_q_for(1.5, model.frame_rate)
        out = model(audio)
        assert out.codes.shape[1] == 2 and float(out.bandwidth) == pytest.approx(1.5)
        assert model.encode(audio)[0].shape == (2, 2, 75)
        quantizer.n_q = 32
        model.train()  # quantizer dropout: a random number of codebooks, bandwidth to match
        seen = set()
        for _ in range(6):
            out = model(audio)
            seen.add(out.codes.shape[1])
            assert float(out.bandwidth) == pytest.approx(0.75 * out.codes.shape[1])
        assert len(seen) > 1


def test_input_scale_is_the_rms_over_channels_and_time():
    model = _codec(3)
    audio = _audio(2, 3, 500, seed=4) * torch.tensor([1.0, 0.01, 3.0])[None, :, None]  # unequal channels
    expected = audio.double().pow(2).mean(dim=(1, 2)).sqrt() + 1e-8  # float64, one level per item
    torch.testing.assert_close(model.input_scale(audio).flatten().double(), expected, rtol=1e-6, atol=0)
    plain = _codec(3, normalize=False)
    assert torch.equal(plain.input_scale(audio), torch.ones(2, 1, 1))


@pytest.mark.parametrize("quantizer", ["none", "rvq"])
def test_a_normalising_codec_is_level_equivariant_and_a_plain_one_is_not(quantizer):
    """normalize: x -> g·x gives the same latents/codes and g times the output, whatever g; the
    inter-channel level differences of the input reach the encoder unchanged (one scale per item)."""
    torch.manual_seed(0)
    model = _codec(2, quantizer).eval()
    audio = _audio(2, 2, 12 * SMALL_HOP, seed=5) * torch.tensor([1.0, 0.1])[None, :, None]
    if quantizer == "rvq":
        _initialise_codebooks(model, _audio(4, 2, 40 * SMALL_HOP, seed=6))
    model.double()  # float64: equal up to rounding, not up to float32's amplified rounding
    with torch.no_grad():
        reference = model(audio.double())
        for gain in (1e-3, 7.0):
            scaled = model(gain * audio.double())
            # Exact but for LEVEL_FLOOR (1e-8) added to the level: 1e-8 / (gain · RMS) relative.
            tolerance = 2e-8 / (gain * float(audio.pow(2).mean().sqrt()) * 0.1) + 1e-9
            for got, want in ((scaled.latents, reference.latents), (scaled.audio, gain * reference.audio)):
                torch.testing.assert_close(got, want, rtol=0, atol=tolerance * float(want.abs().max()))
        model.float()
        plain = _codec(2, quantizer, normalize=False).eval()
        plain.load_state_dict(model.state_dict())
        quiet, loud = plain(1e-3 * audio).audio, plain(audio).audio
    # Without normalisation the biases make the output level-dependent (far from 1e-3 × loud).
    assert (quiet - 1e-3 * loud).abs().max() > 10 * (1e-3 * loud).abs().max()


def test_decode_needs_the_scale_when_the_codec_normalises():
    model = _codec(1).eval()
    encoded, scale = model.encode(_audio(1, 1, 4 * SMALL_HOP))
    with pytest.raises(ValueError, match="pass the scale that encode"):
        model.decode(encoded)
    plain = _codec(1, normalize=False).eval()
    encoded, scale = plain.encode(_audio(1, 1, 4 * SMALL_HOP))
    assert torch.equal(scale, torch.ones(1, 1, 1))
    assert torch.equal(plain.decode(encoded), plain.decode(encoded, scale))
    # Without normalize a given scale is ignored, as the streaming encoder and decoder ignore it.
    ignored, ones = plain.encode(_audio(1, 1, 4 * SMALL_HOP), scale=0.5)
    assert torch.equal(ignored, encoded) and torch.equal(ones, scale)
    assert torch.equal(plain.decode(encoded, 0.5), plain.decode(encoded))


@pytest.mark.parametrize("shape", [(2, 2, 320), (2, 32, 320), (2, 320)])
def test_wrong_channel_count_or_shape_is_a_clear_error(shape):
    model = _codec(1)
    with pytest.raises(ValueError, match=r"expects audio \[batch, 1, time\].*--1ch / --32ch"):
        model(torch.zeros(shape))
    with pytest.raises(ValueError, match=r"expects audio \[batch, 1, time\]"):
        model.encode(torch.zeros(shape))


def test_empty_input_is_rejected():
    with pytest.raises(ValueError, match="no time steps"):
        _codec(1).encode(torch.zeros(1, 1, 0))


def test_a_tiny_codec_overfits_one_clip():
    """A tiny continuous codec trained on one 0.25 s clip with L1 + multi-scale mel (EnCodec's
    reconstruction losses, 7 mel scales) for 150 Adam steps.

    Measured on this machine (seeds 0 and 1, one thread, ~7 s): the loss falls 13.2× and 12.1×,
    the L1 term alone 2.8× and 3.4×. Bounds set with margin: the loss falls at least 6×, and the
    reconstruction's L1 ends at most half the L1 of outputting silence (mean |clip| = 0.34).
    """
    torch.manual_seed(0)
    model = _codec(1)
    time = torch.arange(6000) / 24000
    noise = torch.randn(6000, generator=torch.Generator().manual_seed(0))
    tone = 0.5 * torch.sin(2 * math.pi * 440 * time)
    decaying = 0.25 * torch.sin(2 * math.pi * 1250 * time) * torch.exp(-4 * time)
    clip = (tone + decaying + 0.05 * noise)[None, None]
    mel_loss = MultiScaleMelLoss(sample_rate=24000)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        reconstruction = model(clip).audio
        loss = (reconstruction - clip).abs().mean() + mel_loss(clip, reconstruction)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < first / 6, f"loss {first:.1f} -> {last:.1f}: fell only {first / last:.1f}x"
    model.eval()
    with torch.no_grad():
        l1 = float((model(clip).audio - clip).abs().mean())
    silence_l1 = float(clip.abs().mean())
    assert l1 < silence_l1 / 2, f"L1 {l1:.3f} vs silence {silence_l1:.3f}"
