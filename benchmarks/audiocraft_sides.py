"""audioenc's trainer and audiocraft's EnCodec training blocks, built at one configuration with
the same weights, for checks that run both side by side (``check_conformance_audiocraft.py``,
``time_to_quality.py``).

audiocraft is imported from a checkout the user names (``audiocraft_reference.py`` says how);
nothing of it is copied here. The parameter names are translated mechanically (audioenc nests each
SEANet block in an ``nn.Sequential``, audiocraft lists the layers flat and wraps each conv once
more) and checked one-to-one, shape by shape, before any weight is copied.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import audiocraft_reference
import torch
from torch import nn

from audioenc.models.seanet import DecoderBlock, EncoderBlock
from audioenc.training.trainer import Trainer

# What to run when no checkout is given (printed by the scripts that need one).
HOW_TO_GET_AUDIOCRAFT = (
    "    git clone https://github.com/facebookresearch/audiocraft /tmp/audiocraft\n"
    "    .venv/bin/pip install --no-deps --target /tmp/audiocraft-deps torchaudio==2.11.0 einops flashy\n"
    "    rm -r /tmp/audiocraft-deps/torchaudio/lib"
)


# ----------------------------------------------------------------------------- loading audiocraft


def load_audiocraft(root: Path, deps: Path | None) -> dict[str, types.ModuleType]:
    """audiocraft_reference's modules plus ``quantization/{base,core_vq,vq}.py`` and
    ``models/encodec.py`` (its ``EncodecModel``; ``transformers``, imported there for the
    Hugging Face wrapper only, is stubbed when absent)."""
    modules = audiocraft_reference.load(root, deps)
    for package in ("audiocraft.quantization", "audiocraft.models"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root / package.replace(".", "/"))]
            sys.modules[package] = module
            setattr(sys.modules["audiocraft"], package.rpartition(".")[2], module)
    for file in (
        "audiocraft/quantization/base.py",
        "audiocraft/quantization/core_vq.py",
        "audiocraft/quantization/vq.py",
    ):
        modules[Path(file).stem] = _exec_file(root, file)
    quantization = sys.modules["audiocraft.quantization"]
    for name in ("BaseQuantizer", "DummyQuantizer", "QuantizedResult"):
        setattr(quantization, name, getattr(modules["base"], name))
    quantization.ResidualVectorQuantizer = modules["vq"].ResidualVectorQuantizer
    if importlib.util.find_spec("transformers") is None:
        stub = types.ModuleType("transformers")
        stub.EncodecModel = type("EncodecModel", (), {})
        sys.modules["transformers"] = stub
    modules["encodec"] = _exec_file(root, "audiocraft/models/encodec.py")
    return modules


def _exec_file(root: Path, file: str) -> types.ModuleType:
    name = file[: -len(".py")].replace("/", ".")
    spec = importlib.util.spec_from_file_location(name, root / file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def audiocraft_commit(root: Path) -> str:
    """The checkout's commit, read from its .git when there is one."""
    head = root / ".git" / "HEAD"
    try:
        text = head.read_text().strip()
        if text.startswith("ref: "):
            ref = root / ".git" / text[5:]
            return ref.read_text().strip() if ref.is_file() else text
        return text
    except OSError:
        return "unknown (no .git in the checkout; pass --audiocraft-commit)"


def add_audiocraft_arguments(parser) -> None:
    """The options every side-by-side script takes: the checkout, its dependencies, the preset."""
    parser.add_argument("--audiocraft", default=None, help="audiocraft checkout (or AUDIOCRAFT_PATH)")
    parser.add_argument(
        "--audiocraft-deps", default=None, help="folder with einops/flashy/torchaudio (or AUDIOCRAFT_DEPS)"
    )
    parser.add_argument("--audiocraft-commit", default=None, help="commit to print when the checkout has no .git")
    parser.add_argument("--preset", choices=("small", "paper"), default="small")
    parser.add_argument("--mode", choices=("1ch", "32ch"), default="1ch")


