"""Cross-request batching through HTTP: many n=1 requests, few forwards; 503 on a full queue; 504 past
the deadline without computing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import torch

from app.runtime.settings import Settings
from tests.app.conftest import Gate, Served, serve, wait_for

pytestmark = pytest.mark.anyio


async def test_concurrent_single_images_share_forwards(make_settings: Callable[..., Settings], gate: Gate) -> None:
    """64 simultaneous n=1 requests: while one forward runs, the rest queue and go as one batch."""
    async with serve(make_settings(max_batch_images=64, forward_workers=1)) as served:
        gate.close()
        batches_before = served.metric("dcgan_batch_images_count")
        tasks = [asyncio.create_task(served.http.post("/generate", params={"n": 1, "seed": s})) for s in range(64)]
        await gate.wait_entered()
        await wait_for(lambda: served.metric("dcgan_queue_depth_images") == 64 - gate.calls[0])
        assert served.metric("dcgan_http_requests_in_flight") == 64  # the autoscaling signal
        await served.http.get("/metrics")  # a scrape is not load: it never counts itself
        gate.open.set()
        responses = await asyncio.gather(*tasks)
        assert all(r.status_code == 200 for r in responses)
        assert served.metric("dcgan_http_requests_in_flight") == 0
        assert sorted(int(r.headers["x-seeds"]) for r in responses) == list(range(64))
        # 64 requests, at most 2 forwards (1 when all 64 arrive within the first batch's max_wait)
        assert len(gate.calls) in (1, 2) and sum(gate.calls) == 64, gate.calls
        assert served.metric("dcgan_batch_images_count") - batches_before == len(gate.calls)
        assert served.metric("dcgan_batch_requests_sum") >= 63  # requests per batch, summed


async def test_unforced_burst_is_batched(make_settings: Callable[..., Settings], gate: Gate) -> None:
    """No gate: a burst within max_wait lands in far fewer forwards than requests."""
    async with serve(make_settings(max_batch_images=64, max_wait_ms=200, forward_workers=1)) as served:
        gate.calls.clear()
        responses = await asyncio.gather(*(served.http.post("/generate", params={"n": 1}) for _ in range(32)))
        assert all(r.status_code == 200 for r in responses)
        assert len(gate.calls) <= 4, gate.calls


async def test_full_queue_is_503_at_once(make_settings: Callable[..., Settings], gate: Gate) -> None:
    small = {"max_queued_images": 4, "max_images_per_request": 4, "max_interpolation_steps": 4, "max_batch_images": 4}
    async with serve(make_settings(**small, forward_workers=1)) as served:  # one forward at a time
        gate.close()
        first = asyncio.create_task(served.http.post("/generate", params={"n": 4, "seed": 1}))
        await gate.wait_entered()  # 4 rows in the forward, queue empty
        second = asyncio.create_task(served.http.post("/generate", params={"n": 4, "seed": 2}))
        await wait_for(lambda: served.metric("dcgan_queue_depth_images") == 4)
        r = await served.http.post("/generate", params={"n": 1})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert served.metric("dcgan_rejections_total", reason="queue_full") == 1
        gate.open.set()
        assert (await first).status_code == 200 and (await second).status_code == 200


async def test_past_deadline_is_504_and_not_computed(make_settings: Callable[..., Settings], gate: Gate) -> None:
    async with serve(make_settings(request_timeout_s=0.3, forward_workers=1)) as served:
        gate.close()
        running = asyncio.create_task(served.http.post("/generate", params={"n": 2, "seed": 1}))
        await gate.wait_entered()
        queued = await served.http.post("/generate", params={"n": 3, "seed": 9})
        assert queued.status_code == 504
        assert (await running).status_code == 504  # the client's deadline holds even mid-forward
        gate.open.set()
        await wait_for(lambda: served.metric("dcgan_queue_depth_images") == 0)
        assert gate.calls == [2], gate.calls  # the queued request was never computed
        assert served.metric("dcgan_rejections_total", reason="deadline") == 2
        assert (await served.http.post("/generate", params={"n": 1})).status_code == 200


async def test_deadline_counts_from_arrival_not_from_queueing(served: Served) -> None:
    """A request that waited past its deadline before reaching the batcher is 504 and never computed."""
    from starlette.requests import Request

    from app.errors import DeadlineExceeded
    from app.runtime.metrics import ARRIVED

    timeout = served.service.settings.request_timeout_s
    stale = Request({"type": "http", "method": "POST", "headers": [], "state": {ARRIVED: time.monotonic() - timeout}})
    before = served.metric("dcgan_images_generated_total")
    with pytest.raises(DeadlineExceeded):
        model = served.service.registry.resolve(None)
        await served.service.generate(model, [0], torch.zeros(1, model.info.config.nz), None, "grid", stale)
    assert served.metric("dcgan_rejections_total", reason="deadline") == 1
    assert served.metric("dcgan_images_generated_total") == before


async def test_seed_latents_are_drawn_in_the_forward_worker(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawing a seed's latent costs more event-loop time than the rest of the route: it happens in the
    worker, and gives exactly the latents of the seed -> latent contract."""
    import threading

    from models.latent import SeedLatents, latents_for_seeds

    threads: list[str] = []
    original = SeedLatents.tensor

    def recording(self: SeedLatents) -> torch.Tensor:
        threads.append(threading.current_thread().name)
        out = original(self)
        assert torch.equal(out, latents_for_seeds(self.seeds, self.nz, self.truncation))
        return out

    monkeypatch.setattr(SeedLatents, "tensor", recording)
    r = await served.http.post("/generate", params={"n": 3, "seed": 9, "truncation": 1.2})
    assert r.status_code == 200 and threads and all(t.startswith("generator") for t in threads), threads
