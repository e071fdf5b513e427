"""audioenc's :class:`~audioenc.config.ModelConfig` ↔ ``transformers.EncodecConfig`` (no ``transformers`` import).

audioenc's SEANet is audiocraft's; ``EncodecConfig`` describes the same network with other names:

=========================  ===================================================================
ModelConfig                EncodecConfig
=========================  ===================================================================
channels                   audio_channels (``EncodecModel.encode`` refuses more than 2)
sample_rate                sampling_rate
dimension                  hidden_size = codebook_dim
n_filters                  num_filters
n_residual_layers          num_residual_layers
ratios                     upsampling_ratios (decoder order in both)
lstm                       num_lstm_layers (HF always has an LSTM: lstm >= 1)
causal                     use_causal_conv
pad_mode                   pad_mode
true_skip                  not use_conv_shortcut (audiocraft: True; released 24 kHz: False)
bins                       codebook_size (a power of 2 in HF)
n_q                        num_quantizers = int(1000 · target_bandwidths[-1] // (frame_rate · log2 bins))
normalize                  normalize (see the level caveat below)
(fixed in audioenc)        kernel_size 7, last_kernel_size 7, residual_kernel_size 3,
                           dilation_growth_rate 2, compress 2, trim_right_ratio 1.0,
                           norm_type "weight_norm", chunk_length_s None
=========================  ===================================================================

Bandwidths. HF chooses the number of codebooks from a bandwidth in kbps,
``n = max(1, floor(1000 · bandwidth / (log2(bins) · frame_rate)))`` with
``frame_rate = ceil(sample_rate / hop)`` (an integer: for a hop that does not divide the sample rate,
HF's kbps figures are ``ceil(f) / f`` times audioenc's), and ``encode()`` accepts only the values
in ``target_bandwidths``, using the first when none is given. The export lists EnCodec's
``1.5, 3, 6, 12, 24`` kbps where they select fewer codebooks than the codec has, and ends with the
bandwidth of all ``n_q`` codebooks (its last entry fixes how many codebooks HF builds).

Level. With ``normalize`` HF divides by ``sqrt(mean_t(mean_c(x)²)) + 1e-8`` (the RMS of the
channel mean), audioenc by ``sqrt(mean_{c,t}(x²)) + 1e-8``: the same number for mono only. Stereo
codecs with ``normalize`` are therefore refused in both directions.
"""

from __future__ import annotations

import math
from typing import Any

from audioenc.config import CHOICES, ModelConfig
from audioenc.errors import UserError
from audioenc.validation import check_number

ENCODEC_BANDWIDTHS = (1.5, 3.0, 6.0, 12.0, 24.0)
"""kbps of the released EnCodec 24 kHz model (2, 4, 8, 16 and 32 codebooks at 75 Hz, 1024 bins)."""

FIXED = {
    "norm_type": "weight_norm",
    "kernel_size": 7,
    "last_kernel_size": 7,
    "residual_kernel_size": 3,
    "dilation_growth_rate": 2,
    "compress": 2,
    "trim_right_ratio": 1.0,
}
"""``EncodecConfig`` settings that audioenc's SEANet does not expose (its fixed values)."""

MAX_CODEBOOKS = 1024
"""Most codebooks an imported ``EncodecModel`` may build (EnCodec has 32): ``num_quantizers`` follows from
``target_bandwidths`` alone, so a mistyped bandwidth would otherwise allocate millions of codebooks."""

HF_NUMBERS = {
    "audio_channels": dict(minimum=1),
    "sampling_rate": dict(minimum=1),
    "hidden_size": dict(minimum=1),
    "codebook_dim": dict(minimum=1),
    "num_filters": dict(minimum=1),
    "num_residual_layers": dict(minimum=0),
    "num_lstm_layers": dict(minimum=0),
    "codebook_size": dict(minimum=2),
}
"""The whole-number settings of an ``EncodecConfig`` that the importer computes with, and their ranges
(those of the matching :class:`~audioenc.config.ModelConfig` fields)."""

ONNX_HINT = "Export it with `audioenc export RUN --format onnx OUT` instead, which keeps any audioenc codec."


def hf_frame_rate(sample_rate: int, hop: int) -> int:
    """``EncodecConfig.frame_rate``: ``ceil(sample_rate / hop)`` frames per second."""
    return math.ceil(sample_rate / hop)


def hf_codebooks_for(bandwidth: float, bins: int, frame_rate: int) -> int:
    """Codebooks ``EncodecModel.encode`` uses at ``bandwidth`` kbps (HF's
    ``get_num_quantizers_for_bandwidth``): ``max(1, floor(1000 · bandwidth / (log2(bins) · frame_rate)))``."""
    return int(max(1, math.floor(bandwidth * 1000 / (math.log2(bins) * frame_rate))))


