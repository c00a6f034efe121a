"""Find a face and its two eyes with the Haar cascades that ship inside ``opencv-python-headless`` 4.x.

Public contract:

    locate_face(image) -> Landmarks      # raises NoFaceError when no face is found

- Faces: the frontal-face cascade on a grey copy whose long side is at most ``DETECT_LONG_SIDE`` (a phone
  photo's 12 MP cost seconds and find nothing more). Several faces: the largest box wins, and the count is
  kept. No face upright: the image is searched again rotated by each of ``ROLL_RETRIES`` degrees, since
  the cascade only finds faces within about 15 degrees of upright and a tilted head is common.
- Eyes: the eye cascade (then the eye-with-glasses one) in the upper part of the face box, scaled so the
  face is ``EYE_SEARCH_FACE`` px wide (the cascade's window is 20 px). The candidate nearest each eye's
  expected place in the box (``template.EYES_IN_BOX``) is taken, if it is near enough; eyebrows and
  nostrils are the usual false eyes and sit farther away.
- Every coordinate is continuous (pixel edges: the image spans [0, w] x [0, h]) and in the input's pixels.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import cv2.data
import numpy as np
from PIL import Image

from photos.template import EYES_IN_BOX, Point

# alt2 over "default": on 300 CelebA training crops (64 px, upscaled 4x) it finds as many faces (280 vs 279)
# and reports a second, false face in 5 rather than 11, and a false face larger than the real one wins.
FACE_CASCADE = "haarcascade_frontalface_alt2.xml"
DETECT_LONG_SIDE = 800  # px: the face search runs on a copy at most this large
DETECT_SHORT_SIDE_MIN = 160  # px: smaller inputs are upscaled first, so a face fills more than the 24 px window
MIN_FACE_FRACTION = 0.12  # of the detection image's short side: smaller faces are background faces
ROLL_RETRIES = (-25.0, 25.0, -45.0, 45.0)  # degrees, tried in order when no face is found upright
EYE_SEARCH_FACE = 200  # px: the face's width while its eyes are searched for
EYE_BAND = (0.15, 0.62)  # the rows of the face box (fractions of its height) searched for eyes
REDRAW_TILT = 5.0  # degrees: eyes tilted more than this in the searched image -> the face box is drawn again
EYE_MAX_OFFSET = 0.16  # of the face width: a candidate farther than this from the expected eye is not that eye

Box = tuple[float, float, float, float]  # x, y, w, h


class NoFaceError(ValueError):
    """No face was found in the photo."""


@dataclass(frozen=True)
class Landmarks:
    """One face found in an image, in the image's pixels (continuous coordinates).

    ``eyes`` are the detected eye centres, None when the eye cascades found no pair; ``eyes_or_estimate``
    then places them in the face box where the detector's eyes usually are."""

    face_box: Box
    eyes: tuple[Point, Point] | None
    faces_found: int
    roll_searched: float  # degrees the image was rotated for the face to be found (0: upright)
    face_corners: tuple[Point, Point, Point, Point]  # the box's corners in the input (a rotated box when roll != 0)

    def eyes_or_estimate(self) -> tuple[Point, Point]:
        if self.eyes is not None:
            return self.eyes
        (tl, tr, _br, bl) = np.asarray(self.face_corners, dtype=np.float64)
        ex, ey = tr - tl, bl - tl  # the box's edges: its x and y axes in input pixels (rotated with the search)
        left, right = ((tl + fx * ex + fy * ey) for fx, fy in EYES_IN_BOX)
        return (float(left[0]), float(left[1])), (float(right[0]), float(right[1]))

    def notes(self) -> list[str]:
        notes = []
        if self.faces_found > 1:
            notes.append(f"{self.faces_found} faces found; the largest was used")
        if self.roll_searched:
            notes.append(f"the face was found only in the image rotated by {self.roll_searched:+.0f} degrees")
        if self.eyes is None:
            notes.append("eyes not found; aligned from the face box alone")
        return notes


