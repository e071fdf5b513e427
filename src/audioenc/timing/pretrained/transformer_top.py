"""The top transformer layers of a ``transformers`` snapshot as a trainable block, for light adaptation.

A transformer family's hidden state ``N`` is ``layer_{N-1}(... layer_{N-k}(state_{N-k}))`` (state 0
is the input to the first layer; Whisper's last state also passes its final layer norm), read out
to frames (:class:`FrameReadout`). Cutting at state ``c = N - k`` gives

* **lower activations** (frozen, computed once per clip), ``[C·E + 1, P]``: the hidden states the
  top needs over the ``P`` positions the transformer attends over — the cut state ``c`` and, with
  ``layer="all"``, every chosen state below it (``C`` of them, state after state, ``E`` rows each)
  — and one **count row**: 1 on the first ``F`` positions, 0 after, so that ``F``, the clip's
  output frames, travels with the clip (``F = P`` for wav2vec2-style models, which run on the
  clip itself; ``F < P`` for Whisper and AST, whose layers attend over a padded window: every
  position of it is carried, since the frames' states depend on the padding's);
* **the top** (:class:`TransformerTop`, a trainable copy): layers ``c .. N - 1`` over the cut
  state (masked attention where a batch pads shorter clips), the final norm where the family's
  last state has one, the read-out to frames, the chosen states side by side ``[G·E, F]``, zero
  past each clip's ``F`` frames (:meth:`TransformerTop.output_lengths` gives ``F``).

Before training, top over lower rebuilds the frozen embeddings (tested for every family).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from audioenc.errors import UserError


class FrameReadout(nn.Module):
    """Hidden states over a window's positions ``[n, P, E]`` -> frames ``[n, F, E]``: the first ``F``
    positions (a model run on the clip itself has ``P = F``; Whisper's window holds the clip's frames
    first, then its padding)."""

    def forward(self, states: torch.Tensor, frames: int) -> torch.Tensor:
        return states[:, :frames]


class PatchColumnReadout(FrameReadout):
    """AST's tokens ``[n, 2 + Q·T, E]`` (CLS, distillation, then patches frequency-major: patch
    ``(q, t)`` is token ``2 + q·T + t``) -> one frame per time column, the mean of its ``Q``
    frequency patches, the first ``F`` columns ``[n, F, E]``."""

    def __init__(self, frequency: int, time: int) -> None:
        super().__init__()
        self.frequency, self.time = frequency, time

    def forward(self, states: torch.Tensor, frames: int) -> torch.Tensor:
        if states.shape[1] != self.frequency * self.time + 2:
            raise RuntimeError(f"AST state of {states.shape[1]} tokens, expected 2 + {self.frequency} x {self.time}")
        patches = states[:, 2:].reshape(states.shape[0], self.frequency, self.time, states.shape[-1])
        return patches.mean(dim=1)[:, :frames]


class LayerStack(nn.Module):
    """Consecutive transformer layers (copies), run in order: ``[n, P, E]`` -> the state after each.

    This base calls ``layer(states, None)``: models that always attend over a whole fixed window
    (Whisper, AST) and never mask; subclasses mask padded positions.
    """

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, states: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        """``states`` ``[n, P, E]``, ``mask`` ``[n, P]`` (True on attended positions; None: all) -> the
        ``len(layers)`` states after each layer."""
        if mask is not None:
            raise RuntimeError("this model attends over a fixed window: its clips cannot be padded to each other")
        outputs = []
        for layer in self.layers:
            states = layer(states, None)
            outputs.append(states)
        return outputs


class MaskedLayerStack(LayerStack):
    """wav2vec2 / HuBERT layers: a padded batch attends only over each clip's own positions, through
    the attention mask ``transformers`` builds for the model's attention implementation."""

    def __init__(self, layers: Sequence[nn.Module], config: object, make_mask: Callable[..., object]) -> None:
        super().__init__(layers)
        self.config = config
        self.make_mask = make_mask

    def forward(self, states: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        attention = (
            None if mask is None else self.make_mask(config=self.config, inputs_embeds=states, attention_mask=mask)
        )
        outputs = []
        for layer in self.layers:
            states = layer(states, attention_mask=attention)
            outputs.append(states)
        return outputs


class WavLMLayerStack(LayerStack):
    """WavLM layers: every layer adds the relative position bias that layer 0's attention computes
    (``compute_bias``) — from the copied layer 0 when it is in the stack, else from a frozen copy of
    layer 0's attention (``bias_source``, below the cut). Padded positions are masked as WavLM does
    (a key padding mask)."""

    def __init__(self, layers: Sequence[nn.Module], bias_source: nn.Module | None) -> None:
        super().__init__(layers)
        self.bias_source = bias_source
        if bias_source is not None:
            bias_source.requires_grad_(False)

    def forward(self, states: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        source = self.bias_source if self.bias_source is not None else self.layers[0].attention
        batch, positions = states.shape[:2]
        bias = source.compute_bias(positions, positions)  # [heads, P, P]
        bias = bias.unsqueeze(0).repeat(batch, 1, 1, 1).view(batch * source.num_heads, positions, positions)
        outputs = []
        for layer in self.layers:
            states, bias = layer(states, attention_mask=mask, position_bias=bias)
            outputs.append(states)
        return outputs


@dataclass(frozen=True)
class LayerCut:
    """Where a transformer family is cut for adaptation.

    Attributes:
        cut: the hidden state the trainable layers start from (``N - k``).
        carried: hidden states the lower activations hold, in order (``cut`` and the chosen ones below it).
        outputs: the chosen hidden states, in the embeddings' order.
        last_state: the model's last hidden state (where a final norm may apply).
    """

    cut: int
    carried: tuple[int, ...]
    outputs: tuple[int, ...]
    last_state: int

    def describe(self, family: str) -> str:
        """The cut in words (the report states it)."""
        first, last = self.cut + 1, self.last_computed  # layer i makes hidden state i (1-based)
        layers = f"layer {last}" if first == last else f"layers {first}-{last}"
        chosen = (
            f"hidden state {self.outputs[0]}"
            if len(self.outputs) == 1
            else f"hidden states {self.outputs[0]}-{self.outputs[-1]} (the states below {first} frozen)"
        )
        return f"{family} transformer {layers} of {self.last_state}, over hidden state {self.cut}, giving {chosen}"

    @property
    def last_computed(self) -> int:
        return max(self.outputs)


def plan_cut(family: str, indices: Sequence[int], top_layers: int, states: int, states_are_frames: bool) -> LayerCut:
    """Where to cut for ``top_layers`` trainable layers under the chosen hidden states ``indices`` of a
    model with ``states`` hidden states, or a :class:`~audioenc.errors.UserError` saying why not.

    ``layer="all"`` (several indices) carries the chosen states below the cut frozen; that needs the
    layers to run on the clip's own frames (``states_are_frames``): see the module docstring."""
    last = indices[-1]
    cut = last - top_layers
    chosen = "layer=all" if len(indices) > 1 else f"hidden state {last}"
    if cut < 0:
        raise UserError(
            f"probe.adapt_top_layers={top_layers}: {chosen} of this {family} model has {last} transformer "
            f"layer(s) below it; give at most {last} (or a higher encoder layer)."
        )
    carried = tuple(index for index in indices if index < cut) + (cut,)
    if len(carried) > 1 and not states_are_frames:
        raise UserError(
            f"layer=all: a {family} model's layers attend over its padded window, so adapting its top layers would "
            "carry every frozen state at every position of that window; adapt one hidden state instead "
            f"(encoder.layer=N, e.g. the one the probe weighted most), or all {states - 1} layers "
            f"(probe.adapt_top_layers={states - 1})."
        )
    return LayerCut(cut, carried, tuple(indices), states - 1)


class TransformerTop(nn.Module):
    """Trainable top layers of a transformer family (see the module docstring).

    ``forward(lower [B, C·E + 1, P], lengths [B]) -> [B, G·E, F_max]`` (``lengths``: each clip's
    positions ``P_i``, the rest of the batch is padding; ``G = len(cut.outputs)``), zeros past each
    clip's ``F_i`` frames (:meth:`output_lengths`).

    Args:
        stack: the copied layers ``cut .. max(outputs) - 1``.
        last_norm: the norm the model applies to its last hidden state (Whisper's), a copy; None when its
            last hidden state is the last layer's output.
        readout: positions -> frames.
        cut: the :class:`LayerCut`.
        embedding_size: ``E``.
    """

    def __init__(
        self,
        stack: LayerStack,
        last_norm: nn.Module | None,
        readout: FrameReadout,
        cut: LayerCut,
        embedding_size: int,
    ) -> None:
        super().__init__()
        self.stack = stack
        self.last_norm = last_norm
        self.readout = readout
        self.cut = cut
        self.embedding_size = embedding_size

    def output_lengths(self, lower: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each clip's output frames ``F`` ``[B]``: the sum of its count row."""
        return lower[:, -1].sum(dim=1).round().long()

    def forward(self, lower: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, rows, positions = lower.shape
        cut, size = self.cut, self.embedding_size
        if rows != len(cut.carried) * size + 1:
            raise ValueError(f"lower activations of {rows} rows, expected {len(cut.carried)} x {size} + 1")
        frames = self.output_lengths(lower, lengths)
        width = int(frames.max())
        attended = torch.arange(positions, device=lower.device)[None] < lengths.to(lower.device)[:, None]
        # No padding in the batch: no mask, exactly the frozen model's call.
        mask = None if bool(attended.all()) else attended
        carried = lower[:, :-1].reshape(batch, len(cut.carried), size, positions).transpose(2, 3)  # [B, C, P, E]
        states = dict(zip(cut.carried, carried.unbind(dim=1)))
        computed = self.stack(states[cut.cut], mask)
        states.update(zip(range(cut.cut + 1, cut.cut + 1 + len(computed)), computed))
        if self.last_norm is not None and cut.last_state in states and cut.last_state > cut.cut:
            states[cut.last_state] = self.last_norm(states[cut.last_state])
        embeddings = torch.cat([self.readout(states[index], width) for index in cut.outputs], dim=-1)
        real = torch.arange(width, device=lower.device)[None] < frames.to(lower.device)[:, None]
        return (embeddings * real[..., None]).transpose(1, 2)


__all__ = [
    "FrameReadout",
    "LayerCut",
    "LayerStack",
    "MaskedLayerStack",
    "PatchColumnReadout",
    "TransformerTop",
    "WavLMLayerStack",
    "plan_cut",
]
