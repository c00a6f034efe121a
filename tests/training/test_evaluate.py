"""Quality evaluation: SWD during training and in the export, the evaluator CLI, the sampling CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import load_generator
from models.latent import latents_for_seeds
from models.sampling import render
from training import evaluate, sample
from training.config import TrainConfig
from training.distributed import Dist
from training.logs import read_log
from training.loop import train

CPU = torch.device("cpu")


def test_eval_every_logs_swd_and_the_export_records_it(tiny_config: Callable[..., TrainConfig]) -> None:
    config = tiny_config(steps=4, holdout=8, eval_every=2, eval_images=8, snapshot_every=2)
    train(config, Dist(), CPU)
    run = Path(config.out)
    evals = [r for r in read_log(run) if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["swd_mean"] > 0 and {"swd_32", "swd_16"} <= r.keys() and r["eval_images"] == 8 for r in evals)
    _, info = load_generator(run / "generator.safetensors")
    assert info.provenance["quality"] == {k: v for k, v in evals[-1].items() if k not in ("event", "step")}
    assert info.provenance["selection"] == {"max_images": None, "holdout": 8, "trained_on": ""}
    (snapshot,) = sorted((run / "snapshots").iterdir())
    assert snapshot.name == "generator-step-0000002.safetensors"
    assert load_generator(snapshot)[1].provenance["steps"] == 2


def test_without_a_holdout_nothing_is_measured(tiny_config: Callable[..., TrainConfig]) -> None:
    config = tiny_config(steps=2, eval_every=1)
    train(config, Dist(), CPU)
    assert not [r for r in read_log(Path(config.out)) if r.get("event") == "eval"]
    assert load_generator(Path(config.out) / "generator.safetensors")[1].provenance["quality"] == {}


def test_evaluator_cli_prints_the_scale_in_one_run(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(steps=3, holdout=8, synthetic_size=40)
    train(config, Dist(), CPU)
    out = tmp_path / "quality.json"
    ckpt = str(Path(config.out) / "generator.safetensors")
    argv = ["--run", config.out, "--checkpoint", ckpt, "--floor", "--random-init", "--n", "8", "--json", str(out)]
    assert evaluate.main(argv) == 0
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert list(rows) == [
        "floor: training vs held-out images",
        "random-init generator",
        ckpt,
        "ema, BN recalibrated (exported)",
        "raw, BN recalibrated",
        "ema, train-mode BN",
        "ema, inherited running stats",
    ]
    assert rows["floor: training vs held-out images"]["swd_mean"] < rows["random-init generator"]["swd_mean"]
    assert "swd_32" in rows[ckpt] and rows[ckpt]["swd_mean"] > 0
    printed = capsys.readouterr().out
    assert "random-init generator" in printed and " 32px " in printed
    other = tmp_path / "other-faces.json"
    assert evaluate.main([*argv[:4], "--n", "8", "--seed-base", "2000000", "--json", str(other)]) == 0
    assert json.loads(other.read_text())["rows"][0]["swd_mean"] != rows[ckpt]["swd_mean"]  # other generated faces


def test_evaluator_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate.main(["--dataset", "synthetic", "--holdout", "0", "--floor"]) == 2
    assert "--holdout is 0" in capsys.readouterr().err
    assert evaluate.main(["--dataset", "synthetic", "--holdout", "8", "--checkpoint", str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_sample_cli_writes_seed_named_pngs_of_the_served_pixels(tiny_checkpoint: Path, tmp_path: Path) -> None:
    assert (
        sample.main(
            ["--checkpoint", str(tiny_checkpoint), "--n", "5", "--out", str(tmp_path / "s"), "--first-seed", "40"]
        )
        == 0
    )
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == [f"seed-{s:07d}.png" for s in range(40, 45)]
    generator, _ = load_generator(tiny_checkpoint)
    expected = render(generator, latents_for_seeds([42], generator.config.nz))[0].numpy()  # (S, S, C)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s" / "seed-0000042.png")), expected)
    with pytest.raises(SystemExit):
        sample.main(["--checkpoint", str(tiny_checkpoint), "--n", "0", "--out", str(tmp_path / "t")])