def hf_num_quantizers(last_bandwidth: float, bins: int, frame_rate: int) -> int:
    """Codebooks ``EncodecModel`` builds: ``EncodecConfig.num_quantizers`` for the last target bandwidth."""
    return int(1000 * last_bandwidth // (frame_rate * math.ceil(math.log2(bins))))


def _bandwidth_of(n_q: int, bins: int, frame_rate: int) -> float:
    """The smallest float kbps for which both HF formulas give exactly ``n_q`` codebooks.

    ``n_q · log2(bins) · frame_rate / 1000`` rounded to 6 decimals when that is exact enough,
    else nudged up by a few ulps (``1000 · b / rate`` must not floor to ``n_q - 1``).
    """
    exact = n_q * math.log2(bins) * frame_rate / 1000
    for candidate in (round(exact, 6), exact):
        value = candidate
        for _ in range(8):
            if hf_codebooks_for(value, bins, frame_rate) == n_q and hf_num_quantizers(value, bins, frame_rate) == n_q:
                return value
            value = math.nextafter(value, math.inf)
    raise ValueError(f"no float bandwidth selects exactly {n_q} codebooks of {bins} bins at {frame_rate} Hz")


def target_bandwidths(config: ModelConfig) -> list[float]:
    """``EncodecConfig.target_bandwidths`` for an RVQ codec: EnCodec's kbps that select fewer than
    ``n_q`` codebooks (one per codebook count), then the bandwidth of all ``n_q``."""
    hop = math.prod(config.ratios)
    rate = hf_frame_rate(config.sample_rate, hop)
    chosen: list[float] = []
    seen: set[int] = set()
    for bandwidth in ENCODEC_BANDWIDTHS:
        per_codebook = math.log2(config.bins) * rate / 1000
        count = hf_codebooks_for(bandwidth, config.bins, rate)
        if bandwidth >= per_codebook and count < config.n_q and count not in seen:
            chosen.append(bandwidth)
            seen.add(count)
    return [*chosen, _bandwidth_of(config.n_q, config.bins, rate)]


def check_exportable(config: ModelConfig, where: str) -> None:
    """Refuse (``UserError``) a codec that ``transformers.EncodecModel`` cannot reproduce exactly."""
    if config.quantizer == "none":
        raise UserError(
            f"{where} is a continuous codec (model.quantizer={config.quantizer!r}): transformers' EncodecModel "
            "always quantizes its latents with trained codebooks, which this codec does not have, so it would "
            f"return meaningless codes. {ONNX_HINT}"
        )
    if config.quantizer != "rvq":
        raise UserError(
            f"{where} quantizes with model.quantizer={config.quantizer!r}: transformers' EncodecModel has only "
            f"EnCodec's residual vector quantizer, so only model.quantizer='rvq' codecs export to it. {ONNX_HINT}"
        )
    if config.channels > 2:
        raise UserError(
            f"{where} codes {config.channels} channels (model.channels): transformers' EncodecModel.encode accepts "
            f"1 or 2 channels only. {ONNX_HINT}"
        )
    if config.lstm < 1:
        raise UserError(f"{where} has no LSTM (model.lstm=0); transformers' EncodecModel always has one. {ONNX_HINT}")
    if config.bins & (config.bins - 1):
        raise UserError(
            f"{where} has codebooks of {config.bins} entries (model.bins); transformers' EncodecModel "
            f"needs a power of 2. {ONNX_HINT}"
        )
    if config.normalize and config.channels == 2:
        raise UserError(
            f"{where} is a stereo codec with model.normalize: transformers' EncodecModel computes the input level "
            "on the mean of the two channels, audioenc on both channels, so codes would differ (and anti-phase "
            f"audio would be blown up). {ONNX_HINT}"
        )


def encodec_config_kwargs(config: ModelConfig) -> dict[str, Any]:
    """``EncodecConfig(**kwargs)`` describing the same network as ``config`` (see the table above)."""
    return dict(
        target_bandwidths=target_bandwidths(config),
        sampling_rate=config.sample_rate,
        audio_channels=config.channels,
        normalize=config.normalize,
        chunk_length_s=None,
        overlap=None,
        hidden_size=config.dimension,
        num_filters=config.n_filters,
        num_residual_layers=config.n_residual_layers,
        upsampling_ratios=list(config.ratios),
        use_causal_conv=config.causal,
        pad_mode=config.pad_mode,
        num_lstm_layers=config.lstm,
        codebook_size=config.bins,
        codebook_dim=config.dimension,
        use_conv_shortcut=not config.true_skip,
        **FIXED,
    )


def check_hf_numbers(get: Any, where: str) -> None:
    """Refuse (``UserError``) a number of an ``EncodecConfig`` that is not finite or out of range, before the
    bandwidth arithmetic divides by ``log2(codebook_size)`` or the frame rate, or builds the network.

    ``get(name)`` reads a setting; each error names ``where``'s config.json and the setting."""
    hint = "Fix it in config.json or download the model folder again."
    name = lambda setting: f"{where}/config.json: {setting}"  # noqa: E731
    for setting, bounds in HF_NUMBERS.items():
        check_number(name(setting), get(setting), integer=True, hint=hint, **bounds)
    for setting, minimum in (("upsampling_ratios", 1), ("target_bandwidths", None)):
        values = get(setting)
        if not isinstance(values, (list, tuple)) or not values:
            raise UserError(f"{name(setting)} must be a non-empty list of numbers; got {values!r}. {hint}")
        for index, value in enumerate(values):
            check_number(
                f"{name(setting)}[{index}]",
                value,
                minimum=minimum,
                above=None if minimum else 0,
                integer=minimum is not None,
                hint=hint,
            )
    rate = hf_frame_rate(get("sampling_rate"), math.prod(get("upsampling_ratios")))
    built = hf_num_quantizers(get("target_bandwidths")[-1], get("codebook_size"), rate)
    check_number(
        f"{name('target_bandwidths')}[-1] ({get('target_bandwidths')[-1]!r} kbps: {built} codebooks)",
        built,
        minimum=1,
        maximum=MAX_CODEBOOKS,
        integer=True,
        hint=hint,
    )
    if get("chunk_length_s") is not None:
        check_number(name("chunk_length_s"), get("chunk_length_s"), above=0, hint=hint)
        if get("overlap") is not None:
            check_number(name("overlap"), get("overlap"), minimum=0, maximum=1, hint=hint)


def model_config_from_hf(hf_config: Any, where: str) -> tuple[ModelConfig, list[str]]:
    """The :class:`ModelConfig` of an ``EncodecConfig`` (read by attribute), and notes for the user.

    Raises ``UserError`` naming ``where`` and the setting for what audioenc's SEANet cannot express:
    ``time_group_norm`` (the 48 kHz model), other kernel sizes, dilation growth, compression or
    trimming, a codebook dimension other than ``hidden_size``, no LSTM, more than 2 channels, a
    padding mode audioenc lacks, stereo with ``normalize``.
    """
    get = lambda name: getattr(hf_config, name)  # noqa: E731
    check_hf_numbers(get, where)
    if get("norm_type") != "weight_norm":
        raise UserError(
            f"{where}: norm_type={get('norm_type')!r} (EnCodec 48 kHz uses time_group_norm): audioenc's convolutions "
            "use weight norm only. Import a weight_norm model such as facebook/encodec_24khz."
        )
    for name, value in FIXED.items():
        if name != "norm_type" and get(name) != value:
            raise UserError(
                f"{where}: {name}={get(name)!r}; audioenc's SEANet fixes {name}={value!r}, so this "
                "model cannot be imported."
            )
    problems = []
    if get("codebook_dim") != get("hidden_size"):
        problems.append(f"codebook_dim={get('codebook_dim')} differs from hidden_size={get('hidden_size')}")
    if get("num_lstm_layers") < 1:
        problems.append("num_lstm_layers=0")
    if not 1 <= get("audio_channels") <= 2:
        problems.append(f"audio_channels={get('audio_channels')}")
    if get("pad_mode") not in CHOICES["model.pad_mode"]:
        problems.append(f"pad_mode={get('pad_mode')!r} (audioenc has {', '.join(CHOICES['model.pad_mode'])})")
    if get("normalize") and get("audio_channels") == 2:
        problems.append(
            "normalize with 2 channels (HF's level is the RMS of the channel mean, audioenc's of both channels)"
        )
    rate = hf_frame_rate(get("sampling_rate"), math.prod(get("upsampling_ratios")))
    asked = max(hf_codebooks_for(b, get("codebook_size"), rate) for b in get("target_bandwidths"))
    if asked > get("num_quantizers"):  # transformers <= 4.53 (at least) count 10 bits per codebook there
        problems.append(
            f"its target_bandwidths ask for {asked} codebooks but this transformers version builds "
            f"{get('num_quantizers')} (upgrade transformers)"
        )
    if problems:
        raise UserError(f"{where}: cannot be imported: {'; '.join(problems)}.")
    config = ModelConfig(
        channels=get("audio_channels"),
        sample_rate=get("sampling_rate"),
        dimension=get("hidden_size"),
        n_filters=get("num_filters"),
        n_residual_layers=get("num_residual_layers"),
        ratios=tuple(int(r) for r in get("upsampling_ratios")),
        lstm=get("num_lstm_layers"),
        causal=bool(get("use_causal_conv")),
        pad_mode=get("pad_mode"),
        true_skip=not get("use_conv_shortcut"),
        quantizer="rvq",
        n_q=int(get("num_quantizers")),
        bins=get("codebook_size"),
        q_dropout=True,
        normalize=bool(get("normalize")),
    )
    notes = []
    if get("chunk_length_s") is not None:
        notes.append(
            f"{where} encodes in chunks of {get('chunk_length_s')} s with overlap {get('overlap')} (chunk_length_s); "
            "audioenc encodes whole signals (or streams them exactly), so its codes match HF's with "
            "chunk_length_s=None, not chunk by chunk."
        )
    return config, notes
