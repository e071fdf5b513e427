"""The HEAR API (https://hearbenchmark.com) over this package's encoders.

Module-level functions, exactly as HEAR names them::

    model = load_model("runs/train-1ch-small/model_best.safetensors")    # model.sample_rate == 48000
    embeddings, timestamps = get_timestamp_embeddings(audio, model)   # [n, F, E], [n, F] (ms)
    scene = get_scene_embeddings(audio, model)                        # [n, E]

Input audio is ``[n_sounds, n_samples]`` float, mono, at ``model.sample_rate``: **48 kHz** by
default, one of the rates HEAR accepts (16000, 22050, 44100, 48000; ``load_model(path,
sample_rate=16000)`` picks another). Every encoder here runs at **24 kHz**
(``model.model_sample_rate``), which HEAR does not accept, so the wrapper resamples the audio
to 24 kHz inside, with soxr ('HQ', :func:`audioenc.audio.io.resample`, the resampler the rest of
the package reads files with), then runs the encoder exactly as on 24 kHz audio. 48 kHz is the
default because it keeps the encoders' whole band (0-12 kHz; 16 kHz audio would stop at 8 kHz,
22.05 kHz at 11.025 kHz) and 48 -> 24 kHz is an exact 2:1 ratio; the price is HEAR's copy of
each task at 48 kHz (3x the 16 kHz one). ``sample_rate=None`` takes 24 kHz audio as is (no
resampling; not a HEAR rate, for callers that resample themselves). The resampler does not
shift time: sample ``i`` at the HEAR rate and sample ``j`` at 24 kHz are at ``i / rate`` and
``j / 24000`` s, and a 24 kHz sound is ``n_samples · 24000 / sample_rate`` samples long, rounded to
the nearest integer (halves up). Outputs are float32 on the audio's device.

Timestamps are in **milliseconds** at **frame centres** of the encoder's own frames, whatever
the HEAR rate: embedding frame ``k`` summarises the audio interval ``[k, k + 1) / frame_rate``
seconds, so its timestamp is ``(k + 1/2) · 1000 / frame_rate`` ms. Codec encoders run at 75
frames/s (hop 320 at 24 kHz): the first timestamp is 1000 / 75 / 2 = 6.667 ms and consecutive
ones are 13.333 ms apart; the number of frames is ``ceil(n_24k / 320)`` for ``n_24k`` samples at
24 kHz (a 2 s sound at 48 kHz: 150 frames). (A causal encoder's frame ``k`` has only seen samples
``< (k + 1) · 320``, i.e. it lags its centre by half a hop; the centre convention is HEAR's.) The
scene embedding is the mean over time of the timestamp embeddings.

Encoders, chosen by the file given to :func:`load_model`:

* a codec from ``audioenc train`` (``model_best.safetensors`` + ``.json``, ``checkpoint_*.pt`` or a
  run folder; see :func:`audioenc.models.files.load_codec`): the embeddings are the encoder's
  **continuous latents** before any quantizer, ``[n, ceil(n_24k / hop), D]``. Channel policy: HEAR
  audio is mono, so a multichannel codec receives the mono signal **repeated on every input
  channel** (an omnidirectional source at the array centre); say so when reporting such results.
  Causal codecs are run with :class:`audioenc.codec_io.StreamingEncoder` in chunks (exact, bounded
  memory for long clips); non-causal ones in one pass. A codec with ``model.normalize`` (the
  default) embeds each sound divided by the sound's own RMS level, as ``audioenc encode`` does
  for a file: the embeddings do not depend on the sound's gain.

Other encoders plug in with :func:`register_loader`: write a :class:`HEARModule` subclass and a
predicate that recognises its files. The weak-label CRNN of the timing half does so in
:mod:`audioenc.timing.weak_hear`, a module named in :data:`LOADER_MODULES`: :func:`load_model`
imports those modules by name before it looks at a file, so a CRNN folder loads without anyone
importing the timing half first, while this module, below the timing half, imports none of it.
Every kind gets the same ``sample_rate`` option and resampling.

The HEAR 2021 submission validator (``hearvalidator``) passes both modules, ``audioenc.hear`` on
a codec and ``audioenc.timing.weak_hear`` on a CRNN folder (``tests/test_hear_validator.py``).
"""

from __future__ import annotations

