"""Training benchmark: our trainer vs the PyTorch DCGAN tutorial's loop, same data, model and batch, one run.

    python -m bench.train                       # 20k synthetic 64x64 JPEGs, batch 128, the tutorial's model
    python -m bench.train --images 2000 --steps 4          # a quick look
    python -m bench.train --data /data/celeba --tag celeba # real JPEGs: a CelebA root (or any image folder)

The data is written once as JPEG files to a temporary folder, or ``--data`` names a folder of real ones
(a CelebA root: ``img_align_celeba/`` is the one class folder ImageFolder wants). *Ours* is ``training.loop.Trainer`` as
shipped, stepped by its ``train_step`` (the folder is decoded once into its uint8 cache; that build
is timed separately). The *tutorial* baseline is written out below: ``ImageFolder`` +
``DataLoader(num_workers=2)`` + the tutorial's step (sigmoid + ``BCELoss``, real and fake batches,
Adam). The two alternate for ``--rounds`` rounds of ``--steps`` timed steps (the machine is noisy);
img/s counts real images consumed, medians are compared. It also times decoding the folder into the
cache and reading the cache back, and the user and system CPU time of each loop's timed steps. Prints
ours ÷ tutorial and writes ``docs/benchmarks/train-<tag>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from models.dcgan import Discriminator, Generator, init_weights
from training.config import TrainConfig
from training.data import folder_images, synthetic_images
from training.distributed import Dist
from training.loop import Trainer

REPO = Path(__file__).resolve().parent.parent


def write_jpegs(root: Path, n: int, size: int) -> None:
    """``n`` procedural faces as JPEG files under ``root/faces/`` (ImageFolder wants one class folder)."""
    folder = root / "faces"
    folder.mkdir(parents=True)
    images = synthetic_images(n, size, seed=0).permute(0, 2, 3, 1).numpy()  # (n, S, S, 3)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:06d}.jpg", quality=95)


class Ours:
    """``training.loop.Trainer`` as shipped, stepped with its own ``train_step``."""

    def __init__(
        self, args: argparse.Namespace, data: Path, cache: Path, run_dir: Path, device: torch.device, amp: bool = False
    ):
        config = TrainConfig(
            dataset="folder", data=str(data), cache_dir=str(cache), out=str(run_dir), image_size=args.image_size,
            ngf=args.ngf, ndf=args.ndf, batch_size=args.batch_size, steps=10**6, tensorboard=False,
            device=device.type, channels_last=args.channels_last, compile=args.compile, amp=amp,
        )  # fmt: skip
        self.trainer = Trainer(config, Dist(), device)
        self.cpu = {"user_s": 0.0, "system_s": 0.0}

    def timed(self, warm: int, n: int) -> float:
        """Seconds for ``n`` steps after ``warm`` untimed ones."""
        for _ in range(warm):
            self.trainer.train_step()["loss_d"].item()
        start = time.perf_counter()
        with cpu_times(self.cpu):
            for _ in range(n):
                values = self.trainer.train_step()
                values["loss_d"].item()  # wait for the device, as the tutorial's .item() calls do
        return time.perf_counter() - start


class Tutorial:
    """The PyTorch DCGAN tutorial's data pipeline and training step, unchanged except for the model sizes."""

    def __init__(self, args: argparse.Namespace, data: Path, device: torch.device) -> None:
        dataset = datasets.ImageFolder(
            root=str(data),
            transform=transforms.Compose([
                transforms.Resize(args.image_size),
                transforms.CenterCrop(args.image_size),
                transforms.ToTensor(),
                transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            ]),
        )  # fmt: skip
        self.loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=2)
        self.config = TrainConfig(dataset="synthetic", image_size=args.image_size, ngf=args.ngf, ndf=args.ndf).model
        self.device = device
        self.cpu = {"user_s": 0.0, "system_s": 0.0}
        torch.manual_seed(0)
        self.netG, self.netD = Generator(self.config).to(device), Discriminator(self.config).to(device)
        self.netG.apply(init_weights)
        self.netD.apply(init_weights)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=0.0002, betas=(0.5, 0.999))

    def timed(self, warm: int, n: int) -> float:
        """Seconds for ``n`` steps after ``warm`` untimed ones, on a fresh DataLoader iterator (its workers
        start here, as at each epoch of the tutorial, and stop at the end, so they never run beside ours)."""
        batches = iter(self.loader)
        for _ in range(warm):
            self.step(next(batches)[0])
        start = time.perf_counter()
        with cpu_times(self.cpu, children=True):  # its decoding runs in the DataLoader's worker processes
            for _ in range(n):
                self.step(next(batches)[0])
            elapsed = time.perf_counter() - start
            del batches  # the workers stop (and their CPU is counted) here
        return elapsed

    def step(self, data: torch.Tensor) -> None:
        netD, netG, criterion, device = self.netD, self.netG, self.criterion, self.device
        real_label, fake_label = 1.0, 0.0
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        real_cpu = data.to(device)
        b_size = real_cpu.size(0)
        label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
        output = torch.sigmoid(netD(real_cpu)).view(-1)  # the tutorial's netD ends in nn.Sigmoid()
        errD_real = criterion(output, label)
        errD_real.backward()
        output.mean().item()  # D_x
        noise = torch.randn(b_size, self.config.nz, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = torch.sigmoid(netD(fake.detach())).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        output.mean().item()  # D_G_z1
        self.optimizerD.step()
        # (2) Update G network: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)
        output = torch.sigmoid(netD(fake)).view(-1)
        errG = criterion(output, label)
        errG.backward()
        output.mean().item()  # D_G_z2
        self.optimizerG.step()


@contextlib.contextmanager
def cpu_times(into: dict[str, float], children: bool = False) -> Iterator[None]:
    """Add the user and system CPU seconds spent inside the block (this process; with ``children``, also
    the worker processes that ended) to ``into``."""

    def now() -> tuple[float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + children * kids.ru_utime, own.ru_stime + children * kids.ru_stime

    user, system = now()
    yield
    user2, system2 = now()
    into["user_s"] += user2 - user
    into["system_s"] += system2 - system


def timed_rounds(runners: dict[str, Ours | Tutorial], args: argparse.Namespace) -> dict[str, list[float]]:
    """Alternate the loops, ``--rounds`` times: one untimed step (data workers start, caches warm), then
    ``--steps`` timed steps each. Alternating spreads the machine's noise over both."""
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for runner in runners.values():
        runner.timed(2, 0)  # warm-up (and torch.compile's compilation)
    for _ in range(args.rounds):
        for name, runner in runners.items():
            rates[name].append(args.steps * args.batch_size / runner.timed(1, args.steps))
    return rates


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20_000, help="synthetic JPEGs to write (default: %(default)s)")
    p.add_argument("--data", type=Path, help="a folder of real images instead (e.g. a CelebA root)")
    p.add_argument("--tag", help="output name: train-<tag>.json (default: the device)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per round (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median counts")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=64, help="the tutorial's sizes by default")
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both (default: torch's)")
    p.add_argument("--channels-last", action="store_true", help="ours: --channels-last")
    p.add_argument("--compile", action="store_true", help="ours: --compile")
    p.add_argument("--amp", action="store_true", help="also time ours with --amp (bf16 autocast), in the same rounds")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks", help="output folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data is None and args.images < (args.steps + 1) * args.batch_size:
        raise SystemExit(f"--images {args.images}: too few for {args.steps + 1} steps of batch {args.batch_size}")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads()}
    result["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    with tempfile.TemporaryDirectory(prefix="dcgan-bench-") as tmp:
        root = Path(tmp)
        data = args.data or root / "jpegs"
        if args.data is None:
            start = time.perf_counter()
            write_jpegs(data, args.images, args.image_size)
            result["write_jpegs_s"] = time.perf_counter() - start
        for key in ("cache_build_s", "cache_load_s"):  # the one-off decode, then what every later run pays
            start = time.perf_counter()
            decoded = folder_images(data, args.image_size, root / "cache", name="folder")
            result[key] = time.perf_counter() - start
        result["images"], result["skipped"] = len(decoded.images), decoded.skipped
        ours = Ours(args, data, root / "cache", root / "run", device)
        runners: dict[str, Ours | Tutorial] = {"ours": ours, "tutorial": Tutorial(args, data, device)}
        if args.amp:  # same data, model and rounds: only the precision differs
            runners["ours_bf16"] = Ours(args, data, root / "cache", root / "run-bf16", device, amp=True)
        rates = timed_rounds(runners, args)
        for runner in runners.values():
            if isinstance(runner, Ours):
                runner.trainer.log.close()
    for name, values in rates.items():
        cpu = {k: round(v, 2) for k, v in runners[name].cpu.items()}
        result[name] = {"img_s": statistics.median(values), "rounds": values, "cpu": cpu}
    result["ours"]["config"] = {"channels_last": args.channels_last, "compile": args.compile}
    result["ratio"] = result["ours"]["img_s"] / result["tutorial"]["img_s"]
    bf16 = ""
    if args.amp:
        result["ours_bf16"]["config"] = {**result["ours"]["config"], "amp": True}
        result["bf16_vs_fp32"] = result["ours_bf16"]["img_s"] / result["ours"]["img_s"]
        bf16 = f"; ours --amp (bf16) {result['ours_bf16']['img_s']:.1f} img/s = {result['bf16_vs_fp32']:.2f}x fp32"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"train-{args.tag or device.type}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{device} ({result['threads']} torch threads), batch {args.batch_size}, {result['images']} images: "
        f"ours {result['ours']['img_s']:.1f} img/s, tutorial {result['tutorial']['img_s']:.1f} img/s, "
        f"ratio {result['ratio']:.2f}x (decode into the cache {result['cache_build_s']:.1f} s, once; read it back "
        f"{result['cache_load_s']:.2f} s); rounds: ours {[round(r, 1) for r in rates['ours']]}, tutorial "
        f"{[round(r, 1) for r in rates['tutorial']]}; CPU user/system: ours {result['ours']['cpu']}, "
        f"tutorial {result['tutorial']['cpu']}{bf16}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
