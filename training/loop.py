"""The training loop: data + nets + state + outputs in the run dir. ``train(config)`` is the entry point.

Run dir layout (rank 0 writes everything): ``config.json``, ``log.jsonl``, ``tb/``, ``samples/step-*.png``,
``state.safetensors`` (resume state), ``generator.safetensors`` (final export) and ``loss.png``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import fields, replace
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from models.checkpoint import Provenance, code_version, save_generator
from models.cuda import exact_convolutions_within, fast_training
from models.dcgan import Generator
from models.latent import latents_for_seeds
from models.sampling import render
from training import steps
from training.config import RESUMABLE_CHANGES, TrainConfig, option
from training.data import ImageSet, load_holdout, load_images
from training.device_checks import check_options
from training.distributed import Dist, barrier, gather
from training.evaluate import Evaluator
from training.export import recalibrate_bn
from training.logs import RunLog, plot_losses, truncate_log
from training.state import TrainState, load_state, restore_rng, save_state

EXPORT_NAME = "generator.safetensors"
GRID_SEEDS = range(64)  # sample grids show the latents of seeds 0..63 (models.latent contract)
GRID_RECAL_SAMPLES = 1024  # enough for a preview grid (or a progress SWD); the export uses config.bn_recal_samples
DATA_TERMS = {  # what a generator inherits from its data; recorded in the export's provenance
    "celeba": "CelebA (Liu et al., ICCV 2015): non-commercial research purposes only; images of celebrities, "
    "copyright with their owners. A generator trained on it inherits these terms.",
}


class Trainer:
    def __init__(self, config: TrainConfig, info: Dist, device: torch.device) -> None:
        check_options(config.amp, config.compile, config.sync_bn, device)  # before any data is read
        if device.type == "cuda":
            fast_training()  # cudnn.benchmark: every step has the same shapes
        self.config, self.info, self.device = config, info, device
        self.run_dir = Path(config.out)
        self.data = _load_data(config, info)
        self.images = self.data.images.to(device)  # (N, 3, S, S) uint8; on CUDA the whole set lives on the GPU
        if device.type == "cuda":  # free the host copy (2.5 GB at 64 px, 10 GB at 128 px per rank)
            self.data = without_pixels(self.data)
        self.pin_inputs = True  # per-step inputs through pinned memory (steps.upload); gpu_check times both
        self.order = steps.DataOrder(len(self.images), config.batch_size, config.seed, info)
        self.total = config.steps or (config.epochs or 5) * self.order.steps_per_epoch
        self.nets = steps.build_nets(config, device, info)
        self.loop_rng = torch.Generator().manual_seed(config.seed + 7919 * info.rank)  # latents and flips
        self.amp = steps.autocast(config, device)
        self.augment = steps.augmenter(config.augment, self.loop_rng)  # D's inputs; identity without --augment
        self.step = 0
        self.evaluator: Evaluator | None = None
        if config.resume:
            self._resume(load_state(self.run_dir))
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(config.to_json() + "\n")
        self.log = RunLog(self.run_dir, self.total, self.step, info.is_main, config.tensorboard)
        self.log.event(
            {
                "event": "data",
                "dataset": self.data.name,
                "images": len(self.images),
                "skipped": self.data.skipped,
                "ignored": self.data.ignored,
                "hash": self.data.content_hash,
                "files": self.data.files,
                "holdout": config.holdout,
                "steps": self.total,
                "steps_per_epoch": self.order.steps_per_epoch,
                "start_step": self.step,
                "device": str(device),
                "world": info.world,
            }
        )

    def _resume(self, state: TrainState) -> None:
        for f in fields(TrainConfig):
            if f.name not in RESUMABLE_CHANGES and getattr(state.config, f.name) != getattr(self.config, f.name):
                raise ValueError(
                    f"--resume: {option(f.name)} is {getattr(self.config, f.name)!r} but the run in "
                    f"{self.run_dir} used {getattr(state.config, f.name)!r}"
                )
        state.restore(self.nets)
        if not restore_rng(state, self.loop_rng, self.info.rank, self.device):
            self.loop_rng.manual_seed(self.config.seed + 7919 * self.info.rank + 104729 * state.step)
        self.step = state.step
        if self.info.is_main:
            truncate_log(self.run_dir, self.step)

    def train_step(self) -> dict[str, torch.Tensor]:
        """One step on this rank's next batch: (1) update D, (2) update G, then the EMA. Returns the
        step's losses and mean D outputs as 0-d tensors (not synchronised: ``.item()`` only when logging)."""
        cfg, nets = self.config, self.nets
        idx = self.order.indices(self.step)  # (B,)
        flip = torch.rand(idx.numel(), generator=self.loop_rng) < 0.5  # (B,) random horizontal flip
        z = torch.randn(idx.numel(), cfg.nz, generator=self.loop_rng)  # (B, nz)
        idx, flip, z = (steps.upload(t, self.device, self.pin_inputs) for t in (idx, flip, z))
        real = steps.real_batch(self.images, idx, flip)  # (B, 3, S, S)
        if cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        loss_d, d_x, d_g_z1, fake = steps.d_step(nets, real, z, self.amp, self.augment)  # (1) update D
        loss_g, d_g_z2 = steps.g_step(nets, fake, self.amp, self.augment)  # (2) update G
        steps.ema_update(nets.G_ema, nets.G, steps.ema_beta(cfg.ema_decay, self.step))  # EMA
        self.step += 1
        return {"loss_d": loss_d, "loss_g": loss_g, "d_x": d_x, "d_g_z1": d_g_z1, "d_g_z2": d_g_z2}

    def run(self) -> None:
        cfg = self.config
        t0, images_seen = time.perf_counter(), 0
        while self.step < self.total:
            values = self.train_step()
            images_seen += cfg.batch_size
            self.log.advance()
            last = self.step == self.total
            if self.step % cfg.log_every == 0 or last:
                rate = images_seen / (time.perf_counter() - t0)
                self.log.scalars(self.step, {**{k: v.item() for k, v in values.items()}, "img_s": round(rate, 1)})
                t0, images_seen = time.perf_counter(), 0
            if self.info.is_main and (self.step % cfg.sample_every == 0 or last):  # snapshot
                self.sample_grid()
            if self.info.is_main and cfg.eval_every and self.step % cfg.eval_every == 0 and not last:
                self.evaluate(self.exportable(GRID_RECAL_SAMPLES))  # quality so far (the last one is in finish)
            if self.info.is_main and cfg.snapshot_every and self.step % cfg.snapshot_every == 0 and not last:
                path = self.run_dir / "snapshots" / f"generator-step-{self.step:07d}.safetensors"
                save_generator(self.exportable(cfg.bn_recal_samples), path, self.provenance())
            if self.step % cfg.checkpoint_every == 0 or last:
                self.save()  # every rank: the RNG states are gathered
        self.finish()

    def exportable(self, recal_samples: int) -> Generator:
        """A BN-recalibrated, eval-mode copy of the EMA generator: what an export holds and the service runs."""
        return recalibrate_bn(copy.deepcopy(self.nets.G_ema), recal_samples)  # not Generator(...): no global-RNG draw

    def evaluate(self, generator: Generator) -> dict[str, float]:
        """SWD x 10^3 of ``generator`` against the held-out images, logged; {} when nothing is held out."""
        if self.config.holdout == 0:
            return {}
        if self.evaluator is None:  # the held-out set's descriptors, computed once per run
            held = load_holdout(self.config).images
            self.evaluator = Evaluator(held[: self.config.eval_images])
        values = {**self.evaluator.score_generator(generator).to_dict(), "eval_images": self.evaluator.n}
        self.log.quality(self.step, values)
        return values

    def provenance(self, quality: dict[str, float] | None = None) -> Provenance:
        cfg, data = self.config, self.data
        return Provenance(
            dataset=data.name,
            dataset_hash=data.content_hash,
            steps=self.step,
            ema=True,
            bn_recalibrated=True,
            code_version=code_version(),
            selection={"max_images": cfg.max_images, "holdout": cfg.holdout, "trained_on": data.files},
            quality=quality or {},
            terms=DATA_TERMS.get(data.name, ""),
            recipe=cfg.recipe,
        )

    def sample_grid(self) -> Path:
        """samples/step-NNNNNNN.png: the EMA generator, BN-recalibrated, rendered in eval mode as the service will."""
        G = self.exportable(min(GRID_RECAL_SAMPLES, self.config.bn_recal_samples))
        exact = exact_convolutions_within() if self.device.type == "cuda" else contextlib.nullcontext()
        with exact:  # on CUDA, the service's flags (models.cuda): the grid shows the service's pixels
            pixels = render(G, latents_for_seeds(list(GRID_SEEDS), self.config.nz))  # (64, S, S, 3) uint8
        grid = make_grid(pixels.permute(0, 3, 1, 2).float() / 255.0, nrow=8, padding=2)  # (3, H, W)
        path = self.run_dir / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        return path

    def save(self) -> None:
        """state.safetensors: everything --resume needs, written atomically by rank 0. Collective."""
        loop_states = gather(self.loop_rng.get_state(), self.info, self.device)
        cuda = self.device.type == "cuda"  # each rank's own GPU's generator, in rank order
        cuda_states = gather(torch.cuda.get_rng_state(self.device), self.info, self.device) if cuda else []
        if not self.info.is_main:
            return
        epoch, position = self.order.position(self.step)
        meta = {
            "step": self.step,
            "epoch": epoch,
            "position": position,
            "dataset": self.data.name,
            "dataset_hash": self.data.content_hash,
        }
        save_state(self.run_dir, self.config, self.nets, loop_states, meta, cuda_states)

    def finish(self) -> None:
        """Export the BN-recalibrated EMA generator (with its SWD), draw loss.png, release the workers."""
        if self.info.is_main:
            generator = self.exportable(self.config.bn_recal_samples)
            provenance = self.provenance(self.evaluate(generator))  # the export records its final quality
            paths = [self.run_dir / EXPORT_NAME] + ([Path(self.config.export)] if self.config.export else [])
            for path in paths:
                save_generator(generator, path, provenance)
            plot_losses(self.run_dir)
            self.log.event({"event": "done", "step": self.step, "exports": [str(p) for p in paths]})
        self.log.close()
        barrier(self.info)


def without_pixels(data: ImageSet) -> ImageSet:
    """``data`` with an empty image tensor of its own (not a view, which would keep the pixels alive)."""
    return replace(data, images=torch.empty((0, *data.images.shape[1:]), dtype=data.images.dtype))


def _load_data(config: TrainConfig, info: Dist) -> ImageSet:
    """The first rank of each node decodes (and caches) first, while the others wait on the CPU group
    (``barrier``: no NCCL timeout to outlast); then they read its cache. A ``--cache-dir`` shared by the
    nodes is filled once per node at worst (the cache is written atomically, so that is only work)."""
    data = load_images(config) if info.local_rank == 0 else None
    barrier(info)
    return data if data is not None else load_images(config)


def train(config: TrainConfig, info: Dist, device: torch.device) -> Trainer:
    trainer = Trainer(config, info, device)
    trainer.run()
    return trainer
