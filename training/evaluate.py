"""``dcgan-eval`` / ``python -m training.evaluate``: SWD of generators against held-out real faces, with its scale.

    python -m training.evaluate --run runs/demo --checkpoint runs/demo/snapshots/*.safetensors --floor --random-init

Every row compares ``--n`` images with the same ``--n`` held-out real ones (the run's ``--holdout``),
through one set of patch positions and projection directions, so the rows of one run are comparable:

- ``floor``: training images against the held-out ones, the best a generator can hope for;
- ``random-init``: an untrained generator (paper init), the worst;
- each ``--checkpoint``: an export, rendered in eval mode as the service renders it;
- with ``--run``: the run's final EMA and raw generators, each BN-recalibrated (as exported), and the
  EMA generator with train-mode BatchNorm (batch statistics) and with the running statistics it
  inherited from the raw generator (what an export without recalibration would serve).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, load_generator
from models.dcgan import Generator, init_weights
from models.latent import latents_for_seeds
from models.sampling import render, to_uint8
from training.config import TrainConfig
from training.data import load_holdout, load_images
from training.export import recalibrate_bn
from training.swd import SWDResult, descriptors, swd

EVAL_SEED_BASE = 1_000_000  # generated images come from seeds 10^6.. (models.latent contract)
BATCH = 128  # the training batch: train-mode BatchNorm sees batches of this size


@dataclass(frozen=True)
class Row:
    name: str
    result: SWDResult
    seconds: float


def generated(generator: Generator, n: int, seed_base: int = EVAL_SEED_BASE, train_bn: bool = False) -> torch.Tensor:
    """``n`` images (n, 3, S, S) uint8 from seeds ``seed_base..``: eval mode as served, or train-mode
    BatchNorm (each batch of BATCH normalised by its own statistics, as during training)."""
    z = latents_for_seeds(range(seed_base, seed_base + n), generator.config.nz)  # (n, nz)
    if not train_bn:
        return torch.cat([render(generator, part) for part in z.split(BATCH)]).permute(0, 3, 1, 2)
    net = copy.deepcopy(generator).train()  # a copy: train-mode forwards update the running statistics
    device = next(net.parameters()).device
    with torch.no_grad():
        out = [to_uint8(net(part.to(device))).cpu() for part in z.split(BATCH)]
    return torch.cat(out).permute(0, 3, 1, 2)  # (n, 3, S, S)


class Evaluator:
    """The held-out set's descriptors, computed once; ``score`` compares any image set with them."""

    def __init__(self, reference: torch.Tensor, seed: int = 0, seed_base: int = EVAL_SEED_BASE) -> None:
        self.size, self.n, self.seed, self.seed_base = reference.shape[2], reference.shape[0], seed, seed_base
        self.reference = descriptors(reference, seed)

    def score(self, images: torch.Tensor) -> SWDResult:
        if images.shape[0] != self.n:
            raise ValueError(f"SWD compares {self.n} images with {self.n} held-out ones, got {images.shape[0]}")
        return swd(self.reference, descriptors(images, self.seed), self.size, self.seed)

    def score_generator(self, generator: Generator, train_bn: bool = False) -> SWDResult:
        return self.score(generated(generator, self.n, self.seed_base, train_bn=train_bn))


def random_init(config: TrainConfig, seed: int = 0) -> Generator:
    """An untrained generator (paper init, seeded), BN-recalibrated like an export."""
    torch.manual_seed(seed)
    generator = Generator(config.model)
    generator.apply(init_weights)
    return recalibrate_bn(generator, config.bn_recal_samples)


