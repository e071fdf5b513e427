"""Light adaptation of pretrained encoders: the top transformer layers of a snapshot
(audioenc.timing.pretrained.transformer_top, HiddenStateFamily.split_layers, PretrainedHEAR.split_top)
and CREPE's top conv blocks (CrepeEncoder.split_top), at tiny size.

References: the frozen encoder's own embeddings through the HEAR functions (what the probe was trained
on) — top over lower must rebuild them before any training; a clip alone — a padded batch must give it
again; parameters_fingerprint of the original model before and after a training step — unchanged,
while the top's copies move.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from audioenc.errors import UserError
from audioenc.timing.adapt import AdaptedModel, adaptation_split, top_embeddings, train_adapted
from audioenc.timing.encoders import load_encoder, parameters_fingerprint, same_parameters
from audioenc.timing.fitting import clip_bce, collate_padded
from audioenc.timing.pretrained import crepe, hf
from audioenc.timing.probe import ProbeConfig, train_probe
from tests.timing import hf_tiny

HIDDEN = ("wav2vec2", "hubert", "wavlm", "whisper", "ast")
SSL = ("wav2vec2", "hubert", "wavlm")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_top")
    torch.manual_seed(0)
    return {name: hf_tiny.BUILDERS[name](root / name) for name in (*HIDDEN, "encodec")}


def clip(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, round(seconds * rate)).astype(np.float32)


def frozen(model, audio: np.ndarray) -> torch.Tensor:
    """The frozen path: HEAR timestamp embeddings of one clip, ``[E, F]``."""
    embeddings, _ = hf.get_timestamp_embeddings(torch.from_numpy(audio)[None], model)
    return embeddings[0].T


def rebuilt(split, audio: np.ndarray) -> torch.Tensor:
    lower = torch.from_numpy(split.lower(audio))[None]
    with torch.no_grad():
        embeddings, mask = top_embeddings(split.top, lower, torch.ones(1, lower.shape[-1], dtype=torch.bool))
    return embeddings[0, :, : int(mask.sum())]


# ------------------------------------------------------------------------------------------------ the cut


@pytest.mark.parametrize("name", HIDDEN)
@pytest.mark.parametrize(("layer", "top"), [(2, 1), (2, 2), (1, 1), ("all", 2)])
def test_top_over_lower_rebuilds_the_frozen_embeddings(snapshots, name, layer, top):
    """hf_tiny models have 2 layers (hidden states 0-2): state 2 from state 1 (one layer) or state 0 (two);
    layer=all with 2 layers: every state from state 0, state 0 itself carried (Whisper's last state with
    its final layer norm, AST's patch columns averaged: the read-out is the frozen path's own)."""
    model = hf.load_snapshot(snapshots[name], layer=layer)
    split = model.split_top(top)
    audio = clip(0.8, seed=1)
    reference = frozen(model, audio)
    torch.testing.assert_close(rebuilt(split, audio), reference, rtol=0, atol=1e-6)
    lower = split.lower(audio)
    # Rows: the carried state(s) and the count row, whose sum is the clip's frames.
    carried = 2 if (layer, top) == ("all", 1) else 1
    assert lower.shape[0] == carried * 32 + 1 and lower[-1].sum() == reference.shape[1]
    assert f"{name} transformer" in split.description


@pytest.mark.parametrize("name", SSL)
def test_layer_all_carries_the_frozen_states_below_the_cut(snapshots, name):
    """One top layer under layer=all: state 2 recomputed, states 0 and 1 carried frozen (lower rows 2 x 32 + 1)."""
    model = hf.load_snapshot(snapshots[name], layer="all")
    split = model.split_top(1)
    audio = clip(0.6, seed=2)
    assert split.lower(audio).shape[0] == 2 * 32 + 1
    torch.testing.assert_close(rebuilt(split, audio), frozen(model, audio), rtol=0, atol=1e-6)
    assert "states below 2 frozen" in split.description


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # WavLM's own masking
@pytest.mark.parametrize("name", SSL)
def test_a_padded_batch_gives_each_clip_as_alone(snapshots, name):
    """Clips of 0.5 s and 0.75 s (24 and 37 frames) in one batch: the shorter is padded, its attention masked."""
    split = hf.load_snapshot(snapshots[name], layer=2).split_top(2)
    short, long = split.lower(clip(0.5, seed=3)), split.lower(clip(0.75, seed=4))
    batch, mask = collate_padded([short, long])
    with torch.no_grad():
        together, frames = top_embeddings(split.top, batch, mask)
    assert frames.sum(dim=1).tolist() == [24, 37]
    for row, lower in enumerate((short, long)):
        with torch.no_grad():
            alone, _ = top_embeddings(
                split.top, torch.from_numpy(lower)[None], torch.ones(1, lower.shape[1], dtype=bool)
            )
        torch.testing.assert_close(together[row, :, : lower.shape[1]], alone[0], rtol=0, atol=1e-5)
    assert float(together[0, :, 24:].abs().max()) == 0.0  # nothing past the short clip's frames


def test_what_cannot_be_cut_says_why(snapshots):
    cases = [
        (snapshots["wav2vec2"], {"layer": 1}, 2, "give at most 1"),
        (snapshots["wav2vec2"], {"layer": 0}, 1, "has 0 transformer layer"),
        (snapshots["whisper"], {"layer": "all"}, 1, "padded window"),
        (snapshots["ast"], {"layer": "all"}, 1, "padded window"),
        (snapshots["encodec"], {}, 1, "cannot be adapted here"),
    ]
    for folder, options, top, expected in cases:
        handle = load_encoder(folder, **options)
        split, reason = adaptation_split(handle, top)
        assert split is None and expected in reason and "probe" in reason, (options, reason)


def test_a_clip_longer_than_the_window_is_refused(snapshots):
    """The tiny Whisper takes 1 s at once: the frozen path windows a 1.5 s clip, the top cannot."""
    split = hf.load_snapshot(snapshots["whisper"], layer=2).split_top(1)
    with pytest.raises(UserError, match="one window"):
        split.lower(clip(1.5))


# ------------------------------------------------------------------------------------------------ training


def _probe_and_lower(model, split, clips: list[np.ndarray], embed=None):
    """A probe trained one epoch on the frozen frames of ``clips`` (layer weights when stacked), their
    lower activations and two-class targets."""
    embed = embed or frozen
    frames = {f"c{i}": embed(model, audio).numpy() for i, audio in enumerate(clips)}
    targets = np.eye(2, dtype=np.float32)[[i % 2 for i in range(len(clips))]]
    config = ProbeConfig(hidden=8, max_epochs=1)
    layers = getattr(model, "layers", 1)  # as step 5 reads it
    probe, _ = train_probe(frames, targets, frames, targets, ("a", "b"), "mean", config=config, layers=layers)
    return probe, {f"c{i}": split.lower(audio) for i, audio in enumerate(clips)}, targets


def _one_step(split, probe, lower, targets) -> AdaptedModel:
    """One SGD step of top + probe on a padded batch of every clip (what train_adapted repeats)."""
    torch.manual_seed(0)
    model = AdaptedModel(copy.deepcopy(split.top), probe).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    batch, mask = collate_padded(list(lower.values()))
    clip_bce(model(batch, mask).clip_scores, torch.from_numpy(targets)).backward()
    optimizer.step()
    return model


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # WavLM's own masking
@pytest.mark.parametrize(("name", "layer"), [("wav2vec2", "all"), ("wavlm", "all"), ("whisper", 2), ("ast", 2)])
def test_a_training_step_moves_only_the_top(snapshots, name, layer):
    model = hf.load_snapshot(snapshots[name], layer=layer)
    before = parameters_fingerprint(model)
    split = model.split_top(1)
    top_before = parameters_fingerprint(split.top)
    clips = [clip(seconds, seed=10 + i) for i, seconds in enumerate((0.5, 0.7, 0.6, 0.8))]
    probe, lower, targets = _probe_and_lower(model, split, clips)
    adapted = _one_step(split, probe, lower, targets)
    assert same_parameters(before, parameters_fingerprint(model))  # the encoder itself never moves
    after = parameters_fingerprint(adapted.top)
    trainable = {n for n, p in adapted.top.named_parameters() if p.requires_grad}
    # The copied top layer (and Whisper's final norm) train: its attention and feed-forward weights moved.
    assert trainable and all(n.startswith(("stack.layers.0.", "last_norm.")) for n in trainable)
    moved = {n for n in trainable if not np.array_equal(top_before[n], after[n])}
    assert {n for n in trainable if n.endswith("weight") and ("q_proj" in n or "k_proj" in n)} <= moved
    assert len(moved) >= len(trainable) // 2
    # Borrowed from below the cut (WavLM's relative position bias of layer 0): no gradient, unchanged.
    borrowed = {n for n, _ in adapted.top.named_parameters()} - trainable
    assert (name == "wavlm") == bool(borrowed)
    assert all(np.array_equal(top_before[n], after[n]) for n in borrowed)
    assert all(p.grad is None for n, p in adapted.top.named_parameters() if n in borrowed)
    assert same_parameters(top_before, parameters_fingerprint(split.top))  # the split's own copy too
    if model.layers > 1:  # the layer weights train with the top
        assert adapted.probe.layers == 3 and adapted.probe.layer_weights() != probe.layer_weights()


def test_adaptation_runs_under_the_rule_with_the_frozen_start_competing(snapshots):
    """train_adapted on a stacked wav2vec2 (layer=all, top layer 2): two epochs; the top moved exactly when
    an epoch beat the frozen start on validation loss; the encoder never moved."""
    model = hf.load_snapshot(snapshots["wav2vec2"], layer="all")
    before = parameters_fingerprint(model)
    split = model.split_top(1)
    clips = [clip(seconds, seed=30 + i) for i, seconds in enumerate((0.5, 0.7, 0.6, 0.8))]
    probe, lower, targets = _probe_and_lower(model, split, clips)
    config = ProbeConfig(hidden=8, batch_size=2, adapt_epochs=2, learning_rate=0.01)
    adapted, history = train_adapted(split, probe, lower, targets, lower, targets, config=config, seed=0)
    assert len(history.valid_loss) == 2 and history.best_epoch in (-1, 0, 1)
    assert same_parameters(before, parameters_fingerprint(model))
    changed = not same_parameters(parameters_fingerprint(split.top), parameters_fingerprint(adapted.top))
    assert changed == (history.best_epoch >= 0)


# ------------------------------------------------------------------------------------------------ CREPE


@pytest.fixture(scope="module")
def tiny_crepe():
    return crepe.load_crepe("tiny")


def crepe_frozen(model, audio: np.ndarray) -> torch.Tensor:
    embeddings, _ = crepe.get_timestamp_embeddings(torch.from_numpy(audio)[None], model)
    return embeddings[0].T


@pytest.mark.parametrize(("top", "rows"), [(1, 4 * 4 * 16), (2, 4 * 4 * 32)])
def test_crepe_top_blocks_rebuild_the_embedding(tiny_crepe, top, rows):
    """Block 5 (k=1) takes block 4's output per frame, 16 channels x 16 samples at tiny (m = 4); k=2 takes
    block 3's, 16 x 32."""
    split = tiny_crepe.split_top(top)
    audio = clip(0.3, seed=5)
    lower = split.lower(audio)
    assert lower.shape == (rows, 1 + len(audio) // 160)
    torch.testing.assert_close(rebuilt(split, audio), crepe_frozen(tiny_crepe, audio), rtol=0, atol=1e-6)
    assert split.description == ("CREPE tiny conv block 5" if top == 1 else "CREPE tiny conv blocks 4-5") + (
        " (the embedding is block 5's output)"
    )
    for bad in (0, 6):
        with pytest.raises(UserError, match="give 1-5"):
            tiny_crepe.split_top(bad)


def test_crepe_top_trains_with_pretrained_batch_statistics(tiny_crepe):
    """In training mode the copied batch norms keep CREPE's running statistics: a frame's output does not
    depend on the batch it is in (a padded batch = each clip alone), and one step moves only the copy."""
    before = parameters_fingerprint(tiny_crepe)
    split = tiny_crepe.split_top(1)
    short, long = split.lower(clip(0.2, seed=6)), split.lower(clip(0.35, seed=7))
    batch, mask = collate_padded([short, long])
    split.top.train()
    assert split.top.training and not any(block.norm.training for block in split.top.blocks)
    with torch.no_grad():
        together = split.top(batch, mask.sum(dim=1))
        alone = split.top(torch.from_numpy(short)[None], torch.tensor([short.shape[1]]))
    torch.testing.assert_close(together[:1, :, : short.shape[1]], alone, rtol=0, atol=1e-6)
    top_before = parameters_fingerprint(split.top)
    clips = [clip(seconds, seed=20 + i) for i, seconds in enumerate((0.2, 0.3, 0.25, 0.35))]
    probe, lower, targets = _probe_and_lower(tiny_crepe, split, clips, embed=crepe_frozen)
    adapted = _one_step(split, probe, lower, targets)
    assert same_parameters(before, parameters_fingerprint(tiny_crepe))
    moved = parameters_fingerprint(adapted.top)
    for part in ("conv.weight", "conv.bias", "norm.weight", "norm.bias"):
        assert not np.array_equal(top_before[f"blocks.0.{part}"], moved[f"blocks.0.{part}"]), part
    # The running statistics are CREPE's still (momentum 0, eval-mode norms).
    for name in ("blocks.0.norm.running_mean", "blocks.0.norm.running_var"):
        assert np.array_equal(top_before[name], moved[name])