def locate_face(image: Image.Image, *, eyes_in_box: tuple[Point, Point] = EYES_IN_BOX) -> Landmarks:
    """The largest face in ``image`` and its eyes; raises NoFaceError when there is none. ``eyes_in_box``:
    where eyes are expected in the face box (the calibration passes its own while it measures that)."""
    grey = np.asarray(image.convert("L"), dtype=np.uint8)
    scale = _detection_scale(grey.shape[1], grey.shape[0])
    small = _resize(grey, scale)
    for roll in (0.0, *ROLL_RETRIES):
        found = _search(small, roll, eyes_in_box)
        if found is not None:
            return _to_input(found, scale)
    raise NoFaceError("no face found in the photo: send a photo with one face seen from the front")


def _detection_scale(width: int, height: int) -> float:
    """Up so the short side reaches ``DETECT_SHORT_SIDE_MIN``, down so the long side is at most
    ``DETECT_LONG_SIDE``; the long side wins (a 1x300 strip must not become 160x48000)."""
    up = max(1.0, DETECT_SHORT_SIDE_MIN / min(width, height))
    return min(up, DETECT_LONG_SIDE / max(width, height))


def _resize(grey: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return grey
    h, w = grey.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _search(grey: np.ndarray, roll: float, eyes_in_box: tuple[Point, Point]) -> Landmarks | None:
    """Faces in ``grey`` rotated by ``roll`` degrees; the largest one's landmarks in ``grey``'s pixels."""
    rotated, to_grey = _rotate(grey, roll)  # to_grey: rotated -> grey (2x3, continuous coordinates)
    min_side = max(24, round(min(grey.shape) * MIN_FACE_FRACTION))
    faces = _faces(rotated, min_side)
    if len(faces) == 0:
        return None
    x, y, w, h = (float(v) for v in max(faces, key=lambda b: (b[2] * b[3], -b[1], -b[0])))
    found = _find_eyes(rotated, (x, y, w, h), eyes_in_box)
    corners = _apply(to_grey, np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]))
    eyes = None if found is None else _apply(to_grey, np.array(found))  # (2, 2) in grey
    if eyes is not None:
        tilt = math.degrees(math.atan2(eyes[1, 1] - eyes[0, 1], eyes[1, 0] - eyes[0, 0]))
        if abs(tilt - roll) > REDRAW_TILT:
            corners = _upright_box(grey, tilt, corners)
    box = (*corners.min(axis=0), *(corners.max(axis=0) - corners.min(axis=0)))
    return Landmarks(
        face_box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        eyes=None if eyes is None else ((eyes[0, 0], eyes[0, 1]), (eyes[1, 0], eyes[1, 1])),
        faces_found=len(faces),
        roll_searched=roll,
        face_corners=tuple((float(cx), float(cy)) for cx, cy in corners),  # type: ignore[arg-type]
    )


def _faces(grey: np.ndarray, min_side: int, max_side: int | None = None) -> np.ndarray:
    """(N, 4) x, y, w, h boxes of the face cascade."""
    found = _cascade(FACE_CASCADE).detectMultiScale(
        cv2.equalizeHist(grey),
        scaleFactor=1.1,
        minNeighbors=3,
        minSize=(min_side, min_side),
        maxSize=(max_side, max_side) if max_side else (0, 0),
    )
    return np.asarray(found, dtype=np.float64).reshape(-1, 4)


def _upright_box(grey: np.ndarray, tilt: float, corners: np.ndarray) -> np.ndarray:
    """The face box of ``corners`` drawn again with the image turned so that the eyes are level: a box
    drawn around a tilted face is larger than the face, and CelebA's faces, which the template's box size
    was measured on, are upright. Falls back to ``corners`` when the face is not found again."""
    rotated, to_grey = _rotate(grey, tilt)
    to_rotated = cv2.invertAffineTransform(to_grey)
    centre = _apply(to_rotated, corners.mean(axis=0, keepdims=True))[0]
    width = float(np.linalg.norm(corners[1] - corners[0]))
    faces = _faces(rotated, max(20, round(0.7 * width)), round(1.45 * width))
    if len(faces) == 0:
        return corners
    centres = faces[:, :2] + faces[:, 2:] / 2
    nearest = int(np.argmin(np.linalg.norm(centres - centre, axis=1)))
    if np.linalg.norm(centres[nearest] - centre) > 0.3 * width:
        return corners
    x, y, w, h = faces[nearest]
    return _apply(to_grey, np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]))


