"""The mel front-end: frame counts of each framing, the filterbank scales, refused settings."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from audioenc.core.mel import MelSpectrogram, mel_filterbank

pytestmark = pytest.mark.filterwarnings("ignore:Empty filters detected:UserWarning")


@pytest.mark.parametrize("samples", [500, 1024, 1025, 4800])
def test_each_framing_gives_its_frame_count(samples):
    audio = torch.randn(2, samples)
    reflect = MelSpectrogram(n_fft=512, hop_length=128, framing="reflect")
    interval = MelSpectrogram(n_fft=1024, hop_length=240, framing="interval")
    centre = MelSpectrogram(n_fft=512, hop_length=128, framing="centre")
    for mel in (reflect, interval, centre):
        assert mel(audio).shape == (2, 64, mel.num_frames(samples))
    assert interval.num_frames(samples) == -(-samples // 240)
    assert centre.num_frames(samples) == samples // 128 + 1


def test_centre_framing_is_torch_stft_magnitude_through_the_slaney_bank():
    audio = torch.randn(3, 4000, dtype=torch.float64)
    mel = MelSpectrogram(
        n_fft=256, hop_length=64, n_mels=40, scale="slaney", framing="centre", power=1, window_dtype=torch.float64
    )
    spec = torch.stft(audio, 256, 64, window=torch.hann_window(256, dtype=torch.float64), return_complex=True).abs()
    bank = torch.from_numpy(librosa.filters.mel(sr=24000, n_fft=256, n_mels=40)).double()
    assert torch.equal(mel(audio), bank @ spec)


def test_filterbanks_are_cached_read_only_and_of_their_scale():
    htk = mel_filterbank(24000, 512, 64, 0.0, 12000.0, "htk")
    slaney = mel_filterbank(24000, 512, 64, 0.0, 12000.0, "slaney")
    assert htk.dtype == np.float64 and slaney.dtype == np.float32 and not htk.flags.writeable
    assert htk.max() == pytest.approx(1.0, abs=0.05)  # HTK triangles peak at 1, Slaney ones are area-normalised
    assert mel_filterbank(24000, 512, 64, 0.0, 12000.0, "htk") is htk


def test_log_and_leading_dimensions():
    audio = torch.rand(2, 3, 2000)
    linear = MelSpectrogram()(audio)
    assert linear.shape[:2] == (2, 3)
    torch.testing.assert_close(MelSpectrogram(log="ln", floor_level=1e-10)(audio), torch.log(1e-10 + linear))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"framing": "interval", "n_fft": 1024, "hop_length": 241}, "must be even"),
        ({"framing": "middle"}, "choose reflect, interval or centre"),
        ({"power": 3}, "choose 1"),
        ({"log": "log2"}, "choose log10, ln"),
        ({"f_max": 13000.0}, "f_max <= sample_rate / 2"),
    ],
)
def test_refused_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        MelSpectrogram(**settings)


def test_too_short_audio_is_refused_by_reflect_framings():
    with pytest.raises(ValueError, match="too short"):
        MelSpectrogram(n_fft=1024, hop_length=256)(torch.zeros(1, 384))
    with pytest.raises(ValueError, match="too short"):
        MelSpectrogram(n_fft=1024, hop_length=256, framing="centre")(torch.zeros(1, 512))
