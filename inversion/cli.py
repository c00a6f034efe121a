"""``dcgan-invert PHOTO... --out DIR``: each photo aligned as CelebA is, inverted, and written out.

Per photo, ``DIR/<photo stem>/`` gets ``aligned.png`` (the crop the latent was fitted to),
``reconstruction.png`` (the generator's face for the latent, the pixels ``/generate`` draws for it) and
``latent.json`` (latent, psnr, ssim, mode, steps, seconds, model id, face box, eyes, faces found, note).
A photo that cannot be used (not an image, no face...) is reported on its own line and the others go on;
the exit status is 1 if any photo failed, 2 if the model or encoder cannot be loaded.

The same pipeline as ``POST /invert`` (``inversion.photo``); it imports neither ``app`` nor ``training``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from inversion.encoder import default_path, load_encoder
from inversion.photo import PhotoInversion, invert_photo
from inversion.refine import DEFAULT_STEPS, MAX_STEPS
from models import load_generator
from photos.align import NoFaceError
from photos.decode import UploadError

DEMO = Path(__file__).resolve().parent.parent / "checkpoints" / "demo-faces-64.safetensors"
MAX_PHOTO_BYTES = 64 << 20  # a photo file larger than this is refused before it is read


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcgan-invert",
        description="Invert face photos: aligned crop, reconstruction and latent.json per photo.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="JPEG, PNG, WebP or still GIF files")
    p.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per photo)")
    p.add_argument("--checkpoint", type=Path, default=DEMO, help="generator export (.safetensors)")
    p.add_argument("--encoder", type=Path, help="encoder file (default: <export stem>.encoder.safetensors beside it)")
    p.add_argument("--mode", choices=("fast", "faithful"), default="faithful", help="fast: encoder only")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"faithful's optimiser steps (1..{MAX_STEPS})")
    p.add_argument("--no-align", action="store_true", help="photos are already aligned square crops")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    return p


def _folders(photos: list[Path], out: Path) -> list[Path]:
    """One output folder per photo, named by its stem; repeated stems get -2, -3..."""
    seen: dict[str, int] = {}
    folders = []
    for photo in photos:
        seen[photo.stem] = seen.get(photo.stem, 0) + 1
        folders.append(out / (photo.stem if seen[photo.stem] == 1 else f"{photo.stem}-{seen[photo.stem]}"))
    return folders


def _write(folder: Path, r: PhotoInversion, model_id: str, mode: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(r.aligned.crop)).save(folder / "aligned.png")
    Image.fromarray(r.reconstruction).save(folder / "reconstruction.png")
    a = r.aligned
    record = {
        "model_id": model_id, "mode": mode, "steps": r.steps, "seconds": round(r.seconds, 4),
        "psnr": round(r.psnr, 3), "ssim": round(r.ssim, 4), "latent": r.z.tolist(),
        "face_box": None if a.face_box is None else list(a.face_box),
        "eyes": None if a.eyes is None else [[round(float(c), 2) for c in eye] for eye in a.eyes],
        "faces_found": a.faces_found, "note": a.note,
    }  # fmt: skip
    (folder / "latent.json").write_text(json.dumps(record, indent=1) + "\n")


def _read(photo: Path) -> bytes:
    if photo.stat().st_size > MAX_PHOTO_BYTES:
        raise UploadError("too_large", f"the file is over {MAX_PHOTO_BYTES:,} bytes")
    return photo.read_bytes()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.mode == "faithful" and not 1 <= args.steps <= MAX_STEPS:
        _parser().error(f"--steps must be in 1..{MAX_STEPS}, got {args.steps}")
    try:
        generator, info = load_generator(str(args.checkpoint), torch.device(args.device))
        encoder_file = args.encoder or default_path(args.checkpoint)
        encoder, _ = load_encoder(encoder_file, expect_generator=info, device=args.device)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"dcgan-invert: error: {e}", file=sys.stderr)
        return 2
    failed = 0
    bar = tqdm(list(zip(args.photos, _folders(args.photos, args.out), strict=True)), unit="photo", file=sys.stderr)
    for photo, folder in bar:
        bar.set_description(photo.name[:30])
        try:
            r = invert_photo(
                generator, encoder, _read(photo), mode=args.mode, steps=args.steps, align=not args.no_align
            )
            _write(folder, r, info.model_id, args.mode)
            bar.set_postfix(psnr=f"{r.psnr:.1f}", ssim=f"{r.ssim:.3f}")
        except (UploadError, NoFaceError, OSError) as e:
            failed += 1
            tqdm.write(f"dcgan-invert: {photo}: {e}", file=sys.stderr)
    bar.close()
    done = len(args.photos) - failed
    print(f"dcgan-invert: {done} of {len(args.photos)} photo(s) inverted into {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
