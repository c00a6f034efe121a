"""One DCGAN training step: the PyTorch tutorial's algorithm as small, commented functions (the loop: ``loop.py``).

One step: (1) update D on a real batch and a fake batch (BCE-with-logits, real -> 1, fake -> 0),
(2) update G with the non-saturating loss (fakes labelled real), then move the EMA generator.
Randomness that shapes the maths (latents, flips) comes from one CPU ``torch.Generator`` whose
state is checkpointed, and the data order is a pure function of (seed, step), so ``--resume``
reproduces an uninterrupted run exactly on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models.dcgan import Discriminator, Generator, init_weights
from training.augment import diff_augment, parse_policy
from training.config import TrainConfig
from training.distributed import Dist, wrap


@dataclass
class Nets:
    G: Generator
    D: Discriminator
    G_ema: Generator  # exponential moving average of G's weights (buffers copied)
    G_fwd: nn.Module  # what forward passes go through: G, or its DDP / compiled wrapper
    D_fwd: nn.Module
    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam


def build_nets(config: TrainConfig, device: torch.device, info: Dist) -> Nets:
    """Fresh G, D (paper init, seeded by config.seed), their EMA copy, wrappers and Adam optimizers.

    The weights are drawn on the CPU, from the CPU generator, and then moved: the same ``--seed`` starts
    from the same weights on any device (drawn on a GPU they would come from its own RNG)."""
    torch.manual_seed(config.seed)
    G, D = Generator(config.model), Discriminator(config.model)
    G.apply(init_weights)
    D.apply(init_weights)
    G, D = G.to(device), D.to(device)
    if config.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).requires_grad_(False)
    G_fwd, D_fwd = wrap(G, info, device, config.sync_bn), wrap(D, info, device, config.sync_bn)
    if config.compile:
        G_fwd, D_fwd = torch.compile(G_fwd), torch.compile(D_fwd)  # type: ignore[assignment]
    betas = (config.beta1, 0.999)
    return Nets(
        G,
        D,
        G_ema,
        G_fwd,
        D_fwd,
        torch.optim.Adam(G.parameters(), lr=config.lr, betas=betas),
        torch.optim.Adam(D.parameters(), lr=config.lr, betas=betas),
    )


class DataOrder:
    """Which cached images each step uses. Epoch ``e`` walks a permutation seeded by (seed, e);
    under torchrun rank ``r`` takes every ``world``-th index of it (like DistributedSampler) and
    the last partial batch is dropped. The position in the data is a function of the step alone."""

    def __init__(self, n: int, batch_size: int, seed: int, info: Dist) -> None:
        if batch_size % info.world:
            raise ValueError(f"--batch-size {batch_size} must be a multiple of the {info.world} torchrun processes")
        self.n, self.seed, self.rank, self.world = n, seed, info.rank, info.world
        self.per_rank = batch_size // info.world
        self.steps_per_epoch = n // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"--batch-size {batch_size} is larger than the dataset ({n} images)")
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, batch index within the epoch) of ``step``."""
        return divmod(step, self.steps_per_epoch)

    def indices(self, step: int) -> torch.Tensor:
        """This rank's image indices (per_rank,) for ``step``."""
        epoch, pos = self.position(step)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed((self.seed + epoch * 0x9E3779B97F4A7C15) % 2**64)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)[self.rank :: self.world]
        return self._perm[pos * self.per_rank : (pos + 1) * self.per_rank]


