"""The weak-label CRNN through the HEAR API, registered with :mod:`audioenc.hear`.

``hear.load_model(folder)`` on a folder written by :func:`audioenc.timing.weak.save_weak_encoder`
(``config.json`` of kind ``audioenc.weak_crnn`` + ``model.safetensors``) returns a
:class:`WeakCRNNHEAR`: mono audio ``[n, T]`` at ``model.sample_rate`` — **48 kHz** by default,
a rate HEAR accepts (``load_model(folder, sample_rate=...)`` for 16000, 22050 or 44100) —
resampled inside with soxr to the CRNN's own **24 kHz** (``model.model_sample_rate``, its log-mel
rate; the mel bands reach 12 kHz, which 48 kHz audio keeps whole) -> log-mel -> CNN ->
bidirectional recurrent (LSTM or GRU) frame embeddings ``[n, ceil(ceil(T24 / 240) / 4), 2H]`` for ``T24`` samples at
24 kHz (25 frames/s by default: timestamps at frame centres, 20 ms + k · 40 ms, whatever the
HEAR rate). Resampling and timestamps are :mod:`audioenc.hear`'s (see there). Importing this
module registers the loader (:func:`audioenc.hear.load_model` does so by name, see
:data:`audioenc.hear.LOADER_MODULES`); it is also a HEAR module in its own right
(``load_model``, ``get_timestamp_embeddings``, ``get_scene_embeddings``), for harnesses that name a
module: the HEAR 2021 validator passes ``hear-validator audioenc.timing.weak_hear --model FOLDER``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audioenc import hear
from audioenc.hear import HEARModule, TopSplit, get_scene_embeddings, get_timestamp_embeddings, one_top_block
from audioenc.timing.features import LogMel
from audioenc.timing.weak import WeakCRNN, load_weak_encoder


class WeakCRNNHEAR(HEARModule):
    """HEAR wrapper of the weak-label CRNN: its :class:`~audioenc.timing.fitting.ClipModelOutput`
    ``embeddings``, transposed to ``[n, frames, 2H]``. Built here it takes audio at the CRNN's own
    rate; :func:`load_model` sets the HEAR rate (48 kHz by default)."""

    kind = "weak_crnn"

    def __init__(self, crnn: WeakCRNN, batch_size: int = 16) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"WeakCRNNHEAR: batch_size={batch_size} must be >= 1.")
        self.crnn = crnn.eval()
        self.log_mel = LogMel(crnn.feature_config)
        self.batch_size = batch_size
        self.model_sample_rate = int(crnn.feature_config.sample_rate)
        self.sample_rate = self.model_sample_rate
        self.frame_rate = float(crnn.frame_rate)
        self.scene_embedding_size = int(crnn.embedding_size)
        self.timestamp_embedding_size = int(crnn.embedding_size)

    @torch.no_grad()
    def frame_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        device = self._device()
        self.log_mel.to(device)
        outputs = []
        for start in range(0, audio.shape[0], self.batch_size):
            sounds = audio[start : start + self.batch_size].to(device=device, dtype=torch.float32)
            outputs.append(self.crnn(self.log_mel(sounds)).embeddings.transpose(1, 2))
        return torch.cat(outputs, dim=0)

    def split_top(self, top_layers: int = 1) -> TopSplit:
        """The bidirectional recurrent layer (the layer that makes the embeddings); below it log-mel + CNN,
        captured by a forward hook on that layer while this wrapper runs (on the clip resampled to the
        CRNN's rate as the HEAR functions resample it), so the cut is exactly what the HEAR path
        computes. One top block: ``top_layers`` must be 1."""
        one_top_block(top_layers, "the weak CRNN's top block (its bidirectional recurrent layer)")
        rnn = self.crnn.rnn

        def lower(audio: np.ndarray) -> np.ndarray:
            captured: dict[str, torch.Tensor] = {}
            hook = rnn.register_forward_hook(lambda module, inputs, output: captured.update(sequence=inputs[0]))
            try:
                with torch.no_grad():
                    self.frame_embeddings(torch.from_numpy(self.clip_to_model_rate(audio))[None])
            finally:
                hook.remove()
            return captured["sequence"][0].T.numpy().astype(np.float32)

        return TopSplit(
            _RecurrentTop(copy.deepcopy(rnn)),
            lower,
            "weak-CRNN bidirectional recurrent layer (the layer that makes the embeddings)",
        )


class _RecurrentTop(nn.Module):
    """The CRNN's masked bidirectional recurrent layer as a :class:`~audioenc.hear.TopSplit` top:
    ``[B, C, F] -> [B, 2H, F]`` (exact per length)."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, lower: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.rnn(lower.transpose(1, 2), lengths).transpose(1, 2)


def weak_crnn_folder(path: Path) -> Path | None:
    """The folder of a saved weak CRNN when ``path`` is it, its config.json or its model.safetensors."""
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.name not in ("config.json", "model.safetensors"):
        return None
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        kind = json.loads(config.read_text()).get("kind")
    except (ValueError, AttributeError, OSError):  # ValueError: not JSON, or not UTF-8 text
        return None  # not our config.json: let the next loader (or the error message) handle it
    return folder if kind == "audioenc.weak_crnn" else None


def _load(path: Path, batch_size: int = 16) -> WeakCRNNHEAR:
    return WeakCRNNHEAR(load_weak_encoder(weak_crnn_folder(path)), batch_size=batch_size)


def register() -> None:
    """Register the weak-CRNN loader with :func:`audioenc.hear.register_loader` (once)."""
    if not any(loader.name == "weak_crnn" for loader in hear.LOADERS):
        hear.register_loader("weak_crnn", lambda path: weak_crnn_folder(path) is not None, _load, ("batch_size",))


def load_model(model_file_path: str = "", **kwargs) -> HEARModule:
    """HEAR ``load_model`` for a weak-CRNN folder (any kind :func:`audioenc.hear.load_model` knows;
    the same options, ``sample_rate`` 48000 by default)."""
    register()
    return hear.load_model(model_file_path, **kwargs)


register()

__all__ = [
    "WeakCRNNHEAR",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "load_model",
    "register",
    "weak_crnn_folder",
]
