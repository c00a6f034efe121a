"""Closed-loop HTTP load: ``concurrency`` virtual users, each on its own keep-alive connection, sending
the next request as soon as the previous answer arrived, for a fixed duration.

The default client speaks HTTP/1.1 over raw asyncio streams: on this 2-core machine the load
generator shares the CPU with the server, and httpx costs several times more CPU per request
(``--client httpx`` measures it; see docs/benchmarks/README.md). Runs in its own process
(``run_level`` is what the benchmark submits to it), optionally pinned to chosen cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from urllib.parse import urlsplit

User = Coroutine[None, None, None]  # one virtual user's request loop


@dataclass(frozen=True)
class Workload:
    """One request shape: ``path`` and ``body`` may contain ``{seed}``; each answer carries ``images`` images."""

    name: str
    path: str
    images: int
    body: str = ""

    def request(self, host: str, seed: int) -> bytes:
        body = self.body.format(seed=seed, seed2=seed + 1).encode()
        head = (
            f"POST {self.path.format(seed=seed)} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


WORKLOADS = {
    "n1": Workload("n1", "/generate?n=1&seed={seed}", 1),
    "n16": Workload("n16", "/generate?n=16&seed={seed}", 16),
    "interp8": Workload("interp8", "/interpolate", 8, '{{"seed_a": {seed}, "seed_b": {seed2}, "steps": 8}}'),
}


@dataclass
class LevelResult:
    """What one (workload, concurrency) level measured, as the JSON report stores it."""

    workload: str
    concurrency: int
    duration_s: float
    requests: int = 0  # completed inside the window
    images: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # status code (or exception name) -> count
    latencies_ms: list[float] = field(default_factory=list)  # of requests started inside the window
    client_cpu_s: float = 0.0  # CPU time the load generator itself used during the window
    server: dict[str, float] = field(default_factory=dict)  # /metrics and CPU deltas over the window


async def _raw_user(url: str, workload: Workload, seeds: count, until: float, window: tuple[float, float],
                    out: LevelResult) -> None:  # fmt: skip
    parts = urlsplit(url)
    host = parts.netloc
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        while (start := time.perf_counter()) < until:
            writer.write(workload.request(host, next(seeds)))
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = next(int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:"))
            await reader.readexactly(length)
            _record(out, workload, status, start, time.perf_counter(), window)
            if any(h.lower() == "connection: close" for h in lines[1:]):
                writer.close()
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    finally:
        writer.close()


async def _httpx_user(url: str, workload: Workload, seeds: count, until: float, window: tuple[float, float],
                      out: LevelResult, client: object) -> None:  # fmt: skip
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    while (start := time.perf_counter()) < until:
        seed = next(seeds)
        body = workload.body.format(seed=seed, seed2=seed + 1)
        r = await client.post(workload.path.format(seed=seed), content=body.encode() or None,
                              headers={"Content-Type": "application/json"})  # fmt: skip
        _record(out, workload, r.status_code, start, time.perf_counter(), window)


def _record(out: LevelResult, workload: Workload, status: int, start: float, end: float,
            window: tuple[float, float]) -> None:  # fmt: skip
    if start >= window[0] and start < window[1]:
        out.latencies_ms.append((end - start) * 1000)
    if not window[0] <= end < window[1]:
        return
    if status == 200:
        out.requests += 1
        out.images += workload.images
    else:
        out.errors[str(status)] = out.errors.get(str(status), 0) + 1


async def _level(url: str, server_pid: int, workload: Workload, concurrency: int, warmup_s: float,
                 duration_s: float, client: str) -> LevelResult:  # fmt: skip
    out = LevelResult(workload.name, concurrency, duration_s)
    start = time.perf_counter()
    window = (start + warmup_s, start + warmup_s + duration_s)
    seeds = count(1_000_003 * concurrency)
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
            users = [_httpx_user(url, workload, seeds, window[1], window, out, http) for _ in range(concurrency)]
            await _gather_timed(users, out, window, url, server_pid)
    else:
        users = [_raw_user(url, workload, seeds, window[1], window, out) for _ in range(concurrency)]
        await _gather_timed(users, out, window, url, server_pid)
    return out


async def _gather_timed(
    users: list[User], out: LevelResult, window: tuple[float, float], url: str, server_pid: int
) -> None:
    results = asyncio.gather(*users, return_exceptions=True)  # the users start now: warm-up, then the window
    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    cpu0, before = time.process_time(), await server_sample(url, server_pid)
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    out.client_cpu_s = time.process_time() - cpu0
    out.server = {k: v - before[k] for k, v in (await server_sample(url, server_pid)).items()}
    for r in await results:
        if isinstance(r, BaseException):
            out.errors[type(r).__name__] = out.errors.get(type(r).__name__, 0) + 1


async def server_sample(url: str, pid: int) -> dict[str, float]:
    """The server's CPU seconds (all threads, from /proc) and its batch-size histogram sum and count."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    sample = {"cpu_s": (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
    text = (await reader.read()).decode()
    writer.close()
    for name in ("dcgan_batch_images_sum", "dcgan_batch_images_count"):
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        sample[name] = float(match.group(1)) if match else 0.0
    return sample


def pin(cpus: list[int] | None) -> None:
    """Process-pool initializer: run the load generator on ``cpus`` only (None: anywhere)."""
    if cpus:
        os.sched_setaffinity(0, set(cpus))


def run_level(
    url: str, server_pid: int, workload: str, concurrency: int, warmup_s: float, duration_s: float, client: str
) -> str:
    """One level in this (client) process; returns the ``LevelResult`` as JSON."""
    level = _level(url, server_pid, WORKLOADS[workload], concurrency, warmup_s, duration_s, client)
    result = asyncio.run(level)
    return json.dumps(result.__dict__)
