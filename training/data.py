"""Training images: every dataset becomes one uint8 tensor (N, 3, S, S), decoded once.

Folder and CelebA images are resized (short side to S) and centre-cropped as in the PyTorch
tutorial, then cached on disk as a ``.npy`` file keyed by the file list and size, so a second run
(or a resumed one) skips decoding. Unreadable files are skipped and counted, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import photos
from training.config import TrainConfig

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"})
CACHE_VERSION = 2  # 2: the cache also lists the files that decoded
T = TypeVar("T")


@dataclass(frozen=True)
class ImageSet:
    """Decoded training images and what the log and the export's provenance say about them."""

    images: torch.Tensor  # (N, 3, S, S) uint8
    name: str  # dataset name for provenance
    content_hash: str  # sha256 of the decoded pixels
    skipped: int = 0  # files with an image extension that could not be decoded
    ignored: int = 0  # files without an image extension
    files: str = ""  # "first..last" file names of the selection (empty for generated sets)
    names: tuple[str, ...] = ()  # each image's file, relative to the root, in image order (labels align by it)


def load_images(config: TrainConfig) -> ImageSet:
    """The training images ``config`` names (never its held-out ones), decoded via the disk cache.

    Raises ValueError naming the option."""
    return _load(config, holdout=False)


def load_holdout(config: TrainConfig) -> ImageSet:
    """The ``--holdout`` images: the last N of the selection, never trained on (for measuring)."""
    if config.holdout == 0:
        raise ValueError("--holdout is 0: this run holds no images out")
    return _load(config, holdout=True)


def _load(config: TrainConfig, holdout: bool) -> ImageSet:
    if config.dataset in ("synthetic", "lfw-sample"):  # generated in memory, selected like a file list
        if config.dataset == "synthetic":
            images = synthetic_images(config.synthetic_size, config.image_size, config.seed)
        else:
            images = lfw_sample_images(config.image_size)
        train_rows, held_rows = split(list(range(len(images))), config.max_images, config.holdout)
        pixels = images[held_rows if holdout else train_rows]
        return ImageSet(pixels, config.dataset, _hash(pixels))
    assert config.data is not None  # TrainConfig requires --data for folder and celeba
    root = celeba_root(Path(config.data)) if config.dataset == "celeba" else Path(config.data)
    files, ignored = image_files(root)
    train, held = split(files, config.max_images, config.holdout)
    name = config.dataset + ("-holdout" if holdout else "")
    chosen = held if holdout else train
    decoded = decode_files(root, chosen, config.image_size, _cache_dir(config), name)
    span = _span(root, chosen)
    return ImageSet(decoded.images, config.dataset, decoded.content_hash, decoded.skipped, ignored, span, decoded.names)


def split(items: list[T], max_images: int | None, holdout: int) -> tuple[list[T], list[T]]:
    """(train, held out): the first ``max_images`` items (all when None), of which the last ``holdout`` are
    held out. The order is the caller's (file name order), so a subset of CelebA is reproducible."""
    selected = items if max_images is None else items[:max_images]
    if holdout >= len(selected):
        raise ValueError(f"--holdout {holdout} leaves no training images out of the {len(selected)} selected")
    cut = len(selected) - holdout
    return selected[:cut], selected[cut:]


def celeba_root(path: Path) -> Path:
    """The ``img_align_celeba`` folder of a CelebA download or of a torchvision ``CelebA`` root."""
    for candidate in (path, path / "img_align_celeba", path / "celeba" / "img_align_celeba"):
        if candidate.name == "img_align_celeba" and candidate.is_dir():
            return candidate
    raise ValueError(f"--data {path}: no img_align_celeba/ folder found (expected the CelebA layout)")


