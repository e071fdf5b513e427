"""Finite scalar quantization: its math against a float64 NumPy reference of Mentzer et al. 2023 (bound,
round, mixed-radix index), its straight-through gradient, and the codec around it (a train step, containers,
streaming)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audioenc.codec_io import StreamingEncoder, decode_file, encode_file
from audioenc.config import ModelConfig, build_config
from audioenc.core.distributed import DistributedContext
from audioenc.models.codec import CodecModel
from audioenc.quantization.fsq import EPSILON, FiniteScalarQuantizer
from audioenc.training.data import build_datasets
from audioenc.training.trainer import Trainer
from tests.codec_io.conftest import HOP, SMALL, noise, write_wav
from tests.codec_io.test_streaming import stream_encode
from tests.training.conftest import TINY_OVERRIDES, make_audio_folder

LEVELS = (8, 5, 5, 5)


def _bound_float64(z: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
    """The paper's ``bound`` on ``z [d, N]``: ``tanh(z + atanh(offset / half)) · half − offset``."""
    out = np.empty_like(z)
    for row, level in enumerate(levels):
        half = (level - 1) * (1 + EPSILON) / 2
        offset = 0.5 if level % 2 == 0 else 0.0
        out[row] = np.tanh(z[row] + np.arctanh(offset / half)) * half - offset
    return out


def test_bound_and_round_match_a_float64_reference():
    fsq = FiniteScalarQuantizer(dimension=4, levels=LEVELS)
    z = 3 * torch.randn(2, 4, 50, generator=torch.Generator().manual_seed(0))
    bounded = fsq.bound(z)
    expected = np.stack([_bound_float64(item, LEVELS) for item in z.double().numpy()])
    np.testing.assert_allclose(bounded.numpy(), expected, rtol=0, atol=1e-5)
    rounded = np.round(expected)
    for row, level in enumerate(LEVELS):  # exactly L values per row, centred as the paper's grid
        values = set(np.unique(rounded[:, row]).tolist())
        assert values <= set(range(-(level // 2), level - level // 2))
    far = fsq.bound(torch.tensor([[-50.0], [50.0], [-50.0], [50.0]])[None].expand(1, 4, 1))
    assert torch.round(far).flatten().tolist() == [-4, 2, -2, 2]  # tanh's limits round to the outermost levels


def test_straight_through_gradient_is_that_of_the_bound():
    fsq = FiniteScalarQuantizer(dimension=4, levels=LEVELS)
    z = torch.randn(1, 4, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float32, requires_grad=True)
    weights = torch.randn(1, 4, 30, generator=torch.Generator().manual_seed(2))
    (fsq._quantize(z) * weights).sum().backward()
    zd = z.detach().double().numpy()[0]
    derivative = np.empty_like(zd)
    for row, level in enumerate(LEVELS):
        half = (level - 1) * (1 + EPSILON) / 2
        offset = 0.5 if level % 2 == 0 else 0.0
        derivative[row] = (1 - np.tanh(zd[row] + np.arctanh(offset / half)) ** 2) * half
    np.testing.assert_allclose(z.grad[0].numpy(), weights[0].numpy() * derivative, rtol=1e-5, atol=1e-6)


def test_codes_are_the_mixed_radix_index_and_round_trip():
    fsq = FiniteScalarQuantizer(dimension=4, levels=LEVELS)
    assert fsq.bins == 1000 and fsq.total_codebooks == 1
    codes = torch.arange(fsq.bins).reshape(1, 1, -1)
    rounded = fsq.rounded_from_codes(codes)
    digits = rounded[0].numpy() + np.array([level // 2 for level in LEVELS])[:, None]
    by_hand = digits[0] + 8 * digits[1] + 8 * 5 * digits[2] + 8 * 5 * 5 * digits[3]
    np.testing.assert_array_equal(by_hand, np.arange(1000))
    assert torch.equal(fsq.codes_from_rounded(rounded), codes)
    assert fsq.bandwidth_for(1, 75.0) == pytest.approx(math.log2(1000) * 75 / 1000)


def test_encode_decode_match_the_training_forward_in_eval_mode():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer(dimension=16, levels=LEVELS).eval()
    x = torch.randn(2, 16, 12)
    out = fsq(x, frame_rate=75.0)
    codes = fsq.encode(x)
    assert torch.equal(out.codes, codes) and codes.shape == (2, 1, 12)
    torch.testing.assert_close(fsq.decode(codes.to(torch.int16)), out.x, rtol=0, atol=1e-6)
    assert float(out.penalty) == 0.0
    assert torch.equal(fsq.export_encode(x), codes)
    torch.testing.assert_close(fsq.export_decode(codes), fsq.decode(codes), rtol=0, atol=0)


def test_a_train_step_updates_every_weight(tmp_path):
    data = make_audio_folder(tmp_path / "data")
    config = build_config("1ch", "small", [*TINY_OVERRIDES, f"data.root={data}", "model.quantizer=fsq"])
    train_set, _ = build_datasets(config, DistributedContext())
    trainer = Trainer(config, tmp_path / "run", torch.device("cpu"))
    assert isinstance(trainer.model.quantizer, FiniteScalarQuantizer)
    before = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    assert any(key.startswith("quantizer.project_in.") for key in before)
    values = trainer.train_step(torch.stack([train_set[0], train_set[1]])).values
    assert math.isfinite(values["l1"]) and values["commitment"] == 0.0
    unchanged = [key for key, value in trainer.model.state_dict().items() if torch.equal(value, before[key])]
    assert unchanged == []


def _fsq_model() -> tuple[CodecModel, ModelConfig]:
    torch.manual_seed(0)
    config = ModelConfig(**SMALL, quantizer="fsq", channels=2)
    return CodecModel.from_config(config).eval(), config


def test_streaming_codes_equal_one_shot():
    model, _ = _fsq_model()
    audio = noise(2, 2, 50 * HOP + 3, seed=5)
    with torch.no_grad():
        codes, scale = model.encode(audio)
    assert codes.shape == (2, 1, 51)
    assert torch.equal(stream_encode(StreamingEncoder(model, scale=scale), audio, 7), codes)


def test_container_round_trip(tmp_path):
    model, config = _fsq_model()
    source = (0.3 * np.random.default_rng(0).standard_normal((2, 24000))).astype(np.float32)
    write_wav(tmp_path / "in.wav", source, 24000)
    result = encode_file(tmp_path / "in.wav", tmp_path / "enc.safetensors", model, config, chunk_frames=9)
    assert (result.header.kind, result.header.n_q) == ("codes", 1)
    assert result.header.bandwidth_kbps == pytest.approx(math.log2(1000) * model.frame_rate / 1000)
    decode_file(result.path, tmp_path / "out.wav", model, config, chunk_frames=4)
    with torch.no_grad():
        codes, scale = model.encode(torch.from_numpy(source)[None])
        expected = model.decode(codes, scale, length=source.shape[1])[0].numpy()
    audio, _ = sf.read(str(tmp_path / "out.wav"), always_2d=True, dtype="float32")
    np.testing.assert_allclose(audio.T, expected, rtol=0, atol=1e-5)
