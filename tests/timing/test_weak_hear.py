"""Tests for audioenc.timing.weak_hear: the weak-label CRNN behind the HEAR API.

References: the CRNN's ``embeddings`` on :class:`~audioenc.timing.features.LogMel` features, called
directly; timestamps by hand: frame ``k`` is centred at ``(k + 1/2) · 40`` ms at the CRNN's 25
frames/s. At a HEAR rate, the reference is the CRNN on audio resampled to 24 kHz by hand.
"""

from __future__ import annotations

import pytest
import torch

from audioenc import hear
from audioenc.timing.features import LogMel, LogMelConfig
from audioenc.timing.weak import CRNNConfig, WeakCRNN, save_weak_encoder
from audioenc.timing.weak_hear import WeakCRNNHEAR
from tests.test_hear import resampled_by_hand, sounds


def test_weak_crnn_shapes_and_timestamps(tmp_path):
    torch.manual_seed(0)
    crnn = WeakCRNN(("dog", "bell"), "linear_softmax", CRNNConfig(stem_channels=4, conv_channels=(8, 8), rnn_hidden=6))
    crnn.eval()
    save_weak_encoder(crnn, tmp_path / "weak")
    model = hear.load_model(str(tmp_path / "weak"), batch_size=2, sample_rate=None)
    assert model.sample_rate == model.model_sample_rate == 24000
    assert model.timestamp_embedding_size == model.scene_embedding_size == 12
    audio = sounds(3, 24000, seed=3)  # 1 s: 100 log-mel frames -> 25 output frames (stem time stride 4)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (3, 25, 12) and timestamps.shape == (3, 25)
    # Frame centres in milliseconds: (k + 1/2) * 40 ms at 25 frames/s.
    torch.testing.assert_close(timestamps[1], torch.arange(25, dtype=torch.float32) * 40 + 20, rtol=0, atol=1e-4)
    with torch.no_grad():
        reference = crnn(LogMel(LogMelConfig())(audio)).embeddings.transpose(1, 2)
    torch.testing.assert_close(embeddings, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), embeddings.mean(1), rtol=0, atol=0)
    # The folder's own files select the same loader.
    assert isinstance(hear.load_model(str(tmp_path / "weak" / "config.json")), WeakCRNNHEAR)


@pytest.mark.parametrize("rate", [48000, 16000])
def test_weak_crnn_at_a_hear_rate(tmp_path, rate):
    torch.manual_seed(0)
    crnn = WeakCRNN(("dog", "bell"), "linear_softmax", CRNNConfig(stem_channels=4, conv_channels=(8, 8), rnn_hidden=6))
    crnn.eval()
    save_weak_encoder(crnn, tmp_path / "weak")
    default = hear.load_model(str(tmp_path / "weak"))
    assert (default.sample_rate, default.model_sample_rate) == (48000, 24000)
    model = hear.load_model(str(tmp_path / "weak"), sample_rate=rate, batch_size=2)
    audio = sounds(3, rate, seed=5)  # 1 s: 24000 samples at 24 kHz -> 25 frames
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (3, 25, 12)
    torch.testing.assert_close(timestamps[0], torch.arange(25, dtype=torch.float32) * 40 + 20, rtol=0, atol=1e-4)
    with torch.no_grad():
        reference = crnn(LogMel(LogMelConfig())(resampled_by_hand(audio, rate))).embeddings.transpose(1, 2)
    torch.testing.assert_close(embeddings, reference, rtol=1e-5, atol=1e-6)
    # The adaptation cut takes the clip at the HEAR rate too, and rebuilds the HEAR embeddings.
    split = model.split_top()
    lower = split.lower(audio[0].numpy())
    with torch.no_grad():
        rebuilt = split.top(torch.from_numpy(lower)[None], torch.tensor([lower.shape[1]]))[0].T
    torch.testing.assert_close(rebuilt, embeddings[0], rtol=1e-5, atol=1e-5)
