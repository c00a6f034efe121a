"""DCGAN networks, the generator export format and latent helpers. Imports torch only."""

from models.checkpoint import CheckpointError, ExportInfo, Provenance, load_generator, read_export_info, save_generator
from models.config import IMAGE_SIZES, DCGANConfig
from models.dcgan import Discriminator, Generator, init_weights
from models.latent import SEED_MAX, arithmetic, latents_for_seeds, lerp, slerp

__all__ = [
    "IMAGE_SIZES",
    "SEED_MAX",
    "CheckpointError",
    "DCGANConfig",
    "Discriminator",
    "ExportInfo",
    "Generator",
    "Provenance",
    "arithmetic",
    "init_weights",
    "latents_for_seeds",
    "lerp",
    "load_generator",
    "read_export_info",
    "save_generator",
    "slerp",
]
