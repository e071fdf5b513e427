"""Tests for audioenc.codec_io: loading codecs, exact streaming, bounded memory, containers.

References: the one-shot model (``CodecModel.encode`` / ``decode`` on the whole signal) for every
streaming result; ``soxr.resample`` on the whole file for the streamed resampling; the
``safetensors`` library's own reader and ``numpy.load`` for the containers this module writes by
hand.

Streaming tolerance: chunked and one-shot results are the same arithmetic in a different
summation order, so they agree to float32 rounding; measured max |difference| 1.5e-8 (latents of
magnitude ~0.15) and 7e-8 (audio ~0.13) at chunks of 1 to 40 frames. Asserted: atol 1e-6 on
signals of magnitude 0.1-0.3.
"""

from __future__ import annotations

import gc
import json
import math
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from safetensors.numpy import load_file

from audioenc.audio.io import AudioReadError
from audioenc.codec_io import (
    EncodedHeader,
    EncodedReader,
    StreamingDecoder,
    StreamingEncoder,
    check_model_matches,
    decode_file,
    encode_file,
    load_codec,
    model_weights_hash,
    resampled_length,
)
from audioenc.config import Config, ModelConfig
from audioenc.models.codec import CodecModel
from audioenc.training.checkpoint import export_model, save_training_state

HOP = 32
SMALL = dict(n_filters=4, dimension=16, ratios=(4, 4, 2), lstm=2)
ATOL = 1e-6


def _config(**overrides) -> ModelConfig:
    options = dict(SMALL, n_q=4, bins=16)
    options.update(overrides)
    return ModelConfig(**options)


def _model(seed: int = 0, **overrides) -> tuple[CodecModel, ModelConfig]:
    torch.manual_seed(seed)
    config = _config(**overrides)
    model = CodecModel.from_config(config).eval()
    if model.quantizer is not None:
        model.quantizer.q_dropout = False  # initialise every codebook on one training pass
        model.train()
        with torch.no_grad():
            model(0.3 * torch.randn(4, config.channels, 64 * HOP, generator=torch.Generator().manual_seed(99)))
        model.eval()
    return model, config


