"""invert/refine on a tiny generator: shapes, determinism, an exact round trip on G(z), the shell term."""

from __future__ import annotations

import math

import pytest
import torch

from inversion import Objective, invert, psnr, refine
from inversion.refine import perturbed_starts
from models import Export
from tests.inversion.conftest import TINY, tiny_encoder


def _latents(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, TINY.nz, generator=torch.Generator().manual_seed(seed))


def _faces(export: Export, n: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    z = _latents(n, seed)
    with torch.inference_mode():
        return z, export.generator(z)


def test_fast_is_the_encoder_alone(export: Export) -> None:
    encoder = tiny_encoder()
    _, x = _faces(export)
    result = invert(export.generator, encoder, x, mode="fast", steps=50, starts=4)
    assert result.z.shape == (3, TINY.nz) and result.reconstruction.shape == x.shape
    assert result.psnr.shape == result.ssim.shape == (3,)
    assert (result.mode, result.steps, result.starts) == ("fast", 0, 1)
    with torch.inference_mode():
        assert torch.equal(result.z, encoder(x))
        assert torch.equal(result.reconstruction, export.generator(encoder(x)))


def test_faithful_refines_and_says_how(export: Export) -> None:
    encoder = tiny_encoder()
    _, x = _faces(export)
    fast = invert(export.generator, encoder, x, mode="fast")
    faithful = invert(export.generator, encoder, x, mode="faithful", steps=30, starts=3)
    assert faithful.z.shape == (3, TINY.nz) and faithful.reconstruction.shape == x.shape
    assert (faithful.mode, faithful.steps, faithful.starts) == ("faithful", 30, 3)
    assert faithful.seconds > 0
    assert (faithful.psnr > fast.psnr).all()
    assert ((faithful.ssim > -1) & (faithful.ssim <= 1)).all()


def test_same_image_and_settings_give_the_same_latent_bits(export: Export) -> None:
    encoder = tiny_encoder()
    _, x = _faces(export)
    a = invert(export.generator, encoder, x, steps=20, starts=3, seed=5)
    torch.randn(7)  # the global RNG moving in between must not matter
    b = invert(export.generator, encoder, x, steps=20, starts=3, seed=5)
    assert torch.equal(a.z, b.z) and torch.equal(a.reconstruction, b.reconstruction)
    c = invert(export.generator, encoder, x, steps=20, starts=3, seed=6)  # other perturbed starts
    assert not torch.equal(a.z, c.z)


def test_perturbations_do_not_depend_on_the_batch() -> None:
    z = _latents(5, 0)
    starts = perturbed_starts(z, 4, 0.5, seed=3)  # (5, 4, nz)
    assert starts.shape == (5, 4, TINY.nz)
    assert torch.equal(starts[:, 0], z)  # the first start is the encoder's guess itself
    assert torch.equal(starts[2:3], perturbed_starts(z[2:3], 4, 0.5, seed=3))


def test_round_trip_on_a_generated_face_recovers_its_latent(export: Export) -> None:
    z, x = _faces(export, n=4)
    start = z + 0.5 * _latents(4, 2)
    found = refine(export.generator, None, x, start[:, None], 100, Objective(consistency=0.0, shell=0.0))
    assert ((found - z).norm(dim=1) / z.norm(dim=1) < 0.01).all()
    with torch.inference_mode():
        assert (psnr(export.generator(found), x) > 60).all()


def test_the_best_start_is_kept(export: Export) -> None:
    z, x = _faces(export, n=2)
    far = _latents(2, 9) * 3
    starts = torch.stack([far, z + 0.01 * _latents(2, 3)], dim=1)  # (2, 2, nz): start 1 is almost there
    found = refine(export.generator, None, x, starts, 5, Objective(consistency=0.0, shell=0.0, lr=0.01))
    assert ((found - z).norm(dim=1) < 0.2).all()


def test_the_shell_term_keeps_z_near_sqrt_nz(export: Export) -> None:
    noise = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1  # no face G can draw
    start = 0.3 * _latents(3, 4)[:, None]  # (3, 1, nz), well inside the shell
    encoder = tiny_encoder()
    shell = refine(export.generator, encoder, noise, start, 100, Objective(shell=1.0))
    loose = refine(export.generator, encoder, noise, start, 100, Objective(shell=0.0))
    radius = math.sqrt(TINY.nz)
    assert ((shell.norm(dim=1) / radius - 1).abs() < 0.05).all()
    assert ((loose.norm(dim=1) / radius - 1).abs() > 0.5).all()  # without it, z drifts off the shell


def test_weights_are_never_touched(export: Export) -> None:
    encoder = tiny_encoder()
    before = {k: v.clone() for k, v in export.generator.state_dict().items()}
    _, x = _faces(export)
    invert(export.generator, encoder, x, steps=5, starts=2)
    assert all(torch.equal(v, before[k]) for k, v in export.generator.state_dict().items())
    assert all(p.grad is None for p in [*export.generator.parameters(), *encoder.parameters()])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "best"}, "mode must be one of fast, faithful"),
        ({"steps": 0}, "steps must be in"),
        ({"starts": 0}, "starts in"),
    ],
)
def test_bad_settings_are_named(export: Export, kwargs: dict[str, object], message: str) -> None:
    _, x = _faces(export)
    with pytest.raises(ValueError, match=message):
        invert(export.generator, tiny_encoder(), x, **kwargs)  # type: ignore[arg-type]


def test_a_target_of_the_wrong_size_is_named(export: Export) -> None:
    with pytest.raises(ValueError, match=r"target must be \(N, 3, 32, 32\)"):
        invert(export.generator, tiny_encoder(), torch.zeros(1, 3, 64, 64))


def test_train_mode_networks_are_refused(export: Export) -> None:
    _, x = _faces(export)
    with pytest.raises(RuntimeError, match="eval-mode"):
        invert(export.generator.train(), tiny_encoder(), x)
