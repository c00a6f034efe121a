"""The threads that run the generator: a batch's forward, then each request's output, off the event loop.

``workers`` forwards may run at once, each in its own thread: a CPU with two cores runs two one-thread
forwards side by side instead of one two-thread forward whose OpenMP threads spin (docs/benchmarks).
Every thread is warmed up before the service says ready, so no request meets a cold one.

A forward's CUDA error is sorted here: out-of-memory fails its batch with a 503 (``BatchOutOfMemory``);
an error that leaves the device unusable (``models.cuda.is_device_lost``) is also reported to
``on_device_lost``, which turns the service's health checks red.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from app.batching.batcher import Rows
from app.compute.engine import Engine
from app.compute.outputs import Output
from app.errors import BatchOutOfMemory
from app.runtime.metrics import Metrics
from models.cuda import is_device_lost
from models.latent import as_tensor

log = logging.getLogger("app.forward_pool")
WARM_UP_TIMEOUT_S = 120  # a warm-up that has not met every thread by then is stuck


class ForwardPool:
    """``compute(rows, outputs)``: one forward of the batch's rows, then each output on its slice."""

    def __init__(
        self,
        engine: Engine | None,
        workers: int,
        metrics: Metrics,
        on_device_lost: Callable[[BaseException], None] | None = None,
    ) -> None:
        """``engine``: the one every batch uses, or None when each call names its own (the registry's models:
        the pool then holds none, so a replaced model is freed once drained). ``on_device_lost``: called
        (from the worker thread) when a forward's error leaves the device unusable."""
        self.engine, self.workers, self._metrics = engine, workers, metrics
        self._on_device_lost = on_device_lost
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="generator")

    async def warm_up(self, max_batch_rows: int, engine: Engine | None = None) -> float:
        """Every thread runs every batch size once (per-thread scratch, allocator arenas, cuDNN plans),
        all at once: a barrier holds each thread until all have a call. Returns the slowest's seconds.
        ``engine``: another model's (the registry's), else the pool's own."""
        barrier = threading.Barrier(self.workers)
        warm = self._pick(engine).warm_up

        def once() -> float:
            barrier.wait(timeout=WARM_UP_TIMEOUT_S)
            return warm(max_batch_rows)

        loop = asyncio.get_running_loop()
        return max(await asyncio.gather(*(loop.run_in_executor(self._threads, once) for _ in range(self.workers))))

    async def compute(
        self, requests: list[tuple[Rows, Output]], engine: Engine | None = None, model: str = ""
    ) -> list[Any]:
        """Each request's latent rows and output, in order -> each one's result (or exception). ``engine``
        and ``model``: the registry's model this batch is for (a batch is never two models')."""
        work = self._work
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, requests, engine, model)

    def _work(self, requests: list[tuple[Rows, Output]], engine: Engine | None = None, model: str = "") -> list[Any]:
        counts = [len(rows) for rows, _ in requests]
        z = torch.cat([as_tensor(rows) for rows, _ in requests])  # (rows, nz); seeds drawn here, off the loop
        start = time.perf_counter()
        try:
            images = self._pick(engine).forward(z)  # (rows, H, W, C) uint8 on the CPU
        except Exception as e:
            if is_device_lost(e) and self._on_device_lost is not None:
                self._on_device_lost(e)
            elif isinstance(e, torch.OutOfMemoryError):
                raise BatchOutOfMemory(f"out of device memory for a batch of {z.shape[0]} rows") from e
            raise
        self._metrics.forward_done(z.shape[0], time.perf_counter() - start, model)
        if images.shape[0] != z.shape[0]:
            raise RuntimeError(f"generator returned {images.shape[0]} images for {z.shape[0]} latent rows")
        results: list[Any] = []
        for (_, output), part in zip(requests, images.split(counts), strict=True):
            try:
                results.append(output.encode(part))
            except Exception as e:  # this request's output only; the others are fine
                log.exception("encoding a request's %d images failed", part.shape[0])
                results.append(e)
        return results

    def _pick(self, engine: Engine | None) -> Engine:
        chosen = engine if engine is not None else self.engine
        if chosen is None:
            raise RuntimeError("no engine: this pool serves the engine each call names")
        return chosen

    def close(self) -> None:
        self._threads.shutdown(wait=True)
