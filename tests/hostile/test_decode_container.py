"""Hostile containers and damaged models: `audioenc decode` / `encode` never trust their input.

Issue 15, items 1 (part) and 2. A tiny continuous codec and a tiny RVQ codec are exported once per
module, a short wav is encoded once with each; every case then writes a tampered copy (values,
dtype, shape, header fields, truncation) or a damaged model into its own folder and runs the real
CLI in-process. Each refusal must: exit 2; print exactly one stderr line starting
``audioenc CMD: error:`` that names the file and the field or problem; print no traceback; leave
nothing at OUT (and no temporary file beside it).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from audioenc.cli import main
from audioenc.config import ModelConfig
from audioenc.models.codec import CodecModel
from audioenc.models.files import export_model

TINY = {"n_filters": 4, "dimension": 16, "lstm": 1}
BINS, N_Q = 8, 4


# ------------------------------------------------------------------------------------------------ helpers


def _export(directory: Path, quantizer: str) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(**TINY, quantizer=quantizer, n_q=N_Q, bins=BINS, q_dropout=False)
    model = CodecModel.from_config(config)
    if quantizer == "rvq":  # one training pass initialises the codebooks
        with torch.no_grad():
            model(0.3 * torch.randn(2, 1, 24000, generator=torch.Generator().manual_seed(1)))
    model.eval()
    return export_model(directory, "model_best", model, config)


def read_container(path: Path) -> tuple[str, np.ndarray, dict]:
    """(tensor name, tensor, metadata) of an encoded file."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="np") as handle:
            name = next(iter(handle.keys()))
            return name, handle.get_tensor(name), dict(handle.metadata())
    with np.load(path) as archive:
        name = next(n for n in archive.files if n != "metadata")
        return name, archive[name], json.loads(str(archive["metadata"]))


def write_container(path: Path, name: str, tensor: np.ndarray, metadata: dict) -> None:
    """Write a container as another tool would: valid framing, whatever content (``.npz``: latents
    Fortran-order, read block by block; codes C-order, which the reader loads whole)."""
    if path.suffix == ".safetensors":
        save_file({name: np.ascontiguousarray(tensor)}, str(path), metadata=metadata)
        return
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("metadata.npy", "w") as entry:
            np.lib.format.write_array(entry, np.array(json.dumps(metadata)), allow_pickle=False)
        with archive.open(f"{name}.npy", "w") as entry:
            ordered = np.asfortranarray(tensor) if name == "latents" else np.ascontiguousarray(tensor)
            np.lib.format.write_array(entry, ordered, allow_pickle=False)


