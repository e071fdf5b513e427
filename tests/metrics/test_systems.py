"""Evaluation systems: the input, G.711-style μ-law, Opus through libsndfile, and the codec at each
bitrate (checked against encode → keep n codebooks → decode done by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audioenc.metrics import systems
from audioenc.metrics.distances import mel_distance, si_sdr

SR = 24000


def music_like(seconds: float = 1.0, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    rows = []
    for c in range(channels):
        x = sum(np.sin(2 * np.pi * (220 + 55 * c) * k * t + k) / k for k in range(1, 20))
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) + 0.05 * rng.standard_normal(len(t))
        rows.append(0.3 * x / np.abs(x).max())
    return np.stack(rows)


# ------------------------------------------------------------------------------------ identity


def test_identity_is_an_equal_copy():
    system = systems.identity()
    assert (system.name, system.kbps, system.kind) == ("input", None, "bound")
    x = music_like(0.2, channels=2)
    y = system.reconstruct(x)
    assert y.dtype == np.float64 and np.array_equal(y, x)
    assert not np.shares_memory(x, y)
    y[0, 0] += 1.0
    assert x[0, 0] != y[0, 0]


# --------------------------------------------------------------------------------------- μ-law


def _mu_law_reference(x: np.ndarray, mu: float = 255.0, steps: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """Independent G.711-style μ-law in float64: codes ``round(127 F(x))`` and the expanded samples
    ``sign(c) ((1 + μ)^{|c|/127} − 1) / μ``."""
    x = np.clip(x, -1.0, 1.0)
    compressed = np.sign(x) * np.log(1 + mu * np.abs(x)) / np.log(1 + mu)
    codes = np.round(compressed * steps)
    expanded = np.sign(codes) * ((1 + mu) ** (np.abs(codes) / steps) - 1) / mu
    return codes, expanded


def test_mu_law_bitrate_and_name():
    system = systems.mu_law(SR)
    assert (system.name, system.kbps, system.kind) == ("mulaw-8k", 64.0, "reference")
    assert systems.mu_law(SR, rate=16000).kbps == 128.0


def test_mu_law_keeps_a_1khz_sine():
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 1000 * t))[None]
    y = systems.mu_law(SR).reconstruct(x)
    assert y.shape == x.shape and np.isfinite(y).all()
    middle = slice(2400, -2400)  # away from the resampler's edges
    assert si_sdr(x[:, middle], y[:, middle]) > 30
    assert not np.array_equal(x, y)


def test_mu_law_quantizes_to_at_most_256_levels():
    """At 8 kHz the resampler is (almost) the identity, so every output sample is one of the
    expanded μ-law codes: compressing it again lands on the grid k / 127, k in -127..127."""
    rng = np.random.default_rng(0)
    x = np.clip(0.4 * rng.standard_normal((2, 8000)), -1, 1)
    y = systems.mu_law(8000).reconstruct(x)
    codes_expected, expanded_expected = _mu_law_reference(x)
    compressed = np.sign(y) * np.log1p(255.0 * np.abs(y)) / np.log1p(255.0) * 127
    codes = np.round(compressed)
    assert np.max(np.abs(compressed - codes)) < 0.01
    assert len(np.unique(codes)) <= 256
    assert np.max(np.abs(codes)) <= 127
    assert len(np.unique(codes)) > 150  # and it does use many of them
    # the codes of the independent formula, and its expanded values up to the resampler's ~1e-7
    assert np.mean(codes == codes_expected) > 0.999
    np.testing.assert_allclose(y, expanded_expected, atol=1e-6)


def test_mu_law_clips_out_of_range_input():
    x = np.full((1, 8000), 3.0)
    y = systems.mu_law(8000).reconstruct(x)
    assert np.max(np.abs(y[:, 100:-100])) <= 1.0 + 1e-6


# ---------------------------------------------------------------------------------------- Opus


def test_opus_low_bitrate_is_worse_than_high():
    x = music_like(1.0)
    low, high = systems.opus(6, SR), systems.opus(24, SR)
    assert (low.name, low.kbps, low.kind) == ("opus-6kbps", 6.0, "reference")
    assert high.name == "opus-24kbps"
    y_low, y_high = low.reconstruct(x), high.reconstruct(x)
    for y in (y_low, y_high):
        assert y.shape == x.shape and np.isfinite(y).all() and not np.allclose(y, x)
    assert si_sdr(x, y_low) < si_sdr(x, y_high)
    assert mel_distance(x, y_low, SR) > mel_distance(x, y_high, SR)
    assert si_sdr(x, y_high) > 5  # a real, aligned reconstruction, not noise


def test_opus_stereo_and_odd_length():
    x = music_like(0.7, channels=2)[:, :16001]
    y = systems.opus(32, SR).reconstruct(x)
    assert y.shape == x.shape and np.isfinite(y).all()
    for c in range(2):
        assert si_sdr(x[c], y[c]) > 3


@pytest.mark.parametrize("kbps", [5, 0, -1, 5.99])
def test_opus_below_its_floor_raises(kbps):
    with pytest.raises(ValueError, match="6 kbps"):
        systems.opus(kbps, SR)


# -------------------------------------------------------------------------------------- codec


@pytest.fixture(scope="module")
def rvq_model():
    """A tiny RVQ codec (8 codebooks of 1024 bins, 75 Hz) with k-means-initialised codebooks:
    one train-mode forward on noise (as systems.untrained does), here 4 × 1024 frames, and 3
    k-means iterations to keep the test fast (50 take ~20 s on 2 cores).

    With at most `bins` frames the first codebook fits every training vector exactly, the residual
    is zero and every later codebook is all zeros: all bitrates would decode the same audio."""
    from audioenc.config import build_config
    from audioenc.models.codec import CodecModel

    config = build_config(
        "1ch", "small", ["model.quantizer=rvq", "model.n_filters=2", "model.dimension=8", "model.lstm=0", "model.n_q=8"]
    ).model
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CodecModel.from_config(config)
        for layer in model.quantizer.layers:
            layer.kmeans_iters = 3
        with torch.no_grad():
            model.train()
            model(torch.randn(4, 1, model.hop_length * model.quantizer.bins) * 0.1)
        model.eval()
    assert model.quantizer.initialized
    assert not any(bool((layer.embed == 0).all()) for layer in model.quantizer.layers)
    return model


def test_codec_systems_bitrates(rvq_model):
    assert rvq_model.frame_rate == 75.0 and rvq_model.quantizer.bins == 1024
    rows = systems.codec_systems(rvq_model, "codec")
    assert [(row.name, row.kbps, row.kind) for row in rows] == [
        ("codec@1.5kbps", 1.5, "codec"),
        ("codec@3kbps", 3.0, "codec"),
        ("codec@6kbps", 6.0, "codec"),
    ]
    # kbps = n · log2(1024) · 75 / 1000
    assert [row.kbps for row in rows] == [n * math.log2(1024) * 75 / 1000 for n in (2, 4, 8)]
    assert systems.codec_systems(rvq_model, "mine")[0].name == "mine@1.5kbps"


def test_codec_reconstruction_equals_encode_truncate_decode(rvq_model):
    x = music_like(0.5, seed=3)[:, :11999]  # not a multiple of the hop
    xt = torch.from_numpy(x).float()[None]
    with torch.no_grad():
        codes, scale = rvq_model.encode(xt)
    assert codes.shape[1] == 8
    outputs = []
    for row, n in zip(systems.codec_systems(rvq_model, "codec"), (2, 4, 8), strict=True):
        y = row.reconstruct(x)
        with torch.no_grad():
            expected = rvq_model.decode(codes[:, :n], scale)[0, :, : x.shape[-1]].double().numpy()
        assert y.dtype == np.float64 and y.shape == x.shape
        np.testing.assert_array_equal(y, expected)
        outputs.append(y)
    assert not np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[1], outputs[2])


def test_untrained_system_is_the_full_rate_codec():
    from audioenc.config import build_config

    config = build_config(
        "1ch",
        "small",
        [
            "model.quantizer=rvq",
            "model.n_filters=2",
            "model.dimension=8",
            "model.lstm=0",
            "model.n_q=2",
            "model.bins=16",
        ],
    ).model
    rows = systems.untrained(config)
    assert len(rows) == 1
    assert rows[0].name == "untrained@0.6kbps" and rows[0].kbps == pytest.approx(2 * 4 * 75 / 1000)
    x = music_like(0.3, seed=5)
    y = rows[0].reconstruct(x)
    assert y.shape == x.shape and np.isfinite(y).all()
    # deterministic: the same seed gives the same weights and codebooks
    again = systems.untrained(config)[0].reconstruct(x)
    np.testing.assert_array_equal(y, again)


def test_continuous_codec_is_one_row():
    from audioenc.config import build_config
    from audioenc.models.codec import CodecModel

    config = build_config("1ch", "small", ["model.n_filters=2", "model.dimension=8", "model.lstm=0"]).model
    torch.manual_seed(0)
    model = CodecModel.from_config(config)
    assert not model.quantizer.discrete  # quantizer=none is the default
    rows = systems.codec_systems(model, "codec")
    assert [(row.name, row.kbps, row.kind) for row in rows] == [("codec", None, "codec")]
    x = music_like(0.2)
    xt = torch.from_numpy(x).float()[None]
    with torch.no_grad():
        latents, scale = model.encode(xt)
        expected = model.decode(latents, scale, length=x.shape[-1])[0].double().numpy()
    np.testing.assert_array_equal(rows[0].reconstruct(x), expected)
