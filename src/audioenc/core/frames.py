"""The time grid of frame-wise outputs (scores, embeddings): frame ``j`` of a sequence at ``frame_rate`` frames/s spans
``[j, j + 1) / frame_rate`` seconds and stands for its centre ``(j + 1/2) / frame_rate``.

Every step that turns frame indices into seconds (boundaries, decoded events, score tables,
plots, encoder grids) asks these functions, so all of them place frame ``j`` at the same instant,
to the last bit.
"""

from __future__ import annotations

import numpy as np


def frame_times(num_frames: int, frame_rate: float) -> np.ndarray:
    """Boundaries of ``num_frames`` frames: ``[num_frames + 1]`` seconds, frame ``j`` spans ``[t[j], t[j + 1])``."""
    return np.arange(num_frames + 1, dtype=np.float64) / frame_rate


def frame_starts(num_frames: int, frame_rate: float) -> np.ndarray:
    """Onsets ``j / frame_rate`` of ``num_frames`` frames: ``[num_frames]`` seconds."""
    return np.arange(num_frames, dtype=np.float64) / frame_rate


def frame_centres(num_frames: int, frame_rate: float, milliseconds: bool = False) -> np.ndarray:
    """Centres ``(j + 1/2) / frame_rate`` of ``num_frames`` frames: ``[num_frames]`` seconds
    (milliseconds with ``milliseconds=True``, for encoders that timestamp their frames in ms)."""
    unit = 1000.0 if milliseconds else 1.0
    return (np.arange(num_frames, dtype=np.float64) + 0.5) * unit / frame_rate
