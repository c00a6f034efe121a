"""A model swapped under load: 64 connections of ``POST /generate?n=1`` against a real ``python -m app``,
one steady window, then one window in which the default model is replaced through the admin API.

The server serves a manifest of one model (``faces``: the demo checkpoint); the candidate is the same
generator re-sealed as export format 3 (``models.checkpoint.upgrade_export``: another file, another
model id, the same weights), so the swap costs a real load, validation and warm-up. Prints, per
window, requests, non-2xx answers and latency percentiles (from ``bench.loadgen``'s closed loop).

    python -m bench.swap_under_load                   # about 40 s on this 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import httpx

from app.runtime.settings import DEFAULT_CHECKPOINT
from bench import loadgen
from models.checkpoint import upgrade_export

PORT = 8768


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="each window (default 8)")
    parser.add_argument("--swap-after", type=float, default=2.0, help="seconds into the second window (default 2)")
    args = parser.parse_args()
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "faces-a.safetensors").write_bytes(args.checkpoint.read_bytes())
        upgrade_export(args.checkpoint, folder / "faces-b.safetensors")
        (folder / "models.json").write_text(json.dumps({"models": {"faces": {"file": "faces-a.safetensors"}}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DCGAN_")} | {
            "DCGAN_MODELS_MANIFEST": str(folder / "models.json"), "DCGAN_DEVICE": "cpu",
            "DCGAN_PORT": str(PORT), "DCGAN_ADMIN_TOKEN": token, "DCGAN_LOG_LEVEL": "warning",
        }  # fmt: skip
        server = subprocess.Popen([sys.executable, "-m", "app"], env=env)
        base = f"http://127.0.0.1:{PORT}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            swap: dict[str, object] = {}

            def put() -> None:
                time.sleep(2.0 + args.swap_after)  # the window's 2 s warm-up, then swap_after into it
                start = time.perf_counter()
                r = httpx.put(f"{base}/admin/models/faces", headers={"X-Admin-Token": token},
                              json={"file": "faces-b.safetensors"}, timeout=60)  # fmt: skip
                swap.update(status=r.status_code, seconds=round(time.perf_counter() - start, 3),
                            model_id=r.json().get("model_id"))  # fmt: skip

            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                rows = {}
                for window in ("steady", "swap"):
                    thread = threading.Thread(target=put) if window == "swap" else None
                    if thread:
                        thread.start()
                    level = pool.submit(
                        loadgen.run_level, base, server.pid, "n1", args.concurrency, 2.0, args.seconds, "raw"
                    )
                    result = json.loads(level.result())
                    if thread:
                        thread.join()
                    lat = result["latencies_ms"]
                    rows[window] = {
                        "requests": result["requests"], "non_2xx": result["errors"],
                        "p50_ms": round(percentile(lat, 0.5), 1), "p99_ms": round(percentile(lat, 0.99), 1),
                        "max_ms": round(max(lat), 1), "img_s": round(result["images"] / args.seconds, 1),
                    }  # fmt: skip
                    print(window, json.dumps(rows[window]))
            print("swap", json.dumps(swap))
            print(f"p99 swap / steady: {rows['swap']['p99_ms'] / rows['steady']['p99_ms']:.2f}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
