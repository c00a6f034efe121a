"""Sliced Wasserstein distance between two image sets (Karras et al. 2018, "Progressive Growing of GANs", §5).

The published algorithm (``metrics/sliced_wasserstein.py`` of tkarras/progressive_growing_of_gans), in torch:

1. A Laplacian pyramid of every image, from full resolution down to 16 px (64 -> 64, 32, 16): each level
   is the band that the next coarser level does not explain; the coarsest is the blurred image itself.
2. From every level of every image, 128 random 7x7 neighbourhoods: descriptors of 7*7*3 = 147 values.
3. Each set's descriptors are normalised per colour channel (its own mean and standard deviation).
4. Per level: 4 repeats of 128 random unit directions; project both sets, sort each projection, and
   average |sorted A - sorted B|: the 1-D Wasserstein-1 distance along each direction.

Reported, as in the paper, times 10^3: one figure per level and their mean. Lower is closer. Both sets
take their patches at the same (seeded) positions, so a set against itself is exactly 0 and two
comparisons with one reference differ only by their images. Deterministic for a fixed ``seed``.

No PyPI package implements this pyramid variant (``sliced-wasserstein``, ``fwg`` and ``msw`` compute
others), so this follows the reference code step by step; tests check it on cases computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16
SCALE = 1e3  # the paper's tables give SWD x 10^3
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
GAUSSIAN = torch.outer(_BINOMIAL, _BINOMIAL) / 256.0  # (5, 5), sums to 1: cv2.pyrDown's kernel


@dataclass(frozen=True)
class SWDResult:
    """SWD x 10^3 per pyramid level (finest first) and their mean."""

    resolutions: tuple[int, ...]
    levels: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.levels) / len(self.levels)

    def to_dict(self) -> dict[str, float]:
        per_level = {f"swd_{r}": round(v, 3) for r, v in zip(self.resolutions, self.levels, strict=True)}
        return {**per_level, "swd_mean": round(self.mean, 3)}


def resolutions(size: int) -> tuple[int, ...]:
    """Pyramid levels of a ``size`` image: size, size/2, ... down to 16 px (64 -> (64, 32, 16))."""
    levels = []
    while size >= MIN_RESOLUTION:
        levels.append(size)
        size //= 2
    if not levels:
        raise ValueError(f"SWD needs images of at least {MIN_RESOLUTION} px, got {size}")
    return tuple(levels)


def _blur(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel 5x5 convolution with mirror edges (scipy's ``mode='mirror'``): (N, C, H, W) -> same."""
    c = images.shape[1]
    weight = kernel.to(images)[None, None].expand(c, 1, 5, 5)
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="reflect"), weight, groups=c)


def pyr_down(images: torch.Tensor) -> torch.Tensor:
    """Blur, then keep every second pixel: (N, C, H, W) -> (N, C, H/2, W/2). Matches cv2.pyrDown."""
    return _blur(images, GAUSSIAN)[:, :, ::2, ::2]


def pyr_up(images: torch.Tensor) -> torch.Tensor:
    """Zero-interleave, then blur with 4x the kernel: (N, C, H, W) -> (N, C, 2H, 2W). Matches cv2.pyrUp."""
    n, c, h, w = images.shape
    up = images.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = images
    return _blur(up, GAUSSIAN * 4.0)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """(N, C, S, S) -> ``levels`` tensors, finest first: band-pass levels, then the blurred residual."""
    pyramid = [images.float()]
    for _ in range(1, levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1])
    return pyramid


def neighbourhoods(level: torch.Tensor, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """``per_image`` random 7x7 patches of every image: (N, C, R, R) -> (N * per_image, C, 7, 7)."""
    n, c, h, w = level.shape
    half = NHOOD_SIZE // 2
    count = n * per_image
    image = torch.arange(count) // per_image  # (M,) which image each patch comes from
    y = torch.randint(half, h - half, (count,), generator=generator)  # patch centres, never past an edge
    x = torch.randint(half, w - half, (count,), generator=generator)
    offsets = torch.arange(-half, half + 1)  # (7,)
    rows = (y[:, None] + offsets)[:, None, :, None]  # (M, 1, 7, 1)
    cols = (x[:, None] + offsets)[:, None, None, :]  # (M, 1, 1, 7)
    chans = torch.arange(c)[None, :, None, None]  # (1, C, 1, 1)
    return level[image[:, None, None, None], chans, rows, cols]  # (M, C, 7, 7)


def normalise(descriptors: torch.Tensor) -> torch.Tensor:
    """Subtract each channel's mean, divide by its standard deviation (over every patch and pixel):
    (M, C, 7, 7) -> (M, C*7*7)."""
    d = descriptors
    d = (d - d.mean(dim=(0, 2, 3), keepdim=True)) / d.std(dim=(0, 2, 3), keepdim=True, correction=0)
    return d.flatten(1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> float:
    """Mean over DIR_REPEATS x DIRS_PER_REPEAT random unit directions of the 1-D Wasserstein-1 distance
    between the projections of ``a`` and ``b`` (M, D); both must hold the same number of descriptors."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"sliced_wasserstein needs two (M, D) sets of one shape, got {a.shape}, {b.shape}")
    results = []
    for _ in range(DIR_REPEATS):
        dirs = torch.randn(a.shape[1], DIRS_PER_REPEAT, generator=generator)  # (D, K)
        dirs /= dirs.norm(dim=0, keepdim=True)
        proj_a = np.sort((dirs.T @ a.T).numpy(), axis=1)  # (K, M): each direction's projections, in order
        proj_b = np.sort((dirs.T @ b.T).numpy(), axis=1)  # (numpy's sort is 2x torch's on a CPU, here)
        results.append(float(np.abs(proj_a - proj_b).mean(dtype=np.float64)))
    return sum(results) / len(results)


def descriptors(images: torch.Tensor, seed: int = 0, per_image: int = NHOODS_PER_IMAGE) -> list[torch.Tensor]:
    """A set's normalised descriptors per pyramid level: uint8 (N, 3, S, S) -> [(N * per_image, 147), ...]."""
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"SWD needs (N, 3, S, S) images, got {tuple(images.shape)}")
    generator = torch.Generator().manual_seed(seed)
    pyramid = laplacian_pyramid(images, len(resolutions(images.shape[2])))
    return [normalise(neighbourhoods(level, per_image, generator)) for level in pyramid]


def swd(real: list[torch.Tensor], fake: list[torch.Tensor], size: int, seed: int = 0) -> SWDResult:
    """SWD x 10^3 between two sets' ``descriptors`` (compute the reference set's once, compare many)."""
    generator = torch.Generator().manual_seed(seed)  # the same directions for every comparison
    levels = tuple(SCALE * sliced_wasserstein(r, f, generator) for r, f in zip(real, fake, strict=True))
    return SWDResult(resolutions(size), levels)


def swd_images(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> SWDResult:
    """SWD x 10^3 between two uint8 image sets (N, 3, S, S) of the same N and S."""
    if real.shape != fake.shape:
        raise ValueError(f"SWD compares sets of one shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    return swd(descriptors(real, seed), descriptors(fake, seed), real.shape[2], seed)
