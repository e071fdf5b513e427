"""Export-only forms of SEANet layers that ONNX Runtime runs faster; each computes the same function.

:func:`exportable_layers` rewrites an export copy of a codec (plain, folded weights) in place:

* ``nn.ELU(alpha=1)`` -> ``nn.CELU(alpha=1)``: the same function (PyTorch even runs the same kernel:
  ``celu(x, a) = elu(x, a, input_scale=1/a)``), exported as ONNX ``Celu`` instead of ``Elu``.
  ONNX Runtime's ``Celu`` kernel is faster than its ``Elu``, and, being one node, it can run on the
  blocked (NCHWc) tensors of the convolutions around it (:mod:`audioenc.interop.onnx_runtime`).
* A causal transposed convolution (kernel ``k = m·s``, stride ``s``, all ``k - s`` trimmed samples
  on the right) -> its polyphase form (:class:`PolyphaseConvTranspose1d`): output sample ``j·s + r``
  is ``b + Σ_{q<m} W[:, :, q·s + r]ᵀ x[:, j - q]``, a plain convolution with kernel ``m`` over the
  input frames (``s·C_out`` output rows, ``m - 1`` zero frames on the left) whose rows are then
  interleaved in time (reshape, transpose, reshape). ONNX Runtime's ``ConvTranspose`` is a GEMM into
  a column buffer plus col2im, and the trim a ``Slice`` copy; the convolution runs on its fast
  convolution kernels instead.
* A zero-padded strided convolution (:class:`StaticPaddedConv1d`) pads ``stride - 1`` zeros on the
  right instead of the length-dependent ``extra = (s - T mod s) mod s <= s - 1``: the same frames
  (the last window ends at the same sample; the further zeros are never read), and a static padding
  that the exporter folds into the ``Conv`` node instead of a ``Pad`` copy.

The streaming step graphs keep working unchanged: ``step`` is inherited by both subclasses and the
CELU is pointwise.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from audioenc.models.conv import StreamableConv1d, StreamableConvTranspose1d


def polyphase_weight(convtr: nn.ConvTranspose1d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The convolution equivalent to ``convtr`` (weight ``W [C_in, C_out, m·s]``) on input frames.

    Returns ``(K [C_out·s, C_in, m], bias [C_out·s] or None)`` with rows ordered ``(o, r)``:
    ``K[o·s + r, i, m - 1 - q] = W[i, o, q·s + r]`` (kernel flipped: the convolution looks forward
    from ``m - 1`` zero frames of left padding), ``bias[o·s + r] = b[o]``.
    """
    weight = convtr.weight.detach()
    channels_in, channels_out, kernel = weight.shape
    stride = convtr.stride[0]
    phases = weight.reshape(channels_in, channels_out, kernel // stride, stride)  # [i, o, q, r]
    k = phases.permute(1, 3, 0, 2).flip(-1).reshape(channels_out * stride, channels_in, kernel // stride)
    bias = None if convtr.bias is None else convtr.bias.detach().repeat_interleave(stride)
    return k.contiguous(), bias


def _polyphase_eligible(layer: StreamableConvTranspose1d) -> bool:
    """Plain causal layers: nothing trimmed on the left, kernel a multiple of the stride."""
    convtr = layer.convtr
    plain = convtr.groups == 1 and convtr.dilation == (1,) and convtr.padding == (0,) and convtr.output_padding == (0,)
    return plain and convtr.kernel_size[0] % convtr.stride[0] == 0 and layer.unpaddings()[0] == 0


class PolyphaseConvTranspose1d(StreamableConvTranspose1d):
    """A :class:`StreamableConvTranspose1d` whose one-shot pass is the polyphase convolution.

    Made only by :func:`exportable_layers` (it changes the class of an existing layer and adds the
    ``polyphase_k`` / ``polyphase_bias`` buffers of :func:`polyphase_weight`); ``step`` is inherited.
    """

    def one_shot(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, F] -> [B, C_out, F·s]``: kernel-``m`` convolution, then rows ``(o, r)`` into time."""
        batch, frames = x.shape[0], x.shape[-1]
        stride, taps = self.convtr.stride[0], self.polyphase_k.shape[-1]
        rows = F.conv1d(F.pad(x, (taps - 1, 0)), self.polyphase_k, self.polyphase_bias)  # [B, C_out·s, F]
        channels = rows.shape[1] // stride
        return rows.reshape(batch, channels, stride, frames).transpose(2, 3).reshape(batch, channels, frames * stride)


class StaticPaddedConv1d(StreamableConv1d):
    """A zero-padded strided :class:`StreamableConv1d` whose one-shot padding does not depend on the
    length: ``(left, right + stride - 1)`` for the ``(left, right)`` of a length that is a multiple
    of the stride. Made only by :func:`exportable_layers`; ``step`` is inherited."""

    def one_shot(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T] -> [B, C_out, ceil(T / stride)]``, the same frames as the parent's."""
        stride = self.conv.stride[0]
        left, right = self.paddings(stride)  # no extra padding for a multiple of the stride
        return self.conv(F.pad(x, (left, right + stride - 1)))


def exportable_layers(model: nn.Module) -> None:
    """In place, on an export copy with plain (folded) weights: every ``nn.ELU(alpha=1)`` becomes
    ``nn.CELU(alpha=1)``, every eligible transposed convolution a :class:`PolyphaseConvTranspose1d`,
    every zero-padded strided convolution a :class:`StaticPaddedConv1d` (see the module docstring)."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.ELU and child.alpha == 1.0:
                setattr(parent, name, nn.CELU(alpha=1.0))
    for module in model.modules():
        if type(module) is StreamableConvTranspose1d and _polyphase_eligible(module):
            k, bias = polyphase_weight(module.convtr)
            module.register_buffer("polyphase_k", k)
            module.register_buffer("polyphase_bias", bias)
            module.__class__ = PolyphaseConvTranspose1d
        elif type(module) is StreamableConv1d and module.pad_mode == "constant" and module.conv.stride[0] > 1:
            module.__class__ = StaticPaddedConv1d
