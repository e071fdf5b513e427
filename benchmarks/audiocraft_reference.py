"""Load audiocraft's own training blocks from a user's checkout, for side-by-side benchmarks.

Nothing of audiocraft is copied into this repository: this module imports the reference's files
from a checkout the user points at (``--audiocraft DIR`` or ``AUDIOCRAFT_PATH``; the folder that
contains the ``audiocraft`` package) and builds its EnCodec training step from its own classes.

Only the files the step needs are imported (``modules/conv.py``, ``lstm.py``, ``seanet.py``,
``adversarial/discriminators/{base,msstftd}.py``, ``adversarial/losses.py``,
``losses/{specloss,balancer}.py``), each under its real module name inside empty parent packages,
so ``audiocraft/__init__.py`` (which imports every model family and their dependencies) never
runs. The reference's own third-party imports must be importable: ``einops``, ``flashy`` and
``torchaudio`` (``transforms.Spectrogram`` / ``MelSpectrogram``, pure torch). Install them apart
from the project's environment, e.g.::

    .venv/bin/pip install --no-deps --target /tmp/audiocraft-deps torchaudio==2.11.0 einops flashy

    rm -r /tmp/audiocraft-deps/torchaudio/lib

and pass ``--audiocraft-deps /tmp/audiocraft-deps`` (or ``AUDIOCRAFT_DEPS``). ``--no-deps`` keeps
torch at the project's version; torchaudio's compiled extension is built for torch 2.11 and fails
to load with another, and without its ``lib`` folder torchaudio imports as pure Python (its
documented fallback), which is all the two transforms need. Of flashy only ``distrib`` and ``utils`` are loaded (its
``__init__`` imports its solver and logging, which need dora and colorlog); ``distrib`` imports
``dora`` (a launcher) for three
names it re-exports; when dora is absent a module with single-process ``rank``/``world_size``/
``init`` stands in — the benchmark is one process, and nothing in the timed step calls them
except flashy's own ``world_size() == 1`` shortcuts.

:func:`build_reference_step` returns a callable doing one step of audiocraft's
``CompressionSolver.run_step`` (training branch), in its order: model forward; the discriminator
update (``AdversarialLoss.train_adv``); adversarial + feature-matching losses
(``AdversarialLoss.forward``); the auxiliary losses (L1, multi-scale mel); the balancer's backward;
the optimizer step. The solver's logging-only extras (gradient-norm ratios, the no-grad "info"
losses such as SI-SNR) are left out; audioenc's timed step has none either.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from audioenc.models.codec import build_discriminator

# Files in the order their relative imports need them.
_FILES = (
    "audiocraft/modules/conv.py",
    "audiocraft/modules/lstm.py",
    "audiocraft/modules/seanet.py",
    "audiocraft/adversarial/discriminators/base.py",
    "audiocraft/adversarial/discriminators/msstftd.py",
    "audiocraft/adversarial/losses.py",
    "audiocraft/losses/specloss.py",
    "audiocraft/losses/balancer.py",
)
_PACKAGES = (
    "audiocraft",
    "audiocraft/modules",
    "audiocraft/adversarial",
    "audiocraft/adversarial/discriminators",
    "audiocraft/losses",
)


class ReferenceUnavailable(RuntimeError):
    """The reference checkout or one of its dependencies is missing (the message says what to do)."""


def locate(path: str | None, deps: str | None) -> tuple[Path, Path | None] | None:
    """Resolve the checkout and the dependency folder from arguments or environment variables."""
    path = path or os.environ.get("AUDIOCRAFT_PATH")
    deps = deps or os.environ.get("AUDIOCRAFT_DEPS")
    if not path:
        return None
    return Path(path).expanduser(), (Path(deps).expanduser() if deps else None)


def load_if_given(path: str | None, deps: str | None) -> dict[str, types.ModuleType] | None:
    """:func:`load` the checkout named by arguments or environment, or ``None`` (saying why) when
    none is given or it cannot be loaded: the benchmarks then time audioenc alone."""
    located = locate(path, deps)
    if located is None:
        print("audiocraft: no checkout given (--audiocraft DIR or AUDIOCRAFT_PATH); timing audioenc only.")
        return None
    try:
        return load(*located)
    except ReferenceUnavailable as error:
        print(f"audiocraft: skipped: {error}")
        return None


def load(root: Path, deps: Path | None = None) -> dict[str, types.ModuleType]:
    """Import the reference's step modules from the checkout ``root``; returns them by file stem."""
    root = Path(root)
    if not (root / "audiocraft" / "modules" / "seanet.py").is_file():
        raise ReferenceUnavailable(
            f"{root} is not an audiocraft checkout (no audiocraft/modules/seanet.py); pass the folder "
            "that contains the 'audiocraft' package, e.g. a clone of facebookresearch/audiocraft."
        )
    if deps is not None:
        sys.path.insert(0, str(deps))
    _ensure_dora()
    for name, hint in (("einops", "einops"), ("torchaudio.transforms", "torchaudio==2.11.0")):
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - any import failure means: not usable here
            message = _missing(name, error, hint)
            if isinstance(error, OSError) and "torchaudio" in str(error):
                message += (
                    " torchaudio's compiled extension does not match this torch: delete the 'lib' folder "
                    "inside that torchaudio (the transforms used here are pure torch)."
                )
            raise ReferenceUnavailable(message) from error
    _load_flashy()
    for package in _PACKAGES:
        name = package.replace("/", ".")
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(root / package)]
            sys.modules[name] = module
    loaded = {}
    for file in _FILES:
        name = file[: -len(".py")].replace("/", ".")
        spec = importlib.util.spec_from_file_location(name, root / file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        parent, _, leaf = name.rpartition(".")
        setattr(sys.modules[parent], leaf, module)
        loaded[leaf] = module
        if name == "audiocraft.modules.conv":
            # What audiocraft/modules/__init__.py re-exports and the later files import from it.
            for attr in ("NormConv2d", "pad_for_conv1d", "StreamableConv1d", "StreamableConvTranspose1d"):
                setattr(sys.modules["audiocraft.modules"], attr, getattr(module, attr))
    return loaded


def _missing(name: str, error: Exception, hint: str) -> str:
    return (
        f"the audiocraft reference needs '{name}' ({type(error).__name__}: {error}); install it apart from "
        f"the project, e.g. `.venv/bin/pip install --no-deps --target /tmp/audiocraft-deps {hint}` and "
        "pass --audiocraft-deps /tmp/audiocraft-deps."
    )


def _load_flashy() -> None:
    """flashy's ``distrib`` and ``utils`` only: its ``__init__`` pulls in its solver (dora, colorlog)."""
    if "flashy" in sys.modules:
        return
    spec = importlib.util.find_spec("flashy")
    if spec is None or not spec.submodule_search_locations:
        raise ReferenceUnavailable(_missing("flashy", ModuleNotFoundError("No module named 'flashy'"), "flashy"))
    folder = Path(list(spec.submodule_search_locations)[0])
    package = types.ModuleType("flashy")
    package.__path__ = [str(folder)]
    sys.modules["flashy"] = package
    for leaf in ("distrib", "utils"):
        module_spec = importlib.util.spec_from_file_location(f"flashy.{leaf}", folder / f"{leaf}.py")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[f"flashy.{leaf}"] = module
        module_spec.loader.exec_module(module)
        setattr(package, leaf, module)
    package.averager = package.utils.averager


def _ensure_dora() -> None:
    try:
        importlib.import_module("dora.distrib")
    except ImportError:
        dora = types.ModuleType("dora")
        distrib = types.ModuleType("dora.distrib")
        distrib.rank = lambda: 0
        distrib.world_size = lambda: 1
        distrib.init = lambda *args, **kwargs: None
        dora.distrib = distrib
        sys.modules["dora"] = dora
        sys.modules["dora.distrib"] = distrib


@dataclass
class ReferenceStep:
    """audiocraft's models and losses for one configuration, and its training step."""

    encoder: nn.Module
    decoder: nn.Module
    adversary: nn.Module
    adversarial_loss: nn.Module
    mel_loss: nn.Module
    balancer: object
    optimizer: torch.optim.Optimizer

    def __call__(self, audio: torch.Tensor) -> dict[str, float]:
        """One training step on ``audio`` ``[B, C, T]`` (``CompressionSolver.run_step``, training)."""
        self.encoder.train()
        self.decoder.train()
        y = audio.clone()
        y_pred = self.decoder(self.encoder(audio))[..., : audio.shape[-1]]
        d_loss = self.adversarial_loss.train_adv(y_pred, y)
        adv, feat = self.adversarial_loss(y_pred, y)
        losses = {
            "adv_msstftd": adv,
            "feat_msstftd": feat,
            "l1": torch.nn.functional.l1_loss(y_pred, y),
            "msspec": self.mel_loss(y_pred, y),
        }
        g_loss = self.balancer.backward(losses, y_pred)
        self.optimizer.step()
        self.optimizer.zero_grad()
        values = {"d_loss": d_loss, "g_loss": g_loss, **losses}
        return {key: float(torch.as_tensor(value).detach()) for key, value in values.items()}


def build_reference_step(modules: dict[str, types.ModuleType], config, channels: int) -> ReferenceStep:
    """audiocraft's blocks at audioenc's configuration ``config`` (an :class:`audioenc.config.Config`).

    The values are taken from the audioenc config so that both sides compute the same thing:
    SEANet sizes, the MS-STFT discriminator (filters, FFT sizes, LeakyReLU slope), the
    multi-scale mel loss (window range, mels, f_min, normalisation, alphas), the loss weights, the
    balancer and Adam.
    """
    m, d, losses, optim = config.model, config.discriminator, config.losses, config.optim
    negative_slope = build_discriminator(d, m).discriminators[0].negative_slope  # audioenc: 0.3
    seanet = modules["seanet"]
    common = dict(
        channels=channels,
        dimension=m.dimension,
        n_filters=m.n_filters,
        n_residual_layers=m.n_residual_layers,
        ratios=list(m.ratios),
        activation="ELU",
        activation_params={"alpha": 1.0},
        norm="weight_norm",
        kernel_size=7,
        last_kernel_size=7,
        residual_kernel_size=3,
        dilation_base=2,
        causal=m.causal,
        pad_mode="constant",
        true_skip=True,
        compress=2,
        lstm=m.lstm,
    )
    encoder = seanet.SEANetEncoder(**common)
    decoder = seanet.SEANetDecoder(**common, final_activation=None, trim_right_ratio=1.0)
    adversary = modules["msstftd"].MultiScaleSTFTDiscriminator(
        filters=d.filters,
        in_channels=channels,
        out_channels=1,
        n_ffts=list(d.n_ffts),
        hop_lengths=list(d.hop_lengths),
        win_lengths=list(d.win_lengths),
        norm="weight_norm",
        activation="LeakyReLU",
        activation_params={"negative_slope": negative_slope},
    )
    adv = modules["losses"]
    disc_optimizer = torch.optim.Adam(adversary.parameters(), lr=optim.lr, betas=tuple(optim.betas))
    adversarial_loss = adv.AdversarialLoss(
        adversary,
        disc_optimizer,
        loss=adv.get_adv_criterion("hinge"),
        loss_real=adv.get_real_criterion("hinge"),
        loss_fake=adv.get_fake_criterion("hinge"),
        # `normalize` averages over a scale's layers (the solver's `adversarial.normalize`, default
        # true, as audioenc); it is not EnCodec's relative scale, which audiocraft never applies.
        loss_feat=adv.FeatureMatchingLoss(torch.nn.L1Loss(), normalize=True),
    )
    mel_loss = modules["specloss"].MultiScaleMelSpectrogramLoss(
        sample_rate=m.sample_rate,
        range_start=5,
        range_end=12,
        n_mels=64,
        f_min=0.0,
        f_max=None,
        normalized=True,
        alphas=False,
        floor_level=1e-5,
    )
    balancer = modules["balancer"].Balancer(
        {"adv_msstftd": losses.adv, "feat_msstftd": losses.feat, "l1": losses.l1, "msspec": losses.mel},
        balance_grads=losses.balance_grads,
        total_norm=losses.balancer_total_norm,
        ema_decay=losses.balancer_ema_decay,
        per_batch_item=True,
    )
    parameters = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(parameters, lr=optim.lr, betas=tuple(optim.betas))
    return ReferenceStep(encoder, decoder, adversary, adversarial_loss, mel_loss, balancer, optimizer)
