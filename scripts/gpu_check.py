"""``make gpu-check``: the CUDA path's checks on a machine with a GPU, as one JSON report on stdout.

1. The ``cuda``-marked tests (serving determinism on the GPU, GPU vs CPU pixels, a 5-step train with
   --amp --channels-last --compile, the resume round trip, CPU vs GPU initial weights, the foreach EMA).
2. 200 training steps (the tutorial's 64 px model, batch 128, synthetic images: no download) with the
   per-step inputs uploaded through pinned memory without blocking, and with plain blocking copies,
   in interleaved rounds.
3. What the serving byte contract costs: generator forwards of 1 and 256 rows under the contract
   (deterministic cuDNN, no TF32, every forward padded to DCGAN_CUDA_CHUNK_ROWS) and under torch's
   defaults (TF32 convolutions, cuDNN's own choice, the batch's own shape).

Needs nothing from the internet: the tests use tiny random exports, the timings synthetic data and
the bundled demo export. Exit status 1 when a test failed or no GPU is present. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models import load_generator  # noqa: E402
from models.cuda import exact_convolutions  # noqa: E402
from models.sampling import render  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.distributed import Dist  # noqa: E402
from training.loop import Trainer  # noqa: E402

CUDA_TESTS = ("tests/app/test_cuda_serving.py", "tests/training/test_cuda_training.py")
DEMO = REPO / "checkpoints" / "demo-faces-64.safetensors"


def log(message: str) -> None:
    print(f"gpu-check: {message}", file=sys.stderr, flush=True)


def environment() -> dict[str, Any]:
    device = torch.device("cuda")
    props = torch.cuda.get_device_properties(device)
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        driver = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        driver = None
    return {
        "gpu": props.name,
        "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "driver": driver,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def run_tests() -> dict[str, Any]:
    """pytest on the cuda-marked tests, in a child process; the counts and the failures' names."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", "-q"]
        command += [f"--junitxml={report}", *CUDA_TESTS]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, stdout=sys.stderr, stderr=sys.stderr, timeout=900)
        seconds = time.perf_counter() - start
        if not report.is_file():
            return {"exit_status": done.returncode, "seconds": round(seconds, 1), "error": "pytest wrote no report"}
        cases = ElementTree.parse(report).getroot().iter("testcase")
        results: dict[str, str] = {}
        for case in cases:
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            results[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return {
        "exit_status": done.returncode,
        "seconds": round(seconds, 1),
        "passed": sum(v == "passed" for v in results.values()),
        "failed": sorted(k for k, v in results.items() if v == "failed"),
        "skipped": sorted(k for k, v in results.items() if v == "skipped"),
    }


def time_training(steps: int, rounds: int, out: Path, device: str = "cuda", **model: Any) -> dict[str, Any]:
    """Seconds for ``steps`` training steps with pinned non-blocking inputs and with blocking copies
    (``device`` and ``model``: tests/test_gpu_check.py runs it small on the CPU)."""
    sizes = {"synthetic_size": 4096, "image_size": 64, "batch_size": 128, "ngf": 64, "ndf": 64} | model
    config = TrainConfig(
        dataset="synthetic", seed=0, device=device, out=str(out), tensorboard=False, steps=10**6, **sizes
    )
    trainer = Trainer(config, Dist(), torch.device(device))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(20):  # cudnn.benchmark's autotuning, the allocator, the pinned-memory cache
        trainer.train_step()
    sync()
    seconds: dict[str, list[float]] = {"pinned": [], "blocking": []}
    for _ in range(rounds):
        for mode in ("blocking", "pinned"):
            trainer.pin_inputs = mode == "pinned"
            start = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            sync()
            seconds[mode].append(time.perf_counter() - start)
    best = {mode: min(values) for mode, values in seconds.items()}
    return {
        "steps": steps,
        "batch": config.batch_size,
        "model": f"{config.image_size} px, ngf {config.ngf}, ndf {config.ndf}, fp32, no --compile",
        "seconds": {mode: [round(v, 4) for v in values] for mode, values in seconds.items()},
        "img_s_best": {mode: round(steps * config.batch_size / v, 1) for mode, v in best.items()},
        "pinned_speedup": round(best["blocking"] / best["pinned"], 3),
    }


def time_serving(chunk_rows: int, repeats: int, device: str = "cuda") -> dict[str, Any]:
    """Milliseconds per generator forward (median), under the byte contract and under torch's defaults."""
    generator, _ = load_generator(DEMO, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    nz = generator.config.nz
    results: dict[str, Any] = {"export": DEMO.name, "chunk_rows": chunk_rows}

    def median_ms(rows: int, pad_to: int | None) -> float:
        z = torch.randn(rows, nz)
        pieces = z.split(pad_to) if pad_to else [z]
        for _ in range(5):
            for piece in pieces:
                render(generator, piece, pad_to)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for piece in pieces:
                render(generator, piece, pad_to)
            times.append((time.perf_counter() - start) * 1000)
        return round(statistics.median(times), 3)

    torch.backends.cudnn.benchmark = True  # torch's defaults, plus autotuning: the fastest the GPU offers
    results["defaults_ms"] = {f"n={n}": median_ms(n, None) for n in (1, 256)}
    exact_convolutions()
    results["contract_ms"] = {f"n={n}": median_ms(n, chunk_rows) for n in (1, 256)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps timed per mode and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of both modes")
    parser.add_argument("--skip-tests", action="store_true", help="only the timings")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        from models.cuda import unavailable_reason

        print(json.dumps({"ok": False, "error": f"no CUDA device: {unavailable_reason()}"}))
        return 1
    report: dict[str, Any] = {"environment": environment()}
    if not args.skip_tests:
        log("running the cuda-marked tests")
        report["tests"] = run_tests()
    with tempfile.TemporaryDirectory() as tmp:
        log(f"timing {args.steps} training steps x {args.rounds} rounds, pinned and blocking inputs")
        report["training"] = time_training(args.steps, args.rounds, Path(tmp) / "run")
    log("timing generator forwards under the byte contract and torch's defaults")
    report["serving"] = time_serving(chunk_rows=64, repeats=50)
    tests = report.get("tests")
    report["ok"] = tests is None or (tests["exit_status"] == 0 and not tests["failed"] and tests["passed"] > 0)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
