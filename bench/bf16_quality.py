"""Is a bf16 forward the same model? Pixel differences against fp32, and SWD of both next to the seed-set noise.

    python -m bench.bf16_quality --data /tmp/celeba          # a CelebA root (../shared/data/celeba-10k unpacked)
    python -m bench.bf16_quality --n 1000 --checkpoint checkpoints/demo-faces-64.safetensors

Renders ``--n`` seeds (10^6.., ``dcgan-eval``'s) through the served export in fp32 and in bf16 (the
service's own ``Engine``, so the bf16 copy is exactly what ``DCGAN_PRECISION=bf16`` serves), then:

- the max and mean absolute difference per pixel channel (0-255 levels), and how many differ at all;
- ``dcgan-eval``'s SWD (x 10^3) of each against the same ``--n`` held-out real faces (the export's own
  holdout: CelebA 9,001-10,000 for the demo), through one set of patches and projections;
- the seed-set noise: fp32 on another ``--n`` seeds (2 x 10^6..), so a bf16-vs-fp32 gap can be read
  against how much SWD moves when only the seeds change.

Needs a CPU with AVX-512 BF16 or AMX (or CUDA); writes docs/benchmarks/bf16-quality-<cpu>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

from app.compute.engine import Engine
from app.runtime.settings import DEFAULT_CHECKPOINT
from bench.serve import REPO, machine
from models import latents_for_seeds
from training.config import TrainConfig
from training.data import load_holdout
from training.evaluate import EVAL_SEED_BASE, Evaluator


def rendered(engine: Engine, n: int, seed_base: int) -> torch.Tensor:
    """(n, H, W, C) uint8 from seeds ``seed_base..``, in the service's 64-row pieces."""
    z = latents_for_seeds(range(seed_base, seed_base + n), engine.nz)
    return torch.cat([engine.forward(part) for part in z.split(64)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--data", type=Path, required=True, help="CelebA root holding the export's held-out images")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fp32 = Engine.load(str(args.checkpoint), args.device)
    bf16 = Engine.load(str(args.checkpoint), args.device, "bf16")
    selection = fp32.info.provenance.get("selection", {})
    config = TrainConfig(
        dataset="celeba", data=str(args.data), image_size=fp32.image_size,
        max_images=selection.get("max_images"), holdout=selection.get("holdout", 1000),
    )  # fmt: skip
    held = load_holdout(config).images
    n = min(args.n, len(held))
    a32, a16 = rendered(fp32, n, EVAL_SEED_BASE), rendered(bf16, n, EVAL_SEED_BASE)
    b32 = rendered(fp32, n, 2 * EVAL_SEED_BASE)
    diff = (a32.int() - a16.int()).abs()
    pixels = {
        "max": int(diff.max()),
        "mean": float(diff.float().mean()),
        "share_of_channels_that_differ": float((diff > 0).float().mean()),
        "share_of_images_with_max_above_8": float((diff.amax(dim=(1, 2, 3)) > 8).float().mean()),
    }
    evaluator = Evaluator(held[:n])
    scores = {
        "fp32, seeds 10^6..": evaluator.score(a32.permute(0, 3, 1, 2)),
        "bf16, seeds 10^6..": evaluator.score(a16.permute(0, 3, 1, 2)),
        "fp32, seeds 2x10^6.. (seed-set noise)": evaluator.score(b32.permute(0, 3, 1, 2)),
    }
    print(f"{n} seeds, {fp32.info.model_id} vs {bf16.info.model_id}")
    print(
        f"pixels (0-255): max |fp32 - bf16| {pixels['max']}, mean {pixels['mean']:.3f}, "
        f"{pixels['share_of_channels_that_differ']:.1%} of channel values differ"
    )
    for name, result in scores.items():
        levels = "  ".join(f"{r}px {v:6.2f}" for r, v in zip(result.resolutions, result.levels, strict=True))
        print(f"SWD x10^3 {result.mean:6.2f}  {levels}  {name}")
    swd = {
        name: {"mean": r.mean, "levels": dict(zip(r.resolutions, r.levels, strict=True))} for name, r in scores.items()
    }
    info = machine()
    tag = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower()).strip("-")
    out = args.out or REPO / "docs" / "benchmarks" / f"bf16-quality-{tag}.json"
    report = {"machine": info, "n": n, "model_id": fp32.info.model_id, "pixels": pixels, "swd_x1000": swd}
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
