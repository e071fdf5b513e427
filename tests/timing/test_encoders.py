"""Frozen encoders and the frame grid (audioenc.timing.encoders): grid mapping by hand, a HEAR
module from a file against the module called directly, clear errors."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from audioenc.audio.io import read_clip
from audioenc.timing.adapt import adaptation_split
from audioenc.timing.encoders import encoder_embeddings, frame_rate_from_timestamps, load_encoder, to_frame_grid


def test_frame_grid_from_start_timestamps():
    # Timestamps at frame starts every 30 ms: 33.3 frames/s; the grid centres (j + 1/2) * 30 ms
    # fall halfway between two timestamps, where the earlier one is taken.
    timestamps = np.arange(5) * 30.0
    assert frame_rate_from_timestamps(timestamps) == pytest.approx(1000 / 30)
    embeddings = np.arange(10, dtype=np.float32).reshape(5, 2)  # frame k = [2k, 2k + 1]
    grid = to_frame_grid(embeddings, timestamps, duration=0.14, frame_rate=1000 / 30)
    assert grid.shape == (2, 5)  # ceil(0.14 * 33.33 - 0.001) = 5
    np.testing.assert_array_equal(grid[0], [0, 2, 4, 6, 8])
    # Centre timestamps map one to one.
    centred = to_frame_grid(embeddings, timestamps + 15.0, duration=0.15, frame_rate=1000 / 30)
    np.testing.assert_array_equal(centred, embeddings.T)
    with pytest.raises(ValueError, match="no time axis"):
        frame_rate_from_timestamps(np.array([500.0]))


@pytest.mark.parametrize("samples", [168000, 168001, 167999])
def test_frame_grid_length_at_whole_frames(samples):
    # A 75 Hz codec gives ceil(samples / 320) frames; its float32 centre timestamps give a rate a
    # hair off 75, which must not add or drop a grid frame (168000 samples = exactly 525 frames).
    frames = -(-samples // 320)
    timestamps = ((np.arange(frames) + 0.5) * 1000 / 75).astype(np.float32)
    rate = frame_rate_from_timestamps(timestamps)
    assert rate == pytest.approx(75.0, rel=1e-6)
    grid = to_frame_grid(np.zeros((frames, 3)), timestamps, samples / 24000, rate)
    assert grid.shape == (3, frames)


HEAR_MODULE = textwrap.dedent('''
    """A tiny HEAR module: log power in 4 FFT bands at 16 kHz, hop 480 (33.3 frames/s),
    timestamps at frame starts (not centres)."""
    import torch

    class TinyModel(torch.nn.Module):
        sample_rate = 16000
        scene_embedding_size = 4
        timestamp_embedding_size = 4

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(4))

    def load_model(model_file_path=""):
        return TinyModel()

    def get_timestamp_embeddings(audio, model):
        hop = 480
        frames = max(1, audio.shape[1] // hop)
        x = audio[:, : frames * hop].reshape(audio.shape[0], frames, hop)
        power = torch.fft.rfft(x, dim=-1).abs() ** 2
        bands = torch.stack([band.sum(-1) for band in power[..., :240].chunk(4, dim=-1)], dim=-1)
        timestamps = (torch.arange(frames, dtype=torch.float32) * 30.0).expand(audio.shape[0], -1)
        return torch.log(bands + 1e-8) * model.scale, timestamps

    def get_scene_embeddings(audio, model):
        return get_timestamp_embeddings(audio, model)[0].mean(dim=1)
''')


def test_hear_module_encoder_is_accepted(tmp_path):
    module = tmp_path / "tiny_hear.py"
    module.write_text(HEAR_MODULE)
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    rng = np.random.default_rng(0)
    # 0.5 s at 44.1 kHz, stereo: the workflow downmixes and resamples to the encoder's 16 kHz.
    sf.write(audio_dir / "a.wav", 0.1 * rng.standard_normal((22050, 2)), 44100)
    handle = load_encoder(module)
    assert handle.kind == "hear_module" and handle.sample_rate == 16000 and handle.embedding_size == 4
    assert "downmixed to mono" in handle.channel_policy and "16000 Hz" in handle.channel_policy
    embeddings = encoder_embeddings(handle, audio_dir, ["a.wav"])
    assert embeddings.frame_rate == pytest.approx(1000 / 30)
    assert not embeddings.identity_map  # start timestamps: the grid re-indexes them
    grid = embeddings.frames["a.wav"]
    assert grid.shape == (4, math.ceil(0.5 * 1000 / 30))
    # Reference: the module called directly on the same 16 kHz mono audio; grid frame j is the
    # module frame whose start timestamp is nearest to the centre (j + 1/2) * 30 ms -> frame j.
    audio = torch.from_numpy(read_clip(audio_dir / "a.wav", 16000))[None]
    direct, _ = handle.api.get_timestamp_embeddings(audio, handle.model)
    np.testing.assert_allclose(grid[:, :16], direct[0, :16].detach().numpy().T, rtol=0, atol=1e-6)
    split, reason = adaptation_split(handle)
    assert split is None and "exposes only the HEAR functions" in reason


def test_missing_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing file"):
        load_encoder("no_such_module_anywhere_xyz")
    bad = tmp_path / "bad_module.py"
    bad.write_text("def load_model():\n    return None\n")
    with pytest.raises(ValueError, match="lacks get_timestamp_embeddings"):
        load_encoder(bad)
