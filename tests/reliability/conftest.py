"""Fixtures shared by the reliability suite: the tiny export and settings from tests/app, a real
``python -m app`` server on 127.0.0.1, and helpers to read its Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import live_server
from tests.app import conftest as app_fixtures
from tests.live_server import SMALL_BATCHES, Server

checkpoint = app_fixtures.checkpoint  # the tiny 32x32 export, built once per session
invertible = app_fixtures.invertible  # the same with a tiny encoder beside it (POST /invert works)


def start_server(checkpoint: Path, log: Path, *, runner: list[str] | None = None, **settings: str) -> Server:
    """``live_server.start_server`` with this suite's default of 16-row batches (so requests of 16 images)."""
    return live_server.start_server(checkpoint, log, runner=runner, **(SMALL_BATCHES | settings))


@pytest.fixture
def server(checkpoint: Path, tmp_path: Path) -> Iterator[Server]:
    """A ready server with default limits (queue 2048 images, 10 s deadline)."""
    s = start_server(checkpoint, tmp_path / "server.log", torch_threads="1")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def shared_server(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ready server for a whole module (body cap 64 KiB so over-cap bodies stay small)."""
    s = start_server(checkpoint, tmp_path_factory.mktemp("server") / "server.log", max_body_bytes=str(64 * 1024))
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def server_errors(server: Server) -> float:
    """How many 5xx responses the server has counted (all routes but /readyz, whose 503 is its job)."""
    text = httpx.get(f"{server.base}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("dcgan_http_requests_total{") and 'status="5' in line and 'route="/readyz"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
