"""Shared helpers for the codec_io tests: a small codec (hop 32) with every codebook initialised,
noise signals and float WAV files.

``ATOL``: chunked and one-shot results agree to float32 rounding (test_streaming.py measures it).
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from audioenc.config import ModelConfig
from audioenc.models.codec import CodecModel

HOP = 32
SMALL = dict(n_filters=4, dimension=16, ratios=(4, 4, 2), lstm=2)
ATOL = 1e-6


def small_config(**overrides) -> ModelConfig:
    options = dict(SMALL, n_q=4, bins=16)
    options.update(overrides)
    return ModelConfig(**options)


def small_model(seed: int = 0, **overrides) -> tuple[CodecModel, ModelConfig]:
    """A small codec in eval mode; with a quantizer, one training pass has initialised every codebook."""
    torch.manual_seed(seed)
    config = small_config(**overrides)
    model = CodecModel.from_config(config).eval()
    if not model.quantizer.initialized:
        model.quantizer.q_dropout = False  # initialise every codebook on one training pass
        model.train()
        with torch.no_grad():
            model(0.3 * torch.randn(4, config.channels, 64 * HOP, generator=torch.Generator().manual_seed(99)))
        model.eval()
    return model, config


def noise(batch: int, channels: int, length: int, seed: int = 0) -> torch.Tensor:
    """Gaussian noise ``[batch, channels, length]`` of standard deviation 0.3, seeded."""
    return 0.3 * torch.randn(batch, channels, length, generator=torch.Generator().manual_seed(seed))


def write_wav(path, audio: np.ndarray, rate: int) -> None:
    """``audio`` ``[channels, time]`` as a float WAV file (no quantisation of the samples)."""
    sf.write(str(path), audio.T, rate, subtype="FLOAT")
