"""Train an inversion encoder for a generator export: ``dcgan-train-encoder`` / ``python -m training.encoder``.

    python -m training.encoder --checkpoint G.safetensors --celeba ROOT      # -> G.encoder.safetensors

The generator is frozen (eval mode, BN-recalibrated: the export as the service loads it). Each step:

    (1) generated pairs: z ~ N(0, I) -> x = G(z); E(x) should give back z       latent loss (MSE)
    (2) reconstructions: G(E(x)) should look like x, for those generated x       pixel + SSIM loss
        and for real CelebA training crops (images 1-9,000; 9,001-10,000 stay held out)
    (3) the shell: |E(x)| near sqrt(nz), where G's latents live                  (|z|/sqrt(nz) - 1)^2

Generated and real images go through E as one batch, so E's BatchNorm sees the mix it will be used on.
The result is written beside the export by ``inversion.encoder.save_encoder``, bound to that export's
SHA-256: retrain after any change to the export file (``make demo-directions`` runs this last).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from inversion.encoder import DEFAULT_WIDTH, Encoder, EncoderConfig, default_path, save_encoder
from inversion.fidelity import image_loss, psnr
from models.checkpoint import load_export
from models.dcgan import Generator
from models.precision import check_bf16
from training.config import TrainConfig
from training.data import load_holdout, load_images
from training.distributed import resolve_device


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Everything an encoder's training depends on (written into the encoder file's provenance)."""

    checkpoint: str
    out: str
    celeba: str | None = None  # None: --synthetic (procedural images; for tests)
    max_images: int = 10000  # as dcgan-train: the first N images, of which the last --holdout are held out
    holdout: int = 1000
    steps: int = 1000
    fake_batch: int = 48  # generated pairs per step (latent loss)
    recon_fake: int = 16  # of those, how many are also reconstructed through G (pixel + SSIM loss)
    real_batch: int = 16  # real training crops per step (pixel + SSIM loss)
    width: int = DEFAULT_WIDTH
    lr: float = 1e-3  # Adam, cosine-decayed to 0
    latent_weight: float = 1.0
    pixel_weight: float = 1.0
    ssim_weight: float = 0.5
    shell_weight: float = 0.1
    seed: int = 0
    device: str = "auto"
    amp: bool = False  # bf16 autocast for the forwards (CUDA, or a CPU with native bf16)
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "fake_batch", "real_batch", "width"):
            if not 1 <= getattr(self, name) <= 1 << 20:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.recon_fake <= self.fake_batch:
            raise ValueError(f"--recon-fake must be in 0..--fake-batch ({self.fake_batch}), got {self.recon_fake}")
        if not 0.0 < self.lr < 1.0:
            raise ValueError(f"--lr must be in (0, 1), got {self.lr}")

    def data_config(self, image_size: int) -> TrainConfig:
        """The image selection, as dcgan-train names it (so the held-out images are the same ones)."""
        if self.celeba is None:
            return TrainConfig(dataset="synthetic", synthetic_size=64, holdout=8, image_size=image_size)
        return TrainConfig(
            dataset="celeba",
            data=self.celeba,
            max_images=self.max_images,
            holdout=self.holdout,
            image_size=image_size,
            cache_dir=self.cache_dir,
        )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, S, S) -> float (N, C, S, S) in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def step_losses(
    G: Generator, E: Encoder, z: torch.Tensor, real: torch.Tensor, cfg: EncoderTrainConfig, amp: bool
) -> dict[str, torch.Tensor]:
    """The three losses of one step, as scalars: latent, reconstruction (pixel + SSIM), shell."""
    device_type = z.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
        with torch.no_grad():
            fake = G(z).float()  # (B_f, C, S, S)
        z_hat = E(torch.cat([fake, real])).float()  # (B_f + B_r, nz): one batch for BatchNorm
        z_fake, z_real = z_hat[: len(z)], z_hat[len(z) :]
        targets = torch.cat([fake[: cfg.recon_fake], real])  # (R, C, S, S)
        recon = G(torch.cat([z_fake[: cfg.recon_fake], z_real])).float()
    nz = z.shape[1]
    return {
        "latent": F.mse_loss(z_fake, z),
        "recon": image_loss(recon, targets, cfg.pixel_weight, cfg.ssim_weight).mean(),
        "shell": (z_hat.norm(dim=1) / math.sqrt(nz) - 1.0).pow(2).mean(),
    }


