"""models.sampling.to_uint8: the pixels every export has always had, now contiguous (N, H, W, C)."""

from __future__ import annotations

import torch

from models.sampling import to_uint8


def as_before(images: torch.Tensor) -> torch.Tensor:
    """The conversion up to 2026-12-07: a cast, then a permuted view."""
    return (images * 127.5 + 128.0).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def test_to_uint8_gives_the_same_pixels_contiguous() -> None:
    edges = torch.tensor([-1.5, -1.0, -0.99999, -1 / 255, 0.0, 1 / 255, 0.5 / 127.5, 1.5 / 127.5 - 1, 0.99999, 1.0, 2])
    steps = torch.arange(-1.0, 1.0, 1 / 4096)  # every level and the boundaries between them
    values = torch.cat([edges, steps, torch.randn(4096).tanh()])
    for shape in ((4, 3, 16, 16), (16, 1, 8, 8), (3, 3, 64, 64)):
        n = torch.Size(shape).numel()
        x = values.repeat(-(-n // values.numel()))[:n].reshape(shape)  # (N, C, H, W)
        got = to_uint8(x)
        assert got.is_contiguous() and got.shape == (shape[0], shape[2], shape[3], shape[1])
        assert torch.equal(got, as_before(x.clone())), shape


def test_to_uint8_leaves_its_input_alone() -> None:
    x = torch.randn(2, 3, 4, 4)
    before = x.clone()
    to_uint8(x)
    assert torch.equal(x, before)
