"""``dcgan-train`` / ``python -m training``: options -> one TrainConfig -> a run dir.

Every value is validated (by TrainConfig and the device check) before any data is read.
Under ``torchrun --nproc_per_node=N`` the same command trains with DDP.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from training.config import DATASETS, DEVICES, TrainConfig

HELP = {
    "data": "image folder (searched recursively) or CelebA root",
    "max_images": "use only the first N images in file-name order (default: all)",
    "holdout": "the last N selected images are never trained on; SWD is measured against them",
    "eval_every": "log SWD against the held-out images every K steps (0: only at the end)",
    "eval_images": "generated and held-out images per SWD evaluation",
    "snapshot_every": "also keep a generator export every K steps in OUT/snapshots/ (0: none)",
    "batch_size": "global batch size (split over torchrun processes)",
    "steps": "total optimizer steps (exclusive with --epochs)",
    "epochs": "passes over the data; default 5 when --steps is not given",
    "ema_decay": "per-step decay of the EMA generator",
    "out": "run directory: config.json, log.jsonl, samples/, state.safetensors, generator.safetensors",
    "resume": "continue the run in --out from its state.safetensors",
    "amp": "bf16 autocast: on CUDA, or on a CPU with AVX-512 BF16 or AMX (refused elsewhere); losses stay fp32",
    "augment": "DiffAugment policy applied to D's real and generated inputs: a comma list of color, translation, "
    "cutout (e.g. color,translation,cutout); '' for none",
    "compile": "torch.compile G and D",
    "channels_last": "channels-last memory format",
    "sync_bn": "torchrun on CUDA: BatchNorm statistics over every GPU's batch (SyncBatchNorm); without it "
    "each GPU normalises its own --batch-size / GPUs images, so keep that at 32 or more",
    "bn_recal_samples": "random latents used to recompute BatchNorm statistics before export",
    "export": "also write the final generator export to this path",
    "cache_dir": "decoded-image cache (default $XDG_CACHE_HOME/dcgan-faces)",
    "synthetic_size": "images in --dataset synthetic",
    "tensorboard": "write TensorBoard events to OUT/tb",
}
CHOICES = {"dataset": DATASETS, "device": DEVICES}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcgan-train",
        description="Train a DCGAN face generator; writes a run dir and a generator export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in fields(TrainConfig):
        flag, default = "--" + f.name.replace("_", "-"), f.default
        if f.name == "tensorboard":
            parser.add_argument(
                "--no-tensorboard", dest="tensorboard", action="store_false", help="do not " + HELP[f.name]
            )
        elif isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=HELP.get(f.name, " "))
        else:
            kind = float if isinstance(default, float) else int if f.name in _INTS else str
            parser.add_argument(
                flag, type=kind, default=default, choices=CHOICES.get(f.name), help=HELP.get(f.name, " ")
            )
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    return parser


_INTS = {
    "max_images",
    "holdout",
    "eval_every",
    "eval_images",
    "snapshot_every",
    "image_size",
    "nz",
    "ngf",
    "ndf",
    "batch_size",
    "steps",
    "epochs",
    "seed",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "bn_recal_samples",
    "synthetic_size",
}


def parse_config(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    """argv -> (validated config, dry_run). Exits with status 2 and a message naming the option on bad input."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    dry_run = args.pop("dry_run")
    try:
        return TrainConfig(**args), dry_run
    except ValueError as e:
        parser.error(str(e))
    raise AssertionError("unreachable")  # parser.error exits


def main(argv: list[str] | None = None) -> int:
    config, dry_run = parse_config(argv)
    if dry_run:
        print(config.to_json())
        return 0
    from training.allocator import keep_freed_memory
    from training.distributed import init_distributed, shutdown  # heavy imports only when training
    from training.loop import train

    keep_freed_memory()  # CPU steps re-allocate the same large tensors: keep them in the heap
    try:
        info, device = init_distributed(config.device)
    except ValueError as e:
        print(f"dcgan-train: error: {e}", file=sys.stderr)
        return 2
    try:
        train(config, info, device)
    except ValueError as e:  # bad data or resume mismatch: a message naming the option, not a traceback
        print(f"dcgan-train: error: {e}", file=sys.stderr)
        return 2
    finally:
        shutdown(info)
    return 0
