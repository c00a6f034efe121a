"""MicroBatcher on its own: chunking, failure isolation, count check, dropped requests, stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
import torch

from app.batcher import ClientGone, DeadlineExceeded, GeneratorFailed, MicroBatcher, NotRunning, QueueFull
from app.metrics import Metrics

pytestmark = pytest.mark.anyio


def echo(calls: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A fake generator: image i is the latent row itself, so slices can be checked."""

    def forward(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        return z.clone()

    return forward


def batcher(forward: Callable[[torch.Tensor], torch.Tensor], **kw: float | bool | None) -> MicroBatcher:
    opts = {"max_batch_rows": 4, "max_wait_s": 0.01, "max_queued_rows": 64} | kw
    return MicroBatcher(forward, Metrics(), **opts)  # type: ignore[arg-type]


def rows(start: int, n: int) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, 3)  # (n, 3)


async def test_large_request_is_chunked_and_reassembled() -> None:
    calls: list[int] = []
    b = batcher(echo(calls))
    await b.start()
    out = await b.submit(rows(0, 10), timeout_s=5)
    await b.stop()
    assert torch.equal(out, rows(0, 10)) and calls == [4, 4, 2]


async def test_failure_reaches_only_its_batch() -> None:
    calls: list[int] = []

    def flaky(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        if len(calls) == 1:
            raise RuntimeError("device fell over")
        return z.clone()

    b = batcher(flaky, max_wait_s=0.05)
    await b.start()
    first = await asyncio.gather(
        b.submit(rows(0, 1), timeout_s=5), b.submit(rows(1, 2), timeout_s=5), return_exceptions=True
    )
    assert all(isinstance(e, GeneratorFailed) for e in first) and calls == [3]  # both requests of the batch
    assert torch.equal(await b.submit(rows(5, 2), timeout_s=5), rows(5, 2))  # the next batch is fine
    await b.stop()


async def test_row_count_is_checked() -> None:
    b = batcher(lambda z: z[:-1])
    await b.start()
    with pytest.raises(GeneratorFailed):
        await b.submit(rows(0, 3), timeout_s=5)
    await b.stop()


async def test_disconnected_client_is_dropped_before_compute() -> None:
    calls: list[int] = []
    b = batcher(echo(calls), check_disconnect_after_s=0.0)

    async def gone() -> bool:
        return True

    await b.start()
    with pytest.raises(ClientGone):
        await b.submit(rows(0, 2), timeout_s=5, is_disconnected=gone)
    await b.stop()
    assert calls == [] and b._metrics.rejections.labels("disconnected")._value.get() == 1


async def test_queue_bound_deadline_and_stop() -> None:
    release = threading.Event()
    calls: list[int] = []

    def blocked(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        release.wait(10)
        return z.clone()

    b = batcher(blocked, max_queued_rows=4)
    await b.start()
    running = asyncio.create_task(b.submit(rows(0, 4), timeout_s=5))
    while not calls:
        await asyncio.sleep(0.005)
    waiting = asyncio.create_task(b.submit(rows(4, 3), timeout_s=5))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await b.submit(rows(9, 2), timeout_s=5)  # 3 queued + 2 > 4
    with pytest.raises(DeadlineExceeded):
        await b.submit(rows(9, 1), timeout_s=0.05)
    assert b.queued_rows == 3  # the timed-out request left the queue
    release.set()
    assert torch.equal(await running, rows(0, 4))
    assert torch.equal(await waiting, rows(4, 3))
    await b.stop()
    with pytest.raises(NotRunning):
        await b.submit(rows(0, 1), timeout_s=5)


async def test_stop_fails_the_running_batch_and_the_queue() -> None:
    release = threading.Event()

    def blocked(z: torch.Tensor) -> torch.Tensor:
        release.wait(10)
        return z.clone()

    b = batcher(blocked, max_wait_s=0.0)
    await b.start()
    running = asyncio.create_task(b.submit(rows(0, 4), timeout_s=5))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(b.submit(rows(4, 2), timeout_s=5))
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(b.stop())
    await asyncio.sleep(0.01)
    release.set()  # let the worker thread finish so the executor can shut down
    await stopping
    for task in (running, queued):
        with pytest.raises(NotRunning):
            await task


async def test_batching_off_runs_one_forward_per_request() -> None:
    calls: list[int] = []
    b = batcher(echo(calls), max_wait_s=0.05, batching=False)
    await b.start()
    outs = await asyncio.gather(*(b.submit(rows(10 * i, i), timeout_s=5) for i in (1, 2, 3, 6)))
    await b.stop()
    assert [o[:, 0].tolist() for o in outs] == [rows(10 * i, i)[:, 0].tolist() for i in (1, 2, 3, 6)]
    assert calls == [1, 2, 3, 4, 2]  # the naive baseline: no request shares a forward (6 rows = two chunks of 4)


async def test_rows_that_queued_during_a_forward_do_not_wait_again() -> None:
    calls: list[int] = []
    release = threading.Event()

    def slow(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        release.wait(timeout=5)
        return z.clone()

    b = batcher(slow, max_wait_s=1.0, max_batch_rows=64)
    await b.start()
    first = asyncio.create_task(b.submit(rows(0, 1), timeout_s=10))
    await asyncio.sleep(1.1)  # the first row waited max_wait for company, then its forward started (and blocks)
    second = asyncio.create_task(b.submit(rows(1, 2), timeout_s=10))
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

    b = batcher(forward, max_batch_rows=32, max_wait_s=0.0, row_multiple=8)
    await b.start()
    first = asyncio.create_task(b.submit(rows(0, 1), timeout_s=5))
    while not calls:
        await asyncio.sleep(0.005)
    waiting = [asyncio.create_task(b.submit(rows(i, 1), timeout_s=5)) for i in range(1, 20)]
    while b.queued_rows < 19:
        await asyncio.sleep(0.005)
    release.set()
    out = await asyncio.gather(first, *waiting)
    await b.stop()
    assert calls == [1, 16, 3] and all(torch.equal(o, rows(i, 1)) for i, o in enumerate(out))


async def test_enough_rows_go_without_waiting_out_max_wait() -> None:
    calls: list[int] = []
    b = batcher(echo(calls), max_batch_rows=64, max_wait_s=30.0, enough_rows=8)
    await b.start()
    out = await asyncio.wait_for(asyncio.gather(*(b.submit(rows(i, 1), timeout_s=5) for i in range(8))), 5)
    await b.stop()
    assert sum(calls) == 8 and len(out) == 8  # 8 rows are enough: the 30 s max_wait never held them


async def test_workers_run_forwards_side_by_side() -> None:
    both = threading.Barrier(2, timeout=5)  # each forward waits for the other: only passes if they overlap
    calls: list[int] = []

    def forward(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        both.wait()
        return z.clone()

    b = batcher(forward, max_batch_rows=2, max_wait_s=0.0, workers=2)
    await b.start()
    out = await asyncio.gather(b.submit(rows(0, 2), timeout_s=5), b.submit(rows(2, 2), timeout_s=5))
    await b.stop()
    assert calls == [2, 2] and torch.equal(torch.cat(out), rows(0, 4))


async def test_finish_runs_in_the_worker_and_fails_only_its_request() -> None:
    calls: list[int] = []

    def where(images: torch.Tensor) -> tuple[str, int]:
        return threading.current_thread().name, images.shape[0]

    def broken(images: torch.Tensor) -> None:
        raise ValueError("cannot encode")

    b = batcher(echo(calls), max_batch_rows=8, max_wait_s=0.05)
    await b.start()
    ok, bad, plain = await asyncio.gather(
        b.submit(rows(0, 2), timeout_s=5, finish=where),
        b.submit(rows(2, 1), timeout_s=5, finish=broken),
        b.submit(rows(3, 3), timeout_s=5),
        return_exceptions=True,
    )
    big = await b.submit(rows(0, 10), timeout_s=5, finish=where)  # two chunks: finished after reassembly
    await b.stop()
    assert calls[0] == 6  # all three shared one forward
    assert isinstance(ok, tuple) and ok[0].startswith("generator") and ok[1] == 2
    assert isinstance(bad, ValueError) and torch.equal(plain, rows(3, 3))  # type: ignore[arg-type]
    assert big[1] == 10 and not big[0].startswith("generator")  # the event loop stayed free: a helper thread


async def test_only_rows_that_waited_are_asked_about_their_client() -> None:
    asked: list[int] = []

    async def gone() -> bool:
        asked.append(1)
        return True

    calls: list[int] = []
    b = batcher(echo(calls), check_disconnect_after_s=30.0)
    await b.start()
    out = await b.submit(rows(0, 2), timeout_s=5, is_disconnected=gone)  # fresh: computed without asking
    await b.stop()
    assert asked == [] and torch.equal(out, rows(0, 2))


async def test_a_lone_client_does_not_wait_for_company() -> None:
    """Requests 0.5 s apart: after a few, the batcher stops waiting max_wait_s (0.2 s) for rows that will
    not come; a burst makes it wait again."""
    calls: list[int] = []
    b = batcher(echo(calls), max_batch_rows=64, max_wait_s=0.2)
    await b.start()
    took = []
    for i in range(5):
        start = time.perf_counter()
        await b.submit(rows(i, 1), timeout_s=5)
        took.append(time.perf_counter() - start)
        await asyncio.sleep(0.5)
    assert took[0] >= 0.19 and not b.company_expected  # the first waited: company was assumed
    assert took[-1] < 0.15, took  # the fifth went at once
    await asyncio.gather(*(b.submit(rows(i, 1), timeout_s=5) for i in range(20)))
    await b.stop()
    assert b.company_expected


async def test_on_each_worker_runs_once_in_every_worker_thread() -> None:
    b = batcher(echo([]), workers=3)
    await b.start()
    names = await b.on_each_worker(lambda: threading.current_thread().name)
    out = await b.submit(rows(0, 2), timeout_s=5)  # the workers serve as usual afterwards
    await b.stop()
    assert len(set(names)) == 3 and all(n.startswith("generator") for n in names) and torch.equal(out, rows(0, 2))
