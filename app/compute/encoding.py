"""uint8 image tensors -> PNG / GIF / WebP bytes, with provenance, deterministically.

Called off the event loop, in the forward's worker right after the forward (``app.compute.outputs``). Bytes
are a pure function of the pixels and the text (for given fpng and ISA-L builds): no timestamps,
fixed compression settings, text chunks in a fixed (sorted) order.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import fpng
import numpy as np
import torch
from isal import isal_zlib
from PIL import Image

GRID_PAD = 2  # pixels between tiles
SOFTWARE = "dcgan-faces"
PNG_DEFLATE_LEVEL = 1  # greyscale: ISA-L level 1, 4.5x faster than zlib level 1 on a face, and 2% smaller
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_END = 8 + 12 + 13  # the signature, then IHDR's length, type, 13 bytes of data and CRC
_PNG_COLOUR = {1: 0, 3: 2}  # channels -> PNG colour type (greyscale, truecolour)


def _pil(image: torch.Tensor | np.ndarray) -> Image.Image:
    """(H, W, C) uint8 with C in (1, 3) -> a PIL image (L or RGB)."""
    array = image.numpy() if isinstance(image, torch.Tensor) else image
    if array.shape[-1] == 1:
        return Image.fromarray(np.ascontiguousarray(array[..., 0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def png(image: torch.Tensor | np.ndarray, text: Mapping[str, str]) -> bytes:
    """One image (H, W, C) uint8, C in (1, 3), as PNG with ``text`` as tEXt/iTXt chunks (sorted keys).

    RGB goes through fpng (a one-pass PNG writer with its own deflate), our text chunks spliced in
    right after its IHDR. On a demo face that costs about 2.5x less CPU than our ISA-L writer and
    ~25x less than Pillow's level 6, for files 2% larger than the ISA-L writer's, 15% larger than
    Pillow's (``python -m bench.png``, docs/benchmarks/README.md). fpng has no greyscale, so that
    goes through the small writer below. Lossless either way.
    """
    array = image.numpy() if isinstance(image, torch.Tensor) else image
    h, w, c = array.shape
    texts = b"".join(_text_chunk(key, value) for key, value in [("Software", SOFTWARE), *sorted(text.items())])
    if c == 3:
        data = fpng.from_ndarray(np.ascontiguousarray(array))  # signature, IHDR, fpng's fdEC, IDAT, IEND
        assert data[12:16] == b"IHDR", "fpng wrote no IHDR first"
        return data[:_IHDR_END] + texts + data[_IHDR_END:]
    header = struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOUR[c], 0, 0, 0)  # 8-bit, deflate, no interlace
    idat = _chunk(b"IDAT", isal_zlib.compress(_sub_filtered(array), PNG_DEFLATE_LEVEL))
    return b"".join([_PNG_SIGNATURE, _chunk(b"IHDR", header), texts, idat, _chunk(b"IEND", b"")])


def _sub_filtered(array: np.ndarray) -> bytes:
    """(H, W, C) uint8 -> PNG scanlines, each ``1`` (filter type Sub) + every byte minus the one a pixel left."""
    h, w, c = array.shape
    rows = np.ascontiguousarray(array).reshape(h, w * c)
    out = np.empty((h, w * c + 1), dtype=np.uint8)
    out[:, 0] = 1
    out[:, 1 : c + 1] = rows[:, :c]  # the first pixel has nothing on its left
    np.subtract(rows[:, c:], rows[:, :-c], out=out[:, c + 1 :])  # uint8 arithmetic wraps mod 256, as PNG wants
    return out.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _text_chunk(key: str, value: str) -> bytes:
    """tEXt when the value is Latin-1 (as Pillow's ``PngInfo.add_text``), else uncompressed UTF-8 iTXt."""
    try:
        return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))


Pixels = torch.Tensor | np.ndarray


def tile(rows: Sequence[Sequence[Pixels | None]], pad: int = GRID_PAD) -> np.ndarray:
    """Lay out images (H, W, C) row by row; ``None`` leaves a cell blank. Returns (H', W', C) uint8."""
    first = next(image for row in rows for image in row if image is not None)
    h, w, c = first.shape
    cols = max(len(row) for row in rows)
    canvas = np.zeros((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for r, row in enumerate(rows):
        for col, image in enumerate(row):
            if image is not None:
                y, x = pad + r * (h + pad), pad + col * (w + pad)
                canvas[y : y + h, x : x + w] = image.numpy() if isinstance(image, torch.Tensor) else image
    return canvas


def grid(images: Pixels, cols: int | None = None, pad: int = GRID_PAD) -> np.ndarray:
    """(N, H, W, C) -> a near-square grid (or ``cols`` wide), row-major in the order given: what ``tile``
    lays out, in at most two copies (the full rows, then the last) instead of one per image."""
    array = images.numpy() if isinstance(images, torch.Tensor) else images  # (N, H, W, C)
    n, h, w, c = array.shape
    cols = min(cols or math.isqrt(n - 1) + 1, n)  # ceil(sqrt(n)); never wider than the images
    rows, full = -(-n // cols), n // cols
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    if n == 1:  # the n=1 request, the commonest: one copy, no views
        canvas[pad : pad + h, pad : pad + w] = array[0]
        return canvas
    cells = canvas[pad:, pad:].reshape(rows, h + pad, cols, w + pad, c)[:, :h, :, :w]  # (rows, H, cols, W, C) view
    cells[:full] = array[: full * cols].reshape(full, cols, h, w, c).transpose(0, 2, 1, 3, 4)
    if full < rows:  # the last row is short
        cells[full, :, : n - full * cols] = array[full * cols :].transpose(1, 0, 2, 3)
    return canvas


# Pillow's per-format options: GIF unoptimised (byte-stable), WebP lossless at a fixed effort
_ANIMATION_OPTIONS: dict[str, dict[str, Any]] = {
    "gif": {"format": "GIF", "optimize": False},
    "webp": {"format": "WEBP", "lossless": True, "method": 4},
}


def animation(frames: torch.Tensor, fmt: str, frame_ms: int, comment: str) -> bytes:
    """(T, H, W, C) frames -> an animated GIF or lossless WebP that plays forward then back, forever."""
    order = list(range(frames.shape[0])) + list(range(frames.shape[0] - 2, 0, -1))  # ping-pong, no repeats
    images = [_pil(frames[i]) for i in order]
    if fmt not in _ANIMATION_OPTIONS:
        raise ValueError(f"unknown animation format {fmt!r}")
    options: dict[str, Any] = {"comment": comment.encode()} if fmt == "gif" else {}  # WebP has no comment field
    buf = io.BytesIO()
    images[0].save(
        buf, save_all=True, append_images=images[1:], duration=frame_ms, loop=0, **_ANIMATION_OPTIONS[fmt], **options
    )
    return buf.getvalue()