def image_files(root: Path) -> tuple[list[Path], int]:
    """Every file under ``root`` (recursively) with an image extension, in path order, and how many
    other files were ignored."""
    if not root.is_dir():
        raise ValueError(f"--data {root}: not a directory")
    all_files = sorted(p for p in root.rglob("*") if p.is_file())
    files = [p for p in all_files if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise ValueError(f"--data {root}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) found")
    return files, len(all_files) - len(files)


def folder_images(root: Path, size: int, cache_dir: Path, name: str = "folder") -> ImageSet:
    """Every image under ``root`` (recursively), decoded to (N, 3, size, size) uint8 via the disk cache."""
    files, ignored = image_files(root)
    images = decode_files(root, files, size, cache_dir, name)
    return ImageSet(images.images, name, images.content_hash, images.skipped, ignored, _span(root, files), images.names)


def decode_files(root: Path, files: list[Path], size: int, cache_dir: Path, name: str) -> ImageSet:
    """``files`` decoded to (N, 3, size, size) uint8, in order, bad files skipped and counted; cached on disk
    under a key of the file list and size, so a second run reads the cache instead of decoding."""
    key = _cache_key(root, files, size)
    stem = cache_dir / f"{name}-{size}-{key[:20]}"
    if not (stem.with_suffix(".json").is_file() and stem.with_suffix(".npy").is_file()):
        _build_cache(root, files, size, stem)
    meta = json.loads(stem.with_suffix(".json").read_text())
    pixels = np.load(stem.with_suffix(".npy"), mmap_mode="r")[: meta["count"]]  # (N, 3, S, S)
    if meta["count"] == 0:
        raise ValueError(f"--data {root}: none of the {len(files)} image files could be decoded")
    images = torch.from_numpy(np.array(pixels))  # read into (writable) memory
    return ImageSet(images, name, meta["content_hash"], meta["skipped"], names=tuple(meta["names"]))


def _span(root: Path, files: list[Path]) -> str:
    """``first..last`` file names of a selection, as provenance records it."""
    return f"{files[0].relative_to(root)}..{files[-1].relative_to(root)}" if files else ""


def _cache_key(root: Path, files: list[Path], size: int) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION} size={size}\n".encode())
    for p in files:
        h.update(f"{p.relative_to(root)}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()


def _build_cache(root: Path, files: list[Path], size: int, stem: Path) -> None:
    """Decode in threads (PIL releases the GIL) straight into a memory-mapped .npy; write JSON last."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    writer = f"{socket.gethostname()}.{os.getpid()}"  # nodes sharing --cache-dir may decode at once
    tmp = stem.parent / f".{stem.name}.{writer}.npy.tmp"
    pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), 3, size, size))
    count, names = 0, []
    progress = tqdm(total=len(files), desc="decoding images", unit="img", disable=len(files) < 1000)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool, progress:
        for path, image in zip(files, pool.map(lambda p: decode_image(p, size), files), strict=True):
            progress.update()
            if image is not None:  # (3, S, S); failures compact out, valid rows stay in file order
                pixels[count] = image
                names.append(str(path.relative_to(root)))
                count += 1
    pixels.flush()
    content_hash = hashlib.sha256(np.ascontiguousarray(pixels[:count]).tobytes()).hexdigest()
    del pixels
    os.replace(tmp, stem.with_suffix(".npy"))
    skipped = len(files) - count
    meta = {"count": count, "skipped": skipped, "content_hash": content_hash, "version": CACHE_VERSION, "names": names}
    tmp_meta = stem.parent / f".{stem.name}.{writer}.json.tmp"
    tmp_meta.write_text(json.dumps(meta))
    os.replace(tmp_meta, stem.with_suffix(".json"))  # the .json marks the cache complete


def decode_image(path: Path, size: int) -> np.ndarray | None:
    """One file -> (3, size, size) uint8 RGB, resized and centre-cropped; None if it cannot be decoded."""
    try:
        with Image.open(path) as img:  # reads the header only
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and img.width * img.height > limit:  # ~89 MP: a bomb or a mistake, not a face photo
                return None
            img.load()  # decode now: truncated files fail here, not later
            return resize_center_crop(img.convert("RGB"), size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning):
        return None  # OSError: unidentified or truncated; Warning: PIL's warnings (bomb, truncated TIFF) under -W error


def resize_center_crop(img: Image.Image, size: int) -> np.ndarray:
    """torchvision's ``Resize(size)`` + ``CenterCrop(size)`` on a PIL image -> (3, size, size) uint8. The framing
    lives in ``photos`` so that an uploaded photo with ``align=false`` is framed exactly as training images are."""
    return photos.resize_center_crop(img, size).transpose(2, 0, 1).copy()  # (H, W, 3) -> (3, H, W)


def lfw_sample_images(size: int) -> torch.Tensor:
    """scikit-image's 100 LFW faces (25x25 grey), upscaled to (100, 3, size, size) uint8."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise ValueError("--dataset lfw-sample needs scikit-image: pip install 'dcgan-faces[train]'") from None
    faces = lfw_subset()[:100]  # (200, 25, 25) in [0, 1]: the first 100 are faces, the rest are not
    out = []
    for face in faces:
        img = Image.fromarray(np.round(face * 255).astype(np.uint8), mode="L")
        out.append(np.asarray(img.resize((size, size), Image.Resampling.BICUBIC)))
    grey = torch.from_numpy(np.stack(out))  # (100, size, size)
    return grey[:, None].expand(-1, 3, -1, -1).contiguous()


def synthetic_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Procedural "faces" (a coloured ellipse with two dark eyes on a gradient) -> (n, 3, size, size) uint8.

    Deterministic in (n, size, seed); cheap enough for tests and benchmarks.
    """
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")  # (S, S)
    p = torch.rand(n, 8, generator=g)  # per-image shape parameters in [0, 1)
    colour = torch.rand(n, 3, 2, generator=g)  # face and background colours
    cx, cy = (p[:, 0] - 0.5) * 0.4, (p[:, 1] - 0.5) * 0.4
    rx, ry = 0.45 + 0.25 * p[:, 2], 0.6 + 0.25 * p[:, 3]
    face = ((xs - cx[:, None, None]) / rx[:, None, None]) ** 2 + ((ys - cy[:, None, None]) / ry[:, None, None]) ** 2
    face_mask = (face < 1).float()  # (n, S, S)
    eye_dx, eye_y = 0.15 + 0.15 * p[:, 4], cy - 0.2 * ry
    eyes = torch.zeros_like(face_mask)
    for sign in (-1, 1):
        ex = cx + sign * eye_dx
        eyes += ((xs - ex[:, None, None]) ** 2 + (ys - eye_y[:, None, None]) ** 2) < 0.01 + 0.01 * p[:, 5, None, None]
    background = colour[:, :, 1, None, None] * (0.6 + 0.4 * ys)  # (n, 3, S, S) vertical gradient
    image = background * (1 - face_mask[:, None]) + colour[:, :, 0, None, None] * face_mask[:, None]
    image = image * (1 - 0.8 * eyes.clamp(max=1)[:, None])
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def _cache_dir(config: TrainConfig) -> Path:
    if config.cache_dir:
        return Path(config.cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dcgan-faces"


def _hash(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()