import copy
import importlib
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audioenc.audio.io import resample
from audioenc.codec_io import DEFAULT_CHUNK_FRAMES, StreamingEncoder
from audioenc.config import ModelConfig
from audioenc.core.frames import frame_centres
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel
from audioenc.models.conv import StreamableLSTM
from audioenc.models.files import load_codec
from audioenc.validation import check_number

HEAR_SAMPLE_RATES = (16000, 22050, 44100, 48000)
"""The input rates HEAR 2021 accepts (``hearvalidator``'s ``ACCEPTABLE_SAMPLE_RATE``)."""

DEFAULT_HEAR_SAMPLE_RATE = 48000
""":func:`load_model`'s default ``sample_rate``: keeps the 24 kHz encoders' whole band, 2:1 to 24 kHz."""

PLAUSIBLE_SAMPLE_RATES = (4000, 768000)
"""The input rates :meth:`HEARModule.set_sample_rate` accepts, Hz: from below telephone audio to the
fastest converters sold. Outside them a rate is a mistake (``sample_rate=1`` would make the resampler
stretch every sample into 24000, minutes of work for a garbage result)."""


@dataclass(frozen=True)
class TopSplit:
    """An encoder cut into frozen lower layers and a trainable copy of its top block(s), for light
    adaptation (:mod:`audioenc.timing.adapt`).

    Attributes:
        top: ``top(lower [B, D, F], lengths [B]) -> embeddings [B, E, F]``; a deep copy, so
            training it never changes the encoder.
        lower: mono audio ``[time]`` at the wrapper's ``sample_rate`` (resampled inside as the HEAR
            functions resample) -> lower activations ``[D, F]`` (no grad).
        description: which layers are the top block(s).
    """

    top: nn.Module
    lower: Callable[[np.ndarray], np.ndarray]
    description: str


def one_top_block(top_layers: int, what: str) -> None:
    """Refuse ``top_layers != 1`` for an encoder whose trainable top is one fixed block (``what``)."""
    if top_layers != 1:
        raise UserError(
            f"probe.adapt_top_layers={top_layers}: {what} is one block, so only 1 can be unfrozen; set it to 1."
        )


