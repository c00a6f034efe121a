"""torchrun support: one process per device, DDP over nccl (CUDA) or gloo (CPU); rank 0 writes.

Without torchrun's environment (``WORLD_SIZE`` unset or 1) everything here is a no-op, so the
single-process path has no distributed code in it.

Two process groups. The default one (nccl on CUDA) carries the training steps' collectives, with
``STEP_TIMEOUT``: long enough for rank 0's sampling, evaluation and snapshots between steps. Waits
that can last much longer, while one rank per node decodes the dataset or rank 0 writes the final
export, go through ``barrier`` on a CPU (gloo) group with ``SLOW_TIMEOUT``, so NCCL never sits in
a barrier for the data phase (torch's default 10 minutes killed a cold CelebA cache on slow storage).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models.cuda import unavailable_reason

STEP_TIMEOUT = timedelta(minutes=30)  # a step's collective (nccl): covers rank 0's eval and snapshots in between
SLOW_TIMEOUT = timedelta(hours=6)  # ``barrier`` (gloo): decoding all of CelebA on slow shared storage, the export


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    cpu_group: Any = None  # the gloo group ``barrier`` waits on (None: the default group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """``auto|cpu|cuda`` -> a device; asking for CUDA without one is an error, not a silent fallback."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device cuda: no CUDA device is available ({unavailable_reason()})")
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
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    # device_id: NCCL binds this rank to its GPU at once (no guessing, no lazy init at the first collective)
    dist.init_process_group(
        backend="nccl" if cuda else "gloo", timeout=STEP_TIMEOUT, device_id=device if cuda else None
    )
    cpu_group = dist.new_group(backend="gloo", timeout=SLOW_TIMEOUT)
    return Dist(rank, world, local_rank, cpu_group), device


def wrap(module: nn.Module, info: Dist, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """DDP-wrap ``module`` under torchrun; BatchNorm buffers are broadcast from rank 0 each forward. With
    ``sync_bn`` its BatchNorm layers become SyncBatchNorm first (``sync_batchnorm``; CUDA only)."""
    if not info.enabled:
        return module
    if sync_bn:
        sync_batchnorm(module)
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with its BatchNorm layers replaced, in place, by SyncBatchNorm (batch statistics over every
    rank): the same parameters and buffers, so the same state_dict."""
    for name, child in list(module.named_children()):
        setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    return module


def gather(tensor: torch.Tensor, info: Dist, device: torch.device) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (same shape on all ranks), in rank order, on the CPU. Collective: all ranks call it."""
    if not info.enabled:
        return [tensor]
    local = tensor.to(device)  # nccl only moves CUDA tensors
    parts = [torch.empty_like(local) for _ in range(info.world)]
    dist.all_gather(parts, local)
    return [p.cpu() for p in parts]


def barrier(info: Dist) -> None:
    """Every rank waits here, on the CPU group (``SLOW_TIMEOUT``): for waits that have nothing to do with a step."""
    if info.enabled:
        dist.barrier(group=info.cpu_group)


def shutdown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
