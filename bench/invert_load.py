"""Does inversion starve generation? ``/generate`` n=1 latency with and without inversions running.

    python -m bench.invert_load --photo /tmp/celeba/img_align_celeba/009500.jpg     # demo checkpoint, CPU

One real server (``python -m app``; its export needs an encoder beside it). Phase 1: closed-loop n=1
clients alone (``bench.loadgen``, in its own process). Phase 2: the same clients while ``--inversions``
client loops keep POSTing the photo to /invert (so that many inversions run at once, with
``DCGAN_INVERT_CONCURRENCY`` = ``--inversions``). Prints p50/p99 of /generate in both phases and the
inversions' own latency; ``--out`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.runtime.settings import DEFAULT_CHECKPOINT
from bench import loadgen, report
from bench.serve import server


def _cpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.processor()


def _inversion_loop(url: str, photo: bytes, params: dict[str, str], stop: threading.Event, out: list[Any]) -> None:
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            start = time.perf_counter()
            r = client.post("/invert", params=params, files={"image": ("photo.jpg", photo)})
            out.append((r.status_code, time.perf_counter() - start, r.json().get("seconds")))


def _generate_level(pool: ProcessPoolExecutor, url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    job = pool.submit(loadgen.run_level, url, pid, "n1", args.concurrency, args.warmup, args.duration, "raw")
    row = report.level_row(json.loads(job.result()))
    keys = ("requests", "req_s", "p50_ms", "p95_ms", "p99_ms", "errors", "server_cpu_cores")
    return {k: row[k] for k in keys}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="export with an encoder beside it")
    p.add_argument("--photo", type=Path, required=True, help="a face photo to invert")
    p.add_argument("--inversions", type=int, default=2, help="inversions kept running at once in phase 2")
    p.add_argument("--mode", default="faithful", choices=("fast", "faithful"))
    p.add_argument("--steps", type=int, default=100, help="faithful's steps")
    p.add_argument("--concurrency", type=int, default=8, help="closed-loop /generate n=1 clients")
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured per phase")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each measurement")
    p.add_argument("--env", nargs="*", default=[], metavar="DCGAN_X=V", help="extra server settings")
    p.add_argument("--out", type=Path, help="write the results here as JSON")
    args = p.parse_args(argv)

    photo = args.photo.read_bytes()
    params = {"mode": args.mode} | ({"steps": str(args.steps)} if args.mode == "faithful" else {})
    env = {"DCGAN_INVERT_CONCURRENCY": str(args.inversions), "DCGAN_INVERT_QUEUE": "0"}
    env |= dict(kv.split("=", 1) for kv in args.env)
    spawn = get_context("spawn")
    results: dict[str, Any] = {"cpu": _cpu(), "cores": len(__import__("os").sched_getaffinity(0)), "args": {
        k: str(v) for k, v in vars(args).items()}, "server_env": env}  # fmt: skip
    with server(args.checkpoint, "cpu", env, None) as srv, ProcessPoolExecutor(1, mp_context=spawn) as pool:
        probe = httpx.post(f"{srv.url}/invert", params=params, files={"image": ("photo.jpg", photo)}, timeout=120)
        if probe.status_code != 200:
            raise SystemExit(f"/invert answered {probe.status_code}: {probe.text}")
        results["alone"] = _generate_level(pool, srv.url, srv.pid, args)
        stop, inversions = threading.Event(), []  # type: ignore[var-annotated]
        loops = [
            threading.Thread(target=_inversion_loop, args=(srv.url, photo, params, stop, inversions), daemon=True)
            for _ in range(args.inversions)
        ]
        for t in loops:
            t.start()
        time.sleep(1.0)  # both inversions are running before the clients start
        results["with_inversions"] = _generate_level(pool, srv.url, srv.pid, args)
        stop.set()
        for t in loops:
            t.join()
    done = [(s, wall, sec) for s, wall, sec in inversions if s == 200]
    results["inversions"] = {
        "completed": len(done),
        "statuses": sorted({s for s, _, _ in inversions}),
        "wall_s_median": float(np.median([w for _, w, _ in done])) if done else None,
        "thread_s_median": float(np.median([sec for _, _, sec in done])) if done else None,
    }
    a, b = results["alone"], results["with_inversions"]
    print(f"CPU: {results['cpu']} ({results['cores']} cores); /generate n=1, {args.concurrency} clients, "
          f"{args.duration:g} s per phase")  # fmt: skip
    print(f"  alone:                  {a['req_s']:7.1f} req/s  p50 {a['p50_ms']:6.1f} ms  p99 {a['p99_ms']:6.1f} ms")
    print(f"  with {args.inversions} inversions ({args.mode}): {b['req_s']:7.1f} req/s  p50 {b['p50_ms']:6.1f} ms  "
          f"p99 {b['p99_ms']:6.1f} ms")  # fmt: skip
    inv = results["inversions"]
    print(f"  inversions: {inv['completed']} done, median {inv['wall_s_median']} s wall, statuses {inv['statuses']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