def _signal(batch: int, channels: int, length: int, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.randn(batch, channels, length, generator=torch.Generator().manual_seed(seed))


def _stream_encode(stream: StreamingEncoder, audio: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    chunk = chunk_frames * stream.model.hop_length
    parts, position = [], 0
    while audio.shape[-1] - position > chunk:
        parts.append(stream.encode_chunk(audio[..., position : position + chunk]))
        position += chunk
    parts.append(stream.encode_chunk(audio[..., position:], final=True))
    return torch.cat(parts, dim=-1)


def _write_wav(path, audio: np.ndarray, rate: int) -> None:
    sf.write(str(path), audio.T, rate, subtype="FLOAT")


# ---- loading -----------------------------------------------------------------------------------


def test_load_codec_from_export_checkpoint_and_run_folder(tmp_path):
    model, config = _model(quantizer="rvq")
    export_model(tmp_path / "export", "model_best", model, config)
    state = {"config": Config(model=config).to_dict(), "model": model.state_dict(), "step": 3}
    save_training_state(tmp_path / "run" / "checkpoint_last.pt", state)
    reference = model_weights_hash(model)
    for path in (tmp_path / "export" / "model_best.safetensors", tmp_path / "run" / "checkpoint_last.pt",
                 tmp_path / "export", tmp_path / "run"):
        loaded, loaded_config = load_codec(path)
        assert loaded_config == config
        assert not loaded.training
        assert model_weights_hash(loaded) == reference


def test_load_codec_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="No codec"):
        load_codec(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="model_best.safetensors"):
        load_codec(tmp_path)
    save_training_state(tmp_path / "checkpoint_x.pt", {"step": 1})
    with pytest.raises(ValueError, match="no config / model entry"):
        load_codec(tmp_path / "checkpoint_x.pt")
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(ValueError, match="unknown codec file type"):
        load_codec(tmp_path / "weights.bin")
    model, config = _model()
    other = _config(dimension=8)
    state = {"config": Config(model=other).to_dict(), "model": model.state_dict()}
    save_training_state(tmp_path / "checkpoint_bad.pt", state)
    with pytest.raises(ValueError, match="do not fit its own saved config"):
        load_codec(tmp_path / "checkpoint_bad.pt")


# ---- streaming = one-shot ----------------------------------------------------------------------


@pytest.mark.parametrize("chunk_frames", [1, 3, 16])
@pytest.mark.parametrize("channels", [1, 2])
def test_streaming_encoder_equals_one_shot(chunk_frames, channels):
    model, _ = _model(channels=channels)
    audio = _signal(2, channels, 37 * HOP + 11)  # 38 frames; the last chunk is partial
    with torch.no_grad():
        reference, scale = model.encode(audio)
    streamed = _stream_encode(StreamingEncoder(model, scale=scale), audio, chunk_frames)
    assert streamed.shape == reference.shape == (2, 16, 38)
    torch.testing.assert_close(streamed, reference, rtol=0, atol=ATOL)


def test_carrying_state_is_what_makes_chunks_exact():
    """Without the carried state (a fresh encoder per chunk) the frames differ clearly: the test
    above would catch a stateless implementation."""
    model, _ = _model()
    audio = _signal(1, 1, 40 * HOP)
    with torch.no_grad():
        reference, scale = model.encode(audio)
        stateless = torch.cat(
            [model.encode(audio[..., i : i + 8 * HOP], scale)[0] for i in range(0, 40 * HOP, 8 * HOP)], -1
        )
    assert (stateless - reference).abs().max() > 1e-3


def test_streaming_codes_equal_one_shot_codes_and_latents_only_gives_latents():
    model, _ = _model(quantizer="rvq")
    audio = _signal(2, 1, 50 * HOP + 3, seed=5)
    with torch.no_grad():
        codes, scale = model.encode(audio)
        latents = model.encoder(audio / scale)
    assert torch.equal(_stream_encode(StreamingEncoder(model, scale=scale), audio, 7), codes)
    assert torch.equal(_stream_encode(StreamingEncoder(model, n_q=2, scale=scale), audio, 7), codes[:, :2])
    streamed_latents = _stream_encode(StreamingEncoder(model, latents_only=True, scale=scale), audio, 7)
    torch.testing.assert_close(streamed_latents, latents, rtol=0, atol=ATOL)


@pytest.mark.parametrize("quantizer", ["none", "rvq"])
@pytest.mark.parametrize("chunk_frames", [1, 5, 64])
def test_streaming_decoder_equals_one_shot(quantizer, chunk_frames):
    model, _ = _model(quantizer=quantizer, channels=2)
    with torch.no_grad():
        encoded, scale = model.encode(_signal(2, 2, 30 * HOP, seed=3) * torch.tensor([0.01, 2.0])[:, None, None])
        reference = model.decode(encoded, scale)
    stream = StreamingDecoder(model, scale=scale)
    frames = encoded.shape[-1]
    parts = [
        stream.decode_chunk(encoded[..., i : i + chunk_frames], final=i + chunk_frames >= frames)
        for i in range(0, frames, chunk_frames)
    ]
    streamed = torch.cat(parts, dim=-1)
    assert streamed.shape == reference.shape == (2, 2, 30 * HOP)
    torch.testing.assert_close(streamed, reference, rtol=0, atol=ATOL)


def test_reflect_padding_streams_exactly_with_long_enough_chunks():
    model, _ = _model(pad_mode="reflect")
    audio = _signal(1, 1, 37 * HOP + 5)
    with torch.no_grad():
        reference, scale = model.encode(audio)
    torch.testing.assert_close(_stream_encode(StreamingEncoder(model, scale=scale), audio, 8), reference, rtol=0,
                               atol=ATOL)
    with pytest.raises(ValueError, match="first chunk is only"):
        _stream_encode(StreamingEncoder(model, scale=scale), audio, 2)  # the last conv's 6-frame reflection needs > 6


def test_non_causal_model_needs_one_chunk(tmp_path):
    model, config = _model(causal=False, pad_mode="reflect")
    audio = _signal(1, 1, 20 * HOP + 1)
    with torch.no_grad():
        reference, scale = model.encode(audio)
        decoded = model.decode(reference, scale)
    torch.testing.assert_close(StreamingEncoder(model, scale=scale).encode_chunk(audio, final=True), reference,
                               rtol=0, atol=0)
    torch.testing.assert_close(StreamingDecoder(model, scale=scale).decode_chunk(reference, final=True), decoded,
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="not causal"):
        StreamingEncoder(model, scale=scale).encode_chunk(audio[..., : 4 * HOP])
    with pytest.raises(ValueError, match="non-causal decoder"):
        StreamingDecoder(model, scale=scale).decode_chunk(reference[..., :4])
    # Files: one pass, whatever the chunk size asked for.
    _write_wav(tmp_path / "in.wav", audio[0].numpy(), 24000)
    result = encode_file(tmp_path / "in.wav", tmp_path / "enc.npz", model, config, chunk_frames=2)
    assert (result.chunks, result.header.streaming) == (1, "one-shot")
    np.testing.assert_allclose(np.load(result.path)["latents"], reference.numpy(), rtol=0, atol=ATOL)
    assert result.header.scale == pytest.approx(float(scale), rel=1e-6)
    decode_file(result.path, tmp_path / "out.wav", model, config, chunk_frames=2)
    out = sf.read(str(tmp_path / "out.wav"), always_2d=True, dtype="float32")[0].T
    np.testing.assert_allclose(out, decoded[0, :, : audio.shape[-1]].numpy(), rtol=0, atol=ATOL)


def test_streaming_encoder_input_checks():
    model, _ = _model()
    with pytest.raises(ValueError, match="normalises its input level; pass scale="):
        StreamingEncoder(model)
    with pytest.raises(ValueError, match="pass the encoder's scale="):
        StreamingDecoder(model)
    stream = StreamingEncoder(model, scale=0.5)
    with pytest.raises(ValueError, match="multiple of the hop length 32"):
        stream.encode_chunk(torch.zeros(1, 1, 33))
    with pytest.raises(ValueError, match=r"\[batch, 1, time\]"):
        stream.encode_chunk(torch.zeros(1, 2, 32))
    stream.encode_chunk(torch.zeros(1, 1, 5), final=True)
    with pytest.raises(RuntimeError, match="reset"):
        stream.encode_chunk(torch.zeros(1, 1, 32))
    with pytest.raises(ValueError, match="n_q"):
        StreamingEncoder(model, n_q=2, scale=0.5)


# ---- files -------------------------------------------------------------------------------------


def test_resampled_length_matches_soxr():
    for rate in (8000, 16000, 22050, 44100, 48000):
        for frames in (1, 2, 3, 7, 441, 1000, 4801):
            produced = len(soxr.resample(np.zeros(frames, np.float32), rate, 24000, quality="HQ"))
            assert resampled_length(frames, rate, 24000) == produced


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_encode_decode_files_match_one_shot(tmp_path, suffix):
    model, config = _model(channels=2)
    rng = np.random.default_rng(0)
    source = (0.3 * rng.standard_normal((2, 44100 + 123))).astype(np.float32)
    _write_wav(tmp_path / "in.wav", source, 44100)
    result = encode_file(tmp_path / "in.wav", tmp_path / f"enc{suffix}", model, config, chunk_frames=9)
    resampled = soxr.resample(source.T, 44100, 24000, quality="HQ").T  # the whole file at once
    with torch.no_grad():
        reference, scale = model.encode(torch.from_numpy(np.ascontiguousarray(resampled))[None])
        reference = reference[0].numpy()
    header = result.header
    # One level for the whole file (float64 over the streamed blocks), as encode() computes it at once.
    assert header.scale == pytest.approx(float(np.sqrt(np.mean(resampled.astype(np.float64) ** 2))) + 1e-8, rel=1e-6)
    assert header.scale == pytest.approx(float(scale), rel=1e-6)
    assert (header.num_samples, header.sample_rate, header.source_sample_rate) == (resampled.shape[1], 24000, 44100)
    assert header.source_frames == 44223 and header.num_frames == math.ceil(resampled.shape[1] / HOP)
    assert result.chunks == math.ceil(header.num_frames / 9)
    # Independent readers: the safetensors library and numpy.
    stored = load_file(str(result.path))["latents"] if suffix == ".safetensors" else np.load(result.path)["latents"]
    assert stored.shape == (1, 16, header.num_frames)
    np.testing.assert_allclose(stored[0], reference, rtol=0, atol=ATOL)
    with EncodedReader(result.path) as reader:  # our block reader gives the same frames
        blocks = [reader.read(i, min(i + 5, reader.shape[2])) for i in range(0, reader.shape[2], 5)]
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), stored[0])

    decoded = decode_file(result.path, tmp_path / "out.wav", model, config, chunk_frames=4)
    audio, rate = sf.read(str(tmp_path / "out.wav"), always_2d=True, dtype="float32")
    with torch.no_grad():
        expected = model.decode(torch.from_numpy(reference)[None], scale, length=resampled.shape[1])[0].numpy()
    assert rate == 24000 and decoded.frames == audio.shape[0] == resampled.shape[1]
    np.testing.assert_allclose(audio.T, expected, rtol=0, atol=ATOL)

    back = decode_file(result.path, tmp_path / "back.flac", model, config, to_source_rate=True, subtype="PCM_16")
    info = sf.info(str(tmp_path / "back.flac"))
    assert (info.samplerate, info.frames, info.channels) == (44100, 44223, 2) == (back.sample_rate, back.frames, 2)


