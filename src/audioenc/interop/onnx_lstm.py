"""The SEANet LSTM as ONNX's own ``LSTM`` operator, for export.

Why: ``nn.LSTM`` is a composite op that ``torch.export`` decomposes into a symbolic-length time
loop; that makes the export of a tiny codec take about a minute on two cores and gives ONNX Runtime
a generic loop instead of its fused LSTM kernel. Here each LSTM layer becomes one opaque custom op,
``audioenc::onnx_lstm_layer``, with ONNX ``LSTM`` semantics (layout 0), translated to that operator.

ONNX ``LSTM`` (one direction) for ``x [T, B, D]``: gates in the order **i, o, f, c** (PyTorch's is
i, f, g, o), ``W [1, 4H, D]``, ``R [1, 4H, H]``, ``B [1, 8H] = [Wb | Rb]``, initial states
``[1, B, H]``; outputs ``Y [T, 1, B, H]``, ``Y_h``, ``Y_c [1, B, H]``. With ``σ`` the logistic
function: ``i, o, f = σ(x W_{i,o,f}ᵀ + h R_{i,o,f}ᵀ + b)``, ``c̃ = tanh(x W_cᵀ + h R_cᵀ + b_c)``,
``c' = f ⊙ c + i ⊙ c̃``, ``h' = o ⊙ tanh(c')`` — PyTorch's equations with the gates reordered.
"""

from __future__ import annotations

import torch
from torch import nn

_TORCH_TO_ONNX_GATES = (0, 3, 1, 2)
"""PyTorch's gate blocks (i, f, g, o) taken in ONNX's order (i, o, f, c)."""


def _onnx_gate_order(weight: torch.Tensor) -> torch.Tensor:
    """``[4H, ...]`` in PyTorch's gate order -> the same rows in ONNX's order."""
    blocks = weight.chunk(4, dim=0)
    return torch.cat([blocks[i] for i in _TORCH_TO_ONNX_GATES], dim=0)


def _torch_gate_order(weight: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_onnx_gate_order`."""
    blocks = weight.chunk(4, dim=0)
    inverse = [0] * 4
    for position, source in enumerate(_TORCH_TO_ONNX_GATES):
        inverse[source] = position
    return torch.cat([blocks[i] for i in inverse], dim=0)


@torch.library.custom_op("audioenc::onnx_lstm_layer", mutates_args=())
def onnx_lstm_layer(
    x: torch.Tensor,
    w: torch.Tensor,
    r: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    hidden_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM layer with ONNX ``LSTM`` semantics (see the module docstring); eager PyTorch reference."""
    hidden = hidden_size
    bias_ih, bias_hh = b[0, : 4 * hidden], b[0, 4 * hidden :]
    params = [_torch_gate_order(w[0]), _torch_gate_order(r[0]), _torch_gate_order(bias_ih), _torch_gate_order(bias_hh)]
    y, h, c = torch._VF.lstm(x, (h0, c0), params, True, 1, 0.0, False, False, False)
    return y.unsqueeze(1), h, c


@onnx_lstm_layer.register_fake
def _(x, w, r, b, h0, c0, hidden_size):
    steps, batch = x.shape[0], x.shape[1]
    return x.new_empty(steps, 1, batch, hidden_size), h0.new_empty(h0.shape), c0.new_empty(c0.shape)


def onnx_lstm_translation(x, w, r, b, h0, c0, hidden_size: int):
    """The ONNX graph of :func:`onnx_lstm_layer`: the ``LSTM`` operator itself (opset 18)."""
    from onnxscript import opset18 as op

    return op.LSTM(x, w, r, b, None, h0, c0, hidden_size=hidden_size)


def custom_translation_table() -> dict:
    """What ``torch.onnx.export(custom_translation_table=...)`` needs to emit ONNX ``LSTM`` nodes."""
    return {torch.ops.audioenc.onnx_lstm_layer.default: onnx_lstm_translation}


class OnnxLSTM(nn.Module):
    """Drop-in for the ``nn.LSTM`` (``batch_first``, one direction) inside a
    :class:`~audioenc.models.conv.StreamableLSTM`, computing with one :func:`onnx_lstm_layer` per layer.

    ``forward(x [B, T, D], (h, c) [L, B, H] each, or None)`` -> ``(y [B, T, H], (h', c'))`` like
    ``nn.LSTM``. The weights are copied once, reordered to ONNX's gate order.
    """

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        if not lstm.batch_first or lstm.bidirectional or not lstm.bias or lstm.proj_size:
            raise ValueError("OnnxLSTM: only batch_first, one-directional LSTMs with biases and no projection.")
        self.input_size, self.hidden_size, self.num_layers = lstm.input_size, lstm.hidden_size, lstm.num_layers
        for layer in range(self.num_layers):
            w = _onnx_gate_order(getattr(lstm, f"weight_ih_l{layer}").detach())
            r = _onnx_gate_order(getattr(lstm, f"weight_hh_l{layer}").detach())
            b = torch.cat(
                [
                    _onnx_gate_order(getattr(lstm, f"bias_ih_l{layer}").detach()),
                    _onnx_gate_order(getattr(lstm, f"bias_hh_l{layer}").detach()),
                ]
            )
            self.register_buffer(f"w{layer}", w[None].contiguous())
            self.register_buffer(f"r{layer}", r[None].contiguous())
            self.register_buffer(f"b{layer}", b[None].contiguous())

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch = x.shape[0]
        if state is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros)
        h0, c0 = state
        sequence = x.transpose(0, 1)  # [T, B, D]: ONNX layout 0
        hs, cs = [], []
        for layer in range(self.num_layers):
            y, h, c = onnx_lstm_layer(
                sequence,
                getattr(self, f"w{layer}"),
                getattr(self, f"r{layer}"),
                getattr(self, f"b{layer}"),
                h0[layer : layer + 1],
                c0[layer : layer + 1],
                self.hidden_size,
            )
            sequence = y[:, 0]
            hs.append(h)
            cs.append(c)
        return sequence.transpose(0, 1), (torch.cat(hs, dim=0), torch.cat(cs, dim=0))
