"""The frozen-embedding cache (audioenc.timing.embedding_cache, encoders.encoder_embeddings).

References: the same encoder run with the cache off (every clip computed), compared bit for bit
(``tobytes``) with the cache's misses and hits; hits are proven to come from the cache by an
encoder and a clip reader that raise when called. A changed weight (same file name), a changed
clip (same name and length), a changed layer or hop, a changed HEAR module file or weight file each
give a miss; a copy of the same weights elsewhere gives hits (the key is content, not a path).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from audioenc.core.cache import caching_disabled
from audioenc.timing import encoders
from audioenc.timing.embedding_cache import pack_entry, state_dict_sha256, unpack_entry
from audioenc.timing.encoders import embedding_cache, embedding_fingerprint, encoder_embeddings, load_encoder
from tests.timing import hf_tiny

FILES = ["a.wav", "b.wav"]


def write_clips(folder: Path, seed: int = 0, seconds: float = 0.6, rate: int = 16000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in FILES:
        sf.write(folder / name, rng.normal(0, 0.1, int(seconds * rate)).astype(np.float32), rate)
    return folder


@pytest.fixture
def clips(tmp_path) -> Path:
    return write_clips(tmp_path / "audio")


@pytest.fixture(scope="module")
def wav2vec2(tmp_path_factory) -> Path:
    return hf_tiny.wav2vec2(tmp_path_factory.mktemp("snapshot") / "wav2vec2")


def embed(handle, clips: Path, root: Path, enabled: bool = True):
    cache = embedding_cache(handle, root=root, enabled=enabled)
    return encoder_embeddings(handle, clips, FILES, cache=cache), cache.stats


def assert_bit_identical(one, other) -> None:
    assert one.frames.keys() == other.frames.keys()
    for name in one.frames:
        assert one.frames[name].dtype == other.frames[name].dtype == np.float32
        assert one.frames[name].shape == other.frames[name].shape
        assert one.frames[name].tobytes() == other.frames[name].tobytes(), name
    assert (one.frame_rate, one.identity_map) == (other.frame_rate, other.identity_map)


def test_a_rerun_reads_every_clip_from_the_cache_bit_identically(saved_crnn, clips, tmp_path, monkeypatch):
    root = tmp_path / "arrays"
    handle = load_encoder(saved_crnn)
    computed, off = embed(handle, clips, root, enabled=False)
    assert not off.enabled and off.misses == 2 and not root.exists()
    first, stats = embed(handle, clips, root)
    assert (stats.hits, stats.misses) == (0, 2) and len(list(root.rglob("*.npz"))) == 2
    assert stats.bytes == sum(path.stat().st_size for path in root.rglob("*.npz"))

    # A hit neither reads the clip nor runs the encoder.
    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit read the clip or ran the encoder")

    monkeypatch.setattr(encoders, "read_clip", refuse)
    monkeypatch.setattr(handle.api, "get_timestamp_embeddings", refuse)
    second, stats = embed(handle, clips, root)
    assert (stats.hits, stats.misses) == (2, 0) and stats.summary().startswith("2 clips, 2 from the cache")
    assert_bit_identical(computed, first)
    assert_bit_identical(computed, second)
    assert second.cache is stats  # FrameEmbeddings carries the cache's stats


def test_one_changed_weight_in_a_file_of_the_same_name_misses(saved_crnn, clips, tmp_path):
    root = tmp_path / "arrays"
    handle = load_encoder(saved_crnn)
    before, _ = embed(handle, clips, root)
    copy = shutil.copytree(saved_crnn, tmp_path / "elsewhere" / "crnn")
    _, stats = embed(load_encoder(copy), clips, root)
    assert stats.hits == 2  # the same weights at another path: the key holds content, not paths
    weights = Path(saved_crnn) / "model.safetensors"
    state = load_file(weights)
    name = next(key for key, tensor in state.items() if tensor.is_floating_point() and tensor.numel() > 1)
    state[name] = state[name].clone()
    flat = state[name].view(-1)
    flat[0] = torch.nextafter(flat[0], torch.tensor(np.inf))  # one weight, one ulp
    save_file(state, weights)
    changed = load_encoder(saved_crnn)
    old, new = embedding_fingerprint(handle), embedding_fingerprint(changed)
    assert old["weights"] != new["weights"] and {**old, "weights": None} == {**new, "weights": None}
    after, stats = embed(changed, clips, root)
    assert (stats.hits, stats.misses) == (0, 2)
    computed, _ = embed(changed, clips, root, enabled=False)
    assert_bit_identical(computed, after)
    assert any(not np.array_equal(before.frames[f], after.frames[f]) for f in FILES)


def test_a_changed_clip_misses_and_the_others_hit(saved_crnn, clips, tmp_path):
    root = tmp_path / "arrays"
    handle = load_encoder(saved_crnn)
    embed(handle, clips, root)
    audio, rate = sf.read(clips / "a.wav", dtype="float32")
    sf.write(clips / "a.wav", -audio, rate)  # same name, same length, other samples
    stamp = os.stat(clips / "a.wav").st_mtime_ns + 10**9
    os.utime(clips / "a.wav", ns=(stamp, stamp))  # a new mtime even on a coarse clock
    after, stats = embed(handle, clips, root)
    assert (stats.hits, stats.misses) == (1, 1)
    computed, _ = embed(handle, clips, root, enabled=False)
    assert_bit_identical(computed, after)


def test_a_changed_layer_or_hop_misses(wav2vec2, clips, tmp_path):
    root = tmp_path / "arrays"
    results = {}
    for layer, hits in ((1, 0), (2, 0), ("all", 0), (1, 2)):
        handle = load_encoder(wav2vec2, layer=layer)
        results[layer], stats = embed(handle, clips, root)
        assert stats.hits == hits, layer
    assert results[1].frames["a.wav"].shape == (32, 30) and results["all"].frames["a.wav"].shape == (96, 30)
    assert not np.array_equal(results[1].frames["a.wav"], results[2].frames["a.wav"])
    # CREPE's hop is an option too (and a named encoder's fingerprint names no file path).
    for hop_ms, hits in ((10.0, 0), (20.0, 0), (10.0, 2)):
        handle = load_encoder("crepe-tiny", hop_ms=hop_ms)
        assert "weights_file" in handle.details and "weights_file" not in embedding_fingerprint(handle)["details"]
        _, stats = embed(handle, clips, root)
        assert stats.hits == hits, hop_ms


HEAR_MODULE = """
import numpy as np
import torch

