"""Measure the alignment template: where ``photos.detect`` finds the eyes in CelebA's 64x64 training crops.

    python -m training.align_calibrate --celeba ROOT     # images 1-9,000 -> docs/inversion/template-calibration.json

Each image goes through the training pipeline's framing (``photos.resize_center_crop`` to 64x64, as
``training.data`` does), is upscaled 4x (bicubic; Haar eye windows are 20 px and an eye at 64 px is 6 px
wide), and the detector runs on it. Over the images where a face was found upright and both eyes were
detected, the median eye centres (fractions of the side) are the template's ``EYES``, and the median eye
centres relative to the face box are ``EYES_IN_BOX`` (the eye search's prior), and the median centre and
width of the face box are ``FACE_BOX`` (the alignment's centre and scale).

The eye search picks the candidates nearest the expected place in the face box, so that expectation is
settled first on the first ``--prior-images`` images (starting from ``photos.template``'s), then every image
is measured with it. The printed lines go into ``photos/template.py``; a test holds the two to each other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from photos import NoFaceError, locate_face, resize_center_crop
from photos.template import EYES_IN_BOX, Point
from training.data import celeba_root, image_files

SIZE = 64  # the demo's training resolution
UPSCALE = 4  # the crop is upscaled this much before detection
DEFAULT_OUT = Path("docs/inversion/template-calibration.json")


@dataclass(frozen=True)
class Found:
    """One image's detection, in the 64x64 crop's continuous coordinates divided by 64 (fractions)."""

    eyes: tuple[Point, Point] | None  # None: a face but no eye pair
    eyes_in_box: tuple[Point, Point] | None
    face_box: tuple[float, float, float]  # centre x, centre y, width
    roll: float


def measure(path: Path, eyes_in_box: tuple[Point, Point]) -> Found | None:
    """Detect on ``path``'s training crop upscaled ``UPSCALE``x; None when no face is found."""
    with Image.open(path) as img:
        crop = resize_center_crop(img.convert("RGB"), SIZE)  # (64, 64, 3): exactly what G trains on
    side = SIZE * UPSCALE
    big = Image.fromarray(crop).resize((side, side), Image.Resampling.BICUBIC)
    try:
        found = locate_face(big, eyes_in_box=eyes_in_box)
    except NoFaceError:
        return None
    corners = np.asarray(found.face_corners)  # tl, tr, br, bl (a rotated box if it was drawn again)
    cx, cy = corners.mean(axis=0) / side
    box = (float(cx), float(cy), float(np.linalg.norm(corners[1] - corners[0])) / side)
    if found.eyes is None:
        return Found(None, None, box, found.roll_searched)
    x, y, w, h = found.face_box
    eyes = tuple((ex / side, ey / side) for ex, ey in found.eyes)
    in_box = tuple(((ex - x) / w, (ey - y) / h) for ex, ey in found.eyes)
    return Found(eyes, in_box, box, found.roll_searched)  # type: ignore[arg-type]


def measure_all(files: Sequence[Path], eyes_in_box: tuple[Point, Point], workers: int) -> list[Found | None]:
    work = partial(measure, eyes_in_box=eyes_in_box)
    if workers <= 1:
        return [work(p) for p in files]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(work, files, chunksize=64))


def summarise(results: Sequence[Found | None]) -> dict:
    """Counts, and the median (with p10/p90) of the eyes over images found upright with both eyes."""
    usable = [r for r in results if r is not None and r.eyes is not None and r.roll == 0]
    counts = {
        "images": len(results),
        "face_found": sum(r is not None for r in results),
        "face_found_upright": sum(r is not None and r.roll == 0 for r in results),
        "eyes_found": len(usable),
    }
    if not usable:
        raise ValueError(f"no image of {len(results)} gave a face with both eyes")
    eyes = np.array([r.eyes for r in usable])  # (N, 2 eyes, 2 coords)
    in_box = np.array([r.eyes_in_box for r in usable])
    boxes = np.array([r.face_box for r in usable])  # (N, 3)
    distance = eyes[:, 1, 0] - eyes[:, 0, 0]
    return {
        "counts": counts,
        "eyes": _stats(eyes),
        "eyes_in_box": _stats(in_box),
        "face_box": {
            "median": [round(float(v), 4) for v in np.median(boxes, axis=0)],
            "p10": np.round(np.percentile(boxes, 10, axis=0), 4).tolist(),
            "p90": np.round(np.percentile(boxes, 90, axis=0), 4).tolist(),
        },
        "eye_distance": _spread(distance),
        # the spread of each candidate scale reference (std / mean): the smaller, the closer it follows
        # CelebA's own framing, which the crop's scale should reproduce
        "variation": {
            "eye_distance": round(float(distance.std() / distance.mean()), 4),
            "face_box_width": round(float(boxes[:, 2].std() / boxes[:, 2].mean()), 4),
        },
    }


