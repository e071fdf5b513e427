"""Tests for audioenc.interop.onnx (export) and audioenc.interop.onnx_runtime (inference).

Reference: the PyTorch model the graphs were exported from (``model.encoder`` / ``model.decode``
one-shot). ONNX Runtime sums convolutions and the LSTM in another order than PyTorch, so float32
outputs agree to rounding: measured max |difference| 2e-7 on latents of magnitude ~0.2 and audio
~0.1; asserted ``atol=1e-5``. Codes: equal (a tiny codec's 16 entries are far apart).

Exports per module (the slow part: a few seconds per graph): a causal RVQ codec (one-shot and
step graphs, codes and latents), a causal FSQ codec (the same graphs, one code per frame) and a
non-causal, reflect-padded continuous codec (one-shot only).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import warnings

import numpy as np
import onnxruntime  # noqa: E402  (the onnx extra, part of the test install)
import onnxscript  # noqa: E402,F401
import pytest
import soundfile as sf
import torch
from safetensors.numpy import load_file

from audioenc.cli import main  # noqa: E402
from audioenc.config import ModelConfig  # noqa: E402
from audioenc.errors import UserError  # noqa: E402
from audioenc.interop.onnx import SIDECAR, export_onnx  # noqa: E402
from audioenc.interop.onnx_runtime import OnnxCodec  # noqa: E402
from audioenc.models.codec import CodecModel  # noqa: E402
from audioenc.models.files import export_model  # noqa: E402

HOP = 8
TINY = dict(n_filters=4, dimension=16, ratios=(4, 2), lstm=2, n_q=4, bins=16)
ATOL = 1e-5


def _model(**overrides) -> tuple[CodecModel, ModelConfig]:
    torch.manual_seed(0)
    config = ModelConfig(**{**TINY, **overrides})
    model = CodecModel.from_config(config)
    if not model.quantizer.initialized:
        model.quantizer.q_dropout = False
        model.train()
        with torch.no_grad():  # one training pass: k-means initialises every codebook
            model(0.3 * torch.randn(4, config.channels, 64 * HOP, generator=torch.Generator().manual_seed(9)))
    return model.eval(), config


def _audio(length: int, seed: int = 0, batch: int = 2) -> torch.Tensor:
    return 0.3 * torch.randn(batch, 1, length, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def rvq(tmp_path_factory):
    model, config = _model(quantizer="rvq", normalize=True)
    folder = tmp_path_factory.mktemp("onnx") / "rvq"
    files = export_onnx(model, config, folder)
    return model, config, folder, files


@pytest.fixture(scope="module")
def fsq(tmp_path_factory):
    """An FSQ codec whose input projection is scaled up: a fresh one maps every frame to one grid point."""
    model, config = _model(quantizer="fsq")
    with torch.no_grad():
        model.quantizer.project_in.weight.mul_(10.0)
    folder = tmp_path_factory.mktemp("onnx") / "fsq"
    files = export_onnx(model, config, folder)
    return model, config, folder, files


@pytest.fixture(scope="module")
def continuous(tmp_path_factory):
    model, config = _model(quantizer="none", causal=False, pad_mode="reflect")
    folder = tmp_path_factory.mktemp("onnx") / "continuous"
    export_onnx(model, config, folder)
    return model, config, folder


def test_export_writes_graphs_and_their_contract(rvq, continuous):
    model, config, folder, files = rvq
    names = ["encoder.onnx", "decoder.onnx", "encoder_step.onnx", "decoder_step.onnx", SIDECAR]
    assert [path.name for path in files] == names and all(path.is_file() for path in files)
    assert str(files).startswith(f"wrote {folder}: ONNX one-shot and streaming graphs")
    sidecar = json.loads((folder / SIDECAR).read_text())
    assert (sidecar["hop_length"], sidecar["sample_rate"], sidecar["n_q"], sidecar["kind"]) == (HOP, 24000, 4, "codes")
    assert sidecar["normalize"] is True and "x / scale" in sidecar["level_rule"] and sidecar["streaming"] is True
    encoder = sidecar["graphs"]["encoder"]
    assert encoder["inputs"] == [{"name": "audio", "dtype": "float32", "shape": ["batch", 1, "samples"]}]
    assert [o["name"] for o in encoder["outputs"]] == ["latents", "codes"]
    step_inputs = sidecar["graphs"]["encoder_step"]["inputs"]
    assert len(step_inputs) == 1 + len(model.initial_encoder_state(1))
    assert {"name": "state_in_5", "dtype": "float32", "shape": [2, "batch", 16]} in step_inputs  # LSTM h
    from audioenc.models.files import model_weights_hash

    assert sidecar["model_weights_sha256"] == model_weights_hash(model)
    # A non-causal codec: one-shot graphs only, and the sidecar says why.
    sidecar = json.loads((continuous[2] / SIDECAR).read_text())
    assert sorted(p.name for p in continuous[2].iterdir()) == [SIDECAR, "decoder.onnx", "encoder.onnx"]
    assert sidecar["streaming"] is False and "not causal" in sidecar["streaming_rule"]
    with pytest.raises(FileExistsError, match="not an empty folder"):
        export_onnx(model, config, folder)


@pytest.mark.parametrize("frames,extra", [(7, 0), (7, 5), (0, 1), (3, HOP - 1)])
def test_one_shot_graphs_equal_pytorch_rvq(rvq, frames, extra):
    """Any length, multiple of the hop or not: ceil(T / hop) frames, the same codes and audio."""
    model, _, folder, _ = rvq
    onnx = OnnxCodec(folder)
    audio = _audio(frames * HOP + extra)
    latents, codes = onnx.run("encoder", audio.numpy())
    with torch.no_grad():
        reference = model.encoder(audio)
        reference_codes = model.quantizer.encode(reference)
    assert latents.shape == (2, 16, math.ceil(audio.shape[-1] / HOP)) == tuple(reference.shape)
    np.testing.assert_allclose(latents, reference.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_array_equal(codes, reference_codes.numpy())
    for n_q in (4, 2):  # fewer codebooks: the first rows
        (decoded,) = onnx.run("decoder", codes[:, :n_q])
        with torch.no_grad():
            expected = model.decode(reference_codes[:, :n_q], scale=1.0)
        np.testing.assert_allclose(decoded, expected.numpy(), rtol=0, atol=ATOL)


@pytest.mark.parametrize("length", [11 * HOP, 11 * HOP + 9, 2])
def test_one_shot_graphs_equal_pytorch_continuous_non_causal(continuous, length):
    model, _, folder = continuous
    onnx = OnnxCodec(folder)
    audio = _audio(length, seed=3, batch=3)
    (latents,) = onnx.run("encoder", audio.numpy())
    (decoded,) = onnx.run("decoder", latents)
    with torch.no_grad():
        reference = model.encoder(audio)
        expected = model.decoder(reference)
    assert latents.shape == (3, 16, math.ceil(length / HOP))
    np.testing.assert_allclose(latents, reference.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(decoded, expected.numpy(), rtol=0, atol=ATOL)


def test_step_graphs_stream_any_length_like_one_shot(rvq):
    """Fixed chunks of 4 frames (the last one partial), state from zeros through the step graphs:
    the same latents, codes and audio as one pass of PyTorch."""
    model, _, folder, _ = rvq
    onnx = OnnxCodec(folder)
    audio = _audio(13 * HOP + 7, seed=4)
    state, latents, codes = onnx.zero_state("encoder_step", 2), [], []
    for start in range(0, audio.shape[-1], 4 * HOP):
        part, part_codes, *state = onnx.run("encoder_step", audio[..., start : start + 4 * HOP].numpy(), *state)
        latents.append(part)
        codes.append(part_codes)
    latents, codes = np.concatenate(latents, -1), np.concatenate(codes, -1)
    with torch.no_grad():
        reference = model.encoder(audio)
        reference_codes = model.quantizer.encode(reference)
        expected = model.decode(reference_codes, scale=1.0)
    assert latents.shape == (2, 16, 14)
    np.testing.assert_allclose(latents, reference.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_array_equal(codes, reference_codes.numpy())
    state, decoded = onnx.zero_state("decoder_step", 2), []
    for start in range(0, codes.shape[-1], 3):
        part, *state = onnx.run("decoder_step", codes[..., start : start + 3], *state)
        decoded.append(part)
    np.testing.assert_allclose(np.concatenate(decoded, -1), expected.numpy(), rtol=0, atol=ATOL)


def test_fsq_graphs_give_the_codes_and_audio_of_pytorch(fsq):
    """The quantizer's own export operations: one code per frame, the same codes as ``quantizer.encode``
    one-shot and streamed through the step graphs, and the same audio from them."""
    model, _, folder, files = fsq
    assert "codes (1 codebook)" in str(files)
    onnx = OnnxCodec(folder)
    audio = _audio(13 * HOP + 7, seed=4)
    with torch.no_grad():
        reference_codes = model.quantizer.encode(model.encoder(audio))
        expected = model.decode(reference_codes, scale=1.0)
    assert reference_codes.shape == (2, 1, 14) and len(np.unique(reference_codes.numpy())) > 3
    _, codes = onnx.run("encoder", audio.numpy())
    np.testing.assert_array_equal(codes, reference_codes.numpy())
    np.testing.assert_allclose(onnx.run("decoder", codes)[0], expected.numpy(), rtol=0, atol=ATOL)
    state, streamed = onnx.zero_state("encoder_step", 2), []
    for start in range(0, audio.shape[-1], 4 * HOP):
        _, part, *state = onnx.run("encoder_step", audio[..., start : start + 4 * HOP].numpy(), *state)
        streamed.append(part)
    np.testing.assert_array_equal(np.concatenate(streamed, -1), reference_codes.numpy())
    state, decoded = onnx.zero_state("decoder_step", 2), []
    for start in range(0, codes.shape[-1], 3):
        part, *state = onnx.run("decoder_step", codes[..., start : start + 3], *state)
        decoded.append(part)
    np.testing.assert_allclose(np.concatenate(decoded, -1), expected.numpy(), rtol=0, atol=ATOL)


def test_export_older_than_a_model_setting_still_loads(rvq, tmp_path, capsys):
    """A folder exported before a model setting existed (here ``fsq_levels``; nor graph hashes) states the
    model once the setting takes its value from before; another value of a setting it records is refused."""
    import shutil

    from audioenc.interop.onnx_runtime import OnnxRuntimeEngine

    model, config, folder, _ = rvq
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    sidecar = json.loads((old / SIDECAR).read_text())
    del sidecar["model_config"]["fsq_levels"]
    shorter = json.dumps(sidecar["model_config"], sort_keys=True, separators=(",", ":"))
    sidecar["model_config_sha256"] = hashlib.sha256(shorter.encode()).hexdigest()
    for entry in sidecar["graphs"].values():
        del entry["sha256"]
    (old / SIDECAR).write_text(json.dumps(sidecar))
    OnnxRuntimeEngine(old).check_model(model, config)
    assert "records no SHA-256" in capsys.readouterr().err
    sidecar["model_config"]["bins"] = 32
    (old / SIDECAR).write_text(json.dumps(sidecar))
    with pytest.raises(UserError, match="records another model_config"):
        OnnxRuntimeEngine(old).check_model(model, config)


def test_legacy_exporter_needs_the_non_negative_padding_arithmetic(tmp_path, monkeypatch):
    """Why models/conv.py writes ``extra = (s - T mod s) mod s``: the TorchScript exporter
    (``dynamo=False``) records Python arithmetic on shapes as constants unless it maps to traced
    ops; with EnCodec's ``max(ceil(...), 1)`` formula its graph silently returns the example's frame
    arithmetic for other lengths (one frame short). With ours it is exact."""
    import audioenc.models.conv as conv

    def encodec_paddings(length, kernel_size, stride=1, dilation=1, causal=False):
        k = (kernel_size - 1) * dilation + 1
        extra = conv.extra_padding_for_conv1d(length, k, stride, k - stride)  # max(...) and negative // inside
        return (k - stride, extra) if causal else ((k - stride) - (k - stride) // 2, (k - stride) // 2 + extra)

    LENGTHS = (7 * HOP + 5, 4 * HOP + 1)  # noqa: N806 (not the example's 4 * HOP)

    def frames_of_legacy_graph(path) -> list[int]:
        model, _ = _model(lstm=0)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.encoder,
                (_audio(4 * HOP, batch=1),),
                str(path),
                dynamo=False,
                input_names=["audio"],
                output_names=["latents"],
                dynamic_axes={"audio": {2: "samples"}, "latents": {2: "frames"}},
            )
        session = onnxruntime.InferenceSession(str(path))
        return [session.run(None, {"audio": _audio(n, batch=1).numpy()})[0].shape[-1] for n in LENGTHS]

    expected = [math.ceil(n / HOP) for n in LENGTHS]
    assert frames_of_legacy_graph(tmp_path / "ours.onnx") == expected
    monkeypatch.setattr(conv, "conv1d_paddings", encodec_paddings)
    assert frames_of_legacy_graph(tmp_path / "encodec.onnx") != expected


@pytest.mark.parametrize("codec", ["rvq", "fsq"])
def test_cli_onnxruntime_backend_equals_torch_backend(codec, request, tmp_path, capsys):
    model, config, folder, _ = request.getfixturevalue(codec)
    export_model(tmp_path, "model_best", model, config)
    weights = str(tmp_path / "model_best.safetensors")
    source = (0.3 * np.random.default_rng(0).standard_normal(int(24000 * 0.37))).astype(np.float32)
    sf.write(str(tmp_path / "in.wav"), source, 24000, subtype="FLOAT")
    containers = {}
    for backend in ("torch", "onnxruntime"):
        extra = ["--backend", backend] + (["--onnx", str(folder)] if backend == "onnxruntime" else [])
        out = tmp_path / f"{backend}.safetensors"
        assert (
            main(
                [
                    "encode",
                    str(tmp_path / "in.wav"),
                    str(out),
                    "--model",
                    weights,
                    "--chunk-seconds",
                    "0.05",
                    "--quiet",
                    *extra,
                ]
            )
            == 0
        )
        containers[backend] = load_file(str(out))["codes"]
        assert (
            main(
                [
                    "decode",
                    str(out),
                    str(tmp_path / f"{backend}.wav"),
                    "--model",
                    weights,
                    "--quiet",
                    "--chunk-seconds",
                    "0.1",
                    *extra,
                ]
            )
            == 0
        )
    assert containers["torch"].shape == (1, model.quantizer.n_q, math.ceil(source.size / HOP))
    np.testing.assert_array_equal(containers["onnxruntime"], containers["torch"])
    torch_audio = sf.read(str(tmp_path / "torch.wav"), dtype="float32")[0]
    onnx_audio = sf.read(str(tmp_path / "onnxruntime.wav"), dtype="float32")[0]
    assert onnx_audio.shape == torch_audio.shape == source.shape
    np.testing.assert_allclose(onnx_audio, torch_audio, rtol=0, atol=ATOL)
    # Decoding the ONNX Runtime container with the torch backend works too: the same file format.
    assert (
        main(
            [
                "decode",
                str(tmp_path / "onnxruntime.safetensors"),
                str(tmp_path / "x.wav"),
                "--model",
                weights,
                "--quiet",
            ]
        )
        == 0
    )


def test_cli_backend_flags_are_checked(rvq, continuous, tmp_path, capsys):
    model, config, folder, _ = rvq
    export_model(tmp_path, "model_best", model, config)
    weights = str(tmp_path / "model_best.safetensors")
    sf.write(str(tmp_path / "in.wav"), np.zeros(2400, np.float32), 24000, subtype="FLOAT")
    cases = [
        (["--onnx", str(folder)], "--onnx is for --backend onnxruntime"),
        (["--backend", "onnxruntime", "--device", "cuda"], "runs on the CPU"),
        (["--backend", "onnxruntime", "--onnx", str(continuous[2])], "exported from another model"),
        (["--backend", "onnxruntime", "--onnx", str(tmp_path)], "not an ONNX export of audioenc"),
    ]
    for flags, message in cases:
        assert main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "x.npz"), "--model", weights, *flags]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


# ---------------------------------------------------------------- export-only layer forms (onnx_layers)
def test_celu_is_torch_elu_exactly():
    """The exported ELU is ``nn.CELU(alpha=1)``: bit for bit PyTorch's ELU, also at the extremes."""
    extremes = torch.tensor([0.0, -0.0, 1e-30, -1e-30, -1e-7, 1e-7, 88.0, -88.0, float("inf"), -float("inf")])
    x = torch.cat([torch.linspace(-100, 100, 20001), extremes])
    assert torch.equal(torch.nn.CELU(alpha=1.0)(x), torch.nn.functional.elu(x))


