"""Devices, mixed precision and ``torchrun``: what every captum_cf trainer shares.

Under ``torchrun --nproc-per-node K -m captum_cf train ...`` each process reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from its environment; :func:`distributed_context` joins the
process group once (``env://`` rendezvous; ``gloo`` on the CPU, ``nccl`` on CUDA, one GPU per
process: ``cuda:LOCAL_RANK``). Without those variables (a plain ``python`` or ``captum-cf`` run)
it returns the single-process context and nothing is initialised.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "AMP_MODES",
    "DistributedContext",
    "distributed_context",
    "resolve_device",
    "check_amp",
    "autocast",
    "rank_seed",
    "shutdown",
]

#: accepted values of ``amp``: None (float32) or ``"bf16"`` (bfloat16 autocast, CUDA only)
AMP_MODES = (None, "bf16")
#: per-rank seeds: rank r > 0 draws its batches from ``seed + _RANK_STRIDE * r``
_RANK_STRIDE = 1_000_003


@dataclass(frozen=True)
class DistributedContext:
    """Rank, world size and local rank of this process (``world_size == 1``: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files, logs and shows progress."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (no-op when not distributed)."""
        if self.enabled:
            dist.barrier()

    def average_gradients(self, modules: Iterable[nn.Module]) -> None:
        """Replace every parameter gradient by its mean over the processes (all-reduce).

        The arithmetic of ``DistributedDataParallel``'s gradient synchronisation, usable where
        a step cannot run through a DDP wrapper (several forward passes or a double backward
        before one optimiser step, as in the GAN trainers' gradient penalty).
        """
        if not self.enabled:
            return
        grads = [p.grad for module in modules for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective, not one per tensor
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_modules(self, modules: Iterable[nn.Module]) -> None:
        """Copy rank 0's parameters and buffers to every process."""
        if not self.enabled:
            return
        for module in modules:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def gather(self, obj: Any) -> list[Any]:
        """``[obj of rank 0, obj of rank 1, ...]`` on every process."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def distributed_context(device: torch.device | None = None) -> DistributedContext:
    """The context of this process; joins the process group on first use under ``torchrun``.

    Args:
        device (torch.device, optional): the training device; decides the backend (``nccl`` for
            CUDA, ``gloo`` otherwise) when the group is created here.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
        atexit.register(shutdown)  # several commands of one process share the group
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def shutdown() -> None:
    """Leave the process group if this process joined one (runs at exit of a torchrun process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"cpu"``/``"cuda"``/``None`` (CPU) -> a concrete device, ``cuda:LOCAL_RANK`` under torchrun.

    Raises:
        ValueError: for another device name, or ``"cuda"`` on a machine without CUDA.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}") from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but torch finds no CUDA device here")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    return dev


def check_amp(amp: str | None, device: torch.device) -> str | None:
    """Validate ``amp``: None, or ``"bf16"`` on a CUDA device.

    Raises:
        ValueError: naming ``amp`` and what is accepted.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be None or 'bf16', got {amp!r}")
    if amp == "bf16" and device.type != "cuda":
        raise ValueError(
            f"amp='bf16' (--amp bf16) needs a CUDA device; training runs on {device}: "
            "drop --amp or pass --device cuda"
        )
    return amp


def autocast(amp: str | None, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA for ``amp="bf16"``, else a no-op context."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def rank_seed(seed: int, context: DistributedContext | None = None) -> int:
    """``seed`` on rank 0 (single-process runs are unchanged), a distinct seed on other ranks."""
    if context is not None:
        rank = context.rank
    else:
        rank = int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    return seed if rank == 0 else seed + _RANK_STRIDE * rank
