"""SeFa's closed-form directions, labelling them, combining and projecting, and the edit contract."""

from __future__ import annotations

import pytest
import torch

from models.directions import Direction, check, combine, edit, label_sefa, sefa
from tests.models.conftest import TINY, tiny_generator


def test_sefa_directions_are_orthonormal_top_eigenvectors_with_a_fixed_sign() -> None:
    generator = tiny_generator()
    dirs = sefa(generator, k=5)
    assert [d.name for d in dirs] == [f"sefa-{i}" for i in range(5)] and all(d.kind == "sefa" for d in dirs)
    stacked = torch.stack([d.vector for d in dirs]).double()  # (5, nz)
    assert torch.allclose(stacked @ stacked.T, torch.eye(5, dtype=torch.float64), atol=1e-5)
    w = generator.main[0].weight.detach().double().reshape(TINY.nz, -1)  # (nz, C*16)
    energy = [float((w.T @ v).norm() ** 2) for v in stacked]  # how much each moves the first feature map
    assert energy == sorted(energy, reverse=True)
    assert energy[0] >= float(torch.linalg.eigvalsh(w @ w.T).max()) * (1 - 1e-6)  # the top one is the maximum
    shares = [d.separation for d in dirs]
    assert all(s is not None and 0 < s < 1 for s in shares) and sum(s for s in shares if s) < 1
    for d in dirs:  # deterministic sign: the largest component is positive
        assert float(d.vector[d.vector.abs().argmax()]) > 0 and check(d, TINY.nz) is None
    assert all(torch.equal(a.vector, b.vector) for a, b in zip(dirs, sefa(generator, k=5), strict=True))


def test_sefa_is_labelled_with_the_closest_attribute() -> None:
    dirs = sefa(tiny_generator(), k=2)
    attrs = [
        Direction("Smiling", -dirs[1].vector, "attribute", 0.9, "t"),
        Direction("Male", dirs[0].vector, "attribute", 0.9, "t"),
    ]
    labelled = label_sefa(dirs, attrs)
    assert (labelled[0].correlates_with, round(labelled[0].cosine or 0, 4)) == ("Male", 1.0)
    assert (labelled[1].correlates_with, round(labelled[1].cosine or 0, 4)) == ("Smiling", -1.0)
    assert label_sefa(dirs, []) == dirs


def test_combine_weights_and_projects_out_the_kept_directions() -> None:
    e = torch.eye(4)
    assert torch.allclose(combine([(2.0, e[0])]), 2 * e[0])
    assert torch.allclose(combine([(1.0, e[0]), (-0.5, e[1])]), e[0] - 0.5 * e[1])  # sliders add up
    smile_not_male = combine([(1.0, (e[0] + e[1]) / 2**0.5)], keep=[e[1]])  # "smile while keeping gender"
    assert torch.allclose(smile_not_male, e[0], atol=1e-6) and abs(float(smile_not_male @ e[1])) < 1e-6
    with pytest.raises(ValueError, match="direction is zero"):
        combine([(1.0, e[0]), (-1.0, e[0])])
    with pytest.raises(ValueError, match="direction is zero"):
        combine([(1.0, e[2])], keep=[e[2]])


def test_edit_moves_by_standard_deviations_and_zero_is_the_plain_latent() -> None:
    n = torch.randn(TINY.nz)
    z, n = torch.randn(TINY.nz), combine([(1.0, n / n.norm())])
    out = edit(z, n, [-2.0, 0.0, 1.5])
    assert out.shape == (3, TINY.nz)
    assert torch.equal(out[1], z)  # bit for bit
    assert torch.allclose((out - z) @ n, torch.tensor([-2.0, 0.0, 1.5]), atol=1e-5)