def test_rvq_codes_file_with_bandwidth(tmp_path):
    model, config = _model(quantizer="rvq")
    source = (0.3 * np.random.default_rng(1).standard_normal((1, 24000))).astype(np.float32)
    _write_wav(tmp_path / "in.wav", source, 24000)
    result = encode_file(tmp_path / "in.wav", tmp_path / "codes.safetensors", model, config, n_q=2, chunk_frames=50)
    codes = load_file(str(result.path))["codes"]
    with torch.no_grad():
        scale = model.input_scale(torch.from_numpy(source)[None])
        reference = model.quantizer.encode(model.encoder(torch.from_numpy(source)[None] / scale), 2)
    assert codes.dtype == np.int16 and codes.shape == (1, 2, 750)
    np.testing.assert_array_equal(codes, reference.numpy())
    assert result.header.n_q == 2 and result.header.bandwidth_kbps == pytest.approx(2 * 4 * 750 / 1000)
    decode_file(result.path, tmp_path / "out.wav", model, config)
    with torch.no_grad():
        expected = model.decode(reference, scale, 24000)[0].numpy()
    np.testing.assert_allclose(sf.read(str(tmp_path / "out.wav"), always_2d=True)[0].T, expected, rtol=0, atol=ATOL)


@pytest.mark.slow  # ~10-45 s: encodes a 20 s file at the paper configuration
def test_memory_does_not_grow_with_the_file_length(tmp_path):
    """Buffers and state are bounded by the chunk, not the file: a 10× longer file gives the same
    chunk size and state size and (within soxr's varying block sizes) the same peak audio buffer.
    The peak of Python-heap allocations (numpy arrays of the reads, the resampler, the writer;
    traced by tracemalloc) stays far below what a whole-file read would hold: measured 0.13 MB and
    0.14-0.23 MB (garbage-collection timing) for the 2 s and 20 s files, against 3.84 MB for the
    20 s file's samples at 48 kHz. Asserted: below a quarter of that."""
    model, config = _model()
    rng = np.random.default_rng(2)
    stats = {}
    for seconds in (2, 20):
        source = (0.1 * rng.standard_normal((1, 48000 * seconds))).astype(np.float32)
        _write_wav(tmp_path / f"in{seconds}.wav", source, 48000)
        del source
        gc.collect()
        tracemalloc.start()
        result = encode_file(tmp_path / f"in{seconds}.wav", tmp_path / f"enc{seconds}.safetensors", model, config,
                             chunk_frames=75)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stats[seconds] = (result, peak)
    short, long = stats[2][0], stats[20][0]
    chunk = 75 * HOP
    assert long.chunks == 10 * short.chunks
    assert long.peak_chunk_samples == short.peak_chunk_samples == chunk
    assert long.peak_buffered_samples <= 2 * chunk + 512  # one chunk + one read block (+ resampler delay)
    assert abs(long.peak_buffered_samples - short.peak_buffered_samples) <= 64  # soxr's output blocks vary a little
    assert long.state_numel == short.state_numel > 0
    whole_file_bytes = 48000 * 20 * 4
    assert stats[20][1] < whole_file_bytes / 4, (stats[2][1], stats[20][1])


