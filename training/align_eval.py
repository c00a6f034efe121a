"""Alignment error on held-out CelebA: photos moved by known amounts, realigned, compared in px at 64x64.

    python -m training.align_eval --celeba ROOT      # images 9,001-10,000 -> docs/inversion/alignment.{json,png}

Each held-out image (89x109 in the shared subset, 178x218 in CelebA) is upscaled to ``--photo-height`` px
high, so the detector has pixels to work with, then rotated, scaled and shifted by random known amounts
(one ``numpy`` generator, ``--seed``) onto a larger canvas whose edges repeat the photo's, as a photo with
the face off-centre and tilted would be. ``photos.align_face`` realigns it. Because every map is known, the
aligned crop can be compared with the image's training crop (``photos.resize_center_crop``, what G learned
from) exactly:

- eye error: the map from the training crop to the aligned crop (framing^-1, then perturbation, then the
  alignment's similarity) should be the identity; how far it moves the template's two eye points, in px
  at 64x64, is the error (averaged over the two eyes). Also its rotation (degrees) and scale (%) error.
- repeatability: the same with the unperturbed photo's alignment in place of the training crop: how much the
  alignment of one face moves when the photo is moved, whatever CelebA's own framing did.
- pixels: mean absolute difference (0-255) and PSNR between the aligned crop and the training crop.
- the baseline: the perturbed photo framed as ``align=false`` frames it (resize and centre crop).
- detection: the share of photos where a face was found, and where both eyes were.

Each figure is given for ``align_face``'s transform (``face_box``: the box's centre and width, the eyes'
angle) and for the eyes alone (``eyes_only``), from the same detections. ``--detections FILE`` keeps the
detections (the slow part), so a changed template is measured again in a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from photos import Landmarks, NoFaceError, eye_transform, face_transform, locate_face, resize_center_crop, warp
from photos.detect import to_pixel_centres
from photos.template import EYES, FACE_BOX
from training.data import celeba_root, image_files

SIZE = 64
DEFAULT_JSON = Path("docs/inversion/alignment.json")


@dataclass(frozen=True)
class Perturbation:
    roll: float  # degrees, anticlockwise as seen
    scale: float  # relative to the upscaled photo
    shift: tuple[float, float]  # of the face centre, as fractions of the canvas side


@dataclass(frozen=True)
class Trial:
    """One photo: what the detector found on the perturbed canvas and on the upright (upscaled) photo."""

    name: str
    perturbation: Perturbation
    perturbed: Landmarks | None  # None: no face found
    upright: Landmarks | None


def draw_perturbations(
    count: int, seed: int, max_roll: float, max_scale: float, max_shift: float
) -> list[Perturbation]:
    rng = np.random.default_rng(seed)
    return [
        Perturbation(
            roll=float(rng.uniform(-max_roll, max_roll)),
            scale=float(math.exp(rng.uniform(-math.log(max_scale), math.log(max_scale)))),
            shift=(float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift))),
        )
        for _ in range(count)
    ]


@dataclass(frozen=True)
class Scene:
    """One held-out photo, upscaled and perturbed, with every map between them (3x3, continuous coordinates)."""

    original: np.ndarray  # (h, w, 3) the file's pixels
    photo: np.ndarray  # upscaled
    canvas: np.ndarray  # perturbed
    up: np.ndarray  # file -> photo
    moved: np.ndarray  # photo -> canvas
    framing: np.ndarray  # file -> training crop

    @classmethod
    def build(cls, path: Path, p: Perturbation, photo_height: int, canvas_ratio: float) -> Scene:
        with Image.open(path) as img:
            original = np.asarray(img.convert("RGB"))
        h, w = original.shape[:2]
        k = photo_height / h
        up = np.array([[k, 0.0, 0.0], [0.0, k, 0.0], [0.0, 0.0, 1.0]])
        photo_size = (round(w * k), round(h * k))
        photo = cv2.resize(original, photo_size, interpolation=cv2.INTER_CUBIC)
        canvas_size = (round(photo_size[0] * canvas_ratio), round(photo_size[1] * canvas_ratio))
        moved = perturb_matrix(p, photo_size, canvas_size)
        canvas = cv2.warpAffine(
            photo, to_pixel_centres(moved[:2]), canvas_size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
        )
        return cls(original, photo, canvas, up, moved, framing_matrix(w, h))

    def reference(self) -> np.ndarray:
        """The training crop (64, 64, 3): what G learned from."""
        return resize_center_crop(Image.fromarray(self.original), SIZE)


def perturb_matrix(p: Perturbation, photo: tuple[int, int], canvas: tuple[int, int]) -> np.ndarray:
    """3x3: the upscaled photo -> the canvas: rotate (anticlockwise as seen) and scale about the photo's
    centre, which lands at the canvas centre plus the shift."""
    (w, h), (cw, ch) = photo, canvas
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), p.roll, p.scale)  # continuous coordinates
    rot[:, 2] += np.array([cw / 2 - w / 2 + p.shift[0] * cw, ch / 2 - h / 2 + p.shift[1] * ch])
    return np.vstack([rot, [0.0, 0.0, 1.0]])


def framing_matrix(width: int, height: int, size: int = SIZE) -> np.ndarray:
    """3x3: an image's pixels -> its ``resize_center_crop`` crop's (the same arithmetic, as a map)."""
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.array([[new_w / width, 0.0, -left], [0.0, new_h / height, -top], [0.0, 0.0, 1.0]])


def run_trial(path: Path, p: Perturbation, photo_height: int, canvas_ratio: float) -> Trial:
    scene = Scene.build(path, p, photo_height, canvas_ratio)
    return Trial(path.name, p, _locate(scene.canvas), _locate(scene.photo))


def _locate(rgb: np.ndarray) -> Landmarks | None:
    try:
        return locate_face(Image.fromarray(rgb))
    except NoFaceError:
        return None


def _trial_job(args: tuple[Path, Perturbation, int, float]) -> Trial:
    return run_trial(*args)


# The two ways to turn landmarks into the crop's similarity: the one align_face uses (the face box's centre
# and width, the eyes' angle), and the eyes alone (onto template.EYES; estimated from the box when missing).
METHODS: dict[str, Callable[[Landmarks], np.ndarray]] = {
    "face_box": lambda found: face_transform(found, SIZE),
    "eyes_only": lambda found: eye_transform(found.eyes_or_estimate(), SIZE),
}


def _as3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def _eye_error(composite: np.ndarray) -> tuple[float, float, float]:
    """(mean displacement of the template eyes in px, rotation in degrees, scale error in %) of a 3x3 map
    that should be the identity."""
    points = np.array(EYES) * SIZE  # (2, 2)
    moved = points @ composite[:2, :2].T + composite[:2, 2]
    displacement = float(np.linalg.norm(moved - points, axis=1).mean())
    rotation = math.degrees(math.atan2(composite[1, 0] - composite[0, 1], composite[0, 0] + composite[1, 1]))
    scale = math.sqrt(abs(np.linalg.det(composite[:2, :2])))
    return displacement, rotation, 100 * (scale - 1)


def measure(trials: Sequence[Trial], root: Path, photo_height: int, canvas_ratio: float) -> dict:
    """Every figure of the module docstring, for each method, from the trials (warps only, no detection)."""
    keys = ("eye_px", "roll_deg", "scale_pct", "repeat_px", "mae", "psnr", "upright_eye_px")
    rows = {m: {k: [] for k in keys} for m in METHODS}  # type: dict[str, dict[str, list[float]]]
    baseline: list[float] = []
    for t in trials:
        scene = Scene.build(root / t.name, t.perturbation, photo_height, canvas_ratio)
        from_crop = scene.moved @ scene.up @ np.linalg.inv(scene.framing)  # training crop -> canvas
        canvas_h, canvas_w = scene.canvas.shape[:2]
        baseline.append(_eye_error(framing_matrix(canvas_w, canvas_h) @ from_crop)[0])  # align=false's crop
        reference = scene.reference()
        for name, transform in METHODS.items():
            row = rows[name]
            upright = None if t.upright is None else _as3(transform(t.upright))  # photo -> its aligned crop
            if upright is not None:
                row["upright_eye_px"].append(_eye_error(upright @ scene.up @ np.linalg.inv(scene.framing))[0])
            if t.perturbed is None:
                continue
            aligned = _as3(transform(t.perturbed))  # canvas -> aligned crop
            error, roll, scale = _eye_error(aligned @ from_crop)
            row["eye_px"].append(error)
            row["roll_deg"].append(abs(roll))
            row["scale_pct"].append(abs(scale))
            if upright is not None:  # the upright photo's aligned crop -> the perturbed one's: the identity?
                row["repeat_px"].append(_eye_error(aligned @ scene.moved @ np.linalg.inv(upright))[0])
            crop = warp(scene.canvas, aligned[:2], SIZE)
            row["mae"].append(_mae(crop, reference))
            row["psnr"].append(_psnr(crop, reference))
    n = len(trials)
    return {
        "photos": n,
        "face_found": round(sum(t.perturbed is not None for t in trials) / n, 4),
        "eyes_found": round(sum(t.perturbed is not None and t.perturbed.eyes is not None for t in trials) / n, 4),
        "upright_face_found": round(sum(t.upright is not None for t in trials) / n, 4),
        "align_false_eye_px": _summary(baseline),
        "methods": {m: {k: _summary(v) for k, v in r.items()} for m, r in rows.items()},
    }


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = np.asarray(values)
    return {
        "n": len(v),
        "mean": round(float(v.mean()), 3),
        "median": round(float(np.median(v)), 3),
        "p90": round(float(np.percentile(v, 90)), 3),
        "max": round(float(v.max()), 3),
    }


def figure(trials: Sequence[Trial], root: Path, photo_height: int, canvas_ratio: float, path: Path) -> None:
    """Rows of: the perturbed photo (eyes found: green; face box: yellow), its aligned crop, the training
    crop; the 64 px crops shown 4x, nearest neighbour."""
    cell = 256
    rows = []
    for t in trials:
        assert t.perturbed is not None
        scene = Scene.build(root / t.name, t.perturbation, photo_height, canvas_ratio)
        shown = Image.fromarray(scene.canvas)
        draw = ImageDraw.Draw(shown)
        draw.polygon([tuple(c) for c in t.perturbed.face_corners], outline=(255, 220, 0), width=2)
        for x, y in t.perturbed.eyes or ():
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=(0, 255, 0), width=2)
        shown = shown.resize((round(shown.width * cell / shown.height), cell), Image.Resampling.LANCZOS)
        aligned = warp(scene.canvas, face_transform(t.perturbed, SIZE), SIZE)
        crops = [
            Image.fromarray(c).resize((cell, cell), Image.Resampling.NEAREST) for c in (aligned, scene.reference())
        ]
        row = Image.new("RGB", (shown.width + 2 * cell + 16, cell), (255, 255, 255))
        for x, im in ((0, shown), (shown.width + 8, crops[0]), (shown.width + cell + 16, crops[1])):
            row.paste(im, (x, 0))
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 8 for r in rows) + 24), (255, 255, 255))
    caption = "perturbed photo (face box: yellow, eyes: green) | aligned 64x64 | training crop 64x64"
    ImageDraw.Draw(sheet).text((4, 6), caption, fill=(0, 0, 0))
    y = 24
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + 8
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.align_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--celeba", type=Path, required=True, help="CelebA root (holding img_align_celeba/)")
    parser.add_argument("--first", type=int, default=9001, help="first image (1-based): the held-out 1,000")
    parser.add_argument("--last", type=int, default=10000, help="last image")
    parser.add_argument("--seed", type=int, default=0, help="the perturbations' generator")
    parser.add_argument("--max-roll", type=float, default=20.0, help="degrees, uniform in +-this")
    parser.add_argument("--max-scale", type=float, default=1.25, help="log-uniform in [1/this, this]")
    parser.add_argument("--max-shift", type=float, default=0.08, help="of the canvas side, uniform in +-this")
    parser.add_argument("--photo-height", type=int, default=218, help="px the photo is upscaled to (CelebA's own)")
    parser.add_argument("--canvas-ratio", type=float, default=1.5, help="canvas side / photo side")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per CPU)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="the report")
    parser.add_argument("--figure", type=Path, default=DEFAULT_JSON.with_suffix(".png"), help="the figure")
    parser.add_argument(
        "--detections", type=Path, help="a JSON file of the detections: reused if it holds these jobs, else written"
    )
    args = parser.parse_args(argv)
    try:
        root = celeba_root(args.celeba)
        files, _ = image_files(root)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    chosen = files[args.first - 1 : args.last]
    if not chosen:
        parser.error(f"--first {args.first} --last {args.last}: no images in that range ({len(files)} found)")
    perturbations = draw_perturbations(len(chosen), args.seed, args.max_roll, args.max_scale, args.max_shift)
    jobs = [(p, q, args.photo_height, args.canvas_ratio) for p, q in zip(chosen, perturbations, strict=True)]
    trials = detect_all(jobs, args.workers, args.detections)
    report = measure(trials, root, args.photo_height, args.canvas_ratio)
    report["images"] = f"{chosen[0].name}..{chosen[-1].name}"
    report["perturbation"] = {
        "seed": args.seed,
        "max_roll_deg": args.max_roll,
        "max_scale": args.max_scale,
        "max_shift": args.max_shift,
        "photo_height": args.photo_height,
        "canvas_ratio": args.canvas_ratio,
    }
    report["template"] = {"eyes": [list(e) for e in EYES], "face_box": list(FACE_BOX)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    shown = [t for t in trials if t.perturbed is not None][:8]
    figure(shown, root, args.photo_height, args.canvas_ratio, args.figure)
    brief = {k: report[k] for k in ("photos", "face_found", "eyes_found", "align_false_eye_px")}
    brief |= {m: {k: r[k] for k in ("eye_px", "repeat_px", "scale_pct")} for m, r in report["methods"].items()}
    print(json.dumps(brief, indent=1))
    print(f"wrote {args.json} and {args.figure}")
    return 0


def detect_all(jobs: list[tuple[Path, Perturbation, int, float]], workers: int, cache: Path | None) -> list[Trial]:
    """The detections of every job (the slow part), read from ``cache`` (JSON) when it holds these very jobs."""
    key = json.loads(json.dumps([(p.name, asdict(q), h, r) for p, q, h, r in jobs]))  # as JSON reads it back
    if cache is not None and cache.is_file():
        saved = json.loads(cache.read_text())
        if saved["jobs"] == key:
            return [_trial_from_json(t) for t in saved["trials"]]
    if workers <= 1:
        trials = [_trial_job(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            trials = list(pool.map(_trial_job, jobs, chunksize=16))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"jobs": key, "trials": [asdict(t) for t in trials]}))
    return trials


def _trial_from_json(data: dict[str, Any]) -> Trial:
    """A Trial from ``asdict``'s JSON (lists back to the tuples the dataclasses hold)."""
    q = data["perturbation"]
    perturbation = Perturbation(q["roll"], q["scale"], (q["shift"][0], q["shift"][1]))
    return Trial(
        data["name"], perturbation, _landmarks_from_json(data["perturbed"]), _landmarks_from_json(data["upright"])
    )


def _landmarks_from_json(data: dict[str, Any] | None) -> Landmarks | None:
    if data is None:
        return None
    points = lambda ps: tuple((x, y) for x, y in ps)  # noqa: E731
    eyes = None if data["eyes"] is None else points(data["eyes"])
    box = tuple(data["face_box"])
    return Landmarks(box, eyes, data["faces_found"], data["roll_searched"], points(data["face_corners"]))  # type: ignore[arg-type]


if __name__ == "__main__":  # run the importable module's main (worker processes import it by that name)
    from training.align_eval import main as module_main

    raise SystemExit(module_main())