def assert_refused(rc: int, capsys, command: str, out: Path, *needles: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"audioenc {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if out.is_dir():
        assert not any(out.iterdir()), list(out.iterdir())
    else:
        assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
    assert not leftovers, leftovers
    return lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Exported models and their valid containers (safetensors and npz), shared by the module."""
    root = tmp_path_factory.mktemp("hostile_decode")
    models = {"latents": _export(root / "continuous", "none"), "codes": _export(root / "rvq", "rvq")}
    audio = (0.3 * np.random.default_rng(0).standard_normal(7200)).astype(np.float32)  # 0.3 s: 23 frames
    sf.write(str(root / "in.wav"), audio, 24000, subtype="FLOAT")
    containers = {}
    for kind, model in models.items():
        for suffix in (".safetensors", ".npz"):
            path = root / f"{kind}{suffix}"
            assert main(["encode", str(root / "in.wav"), str(path), "--model", str(model), "--quiet"]) == 0
            containers[kind, suffix] = path
    return {"root": root, "models": models, "containers": containers}


def _tampered(built, tmp_path, kind: str, suffix: str, tamper: Callable) -> Path:
    name, tensor, metadata = read_container(built["containers"][kind, suffix])
    result = tamper(tensor.copy(), dict(metadata))
    tensor, metadata = result if result is not None else (tensor, metadata)
    path = tmp_path / f"hostile_{kind}{suffix}"
    write_container(path, name, tensor, metadata)
    return path


def _decode(built, kind: str, source: Path, out: Path, *extra: str) -> int:
    return main(["decode", str(source), str(out), "--model", str(built["models"][kind]), *extra])


# ------------------------------------------------------------------------------------------------ valid input


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("kind", ["latents", "codes"])
def test_valid_containers_still_decode(built, tmp_path, capsys, kind, suffix):
    out = tmp_path / "out.wav"
    assert _decode(built, kind, built["containers"][kind, suffix], out, "--quiet") == 0
    assert capsys.readouterr().err == ""
    assert sf.info(str(out)).frames == 7200
    # A container rewritten by another tool (C- or Fortran-order, JSON numbers in .npz) is accepted too.
    copy = _tampered(built, tmp_path, kind, suffix, lambda t, m: None)
    assert _decode(built, kind, copy, tmp_path / "copy.wav", "--quiet", "--source-rate") == 0
    audio, _ = sf.read(str(tmp_path / "copy.wav"))
    np.testing.assert_array_equal(audio, sf.read(str(out))[0])


# ------------------------------------------------------------------------------------------------ codes


def _set(tensor, value):
    tensor[0, 1, 5] = value
    return tensor


CODE_CASES = {
    "code-equals-bins": (lambda t, m: (_set(t, BINS), m), ["'codes' holds 8 at codebook 1, frame 5", "0..7"]),
    "code-minus-one": (lambda t, m: (_set(t, -1), m), ["'codes' holds -1", "codebook range"]),
    "code-5000": (lambda t, m: (_set(t, 5000), m), ["'codes' holds 5000", "codebook range"]),
    "codes-float-typed": (lambda t, m: (t.astype(np.float32), m), ["'codes' has dtype float32", "integer"]),
    "codes-more-codebooks-than-model": (
        lambda t, m: (np.concatenate([t, t[:, :1]], axis=1), {**m, "n_q": "5"}),
        ["5 codebooks", "only 4"],
    ),
    "codes-n_q-abc": (lambda t, m: (t, {**m, "n_q": "abc"}), ["'n_q'", "'abc', not an integer"]),
    "codes-n_q-disagrees-with-tensor": (lambda t, m: (t, {**m, "n_q": "3"}), ["'n_q' is 3", "4 codebooks"]),
    "codes-n_q-zero": (lambda t, m: (t, {**m, "n_q": "0"}), ["'n_q' is 0"]),
}


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("case", list(CODE_CASES))
def test_bad_codes_are_refused(built, tmp_path, capsys, case, suffix):
    tamper, needles = CODE_CASES[case]
    source = _tampered(built, tmp_path, "codes", suffix, tamper)
    out = tmp_path / "out.wav"
    assert_refused(_decode(built, "codes", source, out), capsys, "decode", out, source.name, *needles)


# ------------------------------------------------------------------------------------------------ latents


def _latent(value):
    def tamper(tensor, metadata):
        tensor[0, 3, 7] = value
        return tensor, metadata

    return tamper


LATENT_CASES = {
    "latent-nan": (_latent(np.nan), ["'latents' holds nan at dimension 3, frame 7"]),
    "latent-inf": (_latent(-np.inf), ["'latents' holds -inf"]),
    "latents-times-1e30": (lambda t, m: (t * np.float32(1e30), m), ["'latents' holds", "beyond ±1e+06"]),
    "latents-int-typed": (lambda t, m: (t.astype(np.int32), m), ["'latents' has dtype int32", "floating-point"]),
    "latents-other-dimension": (lambda t, m: (t[:, :8], m), ["'latents' has 8 rows", "latent dimension is 16"]),
    "latents-two-items": (lambda t, m: (np.concatenate([t, t]), m), ["shape [2, 16, 23]", "[1, rows, 23]"]),
    "latents-rank-2": (lambda t, m: (t[0], m), ["shape [16, 23]"]),
    "latents-frames-differ": (lambda t, m: (t[:, :, :20], m), ["shape [1, 16, 20]"]),
    "scale-nan": (lambda t, m: (t, {**m, "scale": "nan"}), ["'scale'", "not a finite number"]),
    "scale-inf": (lambda t, m: (t, {**m, "scale": "inf"}), ["'scale'", "not a finite number"]),
    "scale-negative": (lambda t, m: (t, {**m, "scale": "-0.5"}), ["'scale' is -0.5", "positive"]),
    "scale-zero": (lambda t, m: (t, {**m, "scale": "0"}), ["'scale' is 0.0"]),
    "scale-1e30": (lambda t, m: (t, {**m, "scale": "1e30"}), ["'scale' is 1e+30"]),
    "scale-missing-normalising-codec": (
        lambda t, m: (t, {k: v for k, v in m.items() if k != "scale"}),
        ["'scale' is missing"],
    ),
}


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("case", list(LATENT_CASES))
def test_bad_latents_are_refused(built, tmp_path, capsys, case, suffix):
    tamper, needles = LATENT_CASES[case]
    source = _tampered(built, tmp_path, "latents", suffix, tamper)
    out = tmp_path / "out.wav"
    assert_refused(_decode(built, "latents", source, out), capsys, "decode", out, source.name, *needles)


# ------------------------------------------------------------------------------------------------ header fields


def _field(name, value):
    return lambda t, m: (t, {**m, name: value})


def _without(name):
    return lambda t, m: (t, {k: v for k, v in m.items() if k != name})


HEADER_CASES = {
    "num_samples-1e13-text": (_field("num_samples", "1e13"), ["'num_samples' is '1e13', not an integer"]),
    "num_samples-1e13": (_field("num_samples", "10000000000000"), ["'num_samples' is 10000000000000", "num_frames"]),
    "num_samples-negative": (_field("num_samples", "-7200"), ["'num_samples' is -7200", "positive"]),
    "num_samples-one-frame-over": (_field("num_samples", str(7200 + 320)), ["'num_samples' is 7520", "7041..7360"]),
    "num_samples-huge-digits": (_field("num_samples", "9" * 5000), ["'num_samples'", "not an integer"]),
    "num_frames-disagrees": (_field("num_frames", "24"), ["'num_samples' is 7200, but num_frames 24"]),
    "sample_rate-zero": (_field("sample_rate", "0"), ["'sample_rate' is 0", "positive"]),
    "sample_rate-negative": (_field("sample_rate", "-24000"), ["'sample_rate' is -24000"]),
    "sample_rate-not-a-number": (_field("sample_rate", "fast"), ["'sample_rate' is 'fast', not an integer"]),
    "sample_rate-float": (_field("sample_rate", "24000.5"), ["'sample_rate' is '24000.5'"]),
    "source_sample_rate-zero": (_field("source_sample_rate", "0"), ["'source_sample_rate' is 0"]),
    "source_frames-absurd": (_field("source_frames", "10000000000000"), ["'source_frames' is 10000000000000"]),
    "hop_length-other": (_field("hop_length", "640"), ["hop_length 640"]),
    "channels-two": (_field("channels", "2"), ["'channels' is 2", "has 1"]),
    "frame_rate-nan": (_field("frame_rate", "nan"), ["'frame_rate'", "not a finite number"]),
    "frame_rate-other": (_field("frame_rate", "50.0"), ["'frame_rate' is 50.0"]),
    "kind-other": (_field("kind", "pixels"), ["kind 'pixels'"]),
    "model_config-not-json": (_field("model_config", "{oops"), ["'model_config'", "not a JSON object"]),
    "format-other": (_field("format", "something/2"), ["not an audioenc encoded file"]),
    "missing-num_frames": (_without("num_frames"), ["'num_frames' is missing"]),
    "missing-sample_rate": (_without("sample_rate"), ["'sample_rate' is missing"]),
    "missing-model_config": (_without("model_config"), ["'model_config' is missing"]),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_bad_header_fields_are_refused(built, tmp_path, capsys, case):
    tamper, needles = HEADER_CASES[case]
    source = _tampered(built, tmp_path, "latents", ".safetensors", tamper)
    out = tmp_path / "out.wav"
    assert_refused(_decode(built, "latents", source, out), capsys, "decode", out, source.name, *needles)


NPZ_HEADER_CASES = {  # JSON metadata can hold what safetensors' string table cannot
    "sample_rate-json-float": (_field("sample_rate", 24000.0), ["'sample_rate' is 24000.0, not an integer"]),
    "sample_rate-json-null": (_field("sample_rate", None), ["'sample_rate' is None, not a number"]),
    "source_name-json-list": (_field("source_name", [1, 2]), ["'source_name' is [1, 2], not a string"]),
    "n_q-json-true": (_field("n_q", True), ["'n_q' is True, not a number"]),
    "metadata-not-a-table": (lambda t, m: (t, ["format", "audioenc-encoded/1"]), ["metadata is list"]),
}


@pytest.mark.parametrize("case", list(NPZ_HEADER_CASES))
def test_bad_npz_metadata_is_refused(built, tmp_path, capsys, case):
    tamper, needles = NPZ_HEADER_CASES[case]
    source = _tampered(built, tmp_path, "codes", ".npz", tamper)
    out = tmp_path / "out.wav"
    assert_refused(_decode(built, "codes", source, out), capsys, "decode", out, source.name, *needles)


# ------------------------------------------------------------------------------------------------ damaged files


def _cut(fraction: float) -> Callable[[bytes], bytes]:
    return lambda data: data[: int(len(data) * fraction)]


def _header_only(data: bytes) -> bytes:
    return data[: 8 + struct.unpack("<Q", data[:8])[0]]


def _npz_entry_short(path: Path) -> None:
    """Rewrite the npz with its tensor entry 4 bytes short (valid zip, valid CRC, .npy header intact)."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data[:-4] if name != "metadata.npy" else data)


def _npz_flip_data_byte(path: Path) -> None:
    """Flip one byte of the stored tensor data in place: the zip's CRC-32 no longer matches."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("latents.npy")
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length  # the local header, then the data
    data[start + info.file_size - 3] ^= 0x40
    path.write_bytes(bytes(data))


CONTAINER_CASES = {
    "safetensors-truncated": (".safetensors", _cut(0.7), ["not a readable safetensors file"]),
    "safetensors-header-only": (".safetensors", _header_only, ["not a readable safetensors file"]),
    "safetensors-empty": (".safetensors", lambda data: b"", ["not a readable safetensors file"]),
    "safetensors-garbage": (".safetensors", lambda data: b"\x00garbage" * 40, ["not a readable safetensors file"]),
    "npz-truncated": (".npz", _cut(0.7), ["not an audioenc .npz"]),
    "npz-garbage": (".npz", lambda data: b"PK\x03\x04garbage" * 40, ["not an audioenc .npz"]),
    "npz-entry-short": (".npz", _npz_entry_short, ["latents.npy entry holds", "truncated or damaged"]),
    "npz-bad-crc": (".npz", _npz_flip_data_byte, ["cannot be read", "Bad CRC-32"]),
}


@pytest.mark.parametrize("case", list(CONTAINER_CASES))
def test_damaged_container_files_are_refused(built, tmp_path, capsys, case):
    suffix, damage, needles = CONTAINER_CASES[case]
    source = tmp_path / f"damaged{suffix}"
    shutil.copyfile(built["containers"]["latents", suffix], source)
    if damage.__name__.startswith("_npz"):
        damage(source)
    else:
        source.write_bytes(damage(source.read_bytes()))
    out = tmp_path / "out.wav"
    assert_refused(_decode(built, "latents", source, out), capsys, "decode", out, source.name, *needles)


def test_a_folder_as_input_is_refused(built, tmp_path, capsys):
    source = tmp_path / "folder.npz"
    source.mkdir()
    out = tmp_path / "out.wav"
    assert_refused(_decode(built, "latents", source, out), capsys, "decode", out, "folder.npz", "is a folder")


# ------------------------------------------------------------------------------------------------ damaged models


def _nan_weight(model: Path, target: Path) -> str:
    """Copy the export with one weight set to NaN; returns that tensor's key."""
    with safe_open(str(model), framework="np") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    key = min(key for key in tensors if key.startswith("decoder.") and tensors[key].dtype == np.float32)
    tensors[key] = tensors[key].copy()
    tensors[key].flat[0] = np.nan
    save_file(tensors, str(target))
    return key


MODEL_CASES = {
    "weights-nan": ("weights", None, ["holds 1 NaN/Inf value(s)"]),
    "weights-truncated": ("weights", _cut(0.6), ["not a readable safetensors file"]),
    "weights-header-only": ("weights", _header_only, ["not a readable safetensors file"]),
    "weights-empty": ("weights", lambda data: b"", ["not a readable safetensors file"]),
    "json-not-json": ("json", lambda text: text[: len(text) // 2], ["not valid JSON"]),
    "json-without-model": ("json", lambda text: json.dumps({"other": {}}), ['no "model" section']),
    "json-model-not-a-table": ("json", lambda text: json.dumps({"model": [1, 2]}), ['no "model" section']),
    "json-model-bad-value": (
        "json",
        lambda text: json.dumps({"model": {"dimension": "wide"}}),
        ["model config is unusable", "model.dimension"],
    ),
    "json-other-dimension": (
        "json",
        lambda text: text.replace('"dimension": 16', '"dimension": 8'),
        ["do not fit the configuration in model_best.json"],
    ),
}


@pytest.mark.parametrize("command", ["decode", "encode"])
@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_damaged_models_are_refused(built, tmp_path, capsys, case, command):
    part, damage, needles = MODEL_CASES[case]
    original = built["models"]["latents"]
    model = tmp_path / "model_best.safetensors"
    shutil.copyfile(original, model)
    shutil.copyfile(original.with_suffix(".json"), model.with_suffix(".json"))
    if damage is None:
        key = _nan_weight(original, model)
        needles = [*needles, f"weight {key!r}"]
    elif part == "weights":
        model.write_bytes(damage(model.read_bytes()))
    else:
        model.with_suffix(".json").write_text(damage(model.with_suffix(".json").read_text()))
    named = model.name if part == "weights" else model.with_suffix(".json").name
    root = built["root"]
    if command == "decode":
        out = tmp_path / "out.wav"
        argv = ["decode", str(built["containers"]["latents", ".safetensors"]), str(out)]
    else:
        out = tmp_path / "out.safetensors"
        argv = ["encode", str(root / "in.wav"), str(out)]
    rc = main(
        [*argv, "--model", str(model), "--allow-other-weights"]
        if command == "decode"
        else [*argv, "--model", str(model)]
    )
    assert_refused(rc, capsys, command, out, named, *needles)


# ------------------------------------------------------------------------------------------------ output names


OUTPUT_CASES = {
    "unknown-suffix": ("out.xyz", [], ["unknown audio suffix '.xyz'", ".wav", ".flac"]),
    "no-suffix": ("out", [], ["no suffix", ".wav"]),
    "container-suffix": ("out.npz", [], ["unknown audio suffix '.npz'"]),
    "existing-folder": ("folder.wav", [], ["is a folder", "decoded.wav"]),
    "flac-cannot-hold-float": ("out.flac", [], ["FLAC files cannot hold subtype 'FLOAT'", "PCM_16"]),
    "unknown-subtype": ("out.wav", ["--subtype", "PCM_99"], ["cannot hold subtype 'PCM_99'", "PCM_16"]),
}


@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_unusable_outputs_are_refused_before_decoding(built, tmp_path, capsys, case):
    name, extra, needles = OUTPUT_CASES[case]
    out = tmp_path / name
    if case == "existing-folder":
        out.mkdir()
    rc = _decode(built, "latents", built["containers"]["latents", ".npz"], out, *extra)
    assert_refused(rc, capsys, "decode", out, name, *needles)


def test_encode_to_an_existing_folder_is_refused(built, tmp_path, capsys):
    out = tmp_path / "folder.safetensors"
    out.mkdir()
    rc = main(["encode", str(built["root"] / "in.wav"), str(out), "--model", str(built["models"]["latents"])])
    assert_refused(rc, capsys, "encode", out, "folder.safetensors", "is a folder")


# ------------------------------------------------------------------------------------------------ overflowing models


def _overflowing_copy(model: Path, target: Path, part: str, value: float) -> None:
    """Copy the export with the weight-norm magnitude of ``part``'s last convolution set to ``value``:
    finite weights (accepted at loading) whose output is absurd or overflows float32."""
    with safe_open(str(model), framework="np") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    pattern = re.compile(rf"{part}\.model\.(\d+)\.conv\.parametrizations\.weight\.original0")
    key = max((k for k in tensors if pattern.fullmatch(k)), key=lambda k: int(pattern.fullmatch(k).group(1)))
    tensors[key] = np.full_like(tensors[key], value)
    save_file(tensors, str(target))


def test_encoder_that_overflows_writes_nothing(built, tmp_path, capsys):
    model = tmp_path / "model_best.safetensors"
    _overflowing_copy(built["models"]["latents"], model, "encoder", 1e12)
    shutil.copyfile(built["models"]["latents"].with_suffix(".json"), model.with_suffix(".json"))
    out = tmp_path / "out.npz"
    rc = main(["encode", str(built["root"] / "in.wav"), str(out), "--model", str(model)])
    assert_refused(rc, capsys, "encode", out, "in.wav", "the encoder produced latent", "beyond ±1e+06")


def test_decoder_that_overflows_writes_nothing(built, tmp_path, capsys):
    model = tmp_path / "model_best.safetensors"
    _overflowing_copy(built["models"]["latents"], model, "decoder", 3e38)
    shutil.copyfile(built["models"]["latents"].with_suffix(".json"), model.with_suffix(".json"))
    source = built["containers"]["latents", ".safetensors"]
    out = tmp_path / "out.wav"
    rc = main(["decode", str(source), str(out), "--model", str(model), "--allow-other-weights"])
    assert_refused(rc, capsys, "decode", out, source.name, "gave NaN/Inf audio", "nothing was written")


def test_audio_beyond_the_level_limit_is_not_encoded(built, tmp_path, capsys):
    loud = tmp_path / "loud.wav"
    sf.write(str(loud), np.full(2400, 3e6, np.float32), 24000, subtype="FLOAT")
    out = tmp_path / "out.safetensors"
    rc = main(["encode", str(loud), str(out), "--model", str(built["models"]["latents"])])
    assert_refused(rc, capsys, "encode", out, "loud.wav", "level (RMS 3e+06) is beyond 1e+06")


# ------------------------------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("case", ["nan-weight", "truncated", "config-without-model"])
def test_damaged_checkpoints_are_refused(built, tmp_path, capsys, case):
    from audioenc.config import Config
    from audioenc.models.files import load_codec
    from audioenc.training.checkpoint import save_training_state

    model, config = load_codec(built["models"]["latents"])
    weights = model.state_dict()
    key = next(k for k in weights if k.startswith("decoder.") and weights[k].is_floating_point())
    if case == "nan-weight":
        weights[key] = weights[key].clone().fill_(float("nan"))
    state = {"config": Config(model=config).to_dict(), "model": weights, "step": 1}
    if case == "config-without-model":
        del state["config"]["model"]
    checkpoint = tmp_path / "checkpoint_last.pt"
    save_training_state(checkpoint, state)
    if case == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:-300])
    needles = {
        "nan-weight": [f"weight {key!r}", "NaN/Inf"],
        "truncated": ["could not be read"],
        "config-without-model": ["no 'model' section"],
    }[case]
    out = tmp_path / "out.wav"
    source = built["containers"]["latents", ".npz"]
    rc = main(["decode", str(source), str(out), "--model", str(checkpoint)])
    assert_refused(rc, capsys, "decode", out, checkpoint.name, *needles)
