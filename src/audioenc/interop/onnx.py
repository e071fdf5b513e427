"""``audioenc export RUN --format onnx OUT``: a codec as ONNX graphs for ONNX Runtime (or any ONNX engine).

OUT holds (each graph one self-contained file, weights inside; the paper model is about 30 MB per
graph, far below protobuf's 2 GB limit — a model beyond it would need ``external_data=True``,
which writes the weights to a ``.data`` file beside the graph):

* ``encoder.onnx`` — ``audio [B, C, T] -> latents [B, D, F]`` (+ ``codes [B, n_q, F]``, discrete quantizers);
* ``decoder.onnx`` — ``latents [B, D, F]`` or ``codes [B, K, F]`` -> ``audio [B, C, F·hop]``;
* ``encoder_step.onnx`` / ``decoder_step.onnx`` (causal, zero-padded codecs: the default) — the
  same on one chunk, with the streaming state (convolution tails, transposed-convolution overlaps,
  LSTM ``h``/``c``) as extra inputs ``state_in_i`` and outputs ``state_out_i``;
* ``audioenc_onnx.json`` — the contract: inputs and outputs with shapes, hop, sample rate,
  ``n_q``, the level (``normalize``/``scale``) rule, the state tensors, and the model's
  configuration with the hashes an encoded container records.

Every graph has a dynamic batch and time axis and pads every length as PyTorch does: ``F = ceil(T /
hop)`` for any ``T >= 1`` (checked on ORT at export, on a length that is a multiple of the hop and
one that is not). The contracts are documented in :mod:`audioenc.interop.onnx_graphs`.

How (torch 2.13): ``torch.onnx.export(dynamo=True)`` (``torch.export`` + onnxscript, opset 18) with
``Dim.AUTO`` batch and time axes. The padding arithmetic of :mod:`audioenc.models.conv` is written
with non-negative integer operations only (``extra = (s - T mod s) mod s``, no ``max``, no floor
division of a negative number, ``torch.sym_max`` instead of a branch in reflect padding), so that the
exported graph computes every layer's padding from the actual length. With EnCodec's formula
(``max(ceil((T - s) / s) + 1, 1)``, a negative floor division) both exporters gave one frame too few
for lengths that are not a multiple of the hop (hop 32: 325 samples -> 10 frames, not 11); the
legacy TorchScript exporter (``dynamo=False``) does so silently (``tests/interop/test_onnx.py``
shows it). With the arithmetic here the legacy exporter is exact too, but it is deprecated, so the
dynamo exporter is used. Weight norm is folded into plain weights (``remove_parametrizations``); each
LSTM layer becomes ONNX's ``LSTM`` operator (:mod:`audioenc.interop.onnx_lstm`), which ONNX Runtime
runs with its fused kernel and which keeps the export at seconds (``torch.export`` would otherwise
decompose the LSTM into a symbolic time loop: a minute for a tiny codec).

Speed (ONNX Runtime, one CPU thread): the export copy's ELUs are ``CELU(1)`` (the same function),
its causal transposed convolutions polyphase convolutions and its zero-padded strided convolutions
statically padded (:mod:`audioenc.interop.onnx_layers`); after export every 1-d ``Conv`` becomes a
2-d one on ``[B, C, 1, T]`` and the tensors between convolutions stay 2-d
(:mod:`audioenc.interop.onnx_rewrite`), so ONNX Runtime runs its blocked (NCHWc) convolution kernels;
:func:`audioenc.interop.onnx_runtime.session` keeps the activations on those blocked tensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from audioenc.config import ModelConfig
from audioenc.core.atomic import atomic_folder
from audioenc.errors import UserError
from audioenc.interop import onnx_layers, onnx_lstm
from audioenc.interop.onnx_contract import graph_hashes, model_identity
from audioenc.interop.onnx_graphs import (
    DecoderGraph,
    DecoderStepGraph,
    EncoderGraph,
    EncoderStepGraph,
)
from audioenc.interop.onnx_lstm import OnnxLSTM
from audioenc.interop.onnx_rewrite import convs_as_2d, sink_squeezes
from audioenc.interop.onnx_session import session
from audioenc.models.codec import CodecModel
from audioenc.models.conv import StreamableLSTM
from audioenc.outputs import occupied

SIDECAR = "audioenc_onnx.json"
SIDECAR_FORMAT = "audioenc-onnx/1"
OPSET = 18

LEVEL_RULE = (
    "scale = sqrt(mean over channels and time of x^2) + 1e-8 over the whole signal when normalize is true, "
    "else 1.0; feed the encoder graphs x / scale and multiply the decoder graphs' audio by scale; keep the "
    "first T samples of the decoded audio."
)


class ExportedFiles(list):
    """The paths :func:`export_onnx` wrote (a ``list[Path]``); ``str()`` is a one-line summary."""

    def __init__(self, paths: list[Path], summary: str) -> None:
        super().__init__(paths)
        self.summary = summary

    def __str__(self) -> str:
        return self.summary


def require_onnx() -> None:
    """Refuse clearly when the optional ONNX packages are missing."""
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if _absent(name)]
    if missing:
        raise UserError(f"ONNX export and inference need {', '.join(missing)}: pip install 'audioenc[onnx]'.")


def _absent(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def exportable_model(model: CodecModel, config: ModelConfig) -> CodecModel:
    """A copy of ``model`` ready for export: weight norm folded into plain weights, LSTMs as ONNX
    ``LSTM`` layers, ELUs, transposed and strided convolutions in the forms of
    :func:`~audioenc.interop.onnx_layers.exportable_layers`. ``model`` itself is untouched (a fresh
    instance from ``config`` receives its state dict: a deep copy would share the parametrized
    classes that folding rewrites)."""
    if not model.quantizer.initialized:
        raise UserError("the codebooks are not trained yet (no training step ran); export a trained run.")
    copy = CodecModel.from_config(config)
    copy.load_state_dict(model.state_dict())
    copy.eval()
    for module in copy.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    for module in copy.modules():
        if isinstance(module, StreamableLSTM):
            module.lstm = OnnxLSTM(module.lstm)
    onnx_layers.exportable_layers(copy)
    for parameter in copy.parameters():
        parameter.requires_grad_(False)
    return copy


def streaming_refusal(model: CodecModel) -> str | None:
    """Why ``model`` cannot have step graphs (a zero initial state must equal the first chunk's
    padding), or None when it can."""
    try:
        model.initial_encoder_state(1)
        model.initial_decoder_state(1)
    except UserError as error:
        return str(error)
    return None


@dataclasses.dataclass(frozen=True)
class _Graph:
    """One graph to export: its module, example inputs, names and dynamic axes."""

    name: str
    module: nn.Module
    args: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic: tuple[dict[int, object], ...]


def _batch_axis(make_state, index: int) -> int:
    """Which axis of state tensor ``index`` is the batch: the one that changes with the batch size."""
    one, two = make_state(1)[index].shape, make_state(2)[index].shape
    return next(axis for axis, (a, b) in enumerate(zip(one, two)) if a != b)


def _graphs(model: CodecModel, streaming: bool) -> list[_Graph]:
    auto = torch.export.Dim.AUTO
    hop, batch = model.hop_length, 2  # batch 2 and lengths > 1 frame: no axis specialises to 1
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(batch, model.channels, 3 * hop + hop // 3 + 1, generator=generator)
    quantized = model.quantizer.discrete
    encoded_name = model.quantizer.encoded_kind  # codes or latents
    with torch.no_grad():
        latents = model.encoder(audio)
    encoded = EncoderGraph(model).head(latents)[-1]
    encoder_outputs = ["latents", "codes"] if quantized else ["latents"]
    graphs = [
        _Graph("encoder", EncoderGraph(model), (audio,), ["audio"], encoder_outputs, ({0: auto, 2: auto},)),
        _Graph(
            "decoder",
            DecoderGraph(model),
            (encoded,),
            [encoded_name],
            ["audio"],
            ({0: auto, 1: auto, 2: auto} if quantized and encoded.shape[1] > 1 else {0: auto, 2: auto},),
        ),
    ]
    if streaming:
        for name, module, x, make_state, outputs in (
            ("encoder_step", EncoderStepGraph(model), audio, model.initial_encoder_state, encoder_outputs),
            ("decoder_step", DecoderStepGraph(model), encoded, model.initial_decoder_state, ["audio"]),
        ):
            state = make_state(batch)
            names = [f"state_in_{i}" for i in range(len(state))]
            axes = tuple({_batch_axis(make_state, i): auto} for i in range(len(state)))
            x_axes = (
                {0: auto, 1: auto, 2: auto}
                if name == "decoder_step" and quantized and x.shape[1] > 1
                else {0: auto, 2: auto}
            )
            graphs.append(
                _Graph(
                    name,
                    module,
                    (x, *state),
                    [graphs[0 if name == "encoder_step" else 1].input_names[0], *names],
                    [*outputs, *[f"state_out_{i}" for i in range(len(state))]],
                    (x_axes, *axes),
                )
            )
    return graphs


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter prints progress lines and warns about optional packages (torchvision); the
    command prints one summary line instead."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export(graph: _Graph, path: Path) -> None:
    # forward(x, *state): torch.export sees two inputs, x and the tuple of states.
    dynamic = graph.dynamic if len(graph.args) == 1 else (graph.dynamic[0], graph.dynamic[1:])
    with _quiet_exporter(), torch.no_grad():
        torch.onnx.export(
            graph.module,
            graph.args,
            str(path),
            dynamo=True,
            external_data=False,
            opset_version=OPSET,
            input_names=graph.input_names,
            output_names=graph.output_names,
            dynamic_shapes=dynamic,
            custom_translation_table=onnx_lstm.custom_translation_table(),
        )
    import onnx

    model = onnx.load(str(path))
    if convs_as_2d(model):  # 1-d convolutions get neither MLAS's convolution kernels nor NCHWc
        sink_squeezes(model)
        onnx.save(model, str(path))


def _describe(name: str, tensor: torch.Tensor, axes: dict[int, object], role: str) -> dict:
    """An input as ``{name, dtype, shape}``, each dynamic axis named (a state's only one is the batch)."""
    labels = {"audio": {0: "batch", 2: "samples"}, "frames": {0: "batch", 1: "codebooks", 2: "frames"}}.get(role, {})
    shape = [labels.get(axis, "batch") if axis in axes else size for axis, size in enumerate(tensor.shape)]
    return {"name": name, "dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape}


def _sidecar(model: CodecModel, config: ModelConfig, graphs: list[_Graph], refusal: str | None) -> dict:
    described = {}
    for graph in graphs:
        with torch.no_grad():
            outputs = graph.module(*graph.args)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        inputs = [
            _describe(name, tensor, axes, "state" if index else ("audio" if name == "audio" else "frames"))
            for index, (name, tensor, axes) in enumerate(zip(graph.input_names, graph.args, graph.dynamic))
        ]
        described[graph.name] = {
            "file": f"{graph.name}.onnx",
            "inputs": inputs,
            "outputs": [
                {"name": name, "dtype": str(tensor.dtype).removeprefix("torch.")}
                for name, tensor in zip(graph.output_names, outputs)
            ],
        }
    identity = model_identity(model, config)
    return {
        "format": SIDECAR_FORMAT,
        **{
            field: identity[field]
            for field in (
                "sample_rate",
                "channels",
                "hop_length",
                "frame_rate",
                "dimension",
                "kind",
                "n_q",
                "bins",
                "normalize",
            )
        },
        "level_rule": LEVEL_RULE,
        "causal": identity["causal"],
        "streaming": refusal is None,
        "streaming_rule": (
            "step graphs: start from zero states (shapes below, batch first or second axis as listed); feed each "
            "call's state_out_i as the next call's state_in_i; encoder chunks are multiples of hop_length samples "
            "except the last (any length >= 1); decoder chunks any number of frames >= 1."
            if refusal is None
            else f"no step graphs: {refusal}"
        ),
        "graphs": described,
        "model_config": identity["model_config"],
        "model_config_sha256": identity["model_config_sha256"],
        "model_weights_sha256": identity["model_weights_sha256"],
        # The ONNX Runtime the graphs were checked on (with its layout rewrite) against PyTorch.
        "exporter": {
            "torch": torch.__version__,
            "dynamo": True,
            "opset": OPSET,
            "onnxruntime": importlib.metadata.version("onnxruntime"),
        },
    }


def _check_folder_graphs(folder: Path, graphs: list[_Graph], model: CodecModel) -> None:
    """Run every exported graph in ONNX Runtime on a length that is a multiple of the hop and one
    that is not, against the PyTorch module it came from; a difference is an exporter bug."""
    hop = model.hop_length
    for graph in graphs:
        ort = session(folder / f"{graph.name}.onnx")
        for frames, extra in ((2, 0), (5, hop // 2 + 1)):
            x = graph.args[0]
            if graph.name.startswith("encoder"):
                x = 0.1 * torch.randn(
                    1, model.channels, frames * hop + extra, generator=torch.Generator().manual_seed(1)
                )
            else:
                x = x[:1, :, :1].expand(1, x.shape[1], frames + (extra > 0)).contiguous()
            # Batch 1 from the batch-2 example state; each state tensor's batch axis is its dynamic one.
            state = tuple(t.narrow(next(iter(axes)), 0, 1) for t, axes in zip(graph.args[1:], graph.dynamic[1:]))
            with torch.no_grad():
                expected = graph.module(x, *state)
            expected = expected if isinstance(expected, tuple) else (expected,)
            got = ort.run(None, {name: t.numpy() for name, t in zip(graph.input_names, (x, *state))})
            for name, want, have in zip(graph.output_names, expected, got):
                want = want.numpy()
                if want.shape != have.shape:
                    raise RuntimeError(
                        f"ONNX export: {graph.name} output {name} has shape {have.shape} for input "
                        f"{tuple(x.shape)}; PyTorch gives {want.shape}. This is an exporter bug."
                    )
                if want.dtype.kind == "f":
                    tolerance = 1e-4 * max(1.0, float(np.abs(want).max()))
                    difference = float(np.abs(want - have).max())
                    if difference > tolerance:
                        raise RuntimeError(
                            f"ONNX export: {graph.name} output {name} differs from PyTorch by "
                            f"{difference:.3g} (> {tolerance:.3g}). This is an exporter bug."
                        )


def _check_new_folder(path: Path) -> None:
    if occupied(path):  # the rule of every command that writes (audioenc.outputs)
        raise FileExistsError(f"{path} exists and is not an empty folder; choose a new folder or remove it first.")


def export_onnx(model: CodecModel, config: ModelConfig, out_dir: str | os.PathLike) -> ExportedFiles:
    """Write ``model`` as ONNX graphs and their JSON contract into the new folder ``out_dir``.

    Returns the files written (``list[Path]``; ``str()`` of it is a one-line summary). Every graph
    is run in ONNX Runtime against PyTorch before the folder appears; on any failure nothing is left.

    Raises:
        UserError: onnx / onnxscript / onnxruntime missing; untrained codebooks.
        FileExistsError: ``out_dir`` exists and is not an empty folder.
    """
    require_onnx()
    out = Path(out_dir)
    _check_new_folder(out)
    exportable = exportable_model(model, config)
    refusal = streaming_refusal(exportable)
    graphs = _graphs(exportable, streaming=refusal is None)
    with atomic_folder(out) as tmp:
        for graph in graphs:
            _export(graph, tmp / f"{graph.name}.onnx")
        _check_folder_graphs(tmp, graphs, exportable)
        sidecar = graph_hashes(tmp, _sidecar(model, config, graphs, refusal))  # each graph as written
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
    paths = [out / f"{graph.name}.onnx" for graph in graphs] + [out / SIDECAR]
    size = sum(path.stat().st_size for path in paths) / 1e6
    codebooks = f"{sidecar['n_q']} codebook{'s' if sidecar['n_q'] != 1 else ''}"
    kind = f"codes ({codebooks})" if sidecar["kind"] == "codes" else "latents"
    steps = "one-shot and streaming graphs" if refusal is None else "one-shot graphs (not streamable)"
    return ExportedFiles(
        paths, f"wrote {out}: ONNX {steps}, {config.channels} ch, {kind}, {len(graphs)} graphs, {size:.1f} MB"
    )
