"""Numbers and pictures for ``bench.serve``: per-level rows, the target summary, the table and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

TARGET: dict[str, Any] = {"workload": "n1", "concurrency": 64}  # the targets: n=1 at 64 clients


def level_row(result: dict[str, Any]) -> dict[str, Any]:
    """A load-generator result -> the row the JSON stores (latencies reduced to percentiles)."""
    lat = np.array(result.pop("latencies_ms") or [float("nan")])
    seconds, server = result["duration_s"], result.pop("server")
    forwards = server["dcgan_batch_images_count"]
    return {
        **result,
        "img_s": result["images"] / seconds,
        "req_s": result["requests"] / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "mean_images_per_forward": server["dcgan_batch_images_sum"] / forwards if forwards else 0.0,
        "server_cpu_cores": server["cpu_s"] / seconds,
        "client_cpu_cores": result["client_cpu_s"] / seconds,
    }


def format_row(row: dict[str, Any]) -> str:
    errors = sum(row["errors"].values())
    return (
        f"{row['workload']:>7} c={row['concurrency']:<4} {row['img_s']:7.0f} img/s {row['req_s']:6.0f} req/s  "
        f"p50 {row['p50_ms']:6.1f}  p95 {row['p95_ms']:6.1f}  p99 {row['p99_ms']:6.1f} ms  err {errors:<3} "
        f"img/forward {row['mean_images_per_forward']:5.1f}  cpu server {row['server_cpu_cores']:.2f} "
        f"client {row['client_cpu_cores']:.2f}"
    )


def _find(rows: list[dict[str, Any]], workload: str, concurrency: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["workload"] == workload and r["concurrency"] == concurrency), None)


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios at the target level (n=1, 64 clients) when both modes measured it."""
    batched = _find(results["modes"].get("batched", []), **TARGET)
    naive = _find(results["modes"].get("naive", []), **TARGET)
    limit = results["limit"]
    out: dict[str, Any] = {**TARGET, "limit_max_batch_img_s": limit["max_batch_img_s"]}
    out["limit_server_threads_img_s"] = limit["server_threads_max_batch_img_s"]
    out["limit_peak_img_s"] = limit["peak_img_s"]
    if batched:
        out |= {
            "batched_img_s": batched["img_s"],
            "p99_ms": batched["p99_ms"],
            "errors": sum(batched["errors"].values()),
            "end_to_end_over_limit": batched["img_s"] / limit["max_batch_img_s"],
            "end_to_end_over_server_threads_limit": batched["img_s"] / limit["server_threads_max_batch_img_s"],
            "end_to_end_over_peak": batched["img_s"] / limit["peak_img_s"],
        }
    if batched and naive:
        out |= {"naive_img_s": naive["img_s"], "batched_over_naive": batched["img_s"] / max(naive["img_s"], 1e-9)}
    return out


def format_summary(results: dict[str, Any]) -> str:
    s, limit = results["summary"], results["limit"]
    lines = []
    for n, run in limit["by_threads"].items():
        by_batch = ", ".join(f"{b}: {v:.0f}" for b, v in run["by_batch"].items())
        lines.append(f"G(z) img/s with {n} torch thread(s), by batch: {by_batch}; render() at max batch "
                     f"{run['render_max_batch']:.0f}")  # fmt: skip
    lines.append(
        f"limit at batch {limit['max_batch']}: {limit['max_batch_img_s']:.0f} img/s "
        f"({limit.get('max_batch_by', str(limit['max_batch_threads']) + ' threads')}); "
        f"with the server's {limit['server_threads']}: "
        f"{limit['server_threads_max_batch_img_s']:.0f}; peak over batch sizes {limit['peak_img_s']:.0f}"
    )
    if "batched_img_s" in s:
        lines.append(
            f"n=1 @ 64 clients: batched {s['batched_img_s']:.0f} img/s, p99 {s['p99_ms']:.1f} ms, "
            f"errors {s['errors']}; end-to-end / limit = {s['end_to_end_over_limit']:.2f} "
            f"(/ server-threads limit {s['end_to_end_over_server_threads_limit']:.2f}, "
            f"/ peak {s['end_to_end_over_peak']:.2f})"
        )
    if "batched_over_naive" in s:
        lines.append(f"naive {s['naive_img_s']:.0f} img/s; batched / naive = {s['batched_over_naive']:.2f}")
    return "\n".join(lines)


def server_threads(env: dict[str, str]) -> int:
    """The torch thread count each of the server's forwards will use with these settings (the limit is
    measured with the same)."""
    from app.compute.engine import forward_workers, torch_threads

    threads, workers = env.get("DCGAN_TORCH_THREADS"), env.get("DCGAN_FORWARD_WORKERS")
    cpu = torch.device("cpu")
    n_workers = forward_workers(int(workers) if workers else None, cpu)
    return torch_threads(int(threads) if threads else None, cpu, n_workers)


def plot(results: dict[str, Any], path: Path) -> None:
    """One column per workload: img/s (with the forward limit) above, p99 latency below, vs concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = [r["workload"] for rows in results["modes"].values() for r in rows]
    workloads = list(dict.fromkeys(seen))  # in the order measured
    fig, axes = plt.subplots(2, len(workloads), figsize=(4.2 * len(workloads), 6.4), squeeze=False)
    for col, workload in enumerate(workloads):
        top, bottom = axes[0][col], axes[1][col]
        for mode, rows in results["modes"].items():
            rows = sorted((r for r in rows if r["workload"] == workload), key=lambda r: r["concurrency"])
            conc = [r["concurrency"] for r in rows]
            top.plot(conc, [r["img_s"] for r in rows], marker="o", label=mode)
            bottom.plot(conc, [r["p99_ms"] for r in rows], marker="o", label=mode)
        limit = results["limit"]
        top.axhline(limit["max_batch_img_s"], color="grey", ls="--", label=f"G(z), {limit.get('max_batch_by', 'best')}")
        top.axhline(limit["server_threads_max_batch_img_s"], color="grey", ls=":", label="G(z), server's threads")
        top.set_title(workload)
        top.set_ylabel("images / s")
        bottom.set_ylabel("p99 latency (ms)")
        bottom.set_yscale("log")
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(conc, [str(c) for c in conc])
            ax.set_xlabel("concurrent clients")
            ax.grid(alpha=0.3)
        top.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(f"dcgan-faces serving, {m['cuda'] or m['cpu']} ({m['cores']} cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
