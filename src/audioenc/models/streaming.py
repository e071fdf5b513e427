"""Streaming with explicit state: the protocol of stateful layers and the driver that chunks any model.

A causal SEANet is a stack of causal convolutions, pointwise activations, residual sums, causal
transposed convolutions and an LSTM. Only three kinds of layer need to remember anything between
chunks, and each knows what (:mod:`audioenc.models.conv`):

* :class:`~audioenc.models.conv.StreamableConv1d` (effective kernel ``k``, stride ``s``): the last
  ``p = k - s`` input samples ``[B, C_in, p]`` (none when ``p = 0``);
* :class:`~audioenc.models.conv.StreamableConvTranspose1d` (kernel ``k``, stride ``s``): the
  ``k - s`` overlap-add tail of its raw output ``[B, C_out, k - s]``;
* :class:`~audioenc.models.conv.StreamableLSTM`: the hidden and cell states ``(h, c)``, each
  ``[layers, B, D]``.

Each is a :class:`StreamingLayer` with a pure step ``step(x_chunk, state) -> (y_chunk, new_state)``,
``state`` a tuple of tensors, or ``None`` for "nothing seen yet" (the layer's own left padding).

:func:`stream_step` runs a whole module (an encoder, a decoder) on one chunk without knowing its
structure: it hands each streaming layer inside the module its slice of a flat state tuple,
calls the module's ordinary ``forward`` — so ``nn.Sequential``, residual sums and activations
compose exactly as in a one-shot pass — and collects the new states in the same order. The flat
tuple (layers in ``module.modules()`` order, each layer's tensors in its own order) is what an
ONNX streaming graph takes and returns (:mod:`audioenc.interop.onnx`):
``forward_step(x_chunk, *state) -> (y_chunk, *new_state)``.

Exactness: a chunk of ``L`` samples with ``L`` a multiple of every stride it meets (for a SEANet
encoder: of the hop) leaves each layer with exactly the state a one-shot pass would have at that
point, so concatenated chunk outputs equal the one-shot output up to float rounding; the last chunk
may have any length >= 1 (each convolution pads it on the right as the one-shot pass pads the
whole signal).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

StreamState = tuple[torch.Tensor, ...]
"""The flat state of a module: every streaming layer's tensors, layers in ``modules()`` order."""


class StreamingLayer(nn.Module):
    """A layer that can run on consecutive chunks of a signal, carrying an explicit state.

    Subclasses implement :meth:`one_shot` (the whole signal at once), :meth:`step`,
    :meth:`initial_state` and :attr:`state_size`. ``forward`` runs :meth:`one_shot`, except while
    :func:`stream_step` has attached a state to the layer: then it runs :meth:`step` on it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._slot: _Slot | None = None

    @property
    def state_size(self) -> int:
        """Number of tensors in this layer's state."""
        raise NotImplementedError

    def initial_state(self, batch: int, dtype: torch.dtype, device: torch.device | str) -> StreamState:
        """The state before the first chunk as explicit tensors (zeros)."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: StreamState | None) -> tuple[torch.Tensor, StreamState]:
        """``(y_chunk, new_state)`` for the next chunk ``x``; ``state=None``: the first chunk."""
        raise NotImplementedError

    def one_shot(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on a whole signal."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._slot is None:
            return self.one_shot(x)
        return self._slot.run(self, x)


class _Slot:
    """One layer's state during one :func:`stream_step` call; the layer must run exactly once."""

    def __init__(self, state: StreamState | None) -> None:
        self.state = state
        self.calls = 0

    def run(self, layer: StreamingLayer, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError(
                f"stream_step: {type(layer).__name__} ran twice in one chunk (a layer shared between two "
                "places of the model); its state cannot be streamed."
            )
        y, self.state = layer.step(x, self.state)
        return y


def streaming_layers(module: nn.Module) -> list[StreamingLayer]:
    """The streaming layers inside ``module`` (itself included), in ``module.modules()`` order."""
    return [layer for layer in module.modules() if isinstance(layer, StreamingLayer)]


def initial_state(
    module: nn.Module, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> StreamState:
    """The flat zero state of ``module`` for ``batch`` items (see the module docstring for the order)."""
    return tuple(t for layer in streaming_layers(module) for t in layer.initial_state(batch, dtype, device))


def state_names(module: nn.Module, prefix: str = "") -> list[str]:
    """A name for each tensor of the flat state: ``'<layer path>.<i>'`` (ONNX input/output names)."""
    names = []
    for path, layer in module.named_modules(prefix=prefix):
        if isinstance(layer, StreamingLayer):
            names += [f"{path}.state{i}" for i in range(layer.state_size)]
    return names


def _split(layers: Sequence[StreamingLayer], state: StreamState) -> list[StreamState]:
    expected = sum(layer.state_size for layer in layers)
    if len(state) != expected:
        raise ValueError(f"stream_step: the state has {len(state)} tensors; this module's layers hold {expected}.")
    parts, start = [], 0
    for layer in layers:
        parts.append(tuple(state[start : start + layer.state_size]))
        start += layer.state_size
    return parts


def stream_step(module: nn.Module, x: torch.Tensor, state: StreamState | None) -> tuple[torch.Tensor, StreamState]:
    """Run ``module`` on the next chunk ``x`` of a signal: ``(y_chunk, new_state)``.

    ``state`` is the flat tuple the previous call returned, :func:`initial_state`, or ``None`` for
    the first chunk (each layer's own left padding: equal to the zero state for zero-padded
    convolutions). Nothing is kept in the module after the call: each streaming layer holds its
    slice of the state only while ``module`` runs (cleared even if it raises), so the caller owns
    the state and one module can serve several streams.
    """
    layers = streaming_layers(module)
    per_layer = [None] * len(layers) if state is None else _split(layers, tuple(state))
    slots = [_Slot(s) for s in per_layer]
    try:
        for layer, slot in zip(layers, slots):
            layer._slot = slot
        y = module(x)
    finally:
        for layer in layers:
            layer._slot = None
    for layer, slot in zip(layers, slots):
        if slot.calls != 1:
            raise RuntimeError(
                f"stream_step: {type(layer).__name__} did not run on this chunk; its state would go stale."
            )
    return y, tuple(t for slot in slots for t in slot.state)


def state_numel(state: StreamState | None) -> int:
    """Floats held in a flat state (0 for ``None``)."""
    return 0 if state is None else sum(t.numel() for t in state)
