"""The ``transformers`` families offered as frozen encoders, each a :class:`~.registry.Family` entry.

Every number below comes from the snapshot: its ``config.json``, its ``preprocessor_config.json``
(or the feature extractor ``transformers`` builds from the config when that file is absent), or
the loaded layers themselves (kernel, stride, padding of the convolutions that make the frames).

Families, with the numbers of their stock checkpoints (each derived from the snapshot as above):

* **wav2vec2, hubert, wavlm** (16 kHz): the conv feature encoder, stride 320 (50 frames/s), field
  400 samples (25 ms), ``t_j = (320 j + 200) / 16000`` s, ``floor((T - 400) / 320) + 1`` frames;
  default layer: the middle hidden state.
* **whisper**, encoder only (16 kHz): log-mel (n_fft 400, hop 160, centred), conv k3 s1, conv k3 s2:
  stride 320 (50 frames/s), field 1040 samples (65 ms), ``t_j = 20 j`` ms; a 30 s window padded with
  silence, ``ceil(T / 320)`` frames kept; default: the last hidden state.
* **audio-spectrogram-transformer** (AST, 16 kHz): Kaldi fbank (25 ms every 10 ms), 16 x 16 patches
  of time stride 10: stride 1600 (10 frames/s), field 2800 samples (175 ms), ``t_j = 100 j + 87.5``
  ms; a 10.255 s window (1024 fbank frames); default: the last hidden state.
* **encodec** (24 kHz, hop 320: 75 frames/s), **dac** (44.1 kHz, hop 512: 86.1 frames/s), **mimi**
  (24 kHz, ``sampling_rate / frame_rate`` = 1920: 12.5 frames/s): ``ceil(T / hop)`` frames; default:
  the latents.

Hidden states: ``hidden_states[0]`` is the input to the first transformer layer (the projected
conv features plus positions), ``hidden_states[N]`` the output of layer ``N``, exactly as
``model(..., output_hidden_states=True).hidden_states`` returns them. AST's states are patch tokens
over a (frequency, time) grid: the two leading tokens (CLS, distillation) are dropped and each
time column's frequency patches averaged, giving one frame per column.

Codec frames: a codec frame ``j`` summarises the hop ``[j, j + 1) · hop`` of the padded clip, the
convention of audioenc's own codec (:mod:`audioenc.hear`). No field is stated for codecs: an
LSTM (EnCodec) or a transformer (Mimi) sees the window's past, the 24 kHz EnCodec's and Mimi's
convolutions are causal (their field ends at the hop's end), and DAC's finite field is not derived
here. ``quantized`` latents are the sum of the first
``codebooks`` residual codewords; a bandwidth of ``b`` kbps allows ``floor(1000 b / (frame_rate ·
log2(codebook_size)))`` codebooks (EnCodec's own rule, applied to DAC and Mimi alike).

Light adaptation (:meth:`HiddenStateFamily.split_layers`): the top ``k`` transformer layers below the
chosen hidden state become a trainable copy (:mod:`audioenc.timing.pretrained.transformer_top`); the
frozen path's read-out (:class:`~.transformer_top.FrameReadout`) is the one the copy uses, so both
give the same frames. ``layer="all"`` adapts the top ``k`` layers of the stack (states ``L-k .. L-1``
recomputed, the states below carried frozen, the probe's layer weights trained on) where the layers
run on the clip's own frames (wav2vec2, HuBERT, WavLM); Whisper and AST attend over a padded window,
so their frozen states would have to be carried at every position of it (5x the frames for a 6 s
clip in Whisper's 30 s), and ``all`` is refused there with the single-layer alternative. Codecs
(EnCodec, DAC, Mimi) are refused: their top blocks (an LSTM or a transformer over the padded clip,
strided convolutions) are not cut here.
"""

from __future__ import annotations

import copy
import importlib
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from audioenc.errors import UserError
from audioenc.hear import TopSplit
from audioenc.timing.pretrained.geometry import hops, waveform
from audioenc.timing.pretrained.registry import Family, LayerChoice, register_family
from audioenc.timing.pretrained.transformer_top import (
    FrameReadout,
    LayerStack,
    MaskedLayerStack,
    PatchColumnReadout,
    TransformerTop,
    WavLMLayerStack,
    plan_cut,
)

