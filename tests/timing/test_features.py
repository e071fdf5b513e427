"""Log-mel features: frame count and timing, a float64 NumPy reference, file loading."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from audioenc.core.cache import ArrayCache
from audioenc.timing import features
from audioenc.timing.features import LOG_FLOOR, LogMel, LogMelConfig, compute_log_mel


@pytest.mark.parametrize("samples", [1, 239, 240, 241, 24_000, 24_001])
def test_frame_count_is_ceil_of_samples_over_hop(samples):
    assert LogMel()(torch.zeros(1, samples)).shape == (1, 64, -(-samples // 240))


def test_frame_i_is_centred_on_its_interval():
    # An impulse in the middle of interval i, sample i*240 + 120, sits at the peak of frame
    # i's Hann window and off-centre in every other frame: frame i has the largest energy,
    # and its neighbours i-1 and i+1 get equal energy (symmetric window).
    extractor = LogMel()
    for index in (4, 5, 21):
        audio = torch.zeros(1, 12_000, dtype=torch.float32)
        audio[0, index * 240 + 120] = 1.0
        energy = extractor(audio).exp().sum(dim=1)[0]
        assert int(energy.argmax()) == index
        assert float(energy[index - 1]) == pytest.approx(float(energy[index + 1]), rel=1e-4)


def test_log_mel_equals_float64_numpy_reference():
    # Reference: explicit framing with the same padding, a float64 Hann-windowed FFT, librosa's
    # filterbank, log(power + floor). Independent of torch.stft.
    import librosa

    config = LogMelConfig()
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(5_000) * 0.1
    side = (config.n_fft - config.hop_length) // 2
    frames = -(-len(audio) // config.hop_length)
    padded = np.zeros((frames - 1) * config.hop_length + config.n_fft)
    padded[side : side + len(audio)] = audio
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(config.n_fft) / config.n_fft)  # periodic Hann
    spectra = np.stack(
        [
            np.abs(np.fft.rfft(padded[i * config.hop_length : i * config.hop_length + config.n_fft] * window)) ** 2
            for i in range(frames)
        ],
        axis=1,
    )
    mel = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.f_min)
    reference = np.log(mel.astype(np.float64) @ spectra + LOG_FLOOR)
    ours = compute_log_mel(audio.astype(np.float32), config)
    assert ours.shape == reference.shape
    # float32 STFT against float64: agree to 1e-3 in log power where the power is well above the floor.
    assert np.max(np.abs(ours - reference)) < 1e-3


def test_the_cache_fingerprint_changes_with_every_setting_and_the_code_version(monkeypatch):
    # The feature cache's key (audioenc.core.cache.ArrayCache over log_mel_fingerprint): one clip hash,
    # every LogMelConfig field changed in turn, then the code version: each gives a key of its own.
    def key(config: LogMelConfig) -> str:
        return ArrayCache("logmel", features.log_mel_fingerprint(config), enabled=False).key("0" * 64)

    default = LogMelConfig()
    changed = {"sample_rate": 16000, "n_fft": 2048, "hop_length": 256, "n_mels": 128, "f_min": 0.0, "f_max": 8000.0}
    assert set(changed) == {field.name for field in dataclasses.fields(LogMelConfig)}  # a new field needs a case
    keys = {key(default)} | {key(dataclasses.replace(default, **{name: value})) for name, value in changed.items()}
    assert len(keys) == 1 + len(changed)
    assert key(dataclasses.replace(default)) == key(default)  # equal settings, equal key
    monkeypatch.setattr(features, "LOG_MEL_VERSION", features.LOG_MEL_VERSION + 1)
    assert key(default) not in keys
