"""The channels-last tail: same weights, same keys, and kept only where this CPU gives the same floats."""

from __future__ import annotations

import pytest
import torch

from models import Generator, latents_for_seeds
from models.layout import ChannelsLastTail, channels_last_tail, fastest_same_floats, same_floats
from models.precision import cast
from models.sampling import render
from tests.models.conftest import tiny_generator

ROWS = [8, 16, 24, 64]


def test_the_tail_is_a_copy_with_the_same_weights() -> None:
    plain = tiny_generator()
    tail = channels_last_tail(plain)
    assert isinstance(tail, ChannelsLastTail) and not tail.training
    assert plain.state_dict().keys() == tail.state_dict().keys()
    for name, value in plain.state_dict().items():
        assert torch.equal(value, tail.state_dict()[name]), name
    first, *rest = [m.weight for m in tail.main if isinstance(m, torch.nn.ConvTranspose2d)]
    assert first.is_contiguous() and all(w.is_contiguous(memory_format=torch.channels_last) for w in rest)
    assert all(type(m) is type(n) for m, n in zip(plain.main, tail.main, strict=True))
    assert type(plain) is Generator  # the original is untouched
    with torch.inference_mode():
        out = tail(torch.zeros(8, plain.config.nz))
    assert out.shape == (8, 3, 32, 32) and out.is_contiguous(memory_format=torch.channels_last)


def test_what_it_picks_renders_the_plain_generators_bytes() -> None:
    """Whichever it picks on this CPU, every latent's pixels are the plain generator's, at any batch."""
    plain = tiny_generator()
    picked = fastest_same_floats(plain, ROWS)
    z = latents_for_seeds(range(70), plain.config.nz)  # (70, nz)
    alone = torch.cat([render(plain, z[i : i + 1]) for i in range(70)])
    for n in (1, 7, 64):
        assert torch.equal(torch.cat([render(picked, part) for part in z.split(n)]), alone), n


def test_a_tail_with_other_floats_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tiny_generator()
    monkeypatch.setattr("models.layout.same_floats", lambda a, b, rows: False)
    assert fastest_same_floats(plain, ROWS) is plain


def test_same_floats_sees_a_one_ulp_change() -> None:
    plain = tiny_generator()
    other = channels_last_tail(plain)
    with torch.no_grad():
        last = other.main[-2].weight  # the last ConvTranspose2d
        last[0, 0, 0, 0] = torch.nextafter(last[0, 0, 0, 0], torch.tensor(1.0))
    assert not same_floats(plain, other, ROWS)


def test_other_generators_are_given_back_as_they_are() -> None:
    plain = tiny_generator()
    assert fastest_same_floats(plain.train(), ROWS) is plain  # train-mode BatchNorm: not a serving forward
    bf16 = cast(tiny_generator(), "bf16")  # already channels-last, and not fp32
    assert fastest_same_floats(bf16, ROWS) is bf16


def test_making_the_tail_draws_nothing_from_the_global_rng() -> None:
    plain = tiny_generator()
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    channels_last_tail(plain)
    assert torch.equal(torch.rand(3), before)
