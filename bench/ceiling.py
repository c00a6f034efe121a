"""How much of the ``n=1`` gap to the forward limit is the forward, and how much the HTTP path.

Runs the real server at ``n=1`` (64 clients by default) three ways in one run: with the real
forward, then with the forward replaced by a sleep of the same wall time per row and by a sleep
8x shorter (``bench/sleepy_server.py``: no CPU, no GIL). For each it prints img/s, p99, and the
server's CPU per request split into the event-loop thread and all other threads (forward
workers, encoders), read from ``/proc/<pid>/task``.

    python -m bench.ceiling                          # about 1 min
    python -m bench.ceiling --sleep-ms-per-row 0.8 0.4 0.1 --concurrency 128
    python -m bench.ceiling --baseline 6605058       # also the code of that commit, in the same run
    python -m bench.ceiling --floors                 # also a bare FastAPI and a bare Starlette route
    python -m bench.ceiling --rounds 3               # every server 3 times, interleaved: the median row
    python -m bench.ceiling --workloads n1 n16 --precision fp32 bf16   # n=16 too; the server in each precision

``--baseline REV`` checks REV out into a temporary git worktree and measures its servers (real and
sleep forwards) first, with the same checkpoint, clients and forward, so a change's before/after
comes from one run; ``--rounds`` interleaves every server's repeats. ``--precision`` runs this tree's real
forward once per ``DCGAN_PRECISION`` (the baseline and the sleep servers as they are). Each row also gives
the process's whole CPU per request (event loop + other threads), and each server's img/s over the
baseline's, workload by workload.

Writes ``docs/benchmarks/ceiling-<tag>.json``. See docs/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from app.runtime.settings import DEFAULT_CHECKPOINT
from bench import loadgen, report
from bench.serve import REPO, forward_limit, forwards, machine, server

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the process's event-loop (main) thread and of all its other threads, and the process's
    minor page faults (a fresh page's first touch: the kernel maps and zeroes it)."""
    out = {"event_loop": 0.0, "other_threads": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        out["event_loop" if int(tid) == pid else "other_threads"] += (int(fields[11]) + int(fields[12])) / TICK
    out["page_faults"] = float(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])  # minflt
    return out


def level(pool: ProcessPoolExecutor, url: str, pid: int, workload: str, args: argparse.Namespace) -> dict[str, Any]:
    """One level of ``workload`` (n1, n16); per-thread CPU is sampled over the same window the client measures."""
    samples: list[dict[str, float]] = []

    def sample() -> None:
        time.sleep(args.warmup)
        samples.append(thread_cpu(pid))
        time.sleep(args.duration)
        samples.append(thread_cpu(pid))

    sampler = threading.Thread(target=sample)
    job = pool.submit(loadgen.run_level, url, pid, workload, args.concurrency, args.warmup, args.duration, "raw")
    sampler.start()
    row = report.level_row(json.loads(job.result()))
    sampler.join()
    requests = max(1.0, row["req_s"] * args.duration)
    for key in ("event_loop", "other_threads"):
        row[f"{key}_ms_per_request"] = (samples[1][key] - samples[0][key]) / requests * 1000
    row["process_ms_per_request"] = row["event_loop_ms_per_request"] + row["other_threads_ms_per_request"]
    images = max(1.0, row["img_s"] * args.duration)
    row["page_faults_per_image"] = (samples[1]["page_faults"] - samples[0]["page_faults"]) / images
    return row


