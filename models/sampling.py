"""Latents -> uint8 images, the one way both the trainer's samples and the service render.

Batch independence: on CPU, a convolution's float result for one sample can change in the
last bit with the batch size (GEMM remainder paths for sizes that are not a multiple of 8). We
pad every forward to a multiple of ``PAD_MULTIPLE`` rows, which makes a latent's pixels a pure
function of the latent, whatever batch it shares and wherever it sits in it (tests prove it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.dcgan import Generator

PAD_MULTIPLE = 8


def padded_rows(n: int, multiple: int = PAD_MULTIPLE) -> int:
    """Rows a forward of ``n`` latents actually computes."""
    return -(-n // multiple) * multiple


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8, contiguous; done on the device before the host copy.

    ``x * 127.5 + 128`` (two roundings, no fused multiply-add), clamped, then truncated: the pixels every
    export has always had. The channels are interleaved one plane at a time, converting as they are
    copied: about half the CPU of a cast and then a permuted copy, and what follows (grids, PNG) reads a
    contiguous image instead of one strided across planes."""
    scaled = images.mul(127.5).add_(128.0).clamp_(0, 255)  # (N, C, H, W) float
    n, c, h, w = images.shape
    out = torch.empty((n, h, w, c), dtype=torch.uint8, device=images.device)  # (N, H, W, C)
    for channel in range(c):
        out[..., channel].copy_(scaled[:, channel])  # float -> uint8 truncates, as .to(torch.uint8)
    return out


def pad_rows(z: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """Latents (N, nz) -> (rows, nz), zero rows after them: ``rows`` (N <= rows), else N up to a multiple of 8."""
    n = z.shape[0]
    if rows is not None and rows < n:
        raise ValueError(f"render(rows={rows}) cannot hold {n} latents")
    return F.pad(z, (0, 0, 0, (rows or padded_rows(n)) - n))


@torch.inference_mode()
def render(generator: Generator, z: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """Latents (N, nz) -> images (N, H, W, C) uint8 on the CPU. ``generator`` must be in eval mode.

    The forward runs in the generator's own dtype (float32, or bfloat16 from ``models.precision.cast``).
    ``rows``: compute exactly this many rows (N <= rows), for callers that run every forward at one
    shape (on CUDA, cuDNN's algorithm, and so a pixel's last bit, can change with the batch size)."""
    if generator.training:
        raise RuntimeError("render() needs an eval-mode generator (train-mode BatchNorm mixes the batch)")
    weight = next(generator.parameters())
    z_rows = pad_rows(z, rows).to(weight.device, weight.dtype, non_blocking=True)
    images = generator(z_rows)[: z.shape[0]]  # (N, C, H, W) in the generator's dtype
    return to_uint8(images.float()).cpu()  # .float(): a no-op in fp32; bf16 rounds to uint8 in fp32
