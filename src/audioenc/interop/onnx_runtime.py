"""Encode and decode with ONNX Runtime from an ``audioenc export --format onnx`` folder.

:class:`OnnxRuntimeEngine` is an :class:`~audioenc.codec_io.files.InferenceEngine`:
``encode_file`` / ``decode_file`` (and ``audioenc encode/decode --backend onnxruntime``) drive its
chunk-by-chunk encoder and decoder exactly as they drive the PyTorch ones, so the containers and the
audio are the same up to float rounding. The PyTorch model still describes the codec (its
configuration and weight hashes go into every container, its quantizer's bitrate arithmetic picks
``n_q``); the engine refuses a folder exported from other weights (the sidecar records their hash).

Chunks follow the PyTorch rules: a signal in one chunk runs the one-shot graph (``encoder.onnx`` /
``decoder.onnx``; the only way for a non-causal codec); otherwise the step graphs carry the state,
starting from zeros.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioenc.config import ModelConfig
from audioenc.errors import UserError, require_directory
from audioenc.interop.onnx import SIDECAR, SIDECAR_FORMAT, require_onnx
from audioenc.interop.onnx_contract import REEXPORT, check_identity, check_structure, verify_graphs
from audioenc.codec_io.streaming import StreamingDecoder, StreamingEncoder
from audioenc.models.codec import CodecModel

_BLOCKED_POINTWISE = {"Celu", "Elu"}
"""Pointwise operators that may run on ONNX Runtime's blocked (NCHWc) tensors: the exported ELUs."""

_NCHWC = "com.microsoft.nchwc"


def _options(threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def session(path: str | os.PathLike, threads: int | None = None, layout_rewrite: bool = True) -> Any:
    """An ONNX Runtime CPU session for ``path`` with every graph optimisation; ``threads``: intra-op
    threads (None: ONNX Runtime's default, one per core); ``layout_rewrite``: allow the rewrite of
    ONNX Runtime's own optimised graph below (:class:`OnnxCodec` allows it only with the ONNX
    Runtime version whose results the export compared with PyTorch).

    At ``ORT_ENABLE_ALL`` ONNX Runtime runs the (2-d) convolutions in its blocked NCHWc layout and
    reorders each one's output back to NCHW for any operator it does not know to be layout-free,
    such as the ``Celu`` between two convolutions, then reorders that result again for the next
    convolution. :func:`keep_pointwise_blocked` lets those ``Celu`` nodes read and write the blocked
    tensors instead (a pointwise function does not care where each element lies), which removes two
    copies per activation. The session then runs ONNX Runtime's optimised graph so rewritten, with no
    further optimisation; where nothing is rewritten, or the rewritten graph does not load, it runs
    the plain graph.
    """
    import onnxruntime as ort

    if not layout_rewrite:
        return ort.InferenceSession(str(path), sess_options=_options(threads), providers=["CPUExecutionProvider"])
    try:
        blocked = _blocked_session(path, threads)
    except _ort_errors():  # e.g. a future ONNX Runtime that does not reload its own layout operators
        blocked = None
    if blocked is not None:
        return blocked
    return ort.InferenceSession(str(path), sess_options=_options(threads), providers=["CPUExecutionProvider"])


def _ort_errors() -> tuple[type[BaseException], ...]:
    """The exception types ONNX Runtime raises when it cannot load or optimise a graph."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NotImplemented", "RuntimeException")
    return tuple(getattr(state, name) for name in names if hasattr(state, name))


def _blocked_session(path: str | os.PathLike, threads: int | None) -> Any | None:
    """A session running :func:`_optimized_blocked_model` of ``path`` as it is, or None."""
    import onnxruntime as ort

    model = _optimized_blocked_model(path, threads)
    if model is None:
        return None
    options = _options(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # already optimised
    return ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])


def _optimized_blocked_model(path: str | os.PathLike, threads: int | None) -> Any | None:
    """ONNX Runtime's optimised graph of ``path`` with :func:`keep_pointwise_blocked` applied, or
    None when that changes nothing (no NCHWc convolutions: a CPU without the SIMD blocks, or channel
    counts that are not multiples of the block)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="audioenc-ort-") as tmp:
        options = _options(threads)
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        model = onnx.load(options.optimized_model_filepath)
    return model if keep_pointwise_blocked(model) else None


