"""The one typed training config: built by the CLI, validated here, written to the run dir as JSON.

Every bad value raises ``ValueError`` whose message names the command-line option, so the CLI can
report it before any work starts (stylegan3's ``--batch must be a multiple of --gpus``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from models.config import IMAGE_SIZES, DCGANConfig
from training.augment import parse_policy

DATASETS = ("folder", "celeba", "lfw-sample", "synthetic")
DEVICES = ("auto", "cpu", "cuda")


def option(name: str) -> str:
    """Field name -> the command-line option that sets it (``batch_size`` -> ``--batch-size``)."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults are the DCGAN paper's / PyTorch tutorial's."""

    dataset: str = "folder"
    data: str | None = None  # image folder or CelebA root (folder, celeba)
    max_images: int | None = None  # use only the first N images in file-name order (None: all)
    holdout: int = 0  # the last N of those are never trained on: the measuring set
    image_size: int = 64
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    batch_size: int = 128  # global batch: split evenly over torchrun processes
    steps: int | None = None  # total optimizer steps; exclusive with epochs
    epochs: int | None = None  # None and no steps -> 5 epochs (the tutorial)
    lr: float = 2e-4
    beta1: float = 0.5
    seed: int = 0
    out: str = "runs/train"
    resume: bool = False
    device: str = "auto"
    amp: bool = False  # bf16 autocast: CUDA, or a CPU with AVX-512 BF16 / AMX (models.precision)
    augment: str = ""  # DiffAugment policy for D's inputs, e.g. "color,translation,cutout" ('' : none)
    compile: bool = False
    channels_last: bool = False
    sync_bn: bool = False  # torchrun on CUDA: BatchNorm statistics over the global batch, not each GPU's
    ema_decay: float = 0.999  # per step, ramped up over the first steps (see steps.ema_beta)
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    eval_every: int = 0  # SWD against the held-out images every K steps (0: only at the end, if --holdout)
    eval_images: int = 1000  # generated and real images per SWD evaluation
    snapshot_every: int = 0  # also keep a generator export every K steps in snapshots/ (0: none)
    bn_recal_samples: int = 8192  # latents used to recompute BatchNorm statistics before export
    export: str | None = None  # extra path for the final generator export
    cache_dir: str | None = None  # decoded-image cache; None -> $XDG_CACHE_HOME/dcgan-faces
    synthetic_size: int = 512  # images in the synthetic dataset
    tensorboard: bool = True

    def __post_init__(self) -> None:
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("device", self.device, DEVICES)
        if self.dataset in ("folder", "celeba") and not self.data:
            raise ValueError(f"--data is required with --dataset {self.dataset}")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"--image-size must be one of {IMAGE_SIZES}, got {self.image_size!r}")
        for name in ("nz", "ngf", "ndf"):
            _check_int(name, getattr(self, name), 1, 1024)
        for name in ("batch_size", "log_every", "sample_every", "checkpoint_every", "bn_recal_samples"):
            _check_int(name, getattr(self, name), 1, 1 << 30)
        for name in ("holdout", "eval_every", "snapshot_every"):
            _check_int(name, getattr(self, name), 0, 1 << 30)
        _check_int("eval_images", self.eval_images, 2, 1 << 20)
        if self.max_images is not None:
            _check_int("max_images", self.max_images, 1, 1 << 40)
            if self.holdout >= self.max_images:
                raise ValueError(f"--holdout {self.holdout} must be smaller than --max-images {self.max_images}")
        _check_int("synthetic_size", self.synthetic_size, 1, 1 << 24)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if self.steps is not None and self.epochs is not None:
            raise ValueError("--steps and --epochs are exclusive: give one")
        for name in ("steps", "epochs"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1, 1 << 40)
        if not (isinstance(self.lr, float) and 0.0 < self.lr < 1.0):
            raise ValueError(f"--lr must be a float in (0, 1), got {self.lr!r}")
        for name in ("beta1", "ema_decay"):
            value = getattr(self, name)
            if not (isinstance(value, float) and 0.0 <= value < 1.0):
                raise ValueError(f"{option(name)} must be a float in [0, 1), got {value!r}")
        if not self.out:
            raise ValueError("--out must be a directory path")
        parse_policy(self.augment)  # raises naming --augment

    @property
    def recipe(self) -> dict[str, Any]:
        """What shaped the weights, for the export's provenance: every setting but paths and logging."""
        skip = {"data", "out", "resume", "device", "export", "cache_dir", "tensorboard", "log_every"}
        skip |= {"sample_every", "checkpoint_every", "eval_every", "snapshot_every", "eval_images"}
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    @property
    def model(self) -> DCGANConfig:
        return DCGANConfig(nz=self.nz, ngf=self.ngf, ndf=self.ndf, channels=3, image_size=self.image_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        """Build from untrusted JSON data: unknown keys are errors, missing keys take defaults."""
        if not isinstance(data, dict):
            raise ValueError(f"TrainConfig must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown training config key {unknown[0]!r}")
        if isinstance(data.get("lr"), int):  # JSON writes 1.0 as 1.0, but be lenient with hand-written files
            data = {**data, "lr": float(data["lr"])}
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))


# Fields that may differ between a run and its --resume continuation (they do not change the maths).
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "epochs",
        "resume",
        "device",
        "log_every",
        "sample_every",
        "checkpoint_every",
        "export",
        "cache_dir",
        "tensorboard",
        "compile",
        "bn_recal_samples",
        "eval_every",
        "eval_images",
        "snapshot_every",
    }
)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{option(name)} must be one of {', '.join(choices)}; got {value!r}")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{option(name)} must be an integer in {low}..{high}, got {value!r}")
