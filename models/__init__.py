"""DCGAN networks, the generator export format, latent helpers and latent directions. Imports torch only."""

from models.checkpoint import (
    Export,
    ExportInfo,
    Provenance,
    load_export,
    load_generator,
    read_export_info,
    save_generator,
)
from models.config import IMAGE_SIZES, DCGANConfig
from models.dcgan import Discriminator, Generator, init_weights
from models.directions import Direction
from models.header import CheckpointError
from models.latent import SEED_MAX, arithmetic, latents_for_seeds, lerp, slerp

__all__ = [
    "IMAGE_SIZES",
    "SEED_MAX",
    "CheckpointError",
    "DCGANConfig",
    "Direction",
    "Discriminator",
    "Export",
    "ExportInfo",
    "Generator",
    "Provenance",
    "arithmetic",
    "init_weights",
    "latents_for_seeds",
    "lerp",
    "load_export",
    "load_generator",
    "read_export_info",
    "save_generator",
    "slerp",
]
