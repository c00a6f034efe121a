from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from training.cli import main, parse_config
from training.config import TrainConfig


def test_json_round_trip(tiny_config: Callable[..., TrainConfig]) -> None:
    config = tiny_config(lr=1e-3, export="x.safetensors")
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.model.image_size == 32 and config.model.channels == 3


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown training config key 'learning_rate'"):
        TrainConfig.from_dict({"dataset": "synthetic", "learning_rate": 0.1})


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        ({"batch_size": 0}, "--batch-size"),
        ({"image_size": 48}, "--image-size"),
        ({"lr": -1.0}, "--lr"),
        ({"beta1": 1.5}, "--beta1"),
        ({"ema_decay": 1.0}, "--ema-decay"),
        ({"steps": 0}, "--steps"),
        ({"steps": 5, "epochs": 2}, "--steps and --epochs"),
        ({"dataset": "imagenet"}, "--dataset"),
        ({"dataset": "folder"}, "--data is required"),
        ({"device": "tpu"}, "--device"),
        ({"ngf": 0}, "--ngf"),
        ({"sample_every": -3}, "--sample-every"),
    ],
)
def test_bad_values_name_the_option(overrides: dict[str, object], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        TrainConfig(**{"dataset": "synthetic", **overrides})  # type: ignore[arg-type]


def test_cli_builds_the_config() -> None:
    config, dry_run = parse_config(["--dataset", "synthetic", "--batch-size", "16", "--steps", "9", "--amp"])
    assert (config.batch_size, config.steps, config.amp, config.tensorboard, dry_run) == (16, 9, True, True, False)


def test_dry_run_prints_the_resolved_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["--dataset", "lfw-sample", "--ngf", "32", "--out", f"{tmp_path}/run", "--no-tensorboard", "--dry-run"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["ngf"] == 32 and printed["tensorboard"] is False and printed["lr"] == 2e-4
    assert TrainConfig.from_dict(printed).dataset == "lfw-sample"
    assert not (tmp_path / "run").exists()


def test_cli_rejects_bad_values_before_work(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", "synthetic", "--batch-size", "0"])
    assert exc.value.code == 2
    assert "--batch-size must be an integer" in capsys.readouterr().err


def test_missing_cuda_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["--dataset", "synthetic", "--device", "cuda", "--out", f"{tmp_path}/run"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda: no CUDA device" in err and ("driver" in err or "CPU wheel" in err)  # says why


def test_the_allocator_keeps_freed_memory_on_glibc() -> None:
    import platform

    from training.allocator import keep_freed_memory

    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
