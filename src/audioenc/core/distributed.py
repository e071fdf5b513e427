"""DistributedDataParallel set-up from torchrun's environment (NCCL on GPUs, gloo on CPU).

Launch with ``torchrun --nproc_per_node=N -m audioenc train …``; multi-node with torchrun's own
``--nnodes/--node_rank/--rdzv_endpoint`` flags. Without torchrun everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from audioenc.errors import UserError


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str) -> torch.device:
    """``--device NAME`` as a :class:`torch.device`; ``auto`` is the local GPU (``cuda:LOCAL_RANK``)
    when torch sees one, else the CPU. A name torch does not know (``tpu``) or a GPU that is not
    there is a :class:`~audioenc.errors.UserError`."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError) as error:
        raise UserError(f"--device {name}: not a device torch knows ({error}); use cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} asks for a GPU but torch sees none; use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(
                f"--device {name}: torch sees {torch.cuda.device_count()} GPU(s); "
                f"use cuda:0 … cuda:{torch.cuda.device_count() - 1}."
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"--device {name}: MPS is not available on this machine; use --device cpu.")
    elif device.type != "cpu":
        raise UserError(f"--device {name}: audioenc runs on cpu, cuda or mps, not {device.type}.")
    return device


def all_ranks_agree(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is True on every rank (one all-reduce; used for skip decisions)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)


def wait_for_all_ranks() -> None:
    """Barrier (no-op without torchrun). Called once a run ended normally, so that no rank tears
    the process group down while another is still in its last collective or writing its files."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
