"""DiffAugment (Zhao et al., NeurIPS 2020): the same differentiable colour, translation and cutout applied to
every image D sees, real and generated, so that a small dataset does not let D memorise its images.

The policy is a comma-separated list of ``POLICIES`` (the paper's 'color,translation,cutout'), recorded
in the run's config and the export's provenance. Every random draw comes from the loop's CPU generator,
so ``--resume`` stays exact; only the per-image parameters move to the device. Images are in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125  # shift up to 1/8 of the side (8 px at 64), zeros shifted in
CUTOUT_RATIO = 0.5  # a square of half the side, set to 0 (grey)


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,cutout' -> ('color', 'cutout'); '' -> (). Unknown names raise ValueError naming --augment."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise ValueError(f"--augment: unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--augment: {policy!r} names a policy twice")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], rng: torch.Generator) -> torch.Tensor:
    """(B, C, S, S) -> (B, C, S, S), augmented per image; differentiable in ``x``."""
    for name in policy:
        x = AUGMENTS[name](x, rng)
    return x


def _rand(rng: torch.Generator, x: torch.Tensor, *shape: int) -> torch.Tensor:
    """Uniform [0, 1) of ``shape`` drawn on the CPU from ``rng``, on x's device and dtype."""
    return torch.rand(*shape, generator=rng).to(device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Brightness +-0.5, saturation x[0, 2), contrast x[0.5, 1.5): the paper's three colour draws."""
    b = x.shape[0]
    x = x + (_rand(rng, x, b, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, S, S): the grey level
    x = (x - mean) * (_rand(rng, x, b, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * (_rand(rng, x, b, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Shift each image by whole pixels, up to TRANSLATION_RATIO of its side in x and y, zeros shifted in."""
    b, _, h, w = x.shape
    sh, sw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), generator=rng).to(x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=rng).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + ty + 1  # (B, H, 1), +1 for the zero border
    cols = torch.arange(w, device=x.device)[None, None, :] + tx + 1  # (B, 1, W)
    rows, cols = rows.clamp(0, h + 1), cols.clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # (B, C, H+2, W+2)
    flat = (rows * (w + 2) + cols).reshape(b, 1, h * w).expand(-1, x.shape[1], -1)  # (B, C, H*W)
    out = padded.flatten(2).gather(2, flat).reshape(x.shape)
    return out.contiguous(memory_format=_format(x))


def cutout(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Zero one square of CUTOUT_RATIO of the side per image, at a random centre (clipped at the edges)."""
    b, _, h, w = x.shape
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=rng).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=rng).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]  # (1, H, 1)
    xs = torch.arange(w, device=x.device)[None, None, :]  # (1, 1, W)
    inside = ((ys - cy + ch // 2) >= 0) & ((ys - cy + ch // 2) < ch) & ((xs - cx + cw // 2) >= 0)
    inside &= (xs - cx + cw // 2) < cw  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def _format(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
        else (torch.contiguous_format)
    )


AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}
