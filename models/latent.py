"""Latent vectors: the seed -> latent contract, interpolation and the paper's vector arithmetic.

Public contract (clients and cached images rely on it; changing it is a breaking change):

    latent(seed, nz) == torch.randn(nz, generator=torch.Generator("cpu").manual_seed(seed))

float32, drawn on the CPU from a generator private to that seed, so a seed's latent never
depends on the device, the batch it is in or its neighbours. With truncation ``t``, every
component with ``|z| > t`` is redrawn from the *same* generator (continuing its stream) until
none is left, so ``(seed, t)`` also maps to exactly one latent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

SEED_MAX = 2**32 - 1
# |cos| above this (within 1.8 degrees of parallel or antiparallel): slerp falls back to lerp. In float32
# arccos near +-1 is only good to ~3e-4 rad, so a sin(omega) threshold cannot tell parallel vectors apart.
PARALLEL_COS = 0.9995
_MAX_RESAMPLE_ROUNDS = 1000


def latent_for_seed(seed: int, nz: int, truncation: float | None = None) -> torch.Tensor:
    """The latent (nz,) of one seed; see the module docstring for the exact mapping."""
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must be in 0..{SEED_MAX}, got {seed}")
    gen = torch.Generator("cpu").manual_seed(seed)
    z = torch.randn(nz, generator=gen)
    if truncation is not None:
        z = truncate(z, truncation, gen)
    return z


@dataclass(frozen=True)
class SeedLatents:
    """The latents of ``seeds`` (N, nz), drawn only when ``tensor()`` is called: a server builds this on
    its event loop and draws the latents in the forward's worker thread. ``len()`` is N."""

    seeds: tuple[int, ...]
    nz: int
    truncation: float | None = None

    def __len__(self) -> int:
        return len(self.seeds)

    def tensor(self) -> torch.Tensor:
        return latents_for_seeds(self.seeds, self.nz, self.truncation)


def as_tensor(latents: torch.Tensor | SeedLatents) -> torch.Tensor:
    """Latents (N, nz), drawing them first if they are still seeds."""
    return latents if isinstance(latents, torch.Tensor) else latents.tensor()


def latents_for_seeds(seeds: Iterable[int], nz: int, truncation: float | None = None) -> torch.Tensor:
    """Stack the latents of ``seeds``: (N, nz) float32 on the CPU."""
    rows = [latent_for_seed(int(s), nz, truncation) for s in seeds]
    if not rows:
        return torch.empty(0, nz)
    return torch.stack(rows)


def truncate(z: torch.Tensor, threshold: float, generator: torch.Generator) -> torch.Tensor:
    """Redraw components with ``|z| > threshold`` from ``generator`` until none remain.

    The truncation trick (Brock et al.): smaller threshold -> more typical, less varied faces.
    """
    if not threshold > 0:
        raise ValueError(f"truncation threshold must be > 0, got {threshold}")
    z = z.clone()
    for _ in range(_MAX_RESAMPLE_ROUNDS):
        outside = z.abs() > threshold
        count = int(outside.sum())
        if count == 0:
            return z
        z[outside] = torch.randn(count, generator=generator, dtype=z.dtype)
    raise ValueError(f"truncation threshold {threshold} is too small to be met")


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Linear interpolation; ``t`` may be a (T,) tensor giving (T, nz) for a, b of (nz,)."""
    t = torch.as_tensor(t, dtype=a.dtype)
    if t.dim() == 1 and a.dim() == 1:
        t = t[:, None]  # (T, 1) broadcasts against (nz,)
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation of direction, linear interpolation of norm.

    For a, b of equal norm the norm is preserved along the path (unlike ``lerp``, which
    passes through low-norm, atypical latents). Zero vectors and (anti)parallel ones (``PARALLEL_COS``)
    fall back to ``lerp``, so the result is always finite and never depends on rounding noise.
    """
    t = torch.as_tensor(t, dtype=a.dtype)
    if t.dim() == 1 and a.dim() == 1:
        t = t[:, None]
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    if float(na.min()) < eps or float(nb.min()) < eps:
        return lerp(a, b, t)
    ua, ub = a / na, b / nb
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    if float(cos.abs().max()) > PARALLEL_COS:  # (anti)parallel: the arc's plane is ill-defined
        return lerp(a, b, t)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / sin
    return direction * ((1 - t) * na + t * nb)


def interpolation_weights(steps: int) -> torch.Tensor:
    """``steps`` evenly spaced t in [0, 1], endpoints included: (steps,)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    return torch.linspace(0.0, 1.0, steps)


def arithmetic(terms: Sequence[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """The paper's vector arithmetic: sum of ``weight * mean(exemplars)`` over the terms.

    ``terms``: (weight, exemplars (k, nz)) pairs, e.g. smiling woman (+1) - neutral woman (-1)
    + neutral man (+1); the paper averages k=3 exemplars per concept. Returns (nz,).
    """
    if not terms:
        raise ValueError("arithmetic needs at least one term")
    if any(exemplars.dim() != 2 or exemplars.shape[0] == 0 for _, exemplars in terms):
        raise ValueError("each term needs a non-empty (k, nz) tensor of exemplars")
    return torch.stack([float(weight) * exemplars.mean(dim=0) for weight, exemplars in terms]).sum(dim=0)
