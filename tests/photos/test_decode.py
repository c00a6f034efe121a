"""read_upload: every bad upload the issue lists, built in memory, gets an UploadError with its reason; every
accepted mode comes out RGB 8-bit; EXIF orientation is honoured; no byte string raises anything else."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from photos import UploadError, read_upload

RNG = np.random.default_rng(0)
PHOTO = Image.fromarray(RNG.integers(0, 256, (48, 40, 3), dtype=np.uint8))  # 40 wide, 48 high


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def reason(data: bytes, **kwargs: int) -> str:
    with pytest.raises(UploadError) as caught:
        read_upload(data, **kwargs)
    assert str(caught.value), "the message names the problem"
    return caught.value.reason


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header declares ``width`` x ``height`` (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


# --- refused ---------------------------------------------------------------------------------------------


def test_zero_bytes() -> None:
    assert reason(b"") == "empty"


@pytest.mark.parametrize("data", [b"hello, this is text\n", b"<html></html>", b"%PDF-1.7\n", b"\x00" * 100])
def test_text_and_other_files(data: bytes) -> None:
    assert reason(data) == "not_an_image"


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM"])
def test_formats_outside_the_four_are_not_images(fmt: str) -> None:
    assert reason(encode(PHOTO, fmt)) == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_truncated_files(fmt: str) -> None:
    data = encode(PHOTO, fmt)
    assert reason(data[: len(data) // 2]) == "truncated"


def test_corrupt_png_data_stream() -> None:
    data = bytearray(encode(PHOTO, "PNG"))
    data[len(data) // 2] ^= 0xFF  # inside IDAT: the CRC and the deflate stream break
    assert reason(bytes(data)) == "truncated"


@pytest.mark.parametrize("side", [30_000, 100_000])
def test_decompression_bomb_is_refused_from_its_header(side: int) -> None:
    assert reason(png_declaring(side, side)) == "too_many_pixels"  # over Pillow's own limits too


def test_pixel_cap_below_pillows_limit() -> None:
    assert reason(png_declaring(5000, 5000)) == "too_many_pixels"  # 25 MP: over 16 MP, under Pillow's 89 MP
    assert reason(encode(PHOTO, "PNG"), max_pixels=40 * 48 - 1) == "too_many_pixels"
    assert read_upload(encode(PHOTO, "PNG"), max_pixels=40 * 48).size == (40, 48)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images_are_refused(fmt: str) -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue", "green")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    assert reason(data) == "animated"


# --- accepted, converted to RGB --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_each_format_decodes_to_rgb(fmt: str) -> None:
    image = read_upload(encode(PHOTO, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert image.mode == "RGB" and image.size == (40, 48)
    if fmt in ("PNG", "WEBP"):  # lossless: the pixels come back as they were
        assert (np.asarray(image) == np.asarray(PHOTO)).all()


def test_single_frame_gif_is_a_still() -> None:
    assert read_upload(encode(PHOTO.convert("P"), "GIF")).mode == "RGB"


def test_greyscale_and_bilevel() -> None:
    grey = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1)))  # (8, 64) L
    out = np.asarray(read_upload(encode(grey, "PNG")))
    assert out.shape == (8, 64, 3) and (out == np.asarray(grey)[..., None]).all()
    bilevel = read_upload(encode(grey.convert("1"), "PNG"))
    assert bilevel.mode == "RGB" and set(np.unique(np.asarray(bilevel))) <= {0, 255}


def test_sixteen_bit_png_keeps_its_range() -> None:
    ramp = np.array([[0, 256, 32896, 65535]], dtype=np.uint16)  # Pillow's convert("L") would clip 3 of 4 to 255
    image = read_upload(encode(Image.fromarray(ramp), "PNG"))
    assert image.mode == "RGB"
    assert np.asarray(image)[0, :, 0].tolist() == [0, 0, 128, 255]


def test_palette_png_with_and_without_transparency() -> None:
    palette = PHOTO.convert("P")
    assert np.asarray(read_upload(encode(palette, "PNG"))).shape == (48, 40, 3)
    transparent = palette.copy()
    index = transparent.getpixel((0, 0))
    transparent.info["transparency"] = index
    out = np.asarray(read_upload(encode(transparent, "PNG", transparency=index)))
    assert out[0, 0].tolist() == [255, 255, 255], "transparent palette entries composite on white"


def test_rgba_composites_on_white() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)  # invisible black -> white
    rgba[0, 1] = (0, 0, 0, 255)  # opaque black stays black
    rgba[0, 2] = (0, 0, 0, 128)  # half -> mid grey
    out = np.asarray(read_upload(encode(Image.fromarray(rgba, "RGBA"), "PNG")))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [0, 0, 0]
    assert 120 <= out[0, 2, 0] <= 135
    la = np.asarray(read_upload(encode(Image.fromarray(rgba, "RGBA").convert("LA"), "PNG")))
    assert la[0, 0].tolist() == [255, 255, 255]


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    image = read_upload(encode(cmyk, "JPEG", quality=95))
    r, g, b = np.asarray(image)[8, 8].tolist()
    assert image.mode == "RGB" and r > 200 and g < 60 and b < 60


@pytest.mark.parametrize(
    ("orientation", "corner"), [(1, "top-left"), (6, "top-right"), (8, "bottom-left"), (3, "bottom-right")]
)
def test_exif_orientation_is_honoured(orientation: int, corner: str) -> None:
    """A 48-wide, 40-high photo stored sideways: orientation 6 (display turned 90 degrees clockwise) and 8
    (anticlockwise) make it 40x48 upright, 3 turns it over. The stored top-left marker lands in ``corner``."""
    stored = Image.new("RGB", (48, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 8, 8))  # red marker at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = read_upload(encode(stored, "JPEG", exif=exif, quality=95))
    assert image.size == ((48, 40) if orientation in (1, 3) else (40, 48))
    w, h = image.size
    x = 3 if "left" in corner else w - 4
    y = 3 if "top" in corner else h - 4
    red = np.asarray(image)[y, x]
    assert red[0] > 200 and red[2] < 60, (corner, red)


def test_broken_exif_block_is_ignored() -> None:
    data = encode(PHOTO, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")  # IFD count runs off the end
    assert read_upload(data).size == (40, 48)


# --- no byte string raises anything but UploadError ------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(UploadError):  # a refusal is an answer; any other exception fails the test
        assert read_upload(data).mode == "RGB"


@settings(max_examples=150, deadline=None)
@given(
    fmt=st.sampled_from(["JPEG", "PNG", "WEBP", "GIF"]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, 10**6),
)
def test_damaged_images(fmt: str, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(encode(PHOTO, fmt))
    for at, value in edits:
        data[at % len(data)] = value
    with contextlib.suppress(UploadError):
        assert read_upload(bytes(data[: max(1, cut % (len(data) + 1))])).mode == "RGB"
