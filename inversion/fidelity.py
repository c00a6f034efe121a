"""How close a reconstruction is to its target: PSNR and SSIM per image, and the pixel + SSIM loss.

Images are (N, C, S, S) in [-1, 1]; both measures read them on [0, 1]. SSIM is single-scale with an
11x11 Gaussian window (sigma 1.5), from ``pytorch_msssim`` (no weights): at 64 px multi-scale SSIM's
five scales would shrink the image below its window.
"""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((images + 1.0) / 2.0).clamp(0.0, 1.0)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, S, S, C) or (N, C, S, S) (or one image without N) -> float32 (N, C, S, S) in [-1, 1]."""
    if images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 pixels, got {images.dtype}")
    if images.dim() == 3:
        images = images[None]
    if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.permute(0, 3, 1, 2)
    return images.float().contiguous() / 127.5 - 1.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (N,), on [0, 1] (capped at 100 dB for identical images)."""
    mse = (to_unit(a) - to_unit(b)).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (N,), on [0, 1], single scale."""
    return _ssim(to_unit(a), to_unit(b), data_range=1.0, size_average=False)


def image_loss(a: torch.Tensor, b: torch.Tensor, pixel: float, structure: float) -> torch.Tensor:
    """Per image (N,): ``pixel`` x (mean squared + mean absolute error on [0, 1]) + ``structure`` x (1 - SSIM)."""
    diff = to_unit(a) - to_unit(b)
    loss = pixel * (diff.pow(2) + diff.abs()).flatten(1).mean(1)
    return loss + structure * (1.0 - ssim(a, b))
