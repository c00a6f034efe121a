from __future__ import annotations

import pytest
import torch

from training import augment
from training.config import TrainConfig

ALL = ("color", "translation", "cutout")


def batch(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (n, 3, S, S)


def test_parse_policy_names_the_option() -> None:
    assert augment.parse_policy("") == ()
    assert augment.parse_policy(" color, cutout ") == ("color", "cutout")
    with pytest.raises(ValueError, match="--augment: unknown policy 'zoom'"):
        augment.parse_policy("color,zoom")
    with pytest.raises(ValueError, match="twice"):
        augment.parse_policy("color,color")
    with pytest.raises(ValueError, match="--augment"):
        TrainConfig(dataset="synthetic", augment="blur")


def test_same_generator_state_gives_the_same_augmentation_and_gradients_flow() -> None:
    x = batch().requires_grad_(True)
    a = augment.diff_augment(x, ALL, torch.Generator().manual_seed(5))
    b = augment.diff_augment(x, ALL, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_shifts_whole_pixels_and_fills_zeros() -> None:
    side = 16
    x = (torch.arange(side * side, dtype=torch.float32) + 1).reshape(1, 1, side, side).repeat(8, 3, 1, 1)
    out = augment.translation(x, torch.Generator().manual_seed(0))  # (8, 3, 16, 16); values name their source
    limit = int(side * augment.TRANSLATION_RATIO + 0.5)
    for img in out[:, 0]:
        where = img.nonzero()  # (K, 2) output positions that hold a moved value
        src = img[img != 0].long() - 1
        shifts = {(int(r) - int(v) // side, int(c) - int(v) % side) for (r, c), v in zip(where, src, strict=True)}
        assert len(shifts) == 1  # one whole-pixel shift per image
        ((dy, dx),) = shifts
        assert abs(dy) <= limit and abs(dx) <= limit
        assert len(where) == (side - abs(dy)) * (side - abs(dx))  # the rest is zeros shifted in


def test_cutout_zeroes_a_square_of_half_the_side_at_most() -> None:
    x = torch.ones(32, 3, 16, 16)
    out = augment.cutout(x, torch.Generator().manual_seed(1))
    zeros = (out[:, 0] == 0).sum(dim=(1, 2))  # (32,)
    assert (zeros <= 64).all() and (zeros > 0).any() and torch.equal(out[:, 0] == 0, out[:, 2] == 0)


def test_color_keeps_the_batch_shape_and_changes_each_image() -> None:
    x = batch()
    out = augment.color(x, torch.Generator().manual_seed(2))
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_channels_last_survives_translation() -> None:
    x = batch().contiguous(memory_format=torch.channels_last)
    out = augment.translation(x, torch.Generator().manual_seed(0))
    assert out.is_contiguous(memory_format=torch.channels_last)