@pytest.mark.parametrize("stride,taps", [(2, 2), (5, 2), (8, 2), (4, 1), (3, 3)])
def test_polyphase_transposed_convolution_equals_pytorch(stride, taps):
    """Kernel ``taps · stride``, causal: the polyphase convolution equals the transposed one (bias included)."""
    from audioenc.interop.onnx_layers import PolyphaseConvTranspose1d, exportable_layers
    from audioenc.models.conv import StreamableConvTranspose1d

    torch.manual_seed(stride * 10 + taps)
    layer = StreamableConvTranspose1d(6, 5, taps * stride, stride, causal=True, norm="none").eval()
    x = torch.randn(2, 6, 9)
    with torch.no_grad():
        expected = layer(x)
        exportable_layers(layer)
        assert type(layer) is PolyphaseConvTranspose1d
        got = layer(x)
    assert got.shape == expected.shape == (2, 5, 9 * stride)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_non_causal_transposed_convolution_is_left_as_it_is():
    from audioenc.interop.onnx_layers import exportable_layers
    from audioenc.models.conv import StreamableConvTranspose1d

    layer = StreamableConvTranspose1d(4, 4, 8, 4, causal=False, norm="none")
    exportable_layers(layer)
    assert type(layer) is StreamableConvTranspose1d


