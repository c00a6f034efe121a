from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inversion import Encoder, EncoderConfig
from models import DCGANConfig, Export, load_export
from tests.conftest import tiny_export

TINY = DCGANConfig(nz=16, ngf=8, ndf=8, image_size=32)


@pytest.fixture
def export_path(tmp_path: Path) -> Path:
    return tiny_export(tmp_path / "tiny.safetensors", TINY)


@pytest.fixture
def export(export_path: Path) -> Export:
    return load_export(export_path)


def tiny_encoder(seed: int = 0, width: int = 8) -> Encoder:
    """An untrained encoder for TINY (seeded init), in eval mode and frozen, as load_encoder returns one."""
    torch.manual_seed(seed)
    encoder = Encoder(EncoderConfig.for_generator(TINY, width))
    with torch.no_grad():  # non-default BN statistics, so a round trip that dropped them would show
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.9, 1.1)
    return encoder.eval().requires_grad_(False)