def test_file_errors_are_clear_and_leave_nothing_behind(tmp_path):
    model, config = _model()
    _write_wav(tmp_path / "stereo.wav", np.zeros((2, 2400), np.float32), 24000)
    with pytest.raises(ValueError, match="2 channel.*encodes 1"):
        encode_file(tmp_path / "stereo.wav", tmp_path / "x.safetensors", model, config)
    with pytest.raises(ValueError, match=".safetensors or .npz"):
        encode_file(tmp_path / "stereo.wav", tmp_path / "x.pt", model, config)
    bad = np.zeros((1, 24000), np.float32)
    bad[0, 20000] = np.nan
    _write_wav(tmp_path / "nan.wav", bad, 24000)
    with pytest.raises(AudioReadError, match="NaN"):
        encode_file(tmp_path / "nan.wav", tmp_path / "nan.safetensors", model, config, chunk_frames=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav", "stereo.wav"]  # no partial output
    # A wav cut mid-data: the header declares 24,000 frames, 500 remain; refused as `scan` refuses it.
    _write_wav(tmp_path / "cut.wav", np.zeros((1, 24000), np.float32), 24000)
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) - 4 * 23500])
    with pytest.raises(AudioReadError, match="cut.wav: truncated"):
        encode_file(tmp_path / "cut.wav", tmp_path / "cut.safetensors", model, config)
    assert not (tmp_path / "cut.safetensors").exists()


