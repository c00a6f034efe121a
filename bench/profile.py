"""Where the server's CPU goes at n=1 (or n=16), by part of the request's path.

    python -m bench.profile --precision fp32 bf16          # about 1 min; needs py-spy (pip install py-spy)
    python -m bench.profile --runtime torch onnxruntime    # PyTorch's fp32 forward and ONNX Runtime's

First, in this process, the CPU time (``time.process_time``, one torch thread, as a forward worker runs)
of each step a forward worker takes for n=1 requests: the seeds' latents, the forward at the server's
typical batch (``--rows``), and each request's grid and PNG. Then the live server:

Starts ``python -m app`` per forward (precision x runtime; ONNX Runtime runs fp32 only), drives it with
64 closed-loop clients (``bench.loadgen``), and samples every thread with py-spy (``--threads``, busy
samples only, native frames off: time in torch, ONNX Runtime or fpng counts to the Python line that
called it). Each sample is put in the first part whose marker its
stack holds, in this order: the forward (``Engine.forward``), PNG encoding (``app/compute/encoding.py``),
the seeds' latents (``models/latent.py``), the rest of a forward worker, then the main thread (the
event loop: uvicorn, FastAPI, the batcher) and anything else. Prints each part's share of the samples.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from app.runtime.settings import DEFAULT_CHECKPOINT
from bench import loadgen
from bench.serve import forwards, server

_VENV_PY_SPY = Path(sys.executable).parent / "py-spy"  # pip installs it beside the interpreter
PY_SPY = str(_VENV_PY_SPY) if _VENV_PY_SPY.exists() else "py-spy"
PARTS = [  # (part, marker in a collapsed stack), first match wins
    ("forward (Engine.forward: G(z), uint8)", "forward (app/compute/engine.py"),
    ("PNG encoding (app/compute/encoding.py)", "app/compute/encoding.py"),
    ("seeds' latents (models/latent.py)", "models/latent.py"),
    ("forward worker, other (concat, split, futures)", "forward_pool.py"),
]


def parts(collapsed: str) -> dict[str, int]:
    """py-spy's raw (collapsed) output -> samples per part."""
    counts: collections.Counter[str] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        part = next((name for name, marker in PARTS if marker in stack), None)
        if part is None:  # the main thread runs the event loop under app/__main__.py's main()
            part = "event loop (uvicorn, FastAPI, batcher)" if "app/__main__.py" in stack else "other"
        counts[part] += int(n)
    return dict(counts)


def label(precision: str, runtime: str) -> str:
    return precision + ("" if runtime == "torch" else f" {runtime}")


def components(checkpoint: Path, precision: str, runtime: str, rows: int, seconds: float = 2.0) -> dict[str, float]:
    """Microseconds of CPU per image for each step a forward worker takes for n=1 requests."""
    import torch

    from app.compute import encoding
    from app.runtime.malloc_tuning import keep_freed_memory
    from app.runtime.settings import Settings
    from app.service import serving_engine
    from models import latents_for_seeds

    torch.set_num_threads(1)
    keep_freed_memory()  # as the service: its 64-row pieces, its layout, its freed memory reused
    settings = Settings().model_copy(update={"precision": precision, "runtime": runtime})  # argparse's choices
    engine = serving_engine(str(checkpoint), torch.device("cpu"), settings)
    z = latents_for_seeds(range(rows), engine.nz)
    images = engine.forward(z)
    text = {"dcgan:model_id": engine.info.model_id, "dcgan:sha256": engine.info.sha256, "dcgan:seed": "1"}
    steps = {
        "latents (per seed)": lambda: latents_for_seeds(range(rows), engine.nz),
        f"forward at {rows} rows": lambda: engine.forward(z),
        "grid + PNG (n=1 request)": lambda: [encoding.png(encoding.grid(images[i : i + 1]), text) for i in range(rows)],
    }
    out = {}
    for name, step in steps.items():
        step()
        done, start = 0, time.process_time()
        while time.process_time() - start < seconds:
            step()
            done += rows
        out[name] = (time.process_time() - start) / done * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--runtime", nargs="+", default=["torch"], choices=["torch", "onnxruntime"])
    p.add_argument("--workload", default="n1", choices=["n1", "n16"])
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rows", type=int, default=16, help="in-process forward: rows per batch (n=1 at 64 clients: ~16)")
    p.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here, one file per precision")
    args = p.parse_args(argv)
    pairs = forwards(args.precision, args.runtime)
    for precision, runtime in pairs:
        steps = components(args.checkpoint, precision, runtime, args.rows)
        each = ", ".join(f"{k} {v:.0f} us" for k, v in steps.items())
        print(f"{label(precision, runtime)}: CPU per image, in-process: {each}")
    spawn = get_context("spawn")
    with ProcessPoolExecutor(
        1, mp_context=spawn, initializer=loadgen.pin, initargs=([(os.cpu_count() or 1) - 1],)
    ) as pool:
        for precision, runtime in pairs:
            env = {"DCGAN_PRECISION": precision, "DCGAN_RUNTIME": runtime}
            with (
                server(args.checkpoint, "cpu", env, None) as srv,
                tempfile.TemporaryDirectory() as tmp,
            ):
                out = Path(tmp) / "profile.txt"
                job = pool.submit(
                    loadgen.run_level, srv.url, srv.pid, args.workload, args.concurrency, 1.0, args.duration + 1, "raw"
                )
                spy = [PY_SPY, "record", "--pid", str(srv.pid), "--threads", "--format", "raw", "--rate", "200"]
                subprocess.run(
                    [*spy, "--duration", str(int(args.duration)), "-o", str(out)], check=True, capture_output=True
                )
                job.result()
                collapsed = out.read_text()
                if args.raw:
                    args.raw.mkdir(parents=True, exist_ok=True)
                    name = f"py-spy-{label(precision, runtime).replace(' ', '-')}-{args.workload}.txt"
                    (args.raw / name).write_text(collapsed)
                counts = parts(collapsed)
            total = sum(counts.values()) or 1
            print(f"{label(precision, runtime)}, {args.workload} at {args.concurrency} clients: {total} busy samples")
            for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
                print(f"  {n / total:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
