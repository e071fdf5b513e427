"""Tests for audioenc.codec_io.files: encoding and decoding whole files in bounded memory, and the
containers they write.

References: ``soxr.resample`` on the whole file for the streamed resampling; the ``safetensors``
library's own reader and ``numpy.load`` for the containers this module writes by hand.
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
    check_model_matches,
    decode_file,
    encode_file,
)
from audioenc.config import Config
from tests.codec_io.conftest import ATOL, HOP, small_model, write_wav


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_encode_decode_files_match_one_shot(tmp_path, suffix):
    model, config = small_model(channels=2)
    rng = np.random.default_rng(0)
    source = (0.3 * rng.standard_normal((2, 44100 + 123))).astype(np.float32)
    write_wav(tmp_path / "in.wav", source, 44100)
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
    model, config = small_model(quantizer="rvq")
    source = (0.3 * np.random.default_rng(1).standard_normal((1, 24000))).astype(np.float32)
    write_wav(tmp_path / "in.wav", source, 24000)
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
    model, config = small_model()
    rng = np.random.default_rng(2)
    stats = {}
    for seconds in (2, 20):
        source = (0.1 * rng.standard_normal((1, 48000 * seconds))).astype(np.float32)
        write_wav(tmp_path / f"in{seconds}.wav", source, 48000)
        del source
        gc.collect()
        tracemalloc.start()
        result = encode_file(
            tmp_path / f"in{seconds}.wav", tmp_path / f"enc{seconds}.safetensors", model, config, chunk_frames=75
        )
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
    model, config = small_model()
    write_wav(tmp_path / "stereo.wav", np.zeros((2, 2400), np.float32), 24000)
    with pytest.raises(ValueError, match="2 channel.*encodes 1"):
        encode_file(tmp_path / "stereo.wav", tmp_path / "x.safetensors", model, config)
    with pytest.raises(ValueError, match=".safetensors or .npz"):
        encode_file(tmp_path / "stereo.wav", tmp_path / "x.pt", model, config)
    bad = np.zeros((1, 24000), np.float32)
    bad[0, 20000] = np.nan
    write_wav(tmp_path / "nan.wav", bad, 24000)
    with pytest.raises(AudioReadError, match="NaN"):
        encode_file(tmp_path / "nan.wav", tmp_path / "nan.safetensors", model, config, chunk_frames=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav", "stereo.wav"]  # no partial output
    # A wav cut mid-data: the header declares 24,000 frames, 500 remain; refused as `scan` refuses it.
    write_wav(tmp_path / "cut.wav", np.zeros((1, 24000), np.float32), 24000)
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) - 4 * 23500])
    with pytest.raises(AudioReadError, match="cut.wav: truncated"):
        encode_file(tmp_path / "cut.wav", tmp_path / "cut.safetensors", model, config)
    assert not (tmp_path / "cut.safetensors").exists()


def test_decoding_with_another_model_is_an_error(tmp_path):
    model, config = small_model()
    write_wav(tmp_path / "in.wav", np.zeros((1, 2400), np.float32), 24000)
    encoded = encode_file(tmp_path / "in.wav", tmp_path / "enc.npz", model, config).path
    other_weights, _ = small_model(seed=1)
    with pytest.raises(ValueError, match="other weights"):
        decode_file(encoded, tmp_path / "out.wav", other_weights, config)
    decode_file(encoded, tmp_path / "out.wav", other_weights, config, allow_other_weights=True)
    other_config, other = small_model(dimension=8)
    with pytest.raises(ValueError, match="dimension: file 16, model 8"):
        decode_file(encoded, tmp_path / "out2.wav", other_config, other)


def test_containers_and_configs_written_before_normalize_still_decode(tmp_path):
    """Files and model configs from before ``model.normalize``: no ``scale`` key means 1.0, a model
    config without ``normalize`` means a codec that never normalised (``SAVED_BEFORE``)."""
    model, config = small_model(normalize=False)
    source = (0.3 * np.random.default_rng(3).standard_normal((1, 4000))).astype(np.float32)
    write_wav(tmp_path / "in.wav", source, 24000)
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
    normalising, normalising_config = small_model(normalize=True)
    with pytest.raises(ValueError, match="normalize: file False, model True"):
        check_model_matches(old_header, normalising, normalising_config, "old.npz")
    assert Config.from_dict({"model": saved_config}).model == config
    # A normalising codec's file without its level is damaged, not silently 40 dB off.
    header = encode_file(tmp_path / "in.wav", tmp_path / "enc2.npz", normalising, normalising_config).header
    values = header.to_strings()
    del values["scale"]
    with pytest.raises(ValueError, match="'scale' is missing for a normalising codec"):
        EncodedHeader.from_strings(values, "enc2.npz")
