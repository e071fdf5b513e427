"""Tests for audioenc.hear: the HEAR API over codec encoders (the weak-label CRNN's wrapper:
tests/timing/test_weak_hear.py).

References: the encoder called directly (``model.encoder`` one-shot on the whole clip); timestamps
by hand: frame ``k`` is centred at ``(k + 1/2) · 1000 / frame_rate`` ms, i.e. 6.667 ms + k · 13.333 ms
at 75 frames/s (hop 320 at 24 kHz).

The HEAR rate: ``load_model`` gives wrappers that take 48 kHz audio (or another HEAR rate) and
resample it to the encoders' 24 kHz inside. Tests of what the encoders compute load with
``sample_rate=None`` (24 kHz in, no resampling); the HEAR-rate tests compare the wrapper with the
24 kHz wrapper run on audio resampled by hand (:func:`audioenc.audio.io.resample`, one sound at a
time), and the resampler with a band-limited signal written down at both rates (no time shift).
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from audioenc import hear
from audioenc.audio.io import resample
from audioenc.config import ModelConfig
from audioenc.models.codec import CodecModel
from audioenc.models.files import export_model

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


def sounds(n_sounds: int, n_samples: int, seed: int = 0) -> torch.Tensor:
    """Gaussian noise ``[n_sounds, n_samples]`` of standard deviation 0.3, seeded."""
    return 0.3 * torch.randn(n_sounds, n_samples, generator=torch.Generator().manual_seed(seed))


def test_codec_shapes_timestamps_and_scene(tmp_path):
    codec, path = _export_codec(tmp_path)
    assert hear.load_model(path).sample_rate == 48000  # the HEAR default; the encoder's own 24 kHz below
    model = hear.load_model(path, batch_size=2, chunk_frames=4, sample_rate=None)  # 3 sounds: 2 batches, many chunks
    assert model.sample_rate == model.model_sample_rate == 24000
    assert model.scene_embedding_size == model.timestamp_embedding_size == 16
    audio = sounds(3, 24000 + 100)
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
    model = hear.load_model(path, sample_rate=None)
    assert model.channel_policy == "mono repeated on all 2 channels"
    audio = sounds(2, 3200, seed=1)
    embeddings, _ = hear.get_timestamp_embeddings(audio, model)
    with torch.no_grad():
        stacked = torch.stack([audio, audio], dim=1)
        reference = codec.encoder(stacked / codec.input_scale(stacked)).transpose(1, 2)
    torch.testing.assert_close(embeddings, reference, rtol=0, atol=1e-6)


def test_rvq_codec_embeds_continuous_latents_and_run_folder_loads(tmp_path):
    codec, _ = _export_codec(tmp_path, quantizer="rvq")
    model = hear.load_model(str(tmp_path), sample_rate=None)  # a run folder: model_best.safetensors inside
    audio = sounds(1, 4000, seed=2)
    embeddings, _ = hear.get_timestamp_embeddings(audio, model)
    with torch.no_grad():
        latents = codec.encoder(audio[:, None] / codec.input_scale(audio[:, None])).transpose(1, 2)
    torch.testing.assert_close(embeddings, latents, rtol=0, atol=1e-6)
    # Not the quantized latents: a 2 × 8-entry RVQ cannot reproduce random latents.
    with torch.no_grad():
        quantized = codec.quantizer.decode(codec.encode(audio[:, None])[0]).transpose(1, 2)
    assert (embeddings - quantized).abs().max() > 1e-3


def test_bad_inputs_are_clear_errors(tmp_path):
    _, path = _export_codec(tmp_path)
    with pytest.raises(ValueError, match="needs a model file"):
        hear.load_model()
    with pytest.raises(FileNotFoundError):
        hear.load_model(str(tmp_path / "nothing.safetensors"))
    with pytest.raises(TypeError, match="unknown option.*hop"):
        hear.load_model(path, hop=10)
    for bad_rate in (0, -16000, "48k", 48000.5, True):
        with pytest.raises(ValueError, match="sample_rate"):
            hear.load_model(path, sample_rate=bad_rate)
    model = hear.load_model(path)
    with pytest.raises(ValueError, match=r"\[n_sounds, n_samples\].*48000 Hz"):
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
        embeddings, timestamps = hear.get_timestamp_embeddings(torch.zeros(2, 48000), model)
    finally:
        hear.LOADERS[:] = before
    # A module that names only its own rate gets the same HEAR rate and resampling: 1 s at 48 kHz.
    assert (model.sample_rate, model.model_sample_rate) == (48000, 24000)
    assert embeddings.shape == (2, 10, 3)
    torch.testing.assert_close(timestamps[0], torch.arange(10, dtype=torch.float32) * 100 + 50)


# ------------------------------------------------------------------------------------------------
# The HEAR rate: audio at 16 / 22.05 / 44.1 / 48 kHz, resampled inside to the encoders' 24 kHz.
# ------------------------------------------------------------------------------------------------


def resampled_by_hand(audio: torch.Tensor, rate: int) -> torch.Tensor:
    """Each sound resampled on its own to 24 kHz, as a user would before calling a 24 kHz model."""
    return torch.from_numpy(np.stack([resample(sound[None].numpy(), rate, 24000)[0] for sound in audio]))


def _samples_at_24k(n_samples: int, rate: int) -> int:
    """``n_samples · 24000 / rate`` rounded to the nearest integer, halves up (soxr's length)."""
    return math.floor(n_samples * 24000 / rate + 0.5)


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 16000])
def test_codec_at_a_hear_rate_equals_the_codec_on_audio_resampled_by_hand(tmp_path, rate):
    codec, path = _export_codec(tmp_path)
    model = hear.load_model(path, sample_rate=rate, batch_size=2)  # 3 sounds: two batches
    native = hear.load_model(path, sample_rate=None)
    assert (model.sample_rate, model.model_sample_rate, model.frame_rate) == (rate, 24000, 75.0)
    audio = sounds(3, rate // 2 + 37, seed=4)  # 0.5 s and a bit: an odd length at every rate
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    by_hand = resampled_by_hand(audio, rate)
    assert by_hand.shape[1] == _samples_at_24k(audio.shape[1], rate)
    frames = math.ceil(by_hand.shape[1] / 320)
    assert embeddings.shape == (3, frames, 16) and timestamps.shape == (3, frames)
    reference, reference_times = hear.get_timestamp_embeddings(by_hand, native)
    torch.testing.assert_close(embeddings, reference, rtol=0, atol=1e-6)
    # Timestamps are the encoder's frame centres, exactly as at 24 kHz: 6.667 ms + k · 13.333 ms.
    torch.testing.assert_close(timestamps, reference_times, rtol=0, atol=0)
    expected = torch.tensor([(k + 0.5) * 1000 / 75 for k in range(frames)], dtype=torch.float32)
    torch.testing.assert_close(timestamps[2], expected, rtol=0, atol=1e-4)
    with torch.no_grad():  # and the encoder itself, one-shot, on the hand-resampled clips
        clips = by_hand[:, None, :]
        direct = codec.encoder(clips / codec.input_scale(clips)).transpose(1, 2)
    torch.testing.assert_close(embeddings, direct, rtol=0, atol=1e-6)
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), reference.mean(1), rtol=0, atol=1e-6)


