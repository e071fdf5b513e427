"""Probe, scratch and adaptation machinery of audioenc.timing.probe.

References: average precision against scikit-learn's ``average_precision_score`` and a hand
computation; the bootstrap against the same resamples computed directly in float64 NumPy and
against the theoretical bootstrap variance of a mean (population variance / n); the weighted
median against ``np.median`` of the explicitly repeated values; collar F1 against
:func:`audioenc.timing.boundaries.collar_f1` (sed_scores_eval called directly); frame-grid
mapping and the adaptation rule by hand.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.metrics import average_precision_score

from audioenc.audio.formats import Event, EventSplit, read_corpus_split
from audioenc.audio.synth_events import synthesize_event_corpus
from audioenc.config import ModelConfig
from audioenc.models.codec import CodecModel
from audioenc.timing.boundaries import boundary_errors, collar_f1, summarize_boundaries
from audioenc.timing.features import load_audio
from audioenc.timing.probe import (
    AdaptationRule,
    ClipEvaluator,
    ProbeConfig,
    adaptation_split,
    average_precision,
    bootstrap,
    check_adaptation_split,
    clip_targets,
    counts_from_indices,
    encoder_embeddings,
    frame_rate_from_timestamps,
    load_encoder,
    parameters_fingerprint,
    percentile_interval,
    to_frame_grid,
    train_adapted,
    train_probe,
    weighted_median,
)
from audioenc.timing.weak import CRNNConfig, Predictions, WeakCRNN, save_weak_encoder
from audioenc.training.checkpoint import export_model

TINY_CRNN = CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8)


# --------------------------------------------------------------------------- metrics


def test_average_precision_hand_case_and_sklearn():
    # Hand: ranked labels 1, 0, 1, 0 -> recall steps 1/2 at precision 1/1 and 1/2 at 2/3.
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.random(40), 1)  # many ties: one threshold per distinct score
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    # Bootstrap counts = repeating clips: the weighted AP equals AP on the repeated arrays.
    counts = rng.integers(0, 3, size=(5, 40))
    weighted = average_precision(labels, scores, counts)
    for row, expected_counts in enumerate(counts):
        repeated = np.repeat(np.arange(40), expected_counts)
        if labels[repeated].sum() == 0:
            assert math.isnan(weighted[row])
        else:
            assert weighted[row] == pytest.approx(average_precision_score(labels[repeated], scores[repeated]), abs=1e-12)
    assert math.isnan(average_precision([0, 0, 0], [0.1, 0.2, 0.3]))  # no positive: undefined


def test_bootstrap_interval_matches_numpy_on_the_same_resamples():
    values = np.array([0.1, 0.4, 0.5, 0.9, 0.3])

    def mean(indices):
        return counts_from_indices(indices, len(values)) @ values / indices.shape[1]

    interval, replicates = bootstrap(mean, len(values), resamples=4000, seed=7)
    # Reference: the documented resampling, computed directly.
    reference_indices = np.random.default_rng(7).integers(0, 5, size=(4000, 5))
    reference = values[reference_indices].mean(axis=1)
    np.testing.assert_allclose(replicates, reference, rtol=0, atol=1e-12)
    low, high = np.percentile(reference, [2.5, 97.5])
    assert interval.value == pytest.approx(values.mean())
    assert interval.low == pytest.approx(low, abs=1e-12) and interval.high == pytest.approx(high, abs=1e-12)
    assert interval.resamples == 4000 and interval.confidence == 0.95
    # Theory: the bootstrap variance of a mean is the population variance / n (0.0536 / 5).
    assert replicates.std() == pytest.approx(math.sqrt(values.var() / 5), rel=0.05)


def test_interval_with_infinite_replicates():
    # A median that may be infinite (missed events): the upper end is +inf, the lower end as numpy.
    interval = percentile_interval(np.array([1.0, 2.0, 3.0, np.inf, np.inf, np.nan]), 2.0, confidence=0.5)
    # Defined replicates 1, 2, 3, inf, inf: 25th percentile at position 1 -> 2.0; 75th at 3 -> inf.
    assert interval.low == 2.0 and interval.high == math.inf and interval.resamples == 5
    assert interval.as_dict()["high"] is None  # JSON has no infinity


def test_weighted_median_equals_median_of_repeated_values():
    rng = np.random.default_rng(1)
    values = np.r_[rng.random(9), np.inf, np.inf]
    weights = rng.integers(0, 4, size=(50, len(values)))
    result = weighted_median(values, weights.astype(float))
    for row in range(50):
        repeated = np.repeat(values, weights[row])
        if len(repeated) == 0:
            assert math.isnan(result[row])
        else:
            expected = np.median(repeated)
            assert result[row] == expected or (math.isinf(expected) and math.isinf(result[row]))


# --------------------------------------------------------------------------- adaptation rule


def test_adaptation_rule_triggers_on_boundaries_only():
    rule = AdaptationRule(clip_margin=0.05, boundary_margin=0.05, gain_margin=0.03)
    # Close on clip mAP (gap 0.02) but behind on collar F1 (gap 0.15): the seed's example.
    decision = rule.should_adapt({"clip_map": 0.80, "collar_f1": 0.30}, {"clip_map": 0.82, "collar_f1": 0.45})
    assert decision["triggered"] and decision["short_on"] == ["collar_f1"]
    assert decision["gaps"] == pytest.approx({"clip_map": 0.02, "collar_f1": 0.15})
    assert "close to scratch on clip metrics but behind on boundaries" in decision["reason"]


def test_adaptation_rule_does_not_trigger_within_margins_or_when_frozen_is_ahead():
    rule = AdaptationRule()
    assert not rule.should_adapt({"clip_map": 0.80, "collar_f1": 0.44}, {"clip_map": 0.84, "collar_f1": 0.48})["triggered"]
    assert not rule.should_adapt({"clip_map": 0.90, "collar_f1": 0.60}, {"clip_map": 0.70, "collar_f1": 0.30})["triggered"]
    # Behind on clip mAP only; without strong labels the clip metric alone decides.
    behind = rule.should_adapt({"clip_map": 0.60, "collar_f1": None}, {"clip_map": 0.80, "collar_f1": None})
    assert behind["triggered"] and behind["short_on"] == ["clip_map"] and "no strong labels" in behind["reason"]


def test_adaptation_verdict():
    rule = AdaptationRule(clip_margin=0.05, boundary_margin=0.05, gain_margin=0.03)
    clear = {"clip_map": {"value": 0.0, "low": -0.02, "high": 0.02}, "collar_f1": {"value": 0.08, "low": 0.02, "high": 0.14}}
    assert rule.verdict(["collar_f1"], clear)["justified"]
    inside_zero = {**clear, "collar_f1": {"value": 0.08, "low": -0.01, "high": 0.17}}
    assert not rule.verdict(["collar_f1"], inside_zero)["justified"]
    too_small = {**clear, "collar_f1": {"value": 0.02, "low": 0.01, "high": 0.03}}
    assert not rule.verdict(["collar_f1"], too_small)["justified"]
    # A gain on the metric that was fine does not count; a loss beyond the margin vetoes.
    assert not rule.verdict(["clip_map"], clear)["justified"]
    losing = {**clear, "clip_map": {"value": -0.10, "low": -0.15, "high": -0.05}}
    verdict = rule.verdict(["collar_f1"], losing)
    assert not verdict["justified"] and "loses more than the margin on clip_map" in verdict["reason"]


# --------------------------------------------------------------------------- frame grid


def test_frame_grid_from_start_timestamps():
    # Timestamps at frame starts every 30 ms: 33.3 frames/s; the grid centres (j + 1/2) * 30 ms
    # fall halfway between two timestamps, where the earlier one is taken.
    timestamps = np.arange(5) * 30.0
    assert frame_rate_from_timestamps(timestamps) == pytest.approx(1000 / 30)
    embeddings = np.arange(10, dtype=np.float32).reshape(5, 2)  # frame k = [2k, 2k + 1]
    grid = to_frame_grid(embeddings, timestamps, duration=0.14, frame_rate=1000 / 30)
    assert grid.shape == (2, 5)  # ceil(0.14 * 33.33 - 0.001) = 5
    np.testing.assert_array_equal(grid[0], [0, 2, 4, 6, 8])
    # Centre timestamps map one to one.
    centred = to_frame_grid(embeddings, timestamps + 15.0, duration=0.15, frame_rate=1000 / 30)
    np.testing.assert_array_equal(centred, embeddings.T)
    with pytest.raises(ValueError, match="no time axis"):
        frame_rate_from_timestamps(np.array([500.0]))


@pytest.mark.parametrize("samples", [168000, 168001, 167999])
def test_frame_grid_length_at_whole_frames(samples):
    # A 75 Hz codec gives ceil(samples / 320) frames; its float32 centre timestamps give a rate a
    # hair off 75, which must not add or drop a grid frame (168000 samples = exactly 525 frames).
    frames = -(-samples // 320)
    timestamps = ((np.arange(frames) + 0.5) * 1000 / 75).astype(np.float32)
    rate = frame_rate_from_timestamps(timestamps)
    assert rate == pytest.approx(75.0, rel=1e-6)
    grid = to_frame_grid(np.zeros((frames, 3)), timestamps, samples / 24000, rate)
    assert grid.shape == (3, frames)


# --------------------------------------------------------------------------- encoders


HEAR_MODULE = textwrap.dedent('''
    """A tiny HEAR module: log power in 4 FFT bands at 16 kHz, hop 480 (33.3 frames/s),
    timestamps at frame starts (not centres)."""
    import torch

    class TinyModel(torch.nn.Module):
        sample_rate = 16000
        scene_embedding_size = 4
        timestamp_embedding_size = 4

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(4))

    def load_model(model_file_path=""):
        return TinyModel()

    def get_timestamp_embeddings(audio, model):
        hop = 480
        frames = max(1, audio.shape[1] // hop)
        x = audio[:, : frames * hop].reshape(audio.shape[0], frames, hop)
        power = torch.fft.rfft(x, dim=-1).abs() ** 2
        bands = torch.stack([band.sum(-1) for band in power[..., :240].chunk(4, dim=-1)], dim=-1)
        timestamps = (torch.arange(frames, dtype=torch.float32) * 30.0).expand(audio.shape[0], -1)
        return torch.log(bands + 1e-8) * model.scale, timestamps

    def get_scene_embeddings(audio, model):
        return get_timestamp_embeddings(audio, model)[0].mean(dim=1)
''')


def test_hear_module_encoder_is_accepted(tmp_path):
    module = tmp_path / "tiny_hear.py"
    module.write_text(HEAR_MODULE)
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    rng = np.random.default_rng(0)
    # 0.5 s at 44.1 kHz, stereo: the workflow downmixes and resamples to the encoder's 16 kHz.
    sf.write(audio_dir / "a.wav", 0.1 * rng.standard_normal((22050, 2)), 44100)
    handle = load_encoder(module)
    assert handle.kind == "hear_module" and handle.sample_rate == 16000 and handle.embedding_size == 4
    assert "downmixed to mono" in handle.channel_policy and "16000 Hz" in handle.channel_policy
    embeddings = encoder_embeddings(handle, audio_dir, ["a.wav"])
    assert embeddings.frame_rate == pytest.approx(1000 / 30)
    assert not embeddings.identity_map  # start timestamps: the grid re-indexes them
    grid = embeddings.frames["a.wav"]
    assert grid.shape == (4, math.ceil(0.5 * 1000 / 30))
    # Reference: the module called directly on the same 16 kHz mono audio; grid frame j is the
    # module frame whose start timestamp is nearest to the centre (j + 1/2) * 30 ms -> frame j.
    audio = torch.from_numpy(load_audio(audio_dir / "a.wav", 16000))[None]
    direct, _ = handle.api.get_timestamp_embeddings(audio, handle.model)
    np.testing.assert_allclose(grid[:, :16], direct[0, :16].detach().numpy().T, rtol=0, atol=1e-6)
    split, reason = adaptation_split(handle)
    assert split is None and "exposes only the HEAR functions" in reason


def test_missing_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing file"):
        load_encoder("no_such_module_anywhere_xyz")
    bad = tmp_path / "bad_module.py"
    bad.write_text("def load_model():\n    return None\n")
    with pytest.raises(ValueError, match="lacks get_timestamp_embeddings"):
        load_encoder(bad)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return synthesize_event_corpus(root, (8, 4, 4), seed=5)


def _saved_crnn(directory) -> str:
    torch.manual_seed(0)
    model = WeakCRNN(("click", "tone", "chirp"), "linear_softmax", TINY_CRNN).eval()
    save_weak_encoder(model, directory)
    return str(directory)


def test_frozen_encoder_unchanged_after_probing(tiny_corpus, tmp_path):
    handle = load_encoder(_saved_crnn(tmp_path / "crnn"))
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
    from audioenc.timing.probe import ProbeHead

    start = ProbeHead(handle.embedding_size, classes, "linear_softmax", hidden=8)
    assert not torch.equal(start.hidden.weight, probe.hidden.weight)


@pytest.mark.parametrize("kind", ["codec", "weak_crnn"])
def test_adaptation_cut_reproduces_the_hear_embeddings(kind, tiny_corpus, tmp_path):
    if kind == "codec":
        torch.manual_seed(0)
        config = ModelConfig(n_filters=4, dimension=16, lstm=1)
        export_model(tmp_path, "model_best", CodecModel.from_config(config).eval(), config)
        source = str(tmp_path / "model_best.safetensors")
    else:
        source = _saved_crnn(tmp_path / "crnn")
    handle = load_encoder(source)
    split, reason = adaptation_split(handle)
    assert split is not None, reason
    train = read_corpus_split(tiny_corpus, "train")
    files = train.files[:4]
    frozen = encoder_embeddings(handle, train.audio_dir, files)
    assert frozen.identity_map and frozen.frame_rate == pytest.approx(75.0 if kind == "codec" else 25.0)
    audio = load_audio(train.audio_dir / files[0], handle.sample_rate)
    assert check_adaptation_split(split, audio, frozen.frames[files[0]], "test") < 1e-5
    before = parameters_fingerprint(handle.model)
    top_before = parameters_fingerprint(split.top)
    classes = ("click", "tone")
    targets = clip_targets(train, classes, files)
    probe, _ = train_probe(dict(frozen.frames), targets, dict(frozen.frames), targets, classes, "max",
                           config=ProbeConfig(hidden=8, epochs=1, batch_size=2), seed=0)
    lower = {f: split.lower(load_audio(train.audio_dir / f, handle.sample_rate)) for f in files}
    adapted, history = train_adapted(split, probe, lower, targets, lower, targets,
                                     config=ProbeConfig(hidden=8, batch_size=2, adapt_epochs=2, learning_rate=0.05), seed=0)
    assert len(history.valid_loss) == 2 and history.best_epoch in (-1, 0, 1)
    after = parameters_fingerprint(handle.model)
    assert all(np.array_equal(before[name], after[name]) for name in before)  # the original is untouched
    assert all(np.array_equal(top_before[name], value) for name, value in parameters_fingerprint(split.top).items())
    moved = parameters_fingerprint(adapted.top)
    changed = any(not np.array_equal(top_before[name], moved[name]) for name in top_before)
    # The frozen start competes: kept (-1) only if no epoch lowered the validation loss below it.
    assert changed == (history.best_epoch >= 0)
    start_scores = np.stack([probe(torch.from_numpy(frozen.frames[f])[None]).clip_scores[0].detach().numpy() for f in files])
    start_loss = torch.nn.functional.binary_cross_entropy(torch.from_numpy(start_scores).clamp(1e-6, 1 - 1e-6),
                                                          torch.from_numpy(targets)).item()
    assert min([start_loss, *history.valid_loss]) == pytest.approx(
        start_loss if history.best_epoch == -1 else history.valid_loss[history.best_epoch], abs=1e-6)


# --------------------------------------------------------------------------- evaluation


def _split_with_truth() -> EventSplit:
    strong = {
        "a.wav": [Event(0.5, 1.0, "x"), Event(1.5, 1.8, "y")],
        "b.wav": [Event(0.2, 0.6, "x")],
        "c.wav": [Event(1.0, 1.9, "y")],
        "d.wav": [],
    }
    files = sorted(strong)
    return EventSplit(
        name="test", audio_dir=None, files=files, durations={f: 2.0 for f in files},
        weak={f: tuple(sorted({e.label for e in strong[f]})) for f in files}, strong=strong, classes=("x", "y"),
    )


def _predictions(split: EventSplit, shift: float) -> Predictions:
    """Frame scores 0.9 on each true event shifted by ``shift`` seconds, at 10 frames/s."""
    frame_scores, clip_scores = {}, {}
    for f in split.files:
        scores = np.full((2, 20), 0.1)
        for event in split.strong[f]:
            row = ("x", "y").index(event.label)
            start, stop = round((event.onset + shift) * 10), round((event.offset + shift) * 10)
            scores[row, max(0, start):min(20, stop)] = 0.9
        frame_scores[f] = scores
        clip_scores[f] = scores.max(axis=1)
    return Predictions(frame_scores, clip_scores, 10.0, ("x", "y"))


def test_evaluator_point_values_match_the_boundary_module():
    split = _split_with_truth()
    evaluator = ClipEvaluator(split, ("x", "y"), resamples=50, seed=0, f1_resamples=20)
    late = _predictions(split, 0.3)
    result = evaluator.evaluate(late, with_psds=False)
    reference_f1 = collar_f1(late.frame_scores, split.strong, ("x", "y"), 10.0, durations=split.durations)
    assert result["point"]["collar_f1"] == pytest.approx(reference_f1.f1)
    summary = summarize_boundaries(boundary_errors(late.frame_scores, split.strong, ("x", "y"), 10.0,
                                                   durations=split.durations))
    assert result["point"]["onset_within"] == pytest.approx(summary.onset_within)
    assert result["point"]["median_abs_onset"] == pytest.approx(summary.median_abs_onset_error)
    assert result["point"]["clip_map"] == pytest.approx(1.0)  # clip maxima rank every positive first
    assert result["intervals"]["collar_f1"]["resamples"] <= 20
    # A model against itself: zero difference with a zero-width interval on every metric.
    same = evaluator.paired_difference(late, late)
    for metric, interval in same.items():
        if interval["value"] is not None:
            assert interval["value"] == 0 and interval["low"] == 0 and interval["high"] == 0, metric
    # On time against 300 ms late: on time wins the onset share by the whole paired interval.
    better = evaluator.paired_difference(_predictions(split, 0.0), late)
    assert better["onset_within"]["value"] == pytest.approx(1.0) and better["onset_within"]["low"] > 0


def test_evaluator_without_strong_labels_says_why():
    split = _split_with_truth()
    split.strong = None
    evaluator = ClipEvaluator(split, ("x", "y"), resamples=10)
    assert not evaluator.boundaries_available and "no strong labels" in evaluator.boundary_reason
    result = evaluator.evaluate(_predictions(_split_with_truth(), 0.0), with_psds=True)
    assert set(result["point"]) == {"clip_map", "clip_accuracy"}
    assert result["boundary"]["available"] is False
