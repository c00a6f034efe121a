"""Uploaded photos are untrusted bytes: decode them to one RGB 8-bit image, or refuse with a reason.

Public contract (the service maps ``UploadError.reason`` to a 4xx; tests hold each case):

    read_upload(data, max_pixels=16_000_000) -> PIL.Image.Image   # mode "RGB", EXIF orientation applied

- Formats: JPEG, PNG, WebP and GIF only (``Image.open(formats=...)``: no other decoder ever sees the bytes).
- Size: the declared canvas is checked against ``max_pixels`` *before* any pixel is decoded, so a small file
  declaring a huge canvas (a decompression bomb) costs nothing. Pillow's own guard (``DecompressionBombError``
  and its warning) is caught too, but is not relied on: it reads a process-wide setting.
- Every pixel is decoded here (``load()``), so a truncated or corrupt file fails here, not later.
- Animated GIF, WebP and PNG (APNG) are refused: which frame is "the photo" is a guess, so ask for a still.
- Modes: greyscale and bilevel become RGB; palette images go through RGBA when they carry transparency;
  transparency is composited on white (a cut-out portrait's usual background), never dropped, so that what
  was invisible stays invisible; CMYK and embedded ICC profiles are converted to sRGB with Little CMS (a
  profile Little CMS cannot read is ignored: the naive conversion follows); 16-bit greyscale keeps its top
  8 bits (Pillow's own conversion clips every value above 255 to white).
- EXIF orientation is honoured (a phone's portrait photo is stored sideways with orientation 6 or 8).
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
WHITE = (255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's 16-bit greyscale PNG modes
_DIRECT = ("RGB", "L", "1", "CMYK", "YCbCr")  # modes with no alpha that convert("RGB") handles
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


class UploadError(ValueError):
    """An upload that is not a photo this service can use. ``reason`` is a short machine code ("empty",
    "not_an_image", "truncated", "too_many_pixels", "animated", "unsupported_mode"); the message names
    the problem for a person."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_upload(data: bytes, *, max_pixels: int = 16_000_000) -> Image.Image:
    """``data`` decoded to an RGB 8-bit image with EXIF orientation applied; raises ``UploadError``."""
    if not data:
        raise UploadError("empty", "the upload is empty (0 bytes): send a JPEG, PNG, WebP or GIF photo")
    with warnings.catch_warnings():
        # Pillow's UserWarnings name broken metadata ("Corrupt EXIF data"), which costs only the orientation
        # (see _decode). It warns (DecompressionBombWarning) above its own pixel limit and raises above twice
        # that: both are a canvas over any sane cap, so both become errors whatever the process's filters.
        # (catch_warnings is process-wide, so a concurrent decode may see other filters: the pixel cap in
        # _open does not depend on them.)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data, max_pixels)
        try:
            rgb = _to_rgb(_decode(image))
        finally:
            image.close()
    return rgb


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Parse the header only, then check the declared canvas and the frame count before decoding."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("too_many_pixels", f"the image declares a canvas over {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise UploadError("not_an_image", "the upload is not a JPEG, PNG, WebP or GIF image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # a recognised format whose header is broken
        raise UploadError("truncated", f"the image header is corrupt or cut short ({e})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise UploadError(
            "too_many_pixels", f"the image is {width}x{height} = {width * height:,} pixels, over the {max_pixels:,} cap"
        )
    if width == 0 or height == 0:
        image.close()
        raise UploadError("not_an_image", f"the image is {width}x{height}: it has no pixels")
    try:
        animated = bool(getattr(image, "is_animated", False))  # GIF: seeks to frame 2; PNG: acTL; WebP: header
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        image.close()
        raise UploadError("truncated", f"the {image.format} image is corrupt or cut short ({e})") from None
    if animated:
        image.close()
        raise UploadError("animated", f"the {image.format} image is animated: send a still photo (one frame)")
    return image


def _decode(image: Image.Image) -> Image.Image:
    """Decode every pixel now (a truncated file fails here), then apply the EXIF orientation."""
    image.seek(0)
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("too_many_pixels", "the image's frame declares more pixels than its canvas") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        raise UploadError("truncated", f"the {image.format} image is truncated or corrupt ({e})") from None
    # A malformed EXIF block (Pillow warns, or raises) leaves the orientation unknown, so the pixels stay as
    # stored: the photo itself decoded, and refusing it for a broken metadata block would be unhelpful.
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
        return image.copy()


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any accepted mode -> "RGB" 8-bit (see the module docstring for each case)."""
    mode = image.mode
    if mode in _SIXTEEN_BIT:
        grey = np.asarray(image, dtype=np.int64)
        top = 65535 if mode != "I" or grey.max(initial=0) > 255 else 255  # "I" holding 8-bit values stays put
        scaled = np.clip(grey * 255 // top if top == 65535 else grey, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    icc = image.info.get("icc_profile")
    if mode in _ALPHA:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return _to_srgb(Image.alpha_composite(background, rgba).convert("RGB"), icc)
    if mode in _DIRECT:
        return _to_srgb(image, icc)
    raise UploadError("unsupported_mode", f"the image's pixel format ({mode}) is not supported: send an RGB photo")


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """``image`` in sRGB: through its ICC profile when it has one Little CMS reads, else Pillow's conversion."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # unreadable or mismatched profile (e.g. an RGB profile on a CMYK image)
        if converted is not None:
            return converted
    return image.convert("RGB")