MEDIANS = ("img_s", "p99_ms", "event_loop_ms_per_request", "process_ms_per_request")


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose event-loop CPU per request is the median (the lower of the middle two for an even
    number of rounds), with every round's figures beside it, and each figure's own median (``median``)."""
    ranked = sorted(rows, key=lambda row: row["event_loop_ms_per_request"])
    rounds = {"event_loop_ms_rounds": [r["event_loop_ms_per_request"] for r in rows]}
    rounds |= {
        "img_s_rounds": [r["img_s"] for r in rows],
        "process_ms_rounds": [r["process_ms_per_request"] for r in rows],
    }
    medians = {key: sorted(r[key] for r in rows)[(len(rows) - 1) // 2] for key in MEDIANS}
    return ranked[(len(ranked) - 1) // 2] | rounds | {"median": medians}


Run = tuple[str, list[str] | None, Path, dict[str, str]]  # name, server command (None: python -m app), tree, env


def measure(pool: ProcessPoolExecutor, runs: list[Run], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each server's levels (every workload, one server start), ``args.rounds`` times, interleaved so that a
    slow minute on a shared machine hits every server; each (server, workload)'s median round."""
    keys = [f"{name} {w}" if len(args.workloads) > 1 else name for name, *_ in runs for w in args.workloads]
    rows: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for _ in range(args.rounds):
        for name, command, code, env in runs:
            with server(args.checkpoint, "cpu", env, None, command, code) as srv:
                for workload in args.workloads:
                    row = level(pool, srv.url, srv.pid, workload, args)
                    key = f"{name} {workload}" if len(args.workloads) > 1 else name
                    rows[key].append(row)
                    print(
                        f"{key:22s} {row['img_s']:7.0f} img/s  p99 {row['p99_ms']:6.1f} ms  img/forward "
                        f"{row['mean_images_per_forward']:5.1f}  server CPU per request: event loop "
                        f"{row['event_loop_ms_per_request']:.3f} ms, other threads "
                        f"{row['other_threads_ms_per_request']:.3f} ms, process {row['process_ms_per_request']:.3f}"
                        f" ms, page faults per image {row['page_faults_per_image']:.1f}"
                        f"  ({row['server_cpu_cores']:.2f} cores, client {row['client_cpu_cores']:.2f})",
                        flush=True,
                    )
    medians = {key: median_row(measured) for key, measured in rows.items()}
    if args.rounds > 1:
        for key, row in medians.items():
            spread = ", ".join(f"{ms:.3f}" for ms in row["event_loop_ms_rounds"])
            m = row["median"]
            print(
                f"{key:22s} medians of {args.rounds}: {m['img_s']:.0f} img/s, p99 {m['p99_ms']:.1f} ms, event loop"
                f" {m['event_loop_ms_per_request']:.3f} ms, process {m['process_ms_per_request']:.3f} ms per request"
            )
            print(
                f"{key:22s} median round of {args.rounds}: event loop {row['event_loop_ms_per_request']:.3f} ms"
                f" per request ({spread}), process {row['process_ms_per_request']:.3f} ms,"
                f" {row['img_s']:.0f} img/s ({', '.join(f'{v:.0f}' for v in row['img_s_rounds'])}),"
                f" p99 {row['p99_ms']:.1f} ms"
            )
    return medians


def over_baseline(medians: dict[str, dict[str, Any]], baseline: str, workloads: list[str]) -> None:
    """Each row's img/s over the baseline's real forward at the same workload (printed and stored)."""
    for workload in workloads:
        suffix = f" {workload}" if len(workloads) > 1 else ""
        base = medians.get(f"real forward @ {baseline}{suffix}")
        if base is None:
            continue
        for key, row in medians.items():
            if key.endswith(suffix) and not key.startswith("bare"):
                row["img_s_over_baseline"] = row["median"]["img_s"] / base["median"]["img_s"]
                row["process_cpu_baseline_over_this"] = (
                    base["median"]["process_ms_per_request"] / row["median"]["process_ms_per_request"]
                )
                print(
                    f"{key:22s} over the baseline's, medians of the rounds: img/s {row['img_s_over_baseline']:.2f}x,"
                    f" process CPU per request {row['process_cpu_baseline_over_this']:.2f}x less"
                )


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """The code of ``rev`` in a temporary git worktree (its ``python -m app`` imports that tree's packages)."""
    with tempfile.TemporaryDirectory(prefix="ceiling-baseline-") as tmp:
        path = Path(tmp) / "tree"
        add = ["git", "worktree", "add", "--detach", str(path), rev]
        subprocess.run(add, cwd=REPO, check=True, capture_output=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, capture_output=True)