@pytest.mark.parametrize("causal", [True, False])
def test_static_padding_gives_the_same_frames_for_every_length(causal):
    """Zero padding ``stride - 1`` on the right instead of ``(s - T mod s) mod s``: the same output."""
    from audioenc.interop.onnx_layers import StaticPaddedConv1d, exportable_layers
    from audioenc.models.conv import StreamableConv1d

    torch.manual_seed(3)
    layer = StreamableConv1d(3, 4, 10, stride=5, causal=causal, norm="none", pad_mode="constant").eval()
    reference = StreamableConv1d(3, 4, 10, stride=5, causal=causal, norm="none", pad_mode="constant").eval()
    reference.load_state_dict(layer.state_dict())
    exportable_layers(layer)
    assert type(layer) is StaticPaddedConv1d
    for length in range(1, 23):
        x = torch.randn(2, 3, length)
        with torch.no_grad():
            expected, got = reference(x), layer(x)
        assert got.shape == expected.shape == (2, 4, math.ceil(length / 5))
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_graphs_hold_only_2d_convolutions(rvq):
    """Every convolution is exported on ``[B, C, 1, T]`` (ONNX Runtime's fast convolution kernels),
    ELUs as ``Celu``; the one-shot decoder has no transposed convolution (the step graph keeps its
    overlap-add one). Equality with PyTorch: the tests above."""
    import onnx

    _, _, folder, _ = rvq
    for name in ("encoder", "decoder", "encoder_step", "decoder_step"):
        graph = onnx.load(str(folder / f"{name}.onnx")).graph
        ops = [node.op_type for node in graph.node]
        kernels = {t.name: len(t.dims) for t in graph.initializer}
        convs = [node for node in graph.node if node.op_type == "Conv"]
        assert convs and all(kernels[node.input[1]] == 4 for node in convs)
        assert "Elu" not in ops and "Celu" in ops
        assert ("ConvTranspose" in ops) == (name == "decoder_step")


