"""Local transformers snapshots as frozen encoders (audioenc.timing.pretrained): every family at tiny size.

References: frame counts and timestamps are the hand formulas of each tiny config (hf_tiny.py) and the
models' own output lengths (``_get_feat_extract_output_lengths``, ``get_encoded_length``, the encoder's
output); embeddings are recomputed here with transformers alone (feature extractor + model +
``output_hidden_states``, or the codec's public ``encode``), never through audioenc's code.
"""

from __future__ import annotations

import json
import math
import shutil
import socket

import numpy as np
import pytest
import soundfile as sf
import torch
import transformers as tf
from safetensors.torch import load_file, save_file

from audioenc import hear
from audioenc.cli import main
from audioenc.errors import UserError
from audioenc.timing.encoders import encoder_embeddings, load_encoder
from audioenc.timing.pretrained import hf
from audioenc.timing.pretrained.geometry import FrameGeometry, waveform
from audioenc.timing.pretrained.windows import plan_windows
from tests.timing import hf_tiny

FAMILIES = ("wav2vec2", "hubert", "wavlm", "whisper", "ast", "encodec", "dac", "mimi")
SSL = ("wav2vec2", "hubert", "wavlm")
HIDDEN = (*SSL, "whisper", "ast")
CODECS = ("encodec", "dac", "mimi")
RATES = {  # (sample rate, frames/s) by hand from hf_tiny's configs
    "wav2vec2": (16000, 50.0),
    "hubert": (16000, 50.0),
    "wavlm": (16000, 50.0),
    "whisper": (16000, 50.0),  # hop 160, conv strides 1 and 2
    "ast": (16000, 10.0),  # hop 160, time stride 10
    "encodec": (24000, 75.0),  # hop 4*4*4*5 = 320
    "dac": (16000, 500.0),  # hop 2*4*4 = 32
    "mimi": (24000, 37.5),  # hop 320, downsampled by 2
}
BASE_CLASSES = {
    "wav2vec2": tf.Wav2Vec2Model,
    "hubert": tf.HubertModel,
    "wavlm": tf.WavLMModel,
    "whisper": tf.WhisperModel,
    "ast": tf.ASTModel,
    "encodec": tf.EncodecModel,
    "dac": tf.DacModel,
    "mimi": tf.MimiModel,
}


@pytest.fixture(scope="session")
def snapshots(tmp_path_factory):
    """Every tiny snapshot, built and saved once per session."""
    return hf_tiny.build_all(tmp_path_factory.mktemp("hf_snapshots"))


