"""The gradient balancer: losses combined by their share of the gradient, not by raw scale."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import autograd


class Balancer:
    """Combine several losses of one model output so that each gets a chosen share of the gradient.

    Given the model output ``y`` (e.g. reconstructed audio ``[B, C, T]``) and losses
    ``L_i(y)`` with weights ``w_i``, the balancer computes the partial gradients
    ``g_i = dL_i/dy`` and back-propagates, in ONE backward pass through the model,

        G = Σ_i  total_norm · g_i / avg_i · w_i / Σ_j w_j

    where ``avg_i`` is a bias-corrected exponential moving average (decay ``ema_decay``) of
    ``‖g_i‖`` — with ``per_batch_item`` the L2 norm of each batch item's gradient, averaged over
    the batch. Each loss therefore contributes ``w_i / Σw`` of ``total_norm`` on average, whatever
    its intrinsic scale (EnCodec, Défossez et al. 2022, Sec. 3.4).

    With ``balance_grads=False`` the gradient is the plain weighted sum ``Σ w_i g_i``.

    Extra penalties that do not depend on ``y`` (the RVQ commitment loss, which depends on the
    encoder only) join the same backward pass unbalanced, with weight 1.

    Under ``torch.distributed`` the per-step norms are averaged across ranks *before* the EMA, so
    every rank holds the same EMA state and applies the same scales.

    Usage::

        balancer = Balancer({"l1": 0.1, "mel": 1.0, "adv": 3.0, "feat": 3.0})  # or LossTable.weights()
        losses = {"l1": l1(y, y_hat), "mel": mel(y, y_hat), "adv": ..., "feat": ...}
        effective_loss = balancer.backward(losses, y_hat, penalty=commitment)
        optimizer.step()

    Args:
        weights: weight of each loss; the keys passed to :meth:`backward` must be exactly these.
        balance_grads: rescale gradients to shares (True) or use plain weights (False).
        total_norm: the reference norm of the combined gradient.
        ema_decay: decay of the norm EMA (0 means: no averaging, use this step's norms).
        per_batch_item: measure the gradient norm per batch item, then average over the batch.
        epsilon: keeps the division finite when a gradient is zero.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        balance_grads: bool = True,
        total_norm: float = 1.0,
        ema_decay: float = 0.999,
        per_batch_item: bool = True,
        epsilon: float = 1e-12,
    ) -> None:
        if not weights:
            raise ValueError("Balancer needs at least one weighted loss; got an empty weights dict.")
        negative = {k: w for k, w in weights.items() if w < 0}
        if negative:
            raise ValueError(f"Balancer weights must be >= 0; got {negative}.")
        if sum(weights.values()) <= 0:
            raise ValueError(f"Balancer weights are all zero ({dict(weights)}): nothing would be trained.")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1); got {ema_decay}.")
        self.weights = dict(weights)
        self.balance_grads = balance_grads
        self.total_norm = total_norm
        self.ema_decay = ema_decay
        self.per_batch_item = per_batch_item
        self.epsilon = epsilon
        # Bias-corrected EMA: avg = ema_sum / ema_count, both decayed each step.
        self._ema_sum: dict[str, float] = {}
        self._ema_count = 0.0
        self.shares: dict[str, float] = {}
        """Share of the average gradient norm that came from each loss at the last step (for logging)."""

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        output: torch.Tensor,
        penalty: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Back-propagate the balanced gradient of ``losses`` through ``output``.

        Args:
            losses: scalar losses keyed exactly like ``weights``; each must depend on ``output``.
            output: the model output the losses are computed from, e.g. ``[B, C, T]``.
            penalty: optional scalar added unbalanced to the same backward pass.

        Returns:
            The effective loss ``Σ scale_i · L_i`` (detached), the quantity this step minimises.
        """
        if set(losses) != set(self.weights):
            raise KeyError(
                f"Balancer got losses {sorted(losses)} but was built with weights for "
                f"{sorted(self.weights)}; the keys must match exactly."
            )
        grads: dict[str, torch.Tensor] = {}
        norms = []
        for name in self.weights:  # fixed order: identical reductions on every rank
            (grad,) = autograd.grad(losses[name], [output], retain_graph=True, allow_unused=True)
            if grad is None:
                raise ValueError(
                    f"Loss '{name}' does not depend on the balanced output tensor; compute it from "
                    "the model output passed to Balancer.backward, or pass it as `penalty`."
                )
            grads[name] = grad
            if self.per_batch_item:
                norms.append(grad.flatten(1).norm(dim=1).mean())
            else:
                norms.append(grad.norm())
        step_norms = torch.stack(norms).detach().double()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(step_norms, op=dist.ReduceOp.SUM)
            step_norms /= dist.get_world_size()
        avg_norms = self._update_ema(dict(zip(self.weights, step_norms.tolist())))

        total_avg = sum(avg_norms.values())
        self.shares = {k: v / total_avg if total_avg > 0 else 0.0 for k, v in avg_norms.items()}
        total_weight = sum(self.weights.values())
        combined = torch.zeros_like(output)
        effective_loss = torch.zeros((), dtype=output.dtype, device=output.device)
        for name, grad in grads.items():
            if self.balance_grads:
                scale = self.weights[name] / total_weight * self.total_norm / (self.epsilon + avg_norms[name])
            else:
                scale = self.weights[name]
            combined.add_(grad, alpha=scale)
            effective_loss += scale * losses[name].detach()

        if penalty is not None and penalty.requires_grad:
            autograd.backward([output, penalty], [combined, torch.ones_like(penalty)])
        else:
            output.backward(combined)
        return effective_loss

    def _update_ema(self, norms: dict[str, float]) -> dict[str, float]:
        self._ema_count = self._ema_count * self.ema_decay + 1.0
        for name, value in norms.items():
            self._ema_sum[name] = self._ema_sum.get(name, 0.0) * self.ema_decay + value
        return {name: self._ema_sum[name] / self._ema_count for name in norms}

    def state_dict(self) -> dict:
        """The EMA state, for exact resume."""
        return {"ema_sum": dict(self._ema_sum), "ema_count": self._ema_count}

    def load_state_dict(self, state: Mapping) -> None:
        self._ema_sum = dict(state["ema_sum"])
        self._ema_count = float(state["ema_count"])
