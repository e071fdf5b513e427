"""The EnCodec training step, validation and the trainer's checkpoint state (the epoch loop that
drives them is :mod:`audioenc.training.loop`).

One generator step, in the order of audiocraft's compression solver:

1. forward: ``y -> encoder -> (RVQ) -> decoder -> ŷ`` (plus the commitment penalty);
2. discriminator update on the detached ``ŷ`` (every ``discriminator_every`` steps), hinge loss;
3. generator losses with the discriminator frozen: L1 (λt), multi-scale mel (λf), adversarial (λg)
   and feature matching (λfeat);
4. the balancer: one backward pass of the balanced gradient, the commitment penalty included;
5. optional gradient clipping; the optimizer step; the optional EMA of the weights.

Validation scores fixed segments (the loop calls it after every epoch) and never trains anything.
The best checkpoint is chosen by a reconstruction metric (mel distance by default), never by an
adversarial total.
"""

from __future__ import annotations

import contextlib
import math
import signal
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from audioenc.config import Config
from audioenc.core.distributed import DistributedContext, all_ranks_agree
from audioenc.losses.adversarial import discriminator_adversarial_loss
from audioenc.losses.balancer import Balancer
from audioenc.losses.spectral import MultiScaleMelLoss
from audioenc.losses.table import GeneratorView, LossTable
from audioenc.metrics import perceptual
from audioenc.metrics.reconstruction import evaluate_codec
from audioenc.models.codec import CodecModel, build_discriminator
from audioenc.models.files import export_model
from audioenc.training import checkpoint
from audioenc.training.precision import LayerError, guard_bf16