def load_or_explain(args, purpose: str, example: str) -> tuple[dict[str, types.ModuleType], Path, str] | None:
    """audiocraft's modules, the checkout and its commit from :func:`add_audiocraft_arguments`'
    options; None after printing to stderr what is missing and how to get it (exit code 2)."""
    located = audiocraft_reference.locate(args.audiocraft, args.audiocraft_deps)
    if located is None:
        print(
            f"{purpose} needs an audiocraft checkout, which is not part of this repository. Missing:\n"
            "--audiocraft DIR (or AUDIOCRAFT_PATH), the folder that contains the 'audiocraft' package, and its\n"
            "dependencies (einops, flashy, torchaudio's pure-Python transforms) installed apart from the project:\n\n"
            f"{HOW_TO_GET_AUDIOCRAFT}\n    {example}",
            file=sys.stderr,
        )
        return None
    try:
        modules = load_audiocraft(*located)
    except audiocraft_reference.ReferenceUnavailable as error:
        print(f"audiocraft could not be loaded: {error}", file=sys.stderr)
        return None
    return modules, located[0], args.audiocraft_commit or audiocraft_commit(located[0])


# ----------------------------------------------------------------------------- weight mapping


def _flat_indices(sequential: nn.Sequential) -> dict[str, str]:
    """audioenc's nested SEANet ``model`` indices -> audiocraft's flat ones.

    audioenc groups each encoder/decoder block in an ``nn.Sequential`` (``model.1.0`` is the first
    residual unit of the first block); audiocraft lists the same layers flat (``model.1``).
    """
    mapping, flat = {}, 0
    for index, child in enumerate(sequential):
        if isinstance(child, (EncoderBlock, DecoderBlock)):
            for sub_index in range(len(child)):
                mapping[f"{index}.{sub_index}"] = str(flat)
                flat += 1
        else:
            mapping[str(index)] = str(flat)
            flat += 1
    return mapping


def _weight_norm_name(name: str) -> str:
    return name.replace("parametrizations.weight.original0", "weight_g").replace(
        "parametrizations.weight.original1", "weight_v"
    )


def seanet_name(name: str, indices: dict[str, str]) -> str:
    """``model.<i>[.<j>].rest`` of audioenc's SEANet -> audiocraft's parameter name."""
    match = re.match(r"model\.(\d+)\.(\d+)\.(.*)$", name)
    if match and f"{match[1]}.{match[2]}" in indices:
        index, rest = indices[f"{match[1]}.{match[2]}"], match[3]
    else:
        match = re.match(r"model\.(\d+)\.(.*)$", name)
        index, rest = indices[match[1]], match[2]
    # StreamableConv1d.conv / StreamableConvTranspose1d.convtr are the torch convs in audioenc;
    # audiocraft wraps them once more (NormConv1d.conv, NormConvTranspose1d.convtr).
    rest = re.sub(r"(^|\.)conv\.", r"\1conv.conv.", rest, count=1)
    rest = re.sub(r"(^|\.)convtr\.", r"\1convtr.convtr.", rest, count=1)
    return f"model.{index}.{_weight_norm_name(rest)}"


def discriminator_name(name: str) -> str:
    """``discriminators.k.convs.l.X`` / ``conv_post.X`` -> audiocraft's NormConv2d ``.conv.X``."""
    name = re.sub(r"\.(convs\.\d+|conv_post)\.", r".\1.conv.", name)
    return _weight_norm_name(name)


@dataclass
class ParameterMap:
    """audioenc parameter name -> (audioenc parameter, audiocraft parameter)."""

    pairs: dict[str, tuple[nn.Parameter, nn.Parameter]] = field(default_factory=dict)

    @classmethod
    def build(cls, ours: nn.Module, theirs: nn.Module, translate) -> ParameterMap:
        their_params = dict(theirs.named_parameters())
        mapping = cls()
        for name, param in ours.named_parameters():
            target = translate(name)
            if target not in their_params:
                raise KeyError(f"{name} -> {target}: no such parameter in audiocraft's module")
            other = their_params[target]
            if other.shape != param.shape:
                raise ValueError(f"{name} {tuple(param.shape)} -> {target} {tuple(other.shape)}: shapes differ")
            mapping.pairs[name] = (param, other)
        used = {id(other) for _, other in mapping.pairs.values()}
        left = [name for name, p in their_params.items() if id(p) not in used]
        if left or len(used) != len(mapping.pairs):
            raise ValueError(f"the mapping is not one-to-one; audiocraft parameters left over: {left}")
        return mapping

    def copy_ours_to_theirs(self) -> None:
        with torch.no_grad():
            for ours, theirs in self.pairs.values():
                theirs.copy_(ours)

    @property
    def numel(self) -> int:
        return sum(p.numel() for p, _ in self.pairs.values())


