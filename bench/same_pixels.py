"""Whether the service's fp32 CPU pixels are still an older commit's, face for face: the default's byte contract.

    python -m bench.same_pixels --baseline cb4fa3b --checkpoint /tmp/old-demo.safetensors   # about 1 min

Renders ``--seeds`` seeds twice: by ``--baseline``'s own code, in a temporary git worktree and its own
process (``models.load_generator`` + ``models.sampling.render``), and by this tree's ``Engine``, set up as
the service sets it up (its CPU pieces, the layout its probe picks, glibc's kept heap). Each side renders
the seeds in batches of 16 and then one at a time, so both batch paths are compared. Prints how many
faces are byte-identical, the layout this tree used, and exits 1 if any face differs. ``--checkpoint``
must be an export both commits can read. See docs/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from app.runtime.settings import DEFAULT_CHECKPOINT
from bench.ceiling import worktree

BATCHES = (16, 1)  # rows per forward: a typical n=1 batch at 64 clients, and one face alone
OLD_RENDER = """
import sys, numpy as np, torch
from models import latents_for_seeds, load_generator
from models.sampling import render
torch.set_num_threads(1)
checkpoint, seeds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
generator, _ = load_generator(checkpoint, torch.device("cpu"))
z = latents_for_seeds(list(range(seeds)), generator.config.nz)
faces = [render(generator, part).contiguous() for rows in {batches} for part in z.split(rows)]
np.save(out, torch.cat(faces).numpy())
"""


def baseline_faces(rev: str, checkpoint: Path, seeds: int) -> np.ndarray:
    """(len(BATCHES) * seeds, H, W, C) uint8 rendered by ``rev``'s code in its own process."""
    with worktree(rev) as tree, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "faces.npy"
        script = OLD_RENDER.format(batches=BATCHES)
        command = [sys.executable, "-c", script, str(checkpoint.resolve()), str(seeds), str(out)]
        subprocess.run(command, cwd=tree, check=True, env={**os.environ, "PYTHONPATH": str(tree)})
        return np.load(out)


def service_faces(checkpoint: Path, seeds: int) -> tuple[np.ndarray, str]:
    """The same faces by this tree's ``Engine`` as ``app.service`` configures it; and the layout it picked."""
    from app.runtime.malloc_tuning import keep_freed_memory
    from app.runtime.settings import Settings
    from app.service import serving_engine
    from models import latents_for_seeds

    torch.set_num_threads(1)
    keep_freed_memory()
    engine = serving_engine(str(checkpoint), torch.device("cpu"), Settings(precision="fp32", runtime="torch"))
    z = latents_for_seeds(list(range(seeds)), engine.nz)
    faces = [engine.forward(part) for rows in BATCHES for part in z.split(rows)]
    return torch.cat(faces).numpy(), engine.layout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, help="the commit whose pixels must hold (e.g. cb4fa3b)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--seeds", type=int, default=1024)
    args = p.parse_args(argv)
    old = baseline_faces(args.baseline, args.checkpoint, args.seeds)
    new, layout = service_faces(args.checkpoint, args.seeds)
    if old.shape != new.shape:
        print(f"shapes differ: {args.baseline} {old.shape}, this tree {new.shape}")
        return 1
    same = (old == new).reshape(old.shape[0], -1).all(axis=1)  # (faces,) one flag per face
    for rows, flags in zip(BATCHES, np.split(same, len(BATCHES)), strict=True):
        print(f"batches of {rows:2d}: {int(flags.sum())}/{flags.size} faces byte-identical to {args.baseline}'s")
    print(f"this tree's layout: {layout}")
    return 0 if same.all() else 1


if __name__ == "__main__":
    sys.exit(main())