class HEARModule(nn.Module):
    """Base of every HEAR-wrapped encoder.

    Subclasses set :attr:`kind` (a short name: ``codec``, ``weak_crnn``), :attr:`model_sample_rate`
    and :attr:`sample_rate` (both the encoder's own rate, Hz; :func:`load_model` then sets
    :attr:`sample_rate` to the HEAR rate with :meth:`set_sample_rate`), :attr:`frame_rate`
    (frames/s), :attr:`scene_embedding_size` and :attr:`timestamp_embedding_size`, and implement
    :meth:`frame_embeddings`; those whose top block can be unfrozen implement :meth:`split_top`.
    A subclass that sets only :attr:`sample_rate` runs at that rate (it becomes
    :attr:`model_sample_rate` when the HEAR rate is set).
    """

    kind: str = "hear"
    channel_policy: str | None = None
    """How the mono HEAR audio reaches a multichannel model (None: the model is mono)."""
    gain_invariant: bool = False
    """Whether the embeddings ignore each sound's gain (a normalising codec): then :meth:`to_model_rate`
    may bring loud sounds down by an exact power of two before the float32 resampler and level see them."""
    sample_rate: int
    """Hz of the audio the HEAR functions take (the HEAR rate; resampled to :attr:`model_sample_rate`)."""
    model_sample_rate: int | None = None
    """Hz the encoder itself runs at (None: :attr:`sample_rate`, no resampling)."""
    frame_rate: float
    scene_embedding_size: int
    timestamp_embedding_size: int

    def split_top(self, top_layers: int = 1) -> TopSplit | None:
        """The encoder cut below its top ``top_layers`` block(s) (None: this encoder cannot be cut; a
        :class:`~audioenc.errors.UserError` when it cannot be cut there)."""
        return None

    def frame_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """Mono audio ``[n_sounds, n_samples]`` at :attr:`model_sample_rate` (already resampled by
        :meth:`to_model_rate`) -> ``[n_sounds, frames, E]``."""
        raise NotImplementedError

    def set_sample_rate(self, rate: int | None) -> HEARModule:
        """Take HEAR audio at ``rate`` Hz from now on (None: the encoder's own rate); returns self.

        The encoder is unchanged: :meth:`to_model_rate` resamples ``rate`` -> :attr:`model_sample_rate`.
        """
        if self.model_sample_rate is None:
            self.model_sample_rate = int(self.sample_rate)
        given = self.model_sample_rate if rate is None else rate
        low, high = PLAUSIBLE_SAMPLE_RATES
        check_number(
            "sample_rate",
            _as_index(given),
            minimum=low,
            maximum=high,
            integer=True,
            hint=f"Give the HEAR input rate in Hz (HEAR accepts {', '.join(map(str, HEAR_SAMPLE_RATES))}), "
            f"or None for the encoder's own {self.model_sample_rate} Hz.",
        )
        self.sample_rate = int(given)
        return self

    def to_model_rate(self, audio: torch.Tensor) -> torch.Tensor:
        """HEAR audio ``[n_sounds, n]`` at :attr:`sample_rate` -> float32 ``[n_sounds, m]`` at
        :attr:`model_sample_rate` on the audio's device, ``m = n · model_sample_rate / sample_rate``
        rounded to the nearest integer, halves up (the same tensor when the rates agree).

        soxr 'HQ' (:func:`audioenc.audio.io.resample`; one call, each sound a channel of its own,
        resampled independently), on the CPU: linear phase with its delay removed, so sample 0
        stays at time 0 (no shift of the timestamps); the sound is taken as zero outside its span.
        A :attr:`gain_invariant` encoder's sounds that peak above 1 are first divided by a power of two
        to a peak in (0.5, 1] (exact; see :func:`_within_float32_reach`).
        """
        if self.gain_invariant:
            audio = _within_float32_reach(audio)
        own = self.model_sample_rate or self.sample_rate
        if own == self.sample_rate:
            return audio
        sounds = audio.detach().to(device="cpu", dtype=torch.float32).numpy()
        return torch.from_numpy(resample(sounds, int(self.sample_rate), int(own))).to(audio.device)

    def clip_to_model_rate(self, audio: np.ndarray) -> np.ndarray:
        """One mono clip ``[n]`` at :attr:`sample_rate` -> float32 ``[m]`` at :attr:`model_sample_rate`
        (:meth:`to_model_rate` on a NumPy clip)."""
        return self.to_model_rate(torch.from_numpy(np.asarray(audio, dtype=np.float32))[None])[0].numpy()

    def timestamps_ms(self, n_sounds: int, n_frames: int, device: torch.device) -> torch.Tensor:
        """Frame-centre timestamps ``[n_sounds, n_frames]`` float32 in ms: ``(k + 1/2) · 1000 / frame_rate``."""
        centres = torch.from_numpy(frame_centres(n_frames, self.frame_rate, milliseconds=True))
        return centres.to(torch.float32).to(device).unsqueeze(0).expand(n_sounds, -1).contiguous()

    def _device(self) -> torch.device:
        parameter = next(self.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")


def _within_float32_reach(audio: torch.Tensor) -> torch.Tensor:
    """Each sound of ``audio`` ``[n, T]`` that peaks above 1 divided by the power of two that brings
    its peak into (0.5, 1]; the others (and the tensor itself when none is loud) unchanged.

    The resampler and the codec's level work in float32: a sound at 1e19 overflows the level's
    squares (it would embed as silence) and one at 1e37 overflows the resampler (NaN). For an
    encoder that divides each sound by its own level the gain does not matter, and a power of two
    changes no sample's mantissa, so the sound embeds as itself at a sane level.
    """
    peaks = audio.detach().abs().amax(dim=1)
    if audio.shape[1] == 0 or not bool((peaks > 1).any()):
        return audio
    exponents = torch.where(peaks > 1, torch.frexp(peaks).exponent, 0)
    return torch.ldexp(audio, -exponents[:, None])


def _as_index(value: object) -> object:
    """``value`` as a Python int when it is an integer of any kind (NumPy's too), else unchanged, so
    that :func:`check_number` judges ``np.int64(16000)`` as the 16000 it is and a bool as no number."""
    if isinstance(value, bool):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


class CodecHEAR(HEARModule):
    """HEAR wrapper of a codec encoder: continuous latents at ``model_sample_rate / hop`` frames/s.

    ``[n, T]`` mono at the codec's rate -> ``[n, ceil(T / hop), D]`` (D = ``config.dimension``). A
    ``C``-channel codec gets the mono signal repeated on all ``C`` channels (see the module
    docstring). Built here it takes audio at the codec's own rate; :func:`load_model` sets the
    HEAR rate (48 kHz by default).

    Args:
        codec: a trained :class:`CodecModel` (put in eval mode here).
        config: its model configuration (kept for reports).
        batch_size: sounds encoded at once (bounds memory).
        chunk_frames: frames per streaming chunk for causal codecs.
    """

    kind = "codec"

    def __init__(
        self, codec: CodecModel, config: ModelConfig, batch_size: int = 16, chunk_frames: int = DEFAULT_CHUNK_FRAMES
    ) -> None:
        super().__init__()
        check_number(
            "batch_size", _as_index(batch_size), minimum=1, integer=True, hint="Give how many sounds to encode at once."
        )
        check_number(
            "chunk_frames",
            _as_index(chunk_frames),
            minimum=1,
            integer=True,
            hint="Give how many frames a causal codec encodes per streaming chunk.",
        )
        self.codec = codec.eval()
        self.config = config
        self.batch_size = int(batch_size)
        self.chunk_frames = int(chunk_frames)
        self.model_sample_rate = int(codec.sample_rate)
        self.sample_rate = self.model_sample_rate
        self.frame_rate = float(codec.frame_rate)
        self.scene_embedding_size = int(codec.encoder.dimension)
        self.timestamp_embedding_size = int(codec.encoder.dimension)
        self.channel_policy = "mono" if codec.channels == 1 else f"mono repeated on all {codec.channels} channels"
        self.gain_invariant = bool(codec.normalize)

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

    def split_top(self, top_layers: int = 1) -> TopSplit:
        """The layers from the encoder's last LSTM on (LSTM, ELU, final conv), or the final ELU +
        conv without an LSTM; below them the convolutional blocks, run one-shot on the sound
        (resampled and) normalised as the HEAR path does it. One top block: ``top_layers`` must be 1."""
        one_top_block(top_layers, "the codec encoder's top block (its last LSTM, ELU and final convolution)")
        layers = list(self.codec.encoder.model)
        lstm = [index for index, layer in enumerate(layers) if isinstance(layer, StreamableLSTM)]
        cut = lstm[-1] if lstm else len(layers) - 2
        lower_layers = nn.Sequential(*layers[:cut]).eval()
        names = [type(layer).__name__ for layer in layers[cut:]]

        def lower(audio: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                sounds = torch.from_numpy(self.clip_to_model_rate(audio))[None, None].expand(1, self.codec.channels, -1)
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


LOADER_MODULES: tuple[str, ...] = ("audioenc.timing.weak_hear", "audioenc.timing.pretrained.hf")
"""Modules that register an encoder kind with :func:`register_loader` when imported; :func:`load_model`
imports them by name (the timing half sits above this module, so no import statement may name it)."""


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
            (e.g. a weak-CRNN folder, :data:`LOADER_MODULES`). Required:
            this package ships no pretrained weights, so an empty path is an error.
        **kwargs: ``sample_rate``: the rate HEAR audio arrives at, resampled inside to the
            encoder's own (default 48000; HEAR accepts 16000, 22050, 44100, 48000; None: the
            encoder's own 24000, no resampling); ``device`` (e.g. 'cuda'; default CPU); and the
            loader's own options (``batch_size`` for both kinds, ``chunk_frames`` for codecs).

    Returns:
        A :class:`HEARModule` in eval mode with ``sample_rate`` (48000 unless chosen),
        ``model_sample_rate`` (24000), ``scene_embedding_size`` and ``timestamp_embedding_size``.
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
    for module in LOADER_MODULES:
        importlib.import_module(module)
    device = kwargs.pop("device", None)
    sample_rate = kwargs.pop("sample_rate", DEFAULT_HEAR_SAMPLE_RATE)
    for loader in LOADERS:
        if loader.matches(path):
            unknown = sorted(set(kwargs) - set(loader.options))
            if unknown:
                raise TypeError(
                    f"load_model: unknown option(s) {unknown} for a {loader.name} encoder; valid: "
                    f"device, sample_rate, {', '.join(loader.options)}."
                )
            model = loader.load(path, **kwargs).eval().set_sample_rate(sample_rate)
            return model.to(device) if device is not None else model
    raise UserError(
        f"load_model: {path} is not a known encoder file; known kinds: {', '.join(loader.name for loader in LOADERS)} "
        "(a codec .safetensors/.pt/run folder; a weak-CRNN folder)."
    )


def _check_audio(audio: torch.Tensor, model: nn.Module) -> None:
    """Refuse what the encoders cannot embed faithfully: they take real float samples that fit float32."""
    if not isinstance(model, HEARModule):
        raise TypeError(f"expected a model from audioenc.hear.load_model, got {type(model).__name__}.")
    if not isinstance(audio, torch.Tensor) or audio.dim() != 2 or audio.shape[1] < 1:
        shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
        raise UserError(
            f"HEAR audio must be a tensor [n_sounds, n_samples] of mono audio at {model.sample_rate} Hz; got {shape}."
        )
    if audio.is_complex():
        raise UserError(
            f"HEAR audio is complex ({audio.dtype}); the encoders take real samples: pass the real "
            "signal (e.g. audio.real if the imaginary part is zero)."
        )
    if not audio.is_floating_point():
        raise UserError(
            f"HEAR audio is {audio.dtype}; the encoders take float samples in [-1, 1]: convert it "
            "(e.g. int16 PCM: audio.float() / 32768)."
        )
    if not torch.isfinite(audio).all():
        raise UserError("HEAR audio contains NaN or Inf samples.")


def _empty_embeddings(audio: torch.Tensor, model: HEARModule) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs for ``n_sounds = 0``: the frame count of one silent sound of the batch's length,
    zero sounds of it (so a caller's last, empty batch concatenates with the others)."""
    embeddings, timestamps = get_timestamp_embeddings(audio.new_zeros(1, audio.shape[1]), model)
    return embeddings[:0], timestamps[:0]


def _check_embeddings(embeddings: torch.Tensor, audio: torch.Tensor) -> None:
    """Refuse NaN/Inf embeddings: finite audio that the encoder overflows on (a codec that does not
    normalise, fed samples far outside [-1, 1]) has no embedding to return."""
    broken = ~torch.isfinite(embeddings).flatten(1).all(dim=1)
    if broken.any():
        sounds = broken.nonzero().flatten().tolist()
        peak = float(audio[sounds].abs().max())
        raise UserError(
            f"the encoder gave NaN/Inf embeddings for sound(s) {sounds[:5]} (peak sample {peak:.3g}); "
            "HEAR audio is expected in [-1, 1]: scale it down."
        )


def get_timestamp_embeddings(audio: torch.Tensor, model: HEARModule) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame embeddings and their centre times.

    Args:
        audio: ``[n_sounds, n_samples]`` mono, at ``model.sample_rate`` Hz (the HEAR rate; resampled
            here to ``model.model_sample_rate`` when they differ).
        model: from :func:`load_model`.

    Returns:
        ``(embeddings [n_sounds, n_timestamps, model.timestamp_embedding_size] float32,
        timestamps [n_sounds, n_timestamps] float32 in milliseconds at frame centres)``, on the
        audio's device. No sounds (``n_sounds = 0``) give zero embeddings of the frame count
        ``n_samples`` has.

    Raises:
        ValueError (:class:`~audioenc.errors.UserError`): audio that is not ``[n_sounds, n_samples]``,
        not real float, not finite, or that the encoder overflows on.
    """
    _check_audio(audio, model)
    if audio.shape[0] == 0:
        return _empty_embeddings(audio, model)
    embeddings = model.frame_embeddings(model.to_model_rate(audio)).to(device=audio.device, dtype=torch.float32)
    _check_embeddings(embeddings, audio)
    timestamps = model.timestamps_ms(audio.shape[0], embeddings.shape[1], audio.device)
    return embeddings, timestamps


def get_scene_embeddings(audio: torch.Tensor, model: HEARModule) -> torch.Tensor:
    """Clip embeddings ``[n_sounds, model.scene_embedding_size]``: the mean over time of
    :func:`get_timestamp_embeddings`'s embeddings (audio as there)."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)


__all__ = [
    "CodecHEAR",
    "DEFAULT_HEAR_SAMPLE_RATE",
    "HEAR_SAMPLE_RATES",
    "HEARModule",
    "LOADERS",
    "Loader",
    "TopSplit",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "load_model",
    "one_top_block",
    "register_loader",
]
