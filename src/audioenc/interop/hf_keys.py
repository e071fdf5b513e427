"""State-dict names: audioenc's :class:`~audioenc.models.codec.CodecModel` ↔ ``transformers.EncodecModel``.

Both models are the same SEANet + RVQ with the same tensors (shapes, weight-norm
parametrisation ``w = g · v / ‖v‖`` as ``parametrizations.weight.original0 = g`` [out, 1, 1] and
``original1 = v``, LSTM gate layout); only the module paths differ. audioenc nests each stage in an
``nn.Sequential`` block, ``transformers`` flattens every stage into one ``layers`` list. With ``B``
strides, ``n = n_residual_layers`` residual units per stage and ``s = n + 2`` layers per HF stage
(``n`` units, ELU, conv), for stage ``b = 0 … B-1``:

=============================================  =============================================
audioenc                                       transformers
=============================================  =============================================
``encoder.model.0`` (conv C → n_filters)       ``encoder.layers.0``
``encoder.model.{1+b}.{j}`` (residual unit)    ``encoder.layers.{1 + b·s + j}``
``encoder.model.{1+b}.{n+1}`` (strided conv)   ``encoder.layers.{1 + b·s + n + 1}``
``encoder.model.{1+B}`` (LSTM)                 ``encoder.layers.{1 + B·s}``
``encoder.model.{3+B}`` (conv → dimension)     ``encoder.layers.{3 + B·s}``
``decoder.model.0`` (conv dimension →)         ``decoder.layers.0``
``decoder.model.1`` (LSTM)                     ``decoder.layers.1``
``decoder.model.{2+b}.1`` (transposed conv)    ``decoder.layers.{2 + b·s + 1}``
``decoder.model.{2+b}.{2+j}`` (residual unit)  ``decoder.layers.{2 + b·s + 2 + j}``
``decoder.model.{3+B}`` (conv → C)             ``decoder.layers.{3 + B·s}``
``quantizer.layers.{i}.embed`` etc.            ``quantizer.layers.{i}.codebook.embed`` etc.
=============================================  =============================================

Inside a layer: a convolution is ``conv.bias``, ``conv.parametrizations.weight.original0/1`` on
both sides; a transposed convolution is ``convtr.*`` in audioenc, ``conv.*`` in HF; an LSTM is
``lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}`` on both sides (audioenc's LSTM is
``batch_first``, HF's is not: the same parameters); a residual unit is ``block.1`` and ``block.3``
(the two convolutions after each ELU) plus ``shortcut`` when it is a convolution (``true_skip``
false, HF ``use_conv_shortcut``). Codebooks: ``embed`` [bins, D], ``embed_avg`` [bins, D] and
``cluster_size`` [bins] keep their names; audioenc's ``initialized`` (bool, shape []) is HF's
``inited`` (float, shape [1]). ``transformers`` 4.44 and older (and the released checkpoints)
use ``torch.nn.utils.weight_norm``, which names ``g``/``v`` ``weight_g``/``weight_v`` (same shapes):
:func:`to_hf_state` writes those names when asked (``legacy_weight_norm``), :func:`from_hf_state`
reads both.

Every function here checks that the key sets match exactly: a missing or extra tensor is an error,
never a silently random weight.
"""

from __future__ import annotations

import torch

from audioenc.config import ModelConfig

CONV = ("bias", "parametrizations.weight.original0", "parametrizations.weight.original1")
LEGACY_WEIGHT_NORM = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
"""Parametrisation names → ``torch.nn.utils.weight_norm``'s names (older ``transformers``)."""
CODEBOOK = ("embed", "embed_avg", "cluster_size")


def _conv(ours: str, theirs: str, ours_name: str = "conv") -> list[tuple[str, str]]:
    return [(f"{ours}.{ours_name}.{suffix}", f"{theirs}.conv.{suffix}") for suffix in CONV]


