"""torchrun support: one process per device, DDP over nccl (CUDA) or gloo (CPU); rank 0 writes.

Without torchrun's environment (``WORLD_SIZE`` unset or 1) everything here is a no-op, so the
single-process path has no distributed code in it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """``auto|cpu|cuda`` -> a device; asking for CUDA without one is an error, not a silent fallback."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def init_distributed(device_choice: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_choice)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank), device


def wrap(module: nn.Module, info: Dist, device: torch.device) -> nn.Module:
    """DDP-wrap ``module`` under torchrun; BatchNorm buffers are broadcast from rank 0 each forward."""
    if not info.enabled:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def gather(tensor: torch.Tensor, info: Dist, device: torch.device) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (same shape on all ranks), in rank order, on the CPU. Collective: all ranks call it."""
    if not info.enabled:
        return [tensor]
    local = tensor.to(device)  # nccl only moves CUDA tensors
    parts = [torch.empty_like(local) for _ in range(info.world)]
    dist.all_gather(parts, local)
    return [p.cpu() for p in parts]


def barrier(info: Dist) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
