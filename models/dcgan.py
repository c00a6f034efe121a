"""DCGAN generator and discriminator (Radford et al. 2016; the PyTorch DCGAN tutorial).

At 64x64 with the default config the layer layout, and so the ``main.N.*`` state_dict keys,
are exactly the tutorial's, which is what lets ``models.convert`` import its ``netG.pth``.
32x32 drops one middle block, 128x128 adds one. No globals: every size comes from the config.
"""

from __future__ import annotations

import torch
from torch import nn

from models.config import DCGANConfig


class Generator(nn.Module):
    """z (N, nz) or (N, nz, 1, 1) -> image (N, channels, S, S) in [-1, 1]."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        width = config.ngf * 2**config.n_blocks  # ngf*8 at 64x64
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.nz, width, 4, 1, 0, bias=False),  # (N, ngf*8, 4, 4)
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(config.n_blocks):  # each doubles H, W and halves channels
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [
            nn.ConvTranspose2d(width, config.channels, 4, 2, 1, bias=False),  # (N, nc, S, S)
            nn.Tanh(),
        ]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]  # (N, nz) -> (N, nz, 1, 1)
        return self.main(z)


class Discriminator(nn.Module):
    """image (N, channels, S, S) -> real/fake logits (N,). No sigmoid: train with BCE-with-logits."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        width = config.ndf
        layers: list[nn.Module] = [  # no BatchNorm on the first layer (paper)
            nn.Conv2d(config.channels, width, 4, 2, 1, bias=False),  # (N, ndf, S/2, S/2)
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(config.n_blocks):  # each halves H, W and doubles channels
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))  # (N, 1, 1, 1)
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()  # (N,)


def init_weights(module: nn.Module) -> None:
    """The paper's init: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0.

    Use as ``model.apply(init_weights)``.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
