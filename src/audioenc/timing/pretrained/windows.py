"""Long clips through an encoder with a maximum input length: overlapping windows, frames stitched
so that every frame keeps its exact time.

A clip of ``T`` samples and a window of at most ``W`` samples, ``V`` of them shared by neighbours:

1. **Windows start on the frame grid.** Starts are multiples of the encoder's stride ``S``, so a
   window starting at ``s`` computes frame ``i`` exactly where the whole clip's frame ``s / S + i``
   is: same field, same timestamp (:class:`~audioenc.timing.pretrained.geometry.FrameGeometry`).
   Starts step by ``W - V`` (rounded down to ``S``); the last window ends at the clip's end
   (its start rounded up to ``S``), so it is as long as the others where the clip allows.
2. **Each frame comes from one window, the one it is deepest inside.** Neighbours ``k`` and
   ``k + 1`` split their overlap at its middle: frames whose field centre lies before
   ``(start_{k+1} + end_k) / 2`` come from window ``k``, the rest from later windows. Every frame
   thus sees at least ``V / 2`` samples of context on the side of the cut.
3. **The count is what the last window reaches:** ``start_last / S + frames(T - start_last)``,
   which is ``frames(T)``, the one-pass count, for every count rule of
   :mod:`~audioenc.timing.pretrained.geometry` — except where a fixed window computes fewer frames
   than its audio holds centres for (a stock AST's 101 patch columns end 167.5 ms before its
   10.255 s window does): there the clip ends with the last frame the last window computes.

A clip of at most ``W`` samples is one window: the result is exactly the one-shot pass. Longer
clips differ from a (hypothetical) one-shot pass only where a model looks further than the window
(attention over the whole input, normalisation over the input); a model whose field is local and
shorter than ``V / 2`` gives the one-shot frames exactly (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from audioenc.errors import UserError
from audioenc.timing.pretrained.geometry import FrameGeometry


@dataclass(frozen=True)
class WindowPlan:
    """Windows over one clip and the frames each contributes.

    Attributes:
        samples: clip length ``T``.
        starts: first sample of each window (multiples of the stride).
        ends: one past the last sample of each window.
        owned: ``(first, stop)`` global frame range each window contributes (together ``0 ..
            frames(T)``, in order, without gaps).
    """

    samples: int
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    owned: tuple[tuple[int, int], ...]


def plan_windows(
    samples: int, geometry: FrameGeometry, window: int | None, overlap: int, where: str = "encoder"
) -> WindowPlan:
    """Windows of at most ``window`` samples sharing ``overlap`` samples (see the module docstring).

    Args:
        samples: clip length ``T``.
        geometry: the encoder's frames.
        window: most samples per call (None: no limit, one window).
        overlap: samples shared by neighbouring windows.
        where: names the encoder in errors.

    Raises:
        UserError: a window or overlap too small for the encoder's frames (a frame would be missing).
    """
    stride = geometry.stride
    if window is None or samples <= window:
        return WindowPlan(samples, (0,), (samples,), ((0, geometry.frames(samples)),))
    step = (window - overlap) // stride * stride
    if step < stride or overlap < 0:
        raise UserError(
            f"{where}: a window of {window} samples with {overlap} shared leaves no whole frame step "
            f"({stride} samples); choose a longer window or a shorter overlap."
        )
    last = -(-(samples - window) // stride) * stride
    total = last // stride + geometry.frames(samples - last)
    starts = list(range(0, last, step)) + [last]
    ends = [min(start + window, samples) for start in starts]
    owned = []
    first = 0
    for index, start in enumerate(starts):
        if index + 1 < len(starts):
            cut = (starts[index + 1] + ends[index]) / 2
            # frames whose centre lies before the cut: centre(g) < cut  <=>  g < (cut - offset - field/2) / stride
            stop = max(first, min(total, math.ceil((cut - float(geometry.centre_samples(0))) / stride)))
        else:
            stop = total
        available = geometry.frames(ends[index] - start)
        if stop > first and (first - start // stride < 0 or stop - start // stride > available):
            raise UserError(
                f"{where}: windows of {window} samples sharing {overlap} are too short for frames of "
                f"{geometry.receptive_field} samples; give a longer window or overlap."
            )
        owned.append((first, stop))
        first = stop
    return WindowPlan(samples, tuple(starts), tuple(ends), tuple(owned))


def run_windowed(
    audio: torch.Tensor, plan: WindowPlan, stride: int, run: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``run`` on each window of ``plan`` and the owned frames stitched in time order.

    Args:
        audio: ``[n, T]`` (every sound the same length ``T = plan.samples``).
        plan: from :func:`plan_windows`.
        stride: the encoder's stride in samples (window ``k``'s frame ``i`` is frame
            ``starts[k] / stride + i`` of the clip).
        run: ``[n, L] -> [n, frames(L), E]`` for one window.

    Returns:
        ``[n, frames(T), E]``.
    """
    if audio.shape[-1] != plan.samples:
        raise ValueError(f"audio of {audio.shape[-1]} samples for a plan of {plan.samples}")
    parts = []
    for start, end, (first, stop) in zip(plan.starts, plan.ends, plan.owned):
        if stop == first and parts:
            continue
        frames = run(audio[:, start:end])
        local = first - start // stride
        parts.append(frames[:, local : local + stop - first])
    return torch.cat(parts, dim=1)


__all__ = ["WindowPlan", "plan_windows", "run_windowed"]
