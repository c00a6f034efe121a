"""Named latent directions and editing along them: InterFaceGAN boundaries (stored in an export) and SeFa.

A direction is a unit vector n (nz,) in z-space. Latents are N(0, I), so the projection z . n of a
random latent is N(0, 1): a strength s moves a face by s standard deviations along n,

    edit(z, n, s) = z + s * n        (s = 0 returns z itself: the plain face, byte for byte)

Several directions combine as sum(weight * n) (``combine``), optionally with others projected out.

- ``attribute`` directions (InterFaceGAN, Shen et al. CVPR 2020) are the unit normals of linear
  boundaries fitted to attribute labels (``training.directions``); an export may carry them.
- ``sefa`` directions (SeFa, Shen & Zhou CVPR 2021) need no labels: the top eigenvectors of W Wᵀ, W the
  first ConvTranspose weight as (nz, C*4*4), i.e. the latent directions that change the first
  feature map most. Computed at load time, so every generator has them, old exports too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from models.dcgan import Generator

KINDS = ("attribute", "sefa")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # CelebA's names (5_o_Clock_Shadow) and sefa-0..
UNIT_NORM_TOLERANCE = 1e-4
SEFA_COUNT = 5
SEFA_ROUNDING = 1e6


@dataclass(frozen=True, eq=False)
class Direction:
    name: str
    vector: torch.Tensor  # (nz,) float32, unit norm
    kind: str  # attribute | sefa
    separation: float | None  # attribute: held-out accuracy of its boundary; sefa: its eigenvalue's share
    source: str  # what it was fitted from
    correlates_with: str | None = None  # sefa: the attribute direction it is closest to (|cosine|), if any
    cosine: float | None = None


def check(direction: Direction, nz: int) -> str | None:
    """What is wrong with ``direction`` for a generator of latent length ``nz``, or None."""
    v = direction.vector
    if not NAME.match(direction.name):
        return "has an invalid name (letters, digits, _ . -; at most 64)"
    if direction.kind not in KINDS:
        return f"has kind {direction.kind!r}, expected one of {KINDS}"
    if v.dtype != torch.float32 or tuple(v.shape) != (nz,):
        return f"has shape {list(v.shape)} {v.dtype}, expected [{nz}] float32"
    if not torch.isfinite(v).all():
        return "has non-finite values"
    if abs(float(v.double().norm()) - 1.0) > UNIT_NORM_TOLERANCE:
        return f"is not a unit vector (norm {float(v.double().norm()):.6f})"
    s = direction.separation
    if s is not None and not (isinstance(s, float) and math.isfinite(s) and 0.0 <= s <= 1.0):
        return f"has separation {s!r}, expected a number in [0, 1] or null"
    return None


def sefa(generator: Generator, k: int = SEFA_COUNT) -> list[Direction]:
    """The top-``k`` SeFa directions ``sefa-0`` .. of ``generator``, orthonormal, each with a fixed sign
    (its largest component positive: an eigenvector's sign is arbitrary, a name's must not be)."""
    first = generator.main[0]
    assert isinstance(first, nn.ConvTranspose2d)  # models.dcgan: z -> the 4x4 feature map
    weight = first.weight.detach().to("cpu", torch.float64)  # (nz, C, 4, 4)
    m = weight.reshape(weight.shape[0], -1)  # (nz, C*16)
    values, vectors = torch.linalg.eigh(m @ m.T)  # ascending eigenvalues, orthonormal columns
    order = values.argsort(descending=True)[:k]
    dirs = vectors[:, order].T  # (k, nz)
    dirs = dirs * torch.sign(dirs.gather(1, dirs.abs().argmax(dim=1, keepdim=True)))
    # LAPACK's last bits depend on the thread count; rounded to 1e-6 they never reach a pixel or a name
    dirs = torch.round(dirs * SEFA_ROUNDING) / SEFA_ROUNDING
    share = torch.round(values[order] / values.sum() * SEFA_ROUNDING) / SEFA_ROUNDING
    source = "SeFa: eigenvectors of W W^T, W the first ConvTranspose weight"
    return [Direction(f"sefa-{i}", dirs[i].float(), "sefa", float(share[i]), source) for i in range(len(order))]


def label_sefa(sefa_dirs: Sequence[Direction], attributes: Sequence[Direction]) -> list[Direction]:
    """Each SeFa direction with the attribute direction it correlates with most (largest |cosine|)."""
    if not attributes:
        return list(sefa_dirs)
    names = [a.name for a in attributes]
    stacked = torch.stack([a.vector for a in attributes])  # (A, nz)
    out = []
    for d in sefa_dirs:
        cos = stacked @ d.vector  # (A,)
        best = int(cos.abs().argmax())
        out.append(Direction(d.name, d.vector, d.kind, d.separation, d.source, names[best], float(cos[best])))
    return out


def combine(weighted: Sequence[tuple[float, torch.Tensor]], keep: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """``sum(weight * n)`` over unit directions n: one direction of weight 1 moves one sigma per strength.

    With ``keep`` (conditional editing: smile while keeping gender), the kept directions are projected
    out and the result is rescaled to its length before, so strengths keep their meaning (InterFaceGAN
    renormalises the projected normal). Raises ValueError when nothing is left of it."""
    total = torch.stack([w * n.double() for w, n in weighted]).sum(dim=0)  # (nz,)
    length = float(total.norm())
    if keep and length > 0:
        basis, _ = torch.linalg.qr(torch.stack([k.double() for k in keep]).T)  # (nz, K) orthonormal
        total = total - basis @ (basis.T @ total)
        total = total * (length / max(float(total.norm()), 1e-30))
    if length < 1e-6 or float(total.norm()) < 1e-6 * max(length, 1.0):
        raise ValueError("the direction is zero (weights cancel, or it lies in the kept directions)")
    return total.float()


def edit(z: torch.Tensor, direction: torch.Tensor, strengths: Sequence[float]) -> torch.Tensor:
    """One latent (nz,) moved by each strength along ``direction`` (a unit one: strengths in standard
    deviations): (S, nz). A strength of 0 gives ``z`` itself, bit for bit."""
    return torch.stack([z if s == 0 else z + s * direction for s in strengths])
