"""The probe head (audioenc.timing.probe): it trains, and the frozen encoder does not move."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audioenc.audio.formats import read_corpus_split
from audioenc.timing.encoders import encoder_embeddings, load_encoder, parameters_fingerprint
from audioenc.timing.evaluation import clip_targets
from audioenc.timing.probe import LayerWeightedSum, ProbeConfig, ProbeHead, probe_layers_text, train_probe


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


# ------------------------------------------------------------------------------------------------ layer weights


def test_layer_weighted_sum_and_its_gradient_by_hand():
    """y = sum_l s_l x_l with s = softmax(w); dL/dw_j = s_j <g, x_j - y> for L = <g, y>: float64 NumPy."""
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(2, 3 * 2, 4))  # B = 2, L = 3 layers of E = 2, F = 4 frames
    upstream = rng.normal(size=(2, 2, 4))
    logits = np.array([0.3, -0.2, 0.5])
    module = LayerWeightedSum(3).double()
    with torch.no_grad():
        module.logits.copy_(torch.from_numpy(logits))
    x = torch.from_numpy(stack)
    y = module(x)
    (y * torch.from_numpy(upstream)).sum().backward()
    s = np.exp(logits) / np.exp(logits).sum()
    layers = stack.reshape(2, 3, 2, 4)
    expected = np.einsum("l,blef->bef", s, layers)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    gradient = np.array([s[j] * np.sum(upstream * (layers[:, j] - expected)) for j in range(3)])
    np.testing.assert_allclose(module.logits.grad.numpy(), gradient, rtol=1e-10, atol=1e-12)
    assert torch.equal(LayerWeightedSum(3).weights(), torch.full((3,), 1 / 3))  # logits start at 0: uniform


def test_one_layer_probe_is_the_single_layer_probe():
    """layers=1 adds nothing: the same parameters and buffers, the same seeded draws, and the forward pass
    is the single-layer formula bit for bit (normalise, mask, per-frame MLP, sigmoid, pooling)."""
    torch.manual_seed(3)
    probe = ProbeHead(6, ("a", "b"), "linear_softmax", hidden=8, layers=1).eval()
    assert set(probe.state_dict()) == {
        "embedding_mean",
        "embedding_std",
        "hidden.weight",
        "hidden.bias",
        "head.weight",
        "head.bias",
    }
    torch.manual_seed(3)
    first = torch.nn.Conv1d(6, 8, 1)  # the first thing a single-layer probe draws
    assert torch.equal(probe.hidden.weight, first.weight)
    probe.set_normalization(torch.randn(6), torch.rand(6) + 0.5)
    embeddings, mask = torch.randn(2, 6, 9), torch.ones(2, 9, dtype=torch.bool)
    mask[0, 6:] = False
    output = probe(embeddings, mask)
    z = (embeddings - probe.embedding_mean[:, None]) / probe.embedding_std[:, None] * mask[:, None, :]
    hidden = torch.relu(probe.hidden(z))
    frames = torch.sigmoid(probe.head(hidden))
    assert torch.equal(output.frame_scores, frames)
    assert torch.equal(output.clip_scores, probe.pooling(frames, hidden, mask))
    assert probe.layer_weights().weights == (1.0,) and probe_layers_text(probe) == ""
    with pytest.raises(ValueError, match="equal layers"):
        ProbeHead(7, ("a",), "mean", layers=3)


def test_stacked_probe_weights_the_informative_layer_and_reports_it():
    """Three stacked layers of 4 dims; only layer 1 carries the class (a constant offset on positive clips),
    layers 0 and 2 are noise. Trained jointly, the weights leave uniform towards layer 1, and the report
    lists every layer with its weight."""
    rng = np.random.default_rng(0)
    labels = np.array([i % 2 for i in range(24)], dtype=np.float32)
    frames = {}
    for i, label in enumerate(labels):
        stack = rng.normal(size=(3, 4, 20)).astype(np.float32)
        stack[1] += 2.0 * label
        frames[f"c{i:02d}"] = stack.reshape(12, 20)
    targets = labels[:, None]
    config = ProbeConfig(hidden=8, max_epochs=30, patience=None, batch_size=8, learning_rate=0.03)
    probe, history = train_probe(frames, targets, frames, targets, ("event",), "mean", config=config, layers=3)
    weights = probe.layer_weights()
    assert weights.layers == (0, 1, 2) and sum(weights.weights) == pytest.approx(1.0)
    assert max(range(3), key=weights.weights.__getitem__) == 1 and weights.weights[1] > 0.6  # 0.82-0.85 over seeds 0-3
    assert weights.to_json() == [{"layer": layer, "weight": weights.weights[layer]} for layer in range(3)]
    text = probe_layers_text(probe)
    assert "3 stacked hidden states" in text and "largest on layer 1" in text and "0: " in text and "2: " in text
    assert history.valid_loss[-1] < history.valid_loss[0]
