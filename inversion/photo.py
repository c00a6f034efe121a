"""A photo's bytes -> its aligned crop, latent and reconstruction: the one pipeline the service and the CLI run.

``read_upload`` (untrusted bytes -> RGB, or ``UploadError``) -> ``align_face`` (the CelebA eye template,
or ``NoFaceError``) -> ``invert`` (encoder, then refinement in mode ``faithful``) -> the latent's face drawn
by ``models.sampling.render``, exactly the pixels ``/generate`` draws for that latent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from inversion.encoder import Encoder
from inversion.refine import Mode, invert
from models import Generator
from models.sampling import render
from photos.align import Aligned, align_face
from photos.decode import read_upload

LATENT_ABS_MAX = 100.0  # the service refuses latent components beyond this (app.schemas); inversions stay far below
SEED = 0  # the perturbed starts' seed: the same photo and settings give the same latent


@dataclass(frozen=True)
class PhotoInversion:
    aligned: Aligned  # crop (S, S, 3) uint8, face box, eyes, faces found, note
    z: torch.Tensor  # (nz,) float32
    reconstruction: np.ndarray  # (S, S, 3) uint8: render(G, z)
    psnr: float  # dB, reconstruction vs the crop
    ssim: float
    steps: int
    seconds: float  # the whole pipeline


def crop_tensor(crop: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 -> (1, 3, S, S) float32 in [-1, 1], the generator's range."""
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def invert_photo(
    generator: Generator,
    encoder: Encoder,
    data: bytes,
    *,
    mode: Mode,
    steps: int,
    align: bool = True,
    max_pixels: int = 40_000_000,
) -> PhotoInversion:
    """Raises ``photos.decode.UploadError`` (not a usable image) or ``photos.align.NoFaceError``."""
    start = time.perf_counter()
    size = generator.config.image_size
    aligned = align_face(read_upload(data, max_pixels=max_pixels), size, align=align)
    result = invert(generator, encoder, crop_tensor(aligned.crop), mode=mode, steps=steps, seed=SEED)
    z = result.z[0].detach().float().cpu().clamp(-LATENT_ABS_MAX, LATENT_ABS_MAX)  # (nz,)
    reconstruction = render(generator, z[None])[0].numpy()  # (S, S, 3) uint8
    return PhotoInversion(
        aligned, z, reconstruction, float(result.psnr[0]), float(result.ssim[0]), int(result.steps),
        time.perf_counter() - start,
    )  # fmt: skip
