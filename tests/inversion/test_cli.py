"""``dcgan-invert``: per photo an aligned crop, a reconstruction and latent.json; a bad photo is reported
on its own line, the others go on, and the exit status says something failed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inversion.cli import main
from models import DCGANConfig, load_generator
from models.sampling import render
from tests.conftest import celeba_photos, tiny_encoder, tiny_export

TINY = DCGANConfig(nz=16, ngf=8, ndf=8, image_size=32)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tiny_export(tmp_path_factory.mktemp("cli") / "tiny.safetensors", TINY, steps=1)
    tiny_encoder(path)
    return path


def _png(path: Path, size: tuple[int, int] = (40, 48), seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_writes_crop_reconstruction_and_latent(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = [_png(tmp_path / "a.png"), _png(tmp_path / "sub-a.png", seed=1)]
    (tmp_path / "again").mkdir()
    photos.append(_png(tmp_path / "again" / "a.png", seed=2))  # same stem: its own folder
    out = tmp_path / "out"
    code = main([*map(str, photos), "--out", str(out), "--checkpoint", str(export), "--steps", "3", "--no-align"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a", "a-2", "sub-a"]
    record = json.loads((out / "a" / "latent.json").read_text())
    assert (record["mode"], record["steps"], record["face_box"]) == ("faithful", 3, None)
    assert len(record["latent"]) == TINY.nz and record["model_id"].startswith("tiny-")
    assert {"psnr", "ssim", "seconds", "eyes", "faces_found", "note"} <= record.keys()
    crop = np.asarray(Image.open(out / "a" / "aligned.png"))
    recon = np.asarray(Image.open(out / "a" / "reconstruction.png"))
    assert crop.shape == recon.shape == (32, 32, 3)
    generator, _ = load_generator(export)  # the reconstruction is the latent's face as the service draws it
    assert np.array_equal(render(generator, torch.tensor([record["latent"]]))[0].numpy(), recon)
    assert "3 of 3 photo(s) inverted" in capsys.readouterr().err


def test_bad_photos_are_reported_and_the_rest_go_on(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _png(tmp_path / "good.png")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    missing = tmp_path / "missing.png"
    wall = tmp_path / "wall.png"
    Image.new("RGB", (120, 150), (200, 190, 170)).save(wall)
    out = tmp_path / "out"
    code = main([str(good), str(text), str(missing), "--out", str(out), "--checkpoint", str(export), "--mode", "fast",
                 "--no-align"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "notes.jpg: the upload is not a JPEG, PNG, WebP or GIF image" in err
    assert "missing.png: [Errno 2] No such file" in err
    assert "1 of 3 photo(s) inverted" in err
    assert (out / "good" / "latent.json").is_file() and not (out / "notes").exists()
    assert main([str(wall), "--out", str(out), "--checkpoint", str(export), "--mode", "fast"]) == 1
    assert "no face found" in capsys.readouterr().err


def test_model_without_encoder_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tiny_export(tmp_path / "bare.safetensors", TINY)
    assert main([str(_png(tmp_path / "a.png")), "--out", str(tmp_path / "o"), "--checkpoint", str(bare)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dcgan-invert: error:") and "bare.encoder.safetensors" in err and "\n" not in err


def test_a_held_out_celeba_face(export: Path, tmp_path: Path) -> None:
    photo = celeba_photos(["009500.jpg"], tmp_path)["009500.jpg"]
    assert main([str(photo), "--out", str(tmp_path / "out"), "--checkpoint", str(export), "--mode", "fast"]) == 0
    record = json.loads((tmp_path / "out" / "009500" / "latent.json").read_text())
    assert record["faces_found"] >= 1 and len(record["face_box"]) == 4 and record["eyes"] is not None
    assert Image.open(io.BytesIO((tmp_path / "out" / "009500" / "aligned.png").read_bytes())).size == (32, 32)