def _find_eyes(grey: np.ndarray, box: Box, eyes_in_box: tuple[Point, Point]) -> tuple[Point, Point] | None:
    """The two eye centres in ``grey``'s pixels, or None; searched in the band ``EYE_BAND`` of ``box``."""
    x, y, w, h = box
    top, bottom = y + EYE_BAND[0] * h, y + EYE_BAND[1] * h
    x0, y0 = max(0, math.floor(x)), max(0, math.floor(top))
    x1, y1 = min(grey.shape[1], math.ceil(x + w)), min(grey.shape[0], math.ceil(bottom))
    if x1 - x0 < 8 or y1 - y0 < 4:
        return None
    k = EYE_SEARCH_FACE / w  # band pixels -> search pixels
    band = cv2.resize(
        grey[y0:y1, x0:x1],
        (round((x1 - x0) * k), round((y1 - y0) * k)),
        interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC,
    )
    band = cv2.equalizeHist(band)
    expected = [((x + fx * w - x0) * k, (y + fy * h - y0) * k) for fx, fy in eyes_in_box]  # in band pixels
    reach = EYE_MAX_OFFSET * EYE_SEARCH_FACE
    for name in ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml"):
        found = _cascade(name).detectMultiScale(
            band, scaleFactor=1.05, minNeighbors=3, minSize=(22, 22), maxSize=(80, 80)
        )
        centres = [(bx + bw / 2, by + bh / 2) for bx, by, bw, bh in found]
        left, right = (_nearest(centres, e, reach) for e in expected)
        if left is not None and right is not None and right[0] - left[0] > 0.2 * EYE_SEARCH_FACE:
            return (x0 + left[0] / k, y0 + left[1] / k), (x0 + right[0] / k, y0 + right[1] / k)
    return None


def _nearest(points: list[Point], target: Point, reach: float) -> Point | None:
    best = min(points, key=lambda p: math.dist(p, target), default=None)
    return best if best is not None and math.dist(best, target) <= reach else None


def _rotate(grey: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` rotated about its centre onto a canvas that holds all of it, and the 2x3 map (continuous
    coordinates) from the rotated canvas back to ``grey``."""
    if degrees == 0:
        return grey, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    h, w = grey.shape
    theta = math.radians(degrees)
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    out_w, out_h = math.ceil(w * c + h * s), math.ceil(w * s + h * c)
    forward = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)  # continuous coordinates, about the centre
    forward[:, 2] += (out_w / 2 - w / 2, out_h / 2 - h / 2)
    rotated = cv2.warpAffine(
        grey, to_pixel_centres(forward), (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return rotated, cv2.invertAffineTransform(forward)


def _to_input(found: Landmarks, scale: float) -> Landmarks:
    """Landmarks in the detection image's pixels -> in the input's (continuous coordinates scale exactly)."""

    def pt(p: Point) -> Point:
        return (p[0] / scale, p[1] / scale)

    x, y, w, h = found.face_box
    return Landmarks(
        face_box=(x / scale, y / scale, w / scale, h / scale),
        eyes=None if found.eyes is None else (pt(found.eyes[0]), pt(found.eyes[1])),
        faces_found=found.faces_found,
        roll_searched=found.roll_searched,
        face_corners=tuple(pt(c) for c in found.face_corners),  # type: ignore[arg-type]
    )


def to_pixel_centres(matrix: np.ndarray) -> np.ndarray:
    """A 2x3 affine map in continuous coordinates -> the same map as OpenCV's warps read it (a pixel's
    index is its centre, so continuous = index + 0.5 on both sides)."""
    m = np.array(matrix, dtype=np.float64)
    m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return m


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


_per_thread = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    """One classifier per thread and cascade: OpenCV does not promise that one may detect in two threads."""
    loaded: dict[str, cv2.CascadeClassifier] = _per_thread.__dict__.setdefault("cascades", {})
    if name not in loaded:
        classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        if classifier.empty():  # the 5.x wheels ship no cascades (pyproject pins <5)
            raise RuntimeError(f"OpenCV cascade {name} not found under {cv2.data.haarcascades}")
        loaded[name] = classifier
    return loaded[name]
