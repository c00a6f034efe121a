"""A real ``python -m app`` on 127.0.0.1 for the tests that need sockets (tests/app/test_server.py,
the playground, the reliability suite, the Prometheus scrape): start it on a free port with
``DCGAN_*`` settings, wait for ``/readyz``, read ``/metrics``, stop it with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

SMALL_BATCHES = {"max_batch_images": "16", "max_images_per_request": "16", "max_interpolation_steps": "16"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(**values: str) -> dict[str, str]:
    """The current environment without any DCGAN_* variable, plus ``values`` as DCGAN_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DCGAN_")}
    return clean | {f"DCGAN_{k.upper()}": v for k, v in values.items()}


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample from Prometheus text (0.0 when absent); labels in any order."""
    from prometheus_client.parser import text_string_to_metric_families

    total, found = 0.0, False  # the sum over the series whose labels include ``labels`` (e.g. every model)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total, found = total + sample.value, True
    if found:
        return total
    return 0.0


@dataclass
class Server:
    """A ``python -m app`` child process on 127.0.0.1:``port``, its output in ``log``."""

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
            assert time.monotonic() < deadline, f"server not ready within {timeout:g} s: {self.log.read_text()[-2000:]}"
            time.sleep(0.1)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0.0 when absent)."""
        return metric_value(httpx.get(f"{self.base}/metrics", timeout=5).text, name, **labels)

    def stop(self, timeout: float = 20.0, *, drain: bool = False) -> int:
        """SIGTERM; without ``drain`` a second SIGTERM skips the 2 s drain. Kills after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not drain:
                time.sleep(0.05)
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_server(checkpoint: Path, log: Path, *, runner: list[str] | None = None, **settings: str) -> Server:
    """Start ``python -m app`` (or ``runner``) on a free port with ``checkpoint`` on the CPU and ``settings``
    as DCGAN_* variables (``max_batch_images="16"``, ...); output goes to ``log``. Call ``wait_ready()``."""
    port = free_port()
    values = {"checkpoint": str(checkpoint), "device": "cpu", "host": "127.0.0.1", "port": str(port)} | settings
    with log.open("wb") as out:
        proc = subprocess.Popen(
            runner or [sys.executable, "-m", "app"], cwd=REPO, env=server_env(**values), stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Server(proc, port, log)
