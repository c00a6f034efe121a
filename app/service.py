"""The service: what the lifespan owns (engine, forward pool, batcher), its state, and one method per operation.

A request goes one way: route -> ``latent_rows`` -> ``await service.<op>(...)`` -> response. Each
operation names what the worker must make of its images (an ``app.compute.outputs`` value), submits the
rows to the batcher under the request's deadline, and returns the encoded result.

State: starting -> ready -> draining (after SIGTERM: /readyz 503, requests still served) -> stopping.
A CUDA error that leaves the device unusable turns it ``failed`` from any state: /readyz 503, /healthz
500 (so the orchestrator replaces the process), generation 503.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import weakref
from typing import Any, Literal

import torch
from starlette.requests import Request

from app.batching.batcher import Batcher, Rows
from app.batching.policy import BatchPolicy
from app.compute.engine import Engine, StartupError, forward_workers, resolve_device, torch_threads
from app.compute.forward_pool import ForwardPool
from app.compute.outputs import Animation, Figure, Grid, Output, Pngs, png_text
from app.errors import DeadlineExceeded, NotRunning
from app.invert.inverter import Inverter
from app.latent_rows import ArithmeticPlan
from app.registry import manifest as manifests
from app.registry.registry import Registry, ServedModel
from app.runtime.malloc_tuning import keep_freed_memory
from app.runtime.metrics import ARRIVED, MODEL, Metrics
from app.runtime.settings import Settings
from app.schemas import ArithmeticBody, EditBody, InterpolateBody
from models import Direction, ExportInfo
from models.sampling import PAD_MULTIPLE, padded_rows

log = logging.getLogger("app.service")
State = Literal["starting", "ready", "draining", "stopping", "failed"]


def serving_engine(checkpoint: str, device: torch.device, s: Settings) -> Engine:
    """An export loaded as the service serves it (``StartupError`` naming the file and the problem): its
    precision and runtime; on the CPU cache-sized pieces, on CUDA every forward at one shape (the one cuDNN
    algorithm the contract allows); and the layout whose floats the probe finds equal."""
    engine = Engine.load(checkpoint, str(device), s.precision, s.runtime)
    cpu = device.type == "cpu"
    engine.chunk_rows = s.cpu_chunk_rows if cpu else min(s.cuda_chunk_rows, padded_rows(s.max_batch_images))
    engine.fixed_shape = not cpu
    return engine.in_fastest_layout(s.max_batch_images)  # fp32 CPU: fewer copies, the same floats


def _truncation(value: float | None) -> str:
    return "none" if value is None else repr(value)


class Service:
    """The loaded models (``registry``) and their request machinery; one per app."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.state: State = "starting"
        self._pool: ForwardPool | None = None
        self._registry: Registry | None = None
        self._device: torch.device | None = None
        self._workers = 1
        self._slots = asyncio.Semaphore(1)  # the forward workers, shared by every model's batcher (start() sizes it)
        self.failure: str | None = None  # what made the device unusable (state "failed")
        self.inverter: Inverter | str = "the service is starting"  # the inverter, or why /invert is unavailable
        self._inverter_for: weakref.ref[Engine] | None = None  # the default engine ``inverter`` was made for
        self._invert_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()  # inverters replaced by a move of the default model

    @property
    def accepting(self) -> bool:
        """Requests are served: ready, or draining (a load balancer is still moving traffic away)."""
        if self.state not in ("ready", "draining") or self._registry is None:
            return False
        default = self._registry.models.get(self._registry.default)
        return default is not None and default.batcher.running

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            raise NotRunning(f"the service is {self.state}")
        return self._registry

    def resolve(self, name: str | None, request: Request) -> ServedModel:
        """The model this request uses (``model=``, else the default alias), resolved once, before any await:
        it finishes on this version whatever is swapped meanwhile. Labels the request's metrics."""
        model = self.registry.resolve(name)
        request.scope.setdefault("state", {})[MODEL] = model.name
        return model

    @property
    def engine(self) -> Engine:
        """The default model's engine."""
        return self.registry.resolve(None).engine

    @property
    def info(self) -> ExportInfo:
        return self.engine.info

    @property
    def directions(self) -> dict[str, Direction]:
        """The export's attribute directions, then SeFa's, by name."""
        return self.engine.directions

    def manifest(self) -> manifests.Manifest:
        """The settings' models: a manifest, a models directory, or DCGAN_CHECKPOINT alone (``ManifestError``)."""
        s = self.settings
        return manifests.resolve(s.checkpoint, s.models_manifest, s.models_dir, s.default_model)

    def _load(self, entry: manifests.Entry) -> Engine:
        """An export onto the service's device (``StartupError`` naming the file and the problem)."""
        assert self._device is not None
        return serving_engine(str(entry.path), self._device, self.settings)

    def _batcher(self, engine: Engine, name: str) -> Batcher:
        """A model's own batcher (a batch never mixes models), sharing the forward workers' slots."""
        s, cpu = self.settings, engine.device.type == "cpu"
        policy = BatchPolicy(
            max_rows=s.max_batch_images,
            max_wait_s=s.max_wait_ms / 1000,
            row_multiple=PAD_MULTIPLE if cpu else 1,
            enough_rows=PAD_MULTIPLE if cpu else None,  # a CPU forward costs the same per image from 8 rows up
        )
        assert self._pool is not None
        compute = functools.partial(self._pool.compute, engine=engine, model=name)
        return Batcher(
            compute, policy, self.metrics, max_queued_rows=s.max_queued_images, concurrency=self._workers,
            slots=self._slots,
        )  # fmt: skip

    async def start(self) -> None:
        s = self.settings
        try:
            manifest = self.manifest()
        except manifests.ManifestError as e:
            raise StartupError(str(e)) from None
        self._device = resolve_device(s.device)
        workers = self._workers = forward_workers(s.forward_workers, self._device)
        self._slots = asyncio.Semaphore(workers)
        torch.set_num_threads(torch_threads(s.torch_threads, self._device, workers))
        keep_freed_memory()  # each forward reuses the last one's freed activations: no page faults
        self._pool = ForwardPool(None, workers, self.metrics, self.device_lost)  # each model's batcher names its engine
        self._registry = Registry(
            manifest, self._load, self._batcher, self._pool, self.metrics,
            max_loaded=s.max_loaded_models, max_batch_images=s.max_batch_images,
        )  # fmt: skip
        start = time.perf_counter()
        await self._registry.start({})  # loads every model, warms each on every worker, before ready
        await self._bind_inverter(self._registry.resolve(None).engine, starting=True)
        log.info(
            "loaded %s on %s (default %r); warm-up %.2f s; %d forward worker(s) of %d torch thread(s)",
            ", ".join(f"{m.name}={m.info.model_id}" for m in self._registry.models.values()),
            *(self._device, self._registry.default, time.perf_counter() - start, workers, torch.get_num_threads()),
        )
        if self.state != "failed":  # a lost device stays lost, even for a lifespan started again
            self.state = "ready"

    async def default_inverter(self) -> Inverter | str:
        """/invert's inverter: the default model's (its export and encoder), or why there is none (503).
        When the default has moved (admin API, SIGHUP, a new version), the next inversion binds to it."""
        engine = self.registry.resolve(None).engine
        if not self._inverter_is_for(engine):
            async with self._invert_lock:
                if not self._inverter_is_for(engine):  # not bound by another request meanwhile
                    await self._bind_inverter(engine)
        return self.inverter

    def _inverter_is_for(self, engine: Engine) -> bool:
        return self._inverter_for is not None and self._inverter_for() is engine

    async def _bind_inverter(self, engine: Engine, *, starting: bool = False) -> None:
        """Make ``engine``'s inverter the one /invert uses; the one it replaces closes once its inversions end.
        A bad encoder file stops the start (``StartupError``); once serving, it makes /invert a 503 instead."""
        old = self.inverter
        try:
            self.inverter = await asyncio.to_thread(Inverter.load, self.settings, self.metrics, engine)  # str: why not
        except StartupError as e:
            if starting:
                raise
            self.inverter = f"the default model's encoder cannot be used: {e}"
        self._inverter_for = weakref.ref(engine)  # weak: a swapped-out engine is freed once drained
        if isinstance(self.inverter, str):
            log.warning("POST /invert unavailable for %s: %s", engine.info.model_id, self.inverter)
        elif isinstance(old, Inverter):
            log.info("POST /invert now inverts into %s", engine.info.model_id)
        if isinstance(old, Inverter):
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(old.close), name="close inverter")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def device_lost(self, error: BaseException) -> None:
        """A forward met an error that leaves the device unusable (called from a worker thread): every later
        batch would fail too, so stop answering health checks and let the orchestrator replace the process."""
        if self.state == "failed":
            return
        self.state, self.failure = "failed", f"{type(error).__name__}: {str(error).splitlines()[0]}"
        self.metrics.device_lost.set(1)
        log.critical(
            "the device %s is unusable (%s): /healthz now answers 500 and /readyz 503 so this process is replaced",
            *(self._device if self._device is not None else "?", self.failure),
        )

    async def reload_manifest(self) -> dict[str, str]:
        """Re-read the manifest (SIGHUP, ``POST /admin/reload``): each model's outcome, by name."""
        return await self.registry.reload(self.manifest)

    def drain(self) -> None:
        """SIGTERM: /readyz turns 503 so traffic moves away; requests are still served."""
        if self.state == "ready":
            self.state = "draining"

    async def stop(self) -> None:
        if self.state != "failed":  # a lost device stays visible to /healthz until the process ends
            self.state = "stopping"
        if self._registry is not None:
            await self._registry.stop()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)  # waits for a forward still running
        if isinstance(self.inverter, Inverter):
            await asyncio.to_thread(self.inverter.close)  # waits for an inversion still running
        await asyncio.gather(*self._closing)  # replaced inverters, still finishing theirs

    async def generate(
        self, model: ServedModel, seeds: list[int] | None, z: Rows, truncation: float | None, fmt: str, request: Request
    ) -> bytes | list[str]:
        """A PNG grid of the rows' faces, or one base64 PNG each (``json``)."""
        labels = [str(s) for s in seeds] if seeds is not None else ["client-latent"] * len(z)
        trunc = _truncation(truncation)
        output: Output
        if fmt == "grid":
            output = Grid(png_text(model.info, "generate", seeds=",".join(labels), truncation=trunc, n=len(labels)))
        else:
            output = Pngs([png_text(model.info, "generate", seed=s, truncation=trunc) for s in labels])
        return await self._submit(model, z, output, request)

    async def interpolate(
        self, model: ServedModel, t: torch.Tensor, z: torch.Tensor, body: InterpolateBody, request: Request
    ) -> bytes | list[str]:
        """Frames along a path: a PNG strip, an animation, or one base64 PNG per frame (``json``)."""
        params = body.model_dump(exclude={"latent_a", "latent_b", "format"}, exclude_none=True)
        text = png_text(model.info, "interpolate", **params)
        output: Output
        if body.format == "strip":
            output = Grid(text, cols=body.steps)
        elif body.format == "json":
            output = Pngs([{**text, "dcgan:t": repr(float(w))} for w in t])
        else:
            output = Animation(body.format, body.frame_ms, json.dumps(text, sort_keys=True))
        return await self._submit(model, z, output, request)

    async def arithmetic(
        self, model: ServedModel, plan: ArithmeticPlan, body: ArithmeticBody, request: Request
    ) -> bytes | list[str]:
        """The paper's figure as one PNG, or every row's base64 PNG (``json``, split with ``plan.split``)."""
        params = {"terms": [[t.name, t.weight] for t in body.terms], "seed": body.seed, "jitter": body.jitter}
        text = png_text(model.info, "arithmetic", **params)
        output = Figure(plan.layout(), text) if body.format == "grid" else Pngs([text] * plan.z.shape[0])
        return await self._submit(model, plan.z, output, request)

    async def edit(self, model: ServedModel, z: torch.Tensor, body: EditBody, request: Request) -> bytes | list[str]:
        """Frames along a direction: a PNG strip, an animation, or one base64 PNG per strength (``json``).

        A strength-0 frame's PNG carries exactly /generate's text for the face, so its bytes are the plain
        face's: the seed -> bytes contract holds through /edit."""
        seed = "client-latent" if body.seed is None else str(body.seed)
        trunc = _truncation(body.truncation)
        params = body.model_dump(include={"direction", "keep"}, exclude_defaults=True)
        text = png_text(model.info, "edit", seed=seed, truncation=trunc, strengths=body.strengths, **params)
        output: Output
        if body.format == "strip":
            output = Grid(text, cols=len(body.strengths))
        elif body.format == "json":
            plain = png_text(model.info, "generate", seed=seed, truncation=trunc)
            output = Pngs(
                [
                    plain if s == 0 else png_text(model.info, "edit", seed=seed, truncation=trunc, strength=s, **params)
                    for s in body.strengths
                ]
            )
        else:
            output = Animation(body.format, body.frame_ms, json.dumps(text, sort_keys=True))
        return await self._submit(model, z, output, request)

    async def submit(self, model: ServedModel, z: Rows, output: Output, request: Request) -> Any:
        """``model``'s batcher renders ``z`` and the worker makes ``output`` of it, under the request's deadline."""
        return await self._submit(model, z, output, request)

    async def _submit(self, model: ServedModel, z: Rows, output: Output, request: Request) -> Any:
        if not self.accepting:
            raise NotRunning(f"the service is {self.state}")
        timeout_s = self._time_left(request)
        return await model.batcher.submit(z, output, timeout_s=timeout_s, is_disconnected=request.is_disconnected)

    def _time_left(self, request: Request) -> float:
        """The deadline counts from the request's arrival, not from ``submit``: under overload a request can
        wait in the event loop before it reaches the batcher, and that wait is part of its latency."""
        arrived = request.scope.get("state", {}).get(ARRIVED)
        left = self.settings.request_timeout_s - (time.monotonic() - arrived if arrived is not None else 0.0)
        if left <= 0:
            self.metrics.rejected("deadline")
            raise DeadlineExceeded(f"the {self.settings.request_timeout_s:g} s deadline passed before queueing")
        return left