class Model:
    sample_rate = 16000
    timestamp_embedding_size = 2

    def __init__(self, scale):
        self.scale = scale

def load_model(model_file_path=""):
    return Model(float(open(model_file_path).read()) if model_file_path else 1.0)

def get_timestamp_embeddings(audio, model):
    frames = audio.shape[1] // 320
    x = audio[:, : frames * 320].reshape(audio.shape[0], frames, 320)
    embeddings = torch.stack([x.mean(-1), x.std(-1)], dim=-1) * model.scale{extra}
    timestamps = (torch.arange(frames, dtype=torch.float32) * 20.0 + 10.0).expand(audio.shape[0], -1)
    return embeddings, timestamps
"""


def test_a_hear_module_keys_on_its_code_and_its_weight_file(clips, tmp_path):
    """A model without a state_dict: the module file's and the weight file's bytes are its identity."""
    root = tmp_path / "arrays"
    module, weights = tmp_path / "user_module.py", tmp_path / "scale.txt"
    module.write_text(HEAR_MODULE.format(extra=""))
    weights.write_text("2.0")
    handle = load_encoder(module, str(weights))
    assert embedding_fingerprint(handle)["weights"] is None
    embed(handle, clips, root)
    assert embed(load_encoder(module, str(weights)), clips, root)[1].hits == 2
    weights.write_text("3.0")
    after, stats = embed(load_encoder(module, str(weights)), clips, root)
    assert stats.hits == 0
    module.write_text(HEAR_MODULE.format(extra=" + 1.0"))
    again, stats = embed(load_encoder(module, str(weights)), clips, root)
    assert stats.hits == 0
    np.testing.assert_allclose(again.frames["a.wav"], after.frames["a.wav"] + 1.0, rtol=0, atol=1e-6)


def test_no_cache_writes_nothing(saved_crnn, clips, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOENC_CACHE", str(tmp_path / "data_cache"))
    handle = load_encoder(saved_crnn)
    with caching_disabled():  # what `audioenc workflow --no-cache` sets for the run
        result = encoder_embeddings(handle, clips, FILES)
    assert not result.cache.enabled and result.cache.misses == 2 and result.cache.hits == 0
    assert not (tmp_path / "data_cache").exists()
    default = encoder_embeddings(handle, clips, FILES)  # on by default, at $AUDIOENC_CACHE/arrays/embeddings
    assert default.cache.enabled and len(list((tmp_path / "data_cache" / "arrays" / "embeddings").rglob("*.npz"))) == 2
    assert_bit_identical(result, default)


def test_weight_hash_sees_names_dtypes_shapes_and_every_bit():
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    same = torch.nn.Linear(3, 2)
    same.load_state_dict(module.state_dict())
    assert state_dict_sha256(module) == state_dict_sha256(same)
    with torch.no_grad():
        same.bias[1] = torch.nextafter(same.bias[1], torch.tensor(np.inf))
    assert state_dict_sha256(module) != state_dict_sha256(same)
    assert state_dict_sha256(module) != state_dict_sha256(torch.nn.Linear(3, 2).double().requires_grad_(False))
    renamed = torch.nn.Sequential(module)  # keys "0.weight", "0.bias": same tensors, other names
    assert state_dict_sha256(renamed) != state_dict_sha256(module)
    reshaped = torch.nn.Linear(2, 3)
    with torch.no_grad():  # the same bytes in another shape
        reshaped.weight.copy_(module.weight.reshape(3, 2))
        reshaped.bias.zero_()
    assert state_dict_sha256(reshaped) != state_dict_sha256(module)
    assert state_dict_sha256(object()) is None


@pytest.mark.parametrize("frames", [0, 1, 7])
def test_an_entry_round_trips_exactly(frames, tmp_path):
    rng = np.random.default_rng(frames)
    embeddings = rng.standard_normal((frames, 5)).astype(np.float32)
    timestamps = np.arange(frames) * 13.333333333
    path = tmp_path / "entry.npz"
    np.savez(path, array=pack_entry(12345, embeddings, timestamps))
    with np.load(path, allow_pickle=False) as entry:
        samples, read_embeddings, read_timestamps = unpack_entry(entry["array"])
    assert samples == 12345
    assert read_embeddings.dtype == np.float32 and read_embeddings.tobytes() == embeddings.tobytes()
    assert read_timestamps.dtype == np.float64 and read_timestamps.tobytes() == timestamps.tobytes()
