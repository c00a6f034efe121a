"""Cross-request micro-batching: many requests' latent rows, one generator forward.

The shape of Ray Serve's ``_BatchQueue`` and LitServe's batched loop: each request puts its rows on
one queue and awaits one future under one deadline timer (which fails it and takes it off the
queue); one consumer collects requests until the policy says go (rows or time), fails those whose
client left, and hands the rest to ``compute`` (the forward pool) as one batch. ``compute`` returns
one result per request, in order; a failed forward fails that batch's requests only. When a
request's result is an exception, only it fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from app.batching.policy import BatchPolicy
from app.compute.outputs import Output
from app.errors import BatchOutOfMemory, ClientGone, DeadlineExceeded, GeneratorFailed, NotRunning, QueueFull
from app.runtime.metrics import Metrics
from models.latent import SeedLatents

log = logging.getLogger("app.batcher")
DisconnectCheck = Callable[[], Awaitable[bool]]
Rows = torch.Tensor | SeedLatents  # a request's latent rows (n, nz), or its seeds: drawn in the worker
Compute = Callable[[list[tuple[Rows, Output]]], Awaitable[list[Any]]]  # each request's (rows, output) -> results


@dataclass(eq=False)
class Pending:
    rows: Rows  # (n, nz)
    output: Output  # what the worker makes of this request's images
    future: asyncio.Future[Any]
    deadline: float  # loop.time()
    is_disconnected: DisconnectCheck | None
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """One queue, one consumer, up to ``concurrency`` batches computing at once. ``start()``/``stop()`` from
    the service."""

    def __init__(
        self,
        compute: Compute,
        policy: BatchPolicy,
        metrics: Metrics,
        *,
        max_queued_rows: int,
        concurrency: int = 1,
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        """``slots``: the forward workers, shared with other models' batchers (FIFO: they take turns)."""
        self._compute, self.policy, self._metrics = compute, policy, metrics
        self.max_queued_rows, self.concurrency = max_queued_rows, concurrency
        self._slots = slots
        self._queue: deque[Pending] = deque()
        self._queued_rows = 0
        self._computing: dict[asyncio.Task[None], list[Pending]] = {}
        self._in_hand: list[Pending] = []  # taken off the queue, being checked before its forward starts
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # start()'s

    @property
    def idle(self) -> bool:
        """Nothing queued or computing: a retired model's batcher may stop without failing anyone."""
        return not self._queue and not self._computing and not self._in_hand

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Stop consuming; requests queued or computing fail with ``NotRunning``."""
        waiting = [*self._queue, *self._in_hand, *(item for batch in self._computing.values() for item in batch)]
        tasks = [t for t in (self._task, *self._computing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(NotRunning("the service is shutting down"))
        self._task = None  # no cycle through the finished task: a retired model's batcher is freed by refcount
        self._queue.clear()
        self._set_queued(0)

    async def submit(
        self, rows: Rows, output: Output, *, timeout_s: float, is_disconnected: DisconnectCheck | None
    ) -> Any:
        """Queue ``rows`` (n, nz); return ``output``'s result for their images once computed.

        Raises ``QueueFull`` at once, ``DeadlineExceeded`` after ``timeout_s``, ``ClientGone``, ``NotRunning``
        or the forward's ``GeneratorFailed``."""
        loop = self._loop
        if loop is None or not self.running:
            raise NotRunning("the generator is not ready")
        n = len(rows)
        assert 0 < n <= self.policy.max_rows, "settings keep every request within one batch"
        if self._queued_rows + n > self.max_queued_rows:
            self._metrics.rejected("queue_full")
            raise QueueFull(f"queue full ({self._queued_rows} of {self.max_queued_rows} images queued)")
        item = Pending(rows, output, loop.create_future(), loop.time() + timeout_s, is_disconnected)
        self._queue.append(item)
        self._set_queued(self._queued_rows + n)
        self.policy.arrived(item.enqueued)
        self._wakeup.set()
        deadline = loop.call_at(item.deadline, self._expire, item, timeout_s)  # one timer, not asyncio.timeout
        try:
            return await item.future
        finally:
            deadline.cancel()
            if item.future.cancel() or item.future.cancelled():  # the awaiting task itself was cancelled
                self._dequeue(item)

    def _expire(self, item: Pending, timeout_s: float) -> None:
        """The deadline timer: fail the request (504) and free its place, unless it was answered already."""
        if item.future.done():
            return
        self._metrics.rejected("deadline")
        item.future.set_exception(DeadlineExceeded(f"not served within the {timeout_s:g} s deadline"))
        self._dequeue(item)

    def _dequeue(self, item: Pending) -> None:
        """Never compute ``item`` if it is still queued, and free its place in the queue now."""
        if item in self._queue:
            self._queue.remove(item)
            self._set_queued(self._queued_rows - len(item.rows))

    def _set_queued(self, rows: int) -> None:
        self._queued_rows = rows
        self._metrics.queue_depth.set(rows)

    async def _run(self) -> None:
        slots = self._slots if self._slots is not None else asyncio.Semaphore(self.concurrency)
        while True:
            await self._rows_waiting()  # a worker is taken only for rows (other models share the workers)
            await slots.acquire()  # collect only when a worker is free: rows keep gathering meanwhile
            try:
                batch = await self._live(await self._collect())
            except BaseException:  # stop() while collecting: the shared slot goes back, the batch fails there
                self._in_hand = []
                slots.release()
                raise
            if not batch:
                self._in_hand = []
                slots.release()
                continue
            task = asyncio.create_task(self._run_batch(batch))
            self._computing[task] = batch
            self._in_hand = []

            def done(task: asyncio.Task[None]) -> None:
                self._computing.pop(task, None)
                slots.release()

            task.add_done_callback(done)

    async def _rows_waiting(self) -> None:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _collect(self) -> list[Pending]:
        """Wait as long as the policy says; take the head requests it picks (none if all left meanwhile)."""
        while self._queue and (
            delay := self.policy.flush_delay(time.perf_counter(), self._queue[0].enqueued, self._queued_rows)
        ):
            self._wakeup.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                break
        count = self.policy.take([len(item.rows) for item in self._queue])
        batch = self._in_hand = [self._queue.popleft() for _ in range(count)]  # off the queue, not yet computing
        self._set_queued(self._queued_rows - sum(len(item.rows) for item in batch))
        return batch

    async def _live(self, batch: list[Pending]) -> list[Pending]:
        """Fail, and never compute, requests whose client left (asked all at once, and only of requests that
        waited a while: each question costs an event-loop turn). A deadline's timer has dequeued its own."""
        started = time.perf_counter()
        live = [item for item in batch if not item.future.done()]
        ask = [i for i in live if i.is_disconnected is not None and self.policy.ask_if_gone(started - i.enqueued)]
        answers = await asyncio.gather(*(i.is_disconnected() for i in ask if i.is_disconnected is not None))
        for item, gone in zip(ask, answers, strict=True):
            if gone and not item.future.done():
                self._metrics.rejected("disconnected")
                item.future.set_exception(ClientGone("client disconnected while queued"))
        return [item for item in live if not item.future.done()]

    async def _run_batch(self, batch: list[Pending]) -> None:
        """One forward for the batch; each request gets its result, or the batch's error."""
        rows = sum(len(item.rows) for item in batch)
        waits = [time.perf_counter() - item.enqueued for item in batch]  # queue wait, up to the forward
        try:
            results = await self._compute([(item.rows, item.output) for item in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"compute returned {len(results)} results for {len(batch)} requests")
        except BatchOutOfMemory as e:  # 503 for this batch only: the device is fine, the next batch may fit
            log.warning("%s (%d requests)", e, len(batch))
            for _ in batch:
                self._metrics.rejected("out_of_memory")
            results = [e] * len(batch)
        except Exception as e:
            log.exception("generator failed for a batch of %d rows (%d requests)", rows, len(batch))
            results = [GeneratorFailed(f"generator failed for this batch: {type(e).__name__}")] * len(batch)
        else:
            self._metrics.batch_done(rows, waits)  # batches that rendered, as before: failures count elsewhere
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