# Items per rank the bf16 layer check runs on (the bad kernels measured so far fail at any batch
# size; the check of the paper preset at 8 items costs about one training step).
BF16_CHECK_BATCH = 8


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps with a NaN or Inf loss."""


@dataclass
class StepResult:
    """Detached scalars of one training step (``skipped`` when a loss was not finite)."""

    values: dict[str, float] = field(default_factory=dict)
    skipped: bool = False


class Trainer:
    """Owns the models, optimizers, balancer and run folder of one training run.

    Args:
        config: the resolved configuration.
        run_dir: the run folder (checkpoints, logs, metrics).
        device: where to train.
        context: the distributed context (rank 0 of 1 without torchrun).
    """

    def __init__(
        self, config: Config, run_dir: Path, device: torch.device, context: DistributedContext | None = None
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.context = context or DistributedContext()
        torch.manual_seed(config.train.seed)

        self.model = CodecModel.from_config(config.model).to(device)
        self.discriminator = build_discriminator(config.discriminator, config.model).to(device)
        # Layers whose bf16 kernels compute wrong results here run in float32 (precision.py).
        self.float32_layers: list[LayerError] = []
        if config.train.precision == "bf16":
            self.float32_layers = self._guard_bf16()
        # DDP only where a backward goes through parameters: the generator step and the
        # discriminator update. Generator losses call the plain discriminator module.
        self.model_ddp: nn.Module = self.model
        self.discriminator_ddp: nn.Module = self.discriminator
        if self.context.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model_ddp = DistributedDataParallel(self.model, device_ids=ids)
            self.discriminator_ddp = DistributedDataParallel(self.discriminator, device_ids=ids)
        # What the generator losses call: no DDP (no parameter gradients there).
        self.discriminator_frozen: nn.Module = self.discriminator
        if config.train.compile:
            # The balancer's per-loss gradients re-use the graph (retain_graph=True), which compiled
            # backwards that donate their saved buffers refuse; donation only saves memory.
            import torch._functorch.config as functorch_config

            functorch_config.donated_buffer = False
            # Only the training step's calls are compiled (fixed shapes); validation, export and
            # checkpoints use the plain modules, so their state-dict keys do not change.
            self.model_ddp = torch.compile(self.model_ddp)
            self.discriminator_frozen = torch.compile(self.discriminator)
            self.discriminator_ddp = (
                self.discriminator_frozen
                if self.discriminator_ddp is self.discriminator
                else torch.compile(self.discriminator_ddp)
            )

        optim = config.optim
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay
        )
        self.optimizer_disc = torch.optim.Adam(
            self.discriminator.parameters(), lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay
        )
        self.ema: AveragedModel | None = None
        if optim.weights_ema_decay > 0:
            self.ema = AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(optim.weights_ema_decay), use_buffers=True
            )

        losses = config.losses
        # EnCodec paper Eq. 1: alpha_i = 1 and a normalised STFT (audiocraft msspec: alphas false, normalized true).
        self.mel_loss = MultiScaleMelLoss(sample_rate=config.model.sample_rate, alphas=False, normalized=True).to(
            device
        )
        balancer_options = dict(
            balance_grads=losses.balance_grads,
            total_norm=losses.balancer_total_norm,
            ema_decay=losses.balancer_ema_decay,
        )
        self.losses = LossTable.from_config(losses, self.mel_loss)
        self.balancer = Balancer(self.losses.weights(adversarial=True), **balancer_options)
        # Before train.adversarial_warmup_steps the generator sees only the reconstruction losses
        # (the discriminator already trains); 0 = EnCodec's schedule, adversarial from step 0.
        self.warmup_balancer = Balancer(self.losses.weights(adversarial=False), **balancer_options)
        self.step = 0
        self.best_value = math.inf
        self.best_step = 0  # the step of the best checkpoint
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0
        # The validation rows (``metrics.jsonl``) up to ``step``: saved in every checkpoint, so the
        # file can be rebuilt to match the checkpoint a run resumes from. ``None`` after loading a
        # checkpoint from before it was saved (the loop then rebuilds it from the file).
        self.history: list[dict] | None = []

    # ------------------------------------------------------------------ the step
    def train_step(self, audio: torch.Tensor) -> StepResult:
        """One generator step (and discriminator update) on ``audio`` ``[B, C, T]``."""
        config = self.config
        self.model.train()
        self.discriminator.train()
        audio = audio.to(self.device, non_blocking=True)
        if self.model.normalize:
            # Train at the level the codec works at: losses, discriminator and balancer all see each
            # segment at unit RMS (the codec's own normalisation then divides by ~1).
            audio = audio / self.model.input_scale(audio)

        # 1. forward
        with self._autocast():
            output = self.model_ddp(audio)
        # Losses in the input's precision (float32 normally; autocast may return bf16).
        reconstruction = output.audio.to(audio.dtype)
        values: dict[str, float] = {}

        # 2. discriminator update on the detached reconstruction (real and fake in one batch)
        if self.step % config.train.discriminator_every == 0:
            values["d_loss"] = self._discriminator_update(audio, reconstruction.detach())

        # 3. generator losses, discriminator frozen (its parameters get no gradient here)
        adversarial = self.step >= config.train.adversarial_warmup_steps
        losses = self._generator_losses(audio, reconstruction, adversarial)
        balancer = self.balancer if adversarial else self.warmup_balancer
        penalty = output.penalty.to(audio.dtype)
        values.update({key: value.item() for key, value in losses.items()})
        values["commitment"] = penalty.item()
        finite = all(math.isfinite(v) for v in values.values())
        if not all_ranks_agree(finite, self.device):
            return self._skip_step(values)

        # 4. balancer: one backward of the balanced gradient (+ commitment penalty)
        self.optimizer.zero_grad(set_to_none=True)
        values["effective_loss"] = balancer.backward(losses, reconstruction, penalty=penalty).item()

        # 5. clip, step, EMA
        if config.optim.grad_clip > 0:
            values["grad_norm"] = nn.utils.clip_grad_norm_(self.model.parameters(), config.optim.grad_clip).item()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        if output.codes is not None:
            values["bandwidth_kbps"] = float(output.bandwidth)
        values.update({f"share_{k}": v for k, v in balancer.shares.items()})
        self.nonfinite_in_row = 0
        self.step += 1
        return StepResult(values)

    def _discriminator_update(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        batch = real.shape[0]
        with self._autocast():
            logits, _ = self.discriminator_ddp(torch.cat([real, fake], dim=0))
        real_logits = [scale[:batch].to(real.dtype) for scale in logits]
        fake_logits = [scale[batch:].to(real.dtype) for scale in logits]
        loss = discriminator_adversarial_loss(real_logits, fake_logits, kind=self.config.losses.adversarial)
        if not all_ranks_agree(bool(torch.isfinite(loss)), self.device):
            self.optimizer_disc.zero_grad(set_to_none=True)
            return float("nan")
        self.optimizer_disc.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_disc.step()
        return loss.item()

    def _generator_losses(
        self, audio: torch.Tensor, reconstruction: torch.Tensor, adversarial: bool = True
    ) -> dict[str, torch.Tensor]:
        """The loss table's active terms on ``audio`` and ``reconstruction`` ``[B, C, T]``."""
        view = GeneratorView(audio, reconstruction)
        if self.losses.needs_discriminator(adversarial):
            self._judge(view)
        return self.losses.compute(view, adversarial)

    def _judge(self, view: GeneratorView) -> None:
        """The frozen discriminator's logits and features on ``view`` (its parameters get no gradient)."""
        self.discriminator.requires_grad_(False)
        try:
            with self._autocast():
                view.fake_logits, view.fake_features = self.discriminator_frozen(view.reconstruction)
                with torch.no_grad():
                    _, view.real_features = self.discriminator_frozen(view.audio)
        finally:
            self.discriminator.requires_grad_(True)

    def _skip_step(self, values: dict[str, float]) -> StepResult:
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_in_row += 1
        self.nonfinite_total += 1
        limit = self.config.train.max_nonfinite_steps
        if self.nonfinite_in_row >= limit:
            raise NonFiniteLossError(
                f"{limit} consecutive steps had a NaN/Inf loss (last: {values}); the run stopped at step "
                f"{self.step}. The last good checkpoint in {self.run_dir} is intact: lower optim.lr, enable "
                "optim.grad_clip, or check the data, then --resume."
            )
        self.step += 1  # the batch is consumed; the data position moves on
        return StepResult(values, skipped=True)

    def _guard_bf16(self) -> list[LayerError]:
        """Check every layer bf16 autocast touches on the run's shapes; run the wrong ones in float32."""
        config = self.config
        batch = min(config.train.batch_size // self.context.world_size, BF16_CHECK_BATCH)
        length = round(config.data.segment_seconds * config.model.sample_rate)
        # Unit-level noise (the level the trainer normalises to), from its own generator: the
        # global RNG, which later draws quantizer dropout, is left as it was.
        generator = torch.Generator().manual_seed(config.train.seed)
        audio = torch.randn(batch, config.model.channels, length, generator=generator).to(self.device)
        wrong = guard_bf16(self.model, self.discriminator, audio)
        for error in wrong:
            warnings.warn(
                f"bf16: {error.name} ({error.layer}) computes a wrong result with this machine's bf16 kernels "
                f"(relative error: output {error.output:.0%}, input gradient {error.input_grad:.0%}, weight "
                f"gradient {error.weight_grad:.0%}; rounding gives about 1%); that layer runs in float32.",
                stacklevel=3,
            )
        return wrong

    def _autocast(self):
        if self.config.train.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ validation
    def validate(self, batches) -> dict[str, float]:
        """Reconstruction metrics on fixed segments (see :func:`evaluate_codec`); trains nothing.

        Uses the EMA weights when ``optim.weights_ema_decay > 0``. Every ``train.perceptual_every``
        epochs also ViSQOL (or the measures ``train.perceptual_measures`` names) on a few segments.
        """
        model = self.ema.module if self.ema is not None else self.model
        return evaluate_codec(
            model,
            batches,
            self.config.model.sample_rate,
            self.device,
            perceptual=self.perceptual_measures_now(),
            perceptual_items=self.config.train.perceptual_segments,
        )

    def perceptual_measures_now(self) -> tuple[str, ...]:
        """The perceptual measures this validation scores: ``train.perceptual_measures`` every
        ``train.perceptual_every`` epochs (epoch 0, the untrained model, included), those installed."""
        train = self.config.train
        epoch = self.step // train.updates_per_epoch
        if not train.perceptual_every or not train.perceptual_segments or epoch % train.perceptual_every:
            return ()
        return tuple(name for name in train.perceptual_measures if perceptual.available(name))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = {
            "config": self.config.to_dict(),
            "step": self.step,
            "best_value": self.best_value,
            "best_step": self.best_step,
            "nonfinite_total": self.nonfinite_total,
            "model": self.model.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_disc": self.optimizer_disc.state_dict(),
            "balancer": self.balancer.state_dict(),
            "warmup_balancer": self.warmup_balancer.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "history": [dict(row) for row in self.history or []],
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict, path: Path) -> None:
        checkpoint.check_compatible(state["config"], self.config, path)
        self.model.load_state_dict(state["model"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.optimizer_disc.load_state_dict(state["optimizer_disc"])
        # The optimiser state carries the checkpoint's hyper-parameters; the config's win (they are
        # the same unless a resume was allowed to change them: --allow-changed-training).
        optim = self.config.optim
        for optimizer in (self.optimizer, self.optimizer_disc):
            for group in optimizer.param_groups:
                group.update(lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
        self.balancer.load_state_dict(state["balancer"])
        self.warmup_balancer.load_state_dict(state["warmup_balancer"])
        if self.ema is not None:
            if "ema" not in state:
                raise ValueError(f"{path} has no weight EMA but optim.weights_ema_decay > 0; resume without it.")
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.best_value = float(state["best_value"])
        # A checkpoint without best_step counts as best at its own step: the warm-up reset of best_value
        # (training.loop) must not fire again on resume.
        self.best_step = int(state.get("best_step", state["step"]))
        self.nonfinite_total = int(state["nonfinite_total"])
        history = state.get("history")
        self.history = [dict(row) for row in history] if history is not None else None
        torch.set_rng_state(state["rng_torch"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])

    def save(self, name: str) -> Path:
        """Atomically write ``checkpoint_{name}.pt`` (rank 0 only)."""
        path = self.run_dir / f"checkpoint_{name}.pt"
        if self.context.is_main:
            checkpoint.save_training_state(path, self.state_dict())
        return path

    def export_best(self) -> None:
        if self.context.is_main:
            model = self.ema.module if self.ema is not None else self.model
            export_model(self.run_dir, "model_best", model, self.config.model)


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so ``last`` is saved before exiting."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
