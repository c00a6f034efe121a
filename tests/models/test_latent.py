"""The seed -> latent contract, truncation, interpolation and arithmetic."""

from __future__ import annotations

import pytest
import torch

from models.latent import (
    SEED_MAX,
    arithmetic,
    interpolation_weights,
    latent_for_seed,
    latents_for_seeds,
    lerp,
    slerp,
)


def test_documented_mapping() -> None:
    for seed in (0, 1, 42, SEED_MAX):
        expected = torch.randn(100, generator=torch.Generator("cpu").manual_seed(seed))
        assert torch.equal(latent_for_seed(seed, 100), expected)


def test_independent_of_batch_composition() -> None:
    alone = latents_for_seeds([7], 100)
    batch = latents_for_seeds([3, 99, 7, 7, 12345], 100)
    assert batch.shape == (5, 100) and batch.dtype == torch.float32
    assert torch.equal(batch[2], alone[0]) and torch.equal(batch[3], alone[0])
    torch.manual_seed(0)  # the global RNG plays no part
    assert torch.equal(latents_for_seeds([7], 100), alone)
    assert latents_for_seeds([], 100).shape == (0, 100)


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1])
def test_seed_bounds(seed: int) -> None:
    with pytest.raises(ValueError, match="seed"):
        latent_for_seed(seed, 10)


def test_truncation_is_bounded_deterministic_and_seeded() -> None:
    z = latents_for_seeds(range(50), 100, truncation=0.5)
    assert z.abs().max() <= 0.5
    assert torch.equal(z, latents_for_seeds(range(50), 100, truncation=0.5))
    plain = latents_for_seeds(range(50), 100)
    inside = plain.abs() <= 0.5
    assert torch.equal(z[inside], plain[inside])  # only components outside the threshold are redrawn
    with pytest.raises(ValueError, match="threshold"):
        latent_for_seed(1, 10, truncation=0.0)


def test_lerp_and_slerp_endpoints() -> None:
    a, b = latents_for_seeds([1, 2], 100)
    t = interpolation_weights(9)
    for path in (lerp(a, b, t), slerp(a, b, t)):
        assert path.shape == (9, 100)
        assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)


def test_slerp_preserves_norm() -> None:
    a, b = latents_for_seeds([1, 2], 100)
    b = b * a.norm() / b.norm()
    norms = slerp(a, b, interpolation_weights(17)).norm(dim=-1)
    assert torch.allclose(norms, a.norm().expand(17), rtol=1e-5)
    assert lerp(a, b, 0.5).norm() < 0.9 * a.norm()  # why slerp: lerp cuts through the low-norm interior


def test_slerp_falls_back_to_lerp_for_parallel_and_zero_vectors() -> None:
    a, t = latent_for_seed(3, 100), interpolation_weights(5)
    for b in (a.clone(), a * 2, a + 1e-9, -a, torch.zeros(100)):  # direction ill-defined: the straight line
        path = slerp(a, b, t)
        assert torch.isfinite(path).all() and torch.equal(path, lerp(a, b, t))
    other = latent_for_seed(4, 100)
    assert not torch.allclose(slerp(a, other, t), lerp(a, other, t))  # a real angle: no fallback


def test_arithmetic_is_a_weighted_sum_of_means() -> None:
    smiling_woman, neutral_woman, neutral_man = (latents_for_seeds(range(i, i + 3), 100) for i in (0, 10, 20))
    result = arithmetic([(1.0, smiling_woman), (-1.0, neutral_woman), (1.0, neutral_man)])
    expected = smiling_woman.mean(0) - neutral_woman.mean(0) + neutral_man.mean(0)
    assert torch.allclose(result, expected)
    with pytest.raises(ValueError):
        arithmetic([])
    with pytest.raises(ValueError):
        arithmetic([(1.0, torch.empty(0, 100))])