def upload(tensor: torch.Tensor, device: torch.device, pinned: bool = True) -> torch.Tensor:
    """A per-step input (latents, indices, flips) on ``device``. To a GPU through page-locked memory,
    without blocking: the copy overlaps the launches that follow instead of stalling the CPU. torch's
    pinned-memory cache keeps each staging buffer until its copy is done. On the CPU: the tensor itself."""
    if device.type != "cuda":
        return tensor
    if pinned:
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def real_batch(images: torch.Tensor, idx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """uint8 cache (N, 3, S, S) -> float batch (B, 3, S, S) in [-1, 1], mirrored where ``flip`` (B,) is set."""
    x = images[idx].float().div_(127.5).sub_(1.0)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast for G's and D's forwards under --amp (CUDA, or a CPU that the loop checked has native
    bf16). The convolutions run in bf16; the logits are cast back to fp32 before the BCE losses, and the
    optimizers, Adam moments, EMA and BN statistics stay fp32 (bf16's 8-bit mantissa would stall them)."""
    if config.amp:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


Augment = Callable[[torch.Tensor], torch.Tensor]


def augmenter(policy: str, rng: torch.Generator) -> Augment:
    """--augment's DiffAugment as one function of D's input batch, drawing from the loop's ``rng``."""
    names = parse_policy(policy)
    if not names:
        return _identity
    return functools.partial(diff_augment, policy=names, rng=rng)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def d_step(
    nets: Nets,
    real: torch.Tensor,
    z: torch.Tensor,
    amp: contextlib.AbstractContextManager[object],
    augment: Augment = _identity,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(1) Update D: maximise log D(x) + log(1 - D(G(z))), real and fake in separate batches (as the
    tutorial: each gets its own BatchNorm statistics). D sees both through ``augment`` (DiffAugment or
    the identity). Returns Loss_D, D(x), D(G(z)) and the (unaugmented) fakes."""
    nets.opt_D.zero_grad(set_to_none=True)
    with _no_sync(nets.D_fwd):  # DDP: the real half's gradients are all-reduced with the fake half's, once
        with amp:
            logits_real = nets.D_fwd(augment(real)).float()  # (B,)
        loss_real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
        loss_real.backward()
    with amp:
        fake = nets.G_fwd(z)  # (B, 3, S, S)
        logits_fake = nets.D_fwd(augment(fake.detach())).float()  # (B,); no gradient into G here
    loss_fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    loss_fake.backward()
    nets.opt_D.step()
    return (loss_real + loss_fake).detach(), logits_real.sigmoid().mean(), logits_fake.sigmoid().mean(), fake


def g_step(
    nets: Nets, fake: torch.Tensor, amp: contextlib.AbstractContextManager[object], augment: Augment = _identity
) -> tuple[torch.Tensor, torch.Tensor]:
    """(2) Update G with the non-saturating loss: maximise log D(G(z)) through the just-updated D.

    Only G steps here, so D's parameters are frozen for this backward: autograd then skips D's weight
    gradients (about a sixth of a CPU step) and G's gradients are unchanged. Not under DDP, whose
    reducer expects a gradient for every parameter it wraps; there ``no_sync`` at least skips the
    all-reduce of D's gradients, which the next D step throws away (``zero_grad``)."""
    nets.opt_G.zero_grad(set_to_none=True)
    freeze = _ddp(nets.D_fwd) is None
    nets.D.requires_grad_(not freeze)
    try:
        with _no_sync(nets.D_fwd):
            with amp:
                logits = nets.D_fwd(augment(fake)).float()  # (B,); the gradient flows back through augment
            loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # fakes labelled real
            loss.backward()
    finally:
        nets.D.requires_grad_(True)
    nets.opt_G.step()
    return loss.detach(), logits.sigmoid().mean()


def _ddp(module: nn.Module) -> DistributedDataParallel | None:
    """The DDP wrapper inside ``module`` (itself, or under torch.compile), if any."""
    inner = getattr(module, "_orig_mod", module)
    return inner if isinstance(inner, DistributedDataParallel) else None


def _no_sync(module: nn.Module) -> contextlib.AbstractContextManager[object]:
    """DDP's ``no_sync`` (backward accumulates locally, no all-reduce); nothing without DDP."""
    ddp = _ddp(module)
    return ddp.no_sync() if ddp is not None else contextlib.nullcontext()


def ema_beta(decay: float, step: int) -> float:
    """EMA decay ramped up from 0.1: early weights (random init) are forgotten fast."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model for parameters; buffers (BN statistics) are copied.

    Two foreach calls instead of a Python loop of ~30 kernels: each is the per-tensor ``lerp_`` /
    ``copy_`` (the same numbers: tests/training/test_cuda_training.py), fused across tensors on a GPU."""
    ema_params: list[torch.Tensor] = list(ema.parameters())
    params: list[torch.Tensor] = list(model.parameters())
    if len(ema_params) != len(params):
        raise ValueError(f"EMA has {len(ema_params)} parameters, the model {len(params)}")
    torch._foreach_lerp_(ema_params, params, 1.0 - beta)
    torch._foreach_copy_(list(ema.buffers()), list(model.buffers()))
