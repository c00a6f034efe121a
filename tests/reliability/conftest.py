"""Fixtures shared by the reliability suite: the tiny export and settings from tests/app, a real
``python -m app`` server on 127.0.0.1, and helpers to read its Prometheus metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.app import conftest as app_fixtures

checkpoint = app_fixtures.checkpoint  # the tiny 32x32 export, built once per session

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(**values: str) -> dict[str, str]:
    """The current environment without any DCGAN_* variable, plus ``values`` as DCGAN_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DCGAN_")}
    return clean | {f"DCGAN_{k.upper()}": v for k, v in values.items()}


@dataclass
class Server:
    """A ``python -m app`` child process on 127.0.0.1:``port``."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"server exited: {self.log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready in time"
            time.sleep(0.1)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0.0 when absent)."""
        return metric_value(httpx.get(f"{self.base}/metrics", timeout=5).text, name, **labels)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            time.sleep(0.05)
            self.proc.send_signal(signal.SIGTERM)  # a second signal skips the 2 s drain
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def metric_value(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    key = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def start_server(checkpoint: Path, log: Path, *, runner: list[str] | None = None, **settings: str) -> Server:
    """Start ``python -m app`` (or ``runner``) with the tiny checkpoint on a free port; output goes to ``log``."""
    port = free_port()
    values = {"checkpoint": str(checkpoint), "device": "cpu", "port": str(port), "max_batch_images": "16"} | settings
    with log.open("wb") as out:
        proc = subprocess.Popen(
            runner or [sys.executable, "-m", "app"], cwd=REPO, env=server_env(**values), stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Server(proc, port, log)


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
