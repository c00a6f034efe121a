"""Cross-request micro-batching: many requests' latent rows, one generator forward.

The shape is Ray Serve's ``_BatchQueue`` / LitServe's batched loop: requests put rows on one queue
and await a future; one consumer task collects rows (not requests) up to ``max_batch_rows`` or
until ``max_wait_s`` passed since the first arrived, drops those whose deadline passed or whose
client left, runs the forward in a worker thread (the event loop stays free), checks the row count
and hands each request its slice. A failing forward fails exactly the requests of that batch.

``workers`` forwards may run at once, each in its own thread (a CPU with two cores runs two
one-thread forwards side by side instead of one two-thread forward whose OpenMP threads spin). A
request may pass ``finish``, a function of its images run in the worker right after the forward
(PNG encoding): its result comes back with the batch, one thread hop for all of the batch's requests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import torch

from app.metrics import Metrics

log = logging.getLogger("app.batcher")
DisconnectCheck = Callable[[], Awaitable[bool]]
ARRIVAL_SMOOTHING = 0.2  # weight of the newest gap in the moving average of gaps between requests
Finish = Callable[[torch.Tensor], Any]  # a request's images (n, H, W, C) -> what it answers with
R = TypeVar("R")


class QueueFull(RuntimeError):
    """Admitting the request would exceed the queue bound (answer 503 with Retry-After)."""


class DeadlineExceeded(RuntimeError):
    """The request's deadline passed before its rows were computed (answer 504)."""


class ClientGone(RuntimeError):
    """The client disconnected while queued; its rows were never computed."""


class NotRunning(RuntimeError):
    """The batcher is not started or is stopping (answer 503)."""


class GeneratorFailed(RuntimeError):
    """The forward of the batch this request was in failed (answer 500; the input did not cause it)."""


