"""Tests for audioenc.hear: the HEAR API over codec encoders and the weak-label CRNN.

References: the encoders called directly (``model.encoder`` one-shot on the whole clip; the CRNN's
``embeddings`` on :class:`~audioenc.timing.features.LogMel` features); timestamps by hand —
frame ``k`` is centred at ``(k + 1/2) · 1000 / frame_rate`` ms, i.e. 6.667 ms + k · 13.333 ms at
75 frames/s (hop 320 at 24 kHz) and 10 ms + k · 20 ms for the CRNN's 50 frames/s.
"""

from __future__ import annotations

import math

import pytest
import torch

from audioenc import hear
from audioenc.config import ModelConfig
from audioenc.models.codec import CodecModel
from audioenc.timing.features import LogMel, LogMelConfig
from audioenc.timing.weak import CRNNConfig, WeakCRNN, save_weak_encoder
from audioenc.timing.weak_hear import WeakCRNNHEAR
from audioenc.training.checkpoint import export_model

TINY = dict(n_filters=4, dimension=16, lstm=1)  # paper hop 320: 75 frames/s at 24 kHz


def _export_codec(directory, channels: int = 1, quantizer: str = "none") -> tuple[CodecModel, str]:
    torch.manual_seed(0)
    config = ModelConfig(**TINY, channels=channels, quantizer=quantizer, n_q=2, bins=8, q_dropout=False)
    model = CodecModel.from_config(config)
    if quantizer == "rvq":
        with torch.no_grad():
            model(0.3 * torch.randn(2, channels, 24000, generator=torch.Generator().manual_seed(1)))
    model.eval()
    export_model(directory, "model_best", model, config)
    return model, str(directory / "model_best.safetensors")


def _audio(n_sounds: int, n_samples: int, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.randn(n_sounds, n_samples, generator=torch.Generator().manual_seed(seed))


def test_codec_shapes_timestamps_and_scene(tmp_path):
    codec, path = _export_codec(tmp_path)
    model = hear.load_model(path, batch_size=2, chunk_frames=4)  # 3 sounds: two batches, many chunks
    assert model.sample_rate == 24000
    assert model.scene_embedding_size == model.timestamp_embedding_size == 16
    audio = _audio(3, 24000 + 100)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    frames = math.ceil(24100 / 320)  # 76
    assert embeddings.shape == (3, frames, 16) and embeddings.dtype == torch.float32
    assert timestamps.shape == (3, frames) and timestamps.dtype == torch.float32
    expected_times = torch.tensor([(k + 0.5) * 1000 / 75 for k in range(frames)], dtype=torch.float32)
    assert timestamps[0, 0].item() == pytest.approx(1000 / 75 / 2)  # 6.667 ms
    torch.testing.assert_close(timestamps, expected_times.expand(3, -1), rtol=0, atol=1e-4)
    with torch.no_grad():
        clips = audio[:, None, :]
        reference = codec.encoder(clips / codec.input_scale(clips)).transpose(1, 2)  # one-shot, whole clips
    torch.testing.assert_close(embeddings, reference, rtol=0, atol=1e-6)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, 16)
    torch.testing.assert_close(scene, embeddings.mean(dim=1), rtol=0, atol=0)
    # Each sound at its own level: 40 dB quieter sounds embed the same (up to the 1e-8 level floor).
    gains = torch.tensor([0.01, 1.0, 3.0])[:, None]
    quieter, _ = hear.get_timestamp_embeddings(gains * audio, model)
    torch.testing.assert_close(quieter, embeddings, rtol=0, atol=1e-5)


def test_multichannel_codec_repeats_mono_on_every_channel(tmp_path):
    codec, path = _export_codec(tmp_path, channels=2)
    model = hear.load_model(path)
    assert model.channel_policy == "mono repeated on all 2 channels"
    audio = _audio(2, 3200, seed=1)
    embeddings, _ = hear.get_timestamp_embeddings(audio, model)
    with torch.no_grad():
        stacked = torch.stack([audio, audio], dim=1)
        reference = codec.encoder(stacked / codec.input_scale(stacked)).transpose(1, 2)
    torch.testing.assert_close(embeddings, reference, rtol=0, atol=1e-6)


def test_rvq_codec_embeds_continuous_latents_and_run_folder_loads(tmp_path):
    codec, _ = _export_codec(tmp_path, quantizer="rvq")
    model = hear.load_model(str(tmp_path))  # a run folder: model_best.safetensors inside
    audio = _audio(1, 4000, seed=2)
    embeddings, _ = hear.get_timestamp_embeddings(audio, model)
    with torch.no_grad():
        latents = codec.encoder(audio[:, None] / codec.input_scale(audio[:, None])).transpose(1, 2)
    torch.testing.assert_close(embeddings, latents, rtol=0, atol=1e-6)
    # Not the quantized latents: a 2 × 8-entry RVQ cannot reproduce random latents.
    with torch.no_grad():
        quantized = codec.quantizer.decode(codec.encode(audio[:, None])[0]).transpose(1, 2)
    assert (embeddings - quantized).abs().max() > 1e-3


def test_weak_crnn_shapes_and_timestamps(tmp_path):
    torch.manual_seed(0)
    crnn = WeakCRNN(("dog", "bell"), "linear_softmax", CRNNConfig(stem_channels=4, conv_channels=(8, 8), rnn_hidden=6))
    crnn.eval()
    save_weak_encoder(crnn, tmp_path / "weak")
    model = hear.load_model(str(tmp_path / "weak"), batch_size=2)
    assert model.sample_rate == 24000 and model.timestamp_embedding_size == model.scene_embedding_size == 12
    audio = _audio(3, 24000, seed=3)  # 1 s: 100 log-mel frames -> 25 output frames (stem time stride 4)
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


def test_bad_inputs_are_clear_errors(tmp_path):
    _, path = _export_codec(tmp_path)
    with pytest.raises(ValueError, match="needs a model file"):
        hear.load_model()
    with pytest.raises(FileNotFoundError):
        hear.load_model(str(tmp_path / "nothing.safetensors"))
    with pytest.raises(TypeError, match="unknown option.*hop"):
        hear.load_model(path, hop=10)
    model = hear.load_model(path)
    with pytest.raises(ValueError, match=r"\[n_sounds, n_samples\].*24000 Hz"):
        hear.get_timestamp_embeddings(torch.zeros(24000), model)
    with pytest.raises(ValueError, match="NaN"):
        hear.get_scene_embeddings(torch.full((1, 320), float("nan")), model)
    with pytest.raises(TypeError, match="load_model"):
        hear.get_scene_embeddings(torch.zeros(1, 320), torch.nn.Linear(1, 1))


def test_register_loader_takes_precedence(tmp_path):
    class Constant(hear.HEARModule):
        sample_rate, frame_rate, scene_embedding_size, timestamp_embedding_size = 24000, 10.0, 3, 3

        def frame_embeddings(self, audio):
            return torch.ones(audio.shape[0], audio.shape[1] // 2400, 3)

    (tmp_path / "my.encoder").write_text("x")
    before = list(hear.LOADERS)
    try:
        hear.register_loader("constant", lambda p: p.suffix == ".encoder", lambda p: Constant())
        model = hear.load_model(str(tmp_path / "my.encoder"))
        embeddings, timestamps = hear.get_timestamp_embeddings(torch.zeros(2, 24000), model)
    finally:
        hear.LOADERS[:] = before
    assert embeddings.shape == (2, 10, 3)
    torch.testing.assert_close(timestamps[0], torch.arange(10, dtype=torch.float32) * 100 + 50)