def _attribute(node, name: str, default: Any) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def keep_pointwise_blocked(model) -> int:
    """In ONNX Runtime's optimised graph ``model`` (``onnx.ModelProto``, changed in place), rewrite
    ``ReorderOutput(a) -> Celu -> ReorderInput -> ...`` as ``Celu(a) -> ...``; returns how many.

    Only where the channel count is a multiple of 16 (so the blocked tensor has no padding channels,
    for either block size, 8 or 16), neither reorder is to or from channels-last, and every reader
    of the activation is a ``ReorderInput``. The ``ReorderOutput`` stays if something else reads it.
    """
    graph = model.graph
    producer = {name: node for node in graph.node for name in node.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    rewritten = 0
    for node in list(graph.node):
        if node.op_type not in _BLOCKED_POINTWISE or node.domain not in ("", "ai.onnx"):
            continue
        source = producer.get(node.input[0])
        targets = readers.get(node.output[0], [])
        if not (source is not None and _is_reorder(source, "ReorderOutput") and targets
                and all(_is_reorder(target, "ReorderInput") for target in targets)):
            continue
        node.input[0] = source.input[0]
        for target in targets:
            for reader in readers.get(target.output[0], []):
                for index, name in enumerate(reader.input):
                    if name == target.output[0]:
                        reader.input[index] = node.output[0]
            graph.node.remove(target)
        rewritten += 1
    if rewritten:
        from audioenc.interop.onnx_rewrite import remove_dead_nodes

        remove_dead_nodes(graph)
        del graph.value_info[:]  # the activations' outputs are blocked now; ONNX Runtime infers the rest
    return rewritten


def _is_reorder(node, op_type: str) -> bool:
    """An NCHWc reorder between NCHW and blocked tensors of a multiple of 16 channels."""
    if node.op_type != op_type or node.domain != _NCHWC or _attribute(node, "channels_last", 0):
        return False
    return op_type == "ReorderInput" or _attribute(node, "channels", -1) % 16 == 0


def read_sidecar(folder: str | os.PathLike) -> dict:
    """The ``audioenc_onnx.json`` contract of an export folder (checked for its format and the shape of its
    ``graphs`` table; :func:`~audioenc.interop.onnx_contract.verify_graphs` checks the graphs against it)."""
    path = require_directory(folder, "The ONNX export folder",
                             "Write one with `audioenc export RUN --format onnx OUT`.") / SIDECAR
    if not path.is_file():
        raise UserError(f"{folder} is not an ONNX export of audioenc (no {SIDECAR}); write one with "
                        "`audioenc export RUN --format onnx OUT`.")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # UnicodeDecodeError included
        raise UserError(f"{path}: not readable JSON ({error}); {REEXPORT}.") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise UserError(f"{path}: format {sidecar.get('format') if isinstance(sidecar, dict) else None!r}, expected "
                        f"{SIDECAR_FORMAT!r}; export the model again with this version of audioenc.")
    check_structure(path, sidecar)
    return sidecar


class OnnxCodec:
    """The graphs of an export folder: ``run(graph, *inputs) -> outputs`` (numpy), zero states."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        require_onnx()
        self.folder = Path(folder)
        self.sidecar = read_sidecar(folder)
        verify_graphs(self.folder, self.folder / SIDECAR, self.sidecar)
        self.threads = threads
        # The layout rewrite edits ONNX Runtime's internal graph: trusted only on the version the
        # export checked against PyTorch (another version runs the plain graph).
        import onnxruntime

        checked_on = self.sidecar.get("exporter", {}).get("onnxruntime")
        self.layout_rewrite = checked_on == onnxruntime.__version__
        self._sessions: dict[str, Any] = {}

    def has(self, graph: str) -> bool:
        return graph in self.sidecar["graphs"]

    def _session(self, graph: str) -> Any:
        """The graph's ONNX Runtime session, created on first use; a graph ONNX Runtime cannot load (an
        unverified export's damaged file) is the user's folder, named."""
        if graph not in self._sessions:
            path = self.folder / self.sidecar["graphs"][graph]["file"]
            try:
                self._sessions[graph] = session(path, self.threads, self.layout_rewrite)
            except _ort_errors() as error:
                raise UserError(f"{path}: ONNX Runtime cannot load it ({' '.join(str(error).split())[:200]}); "
                                f"{REEXPORT}.") from None
        return self._sessions[graph]

    def run(self, graph: str, *inputs: np.ndarray) -> list[np.ndarray]:
        ort_session = self._session(graph)
        names = [entry["name"] for entry in self.sidecar["graphs"][graph]["inputs"]]
        return ort_session.run(None, dict(zip(names, inputs)))

    def zero_state(self, graph: str, batch: int) -> list[np.ndarray]:
        """Zero state tensors of a step graph for ``batch`` signals."""
        return [
            np.zeros([batch if size == "batch" else size for size in entry["shape"]], dtype=entry["dtype"])
            for entry in self.sidecar["graphs"][graph]["inputs"][1:]
        ]


class OnnxStreamingEncoder(StreamingEncoder):
    """:class:`~audioenc.codec_io.StreamingEncoder` (its interface, chunk rules, level and checks),
    computed by ONNX Runtime: the ``encoder`` graph for a one-chunk signal, else ``encoder_step``
    with the state as explicit inputs and outputs."""

    def __init__(self, codec: OnnxCodec, model: CodecModel, n_q: int | None, scale: torch.Tensor | float | None,
                 latent_check: Callable[[torch.Tensor, int], None] | None) -> None:
        self.codec = codec
        super().__init__(model, n_q, scale=scale, latent_check=latent_check)

    def state_numel(self) -> int:
        return 0 if self._state is None else sum(t.size for t in self._state)

    def _encode(self, audio: torch.Tensor, one_shot: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = audio.to(torch.float32).cpu().numpy()
        if one_shot:
            outputs = self.codec.run("encoder", x)
        else:
            if not self.codec.has("encoder_step"):
                raise UserError("Streaming: the model is not causal (or not zero-padded), so it needs the whole signal "
                                "at once; encode it in a single final chunk.")
            state = self._state if self._state is not None else self.codec.zero_state("encoder_step", x.shape[0])
            outputs = self.codec.run("encoder_step", x, *state)
            heads = 2 if self.model.quantizer.discrete else 1  # latents [, codes]
            outputs, self._state = outputs[:heads], outputs[heads:]
        codes = None if self.n_q is None else torch.from_numpy(outputs[1][:, : self.n_q])
        return torch.from_numpy(outputs[0]), codes


class OnnxStreamingDecoder(StreamingDecoder):
    """:class:`~audioenc.codec_io.StreamingDecoder` computed by ONNX Runtime (``decoder`` /
    ``decoder_step`` graphs, as :class:`OnnxStreamingEncoder`)."""

    def __init__(self, codec: OnnxCodec, model: CodecModel, scale: torch.Tensor | float | None) -> None:
        self.codec = codec
        super().__init__(model, scale)

    def state_numel(self) -> int:
        return 0 if self._state is None else sum(t.size for t in self._state)

    def _decode(self, encoded: torch.Tensor, one_shot: bool) -> torch.Tensor:
        x = encoded.long().numpy() if self.model.quantizer.discrete else encoded.to(torch.float32).numpy()
        if one_shot:
            return torch.from_numpy(self.codec.run("decoder", x)[0])
        if not self.codec.has("decoder_step"):
            raise UserError("a non-causal decoder needs all frames in one final chunk.")
        state = self._state if self._state is not None else self.codec.zero_state("decoder_step", x.shape[0])
        audio, *self._state = self.codec.run("decoder_step", x, *state)
        return torch.from_numpy(audio)


class OnnxRuntimeEngine:
    """Chunk-by-chunk encoding and decoding with the graphs of an ONNX export folder.

    Args:
        folder: written by :func:`audioenc.interop.onnx.export_onnx` from the same model.
        threads: intra-op threads of each session (None: ONNX Runtime's default).
    """

    name = "onnxruntime"

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        self.codec = OnnxCodec(folder, threads)

    def check_model(self, model: CodecModel, config: ModelConfig | None = None) -> None:
        """Refuse a folder whose sidecar does not describe ``model`` (other weights, another configuration,
        hop, codebooks or level rule than it states)."""
        check_identity(self.codec.folder / SIDECAR, self.codec.sidecar, model, config)

    def streaming_encoder(self, model: CodecModel, n_q: int | None, *, scale: float,
                          latent_check: Callable[[torch.Tensor, int], None] | None) -> OnnxStreamingEncoder:
        self.check_model(model)
        return OnnxStreamingEncoder(self.codec, model, n_q, scale, latent_check)

    def streaming_decoder(self, model: CodecModel, *, scale: float) -> OnnxStreamingDecoder:
        self.check_model(model)
        return OnnxStreamingDecoder(self.codec, model, scale)


@contextlib.contextmanager
def onnx_engine(model: CodecModel, config: ModelConfig, folder: str | os.PathLike | None = None,
                threads: int | None = None) -> Iterator[OnnxRuntimeEngine]:
    """An :class:`OnnxRuntimeEngine` for ``model``: from ``folder`` (an export of this model), or
    from a temporary export that is removed afterwards (seconds to a minute for the paper model:
    export once with ``audioenc export RUN --format onnx OUT`` to run many files)."""
    if folder is not None:
        engine = OnnxRuntimeEngine(folder, threads)
        engine.check_model(model, config)
        yield engine
        return
    from audioenc.interop.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="audioenc-onnx-") as tmp:
        export_onnx(model, config, Path(tmp) / "onnx")
        yield OnnxRuntimeEngine(Path(tmp) / "onnx", threads)
