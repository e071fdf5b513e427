"""Light adaptation (audioenc.timing.adapt): the rule and its verdict by hand; the cut of each
HEAR wrapper rebuilds the probed embeddings; adaptation trains a copy and the frozen start competes.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audioenc.audio.formats import read_corpus_split
from audioenc.audio.io import read_clip
from audioenc.config import ModelConfig
from audioenc.core.bootstrap import BootstrapCI
from audioenc.models.codec import CodecModel
from audioenc.models.files import export_model
from audioenc.timing.adapt import (
    AdaptationRule,
    FrameGrid,
    adaptation_split,
    check_adaptation_split,
    frame_grid,
    train_adapted,
)
from audioenc.timing.encoders import encoder_embeddings, load_encoder, parameters_fingerprint
from audioenc.timing.evaluation import clip_targets
from audioenc.timing.fitting import Predictions
from audioenc.timing.probe import ProbeConfig, train_probe


def _ci(value: float, low: float, high: float) -> BootstrapCI:
    return BootstrapCI(value, low, high, 0.95, 100)


def test_adaptation_rule_triggers_on_boundaries_only():
    rule = AdaptationRule(clip_margin=0.05, boundary_margin=0.05, gain_margin=0.03)
    # Close on clip mAP (gap 0.02) but behind on collar F1 (gap 0.15): the seed's example.
    decision = rule.should_adapt({"clip_map": 0.80, "collar_f1": 0.30}, {"clip_map": 0.82, "collar_f1": 0.45})
    assert decision.triggered and decision.short_on == ("collar_f1",)
    assert decision.gaps == pytest.approx({"clip_map": 0.02, "collar_f1": 0.15})
    assert "close to scratch on clip metrics but behind on boundaries" in decision.reason


def test_adaptation_rule_does_not_trigger_within_margins_or_when_frozen_is_ahead():
    rule = AdaptationRule()
    assert not rule.should_adapt({"clip_map": 0.80, "collar_f1": 0.44}, {"clip_map": 0.84, "collar_f1": 0.48}).triggered
    assert not rule.should_adapt({"clip_map": 0.90, "collar_f1": 0.60}, {"clip_map": 0.70, "collar_f1": 0.30}).triggered
    # Behind on clip mAP only; without strong labels the clip metric alone decides.
    behind = rule.should_adapt({"clip_map": 0.60, "collar_f1": None}, {"clip_map": 0.80, "collar_f1": None})
    assert behind.triggered and behind.short_on == ("clip_map",) and "no strong labels" in behind.reason


def test_adaptation_verdict():
    rule = AdaptationRule(clip_margin=0.05, boundary_margin=0.05, gain_margin=0.03)
    clear = {"clip_map": _ci(0.0, -0.02, 0.02), "collar_f1": _ci(0.08, 0.02, 0.14)}
    assert rule.verdict(["collar_f1"], clear).justified
    inside_zero = {**clear, "collar_f1": _ci(0.08, -0.01, 0.17)}
    assert not rule.verdict(["collar_f1"], inside_zero).justified
    too_small = {**clear, "collar_f1": _ci(0.02, 0.01, 0.03)}
    assert not rule.verdict(["collar_f1"], too_small).justified
    # A gain on the metric that was fine does not count; a loss beyond the margin vetoes.
    assert not rule.verdict(["clip_map"], clear).justified
    losing = {**clear, "clip_map": _ci(-0.10, -0.15, -0.05)}
    verdict = rule.verdict(["collar_f1"], losing)
    assert not verdict.justified and "loses more than the margin on clip_map" in verdict.reason


@pytest.mark.parametrize("kind", ["codec", "weak_crnn"])
def test_adaptation_cut_reproduces_the_hear_embeddings(kind, tiny_corpus, tmp_path, saved_crnn):
    if kind == "codec":
        torch.manual_seed(0)
        config = ModelConfig(n_filters=4, dimension=16, lstm=1)
        export_model(tmp_path, "model_best", CodecModel.from_config(config).eval(), config)
        source = str(tmp_path / "model_best.safetensors")
    else:
        source = saved_crnn
    handle = load_encoder(source)
    split, reason = adaptation_split(handle)
    assert split is not None, reason
    train = read_corpus_split(tiny_corpus, "train")
    files = train.files[:4]
    frozen = encoder_embeddings(handle, train.audio_dir, files)
    assert frozen.identity_map and frozen.frame_rate == pytest.approx(75.0 if kind == "codec" else 25.0)
    audio = read_clip(train.audio_dir / files[0], handle.sample_rate)
    grid = frame_grid(handle, frozen.frame_rate)
    assert check_adaptation_split(split, audio, frozen.frames[files[0]], "test", grid) < 1e-5
    # One top block: more cannot be unfrozen, and the reason says so.
    refused, reason = adaptation_split(handle, 2)
    assert refused is None and "probe.adapt_top_layers=2" in reason and "only 1 can be unfrozen" in reason
    before = parameters_fingerprint(handle.model)
    top_before = parameters_fingerprint(split.top)
    classes = ("click", "tone")
    targets = clip_targets(train, classes, files)
    probe, _ = train_probe(
        dict(frozen.frames),
        targets,
        dict(frozen.frames),
        targets,
        classes,
        "max",
        config=ProbeConfig(hidden=8, max_epochs=1, batch_size=2),
        seed=0,
    )
    lower = {f: split.lower(read_clip(train.audio_dir / f, handle.sample_rate)) for f in files}
    adapted, history = train_adapted(
        split,
        probe,
        lower,
        targets,
        lower,
        targets,
        config=ProbeConfig(hidden=8, batch_size=2, adapt_epochs=2, learning_rate=0.05),
        seed=0,
    )
    assert len(history.valid_loss) == 2 and history.best_epoch in (-1, 0, 1)
    after = parameters_fingerprint(handle.model)
    assert all(np.array_equal(before[name], after[name]) for name in before)  # the original is untouched
    assert all(np.array_equal(top_before[name], value) for name, value in parameters_fingerprint(split.top).items())
    moved = parameters_fingerprint(adapted.top)
    changed = any(not np.array_equal(top_before[name], moved[name]) for name in top_before)
    # The frozen start competes: kept (-1) only if no epoch lowered the validation loss below it.
    assert changed == (history.best_epoch >= 0)
    start_scores = np.stack(
        [probe(torch.from_numpy(frozen.frames[f])[None]).clip_scores[0].detach().numpy() for f in files]
    )
    start_loss = torch.nn.functional.binary_cross_entropy(
        torch.from_numpy(start_scores).clamp(1e-6, 1 - 1e-6), torch.from_numpy(targets)
    ).item()
    assert min([start_loss, *history.valid_loss]) == pytest.approx(
        start_loss if history.best_epoch == -1 else history.valid_loss[history.best_epoch], abs=1e-6
    )
    # Adaptation learns: on these clips (trained and validated on the same ones) two epochs beat the
    # frozen start, and both the top block(s) and the probe moved (a learning rate of 0 for either
    # would leave it where it started, and the frozen start would win).
    assert history.best_epoch >= 0 and history.valid_loss[history.best_epoch] < start_loss - 0.01
    assert changed
    probe_start = parameters_fingerprint(probe)
    probe_moved = parameters_fingerprint(adapted.probe)
    assert any(not np.array_equal(probe_start[name], probe_moved[name]) for name in probe_start)


def test_frame_grid_places_encoder_frames_like_the_frozen_path():
    """wav2vec2-style frames centred at 12.5 + 20 j ms on a 50 frames/s grid of a 70 ms clip: ceil(3.5) = 4 grid
    frames centred at 10, 30, 50, 70 ms take frames 0, 1, 2, 2 (nearest; by hand). Predictions move the same
    way; clip scores stay."""
    grid = FrameGrid(lambda frames: 12.5 + 20.0 * np.arange(frames), 50.0, 16000)
    frames = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(grid.place(frames, 1120), [[1, 2, 3, 3], [4, 5, 6, 6]])
    native = Predictions({"a.wav": frames}, {"a.wav": np.array([0.5, 0.25])}, 50.0, ("x", "y"), 0.3)
    placed = grid.predictions(native, {"a.wav": 1120})
    assert placed.frame_scores["a.wav"].dtype == np.float64 and placed.frame_scores["a.wav"].shape == (2, 4)
    assert placed.clip_scores == native.clip_scores and placed.threshold == 0.3 and placed.frame_rate == 50.0


def test_crepe_cut_rebuilds_its_frames_on_the_grid(tmp_path):
    """CREPE's frames are centred on k * 10 ms, the grid's on (j + 1/2) * 10 ms: the frozen embeddings are not
    the encoder's own frames, and the cut is checked through the same placement (exact)."""
    handle = load_encoder("audioenc.timing.pretrained.crepe")
    rng = np.random.default_rng(2)
    sf.write(tmp_path / "a.wav", rng.normal(0, 0.1, 4321).astype(np.float32), 16000)
    frozen = encoder_embeddings(handle, tmp_path, ["a.wav"])
    assert not frozen.identity_map and frozen.frame_rate == pytest.approx(100.0)
    split, reason = adaptation_split(handle, 2)
    assert split is not None, reason
    audio = read_clip(tmp_path / "a.wav", handle.sample_rate)
    grid = frame_grid(handle, frozen.frame_rate)
    assert check_adaptation_split(split, audio, frozen.frames["a.wav"], "crepe", grid) < 1e-6
    with pytest.raises(RuntimeError, match="differs from the HEAR embeddings"):
        check_adaptation_split(split, audio, frozen.frames["a.wav"] + 1.0, "crepe", grid)