def sounds(seconds: float, rate: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    samples = int(round(seconds * rate))
    return torch.from_numpy(np.random.default_rng(seed).normal(0, 0.1, (n, samples)).astype(np.float32))


def reference_model(name: str, folder):
    return BASE_CLASSES[name].from_pretrained(folder, local_files_only=True).eval()


def reference_hidden_states(name: str, folder, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Hidden states ``[n, F, E]`` of the clip by transformers alone, cropped/averaged by hand."""
    arrays = list(audio.numpy())
    model = reference_model(name, folder)
    with torch.no_grad():
        if name in SSL:
            extractor = tf.Wav2Vec2FeatureExtractor.from_pretrained(folder) if name != "hubert" else None
            extractor = extractor or tf.Wav2Vec2FeatureExtractor()  # hubert: transformers' defaults
            values = extractor(arrays, sampling_rate=16000, return_tensors="pt").input_values
            return model(values, output_hidden_states=True).hidden_states
        if name == "whisper":
            extractor = tf.WhisperFeatureExtractor.from_pretrained(folder)
            features = extractor(arrays, sampling_rate=16000, padding="max_length", return_tensors="pt").input_features
            states = model.encoder(features, output_hidden_states=True).hidden_states
            frames = math.ceil(audio.shape[1] / 320)  # encoder frame j is centred on mel frame 2j, sample 320 j
            return tuple(state[:, :frames] for state in states)
        extractor = tf.ASTFeatureExtractor.from_pretrained(folder)
        values = extractor(arrays, sampling_rate=16000, return_tensors="pt").input_values
        states = model(values, output_hidden_states=True).hidden_states
        columns = min(9, math.ceil((audio.shape[1] - 1400) / 1600))  # column t centred on 1600 t + 1400 samples
        # patch (f, t) is token 2 + 9 f + t (2 frequency rows, 9 time columns; tokens 0, 1: CLS, distillation)
        return tuple(
            torch.stack([(state[:, 2 + t] + state[:, 2 + 9 + t]) / 2 for t in range(columns)], dim=1)
            for state in states
        )


def embed(model, audio: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    embeddings, timestamps = hf.get_timestamp_embeddings(audio, model)
    return embeddings, timestamps[0].numpy().astype(np.float64)


# ------------------------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_loads_with_rates_from_its_config(snapshots, name):
    handle = load_encoder(snapshots[name])
    rate, frame_rate = RATES[name]
    details = handle.describe()["pretrained"]
    assert handle.kind == "hf_snapshot" and details["family"] == name
    assert handle.sample_rate == rate and handle.model.frame_rate == frame_rate
    assert details["sample_rate"] == rate and details["frame_rate"] == frame_rate
    assert not any(parameter.requires_grad for parameter in handle.model.parameters())
    assert handle.embedding_size == (32 if name in HIDDEN else 16)


def test_receptive_fields_and_windows_are_stated(snapshots):
    """Receptive fields from the strides and kernels: wav2vec2 400 samples (25 ms), Whisper 4 mel hops + a 400-sample
    FFT = 1040 (65 ms), AST 15 fbank hops + 400 = 2800 (175 ms); Whisper's window 100 mel frames = 1 s, AST's
    (100 - 1) * 160 + 400 = 16240 samples; codecs state no finite field."""
    expected = {"wav2vec2": (400, None), "whisper": (1040, 1.0), "ast": (2800, 16240 / 16000), "encodec": (None, None)}
    for name, (field, window) in expected.items():
        details = load_encoder(snapshots[name]).describe()["pretrained"]
        assert details["receptive_field_samples"] == field
        assert details["max_seconds"] == window and details["window_seconds"] == window
        assert details["receptive_field_note"]


def test_stock_wav2vec2_geometry_matches_transformers_frame_lengths():
    """The stock feature encoder (Wav2Vec2Config's defaults): stride 320, field 400, counts equal to
    transformers' own _get_feat_extract_output_lengths for a range of lengths."""
    config = tf.Wav2Vec2Config()
    geometry = waveform(16000)
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        geometry = geometry.then(kernel, stride)
    assert (geometry.stride, geometry.offset, geometry.receptive_field) == (320, 0, 400)
    model = tf.Wav2Vec2Model(tf.Wav2Vec2Config(**hf_tiny.SSL))
    for samples in (399, 400, 719, 720, 16000, 16001, 48123):
        assert geometry.frames(samples) == int(model._get_feat_extract_output_lengths(samples))
    assert np.allclose(geometry.timestamps_ms(3), [12.5, 32.5, 52.5])


# ------------------------------------------------------------------------------------------------ frames and times


def expected_frames(name: str, samples: int) -> tuple[int, np.ndarray]:
    """(frame count, timestamps in ms) by hand from each tiny config."""
    if name in SSL:
        count = (samples - 400) // 320 + 1
        return count, (320 * np.arange(count) + 200) / 16
    if name == "whisper":
        count = math.ceil(samples / 320)  # windows of 1 s keep every centre 320 j < T
        return count, 20.0 * np.arange(count)
    if name == "ast":
        start = 0 if samples <= 16240 else math.ceil((samples - 16240) / 1600) * 1600  # the last window's start
        count = start // 1600 + min(9, math.ceil((samples - start - 1400) / 1600))
        return count, 100.0 * np.arange(count) + 87.5
    hop = {"encodec": 320, "dac": 32, "mimi": 640}[name]
    count = math.ceil(samples / hop)
    return count, (np.arange(count) + 0.5) * hop * 1000 / RATES[name][0]


def model_frames(name: str, folder, samples: int) -> int:
    """The model's own frame count (transformers' length helpers or a forward pass)."""
    model = reference_model(name, folder)
    with torch.no_grad():
        if name in SSL:
            return int(model._get_feat_extract_output_lengths(samples))
        if name == "mimi":
            return int(model.get_encoded_length(torch.tensor([samples]))[0])
        if name == "encodec":
            return model.encoder(torch.zeros(1, 1, samples)).shape[-1]
        return model.encoder(torch.zeros(1, 1, math.ceil(samples / 32) * 32)).shape[-1]  # dac: padded to hops


@pytest.mark.parametrize("name", FAMILIES)
def test_frame_counts_and_timestamps_are_exact(snapshots, name):
    model = hf.load_snapshot(snapshots[name])
    rate = RATES[name][0]
    for seconds in (0.53, 1.0, 2.27):
        audio = sounds(seconds, rate)
        embeddings, timestamps = embed(model, audio)
        count, times = expected_frames(name, audio.shape[1])
        assert embeddings.shape == (2, count, model.timestamp_embedding_size)
        np.testing.assert_allclose(timestamps, times, rtol=1e-6, atol=1e-3)
        if name not in ("whisper", "ast"):
            assert count == model_frames(name, snapshots[name], audio.shape[1])
    if name in ("whisper", "ast"):  # a full window: every frame the encoder computes is kept
        full = hf.load_snapshot(snapshots[name]).family.max_samples
        assert embed(model, sounds(full / rate, rate))[0].shape[1] == (50 if name == "whisper" else 9)


# ------------------------------------------------------------------------------------------------ layers


@pytest.mark.parametrize("name", HIDDEN)
def test_one_layer_equals_the_models_hidden_state(snapshots, name):
    audio = sounds(0.8, 16000)
    reference = reference_hidden_states(name, snapshots[name], audio)
    assert len(reference) == 3  # embeddings + 2 layers
    for layer in (0, 2):
        model = hf.load_snapshot(snapshots[name], layer=layer)
        embeddings, _ = embed(model, audio)
        assert model.layers == 1 and model.layer == str(layer)
        torch.testing.assert_close(embeddings, reference[layer], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ("wav2vec2", "whisper", "ast"))
def test_all_layers_side_by_side(snapshots, name):
    """layer='all': [frames, L * E], group l = columns l*E .. (l+1)*E - 1 = hidden state l; model.layers = L."""
    audio = sounds(0.8, 16000, seed=1)
    model = hf.load_snapshot(snapshots[name], layer="all")
    embeddings, _ = embed(model, audio)
    reference = reference_hidden_states(name, snapshots[name], audio)
    assert model.layers == 3 and model.timestamp_embedding_size == 3 * 32 and model.layer == "all (0-2)"
    for group in range(3):
        torch.testing.assert_close(
            embeddings[..., group * 32 : (group + 1) * 32], reference[group], rtol=1e-5, atol=1e-5
        )


def test_default_layers_are_stated(snapshots):
    """Middle state for speech SSL (2 layers // 2 = 1), last for Whisper and AST, latent for codecs."""
    for name, layer in (("wav2vec2", "1"), ("hubert", "1"), ("whisper", "2"), ("ast", "2"), ("mimi", "latent")):
        details = load_encoder(snapshots[name]).describe()["pretrained"]
        assert details["layer"] == layer and details["layer_is_default"] and details["default_reason"]
    assert load_encoder(snapshots["wav2vec2"], layer=2).describe()["pretrained"]["layer_is_default"] is False


@pytest.mark.parametrize("name", CODECS)
def test_codec_latents_and_quantized_latents(snapshots, name):
    """Latents equal the encoder's output; quantized latents at a bandwidth equal what the codec's public
    encode gives (EnCodec: 1.5 kbps / 0.3 per codebook = 5; DAC: 4 / 2 = 2; Mimi: 0.3 / 0.15 = 2)."""
    rate = RATES[name][0]
    audio = sounds(0.7, rate, n=3)  # 3 sounds, 2 codebooks: a swapped [K, n] axis would show
    model = reference_model(name, snapshots[name])
    bandwidth, codebooks = {"encodec": (1.5, 5), "dac": (4.0, 2), "mimi": (0.3, 2)}[name]
    with torch.no_grad():
        x = audio[:, None]
        if name == "dac":
            x = torch.nn.functional.pad(x, (0, -x.shape[-1] % 32))
            latents = model.encoder(x)
            quantized = model.encode(x, n_quantizers=codebooks).quantized_representation
        elif name == "encodec":
            latents = model.encoder(x)
            codes = model.encode(x, bandwidth=bandwidth).audio_codes[0]  # [n, K, F] of the single chunk
            quantized = model.quantizer.decode(codes.transpose(0, 1))
        else:
            latents = model.encoder(x).latents
            quantized = model.quantizer.decode(model.encode(x, num_quantizers=codebooks).audio_codes)
    loaded = hf.load_snapshot(snapshots[name])
    torch.testing.assert_close(embed(loaded, audio)[0], latents.transpose(1, 2), rtol=1e-5, atol=1e-5)
    loaded = hf.load_snapshot(snapshots[name], layer="quantized", bandwidth=bandwidth)
    assert loaded.choice.codebooks == codebooks and loaded.layer.startswith(f"quantized ({codebooks} codebooks")
    torch.testing.assert_close(embed(loaded, audio)[0], quantized.transpose(1, 2), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ windows


def test_plan_windows_by_hand():
    """T = 10000, stride 100, window 3000, overlap 1000: step 2000, last start ceil(7000 / 100) * 100 = 7000;
    frames centred at (g + 1/2) * 100; cuts at the overlaps' middles (2000 + 3000) / 2 = 2500, 4500, 6500 and
    (7000 + 9000) / 2 = 8000."""
    geometry = FrameGeometry(16000, 100, 0, 100, "hops_started")
    plan = plan_windows(10000, geometry, 3000, 1000)
    assert plan.starts == (0, 2000, 4000, 6000, 7000)
    assert plan.ends == (3000, 5000, 7000, 9000, 10000)
    assert plan.owned == ((0, 25), (25, 45), (45, 65), (65, 80), (80, 100))
    assert plan_windows(3000, geometry, 3000, 1000).owned == ((0, 30),)  # fits: one window
    with pytest.raises(UserError, match="too short"):
        plan_windows(10000, FrameGeometry(16000, 100, 0, 2000), 3000, 200)


@pytest.mark.parametrize("name", ("wav2vec2", "whisper", "ast"))
def test_windowed_frames_are_the_windows_own_frames(snapshots, name):
    """A 2.6 s clip through 1 s windows: each frame is the frame the model computes on its window (direct
    transformers run on that stretch of audio), at the clip's frame index; counts and times as one pass."""
    options = {"max_seconds": 1.0} if name == "wav2vec2" else {}
    model = hf.load_snapshot(snapshots[name], layer=2, **options)
    audio = sounds(2.6, 16000, seed=2)
    embeddings, timestamps = embed(model, audio)
    plan = plan_windows(audio.shape[1], model.family.geometry, model.window_samples, model.overlap_samples)
    assert len(plan.starts) == 3
    stride = model.family.geometry.stride
    for start, end, (first, stop) in zip(plan.starts, plan.ends, plan.owned):
        window = reference_hidden_states(name, snapshots[name], audio[:, start:end])[2]
        local = first - start // stride
        torch.testing.assert_close(
            embeddings[:, first:stop], window[:, local : local + stop - first], rtol=1e-5, atol=1e-5
        )
    count, times = expected_frames(name, audio.shape[1])
    assert embeddings.shape[1] == count
    np.testing.assert_allclose(timestamps, times, rtol=1e-6, atol=1e-3)


def test_windowed_equals_one_shot_where_both_fit(snapshots):
    audio = sounds(1.5, 16000, seed=3)
    one_shot = embed(hf.load_snapshot(snapshots["wavlm"]), audio)[0]
    assert torch.equal(embed(hf.load_snapshot(snapshots["wavlm"], max_seconds=1.5), audio)[0], one_shot)
    assert torch.equal(embed(hf.load_snapshot(snapshots["wavlm"], max_seconds=4.0), audio)[0], one_shot)


@pytest.mark.parametrize(("name", "layer", "window", "overlap"), [("dac", None, 0.2, 0.1), ("wav2vec2", 0, 1.0, 0.5)])
def test_windowed_equals_one_shot_for_local_frames(snapshots, name, layer, window, overlap):
    """Frames that depend only on nearby audio come out of overlapping windows exactly as from one pass: DAC's
    convolutional latents (field measured here by gradient, < overlap / 2 either side) and wav2vec2's hidden
    state 0 in its layer-norm layout (conv features + a 16-frame positional conv; field < 0.25 s either side)."""
    rate = RATES[name][0]
    audio = sounds(1.6 if name == "dac" else 2.6, rate, seed=4)
    if name == "dac":
        encoder = reference_model("dac", snapshots["dac"]).encoder
        probe = torch.zeros(1, 1, 3200, requires_grad=True)
        encoder(probe)[0, :, 50].sum().backward()
        touched = np.flatnonzero(probe.grad[0, 0].abs().numpy() > 0)
        assert max(50 * 32 + 16 - touched[0], touched[-1] - (50 * 32 + 16)) < overlap * rate / 2
    one_shot = embed(hf.load_snapshot(snapshots[name], layer=layer), audio)[0]
    windowed_model = hf.load_snapshot(snapshots[name], layer=layer, max_seconds=window, overlap_seconds=overlap)
    plan = plan_windows(
        audio.shape[1], windowed_model.family.geometry, windowed_model.window_samples, windowed_model.overlap_samples
    )
    assert len(plan.starts) >= 3
    torch.testing.assert_close(embed(windowed_model, audio)[0], one_shot, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ errors


def copy_without(source, target, *names):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*names))
    return target


def test_incomplete_or_broken_folders_say_what_is_missing(snapshots, tmp_path):
    no_weights = copy_without(snapshots["wav2vec2"], tmp_path / "no_weights", "model.safetensors")
    with pytest.raises(UserError, match=r"no_weights: config\.json describes a wav2vec2 model but no weights"):
        load_encoder(no_weights)
    bad_json = copy_without(snapshots["wav2vec2"], tmp_path / "bad_json")
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(UserError, match=r"bad_json/config\.json is not a readable JSON file"):
        load_encoder(bad_json)
    no_config = copy_without(snapshots["wav2vec2"], tmp_path / "no_config", "config.json")
    with pytest.raises(UserError, match="no_config: no config.json"):
        load_encoder(no_config)
    no_type = copy_without(snapshots["wav2vec2"], tmp_path / "no_type")
    config = json.loads((no_type / "config.json").read_text())
    del config["model_type"]
    (no_type / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="names no model_type"):
        load_encoder(no_type)


def test_missing_tensor_is_refused_not_randomly_initialised(snapshots, tmp_path):
    folder = copy_without(snapshots["wavlm"], tmp_path / "wavlm")
    weights = load_file(folder / "model.safetensors")
    dropped = next(key for key in weights if "encoder.layers.1." in key)
    save_file({key: value for key, value in weights.items() if key != dropped}, folder / "model.safetensors")
    with pytest.raises(UserError, match=r"lack 1 tensor\(s\) the wavlm encoder needs"):
        load_encoder(folder)


def test_unsupported_architecture_lists_the_supported_ones(snapshots):
    with pytest.raises(UserError, match=r"model_type 'bert' \(config.json\) is not a supported") as error:
        load_encoder(snapshots["bert"])
    assert all(
        model_type in str(error.value)
        for model_type in ("wav2vec2", "whisper", "audio-spectrogram-transformer", "mimi")
    )


def test_unsupported_snapshot_exits_2_from_the_cli(snapshots, tmp_path, capsys):
    assert main(["workflow", "--encoder", str(snapshots["bert"]), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "model_type 'bert'" in error and error.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_bad_options_are_user_errors(snapshots):
    cases = [
        ("wav2vec2", {"layer": 3}, "hidden states 0-2"),
        ("wav2vec2", {"layer": "quantized"}, "hidden states 0-2"),
        ("wav2vec2", {"bandwidth": 1.5}, "applies to codecs"),
        ("encodec", {"layer": 1}, "'latent' or 'quantized'"),
        ("encodec", {"layer": "quantized", "bandwidth": 30.0}, r"give 0.3-3 kbps"),
        ("encodec", {"bandwidth": 1.5}, "needs layer=quantized"),
        ("whisper", {"max_seconds": 2.0}, "at most 1 s"),
        ("whisper", {"overlap_seconds": 1.0}, "overlap shorter than"),
        ("whisper", {"colour": "red"}, "unknown for the snapshot"),
    ]
    for name, options, message in cases:
        with pytest.raises(UserError, match=message):
            load_encoder(snapshots[name], **options)
    with pytest.raises(UserError, match="apply to transformers snapshot folders"):
        load_encoder("audioenc.timing.weak_hear", layer=1)


def test_loading_makes_no_network_call(snapshots, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading a local snapshot")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = load_encoder(snapshots["whisper"]).model
    assert model.family.name == "whisper"


# ------------------------------------------------------------------------------------------------ HEAR path


def test_hear_load_model_and_the_workflow_path(snapshots, tmp_path):
    """hear.load_model takes a snapshot folder (48 kHz HEAR audio resampled to 16 kHz inside), and
    encoder_embeddings puts its frames on the 50 frames/s grid: ceil(d * 50) frames per clip."""
    model = hear.load_model(str(snapshots["wav2vec2"]))
    assert isinstance(model, hf.PretrainedHEAR) and model.sample_rate == 48000 and model.model_sample_rate == 16000
    embeddings, timestamps = hear.get_timestamp_embeddings(sounds(1.0, 48000), model)
    assert embeddings.shape == (2, 49, 32) and float(timestamps[0, 0]) == 12.5
    assert hf.get_scene_embeddings(sounds(1.0, 48000), model).shape == (2, 32)
    rng = np.random.default_rng(5)
    for name, seconds in (("a.wav", 1.0), ("b.wav", 1.37)):
        sf.write(tmp_path / name, rng.normal(0, 0.1, int(seconds * 16000)).astype(np.float32), 16000)
    handle = load_encoder(snapshots["wav2vec2"], layer=2)
    frames = encoder_embeddings(handle, tmp_path, ["a.wav", "b.wav"])
    assert frames.frame_rate == 50.0
    assert frames.frames["a.wav"].shape == (32, 50) and frames.frames["b.wav"].shape == (32, math.ceil(1.37 * 50))
    direct = embed(handle.model, torch.from_numpy(sf.read(tmp_path / "a.wav", dtype="float32")[0])[None])[0]
    np.testing.assert_allclose(frames.frames["a.wav"][:, :49], direct[0].numpy().T, rtol=1e-5, atol=1e-6)
