"""training.invert_eval end to end on a tiny generator, its encoder and a slice of CelebA: every table is
written, and the README states the targets."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from inversion import Encoder, EncoderConfig, default_path, save_encoder
from models import DCGANConfig, read_export_info
from tests.conftest import REPO, tiny_export
from training.invert_eval import main

TINY64 = DCGANConfig(nz=16, ngf=8, ndf=8, image_size=64)  # the attribute classifier reads 64x64


def test_a_tiny_evaluation_writes_every_table(tmp_path: Path, celeba_slice: Path) -> None:
    export = tiny_export(tmp_path / "g.safetensors", TINY64)
    torch.manual_seed(0)
    save_encoder(
        Encoder(EncoderConfig.for_generator(TINY64, 8)).eval(), default_path(export), read_export_info(export), {}
    )
    out = tmp_path / "docs"
    args = ["--checkpoint", str(export), "--celeba", str(celeba_slice), "--out", str(out), "--max-images", "60"]
    args += ["--holdout", "10", "--images", "4", "--baseline-images", "2", "--steps", "2", "--starts", "2"]
    args += ["--seeds", "8", "--round-trip", "2", "--latency-faces", "1", "--cache-dir", str(tmp_path / "cache")]
    args += ["--classifier", str(REPO / "checkpoints" / "attributes-64.safetensors")]
    assert main(args) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["images"]["files"] == "000051.jpg..000054.jpg"
    assert set(report["fidelity"]) == {
        "mean_face",
        "best_of_8_seeds",
        "encoder_alone",
        "random_start_optimisation",
        "hybrid",
    }
    assert set(report["round_trip"]) == {"encoder", "hybrid", "pixels_only"}
    assert report["latency"]["faithful"]["cpu_median_s"] > 0
    readme = (out / "README.md").read_text()
    assert "## Targets" in readme and "held-out median PSNR" in readme
    with Image.open(out / "figure.png") as figure:
        assert figure.size == (4 * 128, 28 + 4 * 128)  # input, aligned, fast, faithful; no directions in a tiny export
