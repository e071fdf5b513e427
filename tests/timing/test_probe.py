"""The probe head (audioenc.timing.probe): it trains, and the frozen encoder does not move."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audioenc.audio.formats import read_corpus_split
from audioenc.timing.encoders import encoder_embeddings, load_encoder, parameters_fingerprint
from audioenc.timing.evaluation import clip_targets
from audioenc.timing.probe import ProbeConfig, ProbeHead, train_probe


def test_frozen_encoder_unchanged_after_probing(tiny_corpus, saved_crnn):
    handle = load_encoder(saved_crnn)
    assert handle.kind == "weak_crnn"
    before = parameters_fingerprint(handle.model)
    assert before  # a torch module with parameters
    train = read_corpus_split(tiny_corpus, "train")
    valid = read_corpus_split(tiny_corpus, "validation")
    classes = ("noise_band", "speech")
    train_frames = encoder_embeddings(handle, train.audio_dir, train.files)
    valid_frames = encoder_embeddings(handle, valid.audio_dir, valid.files)
    assert train_frames.frame_rate == pytest.approx(25.0) and train_frames.identity_map
    probe, history = train_probe(train_frames.frames, clip_targets(train, classes), valid_frames.frames,
                                 clip_targets(valid, classes), classes, "linear_softmax",
                                 config=ProbeConfig(hidden=8, epochs=3, batch_size=4), seed=0)
    after = parameters_fingerprint(handle.model)
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[name], after[name]) for name in before)
    assert len(history.valid_loss) == 3 and 0 <= history.best_epoch < 3
    # The probe itself did train (its first layer moved away from its seeded start).
    torch.manual_seed(0)
    start = ProbeHead(handle.embedding_size, classes, "linear_softmax", hidden=8)
    assert not torch.equal(start.hidden.weight, probe.hidden.weight)


