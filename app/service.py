"""The service: what the lifespan owns (engine, forward pool, batcher), its state, and one method per operation.

A request goes one way: route -> ``latent_rows`` -> ``await service.<op>(...)`` -> response. Each
operation names what the worker must make of its images (an ``app.outputs`` value), submits the
rows to the batcher under the request's deadline, and returns the encoded result.

State: starting -> ready -> draining (after SIGTERM: /readyz 503, requests still served) -> stopping.
A CUDA error that leaves the device unusable turns it ``failed`` from any state: /readyz 503, /healthz
500 (so the orchestrator replaces the process), generation 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Literal

import torch
from starlette.requests import Request

from app.batcher import Batcher, Rows
from app.engine import Engine, forward_workers, torch_threads
from app.errors import DeadlineExceeded, NotRunning
from app.forward_pool import ForwardPool
from app.invert.inverter import Inverter
from app.latent_rows import ArithmeticPlan
from app.metrics import ARRIVED, Metrics
from app.outputs import Animation, Figure, Grid, Output, Pngs, png_text
from app.policy import BatchPolicy
from app.schemas import ArithmeticBody, EditBody, InterpolateBody
from app.settings import Settings
from models import Direction, ExportInfo
from models.sampling import PAD_MULTIPLE, padded_rows

log = logging.getLogger("app.service")
State = Literal["starting", "ready", "draining", "stopping", "failed"]


def _truncation(value: float | None) -> str:
    return "none" if value is None else repr(value)


class Service:
    """The loaded model and its request machinery; one per app."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.state: State = "starting"
        self._engine: Engine | None = None
        self._pool: ForwardPool | None = None
        self._batcher: Batcher | None = None
        self.failure: str | None = None  # what made the device unusable (state "failed")
        self.inverter: Inverter | str = "the service is starting"  # the inverter, or why /invert is unavailable

    @property
    def accepting(self) -> bool:
        """Requests are served: ready, or draining (a load balancer is still moving traffic away)."""
        return self.state in ("ready", "draining") and self._batcher is not None and self._batcher.running

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise NotRunning(f"the service is {self.state}")
        return self._engine

    @property
    def info(self) -> ExportInfo:
        return self.engine.info

    @property
    def directions(self) -> dict[str, Direction]:
        """The export's attribute directions, then SeFa's, by name."""
        return self.engine.directions

    async def start(self) -> None:
        s = self.settings
        engine = await asyncio.to_thread(Engine.load, str(s.checkpoint), s.device, s.precision)
        cpu = engine.device.type == "cpu"
        workers = forward_workers(s.forward_workers, engine.device)
        torch.set_num_threads(torch_threads(s.torch_threads, engine.device, workers))
        # CPU: cache-sized pieces; CUDA: every forward at one shape, the one cuDNN algorithm the contract allows
        engine.chunk_rows = s.cpu_chunk_rows if cpu else min(s.cuda_chunk_rows, padded_rows(s.max_batch_images))
        engine.fixed_shape = not cpu
        self.metrics.describe_model(engine.info, engine.device, engine.dtype)
        self._engine, self._pool = engine, ForwardPool(engine, workers, self.metrics, self.device_lost)
        seconds = await self._pool.warm_up(s.max_batch_images)  # before ready: no request meets a cold thread
        policy = BatchPolicy(
            max_rows=s.max_batch_images,
            max_wait_s=s.max_wait_ms / 1000,
            row_multiple=PAD_MULTIPLE if cpu else 1,
            enough_rows=PAD_MULTIPLE if cpu else None,  # a CPU forward costs the same per image from 8 rows up
        )
        self._batcher = Batcher(
            self._pool.compute, policy, self.metrics, max_queued_rows=s.max_queued_images, concurrency=workers
        )
        self._batcher.start()
        self.inverter = await asyncio.to_thread(Inverter.load, s, self.metrics, engine)  # str: why not (503)
        if isinstance(self.inverter, str):
            log.warning("POST /invert unavailable: %s", self.inverter)
        log.info(
            "loaded %s (%s) on %s; warm-up %.2f s; %d forward worker(s) of %d torch thread(s)",
            *(engine.info.model_id, engine.info.config, engine.device, seconds, workers, torch.get_num_threads()),
        )
        if self.state != "failed":  # a lost device stays lost, even for a lifespan started again
            self.state = "ready"

    def device_lost(self, error: BaseException) -> None:
        """A forward met an error that leaves the device unusable (called from a worker thread): every later
        batch would fail too, so stop answering health checks and let the orchestrator replace the process."""
        if self.state == "failed":
            return
        self.state, self.failure = "failed", f"{type(error).__name__}: {str(error).splitlines()[0]}"
        self.metrics.device_lost.set(1)
        log.critical(
            "the device %s is unusable (%s): /healthz now answers 500 and /readyz 503 so this process is replaced",
            *(self._engine.device if self._engine is not None else "?", self.failure),
        )

    def drain(self) -> None:
        """SIGTERM: /readyz turns 503 so traffic moves away; requests are still served."""
        if self.state == "ready":
            self.state = "draining"

    async def stop(self) -> None:
        if self.state != "failed":  # a lost device stays visible to /healthz until the process ends
            self.state = "stopping"
        if self._batcher is not None:
            await self._batcher.stop()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)  # waits for a forward still running
        if isinstance(self.inverter, Inverter):
            await asyncio.to_thread(self.inverter.close)  # waits for an inversion still running

    async def generate(
        self, seeds: list[int] | None, z: Rows, truncation: float | None, fmt: str, request: Request
    ) -> bytes | list[str]:
        """A PNG grid of the rows' faces, or one base64 PNG each (``json``)."""
        labels = [str(s) for s in seeds] if seeds is not None else ["client-latent"] * len(z)
        trunc = _truncation(truncation)
        output: Output
        if fmt == "grid":
            output = Grid(png_text(self.info, "generate", seeds=",".join(labels), truncation=trunc, n=len(labels)))
        else:
            output = Pngs([png_text(self.info, "generate", seed=s, truncation=trunc) for s in labels])
        return await self._submit(z, output, request)

    async def interpolate(
        self, t: torch.Tensor, z: torch.Tensor, body: InterpolateBody, request: Request
    ) -> bytes | list[str]:
        """Frames along a path: a PNG strip, an animation, or one base64 PNG per frame (``json``)."""
        params = body.model_dump(exclude={"latent_a", "latent_b", "format"}, exclude_none=True)
        text = png_text(self.info, "interpolate", **params)
        output: Output
        if body.format == "strip":
            output = Grid(text, cols=body.steps)
        elif body.format == "json":
            output = Pngs([{**text, "dcgan:t": repr(float(w))} for w in t])
        else:
            output = Animation(body.format, body.frame_ms, json.dumps(text, sort_keys=True))
        return await self._submit(z, output, request)

    async def arithmetic(self, plan: ArithmeticPlan, body: ArithmeticBody, request: Request) -> bytes | list[str]:
        """The paper's figure as one PNG, or every row's base64 PNG (``json``, split with ``plan.split``)."""
        params = {"terms": [[t.name, t.weight] for t in body.terms], "seed": body.seed, "jitter": body.jitter}
        text = png_text(self.info, "arithmetic", **params)
        output = Figure(plan.layout(), text) if body.format == "grid" else Pngs([text] * plan.z.shape[0])
        return await self._submit(plan.z, output, request)

    async def edit(self, z: torch.Tensor, body: EditBody, request: Request) -> bytes | list[str]:
        """Frames along a direction: a PNG strip, an animation, or one base64 PNG per strength (``json``).

        A strength-0 frame's PNG carries exactly /generate's text for the face, so its bytes are the plain
        face's: the seed -> bytes contract holds through /edit."""
        seed = "client-latent" if body.seed is None else str(body.seed)
        trunc = _truncation(body.truncation)
        params = body.model_dump(include={"direction", "keep"}, exclude_defaults=True)
        text = png_text(self.info, "edit", seed=seed, truncation=trunc, strengths=body.strengths, **params)
        output: Output
        if body.format == "strip":
            output = Grid(text, cols=len(body.strengths))
        elif body.format == "json":
            plain = png_text(self.info, "generate", seed=seed, truncation=trunc)
            output = Pngs(
                [
                    plain if s == 0 else png_text(self.info, "edit", seed=seed, truncation=trunc, strength=s, **params)
                    for s in body.strengths
                ]
            )
        else:
            output = Animation(body.format, body.frame_ms, json.dumps(text, sort_keys=True))
        return await self._submit(z, output, request)

    async def _submit(self, z: Rows, output: Output, request: Request) -> Any:
        if self._batcher is None or not self.accepting:
            raise NotRunning(f"the service is {self.state}")
        timeout_s = self._time_left(request)
        return await self._batcher.submit(z, output, timeout_s=timeout_s, is_disconnected=request.is_disconnected)

    def _time_left(self, request: Request) -> float:
        """The deadline counts from the request's arrival, not from ``submit``: under overload a request can
        wait in the event loop before it reaches the batcher, and that wait is part of its latency."""
        arrived = request.scope.get("state", {}).get(ARRIVED)
        left = self.settings.request_timeout_s - (time.monotonic() - arrived if arrived is not None else 0.0)
        if left <= 0:
            self.metrics.rejected("deadline")
            raise DeadlineExceeded(f"the {self.settings.request_timeout_s:g} s deadline passed before queueing")
        return left
