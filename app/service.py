"""What the lifespan owns: the engine, the batcher and the encoder pool, and whether they are ready.

Built (cheaply) in ``create_app``; ``start()`` loads, warms up and starts the batcher, after which
``ready`` is true and ``/readyz`` answers 200; ``stop()`` drains in reverse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, overload

import torch
from starlette.requests import Request

from app.batcher import DeadlineExceeded, MicroBatcher, NotRunning
from app.engine import Engine, forward_workers, torch_threads
from app.imaging import Encoder
from app.metrics import ARRIVED, Metrics
from app.settings import Settings
from models.sampling import PAD_MULTIPLE

log = logging.getLogger("app.service")
R = TypeVar("R")


class Service:
    """The loaded model and its request machinery; one per app."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._engine: Engine | None = None
        self._batcher: MicroBatcher | None = None
        self._encoder: Encoder | None = None
        self.state = "starting"  # starting -> ready -> stopping

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self._batcher is not None and self._batcher.running

    @property
    def engine(self) -> Engine:
        if self._engine is None or not self.ready:
            raise NotRunning(f"the service is {self.state}")
        return self._engine

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            raise NotRunning(f"the service is {self.state}")
        return self._encoder

    async def start(self) -> None:
        s = self.settings
        engine = await asyncio.to_thread(Engine.load, str(s.checkpoint), s.device)
        workers = forward_workers(s.forward_workers, engine.device)
        torch.set_num_threads(torch_threads(s.torch_threads, engine.device, workers))
        engine.chunk_rows = s.cpu_chunk_rows if engine.device.type == "cpu" else None
        self.metrics.model_info.labels(
            engine.info.model_id,
            engine.info.sha256,
            str(engine.image_size),
            str(engine.nz),
            str(engine.device),
            str(engine.dtype).removeprefix("torch."),
        ).set(1)
        self._engine = engine
        self._encoder = Encoder(s.encoder_threads)
        cpu = engine.device.type == "cpu"
        self._batcher = MicroBatcher(
            engine.forward,
            self.metrics,
            max_batch_rows=s.max_batch_images,
            max_wait_s=s.max_wait_ms / 1000,
            max_queued_rows=s.max_queued_images,
            batching=s.batching,
            workers=workers,
            row_multiple=PAD_MULTIPLE if cpu else 1,
            enough_rows=PAD_MULTIPLE if cpu else None,  # a CPU forward costs the same per image from 8 rows up
        )
        await self._batcher.start()
        # every worker thread warms up (per-thread scratch and allocator arenas), before /readyz says ready
        seconds = max(await self._batcher.on_each_worker(partial(engine.warm_up, s.max_batch_images)))
        log.info(
            "loaded %s (%s) on %s; warm-up %.2f s; %d forward worker(s) of %d torch thread(s)",
            *(engine.info.model_id, engine.info.config, engine.device, seconds, workers, torch.get_num_threads()),
        )
        self.state = "ready"

    async def stop(self) -> None:
        self.state = "stopping"
        if self._batcher is not None:
            await self._batcher.stop()
        if self._encoder is not None:
            self._encoder.close()

    @overload
    async def render(self, z: torch.Tensor, request: Request | None = None) -> torch.Tensor: ...

    @overload
    async def render(self, z: torch.Tensor, request: Request | None, finish: Callable[[torch.Tensor], R]) -> R: ...

    async def render(
        self, z: torch.Tensor, request: Request | None = None, finish: Callable[[torch.Tensor], Any] | None = None
    ) -> Any:
        """Latents (N, nz) -> images (N, H, W, C) uint8 through the shared batcher, under the request deadline;
        or ``finish(images)``, computed in the generator's worker right after the forward (PNG encoding)."""
        if self._batcher is None or not self.ready:
            raise NotRunning(f"the service is {self.state}")
        check = request.is_disconnected if request is not None else None
        timeout_s = self._time_left(request)
        if finish is None:
            return await self._batcher.submit(z, timeout_s=timeout_s, is_disconnected=check)
        return await self._batcher.submit(z, timeout_s=timeout_s, is_disconnected=check, finish=finish)

    def _time_left(self, request: Request | None) -> float:
        """The deadline counts from the request's arrival, not from ``submit``: under overload a request can
        wait in the event loop before it reaches the batcher, and that wait is part of its latency."""
        arrived = getattr(request.state, ARRIVED, None) if request is not None else None
        left = self.settings.request_timeout_s - (time.monotonic() - arrived if arrived is not None else 0.0)
        if left <= 0:
            self.metrics.rejections.labels("deadline").inc()
            raise DeadlineExceeded(f"the {self.settings.request_timeout_s:g} s deadline passed before queueing")
        return left