def _burst(rate: int, n_samples: int) -> np.ndarray:
    """A 3 kHz tone under a 10 ms Gaussian centred at 0.5 s: band-limited far below 8 kHz, so the
    same signal written down at any HEAR rate and at 24 kHz."""
    t = np.arange(n_samples) / rate
    return (np.exp(-(((t - 0.5) / 0.01) ** 2)) * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 16000])
def test_resampling_inside_the_wrapper_does_not_shift_time(tmp_path, rate):
    _, path = _export_codec(tmp_path)
    model = hear.load_model(path, sample_rate=rate)
    audio = torch.from_numpy(_burst(rate, rate))[None]  # 1 s
    inside = model.to_model_rate(audio)
    assert inside.shape == (1, 24000) and inside.dtype == torch.float32
    # The burst written down at 24 kHz: a shift of one 24 kHz sample would leave errors ~0.5.
    torch.testing.assert_close(inside[0], torch.from_numpy(_burst(24000, 24000)), rtol=0, atol=2e-6)
    assert model.clip_to_model_rate(audio[0].numpy()).shape == (24000,)
    native = hear.load_model(path, sample_rate=None)
    assert native.to_model_rate(audio) is audio  # no resampling at the encoder's own rate


def test_codec_adaptation_cut_takes_audio_at_the_hear_rate(tmp_path):
    _, path = _export_codec(tmp_path)
    model = hear.load_model(path)  # 48 kHz
    audio = sounds(1, 48000 + 640, seed=6)
    embeddings, _ = hear.get_timestamp_embeddings(audio, model)
    split = model.split_top()
    lower = split.lower(audio[0].numpy())
    with torch.no_grad():
        rebuilt = split.top(torch.from_numpy(lower)[None], torch.tensor([lower.shape[1]]))[0].T
    torch.testing.assert_close(rebuilt, embeddings[0], rtol=1e-4, atol=1e-5)


def test_load_model_finds_a_weak_crnn_folder_without_the_timing_half_imported(tmp_path):
    """A fresh interpreter that imports only audioenc.hear loads a CRNN folder: the loader's module is
    named in hear.LOADER_MODULES, not registered by whoever imported audioenc.timing first."""
    from audioenc.timing.weak import CRNNConfig, WeakCRNN, save_weak_encoder

    crnn = WeakCRNN(("dog", "bell"), "linear_softmax", CRNNConfig(stem_channels=4, conv_channels=(8, 8), rnn_hidden=6))
    save_weak_encoder(crnn.eval(), tmp_path / "weak")
    script = textwrap.dedent(f"""
        import sys
        from audioenc import hear
        assert "audioenc.timing" not in sys.modules
        model = hear.load_model({str(tmp_path / "weak")!r}, sample_rate=None)
        print(type(model).__name__, model.timestamp_embedding_size)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["WeakCRNNHEAR", "12"]
