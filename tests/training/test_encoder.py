"""dcgan-train-encoder: a two-step run on synthetic images writes an encoder bound to its export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inversion import default_path, load_encoder
from models import DCGANConfig, read_export_info
from tests.conftest import tiny_export
from training.encoder import main

TINY = DCGANConfig(nz=16, ngf=8, ndf=8, image_size=32)


def test_two_steps_on_synthetic_images_write_a_loadable_encoder(tmp_path: Path) -> None:
    export = tiny_export(tmp_path / "g.safetensors", TINY)
    args = ["--checkpoint", str(export), "--synthetic", "--steps", "2", "--fake-batch", "4", "--recon-fake", "2"]
    assert main([*args, "--real-batch", "2", "--width", "8", "--device", "cpu"]) == 0
    _, info = load_encoder(default_path(export), expect_generator=read_export_info(export))
    assert info.config.width == 8 and info.provenance["recipe"]["steps"] == 2
    assert set(info.provenance["final_losses"]) == {"latent", "recon", "shell"}
    assert info.provenance["data"]["dataset"] == "synthetic"


def test_dry_run_prints_the_config_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tiny_export(tmp_path / "g.safetensors", TINY)
    assert main(["--checkpoint", str(export), "--synthetic", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["out"] == str(default_path(export)) and config["steps"] > 0
    assert not default_path(export).exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--recon-fake", "99"], "--recon-fake must be in"), (["--steps", "0"], "--steps must be")],
)
def test_bad_options_are_named(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tiny_export(tmp_path / "g.safetensors", TINY)
    assert main(["--checkpoint", str(export), "--synthetic", *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_export_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--checkpoint", str(tmp_path / "absent.safetensors"), "--synthetic", "--steps", "1"]) == 2
    assert "no such file" in capsys.readouterr().err