def test_decoding_with_another_model_is_an_error(tmp_path):
    model, config = _model()
    _write_wav(tmp_path / "in.wav", np.zeros((1, 2400), np.float32), 24000)
    encoded = encode_file(tmp_path / "in.wav", tmp_path / "enc.npz", model, config).path
    other_weights, _ = _model(seed=1)
    with pytest.raises(ValueError, match="other weights"):
        decode_file(encoded, tmp_path / "out.wav", other_weights, config)
    decode_file(encoded, tmp_path / "out.wav", other_weights, config, allow_other_weights=True)
    other_config, other = _model(dimension=8)
    with pytest.raises(ValueError, match="dimension: file 16, model 8"):
        decode_file(encoded, tmp_path / "out2.wav", other_config, other)


def test_containers_and_configs_written_before_normalize_still_decode(tmp_path):
    """Files and model configs from before ``model.normalize``: no ``scale`` key means 1.0, a model
    config without ``normalize`` means a codec that never normalised (``SAVED_BEFORE``)."""
    model, config = _model(normalize=False)
    source = (0.3 * np.random.default_rng(3).standard_normal((1, 4000))).astype(np.float32)
    _write_wav(tmp_path / "in.wav", source, 24000)
    header = encode_file(tmp_path / "in.wav", tmp_path / "enc.npz", model, config).header
    assert header.scale == 1.0
    old = header.to_strings()
    del old["scale"]
    saved_config = json.loads(old["model_config"])
    del saved_config["normalize"]
    old["model_config"] = json.dumps(saved_config, sort_keys=True)
    old_header = EncodedHeader.from_strings(old, "old.npz")
    assert old_header.scale == 1.0
    check_model_matches(old_header, model, config, "old.npz")  # the same codec: accepted
    normalising, normalising_config = _model(normalize=True)
    with pytest.raises(ValueError, match="normalize: file False, model True"):
        check_model_matches(old_header, normalising, normalising_config, "old.npz")
    assert Config.from_dict({"model": saved_config}).model == config
    # A normalising codec's file without its level is damaged, not silently 40 dB off.
    header = encode_file(tmp_path / "in.wav", tmp_path / "enc2.npz", normalising, normalising_config).header
    values = header.to_strings()
    del values["scale"]
    with pytest.raises(ValueError, match="'scale' is missing for a normalising codec"):
        EncodedHeader.from_strings(values, "enc2.npz")
