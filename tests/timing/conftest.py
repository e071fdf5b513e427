"""Fixtures shared by the timing tests: a tiny event corpus and a saved tiny weak CRNN."""

from __future__ import annotations

import pytest
import torch

from audioenc.audio.synth_events import synthesize_event_corpus
from audioenc.timing.weak import CRNNConfig, WeakCRNN, save_weak_encoder

TINY_CRNN = CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return synthesize_event_corpus(root, (8, 4, 4), seed=5)


@pytest.fixture
def saved_crnn(tmp_path) -> str:
    """A seeded, untrained tiny CRNN saved with save_weak_encoder; its folder."""
    torch.manual_seed(0)
    model = WeakCRNN(("click", "tone", "chirp"), "linear_softmax", TINY_CRNN).eval()
    save_weak_encoder(model, tmp_path / "crnn")
    return str(tmp_path / "crnn")
