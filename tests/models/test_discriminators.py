"""MS-STFT discriminator: parameter counts, spectrogram input, output shapes, channel checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from audioenc.models.discriminators import MultiScaleSTFTDiscriminator, STFTDiscriminator

N_FFTS = (1024, 2048, 512, 256, 128)
HOPS = (256, 512, 128, 64, 32)

# Published reference: sum(p.numel() for p in msstftd.parameters()) of audiocraft's
# MultiScaleSTFTDiscriminator (facebookresearch/audiocraft @ 896ec7c4, audiocraft/adversarial/
# discriminators/msstftd.py) built with its compression config (filters 32, the five scales above,
# weight_norm), loaded outside this repository with torchaudio stubbed by a parameter-free module.
AUDIOCRAFT_PARAMETERS = {1: 472_330, 32: 740_170}


def closed_form_parameters(channels: int, filters: int = 32, scales: int = 5) -> int:
    """Hand count per scale: weights + biases, plus one weight-norm gain per output channel
    on every layer but the first (kernel (3, 9) = 27 taps, (3, 3) = 9 taps, one logit channel)."""
    first = 2 * channels * filters * 27 + filters
    strided = 3 * (filters * filters * 27 + filters + filters)
    last = filters * filters * 9 + filters + filters
    post = filters * 1 * 9 + 1 + 1
    return scales * (first + strided + last + post)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("channels", [1, 32])
def test_parameter_count_matches_audiocraft_and_hand_count(channels):
    disc = MultiScaleSTFTDiscriminator.for_audio(channels)
    assert count(disc) == AUDIOCRAFT_PARAMETERS[channels]
    assert count(disc) == closed_form_parameters(channels)


def test_hand_count_is_consistent_with_published_values():
    # 94,466 per mono scale: 1,760 + 3 * 27,712 + 9,280 + 290 (written out by hand).
    assert closed_form_parameters(1, scales=1) == 1760 + 3 * 27712 + 9280 + 290 == 94466


def test_weight_norm_on_every_layer_but_the_first():
    disc = STFTDiscriminator()
    normed = [parametrize.is_parametrized(conv, "weight") for conv in disc.convs]
    assert normed == [False, True, True, True, True]
    assert parametrize.is_parametrized(disc.conv_post, "weight")
    # The window is a (non-trained) buffer.
    assert "window" in dict(disc.named_buffers()) and all("window" not in n for n, _ in disc.named_parameters())


def numpy_normalized_stft(x: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """Float64 reference of torchaudio's Spectrogram(normalized=True, center=False): periodic Hann
    window of `win` samples centred in n_fft, divided by sqrt(sum(w^2)); returns [frames, freq]."""
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    window /= np.sqrt((window**2).sum())
    frames = (len(x) - n_fft) // hop + 1
    index = hop * np.arange(frames)[:, None] + np.arange(n_fft)[None, :]
    return np.fft.rfft(x[index] * window, axis=-1)


def test_spectrogram_input_matches_numpy_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 1500, dtype=torch.float64)
    disc = STFTDiscriminator(in_channels=3, n_fft=512, hop_length=128, win_length=400).double()
    spec = disc.spectrogram(x)
    # The window buffer is built in float32, so agreement is to float32 precision (~1e-7 relative).
    assert spec.shape == (2, 6, (1500 - 512) // 128 + 1, 257)
    for b in range(2):
        for c in range(3):
            reference = numpy_normalized_stft(x[b, c].numpy(), 512, 128, 400)
            np.testing.assert_allclose(spec[b, c].numpy(), reference.real, atol=2e-6)
            np.testing.assert_allclose(spec[b, 3 + c].numpy(), reference.imag, atol=2e-6)


def expected_logit_shape(length: int, n_fft: int, hop: int) -> tuple[int, int]:
    frames = (length - n_fft) // hop + 1
    freq = n_fft // 2 + 1
    for _ in range(3):  # kernel 9, padding 4, stride 2 on frequency
        freq = (freq + 2 * 4 - 9) // 2 + 1
    return frames, freq


@pytest.mark.parametrize("channels", [1, 32])
def test_output_shapes_per_scale(channels):
    torch.manual_seed(0)
    length = 2560
    disc = MultiScaleSTFTDiscriminator.for_audio(channels, filters=8)
    logits, feature_maps = disc(torch.randn(2, channels, length))
    assert disc.num_discriminators == len(logits) == len(feature_maps) == 5
    for logit, fmap, n_fft, hop in zip(logits, feature_maps, N_FFTS, HOPS):
        frames, freq = expected_logit_shape(length, n_fft, hop)
        assert logit.shape == (2, 1, frames, freq)
        assert len(fmap) == 5
        first_freq = n_fft // 2 + 1
        assert fmap[0].shape == (2, 8, frames, first_freq)
        assert fmap[-1].shape == (2, 8, frames, freq)
    # For one second at 24 kHz the first scale is 90 frames x 65 bins (hand: (24000-1024)//256+1).
    assert expected_logit_shape(24000, 1024, 256) == (90, 65)


def test_feature_maps_are_leaky_relu_outputs_and_gradients_reach_the_input():
    torch.manual_seed(0)
    disc = STFTDiscriminator(filters=4, n_fft=128, hop_length=32, win_length=128, negative_slope=0.3)
    x = torch.randn(1, 1, 512, requires_grad=True)
    logits, fmap = disc(x)
    z = disc.spectrogram(x)
    pre = disc.convs[0](z)
    torch.testing.assert_close(fmap[0], torch.where(pre > 0, pre, 0.3 * pre))
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_wrong_channel_count_is_rejected_with_a_clear_error():
    disc = MultiScaleSTFTDiscriminator.for_audio(1, filters=4)
    with pytest.raises(ValueError, match=r"built for audio \[batch, 1, time\].*shape \(2, 32, 4096\).*for_audio"):
        disc(torch.zeros(2, 32, 4096))
    with pytest.raises(ValueError, match="1 audio channel.*2 channel"):
        disc.discriminators[0](torch.zeros(1, 2, 4096))


def test_short_audio_and_bad_configuration_are_rejected():
    disc = MultiScaleSTFTDiscriminator.for_audio(1, filters=4)
    assert disc.min_length == 2048
    with pytest.raises(ValueError, match="shorter than n_fft=2048"):
        disc(torch.zeros(1, 1, 1024))
    with pytest.raises(ValueError, match="one entry per scale"):
        MultiScaleSTFTDiscriminator(n_ffts=(1024, 512), hop_lengths=(256,), win_lengths=(1024, 512))
    with pytest.raises(ValueError, match="in_channels follows"):
        MultiScaleSTFTDiscriminator.for_audio(2, in_channels=1)
