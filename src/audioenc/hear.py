"""The HEAR API (https://hearbenchmark.com) over this package's encoders.

Module-level functions, exactly as HEAR names them::

    model = load_model("runs/train-1ch-small/model_best.safetensors")
    embeddings, timestamps = get_timestamp_embeddings(audio, model)   # [n, F, E], [n, F] (ms)
    scene = get_scene_embeddings(audio, model)                        # [n, E]

Input audio is ``[n_sounds, n_samples]`` float, mono, **already at** ``model.sample_rate`` (24 kHz
for every model here; HEAR resamples before calling, and nothing here resamples). Outputs are
float32 on the audio's device.

Timestamps are in **milliseconds** at **frame centres**: embedding frame ``k`` summarises the
audio interval ``[k, k + 1) / frame_rate`` seconds, so its timestamp is
``(k + 1/2) · 1000 / frame_rate`` ms. Codec encoders run at 75 frames/s (hop 320 at 24 kHz): the
first timestamp is 1000 / 75 / 2 = 6.667 ms and consecutive ones are 13.333 ms apart; the
number of frames is ``ceil(n_samples / 320)``. (A causal encoder's frame ``k`` has only seen
samples ``< (k + 1) · 320``, i.e. it lags its centre by half a hop; the centre convention is
HEAR's.) The scene embedding is the mean over time of the timestamp embeddings.

Encoders, chosen by the file given to :func:`load_model`:

* a codec from ``audioenc train`` (``model_best.safetensors`` + ``.json``, ``checkpoint_*.pt`` or a
  run folder; see :func:`audioenc.codec_io.load_codec`): the embeddings are the encoder's
  **continuous latents** before any quantizer, ``[n, ceil(T / hop), D]``. Channel policy: HEAR
  audio is mono, so a multichannel codec receives the mono signal **repeated on every input
  channel** (an omnidirectional source at the array centre); say so when reporting such results.
  Causal codecs are run with :class:`audioenc.codec_io.StreamingEncoder` in chunks (exact, bounded
  memory for long clips); non-causal ones in one pass. A codec with ``model.normalize`` (the
  default) embeds each sound divided by the sound's own RMS level, as ``audioenc encode`` does
  for a file: the embeddings do not depend on the sound's gain.

Other encoders plug in with :func:`register_loader`: write a :class:`HEARModule` subclass and a
predicate that recognises its files. The weak-label CRNN of the timing half does so
(:mod:`audioenc.timing.weak_hear`, registered when :mod:`audioenc.timing` is imported): this
module knows codecs only, and nothing here imports the timing half.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audioenc.codec_io import DEFAULT_CHUNK_FRAMES, StreamingEncoder, load_codec
from audioenc.config import ModelConfig
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel
from audioenc.models.conv import StreamableLSTM


@dataclass(frozen=True)
class TopSplit:
    """An encoder cut into frozen lower layers and a trainable copy of its top block(s), for light
    adaptation (:mod:`audioenc.timing.adapt`).

    Attributes:
        top: ``top(lower [B, D, F], lengths [B]) -> embeddings [B, E, F]``; a deep copy, so
            training it never changes the encoder.
        lower: mono audio ``[time]`` at the encoder's rate -> lower activations ``[D, F]`` (no grad).
        description: which layers are the top block(s).
    """

    top: nn.Module
    lower: Callable[[np.ndarray], np.ndarray]
    description: str


class HEARModule(nn.Module):
    """Base of every HEAR-wrapped encoder.

    Subclasses set :attr:`kind` (a short name: ``codec``, ``weak_crnn``), :attr:`sample_rate`
    (Hz), :attr:`frame_rate` (frames/s), :attr:`scene_embedding_size` and
    :attr:`timestamp_embedding_size`, and implement :meth:`frame_embeddings`; those whose top
    block can be unfrozen implement :meth:`split_top`.
    """

    kind: str = "hear"
    channel_policy: str | None = None
    """How the mono HEAR audio reaches a multichannel model (None: the model is mono)."""
    sample_rate: int
    frame_rate: float
    scene_embedding_size: int
    timestamp_embedding_size: int

    def split_top(self) -> TopSplit | None:
        """The encoder cut below its top block(s) (None: this encoder cannot be cut)."""
        return None

    def frame_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """Mono audio ``[n_sounds, n_samples]`` at :attr:`sample_rate` -> ``[n_sounds, frames, E]``."""
        raise NotImplementedError

    def timestamps_ms(self, n_sounds: int, n_frames: int, device: torch.device) -> torch.Tensor:
        """Frame-centre timestamps ``[n_sounds, n_frames]`` float32 in ms: ``(k + 1/2) · 1000 / frame_rate``."""
        centres = (torch.arange(n_frames, dtype=torch.float64) + 0.5) * (1000.0 / self.frame_rate)
        return centres.to(torch.float32).to(device).unsqueeze(0).expand(n_sounds, -1).contiguous()

    def _device(self) -> torch.device:
        parameter = next(self.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")


class CodecHEAR(HEARModule):
    """HEAR wrapper of a codec encoder: continuous latents at ``sample_rate / hop`` frames/s.

    ``[n, T]`` mono -> ``[n, ceil(T / hop), D]`` (D = ``config.dimension``). A ``C``-channel codec
    gets the mono signal repeated on all ``C`` channels (see the module docstring).

    Args:
        codec: a trained :class:`CodecModel` (put in eval mode here).
        config: its model configuration (kept for reports).
        batch_size: sounds encoded at once (bounds memory).
        chunk_frames: frames per streaming chunk for causal codecs.
    """

    kind = "codec"

    def __init__(self, codec: CodecModel, config: ModelConfig, batch_size: int = 16,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> None:
        super().__init__()
        if batch_size < 1 or chunk_frames < 1:
            raise UserError(f"CodecHEAR: batch_size={batch_size}, chunk_frames={chunk_frames}; both must be >= 1.")
        self.codec = codec.eval()
        self.config = config
        self.batch_size = batch_size
        self.chunk_frames = chunk_frames
        self.sample_rate = int(codec.sample_rate)
        self.frame_rate = float(codec.frame_rate)
        self.scene_embedding_size = int(codec.encoder.dimension)
        self.timestamp_embedding_size = int(codec.encoder.dimension)
        self.channel_policy = "mono" if codec.channels == 1 else f"mono repeated on all {codec.channels} channels"

    @torch.no_grad()
    def frame_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        device = self._device()
        hop = self.codec.hop_length
        chunk = self.chunk_frames * hop
        outputs = []
        for start in range(0, audio.shape[0], self.batch_size):
            sounds = audio[start : start + self.batch_size].to(device=device, dtype=torch.float32)
            sounds = sounds.unsqueeze(1).expand(-1, self.codec.channels, -1)
            # A normalising codec sees each sound at the level it would in `audioenc encode`: the whole sound's.
            stream = StreamingEncoder(self.codec, latents_only=True, scale=self.codec.input_scale(sounds))
            if not self.codec.encoder.causal:
                chunk = sounds.shape[-1]
            parts = []
            position = 0
            while sounds.shape[-1] - position > chunk:
                parts.append(stream.encode_chunk(sounds[..., position : position + chunk]))
                position += chunk
            parts.append(stream.encode_chunk(sounds[..., position:], final=True))
            outputs.append(torch.cat(parts, dim=-1).transpose(1, 2))
        return torch.cat(outputs, dim=0)


    def split_top(self) -> TopSplit:
        """The layers from the encoder's last LSTM on (LSTM, ELU, final conv), or the final ELU +
        conv without an LSTM; below them the convolutional blocks, run one-shot on the sound
        normalised as :meth:`frame_embeddings` normalises it."""
        layers = list(self.codec.encoder.model)
        lstm = [index for index, layer in enumerate(layers) if isinstance(layer, StreamableLSTM)]
        cut = lstm[-1] if lstm else len(layers) - 2
        lower_layers = nn.Sequential(*layers[:cut]).eval()
        names = [type(layer).__name__ for layer in layers[cut:]]

        def lower(audio: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                sounds = torch.from_numpy(audio)[None, None].expand(1, self.codec.channels, -1)
                sounds = sounds / self.codec.input_scale(sounds)
                return lower_layers(sounds)[0].numpy().astype(np.float32)

        top = _CausalTop(copy.deepcopy(nn.Sequential(*layers[cut:])))
        return TopSplit(top, lower, f"codec encoder layers {cut}-{len(layers) - 1} ({', '.join(names)})")


class _CausalTop(nn.Module):
    """Top layers of a causal encoder as a :class:`TopSplit` top: ``[B, W, F] -> [B, D, F]``."""

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, lower: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Causal layers: right padding of shorter clips never reaches their real frames.
        return self.layers(lower)


# ------------------------------------------------------------------------------------------------
# Loading: a list of (name, recognises(path), load(path, **kwargs)), tried in order.
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loader:
    """One kind of encoder file: ``matches(path)`` says whether ``load(path, **kwargs)`` handles it;
    ``options`` are the keyword arguments ``load`` accepts."""

    name: str
    matches: Callable[[Path], bool]
    load: Callable[..., HEARModule]
    options: tuple[str, ...] = ()


def _load_codec(path: Path, batch_size: int = 16, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> HEARModule:
    codec, config = load_codec(path)
    return CodecHEAR(codec, config, batch_size=batch_size, chunk_frames=chunk_frames)


def _is_codec(path: Path) -> bool:
    return path.is_dir() or path.suffix in (".safetensors", ".pt")


LOADERS: list[Loader] = [
    Loader("codec", _is_codec, _load_codec, ("batch_size", "chunk_frames")),
]


def register_loader(
    name: str, matches: Callable[[Path], bool], load: Callable[..., HEARModule], options: tuple[str, ...] = ()
) -> None:
    """Add an encoder kind, tried before the built-in ones (so it can claim files they would take).

    Args:
        name: shown in messages.
        matches: ``matches(path) -> bool``; must not raise for files of other kinds.
        load: ``load(path, **options) -> HEARModule``.
        options: keyword arguments ``load`` accepts (others are rejected by :func:`load_model`).
    """
    LOADERS.insert(0, Loader(name, matches, load, tuple(options)))


# ------------------------------------------------------------------------------------------------
# The HEAR functions
# ------------------------------------------------------------------------------------------------


def load_model(model_file_path: str = "", **kwargs) -> HEARModule:
    """Load an encoder for the HEAR API (see the module docstring for the accepted files).

    Args:
        model_file_path: codec export / checkpoint / run folder, or a file of a registered kind
            (e.g. a weak-CRNN folder once :mod:`audioenc.timing` is imported). Required:
            this package ships no pretrained weights, so an empty path is an error.
        **kwargs: ``device`` (e.g. 'cuda'; default CPU), and the loader's own options
            (``batch_size`` for both kinds, ``chunk_frames`` for codecs).

    Returns:
        A :class:`HEARModule` in eval mode with ``sample_rate`` (24000),
        ``scene_embedding_size`` and ``timestamp_embedding_size``.
    """
    if not model_file_path:
        raise UserError(
            "load_model needs a model file: a model_best.safetensors / checkpoint_*.pt / run folder from "
            "`audioenc train`, or a file of a registered kind such as a weak-CRNN folder (no pretrained weights ship "
            "with audioenc)."
        )
    path = Path(os.fspath(model_file_path))
    if not path.exists():
        raise FileNotFoundError(f"load_model: {path} does not exist.")
    device = kwargs.pop("device", None)
    for loader in LOADERS:
        if loader.matches(path):
            unknown = sorted(set(kwargs) - set(loader.options))
            if unknown:
                raise TypeError(
                    f"load_model: unknown option(s) {unknown} for a {loader.name} encoder; valid: "
                    f"device, {', '.join(loader.options)}."
                )
            model = loader.load(path, **kwargs).eval()
            return model.to(device) if device is not None else model
    raise UserError(
        f"load_model: {path} is not a known encoder file; known kinds: {', '.join(l.name for l in LOADERS)} "
        "(a codec .safetensors/.pt/run folder; a weak-CRNN folder once audioenc.timing is imported)."
    )


def _check_audio(audio: torch.Tensor, model: nn.Module) -> None:
    if not isinstance(model, HEARModule):
        raise TypeError(f"expected a model from audioenc.hear.load_model, got {type(model).__name__}.")
    if not isinstance(audio, torch.Tensor) or audio.dim() != 2 or audio.shape[1] < 1:
        shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
        raise UserError(
            f"HEAR audio must be a tensor [n_sounds, n_samples] of mono audio at {model.sample_rate} Hz; got {shape}."
        )
    if not torch.isfinite(audio).all():
        raise UserError("HEAR audio contains NaN or Inf samples.")


def get_timestamp_embeddings(audio: torch.Tensor, model: HEARModule) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame embeddings and their centre times.

    Args:
        audio: ``[n_sounds, n_samples]`` mono, at ``model.sample_rate`` Hz (not resampled here).
        model: from :func:`load_model`.

    Returns:
        ``(embeddings [n_sounds, n_timestamps, model.timestamp_embedding_size] float32,
        timestamps [n_sounds, n_timestamps] float32 in milliseconds at frame centres)``, on the
        audio's device.
    """
    _check_audio(audio, model)
    embeddings = model.frame_embeddings(audio).to(device=audio.device, dtype=torch.float32)
    timestamps = model.timestamps_ms(audio.shape[0], embeddings.shape[1], audio.device)
    return embeddings, timestamps


def get_scene_embeddings(audio: torch.Tensor, model: HEARModule) -> torch.Tensor:
    """Clip embeddings ``[n_sounds, model.scene_embedding_size]``: the mean over time of
    :func:`get_timestamp_embeddings`'s embeddings (audio as there)."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)


__all__ = [
    "CodecHEAR", "HEARModule", "LOADERS", "Loader", "TopSplit", "get_scene_embeddings",
    "get_timestamp_embeddings", "load_model", "register_loader",
]
