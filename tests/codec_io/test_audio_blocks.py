"""Tests for audioenc.codec_io.audio_blocks: the resampled length is the one soxr produces."""

from __future__ import annotations

import numpy as np
import soxr

from audioenc.codec_io import resampled_length


def test_resampled_length_matches_soxr():
    for rate in (8000, 16000, 22050, 44100, 48000):
        for frames in (1, 2, 3, 7, 441, 1000, 4801):
            produced = len(soxr.resample(np.zeros(frames, np.float32), rate, 24000, quality="HQ"))
            assert resampled_length(frames, rate, 24000) == produced
