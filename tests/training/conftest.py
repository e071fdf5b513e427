"""A tiny configuration and a tiny audio folder for trainer tests (seconds on one CPU core)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.config import build_config

TINY_OVERRIDES = (
    "model.n_filters=2",
    "model.dimension=8",
    "model.ratios=4,4",
    "model.lstm=1",
    "model.n_q=4",
    "model.bins=16",
    "discriminator.filters=2",
    "discriminator.n_ffts=256,128",
    "discriminator.hop_lengths=64,32",
    "discriminator.win_lengths=256,128",
    "data.segment_seconds=0.1",
    "data.num_workers=0",
    "data.valid_segments=4",
    "train.batch_size=2",
    "train.epochs=2",
    "train.updates_per_epoch=3",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.logger=none",
    "train.adversarial_warmup_steps=0",
    "train.device=cpu",
)


def make_audio_folder(root: Path, channels: int = 1, files: int = 5, seconds: float = 1.0, rate: int = 16000) -> Path:
    """``files`` wav files of tones in noise at ``rate`` Hz (resampled to 24 kHz by the loader)."""
    rng = np.random.default_rng(123)
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    for index in range(files):
        tones = [0.3 * np.sin(2 * np.pi * (220 + 110 * index + 37 * c) * t) for c in range(channels)]
        audio = np.stack(tones, axis=1) + 0.02 * rng.standard_normal((t.size, channels))
        sf.write(root / f"clip{index}.wav", audio.astype(np.float32), rate, subtype="FLOAT")
    return root


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    return make_audio_folder(tmp_path / "data")


@pytest.fixture
def make_config(tiny_data):
    """``make_config(*overrides, mode="1ch")``: the tiny config on the tiny folder."""

    def make(*extra: str, mode: str = "1ch"):
        return build_config(mode, "small", [*TINY_OVERRIDES, f"data.root={tiny_data}", *extra])

    return make
