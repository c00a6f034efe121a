"""``dcgan-sample`` / ``python -m training.sample``: write N generated faces as seed-named PNGs.

    dcgan-sample --checkpoint checkpoints/demo-faces-64.safetensors --n 10000 --out samples/

For FID or any other metric computed by the tool of your choice against your own CelebA: file
``seed-0000042.png`` is the face the service returns for seed 42 (same model, same truncation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from models.checkpoint import CheckpointError, load_generator
from models.latent import SEED_MAX, latents_for_seeds
from models.sampling import render

BATCH = 256  # latents per forward: each image is independent of its batch (models.sampling)


def write_samples(checkpoint: Path, n: int, out: Path, first_seed: int = 0, truncation: float | None = None) -> int:
    """Render seeds ``first_seed .. first_seed + n - 1`` to ``out/seed-NNNNNNN.png``; returns the count."""
    generator, _ = load_generator(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(first_seed, first_seed + n)
    for start in range(0, n, BATCH):
        batch = seeds[start : start + BATCH]
        images = render(generator, latents_for_seeds(batch, generator.config.nz, truncation))  # (B, S, S, C)
        for seed, image in zip(batch, images.numpy(), strict=True):
            pixels = image[..., 0] if image.shape[-1] == 1 else image
            Image.fromarray(np.ascontiguousarray(pixels)).save(out / f"seed-{seed:07d}.png")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dcgan-sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="generator export (.safetensors)")
    parser.add_argument("--n", type=int, default=10000, help="images to write")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs (created)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + n - 1")
    parser.add_argument("--truncation", type=float, default=None, help="as the service's truncation (default none)")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 10_000_000:
        parser.error(f"--n must be in 1..10000000, got {args.n}")
    if not 0 <= args.first_seed <= SEED_MAX - args.n + 1:
        parser.error(f"--first-seed + --n - 1 must be in 0..{SEED_MAX}")
    if args.truncation is not None and not args.truncation > 0:
        parser.error("--truncation must be > 0")
    try:
        count = write_samples(args.checkpoint, args.n, args.out, args.first_seed, args.truncation)
    except (CheckpointError, OSError, ValueError) as e:
        print(f"dcgan-sample: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {count} PNGs to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
