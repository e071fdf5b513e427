"""Hostile input to the interop commands: ONNX export folders (``--backend onnxruntime --onnx DIR``),
``import-hf`` folders and ``export --format hf``.

Every refusal is one line naming the file, exits 2 with no traceback, and writes nothing (the output
paths are absent afterwards, the input folders byte-identical). One tiny causal RVQ codec is exported to
ONNX once per module; the damaged folders are copies of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it at import

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.numpy import load_file

from audioenc.cli import main
from audioenc.config import ModelConfig
from audioenc.interop.onnx import SIDECAR, export_onnx
from audioenc.models.codec import CodecModel
from audioenc.models.files import export_model
from tests.hostile.test_cli_inputs import assert_one_line_error

REEXPORT = "re-export with `audioenc export RUN --format onnx OUT`"


def tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative names)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------- ONNX


@pytest.fixture(scope="module")
def onnx_setup(tmp_path_factory):
    """A tiny trained causal RVQ codec (hop 8), its weights file, its ONNX export, a wav and the torch codes."""
    root = tmp_path_factory.mktemp("interop")
    torch.manual_seed(0)
    config = ModelConfig(n_filters=2, dimension=8, ratios=(4, 2), lstm=1, n_q=3, bins=16, quantizer="rvq")
    model = CodecModel.from_config(config)
    model.quantizer.q_dropout = False
    model.train()
    with torch.no_grad():  # one training pass: k-means initialises every codebook
        model(0.3 * torch.randn(4, 1, 512, generator=torch.Generator().manual_seed(9)))
    model.eval()
    export_model(root / "run", "model_best", model, config)
    export_onnx(model, config, root / "onnx")
    sf.write(
        str(root / "in.wav"),
        (0.3 * np.random.default_rng(0).standard_normal(1200)).astype(np.float32),
        24000,
        subtype="FLOAT",
    )
    weights = str(root / "run" / "model_best.safetensors")
    assert (
        main(
            [
                "encode",
                str(root / "in.wav"),
                str(root / "torch.safetensors"),
                "--model",
                weights,
                "--quiet",
                "--chunk-seconds",
                "0.02",
            ]
        )
        == 0
    )
    return root, weights


def _copy(onnx_setup, tmp_path, name: str = "copy") -> Path:
    folder = tmp_path / name
    shutil.copytree(onnx_setup[0] / "onnx", folder)
    return folder


def _edit_sidecar(folder: Path, edit) -> None:
    path = folder / SIDECAR
    sidecar = json.loads(path.read_text())
    edit(sidecar)
    path.write_text(json.dumps(sidecar))


def _other_weights_(path: Path) -> None:
    """Rewrite a graph as another model of the same architecture would have it: every weight changed a little."""
    import onnx

    graph = onnx.load(str(path))
    for initializer in graph.graph.initializer:
        array = onnx.numpy_helper.to_array(initializer)
        if array.dtype == np.float32 and array.size > 1:
            initializer.CopyFrom(onnx.numpy_helper.from_array(array * np.float32(1.5), initializer.name))
    onnx.save(graph, str(path))


def _run(onnx_setup, tmp_path, command: str, folder: Path) -> tuple[int, Path]:
    root, weights = onnx_setup
    source = root / "in.wav" if command == "encode" else root / "torch.safetensors"
    out = tmp_path / ("out.safetensors" if command == "encode" else "out.wav")
    code = main(
        [
            command,
            str(source),
            str(out),
            "--model",
            weights,
            "--quiet",
            "--chunk-seconds",
            "0.02",
            "--backend",
            "onnxruntime",
            "--onnx",
            str(folder),
        ]
    )
    return code, out


def _assert_refused(onnx_setup, tmp_path, capsys, folder: Path, *needles: str) -> None:
    """encode and decode both refuse ``folder`` in one line, write nothing and leave it as it was."""
    before = tree_hashes(folder) if folder.is_dir() else None
    for command in ("encode", "decode"):
        code, out = _run(onnx_setup, tmp_path, command, folder)
        assert code == 2
        assert_one_line_error(capsys, command, *needles)
        assert not out.exists()
    assert (tree_hashes(folder) if folder.is_dir() else None) == before


def test_a_fresh_export_records_graph_hashes_and_encodes_like_torch(onnx_setup, tmp_path, capsys):
    sidecar = json.loads((onnx_setup[0] / "onnx" / SIDECAR).read_text())
    for entry in sidecar["graphs"].values():
        assert entry["sha256"] == hashlib.sha256((onnx_setup[0] / "onnx" / entry["file"]).read_bytes()).hexdigest()
    code, out = _run(onnx_setup, tmp_path, "encode", onnx_setup[0] / "onnx")
    assert code == 0 and capsys.readouterr().err == ""
    np.testing.assert_array_equal(
        load_file(str(out))["codes"], load_file(str(onnx_setup[0] / "torch.safetensors"))["codes"]
    )


@pytest.mark.parametrize("graph", ["encoder_step", "decoder_step"])
def test_graphs_of_another_model_copied_in_are_refused(onnx_setup, tmp_path, capsys, graph):
    """Same architecture, other weights, the sidecar untouched: before graph hashes, encode wrote wrong codes
    under this model's hashes (decode: audio of the wrong decoder) and exited 0."""
    folder = _copy(onnx_setup, tmp_path)
    _other_weights_(folder / f"{graph}.onnx")
    _assert_refused(onnx_setup, tmp_path, capsys, folder, f"{graph}.onnx", "SHA-256", REEXPORT)


