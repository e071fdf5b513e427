"""The weak-label CRNN's layers (:mod:`audioenc.timing.weak` assembles them): the conv blocks, their pooling
and the length-exact bidirectional recurrent layer.

``[B, C, freq, time]`` maps through the conv blocks; ``[B, F, size]`` sequences with lengths ``[B]`` through
:class:`MaskedBiRNN`.
"""

from __future__ import annotations

import torch
from torch import nn

CONV_BLOCKS: tuple[str, ...] = ("relu", "glu")
"""The conv blocks ``crnn.conv_block`` names (:class:`ConvBlock`, :class:`GatedConvBlock`)."""
RNN_CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}
"""The recurrent layers ``crnn.rnn_cell`` names."""


class BlockMean(nn.Module):
    """Average over non-overlapping ``(freq, time)`` tiles: ``nn.AvgPool2d(kernel_size)`` computed as a
    reshape and a mean (the same numbers; 3x faster forward and backward on CPU, where torch's pooling
    kernel dominated the small CRNN's conv stack). A remainder that does not fill a tile is dropped, as
    AvgPool2d drops it.

    ``[B, C, freq, time] -> [B, C, freq // f, time // t]``.
    """

    def __init__(self, kernel_size: tuple[int, int]) -> None:
        super().__init__()
        self.kernel_size = tuple(kernel_size)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        f, t = self.kernel_size
        if f == t == 1:
            return maps
        batch, channels, freq, time = maps.shape
        maps = maps[:, :, : freq - freq % f, : time - time % t]
        return maps.reshape(batch, channels, freq // f, f, time // t, t).mean(dim=(3, 5))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class ConvBlock(nn.Sequential):
    """3x3 conv -> BatchNorm -> ReLU -> AvgPool(freq_pool, time_pool) -> Dropout.

    ``[B, in, freq, time] -> [B, out, freq / freq_pool, time / time_pool]``.
    """

    def __init__(self, in_channels: int, out_channels: int, freq_pool: int, time_pool: int, dropout: float) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            BlockMean((freq_pool, time_pool)),
            nn.Dropout(dropout),
        )


class GLU(nn.Module):
    """DESED_task's gated linear unit over channels: ``y = (W x + b) * sigmoid(x)`` at every (freq, time).

    ``[B, C, freq, time] -> [B, C, freq, time]``; ``W`` is ``[C, C]`` (a linear map of the channels
    at each position, C^2 + C parameters), the gate is the input itself.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, channels)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.linear(maps.movedim(1, -1)).movedim(-1, 1) * torch.sigmoid(maps)


class GatedConvBlock(nn.Sequential):
    """DESED_task's conv block: 3x3 conv (with bias) -> BatchNorm -> GLU -> Dropout -> AvgPool(freq_pool, time_pool).

    ``[B, in, freq, time] -> [B, out, freq / freq_pool, time / time_pool]``. The batch norm
    keeps the baseline's ``eps=1e-3, momentum=0.99``: in PyTorch's convention that makes the
    running statistics 99 % the latest batch's (a Keras momentum carried over as is), so the
    eval-mode statistics follow the last training batches closely.
    """

    def __init__(self, in_channels: int, out_channels: int, freq_pool: int, time_pool: int, dropout: float) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.99),
            GLU(out_channels),
            nn.Dropout(dropout),
            BlockMean((freq_pool, time_pool)),
        )


class MaskedBiRNN(nn.Module):
    """Bidirectional GRU or LSTM over a padded batch, exact for each sequence's own length.

    ``[B, F, input_size]`` plus lengths ``[B]`` -> ``[B, F, 2 * hidden]`` (forward states, then
    backward states; zero on padded frames). The forward GRU reads padding only after the
    real frames, so its real outputs are unaffected; the backward GRU runs on each sequence
    reversed *within its length* and its outputs are put back in place. Same result as
    packed sequences, at the cost of two plain GRU passes (packing is ~2x slower on CPU).
    With ``layers > 1`` each further layer reads the previous one's output (zero past each length).
    """

    def __init__(self, input_size: int, hidden: int, layers: int = 1, cell: str = "gru") -> None:
        super().__init__()
        rnn = RNN_CELLS[cell]
        self.forward_rnn = rnn(input_size, hidden, batch_first=True)
        self.backward_rnn = rnn(input_size, hidden, batch_first=True)
        # Further layers read the [B, F, 2 * hidden] output, as a stacked bidirectional nn.GRU's do
        # (empty for one layer: no parameters, the same state_dict as before layers existed).
        self.upper = nn.ModuleList(MaskedBiRNN(2 * hidden, hidden, cell=cell) for _ in range(layers - 1))

    def forward(self, sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, frames, size = sequence.shape
        steps = torch.arange(frames, device=sequence.device)[None, :]
        lengths = lengths.to(sequence.device)[:, None]
        valid = steps < lengths
        # Reversal within each length; an involution, so the same index puts outputs back.
        index = torch.where(valid, lengths - 1 - steps, steps)
        reversed_input = sequence.gather(1, index[..., None].expand(-1, -1, size))
        backward = self.backward_rnn(reversed_input)[0]
        backward = backward.gather(1, index[..., None].expand(-1, -1, backward.shape[-1]))
        both = torch.cat([self.forward_rnn(sequence)[0], backward], dim=-1) * valid[..., None]
        for layer in self.upper:
            both = layer(both, lengths[:, 0])
        return both


__all__ = ["CONV_BLOCKS", "RNN_CELLS", "BlockMean", "ConvBlock", "GLU", "GatedConvBlock", "MaskedBiRNN"]
