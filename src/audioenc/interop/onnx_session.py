"""ONNX Runtime sessions for the exported graphs: every graph optimisation, and the rewrite that keeps
the exported ELUs in ONNX Runtime's blocked NCHWc layout. Both the exporter (which runs every graph
against PyTorch before its folder appears) and the runtime engine open graphs through :func:`session`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from audioenc.interop.onnx_rewrite import remove_dead_nodes

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
    ONNX Runtime's own optimised graph below (:class:`~audioenc.interop.onnx_runtime.OnnxCodec` allows it
    only with the ONNX Runtime version whose results the export compared with PyTorch).

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
    except ort_errors():  # e.g. a future ONNX Runtime that does not reload its own layout operators
        blocked = None
    if blocked is not None:
        return blocked
    return ort.InferenceSession(str(path), sess_options=_options(threads), providers=["CPUExecutionProvider"])


def ort_errors() -> tuple[type[BaseException], ...]:
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
        if not (
            source is not None
            and _is_reorder(source, "ReorderOutput")
            and targets
            and all(_is_reorder(target, "ReorderInput") for target in targets)
        ):
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
        remove_dead_nodes(graph)
        del graph.value_info[:]  # the activations' outputs are blocked now; ONNX Runtime infers the rest
    return rewritten


def _is_reorder(node, op_type: str) -> bool:
    """An NCHWc reorder between NCHW and blocked tensors of a multiple of 16 channels."""
    if node.op_type != op_type or node.domain != _NCHWC or _attribute(node, "channels_last", 0):
        return False
    return op_type == "ReorderInput" or _attribute(node, "channels", -1) % 16 == 0