@pytest.mark.parametrize("damage", ["truncated", "text", "missing", "folder"])
def test_damaged_or_missing_graph_is_refused(onnx_setup, tmp_path, capsys, damage):
    folder = _copy(onnx_setup, tmp_path)
    path = folder / "decoder.onnx"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:3000])
    elif damage == "text":
        path.write_text("not a graph\n")
    else:
        path.unlink()
        if damage == "folder":
            path.mkdir()
    _assert_refused(onnx_setup, tmp_path, capsys, folder, "decoder.onnx", REEXPORT)


@pytest.mark.parametrize(
    "edit, needles",
    [
        (lambda s: s["graphs"]["encoder_step"]["inputs"][1].__setitem__("shape", ["batch", 1, 99]), ("state_in_0",)),
        (lambda s: s["graphs"]["decoder_step"]["inputs"][1].__setitem__("dtype", "int64"), ("state_in_0",)),
        (lambda s: s["graphs"]["encoder_step"]["inputs"][1].__setitem__("shape", ["batch", -1, 6]), ("state_in_0",)),
        (lambda s: s.__setitem__("hop_length", 16), ("hop_length=16",)),
        (lambda s: s.__setitem__("n_q", 2), ("n_q=2",)),
        (lambda s: s["model_config"].__setitem__("bins", 32), ("model_config",)),
        (lambda s: s.__setitem__("model_weights_sha256", "0" * 64), ("another model",)),
        (lambda s: s["graphs"]["encoder"].__setitem__("file", "../onnx/encoder.onnx"), ("encoder.onnx",)),
        (lambda s: s["graphs"]["encoder"].pop("sha256"), ("sha256",)),
        (lambda s: s.__setitem__("graphs", []), ("graphs",)),
        (lambda s: s["graphs"].pop("decoder"), ("graphs",)),
        (lambda s: s.__setitem__("streaming", False), ("streaming",)),
    ],
    ids=[
        "state-shape",
        "state-dtype",
        "state-negative",
        "hop",
        "n_q",
        "model-config",
        "weights-hash",
        "file-path",
        "one-hash-removed",
        "graphs-list",
        "no-decoder",
        "streaming-flag",
    ],
)
def test_edited_sidecar_is_refused(onnx_setup, tmp_path, capsys, edit, needles):
    """Each field the runtime trusts (state shapes and dtypes, graph files, the model it claims to be) is
    checked; before, a state shape gave an ONNX Runtime traceback and the model's numbers had no effect."""
    folder = _copy(onnx_setup, tmp_path)
    _edit_sidecar(folder, edit)
    _assert_refused(onnx_setup, tmp_path, capsys, folder, SIDECAR.split(".")[0], *needles)


def test_export_without_graph_hashes_loads_with_a_warning(onnx_setup, tmp_path, capsys):
    """An export by an older audioenc (no sha256 per graph) still works, saying once that it is unverified."""
    folder = _copy(onnx_setup, tmp_path)
    _edit_sidecar(folder, lambda s: [entry.pop("sha256") for entry in s["graphs"].values()])
    code, out = _run(onnx_setup, tmp_path, "encode", folder)
    assert code == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and "cannot be checked" in lines[0] and REEXPORT in lines[0]
    np.testing.assert_array_equal(
        load_file(str(out))["codes"], load_file(str(onnx_setup[0] / "torch.safetensors"))["codes"]
    )
    # ... but its graphs are still checked against the inputs the sidecar declares and parsed as ONNX.
    (folder / "encoder_step.onnx").write_bytes((folder / "encoder_step.onnx").read_bytes()[:3000])
    out.unlink()
    code, out = _run(onnx_setup, tmp_path, "encode", folder)
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "encoder_step.onnx: not an ONNX graph" in err and REEXPORT in err


