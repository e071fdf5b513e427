"""Where a frame-level encoder's frames sit in time: stride, receptive field, frame count.

An encoder's frame ``j`` is computed from the samples of its **receptive field**
``[j · stride + offset, j · stride + offset + receptive_field)`` at ``sample_rate`` Hz (sample ``i``
occupies ``[i, i + 1) / sample_rate`` seconds, so a field of ``r`` samples starting at ``a`` spans
``[a, a + r) / sample_rate``). Its timestamp is the field's **centre**::

    t_j = (j · stride + offset + receptive_field / 2) / sample_rate   seconds

A stack of frame-making layers composes with :meth:`FrameGeometry.then`: a layer of kernel ``k``,
stride ``s`` and left padding ``p`` over frames of stride ``S``, offset ``O`` and field ``R`` gives
stride ``s · S``, offset ``O - p · S``, field ``(k - 1) · S + R``. Example, the wav2vec2 feature
encoder (kernels 10, 3, 3, 3, 3, 2, 2; strides 5, 2, 2, 2, 2, 2, 2; no padding) at 16 kHz: stride
320, offset 0, field 400, so ``t_j = (320 j + 200) / 16000`` s (12.5 ms, 32.5 ms, ...).

How many frames ``T`` samples give depends on how the model pads (:data:`FRAME_COUNTS`):

* ``fields_inside`` — unpadded convolutions: the frames whose whole field lies in the clip,
  ``floor((T - offset - receptive_field) / stride) + 1`` (transformers'
  ``_get_feat_extract_output_lengths``, one layer at a time, gives the same number);
* ``centres_inside`` — models fed a fixed, padded window (Whisper, AST), cropped here to the frames
  whose centre lies in the clip: ``ceil((T - offset - receptive_field / 2) / stride)``, at least 1;
* ``hops_started`` — codecs that pad the clip to whole hops: ``ceil(T / stride)``.

``max_frames`` caps the count of one call where the model's window holds a fixed number of frames.
A codec's frame stands for its hop (:func:`hops`: field = the hop, ``nominal_field``): its causal
convolutions and recurrent or attention layers see the window's past, so no finite field exists
to centre on, and the hop's centre is the convention of audioenc's own codec and of HEAR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

FrameCount = Literal["fields_inside", "centres_inside", "hops_started"]
FRAME_COUNTS: tuple[str, ...] = ("fields_inside", "centres_inside", "hops_started")


@dataclass(frozen=True)
class FrameGeometry:
    """Stride, offset and receptive field of an encoder's frames (see the module docstring).

    Attributes:
        sample_rate: Hz of the audio the encoder takes.
        stride: samples between consecutive frames.
        offset: first sample of frame 0's field (negative: the model pads the clip's start).
        receptive_field: samples in one frame's field.
        count: how many frames a clip gives (:data:`FRAME_COUNTS`).
        max_frames: the most frames one call computes (a fixed window), or None.
        nominal_field: the field is the hop a frame stands for, not the samples it depends on.
    """

    sample_rate: int
    stride: int = 1
    offset: int = 0
    receptive_field: int = 1
    count: FrameCount = "fields_inside"
    max_frames: int | None = None
    nominal_field: bool = False

    def __post_init__(self) -> None:
        if self.count not in FRAME_COUNTS:
            raise ValueError(f"count {self.count!r} is not one of {FRAME_COUNTS}")
        if self.stride < 1 or self.receptive_field < 1 or self.sample_rate < 1:
            raise ValueError(f"a frame geometry needs positive stride, field and rate: {self}")

    def then(self, kernel: int, stride: int, padding: int = 0) -> FrameGeometry:
        """The frames of a layer (kernel ``kernel``, stride ``stride``, ``padding`` frames of left
        padding) applied to these frames."""
        return replace(
            self,
            stride=self.stride * stride,
            offset=self.offset - padding * self.stride,
            receptive_field=(kernel - 1) * self.stride + self.receptive_field,
        )

    def counted(self, count: FrameCount, max_frames: int | None = None) -> FrameGeometry:
        """The same frames, counted by ``count`` and capped at ``max_frames``."""
        return replace(self, count=count, max_frames=max_frames)

    @property
    def frame_rate(self) -> float:
        """Frames per second: ``sample_rate / stride``."""
        return self.sample_rate / self.stride

    @property
    def receptive_field_ms(self) -> float:
        return 1000.0 * self.receptive_field / self.sample_rate

    def centre_samples(self, frames: int | np.ndarray) -> np.ndarray:
        """Field centres ``j · stride + offset + receptive_field / 2`` in samples (float64)."""
        return np.asarray(frames, dtype=np.float64) * self.stride + self.offset + self.receptive_field / 2

    def timestamps_ms(self, num_frames: int) -> np.ndarray:
        """Timestamps ``[num_frames]`` of frames ``0 .. num_frames - 1`` in milliseconds (float64)."""
        return self.centre_samples(np.arange(num_frames)) * 1000.0 / self.sample_rate

    def frames(self, samples: int) -> int:
        """Frames one call of the encoder gives for ``samples`` samples (rule ``count``, capped at ``max_frames``)."""
        if self.count == "fields_inside":
            number = max(0, (samples - self.offset - self.receptive_field) // self.stride + 1)
        elif self.count == "centres_inside":
            number = max(1, math.ceil((samples - self.offset - self.receptive_field / 2) / self.stride))
        else:
            number = max(1, -(-samples // self.stride))
        return number if self.max_frames is None else min(number, self.max_frames)

    def describe(self) -> dict:
        """Plain-JSON numbers for a report (no receptive field where it is nominal)."""
        return {
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "stride_samples": self.stride,
            "receptive_field_samples": None if self.nominal_field else self.receptive_field,
            "receptive_field_ms": None if self.nominal_field else self.receptive_field_ms,
            "first_timestamp_ms": float(self.timestamps_ms(1)[0]),
            "frame_count": self.count,
        }


def waveform(sample_rate: int) -> FrameGeometry:
    """The samples themselves as frames (stride 1, field 1): the start of every composition."""
    return FrameGeometry(sample_rate)


def hops(sample_rate: int, hop: int) -> FrameGeometry:
    """A codec's frames: frame ``j`` stands for samples ``[j · hop, (j + 1) · hop)``, ``ceil(T / hop)`` frames."""
    return FrameGeometry(sample_rate, hop, 0, hop, "hops_started", nominal_field=True)


__all__ = ["FRAME_COUNTS", "FrameCount", "FrameGeometry", "hops", "waveform"]