def train(cfg: EncoderTrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train and save the encoder; returns the provenance written into its file."""
    device = resolve_device(cfg.device)
    if cfg.amp:
        check_bf16(device, "--amp")
    export = load_export(cfg.checkpoint, device)
    G = export.generator  # eval mode, frozen
    data_cfg = cfg.data_config(G.config.image_size)
    images, held_out = load_images(data_cfg), load_holdout(data_cfg)
    pixels = images.images.to(device)  # (N, C, S, S) uint8
    torch.manual_seed(cfg.seed)  # E's initial weights
    E = Encoder(EncoderConfig.for_generator(G.config, cfg.width)).to(device).train()
    optimizer = torch.optim.Adam(E.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    g = torch.Generator().manual_seed(cfg.seed)  # latents, image order and flips: never the global RNG
    began, cpu_began = time.perf_counter(), time.process_time()
    bar = tqdm(range(cfg.steps), desc="encoder", unit="step", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        z = torch.randn(cfg.fake_batch, G.config.nz, generator=g).to(device)
        idx = torch.randint(len(pixels), (cfg.real_batch,), generator=g).to(device)
        flip = (torch.rand(cfg.real_batch, generator=g) < 0.5).to(device)
        real = to_float(pixels[idx])
        real = torch.where(flip[:, None, None, None], real.flip(3), real)  # (B_r, C, S, S)
        losses = step_losses(G, E, z, real, cfg, cfg.amp)
        loss = cfg.latent_weight * losses["latent"] + losses["recon"] + cfg.shell_weight * losses["shell"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # G's weights are frozen: only E's get gradients
        optimizer.step()
        schedule.step()
        bar.set_postfix({k: f"{v.item():.3f}" for k, v in losses.items()}, refresh=False)
    E.eval()
    final = {k: round(v.item(), 4) for k, v in losses.items()}
    provenance = {
        "recipe": {k: v for k, v in asdict(cfg).items() if k not in ("checkpoint", "out", "cache_dir", "celeba")},
        "data": {"dataset": images.name, "files": images.files, "held_out": held_out.files},
        "final_losses": final,
        "seconds": round(time.perf_counter() - began, 1),
        "cpu_seconds": round(time.process_time() - cpu_began, 1),
        "device": str(device),
        "held_out_psnr_median": held_out_psnr(G, E, to_float(held_out.images[:256].to(device))),
    }
    save_encoder(E.cpu(), cfg.out, export.info, provenance)
    return provenance


@torch.inference_mode()
def held_out_psnr(G: Generator, E: Encoder, images: torch.Tensor) -> float:
    """Median PSNR of G(E(x)) on held-out images: the encoder alone, as ``fast`` inversion runs it."""
    return round(float(psnr(G(E(images)), images).median()), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dcgan-train-encoder",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = EncoderTrainConfig(checkpoint="", out="")
    parser.add_argument("--checkpoint", type=Path, required=True, help="the generator export to invert")
    parser.add_argument("--out", type=Path, help="the encoder file (default: <export stem>.encoder.safetensors)")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--celeba", type=Path, help="CelebA root (img_align_celeba/)")
    data.add_argument("--synthetic", action="store_true", help="procedural images instead of CelebA (tests)")
    for name in ("max_images", "holdout", "steps", "fake_batch", "recon_fake", "real_batch", "width", "seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name), help=" ")
    for name in ("lr", "latent_weight", "pixel_weight", "ssim_weight", "shell_weight"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name), help=" ")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help=" ")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA, or a CPU with native bf16)")
    parser.add_argument("--cache-dir", help="decoded-image cache, as dcgan-train")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    try:
        cfg = EncoderTrainConfig(
            checkpoint=str(args.checkpoint),
            out=str(args.out or default_path(args.checkpoint)),
            celeba=None if args.synthetic else str(args.celeba),
            **{k: getattr(args, k) for k in asdict(defaults) if k not in ("checkpoint", "out", "celeba")},
        )
        if args.dry_run:
            print(json.dumps(asdict(cfg), indent=2))
            return 0
        if args.threads:
            torch.set_num_threads(args.threads)
        provenance = train(cfg)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {cfg.out}: held-out median PSNR of the encoder alone {provenance['held_out_psnr_median']} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
