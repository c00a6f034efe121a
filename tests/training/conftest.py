from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from models import DCGANConfig
from tests.conftest import tiny_export
from training.config import TrainConfig

TINY: dict[str, Any] = {
    "dataset": "synthetic",
    "synthetic_size": 32,
    "image_size": 32,
    "nz": 16,
    "ngf": 8,
    "ndf": 8,
    "batch_size": 8,
    "steps": 4,
    "seed": 3,
    "device": "cpu",
    "log_every": 1,
    "sample_every": 1000,
    "checkpoint_every": 1000,
    "bn_recal_samples": 64,
    "tensorboard": False,
}


@pytest.fixture
def tiny_config(tmp_path: Path) -> Callable[..., TrainConfig]:
    """A seconds-long CPU config writing under tmp_path; keyword overrides replace fields."""

    def make(**overrides: Any) -> TrainConfig:
        fields = {**TINY, "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"), **overrides}
        return TrainConfig(**fields)

    return make


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 30), fmt: str | None = None) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A random (paper-init) 32x32 colour generator export."""
    return tiny_export(tmp_path / "tiny.safetensors", DCGANConfig(nz=16, ngf=8, ndf=8, image_size=32))
