"""Training under faults: a hostile image folder trains with the bad files skipped and counted, and
SIGKILL at random moments (``scripts/kill_training.py``, fewer trials here) loses nothing.

tests/training/test_data.py already covers corrupt, truncated, zero-byte and text-named-.png files;
this adds every pixel mode, 16-bit and float images, a huge image and decompression-bomb headers.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.config import TrainConfig
from training.data import folder_images
from training.distributed import Dist
from training.logs import read_log
from training.loop import train

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "dataset": "folder", "image_size": 32, "nz": 16, "ngf": 8, "ndf": 8, "batch_size": 4, "steps": 2, "seed": 3,
    "device": "cpu", "log_every": 1, "sample_every": 1000, "checkpoint_every": 1000, "bn_recal_samples": 32,
    "tensorboard": False,
}  # fmt: skip


def png(width: int, height: int, depth: int = 8, colour: int = 2, raw: bytes = b"\x00") -> bytes:
    """A PNG whose IHDR says ``width`` x ``height`` (valid CRCs), whatever the data holds."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def hostile_folder(root: Path) -> tuple[int, int]:
    """Writes the folder; returns (images that must decode, image-named files that must be skipped)."""
    root.mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    base = Image.fromarray(rgb)
    good = {
        "grey.png": base.convert("L"), "grey-alpha.png": base.convert("LA"), "rgba.png": base.convert("RGBA"),
        "cmyk.jpg": base.convert("CMYK"), "palette.gif": base.convert("P"), "one-bit.bmp": base.convert("1"),
        "ycbcr.jpg": base.convert("YCbCr"), "rgb.webp": base, "rgb.tiff": base,
        "grey16.png": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
        "float.tiff": Image.fromarray(rgb[..., 0].astype(np.float32) / 255),
        "int32.tiff": Image.fromarray(rgb[..., 0].astype(np.int32)),
        "png-named.jpg": base,  # decoded by content, not by name
    }  # fmt: skip
    for name, image in good.items():
        image.save(root / name, format="PNG" if name == "png-named.jpg" else None)
    rows = b"".join(b"\x00" + bytes(range(8 * 6)) for _ in range(8))
    (root / "rgb16.png").write_bytes(png(8, 8, 16, 2, rows))  # 16-bit RGB
    Image.new("RGB", (8000, 8000), (90, 120, 200)).save(root / "huge-8000x8000.png")  # 64 MP: decoded, resized
    bad = {
        "bomb-100000x100000.png": png(100_000, 100_000),  # > 2x PIL's limit: refused at open
        "bomb-10000x10000.png": png(10_000, 10_000),  # between 1x and 2x: a warning, then skipped
        "zero.jpg": b"",
        "text.png": b"not an image at all",
        "truncated.png": (root / "rgb.tiff").read_bytes()[:100],
        "corrupt.webp": b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(64),
        "html.gif": b"<html><body>404</body></html>",
    }
    for name, data in bad.items():
        (root / name).write_bytes(data)
    (root / "notes.txt").write_text("no image extension: ignored")
    return len(good) + 2, len(bad)


@pytest.mark.filterwarnings("error")  # a DecompressionBombWarning raised as an error must be a skip, not a crash
def test_every_pixel_mode_decodes_and_every_bad_file_is_skipped(tmp_path: Path) -> None:
    decodable, bad = hostile_folder(tmp_path / "faces")
    images = folder_images(tmp_path / "faces", 32, tmp_path / "cache")
    assert images.images.shape == (decodable, 3, 32, 32)
    assert (images.skipped, images.ignored) == (bad, 1)


def test_a_hostile_folder_trains_and_logs_what_it_skipped(tmp_path: Path) -> None:
    decodable, bad = hostile_folder(tmp_path / "faces")
    config = TrainConfig(**TINY, data=str(tmp_path / "faces"), out=str(tmp_path / "run"), cache_dir=str(tmp_path / "c"))
    train(config, Dist(), torch.device("cpu"))
    data = next(r for r in read_log(tmp_path / "run") if r.get("event") == "data")
    assert (data["images"], data["skipped"], data["ignored"]) == (decodable, bad, 1)
    assert (tmp_path / "run" / "generator.safetensors").is_file()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    """3 kills (one per moment: mid-checkpoint-write, mid-training, mid-start-up) and a finishing run;
    the full >= 20-trial run is ``scripts/kill_training.py --trials 24``."""
    out = tmp_path / "kills.json"
    proc = subprocess.run(
        [sys.executable, "scripts/kill_training.py", "--trials", "3", "--final-steps", "5", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.is_file(), proc.stdout + proc.stderr
    figures = json.loads(out.read_text())
    assert proc.returncode == 0 and not figures["problems"], proc.stdout
    assert figures["killed"] == 3
    assert figures["final_export_steps"] == figures["last_checkpoint_step_before_final_run"] + 5
    assert figures["temp_files_left_in_run_dir"] <= 1  # a stale temp file is removed by the next save
