"""Hypothesis properties of the latent maths and of the micro-batcher's splitting and reassembly."""

from __future__ import annotations

import asyncio

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.batching.batcher import Batcher
from app.batching.policy import BatchPolicy
from app.compute.forward_pool import ForwardPool
from app.compute.outputs import Images
from app.runtime.metrics import Metrics
from models.latent import SEED_MAX, arithmetic, latent_for_seed, latents_for_seeds, lerp, slerp

NZ = 16
FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None)
seeds = st.integers(0, SEED_MAX)
weights = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def z(seed: int) -> torch.Tensor:
    return latent_for_seed(seed, NZ).double()


@FAST
@given(seeds, seeds, st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_lerp_and_slerp_hit_their_endpoints(a: int, b: int, ts: list[float]) -> None:
    za, zb = z(a), z(b)
    t = torch.tensor([0.0, *ts, 1.0], dtype=torch.float64)
    for path in (lerp(za, zb, t), slerp(za, zb, t)):  # (T, nz)
        assert path.shape == (len(ts) + 2, NZ) and torch.isfinite(path).all()
        assert torch.allclose(path[0], za, atol=1e-9) and torch.allclose(path[-1], zb, atol=1e-9)


@FAST
@given(seeds, seeds, st.floats(0, 1), st.floats(0.1, 10))
def test_slerp_interpolates_norms_linearly(a: int, b: int, t: float, scale: float) -> None:
    za, zb = z(a), z(b) * scale
    out = slerp(za, zb, torch.tensor([t], dtype=torch.float64))[0]
    expected = (1 - t) * za.norm() + t * zb.norm()  # equal norms -> preserved all along the path
    assert torch.isclose(out.norm(), expected, rtol=1e-6)
    assert out.norm() <= max(za.norm(), zb.norm()) * (1 + 1e-9)  # never beyond the larger endpoint


@FAST
@given(seeds, seeds, st.floats(0, 1))
def test_lerp_is_the_straight_line(a: int, b: int, t: float) -> None:
    za, zb = z(a), z(b)
    assert torch.allclose(lerp(za, zb, t), za * (1 - t) + zb * t, atol=1e-9)


@FAST
@given(
    st.lists(st.tuples(weights, st.lists(seeds, min_size=1, max_size=4)), min_size=1, max_size=4),
    weights,
)
def test_arithmetic_is_linear(terms: list[tuple[float, list[int]]], scale: float) -> None:
    groups = [(w, latents_for_seeds(s, NZ).double()) for w, s in terms]
    total = arithmetic(groups)  # (nz,)
    assert total.shape == (NZ,)
    one_by_one = sum((arithmetic([g]) for g in groups), torch.zeros(NZ, dtype=torch.float64))
    assert torch.allclose(total, one_by_one, atol=1e-9)  # additive over terms
    scaled = arithmetic([(scale * w, e) for w, e in groups])
    assert torch.allclose(scaled, scale * total, atol=1e-7)  # homogeneous in the weights


@FAST
@given(st.lists(seeds, min_size=1, max_size=12), st.randoms(use_true_random=False), st.sampled_from([None, 0.5, 2.0]))
def test_a_seeds_latent_is_independent_of_its_batch(batch: list[int], rnd: object, truncation: float | None) -> None:
    shuffled = list(batch)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    together = latents_for_seeds(batch, NZ, truncation)
    reordered = latents_for_seeds(shuffled, NZ, truncation)
    for i, seed in enumerate(batch):
        alone = latent_for_seed(seed, NZ, truncation)
        assert torch.equal(together[i], alone)
        assert torch.equal(reordered[shuffled.index(seed)], alone)


class _Echo:
    """A stand-in engine: image i is the latent row itself."""

    def __init__(self, calls: list[int]) -> None:
        self.calls = calls

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.calls.append(z.shape[0])
        return z.clone()


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=12),
    max_batch=st.integers(9, 24),
    stagger=st.booleans(),
)
def test_batcher_reassembles_any_request_sizes_in_order(sizes: list[int], max_batch: int, stagger: bool) -> None:
    """Requests of any sizes, arriving together or staggered, each get exactly their rows back, in order."""
    calls: list[int] = []

    async def scenario() -> list[torch.Tensor]:
        metrics = Metrics()
        pool = ForwardPool(_Echo(calls), 2, metrics)  # type: ignore[arg-type]
        policy = BatchPolicy(max_rows=max_batch, max_wait_s=0.001, row_multiple=8)
        b = Batcher(pool.compute, policy, metrics, max_queued_rows=1000, concurrency=2)
        b.start()
        offsets = [sum(sizes[:i]) for i in range(len(sizes))]

        async def one(i: int) -> torch.Tensor:
            if stagger:
                await asyncio.sleep(0.0005 * (i % 3))
            rows = torch.arange(offsets[i], offsets[i] + sizes[i], dtype=torch.float32)[:, None].repeat(1, 3)
            return await b.submit(rows, Images(), timeout_s=10, is_disconnected=None)  # (n, 3)

        try:
            return await asyncio.gather(*(one(i) for i in range(len(sizes))))
        finally:
            assert b._queued_rows == 0
            await b.stop()
            pool.close()

    outs = asyncio.run(scenario())
    start = 0
    for n, out in zip(sizes, outs, strict=True):
        expected = torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, 3)
        assert torch.equal(out, expected)
        start += n
    assert sum(calls) == sum(sizes)  # every row computed exactly once
    assert all(1 <= c <= max_batch for c in calls)  # no forward above the batch cap
