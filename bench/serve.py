"""Serving benchmark: the real server (``python -m app`` under uvicorn on 127.0.0.1) driven by closed-loop
clients at several concurrencies, batched and naive (``bench/naive_server.py``: one forward per request),
beside the generator's own forward limit measured in-process (no HTTP, no PNG), in one run.

    python -m bench.serve                      # demo checkpoint, CPU, 8 s per level
    python -m bench.serve --duration 3 --concurrency 1 64 --workloads n1     # a quick look

Writes ``docs/benchmarks/serve-<tag>.json`` and ``.png`` (throughput and p99 vs concurrency) and prints
batched÷naive and end-to-end÷limit. The load generator runs in its own process, pinned with
``--client-cpus`` (default: the last core) so its CPU use is visible and bounded; see docs/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from app.runtime.settings import DEFAULT_CHECKPOINT
from bench import loadgen, report

REPO = Path(__file__).resolve().parent.parent
MODES: dict[str, list[str] | None] = {  # the server command of each mode (None: ``python -m app``)
    "batched": None,
    "naive": [sys.executable, "-m", "bench.naive_server"],
}


@dataclass
class Server:
    url: str
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def forwards(precisions: list[str], runtimes: list[str]) -> list[tuple[str, str]]:
    """The (precision, runtime) pairs a benchmark runs: every one the server accepts (ONNX Runtime: fp32 only)."""
    return [(p, r) for p in precisions for r in runtimes if r == "torch" or p == "fp32"]


@contextmanager
def server(
    checkpoint: Path,
    device: str,
    env: dict[str, str],
    cpus: list[int] | None,
    command: list[str] | None = None,
    tree: Path = REPO,
) -> Iterator[Server]:
    """``python -m app`` (or ``command``) of the code in ``tree`` in a subprocess (``taskset`` onto ``cpus`` if
    given) until ``/readyz`` is 200."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DCGAN_")}
    full_env = clean | {"DCGAN_CHECKPOINT": str(checkpoint), "DCGAN_DEVICE": device, "DCGAN_PORT": str(port)} | env
    prefix = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
    with tempfile.TemporaryFile() as log:
        argv = command or [sys.executable, "-m", "app"]
        proc = subprocess.Popen([*prefix, *argv], cwd=tree, env=full_env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, log)
            yield Server(url, proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server not ready within 120 s")


def run_level(
    pool: ProcessPoolExecutor, srv: Server, workload: str, concurrency: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One (workload, concurrency) level, driven (and its server-side numbers sampled) by the client process."""
    job = pool.submit(
        loadgen.run_level, srv.url, srv.pid, workload, concurrency, args.warmup, args.duration, args.client
    )
    return report.level_row(json.loads(job.result()))


def forward_limit(checkpoint: Path, device: str, threads: list[int], max_batch: int, seconds: float) -> dict:
    """img/s of ``G(z)`` in this process (no HTTP, no PNG, no uint8) by batch size, for each torch thread count,
    and on a multi-core CPU also as the server runs it there: one-thread forwards side by side, one per core.

    ``max_batch_img_s`` is the best of these at ``max_batch`` (``max_batch_by`` says which): the limit the
    serving numbers are compared with, even where the server runs fewer threads (it leaves a core to HTTP and
    encoding). Without the side-by-side figure, a server whose two one-thread forwards beat one two-thread
    forward would come out above its own "limit".
    """
    from app.compute.engine import resolve_device, warmup_sizes
    from app.runtime.malloc_tuning import keep_freed_memory
    from app.runtime.settings import Settings
    from models import load_generator
    from models.layout import fastest_same_floats
    from models.sampling import render

    dev = resolve_device(device, announce=False)
    generator, info = load_generator(str(checkpoint), dev)
    if dev.type == "cpu":  # as the server runs it: the layout it picks, its freed memory reused
        keep_freed_memory()
        generator = fastest_same_floats(generator, warmup_sizes(Settings().cpu_chunk_rows))
    out: dict[str, Any] = {"max_batch": max_batch, "model_id": info.model_id, "by_threads": {}}
    out["generator"] = type(generator).__name__  # Generator, or ChannelsLastTail where this CPU allows it
    sizes = sorted({1, 8, 16, 32, 64, 128, max_batch} - {b for b in (16, 32, 64, 128) if b > max_batch})
    with torch.inference_mode():
        for n in threads:
            torch.set_num_threads(n)
            by_batch = {b: _rate(lambda z: generator(z), b, info.config.nz, dev, seconds) for b in sizes}
            rendered = _rate(lambda z: render(generator, z), max_batch, info.config.nz, dev, seconds)
            out["by_threads"][n] = {"by_batch": by_batch, "render_max_batch": rendered}
        cores = os.cpu_count() or 1
        if dev.type == "cpu" and cores > 1:
            torch.set_num_threads(1)
            rate = _side_by_side_rate(lambda z: generator(z), max_batch, info.config.nz, cores, seconds)
            out["side_by_side"] = {"forwards": cores, "threads_each": 1, "img_s": rate}
    runs = out["by_threads"]
    out["max_batch_threads"] = max(runs, key=lambda n: runs[n]["by_batch"][max_batch])
    out["max_batch_img_s"] = runs[out["max_batch_threads"]]["by_batch"][max_batch]
    out["max_batch_by"] = f"one forward of {out['max_batch_threads']} thread(s)"
    if "side_by_side" in out and out["side_by_side"]["img_s"] > out["max_batch_img_s"]:
        out["max_batch_img_s"] = out["side_by_side"]["img_s"]
        out["max_batch_by"] = f"{out['side_by_side']['forwards']} one-thread forwards side by side"
    out["server_threads"] = threads[0]
    out["server_threads_max_batch_img_s"] = runs[threads[0]]["by_batch"][max_batch]
    out["peak_img_s"] = max(v for run in runs.values() for v in run["by_batch"].values())
    return out


def _side_by_side_rate(fn: Any, batch: int, nz: int, forwards: int, seconds: float) -> float:
    """Total img/s of ``forwards`` threads each calling ``fn`` on its own batch (torch releases the GIL)."""
    start, stop = threading.Barrier(forwards + 1), threading.Event()
    done = [0] * forwards

    def worker(i: int) -> None:
        z = torch.randn(batch, nz)
        with torch.inference_mode():
            fn(z)  # warm-up, per thread
            start.wait()
            while not stop.is_set():
                fn(z)
                done[i] += batch

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(forwards)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    counted = sum(done)  # images finished within the window (forwards still running are not counted)
    elapsed = time.perf_counter() - began
    for t in threads:
        t.join()
    return counted / elapsed


def _rate(fn: Any, batch: int, nz: int, dev: torch.device, seconds: float) -> float:
    z = torch.randn(batch, nz, device=dev)
    fn(z)  # warm-up
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        start = time.perf_counter()
        fn(z)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - start)
    return batch / sorted(times)[len(times) // 2]  # median call


def machine() -> dict[str, Any]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg_before": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="generator export to serve")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: %(default)s)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64, 128], help="closed-loop clients")
    p.add_argument("--workloads", nargs="+", default=list(loadgen.WORKLOADS), choices=list(loadgen.WORKLOADS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per level (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds before each level")
    p.add_argument("--limit-seconds", type=float, default=3.0, help="timing per batch size of the forward limit")
    p.add_argument("--client", default="raw", choices=["raw", "httpx"], help="load generator HTTP client")
    p.add_argument("--client-cpus", type=int, nargs="*", default=[(os.cpu_count() or 1) - 1], help="pin the client")
    p.add_argument("--server-cpus", type=int, nargs="*", default=None, help="taskset the server (default: any)")
    p.add_argument("--env", nargs="*", default=[], metavar="DCGAN_X=V", help="extra server settings")
    p.add_argument("--tag", default=None, help="output name: docs/benchmarks/serve-<tag>.json (default: device)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks", help="output folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.checkpoint.is_file():
        raise SystemExit(f"--checkpoint {args.checkpoint}: no such file (make train-demo builds the demo one)")
    env = dict(item.split("=", 1) for item in args.env)
    results: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "modes": {}}
    spawn = get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=loadgen.pin, initargs=(args.client_cpus,)) as pool:
        pool.submit(int).result()  # start the client process now, not inside the first level
        for mode in args.modes:
            rows = []
            with server(args.checkpoint, args.device, env, args.server_cpus, MODES[mode]) as srv:
                for workload in args.workloads:
                    for concurrency in args.concurrency:
                        rows.append(run_level(pool, srv, workload, concurrency, args))
                        print(mode, report.format_row(rows[-1]), flush=True)
            results["modes"][mode] = rows
    threads = report.server_threads(env)  # first: the server's own setting, then every core
    all_threads = [threads] + ([os.cpu_count() or 1] if (os.cpu_count() or 1) != threads else [])
    max_batch = int(env.get("DCGAN_MAX_BATCH_IMAGES", 256))
    results["limit"] = forward_limit(args.checkpoint, args.device, all_threads, max_batch, args.limit_seconds)
    results["summary"] = report.summary(results)
    tag = args.tag or args.device.replace(":", "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"serve-{tag}.json").write_text(json.dumps(results, indent=1) + "\n")
    report.plot(results, args.out / f"serve-{tag}.png")
    print(report.format_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