def run_generators(run_dir: Path) -> dict[str, Callable[[Evaluator], SWDResult]]:
    """The final EMA and raw generators of a run in the modes the quality table compares."""
    from training.state import load_state  # the training state's one owner

    state = load_state(run_dir)
    nets = {name: state.generator(ema=name == "ema").eval().requires_grad_(False) for name in ("ema", "raw")}

    def recalibrated(name: str) -> Generator:
        return recalibrate_bn(copy.deepcopy(nets[name]), state.config.bn_recal_samples)

    return {
        "ema, BN recalibrated (exported)": lambda ev: ev.score_generator(recalibrated("ema")),
        "raw, BN recalibrated": lambda ev: ev.score_generator(recalibrated("raw")),
        "ema, train-mode BN": lambda ev: ev.score_generator(nets["ema"], train_bn=True),
        "ema, inherited running stats": lambda ev: ev.score_generator(nets["ema"]),
    }


def _data_config(args: argparse.Namespace) -> TrainConfig:
    """The run's data selection (from its config.json), with any option given here taking precedence."""
    run_config = args.run / "config.json" if args.run else None
    base = TrainConfig.from_json(run_config.read_text()) if run_config else TrainConfig(dataset="synthetic")
    given = {k: getattr(args, k) for k in ("dataset", "data", "max_images", "holdout", "cache_dir")}
    return replace(base, **{k: v for k, v in given.items() if v is not None}, resume=False)


def evaluate(args: argparse.Namespace) -> list[Row]:
    config = _data_config(args)
    held = load_holdout(config).images
    n = min(args.n, len(held))
    evaluator = Evaluator(held[:n], args.seed, args.seed_base)
    jobs: dict[str, Callable[[Evaluator], SWDResult]] = {}
    if args.floor:
        train = load_images(config).images
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[:n]
        jobs["floor: training vs held-out images"] = lambda ev: ev.score(train[pick])
    if args.random_init:
        jobs["random-init generator"] = lambda ev: ev.score_generator(random_init(config, args.seed))
    for path in args.checkpoint:
        generator, _ = load_generator(path)
        jobs[str(path)] = lambda ev, g=generator: ev.score_generator(g)  # type: ignore[misc]
    if args.run:
        jobs.update(run_generators(args.run))
    rows = []
    for name, job in jobs.items():
        start = time.perf_counter()
        rows.append(Row(name, job(evaluator), time.perf_counter() - start))
        print(_format(rows[-1]), flush=True)
    return rows


def _format(row: Row) -> str:
    levels = "  ".join(f"{r:>3}px {v:7.2f}" for r, v in zip(row.result.resolutions, row.result.levels, strict=True))
    return f"{row.result.mean:8.2f}  {levels}  {row.seconds:5.1f}s  {row.name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dcgan-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a run dir: its data selection, and its final generators")
    parser.add_argument("--checkpoint", type=Path, nargs="*", default=[], help="generator exports to score")
    parser.add_argument("--floor", action="store_true", help="score training images against held-out ones")
    parser.add_argument("--random-init", action="store_true", help="score an untrained generator")
    parser.add_argument("--n", type=int, default=1000, help="images per set (at most the held-out count)")
    parser.add_argument("--seed", type=int, default=0, help="patch positions and projection directions")
    parser.add_argument("--seed-base", type=int, default=EVAL_SEED_BASE, help="generated faces: seeds from here on")
    parser.add_argument("--dataset", choices=("folder", "celeba", "lfw-sample", "synthetic"), help="as dcgan-train")
    parser.add_argument("--data", help="image folder or CelebA root, as dcgan-train")
    parser.add_argument("--max-images", type=int, help="as dcgan-train")
    parser.add_argument("--holdout", type=int, help="as dcgan-train: the last N selected images are the reference")
    parser.add_argument("--cache-dir", help="decoded-image cache, as dcgan-train")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2")
    print(f"{'SWD x1e3':>8}  (mean, then per pyramid level; lower is closer to the held-out faces)")
    try:
        rows = evaluate(args)
    except (ValueError, CheckpointError, OSError) as e:
        print(f"dcgan-eval: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        table = [{"name": r.name, **r.result.to_dict(), "seconds": round(r.seconds, 1)} for r in rows]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n": args.n, "seed": args.seed, "rows": table}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
