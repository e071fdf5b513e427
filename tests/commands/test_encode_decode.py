"""Tests for `audioenc encode` / `audioenc decode` (the command layer over audioenc.codec_io).

References: the one-shot model on the soxr-resampled whole file (``CodecModel.encode`` /
``decode``), and soundfile's header for the written audio.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from safetensors.numpy import load_file

from audioenc.cli import main
from audioenc.config import ModelConfig
from audioenc.models.codec import CodecModel
from audioenc.models.files import export_model

TINY = dict(n_filters=4, dimension=16, lstm=1)


def _export(directory, quantizer: str = "none") -> tuple[CodecModel, str]:
    torch.manual_seed(0)
    config = ModelConfig(**TINY, quantizer=quantizer, n_q=4, bins=8, q_dropout=False)
    model = CodecModel.from_config(config)
    if quantizer == "rvq":
        with torch.no_grad():
            model(0.3 * torch.randn(2, 1, 24000, generator=torch.Generator().manual_seed(1)))
    model.eval()
    export_model(directory, "model_best", model, config)
    return model, str(directory / "model_best.safetensors")


def _wav(path, channels: int, rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    audio = (0.3 * np.random.default_rng(seed).standard_normal((channels, int(rate * seconds)))).astype(np.float32)
    sf.write(str(path), audio.T, rate, subtype="FLOAT")
    return audio


def test_encode_then_decode_round_trip(tmp_path, capsys):
    model, model_path = _export(tmp_path)
    source = _wav(tmp_path / "in.wav", 1, 16000, 1.3)
    assert (
        main(
            [
                "encode",
                str(tmp_path / "in.wav"),
                str(tmp_path / "z.safetensors"),
                "--model",
                model_path,
                "--chunk-seconds",
                "0.2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "latents [1, 16, 98]" in out  # ceil(31200 / 320) frames
    resampled = soxr.resample(source.T, 16000, 24000, quality="HQ").T
    level_db = 20 * np.log10(np.sqrt(np.mean(np.square(resampled, dtype=np.float64))))  # at the model's rate
    assert f"level {level_db:.1f} dBFS RMS (stored)" in out
    with torch.no_grad():
        reference, scale = model.encode(torch.from_numpy(np.ascontiguousarray(resampled))[None])
    latents = load_file(str(tmp_path / "z.safetensors"))["latents"]
    np.testing.assert_allclose(latents, reference.numpy(), rtol=0, atol=1e-6)

    assert main(["decode", str(tmp_path / "z.safetensors"), str(tmp_path / "out.wav"), "--model", model_path]) == 0
    audio, rate = sf.read(str(tmp_path / "out.wav"), always_2d=True, dtype="float32")
    with torch.no_grad():
        expected = model.decode(reference, scale, resampled.shape[1])[0].numpy()
    assert rate == 24000 and audio.shape == (31200, 1)
    np.testing.assert_allclose(audio.T, expected, rtol=0, atol=1e-6)

    assert (
        main(
            [
                "decode",
                str(tmp_path / "z.safetensors"),
                str(tmp_path / "src.wav"),
                "--model",
                model_path,
                "--source-rate",
                "--quiet",
            ]
        )
        == 0
    )
    info = sf.info(str(tmp_path / "src.wav"))
    assert (info.samplerate, info.frames) == (16000, source.shape[1])


def test_rvq_bandwidth_to_npz(tmp_path, capsys):
    _, model_path = _export(tmp_path, quantizer="rvq")
    _wav(tmp_path / "in.wav", 1, 24000, 0.5)
    # 3 bits per code at 75 Hz = 0.225 kbps per codebook: 0.5 kbps fits 2 codebooks.
    assert (
        main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "c.npz"), "--model", model_path, "--bandwidth", "0.5"])
        == 0
    )
    assert "codes [1, 2, 38] (0.45 kbps)" in capsys.readouterr().out
    assert np.load(tmp_path / "c.npz")["codes"].shape == (1, 2, 38)
    assert (
        main(
            [
                "decode",
                str(tmp_path / "c.npz"),
                str(tmp_path / "o.flac"),
                "--model",
                model_path,
                "--subtype",
                "PCM_16",
                "--quiet",
            ]
        )
        == 0
    )
    assert sf.info(str(tmp_path / "o.flac")).frames == 12000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["encode", "{dir}/stereo.wav", "{dir}/x.safetensors"], "2 channel(s) but the model encodes 1"),
        (
            ["encode", "{dir}/mono.wav", "{dir}/x.safetensors", "--bandwidth", "6"],
            "--bandwidth is for models with codes",
        ),
        (["encode", "{dir}/mono.wav", "{dir}/x.mp4"], "must end in .safetensors or .npz"),
        (["encode", "{dir}/absent.wav", "{dir}/x.npz"], "cannot read as audio"),
        (["decode", "{dir}/mono.wav", "{dir}/x.wav"], "must end in .safetensors or .npz"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, argv, message):
    _, model_path = _export(tmp_path)
    _wav(tmp_path / "stereo.wav", 2, 24000, 0.1)
    _wav(tmp_path / "mono.wav", 1, 24000, 0.1)
    args = [item.format(dir=tmp_path) for item in argv] + ["--model", model_path]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "x.npz").exists()