@pytest.fixture(scope="module")
def blocked(tmp_path_factory):
    """A causal continuous codec whose channel counts are multiples of 16 (ONNX Runtime's NCHWc blocks)."""
    model, config = _model(quantizer="none", n_filters=16, dimension=32, lstm=1)
    folder = tmp_path_factory.mktemp("onnx") / "blocked"
    export_onnx(model, config, folder)
    return model, folder


def test_activations_on_blocked_tensors_equal_pytorch(blocked):
    """The ONNX Runtime sessions let the ELUs read the convolutions' blocked outputs: the same latents
    and audio as PyTorch, one-shot and streamed (where the CPU has no NCHWc kernels nothing changes)."""
    from audioenc.interop.onnx_session import _optimized_blocked_model

    model, folder = blocked
    onnx_codec = OnnxCodec(folder, threads=1)
    optimized = _optimized_blocked_model(folder / "encoder.onnx", 1)
    if optimized is not None:  # rewritten: some ELU reads a blocked convolution output directly
        producer = {name: node for node in optimized.graph.node for name in node.output}
        blocked_inputs = [producer[node.input[0]].domain for node in optimized.graph.node if node.op_type == "Celu"]
        assert "com.microsoft.nchwc" in blocked_inputs
    audio = _audio(13 * HOP + 3, seed=5)
    (latents,) = onnx_codec.run("encoder", audio.numpy())
    (decoded,) = onnx_codec.run("decoder", latents)
    with torch.no_grad():
        reference = model.encoder(audio)
        expected = model.decoder(reference)
    np.testing.assert_allclose(latents, reference.numpy(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(decoded, expected.numpy(), rtol=0, atol=ATOL)
    state, parts = onnx_codec.zero_state("encoder_step", 2), []
    for start in range(0, audio.shape[-1], 4 * HOP):
        part, *state = onnx_codec.run("encoder_step", audio[..., start : start + 4 * HOP].numpy(), *state)
        parts.append(part)
    np.testing.assert_allclose(np.concatenate(parts, -1), reference.numpy(), rtol=0, atol=ATOL)


def test_layout_rewrite_only_on_the_onnx_runtime_the_export_checked(blocked, tmp_path):
    """The rewrite edits ONNX Runtime's own optimised graph: a folder exported (and checked against
    PyTorch) on another ONNX Runtime version runs the plain graphs, with the same results."""
    import json
    import shutil

    from audioenc.interop.onnx import SIDECAR

    model, folder = blocked
    assert OnnxCodec(folder, threads=1).layout_rewrite
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    sidecar = json.loads((other / SIDECAR).read_text())
    sidecar["exporter"]["onnxruntime"] = "0.0.1"
    (other / SIDECAR).write_text(json.dumps(sidecar))
    onnx_codec = OnnxCodec(other, threads=1)
    assert not onnx_codec.layout_rewrite
    audio = _audio(9 * HOP + 1, seed=6)
    (latents,) = onnx_codec.run("encoder", audio.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(latents, model.encoder(audio).numpy(), rtol=0, atol=ATOL)