MIDDLE_LAYER_REASON = (
    "the middle hidden state: layer-wise studies of wav2vec2, HuBERT and WavLM (Pasad et al. 2021; "
    "SUPERB's learned layer weights, Chen et al. 2022) find phonetic and word content peaking in the "
    "middle layers while the last ones specialise to the pretraining target; layer=all keeps every "
    "state for a learned weighted sum (SUPERB's convention)"
)


def _extractor(transformers: Any, name: str, folder: Path, build: dict) -> Any:
    """The snapshot's ``preprocessor_config.json`` as ``transformers.<name>``, or one built from ``build``."""
    cls = getattr(transformers, name)
    if (folder / "preprocessor_config.json").is_file():
        return cls.from_pretrained(folder, local_files_only=True)
    return cls(**build)


def _numpy_sounds(audio: torch.Tensor) -> list[np.ndarray]:
    """``[n, L]`` -> n float32 NumPy sounds (the feature extractors take NumPy)."""
    return list(audio.detach().to("cpu", torch.float32).numpy())


def _layer_index(layer: object) -> int | None:
    """``layer`` as a hidden-state index when it is a whole number (int or digits), else None."""
    if isinstance(layer, bool):
        return None
    if isinstance(layer, int):
        return layer
    if isinstance(layer, str) and layer.strip().lstrip("-").isdigit():
        return int(layer.strip())
    return None


