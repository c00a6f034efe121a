"""An image is a pure function of (model, seed, truncation): byte-identical PNGs whatever n, the
position in the batch, the other clients' requests that shared the batch, and across restarts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
import torch

from app.compute.engine import Engine
from app.runtime.settings import Settings
from tests.app.conftest import Gate, Served, serve, wait_for

pytestmark = pytest.mark.anyio


async def pngs(served: Served, **params: object) -> dict[int, str]:
    r = await served.http.post("/generate", params={"format": "json", **params})
    assert r.status_code == 200, r.text
    return {item["seed"]: item["png"] for item in r.json()["images"]}


async def test_same_bytes_whatever_n_and_position(served: Served) -> None:
    alone = await pngs(served, n=1, seed=100)
    for n, first in ((2, 100), (7, 97), (13, 88), (64, 60)):  # seed 100 at positions 0, 3, 12, 40
        assert (await pngs(served, n=n, seed=first))[100] == alone[100], (n, first)


async def test_truncation_is_deterministic_and_matters(served: Served) -> None:
    a = await pngs(served, n=2, seed=5, truncation=0.7)
    assert a == await pngs(served, n=2, seed=5, truncation=0.7)
    assert a[5] != (await pngs(served, n=1, seed=5))[5]


async def test_same_bytes_whatever_shares_the_batch(make_settings: Callable[..., Settings], gate: Gate) -> None:
    async with serve(make_settings(max_wait_ms=50, forward_workers=1)) as served:  # one forward at a time
        alone = await pngs(served, n=1, seed=7)
        gate.close()
        blocker = asyncio.create_task(pngs(served, n=1, seed=1))  # occupies the generator
        await gate.wait_entered()
        others = [asyncio.create_task(pngs(served, n=n, seed=1000 * n)) for n in (3, 5)]
        target = asyncio.create_task(pngs(served, n=1, seed=7))
        more = [asyncio.create_task(pngs(served, n=n, seed=5000 + n)) for n in (2, 13)]
        await wait_for(lambda: served.metric("dcgan_queue_depth_images") == 24)  # a multiple of 8: one batch
        gate.open.set()
        await asyncio.gather(blocker, *others, *more)
        assert (await target)[7] == alone[7]
        assert gate.calls == [1, 24], gate.calls  # the target really shared one forward with 4 other requests


async def test_same_bytes_across_restarts(make_settings: Callable[..., Settings]) -> None:
    results = []
    for _ in range(2):
        async with serve(make_settings()) as served:
            grid = await served.http.post("/generate", params={"n": 9, "seed": 3, "truncation": 1.5})
            strip = await served.http.post("/interpolate", json={"seed_a": 1, "seed_b": 2, "format": "gif"})
            results.append((grid.content, strip.content, await pngs(served, n=4, seed=11)))
    assert results[0] == results[1]


async def test_grid_bytes_do_not_depend_on_the_forward_worker_or_the_load(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """n=1 PNGs are encoded in whichever forward worker ran the batch: two workers, 48 requests at once."""
    forwards: list[tuple[str, int]] = []  # (worker thread, rows) of every forward
    original = Engine.forward

    def recording(engine: Engine, z: torch.Tensor) -> torch.Tensor:
        forwards.append((threading.current_thread().name, z.shape[0]))
        time.sleep(0.02)  # a forward long enough for the next requests to queue behind it
        return original(engine, z)

    monkeypatch.setattr(Engine, "forward", recording)
    small = {"max_batch_images": 16, "max_images_per_request": 16, "max_interpolation_steps": 16}
    async with serve(make_settings(forward_workers=2, max_wait_ms=1, **small)) as served:

        async def grid(seed: int) -> bytes:
            r = await served.http.post("/generate", params={"n": 1, "seed": seed})
            assert r.status_code == 200 and r.headers["x-seeds"] == str(seed)
            return r.content

        alone = {seed: await grid(seed) for seed in range(4)}
        forwards.clear()
        together = await asyncio.gather(*(grid(seed % 4) for seed in range(48)))
        assert all(data == alone[seed % 4] for seed, data in enumerate(together))
    rows = [n for _, n in forwards]
    assert sum(rows) == 48 and len(rows) >= 3 and max(rows) > 1, forwards  # several batches, shared ones
    assert len({worker for worker, _ in forwards}) == 2, forwards  # both workers encoded some of them
