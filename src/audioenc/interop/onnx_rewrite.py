"""A rewrite of the exported ONNX graphs: the convolution stack on ``[B, C, 1, T]`` (2-d) tensors.

Why: ONNX Runtime's CPU ``Conv`` runs 2-d convolutions with its MLAS convolution kernels and, at
``ORT_ENABLE_ALL``, in its blocked NCHWc layout (channel counts that are multiples of the SIMD
block); a 1-d ``Conv`` gets neither. :func:`convs_as_2d` writes each 1-d convolution as
``Squeeze(Conv2d(Unsqueeze(x, 2), W[:, :, None, :]), 2)`` (kernel ``[1, k]``, strides ``[1, s]``,
dilations ``[1, d]``, pads ``[0, l, 0, r]``): the same sums; ``Unsqueeze``/``Squeeze`` are free (no
copy). :func:`sink_squeezes` then moves those ``Squeeze`` nodes past the activations and residual
sums between convolutions, where they meet the next ``Unsqueeze`` and both vanish, so the tensors
stay 2-d from one convolution to the next (ONNX Runtime then sums residuals on the blocked tensors,
and :mod:`audioenc.interop.onnx_runtime` keeps the activations on them too). Any ONNX engine runs
the rewritten graph.
"""

from __future__ import annotations

import numpy as np

_AXIS = "audioenc_height_axis"
"""Initializer ``int64 [2]``: the axis that ``Unsqueeze``/``Squeeze`` add and remove."""


def _attributes(node) -> dict:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _two_d(attributes: dict, kernel: int) -> dict | None:
    """The attributes of the 2-d convolution equal to a 1-d one, or None for an ``auto_pad`` one."""
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    if auto_pad not in (b"NOTSET", "NOTSET"):
        return None
    left, right = attributes.get("pads", [0, 0])
    converted = {
        "kernel_shape": [1, kernel],
        "strides": [1, attributes.get("strides", [1])[0]],
        "dilations": [1, attributes.get("dilations", [1])[0]],
        "pads": [0, left, 0, right],
    }
    if "group" in attributes:
        converted["group"] = attributes["group"]
    return converted


def convs_as_2d(model) -> int:
    """Rewrite, in place, each 1-d ``Conv`` of ``model`` (an ``onnx.ModelProto``) whose weight is an
    initializer as ``Unsqueeze -> 2-d Conv -> Squeeze``; returns how many were rewritten."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    nodes, rewritten = [], 0
    for node in graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "Conv" and node.domain in ("", "ai.onnx") else None
        attributes = _two_d(_attributes(node), weight.dims[2]) if weight is not None and len(weight.dims) == 3 else None
        if attributes is None:
            nodes.append(node)
            continue
        weight_4d = numpy_helper.from_array(numpy_helper.to_array(weight)[:, :, None, :], f"{weight.name}_2d")
        if uses[weight.name] == 1:  # only this Conv reads it: replace, do not duplicate, the weights
            graph.initializer.remove(weight)
        graph.initializer.append(weight_4d)
        x, y = node.input[0], node.output[0]
        nodes += [
            helper.make_node("Unsqueeze", [x, _AXIS], [f"{y}_2d_input"]),
            helper.make_node(
                "Conv", [f"{y}_2d_input", weight_4d.name, *node.input[2:]], [f"{y}_2d"], name=node.name, **attributes
            ),
            helper.make_node("Squeeze", [f"{y}_2d", _AXIS], [y]),
        ]
        rewritten += 1
    if rewritten:
        graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), _AXIS))
        del graph.node[:]
        graph.node.extend(nodes)
    return rewritten


_SINKABLE = {"Celu", "Elu", "Relu", "Add"}
"""Pointwise operators that commute with ``Squeeze`` when every input is squeezed at the same axis."""


def _squeezed(producer: dict, name: str) -> str | None:
    """The 2-d tensor that our ``Squeeze`` made ``name`` from, or None."""
    node = producer.get(name)
    if node is None or node.op_type != "Squeeze" or len(node.input) != 2 or node.input[1] != _AXIS:
        return None
    return node.input[0]


def remove_dead_nodes(graph) -> None:
    """Drop nodes none of whose outputs is read (by a node or as a graph output)."""
    while True:
        read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
        dead = [node for node in graph.node if not any(name in read for name in node.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)
        produced = {name for node in graph.node for name in node.output}
        stale = [info for info in graph.value_info if info.name not in produced]
        for info in stale:
            graph.value_info.remove(info)


def sink_squeezes(model) -> int:
    """Rewrite, in place, ``op(Squeeze(a, 2), ...)`` as ``Squeeze(op(a, ...), 2)`` for the pointwise
    operators in ``_SINKABLE`` (all inputs squeezed), and ``Unsqueeze(Squeeze(a, 2), 2)`` as ``a``,
    after :func:`convs_as_2d`; returns how many operators now run on 2-d tensors."""
    from onnx import helper

    graph, moved = model.graph, 0
    nodes = []
    producer: dict = {}
    for node in graph.node:  # topological order: each input's producer is already rewritten
        sources = [_squeezed(producer, name) for name in node.input]
        if node.op_type in _SINKABLE and node.domain in ("", "ai.onnx") and node.input and all(sources):
            y = node.output[0]
            sunk = helper.make_node(node.op_type, sources, [f"{y}_2d"], name=node.name)
            sunk.attribute.extend(node.attribute)
            squeeze = helper.make_node("Squeeze", [f"{y}_2d", _AXIS], [y])
            nodes += [sunk, squeeze]
            producer[f"{y}_2d"], producer[y] = sunk, squeeze
            moved += 1
            continue
        if node.op_type == "Unsqueeze" and len(node.input) == 2 and node.input[1] == _AXIS and sources[0]:
            renamed = sources[0]  # Unsqueeze(Squeeze(a)) is a: read a instead
            for later in graph.node:
                for index, name in enumerate(later.input):
                    if name == node.output[0]:
                        later.input[index] = renamed
            continue
        nodes.append(node)
        for name in node.output:
            producer[name] = node
    del graph.node[:]
    graph.node.extend(nodes)
    remove_dead_nodes(graph)
    return moved