class HiddenStateFamily(Family):
    """A transformer encoder: ``layer`` = N takes hidden state N, ``layer`` = ``all`` every state,
    side by side as ``[frames, L · E]`` (group ``l`` = columns ``l·E .. (l+1)·E - 1`` = state ``l``).

    Subclasses implement :meth:`window_states` (the model's hidden states over the positions its
    layers attend over) and :meth:`encoder_layers`, and set :attr:`readout` when frames are not the
    first positions."""

    readout: FrameReadout = FrameReadout()
    """Positions -> frames (every hidden state, frozen path and adapted top alike)."""
    states_are_frames: ClassVar[bool] = False
    """Whether the layers run on exactly the clip's frames (no padded window): then ``layer="all"`` adapts."""

    def layer_count(self) -> int:
        return int(self.transformer_layers()) + 1

    def transformer_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    def default_index(self) -> int:
        """The default hidden state (the last; speech SSL families override)."""
        return self.layer_count() - 1

    def choose(self, layer: object, bandwidth: float | None) -> LayerChoice:
        count = self.layer_count()
        if bandwidth is not None:
            raise UserError(f"bandwidth={bandwidth}: a bandwidth applies to codecs, not to a {self.name} model.")
        if layer is None:
            return LayerChoice("hidden", (self.default_index(),), is_default=True)
        if isinstance(layer, str) and layer.strip().lower() == "all":
            return LayerChoice("hidden", tuple(range(count)))
        index = _layer_index(layer)
        if index is None or not 0 <= index < count:
            raise UserError(
                f"layer={layer!r}: this {self.name} model has hidden states 0-{count - 1} (0 = the input to the first "
                "transformer layer); give one of them or 'all'."
            )
        return LayerChoice("hidden", (index,))

    def embed(self, audio: torch.Tensor, choice: LayerChoice) -> torch.Tensor:
        states = self.hidden_states(audio)
        return torch.cat([states[index] for index in choice.indices], dim=-1)

    def hidden_states(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All ``layer_count()`` hidden states ``[n, geometry.frames(L), E]`` of one window ``[n, L]``."""
        frames = self.geometry.frames(audio.shape[-1])
        return tuple(self.readout(state, frames) for state in self.window_states(audio))

    def window_states(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All hidden states of one window ``[n, L]`` over the positions the layers attend over ``[n, P, E]``."""
        raise NotImplementedError

    def encoder_layers(self) -> nn.ModuleList:
        """The transformer layers; layer ``i`` (0-based) makes hidden state ``i + 1``."""
        raise NotImplementedError

    def layer_stack(self, first: int, stop: int) -> LayerStack:
        """Trainable copies of layers ``first .. stop - 1``, run as the model runs them."""
        return LayerStack([copy.deepcopy(layer) for layer in self.encoder_layers()[first:stop]])

    def last_state_norm(self) -> nn.Module | None:
        """The norm the model applies to its last hidden state only (None: the last layer's output is it)."""
        return None

    def split_layers(self, choice: LayerChoice, top_layers: int) -> TopSplit:
        """The top ``top_layers`` layers below ``choice`` as a trainable copy; ``lower`` takes one window of
        mono audio at the model's rate ``[T]`` (NumPy) to the lower activations (module docstring of
        :mod:`~audioenc.timing.pretrained.transformer_top`)."""
        cut = plan_cut(self.name, choice.indices, top_layers, self.layer_count(), self.states_are_frames)
        stack = self.layer_stack(cut.cut, cut.last_computed)
        norm = self.last_state_norm()
        norm = None if norm is None else copy.deepcopy(norm)
        # the copies come from the frozen model: their own weights train, anything they borrow stays frozen
        for trainable in (stack.layers, norm):
            if trainable is not None:
                trainable.requires_grad_(True)
        top = TransformerTop(stack, norm, copy.deepcopy(self.readout), cut, self.embedding_size)

        def lower(audio: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                sound = torch.from_numpy(np.asarray(audio, dtype=np.float32))[None].to(self._device())
                states = self.window_states(sound)
                positions = states[cut.cut].shape[1]
                count = torch.zeros(1, positions, device=sound.device)
                count[0, : self.geometry.frames(sound.shape[-1])] = 1.0
                rows = [states[index][0].T for index in cut.carried] + [count]
                return torch.cat(rows).cpu().numpy().astype(np.float32)

        return TopSplit(top, lower, cut.describe(self.name))

    def _device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")


class SpeechSSLFamily(HiddenStateFamily):
    """wav2vec2-style self-supervised speech models: a convolutional feature encoder on the raw
    waveform (``conv_kernel``, ``conv_stride``, no padding) and transformer layers above it."""

    extractor_class = "Wav2Vec2FeatureExtractor"
    unused_weights = ("masked_spec_embed",)
    states_are_frames = True
    receptive_field_note = (
        "the convolutional feature encoder's field; the transformer layers above attend over the whole window"
    )

    def __init__(self, model: Any, config: Any, extractor: Any) -> None:
        super().__init__(model, config, extractor)
        self.sample_rate = int(extractor.sampling_rate)
        geometry = waveform(self.sample_rate)
        for kernel, stride in zip(config.conv_kernel, config.conv_stride):
            geometry = geometry.then(int(kernel), int(stride))
        self.geometry = geometry
        self.max_samples = None
        self.embedding_size = int(config.hidden_size)
        self.default_reason = MIDDLE_LAYER_REASON

    @classmethod
    def feature_extractor(cls, transformers: Any, folder: Path, config: Any) -> Any:
        return _extractor(transformers, cls.extractor_class, folder, {})

    def default_index(self) -> int:
        return self.transformer_layers() // 2

    def window_states(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # the extractor's per-sound normalisation (do_normalize) exactly as the model was trained with it
        inputs = self.extractor(_numpy_sounds(audio), sampling_rate=self.sample_rate, return_tensors="pt")
        return self.model(inputs["input_values"].to(audio.device), output_hidden_states=True).hidden_states

    def encoder_layers(self) -> nn.ModuleList:
        return self.model.encoder.layers

    def layer_stack(self, first: int, stop: int) -> LayerStack:
        # a padded batch masks attention as the model masks it (the mask transformers builds for it)
        make_mask = importlib.import_module("transformers.masking_utils").create_bidirectional_mask
        layers = [copy.deepcopy(layer) for layer in self.encoder_layers()[first:stop]]
        return MaskedLayerStack(layers, copy.deepcopy(self.config), make_mask)


@register_family
class Wav2Vec2Family(SpeechSSLFamily):
    name = "wav2vec2"
    model_types = ("wav2vec2",)
    model_class = "Wav2Vec2Model"


@register_family
class HubertFamily(SpeechSSLFamily):
    name = "hubert"
    model_types = ("hubert",)
    model_class = "HubertModel"


@register_family
class WavLMFamily(SpeechSSLFamily):
    name = "wavlm"
    model_types = ("wavlm",)
    model_class = "WavLMModel"

    def layer_stack(self, first: int, stop: int) -> LayerStack:
        # relative position bias from layer 0's attention, shared by every layer
        layers = self.encoder_layers()
        source = None if first == 0 else copy.deepcopy(layers[0].attention)
        return WavLMLayerStack([copy.deepcopy(layer) for layer in layers[first:stop]], source)


@register_family
class WhisperFamily(HiddenStateFamily):
    """Whisper's encoder: log-mel of a window padded to ``n_samples`` (30 s), two convolutions (the
    second of stride 2), positions, transformer layers; frames cropped to those whose centre lies
    in the audio."""

    name = "whisper"
    model_types = ("whisper",)
    model_class = "WhisperModel"
    unused_weights = ("decoder.",)
    receptive_field_note = (
        "the two convolutions over log-mel frames; the transformer layers attend over the whole window, "
        "padded with silence to the model's length"
    )

    def __init__(self, model: Any, config: Any, extractor: Any) -> None:
        encoder = model.get_encoder()  # the decoder is never run: only the encoder is kept
        super().__init__(encoder, config, extractor)
        self.sample_rate = int(extractor.sampling_rate)
        geometry = waveform(self.sample_rate).then(extractor.n_fft, extractor.hop_length, extractor.n_fft // 2)
        for conv in (encoder.conv1, encoder.conv2):
            geometry = geometry.then(conv.kernel_size[0], conv.stride[0], conv.padding[0])
        mel_frames = config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]
        if extractor.nb_max_frames != mel_frames or extractor.feature_size != config.num_mel_bins:
            raise UserError(
                f"whisper snapshot: the feature extractor makes {extractor.nb_max_frames} frames of "
                f"{extractor.feature_size} mel bins, the model takes {mel_frames} of {config.num_mel_bins}; "
                "fix preprocessor_config.json (chunk_length, feature_size) to match config.json."
            )
        self.geometry = geometry.counted("centres_inside", int(config.max_source_positions))
        self.max_samples = int(extractor.n_samples)
        self.embedding_size = int(config.d_model)
        self.default_reason = (
            "the last hidden state (after the final layer norm): the only one Whisper's decoder reads, "
            "trained end to end for transcription"
        )

    @classmethod
    def feature_extractor(cls, transformers: Any, folder: Path, config: Any) -> Any:
        return _extractor(transformers, "WhisperFeatureExtractor", folder, {"feature_size": config.num_mel_bins})

    def transformer_layers(self) -> int:
        return int(self.config.encoder_layers)

    def window_states(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # frames: the first positions of the padded window (the default read-out crops them)
        features = self.extractor(
            _numpy_sounds(audio), sampling_rate=self.sample_rate, padding="max_length", return_tensors="pt"
        )["input_features"]
        return self.model(features.to(audio.device), output_hidden_states=True).hidden_states

    def encoder_layers(self) -> nn.ModuleList:
        return self.model.layers

    def last_state_norm(self) -> nn.Module:
        # transformers returns the encoder's output, after its final layer norm, as the last hidden state
        return self.model.layer_norm


@register_family
class ASTFamily(HiddenStateFamily):
    """Audio Spectrogram Transformer: Kaldi filterbank frames (25 ms every 10 ms, the feature
    extractor's) padded to ``max_length``, 16x16 patches with strides (``frequency_stride``,
    ``time_stride``), CLS + distillation tokens; one frame per patch column (frequency patches
    averaged), cropped to the columns whose centre lies in the audio."""

    name = "ast"
    model_types = ("audio-spectrogram-transformer",)
    model_class = "ASTModel"
    receptive_field_note = (
        "one column of filterbank patches; the transformer layers attend over the whole window, "
        "padded to the model's length"
    )

    def __init__(self, model: Any, config: Any, extractor: Any) -> None:
        super().__init__(model, config, extractor)
        self.sample_rate = int(extractor.sampling_rate)
        # Kaldi's fbank defaults, which ASTFeatureExtractor uses (not in any config): 25 ms frames every 10 ms.
        frame_length, frame_shift = round(0.025 * self.sample_rate), round(0.010 * self.sample_rate)
        projection = model.embeddings.patch_embeddings.projection  # Conv2d over [frequency, time]
        self.patch_grid = tuple(int(size) for size in model.embeddings.get_shape(config))
        self.readout = PatchColumnReadout(*self.patch_grid)
        geometry = waveform(self.sample_rate).then(frame_length, frame_shift)
        geometry = geometry.then(projection.kernel_size[1], projection.stride[1])
        if extractor.max_length != config.max_length or extractor.num_mel_bins != config.num_mel_bins:
            raise UserError(
                f"AST snapshot: the feature extractor makes {extractor.max_length} frames of "
                f"{extractor.num_mel_bins} mel bins, the model takes {config.max_length} of {config.num_mel_bins}; "
                "fix preprocessor_config.json to match config.json."
            )
        self.geometry = geometry.counted("centres_inside", self.patch_grid[1])
        self.max_samples = (int(config.max_length) - 1) * frame_shift + frame_length
        self.embedding_size = int(config.hidden_size)
        self.default_reason = "the last hidden state: the one AST's AudioSet classification head was trained on"

    @classmethod
    def feature_extractor(cls, transformers: Any, folder: Path, config: Any) -> Any:
        build = {"num_mel_bins": config.num_mel_bins, "max_length": config.max_length}
        return _extractor(transformers, "ASTFeatureExtractor", folder, build)

    def window_states(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # tokens, not frames: the read-out (PatchColumnReadout) averages each time column's patches
        values = self.extractor(_numpy_sounds(audio), sampling_rate=self.sample_rate, return_tensors="pt")
        return self.model(values["input_values"].to(audio.device), output_hidden_states=True).hidden_states

    def encoder_layers(self) -> nn.ModuleList:
        return self.model.layers


class CodecFamily(Family):
    """A neural codec's encoder: ``layer`` = ``latent`` (continuous latents, the default) or
    ``quantized`` (the residual quantizer's output at ``bandwidth`` kbps; default: every codebook)."""

    unused_weights = ("decoder.",)
    receptive_field_note = "a frame stands for its hop of the padded clip; the encoder sees the window's past"

    def __init__(self, model: Any, config: Any, extractor: Any, hop: int) -> None:
        super().__init__(model, config, extractor)
        self.sample_rate = int(config.sampling_rate)
        self.geometry = hops(self.sample_rate, hop)
        self.max_samples = None
        self.embedding_size = int(config.hidden_size)
        self.channels = int(getattr(config, "audio_channels", 1))
        self.default_reason = (
            "latent: the encoder's continuous output, before any quantization error; layer=quantized gives "
            "what the codes carry"
        )

    def codebook_kbps(self) -> float:
        """kbps one codebook carries: ``frame_rate · log2(codebook_size) / 1000``."""
        return self.geometry.frame_rate * math.log2(self.config.codebook_size) / 1000

    def max_codebooks(self) -> int:
        return int(self.config.num_quantizers)

    def min_codebooks(self) -> int:
        return 1

    def choose(self, layer: object, bandwidth: float | None) -> LayerChoice:
        kind = "latent" if layer is None else str(layer).strip().lower()
        if kind == "latent":
            if bandwidth is not None:
                raise UserError(f"bandwidth={bandwidth}: a bandwidth needs layer=quantized (latents are continuous).")
            return LayerChoice("latent", is_default=layer is None)
        if kind != "quantized":
            raise UserError(f"layer={layer!r}: a {self.name} codec embeds 'latent' or 'quantized' (with bandwidth=).")
        per_codebook = self.codebook_kbps()
        low, high = self.min_codebooks(), self.max_codebooks()
        codebooks = high if bandwidth is None else math.floor(float(bandwidth) / per_codebook + 1e-9)
        if not low <= codebooks <= high:
            raise UserError(
                f"bandwidth={bandwidth} kbps: this {self.name} codec has {per_codebook:g} kbps per codebook and "
                f"{low}-{high} codebooks: give {low * per_codebook:g}-{high * per_codebook:g} kbps."
            )
        return LayerChoice("quantized", codebooks=codebooks, bandwidth_kbps=codebooks * per_codebook)

    def embed(self, audio: torch.Tensor, choice: LayerChoice) -> torch.Tensor:
        sounds = audio.unsqueeze(1).expand(-1, self.channels, -1)
        latents = self.latents(sounds)
        if choice.kind == "quantized":
            latents = self.quantize(latents, choice.codebooks)
        return latents.transpose(1, 2)[:, : self.geometry.frames(audio.shape[-1])]

    def latents(self, sounds: torch.Tensor) -> torch.Tensor:
        """``[n, channels, L]`` -> continuous latents ``[n, D, frames]``."""
        raise NotImplementedError

    def quantize(self, latents: torch.Tensor, codebooks: int) -> torch.Tensor:
        """Latents ``[n, D, F]`` -> the sum of their first ``codebooks`` residual codewords ``[n, D, F]``."""
        raise NotImplementedError


@register_family
class EncodecFamily(CodecFamily):
    """EnCodec: hop ``prod(upsampling_ratios)`` (``config.hop_length``); a model with ``normalize``
    divides each window by its RMS level as ``EncodecModel.encode`` divides each chunk; a model with
    ``chunk_length_s`` takes windows of at most that length."""

    name = "encodec"
    model_types = ("encodec",)
    model_class = "EncodecModel"

    def __init__(self, model: Any, config: Any, extractor: Any) -> None:
        super().__init__(model, config, extractor, int(config.hop_length))
        self.max_samples = None if config.chunk_length is None else int(config.chunk_length)

    def latents(self, sounds: torch.Tensor) -> torch.Tensor:
        if self.config.normalize:
            mono = sounds.mean(dim=1, keepdim=True)
            sounds = sounds / (mono.pow(2).mean(dim=-1, keepdim=True).sqrt() + 1e-8)
        return self.model.encoder(sounds)

    def quantize(self, latents: torch.Tensor, codebooks: int) -> torch.Tensor:
        # residual VQ is sequential: the first k codes of a full encode are the k-codebook encode
        codes = self.model.quantizer.encode(latents)[:codebooks]
        return self.model.quantizer.decode(codes)


@register_family
class DacFamily(CodecFamily):
    """Descript Audio Codec: the clip right-padded with zeros to whole hops (as DAC's own
    preprocessing does), hop ``config.hop_length``; ``n_codebooks`` codebooks."""

    name = "dac"
    model_types = ("dac",)
    model_class = "DacModel"

    def __init__(self, model: Any, config: Any, extractor: Any) -> None:
        super().__init__(model, config, extractor, int(config.hop_length))

    def max_codebooks(self) -> int:
        return int(self.config.n_codebooks)

    def latents(self, sounds: torch.Tensor) -> torch.Tensor:
        hop = self.geometry.stride
        sounds = torch.nn.functional.pad(sounds, (0, -sounds.shape[-1] % hop))
        return self.model.encoder(sounds)

    def quantize(self, latents: torch.Tensor, codebooks: int) -> torch.Tensor:
        return self.model.quantizer(latents, codebooks)[0]


@register_family
class MimiFamily(CodecFamily):
    """Mimi: causal SEANet + transformer + a downsampling conv to ``config.frame_rate`` (12.5 /s);
    the split quantizer's first ``num_semantic_quantizers`` codebooks are always used."""

    name = "mimi"
    model_types = ("mimi",)
    model_class = "MimiModel"
    unused_weights = ("decoder.", "decoder_transformer.", "upsample.")

    def __init__(self, model: Any, config: Any, extractor: Any) -> None:
        hop = config.sampling_rate / config.frame_rate
        if hop != int(hop):
            raise UserError(f"mimi snapshot: sampling_rate / frame_rate = {hop} is not a whole number of samples.")
        super().__init__(model, config, extractor, int(hop))

    def min_codebooks(self) -> int:
        return int(self.config.num_semantic_quantizers)

    def latents(self, sounds: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(sounds).latents

    def quantize(self, latents: torch.Tensor, codebooks: int) -> torch.Tensor:
        codes = self.model.quantizer.encode(latents, codebooks)  # [K, n, F]
        return self.model.quantizer.decode(codes.transpose(0, 1))


__all__ = [
    "ASTFamily",
    "CodecFamily",
    "DacFamily",
    "EncodecFamily",
    "HiddenStateFamily",
    "HubertFamily",
    "MimiFamily",
    "SpeechSSLFamily",
    "Wav2Vec2Family",
    "WavLMFamily",
    "WhisperFamily",
]
