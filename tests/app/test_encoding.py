"""The hand-written PNG encoder: lossless, valid (Pillow decodes and verifies every chunk CRC), text
chunks as Pillow would write them, and bytes that are a pure function of pixels and text."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from app.compute import encoding


def decode(data: bytes) -> tuple[np.ndarray, dict[str, str]]:
    Image.open(io.BytesIO(data)).verify()  # signature, chunk order, every CRC
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.format == "PNG"
        return np.asarray(img), dict(img.text)


@pytest.mark.parametrize("shape", [(64, 64, 3), (1, 1, 3), (5, 7, 1), (35, 17, 3), (146, 146, 3)])
def test_png_is_lossless_and_valid(shape: tuple[int, int, int]) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    decoded, text = decode(encoding.png(torch.from_numpy(pixels), {"dcgan:seed": "7"}))
    assert np.array_equal(decoded.reshape(shape), pixels)
    assert text == {"Software": encoding.SOFTWARE, "dcgan:seed": "7"}


def test_png_text_non_latin1_goes_to_itxt() -> None:
    data = encoding.png(np.zeros((2, 2, 3), np.uint8), {"b": "naïve ✓", "a": "plain"})
    assert b"iTXt" in data and b"tEXt" in data
    assert decode(data)[1] == {"Software": encoding.SOFTWARE, "a": "plain", "b": "naïve ✓"}


def test_png_bytes_depend_only_on_pixels_and_text() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    a = encoding.png(pixels, {"x": "1", "y": "2"})
    assert a == encoding.png(pixels.copy(), {"y": "2", "x": "1"})  # key order does not matter
    assert a != encoding.png(pixels, {"x": "1", "y": "3"})


def chunk_types(data: bytes) -> list[bytes]:
    types, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        types.append(data[at + 4 : at + 8])
        at += 12 + length
    return types


@pytest.mark.parametrize("channels", [3, 1])
def test_png_text_comes_right_after_the_header(channels: int) -> None:
    """RGB goes through fpng (its private fdEC chunk kept), greyscale through our ISA-L writer: either way
    IHDR, then the text chunks in key order, then the image data."""
    pixels = np.random.default_rng(channels).integers(0, 256, (64, 64, channels), dtype=np.uint8)
    types = chunk_types(encoding.png(pixels, {"b": "2", "a": "1"}))
    assert types[:4] == [b"IHDR", b"tEXt", b"tEXt", b"tEXt"] and types[-1] == b"IEND"
    assert b"IDAT" in types and set(types[4:-1]) <= {b"fdEC", b"IDAT"}
