"""What an ONNX export folder must show before ONNX Runtime computes anything with it.

The sidecar ``audioenc_onnx.json`` is the folder's contract, and the PyTorch model (``--model``) is what
every container records. So the folder is trusted only as far as both agree:

* each graph file is the one the export wrote: its SHA-256 equals the one the sidecar records (graphs of
  another model of the same architecture copied in would otherwise run, silently, under this model's name);
* the sidecar describes this model: its weights and configuration hashes and the numbers it states
  (hop, sample rate, codebooks, level rule) equal the model's;
* the inputs the sidecar declares (names, dtypes, the shapes of the zero states) are the graph's own.

Exports written before graph hashes existed still load, with a one-line warning that their graphs cannot
be verified; the other two checks apply to them too. Every refusal names the file and says to re-export.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from audioenc.config import saved_section
from audioenc.errors import UserError
from audioenc.models.files import model_config_hash, model_weights_hash

REEXPORT = "re-export with `audioenc export RUN --format onnx OUT`"
GRAPH_NAMES = ("encoder", "decoder", "encoder_step", "decoder_step")
DTYPES = ("float32", "int64")
"""The input dtypes an export declares (audio, latents and states; codes)."""


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks (the paper model's graphs are ~30 MB each)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_identity(model: Any, config: Any | None = None) -> dict[str, Any]:
    """The sidecar fields that follow from the model alone (and its configuration, when given): what a
    folder must state to be an export of ``model``."""
    identity = {  # the weights first: a folder of another model is named as such
        "model_weights_sha256": model_weights_hash(model),
        "sample_rate": model.sample_rate,
        "channels": model.channels,
        "hop_length": model.hop_length,
        "frame_rate": model.frame_rate,
        "dimension": model.encoder.dimension,
        # a continuous codec's quantizer has 0 codebooks of 0 bins
        "kind": model.quantizer.encoded_kind,
        "n_q": model.quantizer.total_codebooks,
        "bins": model.quantizer.bins,
        "normalize": model.normalize,
        "causal": bool(model.encoder.causal),
    }
    if config is not None:  # as JSON stores it (tuples as lists)
        identity["model_config"] = json.loads(json.dumps(dataclasses.asdict(config)))
        identity["model_config_sha256"] = model_config_hash(config)
    return identity


def check_identity(sidecar_path: Path, sidecar: dict, model: Any, config: Any | None = None) -> None:
    """Refuse a sidecar that does not describe ``model``: the first field that differs is named."""
    for field, value in model_identity(model, config).items():
        if sidecar.get(field) == value or _predates(field, value, sidecar):
            continue
        if field == "model_weights_sha256":
            what = "was exported from another model (its weights hash differs)"
        elif isinstance(value, dict):
            what = f"records another {field} than the model's"
        else:
            what = f"states {field}={sidecar.get(field)!r} but the model has {value!r}"
        raise UserError(f"{sidecar_path} {what}; {REEXPORT} from this model and pass OUT to --onnx.")


def _predates(field: str, value: Any, sidecar: dict) -> bool:
    """Whether ``sidecar`` was written before some model settings existed and states ``value`` once they take
    their :data:`~audioenc.config.SAVED_BEFORE` values (as a container's configuration is read). Its
    configuration hash then covers fewer keys: the configuration, compared key by key, decides."""
    recorded = sidecar.get("model_config")
    if not isinstance(recorded, dict):
        return False
    filled = json.loads(json.dumps(saved_section("model", recorded)))
    if field == "model_config":
        return filled != recorded and filled == value
    return field == "model_config_sha256" and filled != recorded


def _bad(sidecar_path: Path, what: str) -> UserError:
    return UserError(f"{sidecar_path}: {what}; the file was edited or damaged: {REEXPORT}.")


def check_structure(sidecar_path: Path, sidecar: dict) -> None:
    """Refuse a sidecar whose ``graphs`` table is not what an export writes, before any of it is used
    as a file name, an input name or a shape."""
    graphs = sidecar.get("graphs")
    if not isinstance(graphs, dict) or not {"encoder", "decoder"} <= set(graphs) or not set(graphs) <= set(GRAPH_NAMES):
        raise _bad(
            sidecar_path,
            f"its graphs must be encoder and decoder (and the step graphs); got "
            f"{sorted(graphs) if isinstance(graphs, dict) else graphs!r}",
        )
    steps = {"encoder_step", "decoder_step"} & set(graphs)
    if len(steps) == 1 or bool(steps) != (sidecar.get("streaming") is True):
        raise _bad(sidecar_path, f"streaming={sidecar.get('streaming')!r} with step graphs {sorted(steps)}")
    for name, entry in graphs.items():
        _check_entry(sidecar_path, name, entry)


def _check_entry(sidecar_path: Path, name: str, entry: Any) -> None:
    if not isinstance(entry, dict) or entry.get("file") != f"{name}.onnx":
        raise _bad(sidecar_path, f"graph {name} must be the file {name}.onnx")
    inputs = entry.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad(sidecar_path, f"graph {name} declares no inputs")
    for item in inputs:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and item.get("dtype") in DTYPES
            and isinstance(item.get("shape"), list)
            and all(_is_axis(size) for size in item["shape"])
        ):
            raise _bad(sidecar_path, f"graph {name} declares the input {item!r}")
    if "sha256" in entry and not isinstance(entry["sha256"], str):
        raise _bad(sidecar_path, f"graph {name} has the sha256 {entry['sha256']!r}")


def _is_axis(size: Any) -> bool:
    """A declared axis: a named dynamic one (``"batch"``) or a fixed positive size."""
    return isinstance(size, str) or (isinstance(size, int) and not isinstance(size, bool) and size >= 1)


def verify_graphs(folder: Path, sidecar_path: Path, sidecar: dict) -> None:
    """Check every graph of the folder against the sidecar: present, its recorded SHA-256, its inputs.

    A sidecar without any graph hash (an export by an older audioenc) gets a one-line warning on stderr:
    its graphs load unverified. Some hashes but not all is an edited sidecar and refused."""
    graphs = sidecar["graphs"]
    hashed = [name for name, entry in graphs.items() if "sha256" in entry]
    if hashed and len(hashed) != len(graphs):
        raise _bad(sidecar_path, f"only the graphs {hashed} have a sha256")
    if not hashed:
        print(
            f"audioenc: warning: {sidecar_path} records no SHA-256 of its graphs (an export by an older "
            f"audioenc), so they cannot be checked against the model; {REEXPORT} to verify them.",
            file=sys.stderr,
            flush=True,
        )
    for entry in graphs.values():
        path = folder / entry["file"]
        if not path.is_file():
            raise UserError(f"{path}: missing from the ONNX export ({sidecar_path} lists it); {REEXPORT}.")
        if hashed and file_sha256(path) != entry["sha256"]:
            raise UserError(
                f"{path}: not the graph this export wrote (its SHA-256 differs from the one in "
                f"{sidecar_path}: changed, damaged or copied from another export); {REEXPORT}."
            )
        _check_inputs(path, sidecar_path, entry["inputs"])


def _graph_inputs(path: Path) -> list[tuple[str, str, list[int | str]]]:
    """``(name, dtype, shape)`` of a graph's inputs, each dynamic axis as its symbol."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as error:
        raise UserError(f"{path}: not an ONNX graph ({' '.join(str(error).split())[:200]}); {REEXPORT}.") from None
    inputs = []
    for value in model.graph.input:
        tensor = value.type.tensor_type
        dtype = str(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)) if tensor.elem_type else "?"
        shape = [dim.dim_value if dim.HasField("dim_value") else dim.dim_param for dim in tensor.shape.dim]
        inputs.append((value.name, dtype, shape))
    return inputs


