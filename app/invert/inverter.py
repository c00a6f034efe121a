"""The inverter: POST /invert's own threads, bounded queue and deadline, apart from generation's machinery.

An inversion costs hundreds of generator forwards and backwards, so it must not take the forward
workers' threads or the batcher's queue. Here:

- ``admit()``: at most ``invert_concurrency + invert_queue`` requests are admitted (running or waiting);
  one more is a 503 + Retry-After at once, before its body is read. So memory held by uploads is
  bounded by (concurrency + queue) x the upload cap.
- the body is read, then the request waits for one of ``invert_concurrency`` inversion threads (its own
  ``ThreadPoolExecutor``, not the forward pool), all under the deadline ``invert_timeout_s`` counted from
  the request's arrival: 504 if it passes while the body is read or while queued (never computed), or
  while the inversion runs. A started inversion cannot be interrupted: its thread runs to the end and
  only then frees its slot, so the threads stay bounded whatever the clients do.
- the inversion threads run at a lower priority (``invert_nice``, Linux): on a busy CPU the scheduler
  serves the event loop and the forward workers first.
- the generator is the export loaded again, in fp32: an inversion needs autograd through G, and its own
  copy keeps that away from the module the forward workers render with (a bf16 one with
  DCGAN_PRECISION=bf16; the encoder was fitted to the fp32 generator, so inversion always runs in fp32
  and its reconstruction is the fp32 face).

Without an encoder file (``<export stem>.encoder.safetensors`` beside the export, or
``DCGAN_INVERT_ENCODER``) /invert answers 503 saying so and nothing else changes (/readyz included). An
encoder file that is there but invalid (not for this generator, corrupt) is a startup error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from app.compute.encoding import png
from app.compute.engine import Engine, StartupError
from app.compute.outputs import png_text
from app.errors import DeadlineExceeded, QueueFull
from app.runtime.metrics import Metrics
from app.runtime.settings import Settings
from inversion.encoder import Encoder, default_path, load_encoder
from inversion.photo import PhotoInversion, invert_photo
from inversion.refine import Mode
from models import Generator, load_generator, read_export_info

log = logging.getLogger("app.invert")


def encoder_path(settings: Settings, export: Path) -> Path:
    """The configured encoder, else ``<export stem>.encoder.safetensors`` beside the (default model's) export."""
    return settings.invert_encoder if settings.invert_encoder is not None else default_path(export)


def lower_priority(nice: int) -> None:
    """Run the calling thread at ``nice`` (Linux: a thread id given to setpriority sets that thread alone, and
    threads it starts, such as OpenMP's, inherit it), so that on a busy CPU the scheduler runs the forward
    workers and the event loop first and inversions take what is left."""
    if nice and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError as e:  # not permitted here: inversions run at the process's priority
            log.warning("inversion threads keep the process's priority: %s", e)


@dataclass(frozen=True)
class InvertOptions:
    mode: Mode
    steps: int  # 0 for fast
    align: bool


@dataclass(frozen=True)
class Inverted:
    """One finished inversion, its two PNGs encoded (off the event loop)."""

    result: PhotoInversion
    aligned_png: bytes
    reconstruction_png: bytes


class Inverter:
    """The encoder, a private copy of the generator, the inversion threads and the admission counters."""

    def __init__(
        self, settings: Settings, metrics: Metrics, engine: Engine, generator: Generator, encoder: Encoder
    ) -> None:
        self.settings, self.metrics = settings, metrics
        self.info = engine.info  # the served model's identity; not the engine, which a swap may free
        self._generator = generator.eval().requires_grad_(False)
        self._encoder = encoder
        self._threads = ThreadPoolExecutor(
            settings.invert_concurrency, "inversion", initializer=lower_priority, initargs=(settings.invert_nice,)
        )
        self._slots = asyncio.Semaphore(settings.invert_concurrency)  # taken from running start to thread end
        self._admitted = 0

    @staticmethod
    def preflight(settings: Settings, export: Path) -> None:
        """Check the encoder file, if there is one to use, against ``export`` (the default model's);
        ``StartupError`` if it is bad."""
        path = encoder_path(settings, export)
        if not settings.invert_enabled or (settings.invert_encoder is None and not path.is_file()):
            return
        try:
            load_encoder(path, expect_generator=read_export_info(export))
        except (ValueError, OSError, RuntimeError) as e:
            raise StartupError(f"{path}: cannot load the encoder: {e}") from None

    @classmethod
    def load(cls, settings: Settings, metrics: Metrics, engine: Engine) -> Inverter | str:
        """The inverter, or why /invert is unavailable (a sentence). ``StartupError`` for a bad encoder file."""
        if not settings.invert_enabled:
            return "inversion is turned off on this server (DCGAN_INVERT_ENABLED=false)"
        if engine.info.config.channels != 3:
            return f"inversion needs an RGB generator; this one has {engine.info.config.channels} channel(s)"
        path = encoder_path(settings, Path(engine.info.path))
        if not path.is_file():
            if settings.invert_encoder is not None:
                raise StartupError(f"{path}: no such encoder file (DCGAN_INVERT_ENCODER)")
            return f"this model has no encoder ({path.name} is not beside the export), so photos cannot be inverted"
        try:
            encoder, _ = load_encoder(path, expect_generator=engine.info, device=engine.device)
        except (ValueError, OSError, RuntimeError) as e:
            raise StartupError(f"{path}: cannot load the encoder: {e}") from None
        log.info("inversion: encoder %s; %d thread(s), queue %d", path.name, settings.invert_concurrency,
                 settings.invert_queue)  # fmt: skip
        # fp32 weights of its own, even when the forward workers serve a bf16 copy (DCGAN_PRECISION): the encoder
        # was fitted to the fp32 generator, and autograd through G stays away from the workers' module
        generator, _ = load_generator(engine.info.path, engine.device)
        return cls(settings, metrics, engine, generator, encoder)

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one of ``concurrency + queue`` places for the request's life; ``QueueFull`` when none is left."""
        limit = self.settings.invert_concurrency + self.settings.invert_queue
        if self._admitted >= limit:
            raise QueueFull(f"{limit} inversions are running or queued (DCGAN_INVERT_CONCURRENCY + _QUEUE)")
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    async def run(self, data: bytes, options: InvertOptions, deadline: float) -> Inverted:
        """Wait for an inversion thread, then invert ``data`` there; ``DeadlineExceeded`` at ``deadline``
        (``time.monotonic()``). Raises what the photo pipeline raises (UploadError, NoFaceError)."""
        metrics = self.metrics
        metrics.inversions_waiting += 1
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                await self._slots.acquire()
        except TimeoutError:
            raise DeadlineExceeded(self._late("while queued (never computed)")) from None
        finally:
            metrics.inversions_waiting -= 1
        metrics.inversions_running += 1
        future = asyncio.get_running_loop().run_in_executor(self._threads, self._work, data, options)

        def release(_: object) -> None:  # when the thread is done, not when the client stops waiting
            metrics.inversions_running -= 1
            self._slots.release()

        future.add_done_callback(release)
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                return await asyncio.shield(future)
        except TimeoutError:
            raise DeadlineExceeded(self._late("while the inversion ran")) from None

    def _late(self, when: str) -> str:
        return f"the {self.settings.invert_timeout_s:g} s inversion deadline (DCGAN_INVERT_TIMEOUT_S) passed {when}"

    def _work(self, data: bytes, options: InvertOptions) -> Inverted:
        s = self.settings
        result = invert_photo(
            self._generator, self._encoder, data,
            mode=options.mode, steps=options.steps, align=options.align, max_pixels=s.invert_max_pixels,
        )  # fmt: skip
        # the reconstruction is this private fp32 PyTorch generator's: its text names that model, not a
        # -bf16 or -ort one the forward workers serve (whose pixels for the latent are a level or a few off)
        info = replace(self.info, precision="fp32", runtime="torch")
        text = png_text(info, "invert", mode=options.mode, steps=result.steps, align=options.align)
        return Inverted(result, png(result.aligned.crop, {}), png(result.reconstruction, text))

    def close(self) -> None:
        self._threads.shutdown(wait=True)
