"""uint8 image tensors -> PNG / GIF / WebP bytes, with provenance, deterministically.

Encoding runs in a thread pool (Pillow releases the GIL while compressing), never on the event
loop. Bytes are a pure function of the pixels and the text: no timestamps, fixed compression
settings, text chunks in a fixed (sorted) order.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

P = ParamSpec("P")
T = TypeVar("T")
GRID_PAD = 2  # pixels between tiles
SOFTWARE = "dcgan-faces"


class Encoder:
    """A small thread pool for CPU-bound image encoding."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="encoder")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _pil(image: torch.Tensor | np.ndarray) -> Image.Image:
    """(H, W, C) uint8 with C in (1, 3) -> a PIL image (L or RGB)."""
    array = image.numpy() if isinstance(image, torch.Tensor) else image
    if array.shape[-1] == 1:
        return Image.fromarray(np.ascontiguousarray(array[..., 0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def png(image: torch.Tensor | np.ndarray, text: Mapping[str, str]) -> bytes:
    """One image as PNG with ``text`` as tEXt/iTXt chunks (sorted keys, so the bytes are reproducible)."""
    info = PngInfo()
    info.add_text("Software", SOFTWARE)
    for key in sorted(text):
        info.add_text(key, text[key])
    buf = io.BytesIO()
    _pil(image).save(buf, format="PNG", pnginfo=info, compress_level=6)
    return buf.getvalue()


def tile(rows: Sequence[Sequence[torch.Tensor | None]], pad: int = GRID_PAD) -> np.ndarray:
    """Lay out images (H, W, C) row by row; ``None`` leaves a cell blank. Returns (H', W', C) uint8."""
    first = next(image for row in rows for image in row if image is not None)
    h, w, c = first.shape
    cols = max(len(row) for row in rows)
    canvas = np.zeros((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for r, row in enumerate(rows):
        for col, image in enumerate(row):
            if image is not None:
                y, x = pad + r * (h + pad), pad + col * (w + pad)
                canvas[y : y + h, x : x + w] = image.numpy()
    return canvas


def grid(images: torch.Tensor, cols: int | None = None) -> np.ndarray:
    """(N, H, W, C) -> a near-square grid (or ``cols`` wide), row-major in the order given."""
    n = images.shape[0]
    cols = cols or max(1, int(np.ceil(np.sqrt(n))))
    return tile([list(images[i : i + cols]) for i in range(0, n, cols)])


def animation(frames: torch.Tensor, fmt: str, frame_ms: int, comment: str) -> bytes:
    """(T, H, W, C) frames -> an animated GIF or lossless WebP that plays forward then back, forever."""
    order = list(range(frames.shape[0])) + list(range(frames.shape[0] - 2, 0, -1))  # ping-pong, no repeats
    images = [_pil(frames[i]) for i in order]
    buf = io.BytesIO()
    if fmt == "gif":
        images[0].save(
            buf,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=frame_ms,
            loop=0,
            comment=comment.encode(),
            optimize=False,
        )
    elif fmt == "webp":
        images[0].save(
            buf,
            format="WEBP",
            save_all=True,
            append_images=images[1:],
            duration=frame_ms,
            loop=0,
            lossless=True,
            method=4,
        )
    else:
        raise ValueError(f"unknown animation format {fmt!r}")
    return buf.getvalue()