def _stats(points: np.ndarray) -> dict:
    median = np.median(points, axis=0)  # (2, 2)
    return {
        "median": [[round(float(v), 4) for v in eye] for eye in median],
        "p10": np.round(np.percentile(points, 10, axis=0), 4).tolist(),
        "p90": np.round(np.percentile(points, 90, axis=0), 4).tolist(),
    }


def _spread(values: np.ndarray) -> dict:
    return {k: round(float(np.percentile(values, q)), 4) for k, q in (("p10", 10), ("median", 50), ("p90", 90))}


def _as_points(median: list[list[float]]) -> tuple[Point, Point]:
    return (median[0][0], median[0][1]), (median[1][0], median[1][1])


def calibrate(root: Path, first: int, last: int, stride: int, prior_images: int, workers: int) -> dict:
    files, _ = image_files(celeba_root(root))
    if len(files) < last:
        raise ValueError(f"--celeba {root}: images {first}-{last} asked for, {len(files)} found")
    chosen = files[first - 1 : last : stride]
    prior = EYES_IN_BOX
    settle = summarise(measure_all(chosen[:prior_images], prior, workers))
    settled = _as_points(settle["eyes_in_box"]["median"])
    report = summarise(measure_all(chosen, settled, workers))
    report["images"] = f"{chosen[0].name}..{chosen[-1].name}" + (f", every {stride}th" if stride > 1 else "")
    report["method"] = (
        f"photos.resize_center_crop to {SIZE}x{SIZE}, upscaled {UPSCALE}x (bicubic), photos.locate_face; "
        "medians over images with a face found upright and both eyes detected"
    )
    report["prior"] = {
        "start": [list(p) for p in prior],
        "settled_on": [list(p) for p in settled],
        "images": min(prior_images, len(chosen)),
    }
    return report


def template_lines(report: dict) -> Iterator[str]:
    for name in ("eyes", "eyes_in_box"):
        (lx, ly), (rx, ry) = report[name]["median"]
        yield f"{name.upper()}: tuple[Point, Point] = (({lx:.4f}, {ly:.4f}), ({rx:.4f}, {ry:.4f}))"
    cx, cy, w = report["face_box"]["median"]
    yield f"FACE_BOX: tuple[float, float, float] = ({cx:.4f}, {cy:.4f}, {w:.4f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.align_calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--celeba", type=Path, required=True, help="CelebA root (holding img_align_celeba/)")
    parser.add_argument("--first", type=int, default=1, help="first image (1-based, file-name order)")
    parser.add_argument("--last", type=int, default=9000, help="last image: 9,000 keeps the held-out 1,000 out")
    parser.add_argument("--stride", type=int, default=1, help="every Nth image of the range (1: all)")
    parser.add_argument("--prior-images", type=int, default=1000, help="images that settle the eye search's prior")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per CPU)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON report")
    args = parser.parse_args(argv)
    if not 1 <= args.first <= args.last or args.stride < 1:
        parser.error(
            f"--first {args.first} --last {args.last} --stride {args.stride}: need 1 <= first <= last, stride >= 1"
        )
    try:
        report = calibrate(args.celeba, args.first, args.last, args.stride, args.prior_images, args.workers)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["counts"]))
    print("# photos/template.py:")
    for line in template_lines(report):
        print(line)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
