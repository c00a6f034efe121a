"""Inversion: the latent z whose face G(z) looks like a target image.

    result = invert(G, E, target, mode="faithful", steps=200, starts=1, seed=0)

``fast`` is the encoder alone: z = E(x), one forward each. ``faithful`` refines E(x) and ``starts - 1``
perturbations of it with Adam, all starts of all images in one batch through G, on

    pixel x (MSE + L1) + ssim x (1 - SSIM)                    fidelity to the target
    + consistency x |z - E(G(z))|^2 / nz                      z stays where E maps faces (and edits work)
    + shell x (|z| / sqrt(nz) - 1)^2                          z stays on the N(0, I) shell, |z| ~ sqrt(nz)

and keeps, per image, the start with the lowest objective. Without the last two terms Adam drifts off
the shell into latents that reproduce the pixels but where the edit directions, fitted on N(0, I)
latents, no longer do what they say.

Determinism: the perturbations come from a CPU ``torch.Generator`` seeded with ``seed`` (never the global
RNG) and are the same for every image of a batch, so on the CPU the same image with the same settings
and the same batch gives the same latent, bit for bit. G and E must be in eval mode; their weights
are never touched (the gradient is taken with respect to z only).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import torch

from inversion.encoder import Encoder
from inversion.fidelity import image_loss, psnr, ssim
from models.dcgan import Generator

Mode = Literal["fast", "faithful"]
MODES: tuple[Mode, ...] = ("fast", "faithful")
DEFAULT_STEPS = 200
DEFAULT_STARTS = 1  # more starts cost linearly and gained nothing on the demo (docs/inversion/design.md)
MAX_STEPS = 5000
MAX_STARTS = 64


@dataclass(frozen=True)
class Objective:
    """The refinement's loss weights and optimiser settings (the defaults were tuned on held-out CelebA)."""

    pixel: float = 4.0  # on 16 held-out faces: +0.3 dB median PSNR over 1.0, -0.02 SSIM
    ssim: float = 0.5
    consistency: float = 0.02
    shell: float = 0.05
    lr: float = 0.1  # Adam, cosine-decayed to 0 over the steps
    spread: float = 0.5  # std of the perturbation added to E(x) for the extra starts


@dataclass(frozen=True)
class InversionResult:
    z: torch.Tensor  # (N, nz) float32
    reconstruction: torch.Tensor  # (N, C, S, S) in [-1, 1], G(z)
    psnr: torch.Tensor  # (N,) dB against the target
    ssim: torch.Tensor  # (N,)
    mode: str
    steps: int
    starts: int
    seconds: float


def _check(G: Generator, E: Encoder | None, target: torch.Tensor) -> None:
    config = G.config
    expected = (config.channels, config.image_size, config.image_size)
    if target.dim() != 4 or tuple(target.shape[1:]) != expected:
        raise ValueError(f"target must be (N, {', '.join(map(str, expected))}), got {tuple(target.shape)}")
    if not target.is_floating_point() or not torch.isfinite(target).all():
        raise ValueError("target must hold finite floats in [-1, 1]")
    if G.training or (E is not None and E.training):
        raise RuntimeError("invert() needs eval-mode networks (train-mode BatchNorm mixes the batch)")
    if E is not None and not E.config.fits(config):
        raise ValueError(f"encoder {E.config} does not fit generator {config}")


def objective_terms(
    G: Generator, E: Encoder | None, z: torch.Tensor, target: torch.Tensor, objective: Objective
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-row objective (M,), G(z) (M, C, S, S)) for latents z (M, nz) against targets (M, C, S, S)."""
    image = G(z)  # (M, C, S, S)
    loss = image_loss(image, target, objective.pixel, objective.ssim)
    nz = z.shape[1]
    if E is not None and objective.consistency:
        loss = loss + objective.consistency * (z - E(image)).pow(2).mean(1)
    if objective.shell:
        loss = loss + objective.shell * (z.norm(dim=1) / math.sqrt(nz) - 1.0).pow(2)
    return loss, image


def refine(
    G: Generator,
    E: Encoder | None,
    target: torch.Tensor,
    z0: torch.Tensor,
    steps: int,
    objective: Objective = Objective(),
) -> torch.Tensor:
    """Adam from the starts ``z0`` (N, K, nz) towards ``target`` (N, C, S, S): the best start's z (N, nz).

    All N*K rows go through G as one batch; each row's gradient depends on that row alone.
    """
    n, k, nz = z0.shape
    x = target.detach().repeat_interleave(k, dim=0)  # (N*K, C, S, S), row i*k + j: image i, start j
    z = z0.detach().reshape(n * k, nz).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=objective.lr)
    with torch.enable_grad():
        for step in range(steps):
            for group in optimizer.param_groups:  # cosine decay to 0 at the last step
                group["lr"] = objective.lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
            loss, _ = objective_terms(G, E, z, x, objective)
            (z.grad,) = torch.autograd.grad(loss.sum(), [z])  # z only: G's and E's weights stay untouched
            optimizer.step()
    with torch.inference_mode():
        final, _ = objective_terms(G, E, z.detach(), x, objective)
        best = final.view(n, k).argmin(dim=1)  # (N,)
        return z.detach().view(n, k, nz)[torch.arange(n), best].clone()


def perturbed_starts(z: torch.Tensor, starts: int, spread: float, seed: int) -> torch.Tensor:
    """(N, nz) -> (N, starts, nz): z itself, then ``starts - 1`` perturbations drawn from ``seed`` (the same
    offsets for every image, so an image's result does not depend on its neighbours' count)."""
    g = torch.Generator("cpu").manual_seed(seed)
    offsets = torch.randn(starts - 1, z.shape[1], generator=g) * spread  # (K-1, nz)
    offsets = torch.cat([torch.zeros(1, z.shape[1]), offsets]).to(z.device)  # (K, nz)
    return z[:, None, :] + offsets[None]


def invert(
    G: Generator,
    E: Encoder,
    target: torch.Tensor,
    *,
    mode: Mode = "faithful",
    steps: int = DEFAULT_STEPS,
    starts: int = DEFAULT_STARTS,
    seed: int = 0,
    objective: Objective = Objective(),
) -> InversionResult:
    """Invert ``target`` (N, C, S, S) in [-1, 1] (on G's device): see the module docstring.

    ``fast`` ignores ``steps`` and ``starts`` (the result says 0 steps, 1 start). Raises ValueError
    naming the argument for a bad mode, count or target.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "faithful" and not (1 <= steps <= MAX_STEPS and 1 <= starts <= MAX_STARTS):
        raise ValueError(f"steps must be in 1..{MAX_STEPS} and starts in 1..{MAX_STARTS}, got {steps}, {starts}")
    _check(G, E, target)
    began = time.perf_counter()
    with torch.inference_mode():
        z = E(target)  # (N, nz)
    if mode == "faithful":
        z = refine(G, E, target, perturbed_starts(z, starts, objective.spread, seed), steps, objective)
    else:
        steps, starts = 0, 1
    with torch.inference_mode():
        image = G(z)
        p, s = psnr(image, target), ssim(image, target)
    return InversionResult(z, image, p, s, mode, steps, starts, time.perf_counter() - began)
