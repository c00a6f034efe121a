"""Cross-request micro-batching: many requests' latent rows, one generator forward.

The shape is Ray Serve's ``_BatchQueue`` / LitServe's batched loop: requests put rows on one queue
and await a future; one consumer task collects rows (not requests) up to ``max_batch_rows`` or
until ``max_wait_s`` passed since the first arrived, drops those whose deadline passed or whose
client left, runs the forward in a single worker thread (one forward at a time; the event loop
stays free), checks the row count and hands each request its slice. A failing forward fails
exactly the requests of that batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from app.metrics import Metrics

log = logging.getLogger("app.batcher")
DisconnectCheck = Callable[[], Awaitable[bool]]


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
    future: asyncio.Future[torch.Tensor]
    deadline: float  # loop.time()
    is_disconnected: DisconnectCheck | None
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """One queue of latent rows, one consumer, one forward at a time. ``start()``/``stop()`` from lifespan."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        metrics: Metrics,
        *,
        max_batch_rows: int,
        max_wait_s: float,
        max_queued_rows: int,
        batching: bool = True,
    ) -> None:
        self._forward = forward
        self._metrics = metrics
        self.max_batch_rows, self.max_wait_s, self.max_queued_rows = max_batch_rows, max_wait_s, max_queued_rows
        self.batching = batching  # False: one forward per request chunk, no waiting (the benchmark's naive baseline)
        self._queue: deque[_Pending] = deque()
        self._inflight: list[_Pending] = []  # the batch being computed
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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator")
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop consuming; requests still queued fail with ``NotRunning``."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in [*self._inflight, *self._queue]:
            if not item.future.done():
                item.future.set_exception(NotRunning("the service is shutting down"))
        self._queue.clear()
        self._set_depth(0)
        if self._executor is not None:  # wait for a running forward off the event loop
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def submit(
        self, rows: torch.Tensor, *, timeout_s: float, is_disconnected: DisconnectCheck | None = None
    ) -> torch.Tensor:
        """Queue ``rows`` (n, nz) and return their images (n, H, W, C) once computed.

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
        items = [  # a request larger than a batch goes as several chunks
            _Pending(chunk, loop.create_future(), deadline, is_disconnected)
            for chunk in rows.split(self.max_batch_rows)
        ]
        self._queue.extend(items)
        self._set_depth(self._queued_rows + n)
        self._wakeup.set()
        try:
            async with asyncio.timeout(timeout_s):
                parts = [await item.future for item in items]
        except TimeoutError:
            self._metrics.rejections.labels("deadline").inc()
            raise DeadlineExceeded(f"not served within the {timeout_s:g} s deadline") from None
        finally:
            self._discard(items)  # on any failure: un-queue the chunks still waiting
        return parts[0] if len(parts) == 1 else torch.cat(parts)  # one chunk: no copy

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
        while True:
            batch = await self._collect()
            live = await self._drop_dead(batch)
            if live:
                self._inflight = live
                await self._compute(live)
                self._inflight = []

    async def _collect(self) -> list[_Pending]:
        """Wait for rows, then until the oldest has waited ``max_wait_s`` or a batch is full; take whole
        chunks from the head. Rows that queued during the previous forward have waited already and go
        at once: under load the generator never idles between batches."""
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        if not self.batching:
            item = self._queue.popleft()
            self._set_depth(self._queued_rows - item.rows.shape[0])
            return [item]
        loop = asyncio.get_running_loop()
        flush_at = loop.time() + self.max_wait_s - (time.perf_counter() - self._queue[0].enqueued)
        while self._queued_rows < self.max_batch_rows and (remaining := flush_at - loop.time()) > 0:
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
        self._set_depth(self._queued_rows - rows)
        return batch

    async def _drop_dead(self, batch: list[_Pending]) -> list[_Pending]:
        """Fail (and never compute) rows whose deadline passed or whose client went away."""
        now = asyncio.get_running_loop().time()
        live = []
        for item in batch:
            if item.future.done():  # the request already gave up (its own deadline fired)
                continue
            if now >= item.deadline:
                self._metrics.rejections.labels("deadline").inc()
                item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
            elif item.is_disconnected is not None and await item.is_disconnected():
                self._metrics.rejections.labels("disconnected").inc()
                item.future.set_exception(ClientGone("client disconnected while queued"))
            else:
                live.append(item)
        return live

    async def _compute(self, batch: list[_Pending]) -> None:
        """One forward for the whole batch; slice results back, or fan the error out to this batch only."""
        z = torch.cat([item.rows for item in batch])  # (rows, nz)
        rows = z.shape[0]
        start = time.perf_counter()
        for item in batch:
            self._metrics.queue_wait.observe(start - item.enqueued)
        try:
            out = await asyncio.get_running_loop().run_in_executor(self._executor, self._forward, z)
            if out.shape[0] != rows:
                raise RuntimeError(f"generator returned {out.shape[0]} images for {rows} latent rows")
        except Exception as e:
            log.exception("generator forward failed for a batch of %d rows (%d requests)", rows, len(batch))
            for item in batch:  # this batch only; the next one starts clean
                if not item.future.done():
                    item.future.set_exception(GeneratorFailed(f"generator failed for this batch: {type(e).__name__}"))
            return
        self._metrics.forward_seconds.observe(time.perf_counter() - start)
        self._metrics.batch_images.observe(rows)
        self._metrics.batch_requests.observe(len(batch))
        self._metrics.images_generated.inc(rows)
        offset = 0
        for item in batch:
            n = item.rows.shape[0]
            if not item.future.done():
                item.future.set_result(out[offset : offset + n])
            offset += n