# ----------------------------------------------------------------------------- the two sides


@dataclass
class Sides:
    """Both sides of one configuration; ``*_map`` pair audioenc's parameters with audiocraft's."""

    config: object
    trainer: Trainer
    reference: audiocraft_reference.ReferenceStep
    codec: nn.Module  # audiocraft's EncodecModel
    codec_map: ParameterMap
    disc_map: ParameterMap
    ours_output_grads: list = field(default_factory=list)
    theirs_output_grads: list = field(default_factory=list)


def build_sides(
    modules,
    config,
    run_dir: Path,
    *,
    dtype: torch.dtype = torch.float64,
    threshold: float = 0.0,
    keep_output_grads: bool = False,
    device: torch.device = torch.device("cpu"),
) -> Sides:
    """audioenc's :class:`Trainer` for ``config`` and audiocraft's ``EncodecModel``, discriminator,
    losses, balancer and optimizers at the same sizes, audiocraft's weights set to audioenc's.

    Args:
        modules: :func:`load_audiocraft`'s modules.
        config: audioenc's configuration; audiocraft's blocks take its sizes, losses and optimiser
            (``audiocraft_reference.build_reference_step``). Settings audiocraft does not have
            (``model.normalize``, ``train.adversarial_warmup_steps``, relative feature matching,
            ``train.precision``) act on audioenc's side only.
        dtype: both sides' parameter dtype (float64 for the conformance check).
        device: where both sides live (the optimizers keep their parameters: ``Module.to`` moves
            them in place).
        threshold: dead-code expiry threshold of audioenc's codebooks (audiocraft's is set by the
            ``ResidualVectorQuantizer`` built here).
        keep_output_grads: record the balanced gradient at each codec's output after every backward
            (``Sides.ours_output_grads`` / ``theirs_output_grads``; a copy per step, for comparisons).
    """
    trainer = Trainer(config, run_dir, device)
    for module in (trainer.model, trainer.discriminator, trainer.mel_loss):
        module.to(device=device, dtype=dtype)
    if trainer.model.quantizer.discrete:
        for layer in trainer.model.quantizer.layers:
            layer.threshold_ema_dead_code = threshold

    channels = config.model.channels
    reference = audiocraft_reference.build_reference_step(modules, config, channels)
    m = config.model
    if m.quantizer == "rvq":
        rvq = modules["vq"].ResidualVectorQuantizer(
            dimension=m.dimension,
            n_q=m.n_q,
            q_dropout=False,
            bins=m.bins,
            decay=0.99,
            kmeans_init=True,
            kmeans_iters=50,
            threshold_ema_dead_code=threshold,
        )
    else:
        rvq = modules["base"].DummyQuantizer()
    hop = math.prod(m.ratios)
    codec = modules["encodec"].EncodecModel(
        reference.encoder,
        reference.decoder,
        rvq,
        frame_rate=m.sample_rate // hop,
        sample_rate=m.sample_rate,
        channels=channels,
        causal=m.causal,
        renormalize=False,
    )
    for module in (codec, reference.adversary, reference.mel_loss):
        module.to(device=device, dtype=dtype)

    codec_map = ParameterMap()
    for part in ("encoder", "decoder"):
        ours, theirs = getattr(trainer.model, part), getattr(reference, part)
        indices = _flat_indices(ours.model)
        part_map = ParameterMap.build(ours, theirs, lambda name, i=indices: seanet_name(name, i))
        codec_map.pairs.update({f"{part}.{k}": v for k, v in part_map.pairs.items()})
    disc_map = ParameterMap.build(trainer.discriminator, reference.adversary, discriminator_name)
    codec_map.copy_ours_to_theirs()
    disc_map.copy_ours_to_theirs()

    sides = Sides(config, trainer, reference, codec, codec_map, disc_map)
    if not keep_output_grads:
        return sides

    # The balanced gradient at the codec output (untrimmed decoder output; zeros past the input).
    def keep_output_grad(store: list):
        def hook(module, inputs, output) -> None:  # returns None: the output is left as it is
            if output.requires_grad:
                output.register_hook(lambda grad: store.append(grad.detach().clone()))

        return hook

    trainer.model.decoder.register_forward_hook(keep_output_grad(sides.ours_output_grads))
    reference.decoder.register_forward_hook(keep_output_grad(sides.theirs_output_grads))
    return sides
