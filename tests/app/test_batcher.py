"""The batcher and the forward pool on their own: failure isolation, count check, dropped requests, stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from app.batching.batcher import Batcher
from app.batching.policy import BatchPolicy
from app.compute.forward_pool import ForwardPool
from app.compute.outputs import Images
from app.errors import ClientGone, DeadlineExceeded, GeneratorFailed, NotRunning, QueueFull
from app.runtime.metrics import Metrics

pytestmark = pytest.mark.anyio
Forward = Callable[[torch.Tensor], torch.Tensor]
RAW = Images()


@dataclass
class FakeEngine:
    """Stands in for ``app.compute.engine.Engine``: ``forward`` is the test's function."""

    forward: Forward

    def warm_up(self, max_batch_rows: int) -> float:
        return 0.0


def echo(calls: list[int]) -> Forward:
    """A fake generator: image i is the latent row itself, so slices can be checked."""

    def forward(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        return z.clone()

    return forward


def batcher(forward: Forward, workers: int = 1, max_queued_rows: int = 64, **policy: Any) -> Batcher:
    metrics = Metrics()
    pool = ForwardPool(FakeEngine(forward), workers, metrics)  # type: ignore[arg-type]
    rules = BatchPolicy(**({"max_rows": 4, "max_wait_s": 0.01} | policy))
    b = Batcher(pool.compute, rules, metrics, max_queued_rows=max_queued_rows, concurrency=workers)
    b.start()
    return b


def rows(start: int, n: int) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, 3)  # (n, 3)


async def submit(b: Batcher, z: torch.Tensor, timeout_s: float = 5, output: Any = RAW, gone: Any = None) -> Any:
    return await b.submit(z, output, timeout_s=timeout_s, is_disconnected=gone)


async def test_requests_share_a_forward_and_get_their_own_rows() -> None:
    calls: list[int] = []
    b = batcher(echo(calls), max_rows=8, max_wait_s=0.05)
    outs = await asyncio.gather(submit(b, rows(0, 1)), submit(b, rows(1, 3)), submit(b, rows(4, 2)))
    await b.stop()
    expected = [rows(0, 1), rows(1, 3), rows(4, 2)]
    assert calls == [6] and all(torch.equal(o, e) for o, e in zip(outs, expected, strict=True))


