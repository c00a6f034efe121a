"""align_face: the warp's coordinate conventions, the two transforms, align=false's framing, real CelebA photos
(upright, tilted, two faces), no face, and determinism."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from photos import Landmarks, NoFaceError, align_face, eye_transform, face_transform, resize_center_crop, template, warp
from tests.conftest import REPO
from training.data import resize_center_crop as training_crop

RNG = np.random.default_rng(0)


def apply(matrix: np.ndarray, points: object) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def upright_box(x: float, y: float, w: float) -> tuple[tuple[float, float], ...]:
    return ((x, y), (x + w, y), (x + w, y + w), (x, y + w))


# --- geometry, no detector ------------------------------------------------------------------------------


def test_warp_with_the_identity_returns_the_pixels() -> None:
    image = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert (warp(image, identity, 64) == image).all()


def test_warp_by_whole_pixels_shifts_exactly() -> None:
    image = RNG.integers(0, 256, (80, 80, 3), dtype=np.uint8)
    shift = np.array([[1.0, 0.0, -3.0], [0.0, 1.0, -5.0]])  # crop pixel (x, y) = image pixel (x + 3, y + 5)
    assert (warp(image, shift, 64) == image[5:69, 3:67]).all()


def test_warp_shrinks_by_averaging() -> None:
    image = np.zeros((256, 256, 3), dtype=np.uint8)
    image[::2] = 255  # 1-px stripes: a point-sampling shrink would alias them to black or white
    crop = warp(image, np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]]), 64)
    assert np.abs(crop.astype(int) - 128).max() <= 2


def test_eye_transform_puts_the_eyes_on_the_template() -> None:
    eyes = ((130.0, 212.0), (171.0, 190.0))
    for size in (64, 128):
        assert np.allclose(apply(eye_transform(eyes, size), eyes), np.array(template.EYES) * size)


def test_face_transform_places_the_box_and_levels_the_eyes() -> None:
    found = Landmarks((100.0, 50.0, 80.0, 80.0), None, 1, 0.0, upright_box(100.0, 50.0, 80.0))
    matrix = face_transform(found, 64)
    cx, cy, width = template.FACE_BOX
    assert np.allclose(apply(matrix, [[140.0, 90.0]]), [[cx * 64, cy * 64]])  # the box centre
    assert np.isclose(np.linalg.det(matrix[:, :2]) ** 0.5 * 80, width * 64)  # the box width
    assert np.isclose(matrix[1, 0], 0.0), "no eyes: the box's own (upright) angle"
    tilted = ((120.0, 85.0), (160.0, 85.0 + 40 * np.tan(np.radians(12))))  # the right eye 12 degrees lower
    matrix = face_transform(Landmarks(found.face_box, tilted, 1, 0.0, found.face_corners), 64)
    (_, ly), (_, ry) = apply(matrix, tilted)
    assert abs(ly - ry) < 1e-9


def test_align_false_frames_as_training_does() -> None:
    image = Image.fromarray(RNG.integers(0, 256, (90, 50, 3), dtype=np.uint8))  # 50 wide, 90 high
    aligned = align_face(image, 64, align=False)
    assert aligned.crop.shape == (64, 64, 3) and aligned.crop.dtype == np.uint8
    assert (aligned.crop == training_crop(image, 64).transpose(1, 2, 0)).all()
    assert aligned.face_box is None and aligned.eyes is None and aligned.faces_found == 0
    assert (align_face(image.convert("L"), 32, align=False).crop == resize_center_crop(image.convert("L"), 32)).all()


@pytest.mark.parametrize("size", [(1, 300), (300, 1), (2, 200), (1, 100_000)])
def test_strips_cost_little(size: tuple[int, int]) -> None:
    """A 1x300 photo once became a 160x48000 detection image (OpenCV asked for 78 GB): both paths stay small."""
    strip = Image.fromarray(RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    with pytest.raises(NoFaceError):
        align_face(strip)
    assert align_face(strip, align=False).crop.shape == (64, 64, 3)


def test_size_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        align_face(Image.new("RGB", (64, 64)), 4)


# --- no face --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["grey", "noise", "gradient", "tiny"])
def test_no_face(kind: str) -> None:
    pixels = {
        "grey": np.full((240, 320, 3), 128, dtype=np.uint8),
        "noise": np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8),
        "gradient": np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3)),
        "tiny": np.full((3, 2, 3), 40, dtype=np.uint8),
    }[kind]
    with pytest.raises(NoFaceError, match="no face"):
        align_face(Image.fromarray(pixels))


# --- real CelebA photos ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces(celeba_slice: Path) -> list[Image.Image]:
    """CelebA images 1 and 2 (89x109 in the shared subset), which the detector finds with both eyes."""
    return [Image.open(celeba_slice / "img_align_celeba" / f"{i:06d}.jpg").convert("RGB") for i in (1, 2)]


def test_a_celeba_photo_aligns_like_its_training_crop(faces: list[Image.Image]) -> None:
    own, other = faces
    aligned = align_face(own)
    assert aligned.crop.shape == (64, 64, 3) and aligned.crop.dtype == np.uint8
    assert aligned.faces_found == 1 and aligned.note == ""
    assert aligned.eyes is not None and aligned.face_box is not None
    x, y, w, h = aligned.face_box
    for ex, ey in aligned.eyes:
        assert x < ex < x + w and y < ey < y + h / 2 + 5, "eyes in the upper half of the face box"
    # The crop shows what the training crop shows: nearer it than another person's crop is.
    distance = {
        name: np.abs(aligned.crop.astype(int) - resize_center_crop(img, 64)).mean()
        for name, img in (("own", own), ("other", other))
    }
    assert distance["own"] < 35 and distance["own"] < 0.7 * distance["other"], distance


def test_a_tilted_photo_is_turned_upright(faces: list[Image.Image]) -> None:
    """Image 1 upscaled 2x, turned 18 degrees (past the cascade's comfortable range) on a larger canvas:
    realigned, its crop matches the upright photo's within a few px, with the eyes level."""
    photo = np.asarray(faces[0].resize((178, 218), Image.Resampling.BICUBIC))
    turn = cv2.getRotationMatrix2D((89.0, 109.0), 18.0, 1.0)
    turn[:, 2] += (61.0, 41.0)  # onto a 300x300 canvas
    canvas = cv2.warpAffine(photo, turn, (300, 300), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    upright, tilted = align_face(Image.fromarray(photo)), align_face(Image.fromarray(canvas))
    assert tilted.eyes is not None
    found = Landmarks(
        (0.0, 0.0, 0.0, 0.0), tilted.eyes, 1, 0.0, upright_box(0.0, 0.0, 1.0)
    )  # only the eyes matter for the angle
    (_, ly), (_, ry) = apply(face_transform(found, 64), tilted.eyes)
    assert abs(ly - ry) < 1e-6
    assert np.abs(tilted.crop.astype(int) - upright.crop).mean() < 25


def test_two_faces_take_the_largest_and_say_so(faces: list[Image.Image]) -> None:
    canvas = Image.new("RGB", (420, 260), (200, 200, 200))
    canvas.paste(faces[1].resize((178, 218), Image.Resampling.BICUBIC), (10, 20))  # the larger face, left
    canvas.paste(faces[0].resize((107, 131), Image.Resampling.BICUBIC), (280, 60))  # smaller, right
    aligned = align_face(canvas)
    assert aligned.faces_found >= 2
    assert "largest" in aligned.note and f"{aligned.faces_found} faces" in aligned.note
    assert aligned.face_box is not None
    x, _, w, _ = aligned.face_box
    assert x + w / 2 < 200, "the larger (left) face was used"


def test_align_is_deterministic_across_calls_and_threads(faces: list[Image.Image]) -> None:
    first = align_face(faces[0]).crop.tobytes()
    assert align_face(faces[0].copy()).crop.tobytes() == first
    out: list[bytes] = []
    workers = [threading.Thread(target=lambda: out.append(align_face(faces[0]).crop.tobytes())) for _ in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert out == [first] * 3


# --- the template is what the calibration measured -----------------------------------------------------


def test_template_matches_the_committed_calibration() -> None:
    report = json.loads((REPO / "docs" / "inversion" / "template-calibration.json").read_text())
    assert np.allclose(template.EYES, report["eyes"]["median"], atol=1e-4)
    assert np.allclose(template.EYES_IN_BOX, report["eyes_in_box"]["median"], atol=1e-4)
    assert np.allclose(template.FACE_BOX, report["face_box"]["median"], atol=1e-4)
    assert report["counts"]["eyes_found"] >= 0.5 * report["counts"]["images"]