def _lstm(ours: str, theirs: str, layers: int) -> list[tuple[str, str]]:
    names = [f"{kind}_l{k}" for k in range(layers) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return [(f"{ours}.lstm.{name}", f"{theirs}.lstm.{name}") for name in names]


def _residual_unit(ours: str, theirs: str, true_skip: bool) -> list[tuple[str, str]]:
    pairs = _conv(f"{ours}.block.1", f"{theirs}.block.1") + _conv(f"{ours}.block.3", f"{theirs}.block.3")
    if not true_skip:
        pairs += _conv(f"{ours}.shortcut", f"{theirs}.shortcut")
    return pairs


def key_pairs(config: ModelConfig) -> list[tuple[str, str]]:
    """``(audioenc key, transformers key)`` for every tensor except the codebooks' init flags.

    Needs an RVQ codec with an LSTM (``transformers.EncodecModel`` always has both); see the
    module docstring for the layout.
    """
    if config.quantizer != "rvq" or config.lstm < 1:
        raise ValueError(
            f"key_pairs: needs model.quantizer='rvq' and model.lstm >= 1; got {config.quantizer!r}, {config.lstm}."
        )
    blocks, n, skip = len(config.ratios), config.n_residual_layers, config.true_skip
    stage = n + 2
    pairs = _conv("encoder.model.0", "encoder.layers.0")
    for b in range(blocks):
        for j in range(n):
            pairs += _residual_unit(f"encoder.model.{1 + b}.{j}", f"encoder.layers.{1 + b * stage + j}", skip)
        pairs += _conv(f"encoder.model.{1 + b}.{n + 1}", f"encoder.layers.{1 + b * stage + n + 1}")
    pairs += _lstm(f"encoder.model.{1 + blocks}", f"encoder.layers.{1 + blocks * stage}", config.lstm)
    pairs += _conv(f"encoder.model.{3 + blocks}", f"encoder.layers.{3 + blocks * stage}")
    pairs += _conv("decoder.model.0", "decoder.layers.0")
    pairs += _lstm("decoder.model.1", "decoder.layers.1", config.lstm)
    for b in range(blocks):
        pairs += _conv(f"decoder.model.{2 + b}.1", f"decoder.layers.{2 + b * stage + 1}", ours_name="convtr")
        for j in range(n):
            pairs += _residual_unit(f"decoder.model.{2 + b}.{2 + j}", f"decoder.layers.{2 + b * stage + 2 + j}", skip)
    pairs += _conv(f"decoder.model.{3 + blocks}", f"decoder.layers.{3 + blocks * stage}")
    for i in range(config.n_q):
        pairs += [(f"quantizer.layers.{i}.{name}", f"quantizer.layers.{i}.codebook.{name}") for name in CODEBOOK]
    return pairs


def _flags(config: ModelConfig) -> list[tuple[str, str]]:
    return [(f"quantizer.layers.{i}.initialized", f"quantizer.layers.{i}.codebook.inited") for i in range(config.n_q)]


def _check_keys(state: dict[str, torch.Tensor], expected: set[str], what: str) -> None:
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise KeyError(
            f"{what}: the tensors do not match the configuration (missing {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected {extra[:5]}{'…' if len(extra) > 5 else ''})."
        )


def uses_legacy_weight_norm(hf_state: dict[str, torch.Tensor]) -> bool:
    """Whether an ``EncodecModel`` state dict names weight norm ``weight_g``/``weight_v``."""
    return any(key.endswith(".weight_g") for key in hf_state)


def _rename(key: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def to_hf_state(
    state: dict[str, torch.Tensor], config: ModelConfig, legacy_weight_norm: bool = False
) -> dict[str, torch.Tensor]:
    """audioenc ``state_dict`` → ``EncodecModel`` ``state_dict`` (the same tensors, renamed; each
    codebook's ``initialized`` flag becomes ``inited = [1.0]`` or ``[0.0]``). ``legacy_weight_norm``:
    ``weight_g``/``weight_v`` names, for ``transformers`` versions that build those."""
    pairs, flags = key_pairs(config), _flags(config)
    _check_keys(state, {ours for ours, _ in pairs + flags}, "audioenc state dict")
    names = LEGACY_WEIGHT_NORM if legacy_weight_norm else {}
    out = {_rename(theirs, names): state[ours] for ours, theirs in pairs}
    for ours, theirs in flags:
        out[theirs] = torch.tensor([1.0 if bool(state[ours]) else 0.0])
    return out


def from_hf_state(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """``EncodecModel`` ``state_dict`` (either weight-norm naming) → audioenc ``state_dict`` (float32).
    Every codebook counts as initialised: ``transformers`` has no uninitialised state (it sets
    ``inited`` and never reads it)."""
    state = {_rename(key, {v: k for k, v in LEGACY_WEIGHT_NORM.items()}): value for key, value in state.items()}
    pairs, flags = key_pairs(config), _flags(config)
    _check_keys(state, {theirs for _, theirs in pairs + flags}, "transformers state dict")
    out = {ours: state[theirs].to(torch.float32) for ours, theirs in pairs}
    for ours, _ in flags:
        out[ours] = torch.tensor(True)
    return out