async def test_failure_reaches_only_its_batch() -> None:
    calls: list[int] = []

    def flaky(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        if len(calls) == 1:
            raise RuntimeError("device fell over")
        return z.clone()

    b = batcher(flaky, max_wait_s=0.05)
    first = await asyncio.gather(submit(b, rows(0, 1)), submit(b, rows(1, 2)), return_exceptions=True)
    assert all(isinstance(e, GeneratorFailed) for e in first) and calls == [3]  # both requests of the batch
    assert torch.equal(await submit(b, rows(5, 2)), rows(5, 2))  # the next batch is fine
    await b.stop()


async def test_row_count_is_checked() -> None:
    b = batcher(lambda z: z[:-1])
    with pytest.raises(GeneratorFailed):
        await submit(b, rows(0, 3))
    await b.stop()


async def test_disconnected_client_is_dropped_before_compute() -> None:
    calls: list[int] = []
    b = batcher(echo(calls), max_wait_s=0.1)  # the request waits 0.1 s: long enough to be asked

    async def gone() -> bool:
        return True

    with pytest.raises(ClientGone):
        await submit(b, rows(0, 2), gone=gone)
    await b.stop()
    assert calls == [] and b._metrics.rejections.labels("disconnected")._value.get() == 1


async def test_only_rows_that_waited_are_asked_about_their_client() -> None:
    asked: list[int] = []

    async def gone() -> bool:
        asked.append(1)
        return True

    b = batcher(echo([]), max_wait_s=0.0)
    out = await submit(b, rows(0, 2), gone=gone)  # fresh: computed without asking
    await b.stop()
    assert asked == [] and torch.equal(out, rows(0, 2))


async def test_queue_bound_deadline_and_stop() -> None:
    release = threading.Event()
    calls: list[int] = []

    def blocked(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        release.wait(10)
        return z.clone()

    b = batcher(blocked, max_queued_rows=4)
    running = asyncio.create_task(submit(b, rows(0, 4)))
    while not calls:
        await asyncio.sleep(0.005)
    waiting = asyncio.create_task(submit(b, rows(4, 3)))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await submit(b, rows(9, 2))  # 3 queued + 2 > 4
    with pytest.raises(DeadlineExceeded):
        await submit(b, rows(9, 1), timeout_s=0.05)
    assert b._queued_rows == 3  # the timed-out request left the queue at once
    release.set()
    assert torch.equal(await running, rows(0, 4))
    assert torch.equal(await waiting, rows(4, 3))
    await b.stop()
    with pytest.raises(NotRunning):
        await submit(b, rows(0, 1))


async def test_stop_fails_the_running_batch_and_the_queue() -> None:
    release = threading.Event()

    def blocked(z: torch.Tensor) -> torch.Tensor:
        release.wait(10)
        return z.clone()

    b = batcher(blocked, max_wait_s=0.0)
    running = asyncio.create_task(submit(b, rows(0, 4)))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(submit(b, rows(4, 2)))
    await asyncio.sleep(0.01)
    await b.stop()
    release.set()  # let the worker thread finish
    for task in (running, queued):
        with pytest.raises(NotRunning):
            await task


async def test_rows_that_queued_during_a_forward_do_not_wait_again() -> None:
    calls: list[int] = []
    release = threading.Event()

    def slow(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        release.wait(timeout=5)
        return z.clone()

    b = batcher(slow, max_wait_s=1.0, max_rows=64)
    first = asyncio.create_task(submit(b, rows(0, 1), timeout_s=10))
    await asyncio.sleep(1.1)  # the first row waited max_wait for company, then its forward started (and blocks)
    second = asyncio.create_task(submit(b, rows(1, 2), timeout_s=10))
    await asyncio.sleep(0.6)  # ...while these rows queue for longer than max_wait / 2
    loop = asyncio.get_running_loop()
    start = loop.time()
    release.set()
    await asyncio.gather(first, second)
    await b.stop()
    assert calls == [1, 2] and loop.time() - start < 0.7  # not another full max_wait_s after the forward


async def test_a_cpu_batch_stops_at_a_multiple_of_the_padding() -> None:
    """19 one-row requests wait behind a running forward: the next forward takes 16 (no padding rows),
    the 3 left lead the one after."""
    release, calls = threading.Event(), []

    def forward(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        release.wait(10)
        return z.clone()

    b = batcher(forward, max_rows=32, max_wait_s=0.0, row_multiple=8)
    first = asyncio.create_task(submit(b, rows(0, 1)))
    while not calls:
        await asyncio.sleep(0.005)
    waiting = [asyncio.create_task(submit(b, rows(i, 1))) for i in range(1, 20)]
    while b._queued_rows < 19:
        await asyncio.sleep(0.005)
    release.set()
    out = await asyncio.gather(first, *waiting)
    await b.stop()
    assert calls == [1, 16, 3] and all(torch.equal(o, rows(i, 1)) for i, o in enumerate(out))


async def test_enough_rows_go_without_waiting_out_max_wait() -> None:
    calls: list[int] = []
    b = batcher(echo(calls), max_rows=64, max_wait_s=30.0, enough_rows=8)
    out = await asyncio.wait_for(asyncio.gather(*(submit(b, rows(i, 1)) for i in range(8))), 5)
    await b.stop()
    assert sum(calls) == 8 and len(out) == 8  # 8 rows are enough: the 30 s max_wait never held them


async def test_workers_run_forwards_side_by_side() -> None:
    both = threading.Barrier(2, timeout=5)  # each forward waits for the other: only passes if they overlap
    calls: list[int] = []

    def forward(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        both.wait()
        return z.clone()

    b = batcher(forward, workers=2, max_rows=2, max_wait_s=0.0)
    out = await asyncio.gather(submit(b, rows(0, 2)), submit(b, rows(2, 2)))
    await b.stop()
    assert calls == [2, 2] and torch.equal(torch.cat(out), rows(0, 4))


@dataclass(frozen=True)
class Where:
    def encode(self, images: torch.Tensor) -> tuple[str, int]:
        return threading.current_thread().name, images.shape[0]


@dataclass(frozen=True)
class Broken:
    def encode(self, images: torch.Tensor) -> None:
        raise ValueError("cannot encode")


async def test_outputs_are_encoded_in_the_worker_and_a_failing_one_fails_only_its_request() -> None:
    calls: list[int] = []
    b = batcher(echo(calls), max_rows=8, max_wait_s=0.05)
    ok, bad, plain = await asyncio.gather(
        submit(b, rows(0, 2), output=Where()),
        submit(b, rows(2, 1), output=Broken()),
        submit(b, rows(3, 3)),
        return_exceptions=True,
    )
    await b.stop()
    assert calls == [6]  # all three shared one forward
    assert isinstance(ok, tuple) and ok[0].startswith("generator") and ok[1] == 2
    assert isinstance(bad, ValueError) and torch.equal(plain, rows(3, 3))  # type: ignore[arg-type]


async def test_a_lone_client_does_not_wait_for_company() -> None:
    """Requests 0.5 s apart: after a few, the batcher stops waiting max_wait_s (0.2 s) for rows that will
    not come; a burst makes it wait again."""
    b = batcher(echo([]), max_rows=64, max_wait_s=0.2)
    took = []
    for i in range(5):
        start = time.perf_counter()
        await submit(b, rows(i, 1))
        took.append(time.perf_counter() - start)
        await asyncio.sleep(0.5)
    assert took[0] >= 0.19 and not b.policy.company_expected  # the first waited: company was assumed
    assert took[-1] < 0.15, took  # the fifth went at once
    await asyncio.gather(*(submit(b, rows(i, 1)) for i in range(20)))
    await b.stop()
    assert b.policy.company_expected


async def test_warm_up_runs_once_in_every_worker_thread() -> None:
    names: list[str] = []

    class Recording(FakeEngine):
        def warm_up(self, max_batch_rows: int) -> float:
            names.append(threading.current_thread().name)
            return 0.25

    pool = ForwardPool(Recording(echo([])), 3, Metrics())  # type: ignore[arg-type]
    assert await pool.warm_up(8) == 0.25
    pool.close()
    assert len(set(names)) == 3 and all(n.startswith("generator") for n in names)
