"""Every kind of bad (or merely unusual) upload to POST /invert, and what the service answers: a 4xx
naming the problem, never a 500; unusual but usable photos are converted and inverted (200).

The table of these cases is docs/inversion/uploads.md; this test checks that it is current.
Regenerate it with: UPDATE_DOCS=1 .venv/bin/python -m pytest -q tests/app/test_invert_uploads.py
"""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.runtime.settings import Settings
from tests.app.conftest import Served, serve

pytestmark = pytest.mark.anyio
DOC = Path(__file__).resolve().parents[2] / "docs" / "inversion" / "uploads.md"
CAP = 256 * 1024  # DCGAN_INVERT_MAX_UPLOAD_BYTES for these cases
MAX_PIXELS = 4_000_000  # DCGAN_INVERT_MAX_PIXELS for these cases


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _gradient(mode: str = "RGB", size: tuple[int, int] = (48, 40)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :].repeat(size[1], 0)
    rgb = np.stack([x, x[::-1, ::-1], np.full_like(x, 90)], axis=-1)
    return Image.fromarray(rgb).convert(mode) if mode != "RGB" else Image.fromarray(rgb)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb() -> bytes:
    """A 70-byte PNG declaring a 100,000 x 100,000 canvas (10 gigapixels)."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    sig = b"\x89PNG\r\n\x1a\n"
    return sig + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _animated(fmt: str) -> bytes:
    frames = [_gradient(), _gradient().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _sixteen_bit() -> bytes:
    grey = (np.linspace(0, 65535, 48 * 40).reshape(40, 48)).astype(np.uint16)
    image = Image.fromarray(grey)  # mode I;16
    assert image.mode == "I;16", image.mode
    return _save(image, "PNG")


def _exif_rotated() -> bytes:
    """Stored 48 wide x 24 high, left half red, right half blue, EXIF orientation 6 (shown rotated 90 deg
    clockwise: 24 wide x 48 high, red on top)."""
    pixels = np.zeros((24, 48, 3), dtype=np.uint8)
    pixels[:, :24] = (255, 0, 0)
    pixels[:, 24:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())


def _corrupt_jpeg() -> bytes:
    data = bytearray(_save(_gradient(), "JPEG", quality=90))
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff\xd9" * 32  # end-of-image markers in the entropy data
    return bytes(data)


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0xFF
    return bytes(out)


@dataclass(frozen=True)
class Case:
    name: str  # the input, in words (the table's first column)
    data: Callable[[], bytes]
    status: int
    words: str  # in the message (422: the detail's msg)
    align: bool = False  # false: a synthetic crop, no face detection; true for the no-face case


JPEG = _save(_gradient(), "JPEG", quality=90)
PNG = _save(_gradient(), "PNG")
WEBP = _save(_gradient(), "WEBP", quality=90)
CASES = [
    Case("zero bytes", lambda: b"", 422, "empty"),
    Case("a text file", lambda: b"Hello, this is not a photo.\n" * 4, 422, "not a JPEG, PNG, WebP or GIF"),
    Case("a BMP (not an accepted format)", lambda: _save(_gradient(), "BMP"), 422, "not a JPEG, PNG, WebP or GIF"),
    Case("JPEG cut in half", lambda: JPEG[: len(JPEG) // 2], 422, "truncated"),
    Case("JPEG with garbage in its data", _corrupt_jpeg, 422, "corrupt"),
    Case("PNG with a flipped byte in its pixel data (CRC fails)", lambda: _flip(PNG, -20), 422, "corrupt"),
    Case("WebP with a flipped byte in its pixel data", lambda: _flip(WEBP, len(WEBP) // 2), 200, ""),  # no checksum
    Case("PNG cut in half", lambda: PNG[: len(PNG) // 2], 422, "truncated"),
    Case("PNG cut after 40 bytes (inside its header)", lambda: PNG[:40], 422, "not a JPEG, PNG"),
    Case("WebP cut in half", lambda: WEBP[: len(WEBP) // 2], 422, "truncated"),
    Case("decompression bomb: 70-byte PNG declaring 100,000 x 100,000", _bomb, 422, "pixels"),
    Case(f"body over the {CAP:,}-byte cap", lambda: b"\xff" * (CAP + 1), 413, "cap"),
    Case("animated GIF (2 frames)", lambda: _animated("GIF"), 422, "animated"),
    Case("animated PNG (APNG, 2 frames)", lambda: _animated("PNG"), 422, "animated"),
    Case("animated WebP (2 frames)", lambda: _animated("WEBP"), 422, "animated"),
    Case("CMYK JPEG", lambda: _save(_gradient("CMYK"), "JPEG"), 200, ""),
    Case("16-bit greyscale PNG", _sixteen_bit, 200, ""),
    Case("palette PNG", lambda: _save(_gradient("P"), "PNG"), 200, ""),
    Case("palette PNG with a transparent colour", lambda: _save(_gradient("P"), "PNG", transparency=0), 200, ""),
    Case("RGBA PNG", lambda: _save(_gradient("RGBA"), "PNG"), 200, ""),
    Case("greyscale JPEG", lambda: _save(_gradient("L"), "JPEG"), 200, ""),
    Case("JPEG with EXIF orientation 6 (rotated)", _exif_rotated, 200, ""),
    Case("a still GIF", lambda: _save(_gradient("P"), "GIF"), 200, ""),
    Case("a photo without a face (align=true)", lambda: PNG, 422, "face", align=True),
]


@pytest.fixture(scope="module")
def table() -> dict[str, str]:
    return {}


@pytest.fixture
async def small(invert_settings: Callable[..., Settings]) -> AsyncIterator[Served]:
    settings = invert_settings(invert_max_upload_bytes=CAP, invert_max_pixels=MAX_PIXELS)
    async with serve(settings) as s:
        yield s


def _message(body: object) -> str:
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):
            return "; ".join(f"{d['type']}: {d['msg']}" for d in detail)
        if detail is not None:
            return str(detail)
    return ""


async def test_every_upload_gets_its_documented_answer(small: Served) -> None:
    rows = []
    for case in CASES:
        query = {"mode": "fast", "align": "true" if case.align else "false"}
        r = await small.http.post("/invert", params=query, files={"image": ("upload", case.data())})
        assert r.status_code == case.status, (case.name, r.status_code, r.text)
        message = _message(r.json())
        assert case.words in message, (case.name, message)
        if r.status_code == 200:
            out = r.json()
            assert len(out["latent"]) == small.service.info.config.nz
            message = "converted to 8-bit RGB and inverted" if case.words == "" else message
            if "EXIF" in case.name:  # the orientation was honoured: red on top, blue below
                crop = np.asarray(Image.open(io.BytesIO(base64.b64decode(out["aligned"]))))
                assert crop[2, 16, 0] > 200 > crop[2, 16, 2] and crop[-3, 16, 2] > 200 > crop[-3, 16, 0], crop[::8, 16]
                message += "; the crop is the rotated photo (red above blue)"
        rows.append(f"| {case.name} | {r.status_code} | {message.replace('|', '/')} |")
    assert small.metric("dcgan_inversions_total", mode="fast", outcome="failed") == 0
    doc = _document(rows)
    if os.environ.get("UPDATE_DOCS"):
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(doc)
    assert DOC.is_file() and DOC.read_text() == doc, f"{DOC} is stale: run UPDATE_DOCS=1 pytest {__file__}"


def _document(rows: list[str]) -> str:
    return "\n".join(
        [
            "# POST /invert: what each kind of upload gets",
            "",
            "Generated by `tests/app/test_invert_uploads.py` (`UPDATE_DOCS=1` rewrites it; the test fails when it is",
            f"stale), against the tiny test model with `DCGAN_INVERT_MAX_UPLOAD_BYTES={CAP}` and",
            f"`DCGAN_INVERT_MAX_PIXELS={MAX_PIXELS}`, `mode=fast`, `align=false` except for the no-face row.",
            'A 422\'s message is `type: msg` from its `detail` (`loc` is always `["body", "image"]`); 413\'s is the',
            "`detail` string. No upload is ever written to disk or kept after its answer.",
            "",
            "Unusual photos that can be used are converted (Little CMS for CMYK, the top 8 bits of 16-bit grey,",
            "transparency composited on white, EXIF orientation applied) and inverted: 200. A lossy WebP has no",
            "checksum, so one with a damaged byte decodes to damaged pixels: that is a photo too.",
            "",
            "| upload | status | message |",
            "|---|---|---|",
            *rows,
            "",
            "Other statuses of the route: 400 malformed or cut-short multipart body; 415 not `multipart/form-data`;",
            "422 a bad option (`mode`, `steps`, `align`) or form field, `loc` naming it; 503 the inversion queue is",
            "full (with `Retry-After`), or the model has no encoder (without); 504 the inversion deadline passed.",
            "",
        ]
    )
