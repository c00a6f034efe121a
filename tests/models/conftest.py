from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models import DCGANConfig, Generator, Provenance, init_weights, save_generator

TINY = DCGANConfig(nz=16, ngf=8, ndf=8, image_size=32)


def tiny_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    generator = Generator(TINY)
    generator.apply(init_weights)
    return generator.eval()


@pytest.fixture
def export_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    save_generator(tiny_generator(), path, Provenance(dataset="synthetic", steps=7))
    return path
