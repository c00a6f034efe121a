"""Other runtimes for the generator's forward, behind the serving contract: img/s, and whether each gives the
same bytes at every batch size and position (and the same bytes as PyTorch's fp32).

    python -m bench.runtimes                    # about 3 min; writes docs/benchmarks/runtimes-<cpu>.json
    python -m bench.runtimes --only torch-fp32 onnxruntime

Every candidate computes what ``models.sampling.render`` does: rows padded to a multiple of 8, G(z), then
the same uint8 rounding, in one thread (the server runs one-thread forwards side by side). The contract
check renders 256 seeds one per forward, then in batches of 7, 64 and 256, shuffled, and compares bytes.
Speed is img/s at 8 and 64 rows (the server's CPU batches), the median of ``--rounds`` interleaved rounds.
Candidates whose library is missing are skipped, saying so. See docs/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from app.runtime.malloc_tuning import keep_freed_memory
from app.runtime.settings import DEFAULT_CHECKPOINT
from bench.serve import REPO, machine
from models import Generator, latents_for_seeds, load_export
from models.layout import channels_last_tail
from models.precision import cast, cpu_bf16_support
from models.sampling import padded_rows, render, to_uint8

Forward = Callable[[torch.Tensor], torch.Tensor]  # latents (N, nz) float32 -> images (N, H, W, C) uint8


def padded(run: Callable[[np.ndarray], np.ndarray]) -> Forward:
    """A runtime's (N', nz) float32 -> (N', C, H, W) float32, wrapped as ``render`` wraps G."""

    def forward(z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        x = F.pad(z, (0, 0, 0, padded_rows(n) - n)).numpy()
        return to_uint8(torch.from_numpy(run(x))[:n])

    return forward


def torch_compiled(generator: Generator) -> Forward:
    compiled = torch.compile(generator, dynamic=True)

    @torch.inference_mode()
    def forward(z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        return to_uint8(compiled(F.pad(z, (0, 0, 0, padded_rows(n) - n)))[:n])

    return forward


def onnx_file(generator: Generator, folder: Path) -> Path:
    path = folder / "generator.onnx"
    z = torch.zeros(8, generator.config.nz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(generator, (z,), str(path), dynamo=True, dynamic_shapes=({0: batch},), external_data=False)
    return path


def onnxruntime_forward(path: Path) -> Forward:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return padded(lambda x: session.run(None, {name: x})[0])


def openvino_forward(path: Path) -> Forward:
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": "1", "NUM_STREAMS": "1"}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()
    return padded(lambda x: request.infer({0: x})[compiled.output(0)])


def candidates(generator: Generator, folder: Path, only: list[str] | None) -> dict[str, Forward]:
    makers: dict[str, Callable[[], Forward]] = {
        "torch-fp32": lambda: lambda z: render(generator, z),
        "torch-fp32-cl-tail": lambda: (lambda g: lambda z: render(g, z))(channels_last_tail(generator)),
        "torch-bf16": lambda: (lambda g: lambda z: render(g, z))(cast(generator, "bf16")),
        "torch.compile-fp32": lambda: torch_compiled(generator),
        "onnxruntime": lambda: onnxruntime_forward(onnx_file(generator, folder)),
        "openvino-f32": lambda: openvino_forward(onnx_file(generator, folder)),
    }
    if not cpu_bf16_support():
        del makers["torch-bf16"]
        print("torch-bf16: this CPU has no native bf16, skipped", file=sys.stderr)
    out = {}
    for name, make in makers.items():
        if only and name not in only:
            continue
        try:
            start = time.perf_counter()
            out[name] = make()
            print(f"{name}: ready in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        except ImportError as e:
            print(f"{name}: {e.name} not installed, skipped", file=sys.stderr)
    return out


def contract(forward: Forward, z: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Same bytes whatever the batch size and position, and against PyTorch fp32's bytes."""
    alone = torch.cat([forward(z[i : i + 1]) for i in range(z.shape[0])])
    order = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(0))
    stable = all(
        torch.equal(forward(z[order[s : s + n]]), alone[order[s : s + n]])
        for n in (7, 64, 256)
        for s in range(0, z.shape[0], n)
    )
    diff = (alone.int() - reference.int()).abs()
    return {
        "batch_independent": stable,
        "max_diff_vs_torch_fp32": int(diff.max()),
        "mean_diff": float(diff.float().mean()),
    }


def rate(forward: Forward, z: torch.Tensor, rows: int, seconds: float) -> float:
    part = z[:rows]
    forward(part)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        forward(part)
        done += rows
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--only", nargs="*", help="candidate names")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0, help="per candidate, batch size and round")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    keep_freed_memory()  # as the service: no candidate pays for page faults the server does not take
    export = load_export(str(args.checkpoint), torch.device("cpu"))
    z = latents_for_seeds(range(256), export.info.config.nz)
    reference = render(export.generator, z)
    with tempfile.TemporaryDirectory() as tmp:
        forwards = candidates(export.generator, Path(tmp), args.only)
        checks = {name: contract(forward, z, reference) for name, forward in forwards.items()}
        speeds: dict[str, dict[int, list[float]]] = {name: {8: [], 64: []} for name in forwards}
        for _ in range(args.rounds):
            for name, forward in forwards.items():
                for rows in (8, 64):
                    speeds[name][rows].append(rate(forward, z, rows, args.seconds))
    results = {}
    base = {rows: statistics.median(speeds["torch-fp32"][rows]) for rows in (8, 64)} if "torch-fp32" in speeds else {}
    print(
        f"{'runtime':20s} {'img/s @8':>9s} {'@64':>7s}  {'x fp32 @8':>9s} {'@64':>5s}  same bytes at any batch; vs fp32"
    )
    for name in forwards:
        img_s = {rows: statistics.median(speeds[name][rows]) for rows in (8, 64)}
        results[name] = {"img_s": img_s, "img_s_rounds": speeds[name]} | checks[name]
        ratio = "  ".join(f"{img_s[r] / base[r]:5.2f}" for r in (8, 64)) if base else ""
        c = checks[name]
        same = "yes" if c["batch_independent"] else "NO"
        print(
            f"{name:20s} {img_s[8]:9.0f} {img_s[64]:7.0f}  {ratio:>15s}  {same:>3s};"
            f" max diff {c['max_diff_vs_torch_fp32']}, mean {c['mean_diff']:.3f}"
        )
    info = machine()
    tag = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower()).strip("-")
    out = args.out or REPO / "docs" / "benchmarks" / f"runtimes-{tag}.json"
    out.write_text(json.dumps({"machine": info, "threads": 1, "runtimes": results}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
