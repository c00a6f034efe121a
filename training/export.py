"""BatchNorm recalibration and the generator export (``python -m training.export RUN_DIR out.safetensors``).

Why recalibrate: during training G runs in train mode, normalising each batch by its own
statistics; the running averages BatchNorm keeps lag behind the weights (and for the EMA
generator they belong to a different network). The service needs eval mode (a latent's image
must not depend on its batch), so before export we recompute the running statistics as a plain
average over many random latents, in train mode, without gradients, then switch to eval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from models.checkpoint import Provenance, code_version, save_generator
from models.dcgan import Generator


@torch.no_grad()
def recalibrate_bn(generator: Generator, samples: int, batch_size: int = 256, seed: int = 0) -> Generator:
    """Recompute every BatchNorm's running mean/var from ``samples`` random latents; returns G in eval mode.

    Uses its own seeded CPU generator, so it never disturbs the training RNG.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: an exact mean over all batches
    device = next(generator.parameters()).device
    g = torch.Generator().manual_seed(seed)
    generator.train()
    done = 0
    while done < samples:
        n = min(batch_size, samples - done)
        if n < 2:  # a batch of one has no variance
            break
        generator(torch.randn(n, generator.config.nz, generator=g).to(device))  # (n, C, S, S), discarded
        done += n
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return generator.eval()


def export_run(run_dir: str | Path, out: str | Path, use_ema: bool = True, recal_samples: int | None = None) -> None:
    """Export the generator of a run dir's latest training state, BN-recalibrated."""
    from training.state import load_state  # local: keeps ``recalibrate_bn`` importable on its own

    state = load_state(Path(run_dir))
    provenance = Provenance(
        dataset=state.meta["dataset"],
        dataset_hash=state.meta["dataset_hash"],
        steps=state.step,
        ema=use_ema,
        bn_recalibrated=True,
        code_version=code_version(),
        selection={"max_images": state.config.max_images, "holdout": state.config.holdout},
        recipe=state.config.recipe,
    )
    generator = recalibrate_bn(state.generator(use_ema), recal_samples or state.config.bn_recal_samples)
    save_generator(generator, Path(out), provenance)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=export_run.__doc__)
    parser.add_argument("run_dir", help="a training run directory (holds state.safetensors)")
    parser.add_argument("out", help="where to write the generator export (.safetensors)")
    parser.add_argument("--no-ema", action="store_true", help="export the raw generator instead of its EMA")
    parser.add_argument("--bn-recal-samples", type=int, default=None, help="latents for BN recalibration")
    args = parser.parse_args(argv)
    if args.bn_recal_samples is not None and args.bn_recal_samples < 2:
        parser.error("--bn-recal-samples must be at least 2")
    try:
        export_run(args.run_dir, args.out, use_ema=not args.no_ema, recal_samples=args.bn_recal_samples)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
