"""The sliced Wasserstein distance against cases computed by hand, and its behaviour on images."""

from __future__ import annotations

import math

import pytest
import torch

from training import swd


def test_pyr_down_of_a_point_is_the_sampled_gaussian() -> None:
    image = torch.zeros(1, 1, 16, 16)
    image[0, 0, 6, 6] = 256.0
    out = swd.pyr_down(image)  # blur with outer([1,4,6,4,1])/256, keep even pixels
    assert out.shape == (1, 1, 8, 8)
    # even pixels around (6, 6): offset 0 weighs 6 per axis, offset 2 weighs 1, offset 4 nothing
    assert out[0, 0, 3, 3] == 36 and out[0, 0, 2, 3] == 6 and out[0, 0, 4, 3] == 6 and out[0, 0, 2, 2] == 1
    assert out[0, 0, 1, 3] == 0 and out.sum() == 64  # (6 + 1 + 1)^2: the even taps of the kernel


def test_pyr_down_mirrors_at_the_edge() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 2, 2] = 256.0
    out = swd.pyr_down(image)
    # pixel (0, 2) sees row 2 at offset +2 and again as the mirror of row -2 (d c b | a b c d): 2 x 6
    assert out[0, 0, 0, 1] == 12 and out[0, 0, 0, 0] == 4 and out[0, 0, 1, 1] == 36


def test_pyr_up_keeps_a_constant_and_the_pyramid_of_a_constant_is_flat() -> None:
    # even outputs take taps (1 + 6 + 1)/16, odd ones (4 + 4)/16, times 2 per axis: both exactly 1
    assert torch.equal(swd.pyr_up(torch.full((1, 3, 4, 4), 5.0)), torch.full((1, 3, 8, 8), 5.0))
    levels = swd.laplacian_pyramid(torch.full((2, 3, 64, 64), 100, dtype=torch.uint8), 3)
    assert [tuple(x.shape[2:]) for x in levels] == [(64, 64), (32, 32), (16, 16)]
    assert levels[0].abs().max() < 1e-4 and levels[1].abs().max() < 1e-4  # no detail in any band
    assert torch.allclose(levels[2], torch.full_like(levels[2], 100.0))  # the residual is the image


def test_resolutions_stop_at_16() -> None:
    assert swd.resolutions(64) == (64, 32, 16)
    assert swd.resolutions(128) == (128, 64, 32, 16)
    with pytest.raises(ValueError, match="at least 16"):
        swd.resolutions(8)


def test_one_dimensional_wasserstein_is_the_mean_gap_of_sorted_values() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    # 1-D unit directions are +1 or -1: |sorted(a) - sorted(a + 1)| = 1 for each pair
    assert swd.sliced_wasserstein(a, a + 1.0, g) == pytest.approx(1.0)
    assert swd.sliced_wasserstein(a, a.flip(0), g) == 0.0  # the order of a set does not matter
    assert swd.sliced_wasserstein(a, a * 3.0, g) == pytest.approx((0 + 2 + 4 + 6) / 4)


def test_two_dimensional_shift_averages_the_cosine() -> None:
    # B is A moved by 1 along x: along direction u the projections move by |u_x|; over uniformly
    # random unit directions in the plane E|cos(theta)| = 2 / pi
    a = torch.zeros(16, 2)
    b = a + torch.tensor([1.0, 0.0])
    value = swd.sliced_wasserstein(a, b, torch.Generator().manual_seed(1))
    assert value == pytest.approx(2 / math.pi, abs=0.04)  # 512 directions


def test_normalise_gives_each_channel_zero_mean_and_unit_std() -> None:
    scale = torch.tensor([1.0, 5.0, 0.1])[None, :, None, None]
    d = torch.randn(200, 3, 7, 7, generator=torch.Generator().manual_seed(0)) * scale + 7.0
    out = swd.normalise(d).reshape(200, 3, 7, 7)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)  # float32 sums of 9,800 values
    assert torch.allclose(out.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-4)


def test_neighbourhoods_are_the_7x7_patches_around_their_centre() -> None:
    level = torch.arange(2 * 1 * 20 * 20, dtype=torch.float32).reshape(2, 1, 20, 20)
    patches = swd.neighbourhoods(level, 5, torch.Generator().manual_seed(0))
    assert patches.shape == (10, 1, 7, 7)
    for i, patch in enumerate(patches):
        image, centre = divmod(int(patch[0, 3, 3]), 400)
        assert image == i // 5  # patches come image by image
        y, x = divmod(centre, 20)
        assert 3 <= y < 17 and 3 <= x < 17  # never past an edge
        assert torch.equal(patch[0], level[image, 0, y - 3 : y + 4, x - 3 : x + 4])


def _faces(n: int, seed: int) -> torch.Tensor:
    """Smooth random images with structure at every scale: (n, 3, 32, 32) uint8."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    image = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    image = image + 0.02 * torch.rand(n, 3, 32, 32, generator=g)
    return (image.clamp(0, 1) * 255).to(torch.uint8)


def test_a_set_against_itself_is_zero_and_a_shifted_copy_is_far() -> None:
    faces = _faces(64, 0)
    same = swd.swd_images(faces, faces)
    assert same.levels == (0.0, 0.0) and same.mean == 0.0
    other = swd.swd_images(faces, _faces(64, 1))  # another draw from the same distribution
    shifted = swd.swd_images(faces, torch.roll(faces, 6, dims=3))  # every face moved 6 px
    noisy = swd.swd_images(faces, (faces.float() + 25 * torch.randn(faces.shape)).clamp(0, 255).to(torch.uint8))
    assert shifted.mean > 1.5 * other.mean
    assert noisy.levels[0] > 3 * other.levels[0]  # pixel noise lives in the finest band


def test_swd_is_deterministic_for_a_seed() -> None:
    a, b = _faces(32, 0), _faces(32, 1)
    assert swd.swd_images(a, b, seed=3) == swd.swd_images(a, b, seed=3)
    assert swd.swd_images(a, b, seed=3) != swd.swd_images(a, b, seed=4)


def test_sets_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="one shape"):
        swd.swd_images(_faces(4, 0), _faces(5, 0))
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        swd.descriptors(torch.zeros(4, 1, 32, 32, dtype=torch.uint8))