@dataclass(eq=False)
class _Pending:
    rows: torch.Tensor  # (n, nz)
    future: asyncio.Future[Any]  # the chunk's images, or finish(images)
    deadline: float  # loop.time()
    is_disconnected: DisconnectCheck | None
    finish: Finish | None = None  # run in the worker on this chunk's images
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """One queue of latent rows, one consumer, up to ``workers`` forwards at a time. ``start()``/``stop()``
    from the lifespan."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        metrics: Metrics,
        *,
        max_batch_rows: int,
        max_wait_s: float,
        max_queued_rows: int,
        batching: bool = True,
        workers: int = 1,
        row_multiple: int = 1,
        enough_rows: int | None = None,
        check_disconnect_after_s: float = 0.05,
    ) -> None:
        self._forward = forward
        self._metrics = metrics
        self.max_batch_rows, self.max_wait_s, self.max_queued_rows = max_batch_rows, max_wait_s, max_queued_rows
        self.batching = batching  # False: one forward per request chunk, no waiting (the benchmark's naive baseline)
        self.workers = workers
        # the forward pads to a multiple of this; when more rows wait, a batch stops at one (CPU: padding costs)
        self.row_multiple = row_multiple
        # a batch goes without waiting once this many rows wait (a CPU forward is no cheaper per image when fuller)
        self.enough_rows = max_batch_rows if enough_rows is None else min(enough_rows, max_batch_rows)
        # asking whether a client left costs an event-loop turn: only rows that waited this long are asked
        self.check_disconnect_after_s = check_disconnect_after_s
        self._queue: deque[_Pending] = deque()
        self._last_arrival = time.perf_counter()
        self._arrival_gap = 0.0  # moving average of the seconds between submits (0: assume company comes)
        self._inflight: dict[asyncio.Task[None], list[_Pending]] = {}  # batches being computed
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="generator")
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def on_each_worker(self, fn: Callable[[], R]) -> list[R]:
        """Run ``fn`` once in each worker thread, all at once (the service's warm-up, so that no worker's
        first forward is a cold one). Call after ``start()``, before requests are admitted."""
        if self._executor is None:
            raise NotRunning("the batcher is not started")
        barrier = threading.Barrier(self.workers)

        def once() -> R:
            barrier.wait(timeout=120)  # holds its thread until each worker has a call: one call per thread
            return fn()

        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(self._executor, once) for _ in range(self.workers))))

    async def stop(self) -> None:
        """Stop consuming; requests still queued fail with ``NotRunning``."""
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        computing = [item for batch in self._inflight.values() for item in batch]  # before the tasks end
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for item in [*computing, *self._queue]:
            if not item.future.done():
                item.future.set_exception(NotRunning("the service is shutting down"))
        self._inflight.clear()
        self._queue.clear()
        self._set_depth(0)
        if self._executor is not None:  # wait for a running forward off the event loop
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    @overload
    async def submit(
        self, rows: torch.Tensor, *, timeout_s: float, is_disconnected: DisconnectCheck | None = None
    ) -> torch.Tensor: ...

    @overload
    async def submit(
        self,
        rows: torch.Tensor,
        *,
        timeout_s: float,
        is_disconnected: DisconnectCheck | None = None,
        finish: Callable[[torch.Tensor], R],
    ) -> R: ...

    async def submit(
        self,
        rows: torch.Tensor,
        *,
        timeout_s: float,
        is_disconnected: DisconnectCheck | None = None,
        finish: Finish | None = None,
    ) -> Any:
        """Queue ``rows`` (n, nz) and return their images (n, H, W, C) once computed, or ``finish(images)``.

        Raises ``QueueFull`` at once when the queue is full, ``DeadlineExceeded`` after ``timeout_s``,
        ``ClientGone`` if the client left first, ``NotRunning`` when stopped, or the forward's error.
        """
        if not self.running:
            raise NotRunning("the generator is not ready")
        n = rows.shape[0]
        if self._queued_rows + n > self.max_queued_rows:
            self._metrics.rejections.labels("queue_full").inc()
            raise QueueFull(f"queue full ({self._queued_rows} of {self.max_queued_rows} images queued)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        chunks = [rows] if n <= self.max_batch_rows else rows.split(self.max_batch_rows)  # larger: several chunks
        one = len(chunks) == 1
        items = [_Pending(c, loop.create_future(), deadline, is_disconnected, finish if one else None) for c in chunks]
        self._queue.extend(items)
        self._set_depth(self._queued_rows + n)
        self._note_arrival()
        self._wakeup.set()
        try:
            async with asyncio.timeout(timeout_s):
                if one:
                    return await items[0].future  # images, or finish(images) from the worker
                images = torch.cat([await item.future for item in items])
                return images if finish is None else await loop.run_in_executor(None, finish, images)
        except TimeoutError:
            self._metrics.rejections.labels("deadline").inc()
            raise DeadlineExceeded(f"not served within the {timeout_s:g} s deadline") from None
        finally:
            self._discard(items)  # on any failure: un-queue the chunks still waiting

    def _note_arrival(self) -> None:
        now = time.perf_counter()
        self._arrival_gap += ARRIVAL_SMOOTHING * (now - self._last_arrival - self._arrival_gap)
        self._last_arrival = now

    @property
    def company_expected(self) -> bool:
        """Whether another request is likely within ``max_wait_s``: requests have been arriving closer
        together than that, on average. A lone client does not wait for company that will not come."""
        return self._arrival_gap < self.max_wait_s

    def _discard(self, items: list[_Pending]) -> None:
        for item in items:
            if not item.future.done():
                item.future.cancel()
            elif not item.future.cancelled():
                item.future.exception()  # mark a sibling chunk's error as seen (no "never retrieved" log)
            if item in self._queue:
                self._queue.remove(item)
                self._set_depth(self._queued_rows - item.rows.shape[0])

    def _set_depth(self, rows: int) -> None:
        self._queued_rows = rows
        self._metrics.queue_depth.set(rows)

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.workers)
        while True:
            await slots.acquire()  # collect only when a worker is free: rows keep gathering meanwhile
            batch = await self._collect()
            live = await self._drop_dead(batch)
            if not live:
                slots.release()
                continue
            task = asyncio.create_task(self._compute(live))
            self._inflight[task] = live

            def done(task: asyncio.Task[None]) -> None:
                self._inflight.pop(task, None)
                slots.release()

            task.add_done_callback(done)

    async def _collect(self) -> list[_Pending]:
        """Wait for rows, then until the oldest has waited ``max_wait_s`` or ``enough_rows`` wait; take whole
        chunks from the head, up to a full batch. Rows that queued during the previous forward have waited
        already and go at once: under load the generator never idles between batches. When requests
        have been arriving further apart than ``max_wait_s``, the rows go at once (a lone client)."""
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        if not self.batching:
            item = self._queue.popleft()
            self._set_depth(self._queued_rows - item.rows.shape[0])
            return [item]
        loop = asyncio.get_running_loop()
        wait_s = self.max_wait_s if self.company_expected else 0.0
        flush_at = loop.time() + wait_s - (time.perf_counter() - self._queue[0].enqueued)
        while self._queued_rows < self.enough_rows and (remaining := flush_at - loop.time()) > 0:
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                break
        batch: list[_Pending] = []
        rows = 0
        while self._queue and rows + self._queue[0].rows.shape[0] <= self.max_batch_rows:
            item = self._queue.popleft()
            batch.append(item)
            rows += item.rows.shape[0]
        batch, rows = self._whole_multiple(batch, rows)
        self._set_depth(self._queued_rows - rows)
        return batch

    def _whole_multiple(self, batch: list[_Pending], rows: int) -> tuple[list[_Pending], int]:
        """The longest prefix of ``batch`` whose rows are a multiple of ``row_multiple``; the rest goes
        back to the head of the queue (it leads the next batch). With 19 one-row requests waiting, a CPU
        forward computes 16 rows for 16 images instead of 24 for 19. No such prefix: the whole batch."""
        keep, total = len(batch), rows
        while keep > 0 and total % self.row_multiple:
            keep -= 1
            total -= batch[keep].rows.shape[0]
        if keep == 0 or keep == len(batch):
            return batch, rows
        self._queue.extendleft(reversed(batch[keep:]))
        return batch[:keep], total

    async def _drop_dead(self, batch: list[_Pending]) -> list[_Pending]:
        """Fail (and never compute) rows whose deadline passed or whose client went away.

        Only rows that waited ``check_disconnect_after_s`` or longer are asked whether their client
        left (all at once): each check costs a turn of the event loop, and a client that left within
        a few milliseconds of asking costs at most one forward's share of rows.
        """
        now, started = asyncio.get_running_loop().time(), time.perf_counter()
        pending = []
        for item in batch:
            if item.future.done():  # the request already gave up (its own deadline fired)
                continue
            if now >= item.deadline:
                self._metrics.rejections.labels("deadline").inc()
                item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
            else:
                pending.append(item)
        ask = [
            item
            for item in pending
            if item.is_disconnected is not None and started - item.enqueued >= self.check_disconnect_after_s
        ]
        gone = set()
        if ask:
            answers = await asyncio.gather(*(item.is_disconnected() for item in ask if item.is_disconnected))
            gone = {item for item, left in zip(ask, answers, strict=True) if left}
        for item in gone:
            self._metrics.rejections.labels("disconnected").inc()
            item.future.set_exception(ClientGone("client disconnected while queued"))
        return [item for item in pending if item not in gone and not item.future.done()]

    async def _compute(self, batch: list[_Pending]) -> None:
        """One forward for the whole batch (then each request's ``finish``), in a worker; hand back the
        results, or fan the forward's error out to this batch only."""
        z = torch.cat([item.rows for item in batch])  # (rows, nz)
        rows = z.shape[0]
        start = time.perf_counter()
        for item in batch:
            self._metrics.queue_wait.observe(start - item.enqueued)
        plan = [(item.rows.shape[0], item.finish) for item in batch]
        try:
            seconds, results = await asyncio.get_running_loop().run_in_executor(self._executor, self._work, z, plan)
        except Exception as e:
            log.exception("generator forward failed for a batch of %d rows (%d requests)", rows, len(batch))
            for item in batch:  # this batch only; the next one starts clean
                if not item.future.done():
                    item.future.set_exception(GeneratorFailed(f"generator failed for this batch: {type(e).__name__}"))
            return
        self._metrics.forward_seconds.observe(seconds)
        self._metrics.batch_images.observe(rows)
        self._metrics.batch_requests.observe(len(batch))
        self._metrics.images_generated.inc(rows)
        for item, (ok, value) in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)

    def _work(self, z: torch.Tensor, plan: list[tuple[int, Finish | None]]) -> tuple[float, list[tuple[bool, Any]]]:
        """In a worker thread: the forward, then each request's slice or ``finish(slice)``. A failing
        ``finish`` fails its own request only."""
        start = time.perf_counter()
        out = self._forward(z)  # (rows, H, W, C)
        seconds = time.perf_counter() - start
        if out.shape[0] != z.shape[0]:
            raise RuntimeError(f"generator returned {out.shape[0]} images for {z.shape[0]} latent rows")
        results: list[tuple[bool, Any]] = []
        offset = 0
        for n, finish in plan:
            part = out[offset : offset + n]
            offset += n
            try:
                results.append((True, part if finish is None else finish(part)))
            except Exception as e:
                log.exception("finishing a request's %d images failed", n)
                results.append((False, e))
        return seconds, results
