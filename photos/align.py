"""A photo -> a size x size crop framed as the training pipeline frames CelebA.

Public contract:

    align_face(image, size=64, align=True) -> Aligned    # raises NoFaceError (align=True) when no face is found

- ``align=True``: find the largest face and its eyes (``photos.detect``), then warp with the similarity
  transform (rotation, uniform scale, shift) that levels the eyes and puts the face box where the detector
  puts it in CelebA's training crops (``template.FACE_BOX``); the eyes then land on ``template.EYES`` as
  closely as CelebA's own do (its alignment used five landmarks, so eye distance varies between faces).
  When the eyes are not found, the face box's angle stands in for theirs and ``note`` says so.
- ``align=False``: the photo is taken as already framed: the training pipeline's resize of the short side
  and centre crop (``resize_center_crop``); ``face_box`` and ``eyes`` are None.
- The same image and size give the same bytes (no randomness; OpenCV's resize and warp are deterministic).

The warp first shrinks the region it needs with area averaging to the output's scale (Pillow's bilinear
resize in ``training.data`` also averages every source pixel), then rotates and shifts with bicubic
interpolation; outside the photo, its edge pixels are repeated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from photos.detect import Landmarks, NoFaceError, locate_face, to_pixel_centres
from photos.template import EYES, FACE_BOX, Point

MAX_ASPECT = 8  # resize_center_crop resizes a whole image only up to this aspect ratio

__all__ = ["Aligned", "NoFaceError", "align_face", "eye_transform", "face_transform", "resize_center_crop", "warp"]


@dataclass(frozen=True)
class Aligned:
    """An aligned crop and what was found. Coordinates are in the input image's pixels."""

    crop: np.ndarray  # (size, size, 3) uint8 RGB
    face_box: tuple[int, int, int, int] | None  # x, y, w, h (the box the detector drew, axis-aligned)
    eyes: tuple[Point, Point] | None  # left, right eye centres as seen in the image (estimated ones: see note)
    faces_found: int
    note: str  # "" when one face and both eyes were found


def align_face(image: Image.Image, size: int = 64, *, align: bool = True) -> Aligned:
    """``image`` aligned to a (size, size, 3) uint8 crop; see the module docstring."""
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if not align:
        return Aligned(resize_center_crop(rgb, size), None, None, 0, "align=false: resized and centre-cropped")
    found = locate_face(rgb)
    crop = warp(np.asarray(rgb), face_transform(found, size), size)
    x, y, w, h = found.face_box
    box = (round(x), round(y), round(w), round(h))
    eyes = None if found.eyes is None else tuple((float(ex), float(ey)) for ex, ey in found.eyes)
    return Aligned(crop, box, eyes, found.faces_found, "; ".join(found.notes()))  # type: ignore[arg-type]


def face_transform(found: Landmarks, size: int) -> np.ndarray:
    """The 2x3 similarity (continuous coordinates) that turns the face upright (the eyes level, or the face
    box's own angle when the eyes were not found) and puts the face box's centre and width where
    ``template.FACE_BOX`` says the training crops have them."""
    corners = np.asarray(found.face_corners, dtype=np.float64)  # tl, tr, br, bl
    centre = complex(*corners.mean(axis=0))
    top = complex(*(corners[1] - corners[0]))  # the box's top edge
    if found.eyes is not None:
        (lx, ly), (rx, ry) = found.eyes
        level = complex(rx - lx, ry - ly)
    else:
        level = top
    cx, cy, width = FACE_BOX
    rot = (width * size / abs(top)) * (abs(level) / level)  # scale * e^{-i angle}
    shift = complex(cx * size, cy * size) - rot * centre
    return np.array([[rot.real, -rot.imag, shift.real], [rot.imag, rot.real, shift.imag]])


def eye_transform(eyes: tuple[Point, Point], size: int) -> np.ndarray:
    """The 2x3 similarity (continuous coordinates) taking ``eyes`` onto the template's eyes in a
    ``size`` x ``size`` crop: [[a, -b, tx], [b, a, ty]] with a + ib = (target span) / (eye span)."""
    src = [complex(*p) for p in eyes]
    dst = [complex(fx * size, fy * size) for fx, fy in EYES]
    if abs(src[1] - src[0]) < 1e-6:
        raise ValueError(f"the two eyes coincide: {eyes}")
    rot = (dst[1] - dst[0]) / (src[1] - src[0])  # scale * e^{i angle}
    shift = dst[0] - rot * src[0]
    return np.array([[rot.real, -rot.imag, shift.real], [rot.imag, rot.real, shift.imag]])


def warp(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 through the 2x3 ``matrix`` (continuous coordinates) -> (size, size, 3) uint8."""
    h, w = rgb.shape[:2]
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))  # output px per input px
    # Only the part of the photo that the crop sees (plus a margin for the filters) is resized and warped.
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64) @ inverse[:, :2].T
    corners += inverse[:, 2]
    margin = 4 / min(scale, 1.0)
    x0, y0 = (max(0, math.floor(v - margin)) for v in corners.min(axis=0))
    x1, y1 = (min(lim, math.ceil(v + margin)) for v, lim in zip(corners.max(axis=0), (w, h), strict=True))
    if x1 <= x0 or y1 <= y0:  # the crop lies wholly outside the photo: clamp to its nearest edge pixels
        x0, y0 = min(max(0, x0), w - 1), min(max(0, y0), h - 1)
        x1, y1 = x0 + 1, y0 + 1
    region = rgb[y0:y1, x0:x1]
    matrix = matrix @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])  # region -> crop
    if scale < 1.0:  # shrink by area averaging first, so the warp itself neither aliases nor blurs
        rw, rh = max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))
        fx, fy = rw / region.shape[1], rh / region.shape[0]
        region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.array([[1 / fx, 0.0, 0.0], [0.0, 1 / fy, 0.0], [0.0, 0.0, 1.0]])
    crop = cv2.warpAffine(
        np.ascontiguousarray(region),
        to_pixel_centres(matrix),
        (size, size),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.ascontiguousarray(crop, dtype=np.uint8)


def resize_center_crop(image: Image.Image, size: int) -> np.ndarray:
    """torchvision's ``Resize(size)`` + ``CenterCrop(size)`` on a PIL image -> (size, size, 3) uint8: the
    training pipeline's framing (``training.data`` calls this)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    w, h = rgb.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    if max(new_w, new_h) > MAX_ASPECT * size:
        # A strip (a 1x300 upload: 64x19200 resized whole, or a 1x16M one: 3 GB): resize only the crop's
        # part of the source. The framing is the same; training images (CelebA is 1.2:1) never come here.
        box = (left / scale, top / scale, (left + size) / scale, (top + size) / scale)
        return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR, box=box), dtype=np.uint8).copy()
    rgb = rgb.resize((new_w, new_h), Image.Resampling.BILINEAR)
    return np.asarray(rgb.crop((left, top, left + size, top + size)), dtype=np.uint8).copy()