def _check_inputs(path: Path, sidecar_path: Path, declared: list[dict]) -> None:
    """Refuse a sidecar whose inputs for ``path`` (names, dtypes, fixed sizes; named axes dynamic) are not
    the graph's: its zero states would not fit."""
    actual = _graph_inputs(path)
    if [entry["name"] for entry in declared] != [name for name, _, _ in actual]:
        raise UserError(
            f"{path}: its inputs are {[name for name, _, _ in actual]}, {sidecar_path} declares "
            f"{[entry['name'] for entry in declared]}; {REEXPORT}."
        )
    for entry, (name, dtype, shape) in zip(declared, actual):
        fits = (
            entry["dtype"] == dtype
            and len(entry["shape"]) == len(shape)
            and all(
                isinstance(want, str) != isinstance(have, int) and (isinstance(want, str) or want == have)
                for want, have in zip(entry["shape"], shape)
            )
        )
        if not fits:
            raise UserError(
                f"{path}: input {name} is {dtype} {shape} in the graph, {sidecar_path} declares "
                f"{entry['dtype']} {entry['shape']}; {REEXPORT}."
            )


def graph_hashes(folder: Path, sidecar: dict) -> dict:
    """``sidecar`` with the SHA-256 of each graph file written into its ``graphs`` entry (at export)."""
    for entry in sidecar["graphs"].values():
        entry["sha256"] = file_sha256(folder / entry["file"])
    return sidecar