def forward_label(precision: str, runtime: str) -> str:
    """The run's name: ``real forward``, then `` bf16`` or `` ort`` for the opt-in forwards."""
    return "real forward" + ("" if precision == "fp32" else f" {precision}") + ("" if runtime == "torch" else " ort")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--sleep-ms-per-row", type=float, nargs="*", default=[0.8, 0.1])
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--client-cpus", type=int, nargs="*", default=[(os.cpu_count() or 1) - 1])
    p.add_argument("--baseline", help="also measure the server of this git revision (a temporary worktree)")
    p.add_argument("--floors", action="store_true", help="also bare FastAPI/Starlette floors")
    p.add_argument("--rounds", type=int, default=1, help="measure every server this many times, interleaved")
    p.add_argument("--workloads", nargs="+", default=["n1"], choices=["n1", "n16"], help="levels per server")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"], help="DCGAN_PRECISION")
    runtimes = ["torch", "onnxruntime"]
    p.add_argument("--runtime", nargs="+", default=["torch"], choices=runtimes, help="DCGAN_RUNTIME (ort: fp32 only)")
    p.add_argument("--limit-seconds", type=float, default=3.0, help="timing of the forward limit (0: skip it)")
    p.add_argument("--tag", default="cpu", help="writes ceiling-<tag>.json")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks")
    args = p.parse_args(argv)
    runs: list[Run] = [
        (forward_label(p, r), None, REPO, {"DCGAN_PRECISION": p, "DCGAN_RUNTIME": r})
        for p, r in forwards(args.precision, args.runtime)
    ]
    sleepy = {f"sleep {ms:g} ms/row": [sys.executable, "-m", "bench.sleepy_server", "--ms-per-row", str(ms)]
              for ms in args.sleep_ms_per_row}  # fmt: skip
    runs += [(name, command, REPO, {}) for name, command in sleepy.items()]
    if args.floors:
        for kind in ("fastapi", "starlette"):
            command = [sys.executable, "-m", "bench.bare_server", "--kind", kind]
            runs.append((f"bare {kind} route", command, REPO, {}))
    results: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "runs": {}}
    spawn = get_context("spawn")
    with contextlib.ExitStack() as stack:
        if args.baseline:
            tree = stack.enter_context(worktree(args.baseline))
            at = f" @ {args.baseline}"
            runs[:0] = [("real forward" + at, None, tree, {})] + [
                (name + at, c, tree, {}) for name, c in sleepy.items()
            ]
        pool = stack.enter_context(
            ProcessPoolExecutor(1, mp_context=spawn, initializer=loadgen.pin, initargs=(args.client_cpus,))
        )
        pool.submit(int).result()
        results["runs"] = measure(pool, runs, args)
    if args.baseline:
        over_baseline(results["runs"], args.baseline, args.workloads)
    if args.limit_seconds > 0:  # G(z) alone, as bench.serve measures it: what end-to-end img/s is compared with
        threads = [1, os.cpu_count() or 1]
        limit = forward_limit(args.checkpoint, "cpu", sorted(set(threads)), 256, args.limit_seconds)
        results["limit"] = limit
        for name, row in results["runs"].items():
            if name.startswith("bare") or row["workload"] != "n1":
                continue
            row["over_limit"] = row["img_s"] / limit["max_batch_img_s"]
            limit_img_s, how = limit["max_batch_img_s"], limit["max_batch_by"]
            print(f"{name:18s} end to end / forward limit ({limit_img_s:.0f} img/s, {how}): {row['over_limit']:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"ceiling-{args.tag}.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
