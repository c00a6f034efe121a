"""Bring your own face: an encoder (image -> latent) with its companion file, and the refinement that makes
the latent faithful. Shared by ``app`` and ``training``; imports torch, safetensors, pytorch_msssim and
``models`` only."""

from inversion.encoder import Encoder, EncoderConfig, EncoderInfo, default_path, load_encoder, save_encoder
from inversion.fidelity import from_uint8, psnr, ssim
from inversion.refine import DEFAULT_STARTS, DEFAULT_STEPS, MODES, InversionResult, Objective, invert, refine

__all__ = [
    "DEFAULT_STARTS",
    "DEFAULT_STEPS",
    "MODES",
    "Encoder",
    "EncoderConfig",
    "EncoderInfo",
    "InversionResult",
    "Objective",
    "default_path",
    "from_uint8",
    "invert",
    "load_encoder",
    "psnr",
    "refine",
    "save_encoder",
    "ssim",
]
