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
    probe, history = train_probe(
        train_frames.frames,
        clip_targets(train, classes),
        valid_frames.frames,
        clip_targets(valid, classes),
        classes,
        "linear_softmax",
        config=ProbeConfig(hidden=8, max_epochs=3, batch_size=4),
        seed=0,
    )
    after = parameters_fingerprint(handle.model)
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[name], after[name]) for name in before)
    assert len(history.valid_loss) == 3 and 0 <= history.best_epoch < 3
    # The probe itself did train (its first layer moved away from its seeded start).
    torch.manual_seed(0)
    start = ProbeHead(handle.embedding_size, classes, "linear_softmax", hidden=8)
    assert not torch.equal(start.hidden.weight, probe.hidden.weight)


def test_a_context_probe_scores_a_clip_the_same_alone_and_padded():
    # The conv probe sees neighbouring frames; padded frames must look like the zeros past a lone clip's end.
    torch.manual_seed(0)
    probe = ProbeHead(6, ("a", "b"), "linear_softmax", hidden=8, context_frames=5).eval()
    probe.set_normalization(torch.randn(6), torch.rand(6) + 0.5)
    short, long = torch.randn(1, 6, 7), torch.randn(1, 6, 12)
    alone = probe(short)
    batch = torch.zeros(2, 6, 12)
    batch[0, :, :7], batch[1] = short[0], long[0]
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, :7], mask[1] = True, True
    padded = probe(batch, mask)
    torch.testing.assert_close(padded.frame_scores[0, :, :7], alone.frame_scores[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(padded.clip_scores[0], alone.clip_scores[0], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        ProbeHead(6, ("a",), "mean", context_frames=4)
    assert "temporal-context" in ProbeConfig(kind="conv").description and "per-frame" in ProbeConfig().description
