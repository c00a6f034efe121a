"""The loaded generators by name, the default alias, and zero-downtime swaps.

Each loaded model has its own ``Batcher`` (a batch never mixes two models) in front of the one shared
``ForwardPool``; the batchers take turns for the pool's workers through one FIFO semaphore, so a flood
on one model costs another at most the batch ahead of it, never a starved queue.

A replacement goes in like this (Triton's load-beside-then-flip, never POLL's unload-then-load):

1. load the candidate beside the serving version (``Engine.load``: checksum over tensors and metadata,
   config, shapes, finite weights, no pickle);
2. validate it: finite output for a few seeds, the manifest's expected face digests if any, warm-up at
   every batch size (off the forward pool, which keeps serving);
3. flip the name to it in one assignment on the event loop. A request resolves its model once, in its
   route, before it awaits anything: admitted requests finish on the version they resolved; the old
   batcher drains, stops, and the old weights are freed. ``/readyz`` never leaves 200.

A candidate that fails any step is refused with the loader's or validator's message; the serving
version is never touched. ``Registry.lock`` serialises swaps (admin calls and SIGHUP re-reads).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from app.batching.batcher import Batcher
from app.compute.engine import Engine, StartupError
from app.compute.forward_pool import ForwardPool
from app.registry.manifest import Entry, Manifest, ManifestError, plain_name
from app.runtime.metrics import Metrics
from models import Direction, ExportInfo, read_export_info
from models.latent import latents_for_seeds

log = logging.getLogger("app.registry")
VALIDATION_SEEDS = range(8)  # a candidate's faces for these must be finite
DRAIN_POLL_S = 0.01


class UnknownModel(LookupError):
    """A model name that is not loaded (answer 404, listing the loaded names)."""


class SwapRefused(ValueError):
    """A candidate that failed loading or validation; the serving version is untouched (admin 422)."""


class RegistryFull(RuntimeError):
    """Loading one more model would pass ``DCGAN_MAX_LOADED_MODELS`` (admin 409)."""


@dataclass(eq=False)
class ServedModel:
    """One loaded version of a named model: its engine and its own batcher."""

    name: str
    engine: Engine
    batcher: Batcher
    entry: Entry
    loaded_at: float = field(default_factory=time.time)

    @property
    def info(self) -> ExportInfo:
        return self.engine.info

    @property
    def directions(self) -> dict[str, Direction]:
        return self.engine.directions


def pixel_digest(engine: Engine, seed: int) -> str:
    """sha256 of a seed's face as uint8 pixels (H, W, C): what a manifest's ``expect`` holds."""
    images = engine.forward(latents_for_seeds([seed], engine.nz))  # (1, H, W, C) uint8
    return hashlib.sha256(images[0].contiguous().numpy().tobytes()).hexdigest()


def validate(engine: Engine, expect: dict[int, str], max_batch_images: int) -> float:
    """Finite output, the expected digests, warm-up at every batch size (``SwapRefused`` naming the file).
    Returns the warm-up's seconds. Runs in a thread of its own, not the forward pool's."""
    path = engine.info.path
    dtype = next(engine.generator.parameters()).dtype  # float32, or bfloat16 (DCGAN_PRECISION)
    z = latents_for_seeds(VALIDATION_SEEDS, engine.nz).to(engine.device, dtype)
    with torch.inference_mode():
        out = engine.generator(z)  # (8, C, H, W) float, before the uint8 clamp hides a NaN
    if not torch.isfinite(out).all():
        raise SwapRefused(f"{path}: the generator's output is not finite (NaN or inf) for seeds 0-7")
    for seed, digest in sorted(expect.items()):
        got = pixel_digest(engine, seed)
        if got != digest:
            raise SwapRefused(f"{path}: seed {seed}'s face has pixel digest {got[:12]}..., expected {digest[:12]}...")
    return engine.warm_up(max_batch_images)


class Registry:
    """Loaded models by name, the default alias, and the swaps between versions."""

    def __init__(
        self,
        manifest: Manifest,
        load: Callable[[Entry], Engine],
        new_batcher: Callable[[Engine, str], Batcher],
        pool: ForwardPool,
        metrics: Metrics,
        *,
        max_loaded: int,
        max_batch_images: int,
    ) -> None:
        self.manifest = manifest
        self._load, self._new_batcher, self._pool, self._metrics = load, new_batcher, pool, metrics
        self.max_loaded, self.max_batch_images = max_loaded, max_batch_images
        self.models: dict[str, ServedModel] = {}
        self.default = manifest.default
        self.lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    def resolve(self, name: str | None) -> ServedModel:
        """The model a request uses: ``name``, or the default alias. ``UnknownModel`` lists the loaded names."""
        model = self.models.get(self.default if name is None else name)
        if model is None:
            raise UnknownModel(f"unknown model {name!r}; loaded: {', '.join(sorted(self.models)) or 'none'}")
        return model

    async def start(self, preloaded: dict[str, Engine]) -> None:
        """Load every manifest entry (``StartupError`` on the first that fails; ``preloaded`` by path), warm
        each up on every worker of the pool, start its batcher."""
        if len(self.manifest.entries) > self.max_loaded:
            raise StartupError(
                f"the manifest names {len(self.manifest.entries)} models, more than DCGAN_MAX_LOADED_MODELS"
                f" ({self.max_loaded})"
            )
        for entry in self.manifest.entries.values():
            engine = preloaded.get(str(entry.path))
            if engine is None:
                engine = await asyncio.to_thread(self._load, entry)
            await self._pool.warm_up(self.max_batch_images, engine)  # every thread, before ready
            self._flip(entry.name, ServedModel(entry.name, engine, self._new_batcher(engine, entry.name), entry))

    async def put(self, entry: Entry) -> ServedModel:
        """Load ``entry`` beside any serving version, validate it, flip to it; ``SwapRefused``/``RegistryFull``."""
        if not plain_name(entry.name):
            raise SwapRefused(f"model name {entry.name!r} is not a plain name")
        if entry.name not in self.models and len(self.models) >= self.max_loaded:
            self._metrics.swapped("refused")
            raise RegistryFull(f"{len(self.models)} models loaded, the cap (DCGAN_MAX_LOADED_MODELS); unload one first")
        try:
            engine = await asyncio.to_thread(self._load, entry)
            seconds = await asyncio.to_thread(validate, engine, entry.expect, self.max_batch_images)
        except (StartupError, SwapRefused, RuntimeError) as e:  # RuntimeError: e.g. out of memory mid-check
            self._metrics.swapped("refused")
            log.error("model %r: refused %s: %s", entry.name, entry.path.name, e)
            raise SwapRefused(str(e)) from None
        model = ServedModel(entry.name, engine, self._new_batcher(engine, entry.name), entry)
        old = self._flip(entry.name, model)
        self._metrics.swapped("ok")
        log.info("model %r: now %s (warm-up %.2f s)%s", entry.name, engine.info.model_id, seconds,
                 f"; {old.info.model_id} drains" if old else "")  # fmt: skip
        return model

    def unload(self, name: str) -> None:
        """Take ``name`` out (never the default); its admitted requests finish, then it is freed."""
        if name not in self.models:
            raise UnknownModel(f"unknown model {name!r}; loaded: {', '.join(sorted(self.models))}")
        if name == self.default:
            raise SwapRefused(f"{name!r} is the default model: move the default first")
        old = self.models.pop(name)
        self._metrics.forget_model(name, old.info)
        self._retire(old)
        self._metrics.swapped("ok")

    def set_default(self, name: str) -> None:
        self.resolve(name)  # UnknownModel if not loaded
        self.default = name
        for model in self.models.values():
            self._metrics.describe_model(model.name, model.info, model.engine.device, model.engine.dtype, name)

    def _flip(self, name: str, model: ServedModel) -> ServedModel | None:
        model.batcher.start()
        old = self.models.get(name)
        self.models[name] = model  # the flip: requests resolving from now on get the new version
        if old is not None:
            self._metrics.forget_model(name, old.info)
            self._retire(old)
        e = model.engine
        self._metrics.describe_model(name, model.info, e.device, e.dtype, self.default)
        return old

    def _retire(self, old: ServedModel) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(old), name=f"drain {old.name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _drain(old: ServedModel) -> None:
        """Wait for the requests that resolved ``old`` (their deadlines bound the wait), then stop it."""
        while not old.batcher.idle:
            await asyncio.sleep(DRAIN_POLL_S)
        await old.batcher.stop()
        log.info("model %r: %s drained and freed", old.name, old.info.model_id)

    async def reload(self, read: Callable[[], Manifest]) -> dict[str, str]:
        """Re-read the manifest with ``read``: move the default, unload the names that left it, load or
        replace what changed. Each model's outcome, by name (a refused one keeps serving its old version)."""
        outcome: dict[str, str] = {}
        async with self.lock:
            try:
                manifest = read()
            except ManifestError as e:
                self._metrics.swapped("refused")
                log.error("manifest re-read refused: %s", e)
                return {"manifest": f"refused: {e}"}
            if manifest.default in self.models:
                self.set_default(manifest.default)
            for name in [n for n in self.models if n not in manifest.entries and n != self.default]:
                self.unload(name)  # first: the names that left make room under the cap
                outcome[name] = "unloaded"
            for name, entry in manifest.entries.items():
                loaded = self.models.get(name)
                if loaded is not None and not await asyncio.to_thread(_changed, loaded, entry):
                    outcome[name] = "unchanged"
                    continue
                try:
                    outcome[name] = f"loaded {(await self.put(entry)).info.model_id}"
                except (SwapRefused, RegistryFull) as e:
                    outcome[name] = f"refused: {e}"
            if manifest.default in self.models:
                self.set_default(manifest.default)
            self.manifest = manifest
        log.info("manifest re-read: %s", outcome)
        return outcome

    async def drained(self) -> None:
        """Every retired version has drained (tests)."""
        await asyncio.gather(*self._retiring)

    async def stop(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await asyncio.gather(*(m.batcher.stop() for m in self.models.values()))


def _changed(loaded: ServedModel, entry: Entry) -> bool:
    """Whether a manifest entry names other bytes than the version serving: another file, the same file
    rewritten (its sha256), or other expected digests."""
    if entry.path != loaded.entry.path or entry.expect != loaded.entry.expect:
        return True
    try:
        return read_export_info(entry.path).sha256 != loaded.info.sha256
    except ValueError:
        return True  # unreadable now: put() refuses it with the loader's message
