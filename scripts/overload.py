"""Overload a real ``python -m app`` on 127.0.0.1 and print what it held.

    .venv/bin/python scripts/overload.py                 # 30 s at 10x the measured capacity
    .venv/bin/python scripts/overload.py --duration 5    # the CI version (tests/reliability)

Phases: measure capacity (closed loop), offer ``--factor`` x that rate open-loop for ``--duration``
seconds, then measure throughput again right after the burst. Checks, each printed with its figure:
every response is 200, 503 with Retry-After, or 504; no transport errors; the queue high-water mark
(``dcgan_queue_depth_max_images``) stays within DCGAN_MAX_QUEUED_IMAGES; RSS growth < 100 MB;
throughput 2-5 s after the burst is back to >= 70 % of capacity (``RECOVERED``); p99 of admitted (200)
requests <= the request deadline + 1 s. Exit status 1 if a check fails. Loops are bounded in time
and in-flight requests; only 127.0.0.1 is contacted. The load generator runs at nice 10 so that on a
small machine it does not starve the server it is measuring (in production it would be elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
MAX_INFLIGHT = 2000  # client-side bound on open requests (each one a socket)


class TransportError(Exception):
    """The connection failed or closed before a complete response head."""


# Seconds after the burst whose throughput must be back (2 s to drain, then 3 s of samples), and how far.
# Both readings are a few seconds of a shared 2-core box whose speed drifts by 15 % or more within a minute:
# healthy servers read 0.79-1.08 (2026-12-07; 0.79 failed the old 80 %). What this check exists to catch
# reads far lower: a wedged worker or event loop reads ~0. (A plain backlog drains well inside the 2 s:
# the queue bound, 128 images, takes about 0.25 s at capacity.)
RECOVERY = (2.0, 5.0)
RECOVERED = 0.7


async def post(port: int, path: str) -> tuple[int, dict[str, str]]:
    """One ``POST path`` on a fresh connection (``Connection: close``), body read to EOF; returns (status, headers).

    A raw asyncio client: httpx's connection pool costs more CPU per request than the server at this rate.
    """
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        raise TransportError(type(e).__name__) from None
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await reader.read()  # the server closes after the response
    except OSError as e:
        raise TransportError(type(e).__name__) from None
    finally:
        writer.close()
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 "):
        raise TransportError("incomplete response")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}


@dataclass
class Burst:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    no_retry_after: int = 0
    admitted_latency: list[float] = field(default_factory=list)  # seconds, 200s only
    offered: int = 0
    skipped: int = 0  # not sent: MAX_INFLIGHT requests already open


def tiny_export(directory: Path, image_size: int, ngf: int) -> Path:
    """A random-init generator export (load testing needs the cost of the network, not trained weights)."""
    sys.path.insert(0, str(REPO))
    from models import DCGANConfig, Generator, Provenance, init_weights, save_generator

    generator = Generator(DCGANConfig(nz=100, ngf=ngf, ndf=8, image_size=image_size))
    generator.apply(init_weights)
    path = directory / f"overload-{image_size}-{ngf}.safetensors"
    save_generator(generator.eval(), path, Provenance(dataset="synthetic", steps=0))
    return path


def start_server(checkpoint: Path, log: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = {
        "checkpoint": str(checkpoint), "device": "cpu", "host": "127.0.0.1", "port": str(port),
        "max_queued_images": str(args.queue), "request_timeout_s": str(args.timeout), "max_batch_images": "64",
        "torch_threads": "1", "log_level": "warning",
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCGAN_")}
    env |= {f"DCGAN_{k.upper()}": v for k, v in settings.items()}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("server not ready within 120 s")
        time.sleep(0.2)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def closed_loop(port: int, n: int, seconds: float, clients: int) -> list[float]:
    """``clients`` back-to-back requesters for ``seconds``; returns the completion times of the 200s."""
    done: list[float] = []
    end = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < end:
            try:
                status, _ = await post(port, f"/generate?n={n}")
            except TransportError:
                await asyncio.sleep(0.01)
                continue
            if status == 200:
                done.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(clients)))
    return done


async def open_loop(port: int, n: int, rate: float, seconds: float, burst: Burst) -> None:
    """Start a request every 1/rate seconds for ``seconds``, whatever happened to the previous ones."""
    inflight: set[asyncio.Task[None]] = set()

    async def one() -> None:
        start = time.monotonic()
        try:
            status, headers = await post(port, f"/generate?n={n}")
        except TransportError as e:
            burst.errors[str(e)] += 1
            return
        burst.statuses[status] += 1
        if status == 503 and "retry-after" not in headers:
            burst.no_retry_after += 1
        if status == 200:
            burst.admitted_latency.append(time.monotonic() - start)

    t0 = time.monotonic()
    while (now := time.monotonic()) < t0 + seconds:
        due = int((now - t0) * rate) + 1 - burst.offered - burst.skipped
        for _ in range(max(0, due)):
            if len(inflight) >= MAX_INFLIGHT:
                burst.skipped += 1
                continue
            task = asyncio.create_task(one())
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            burst.offered += 1
        await asyncio.sleep(0.002)
    if inflight:
        await asyncio.wait(inflight)


async def sample(pid: int, base: str, stop: asyncio.Event, rss: list[float], depth: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while not stop.is_set():
            rss.append(rss_mb(pid))
            with contextlib.suppress(httpx.HTTPError):
                depth.append(metric((await http.get("/metrics")).text, "dcgan_queue_depth_images"))
            await asyncio.sleep(0.2)


async def run(base: str, pid: int, args: argparse.Namespace) -> dict[str, object]:
    port = int(base.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await closed_loop(port, args.n, 1.0, args.clients)  # warm up the encoder and the allocator
        done = await closed_loop(port, args.n, args.measure, args.clients)
        capacity = len(done) / args.measure  # requests/s
        rss0 = rss_mb(pid)
        burst, rss, depth, stop = Burst(), [rss0], [0.0], asyncio.Event()
        sampler = asyncio.create_task(sample(pid, base, stop, rss, depth))
        t0 = time.monotonic()
        await open_loop(port, args.n, args.factor * capacity, args.duration, burst)
        burst_end = t0 + args.duration  # the last request was *offered* here; stragglers finished since
        after = await closed_loop(port, args.n, max(0.0, burst_end + RECOVERY[1] - time.monotonic()), args.clients)
        stop.set()
        await sampler
        peak_gauge = metric((await http.get("/metrics")).text, "dcgan_queue_depth_max_images")
    window = [t for t in after if burst_end + RECOVERY[0] <= t < burst_end + RECOVERY[1]]
    seconds = RECOVERY[1] - RECOVERY[0]
    recovered_after = next(  # first 1 s window after the burst at >= RECOVERED of capacity
        (
            k / 4
            for k in range(int(4 * (RECOVERY[1] - 1)) + 1)
            if sum(burst_end + k / 4 <= t < burst_end + k / 4 + 1 for t in after) >= RECOVERED * capacity
        ),
        None,
    )
    latencies = sorted(burst.admitted_latency)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0  # noqa: E731
    return {
        "capacity_req_s": round(capacity, 1),
        "capacity_img_s": round(capacity * args.n, 1),
        "offered_req_s": round(burst.offered / args.duration, 1),
        "offered_factor": round(burst.offered / args.duration / capacity, 2) if capacity else 0.0,
        "admitted_req_s": round(burst.statuses.get(200, 0) / args.duration, 1),
        "goodput_fraction": round(burst.statuses.get(200, 0) / args.duration / capacity, 2) if capacity else 0.0,
        "requests": burst.offered,
        "client_skipped": burst.skipped,
        "statuses": dict(sorted(burst.statuses.items())),
        "transport_errors": dict(burst.errors),
        "503_without_retry_after": burst.no_retry_after,
        "admitted_p50_s": round(p(0.50), 3),
        "admitted_p99_s": round(p(0.99), 3),
        "queue_bound_images": args.queue,
        "queue_max_sampled_images": max(depth),
        "queue_high_water_mark_images": peak_gauge,
        "rss_before_mb": round(rss0, 1),
        "rss_peak_mb": round(max(rss), 1),
        "rss_growth_mb": round(max(rss) - rss0, 1),
        "throughput_2_to_5_s_after_req_s": round(len(window) / seconds, 1),
        "recovered_fraction": round(len(window) / seconds / capacity, 2) if capacity else 0.0,
        "recovered_after_s": recovered_after,
    }


def checks(f: dict[str, object], timeout: float) -> dict[str, bool]:
    statuses: dict[int, int] = f["statuses"]  # type: ignore[assignment]
    return {
        "only 200/503/504": set(statuses) <= {200, 503, 504},
        "some admitted and some shed": statuses.get(200, 0) > 0 and statuses.get(503, 0) > 0,
        "every 503 has Retry-After": f["503_without_retry_after"] == 0,
        "no transport errors": not f["transport_errors"],
        "queue within its bound": float(f["queue_high_water_mark_images"]) <= int(f["queue_bound_images"]),  # type: ignore[arg-type]
        "RSS growth < 100 MB": float(f["rss_growth_mb"]) < 100,  # type: ignore[arg-type]
        "throughput back >= 70 % within 2 s": float(f["recovered_fraction"]) >= RECOVERED,  # type: ignore[arg-type]
        "admitted p99 <= deadline + 1 s": float(f["admitted_p99_s"]) <= timeout + 1,  # type: ignore[arg-type]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of overload")
    parser.add_argument("--factor", type=float, default=10.0, help="offered load / measured capacity")
    parser.add_argument("--measure", type=float, default=3.0, help="seconds measuring capacity")
    parser.add_argument("--n", type=int, default=8, help="images per request")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients measuring capacity")
    parser.add_argument("--queue", type=int, default=128, help="DCGAN_MAX_QUEUED_IMAGES of the server")
    parser.add_argument("--timeout", type=float, default=2.0, help="DCGAN_REQUEST_TIMEOUT_S of the server")
    parser.add_argument("--checkpoint", type=Path, help="export to serve (default: random-init 64 px, ngf 64)")
    parser.add_argument("--json", type=Path, help="also write the figures and checks here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="overload-") as tmp:
        checkpoint = args.checkpoint or tiny_export(Path(tmp), 64, 64)
        proc, base = start_server(checkpoint, Path(tmp) / "server.log", args)
        os.nice(10)  # the load generator shares the machine: let the server it measures have the CPU first
        try:
            figures = asyncio.run(run(base, proc.pid, args))
        finally:
            proc.terminate()
            proc.wait(30)
    results = checks(figures, args.timeout)
    for key, value in figures.items():
        print(f"{key:34} {value}")
    for name, ok in results.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "checks": results}, indent=2) + "\n")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
