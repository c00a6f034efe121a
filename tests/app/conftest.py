"""Fixtures: a tiny random-init export (32x32, ngf=8), settings around it, and apps served through
their lifespan to an ``httpx.AsyncClient`` (ASGI transport, no sockets). Tests run on anyio/asyncio.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi import FastAPI

from app.compute.engine import Engine
from app.main import create_app
from app.runtime.settings import Settings
from app.service import Service
from models import DCGANConfig, latents_for_seeds
from tests.conftest import tiny_encoder, tiny_export

TINY = DCGANConfig(nz=16, ngf=8, ndf=8, image_size=32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32x32 generator with random DCGAN-init weights, in eval mode, exported once per session."""
    return tiny_export(tmp_path_factory.mktemp("export") / "tiny-faces-32.safetensors", TINY, steps=1)


@pytest.fixture(scope="session")
def invertible(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny export with a tiny random encoder beside it."""
    export = tiny_export(tmp_path_factory.mktemp("invertible") / "tiny-faces-32.safetensors", TINY, steps=1)
    tiny_encoder(export)
    return export


@pytest.fixture
def invert_settings(invertible: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        # nice 0: on a machine shared with other work a nice-10 inversion can wait many seconds for a core
        values: dict[str, Any] = {"checkpoint": invertible, "device": "cpu", "max_batch_images": 64, "invert_nice": 0}
        return Settings(**(values | overrides))

    return make


@pytest.fixture
def make_settings(checkpoint: Path) -> Callable[..., Settings]:
    """Settings for the tiny export; small batches keep warm-up fast. Overrides as keyword arguments."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"checkpoint": checkpoint, "device": "cpu", "max_batch_images": 64}
        return Settings(**(values | overrides))

    return make


@dataclass
class Served:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def service(self) -> Service:
        service: Service = self.app.state.service
        return service

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (e.g. over every ``model``)."""
        return sum(
            sample.value
            for family in self.service.metrics.registry.collect()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Served]:
    """Run the app's lifespan (load, warm up, start the batcher) around a client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as http:
        yield Served(app, http)


@pytest.fixture
async def served(make_settings: Callable[..., Settings]) -> AsyncIterator[Served]:
    async with serve(make_settings()) as s:
        yield s


class Gate:
    """Patches ``Engine.forward`` to record rows per call and to block while closed."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.calls: list[int] = []  # latent rows of each forward

    def wrap(self, original: Callable[[Engine, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
        def forward(engine: Engine, z: torch.Tensor) -> torch.Tensor:
            self.calls.append(z.shape[0])
            self.entered.set()
            if not self.open.wait(timeout=30):
                raise RuntimeError("test gate never opened")
            return original(engine, z)

        return forward

    def close(self) -> None:
        self.open.clear()
        self.entered.clear()
        self.calls.clear()

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10), "no forward started"


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate()
    monkeypatch.setattr(Engine, "forward", g.wrap(Engine.forward))
    yield g
    g.open.set()  # never leave the generator thread blocked


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` on the event loop (the app keeps running meanwhile)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


def assert_batch_independent(engine: Engine) -> None:
    """The byte contract of ``engine.forward``: 256 seeds rendered one per forward are the reference; then
    batches of 1, 7, 64 and 256 (shuffled, so every seed meets other neighbours at another position) must
    give the same bytes."""
    z = latents_for_seeds(range(256), engine.nz)  # (256, nz)
    alone = torch.cat([engine.forward(z[i : i + 1]) for i in range(256)])
    order = torch.randperm(256, generator=torch.Generator().manual_seed(0))
    for n in (1, 7, 64, 256):
        for start in range(0, 256, n)[:4]:
            rows = order[start : start + n]
            assert torch.equal(engine.forward(z[rows]), alone[rows]), (n, start)