@pytest.mark.parametrize("kind", ["missing", "file", "run-folder"])
def test_onnx_folder_that_is_not_an_export(onnx_setup, tmp_path, capsys, kind):
    folder = {"missing": tmp_path / "nowhere", "file": onnx_setup[0] / "in.wav", "run-folder": onnx_setup[0] / "run"}[
        kind
    ]
    needle = {"missing": "does not exist", "file": "is a file", "run-folder": "not an ONNX export"}[kind]
    _assert_refused(onnx_setup, tmp_path, capsys, folder, str(folder), needle)


# ------------------------------------------------------------------------------------ Hugging Face


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny random EncodecModel saved as a transformers folder (what import-hf reads)."""
    from tests.interop.test_hf import random_encodec

    folder = tmp_path_factory.mktemp("hf") / "encodec"
    random_encodec(use_conv_shortcut=False).save_pretrained(folder)
    return folder


def _import_refused(tmp_path, capsys, folder: Path, *needles: str) -> None:
    before = tree_hashes(folder)
    assert main(["import-hf", str(folder), str(tmp_path / "run")]) == 2
    assert_one_line_error(capsys, "import-hf", *needles)
    assert not (tmp_path / "run").exists() and tree_hashes(folder) == before


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"target_bandwidths": []}, "target_bandwidths must be a non-empty list"),
        ({"target_bandwidths": [float("nan")]}, "target_bandwidths[0] must be a finite number > 0; got nan"),
        ({"target_bandwidths": [30.0, float("inf")]}, "target_bandwidths[1]"),
        ({"target_bandwidths": [0.0]}, "target_bandwidths[0]"),
        ({"target_bandwidths": [1e9]}, "codebooks"),
        ({"sampling_rate": 0}, "sampling_rate must be an integer >= 1"),
        ({"upsampling_ratios": [4, 0]}, "upsampling_ratios[1]"),
        ({"codebook_size": 1}, "codebook_size must be an integer >= 2"),
        ({"codebook_size": -1024}, "codebook_size"),
        ({"chunk_length_s": float("nan")}, "chunk_length_s"),
        ({"chunk_length_s": 1.0, "overlap": float("nan")}, "overlap"),
        ({"hidden_size": 10**7, "codebook_dim": 10**7}, "a config.json of another model"),
    ],
    ids=[
        "bw-empty",
        "bw-nan",
        "bw-inf",
        "bw-zero",
        "bw-huge",
        "rate-0",
        "ratio-0",
        "bins-1",
        "bins-neg",
        "chunk-nan",
        "overlap-nan",
        "hidden-huge",
    ],
)
def test_import_refuses_bad_numbers_in_config_json(hf_folder, tmp_path, capsys, change, needle):
    """Every number the importer computes with is checked before the bandwidth arithmetic and before the
    network is built (before: tracebacks for [], NaN, 0; an endless build for 1e9 kbps)."""
    folder = tmp_path / "hf"
    shutil.copytree(hf_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    _import_refused(tmp_path, capsys, folder, "config.json", needle)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pickled code ran",))


def test_import_refuses_pickled_objects_in_pytorch_model_bin(hf_folder, tmp_path, capsys):
    from safetensors.torch import load_file as load_tensors

    folder = tmp_path / "hf"
    folder.mkdir()
    shutil.copy(hf_folder / "config.json", folder / "config.json")
    torch.save({**load_tensors(str(hf_folder / "model.safetensors")), "x": _RunsCode()}, folder / "pytorch_model.bin")
    _import_refused(tmp_path, capsys, folder, str(folder / "pytorch_model.bin"), "safetensors")


def test_export_hf_refuses_a_codebook_of_zeros_as_import_would(tmp_path, capsys):
    """The codebooks are marked initialised but one is all zeros: import-hf refuses such a folder, so the
    export refuses it first, for the same reason (before: exit 0 and a folder import-hf rejects)."""
    from tests.interop.test_hf import tiny_codec

    model, config = tiny_codec()
    with torch.no_grad():
        model.quantizer.layers[1].embed.zero_()
    export_model(tmp_path / "run", "model_best", model, config)
    before = tree_hashes(tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "--format", "hf", str(tmp_path / "hf")]) == 2
    assert_one_line_error(capsys, "export", str(tmp_path / "run"), "codebook(s) [1] are all zeros")
    assert not (tmp_path / "hf").exists() and tree_hashes(tmp_path / "run") == before
