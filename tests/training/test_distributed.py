from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models import load_generator
from training.logs import read_log

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_gloo_processes_train_and_only_rank0_writes(tmp_path: Path) -> None:
    """torchrun --nproc_per_node=2 on CPU: DDP over gloo, sharded data, one run dir written by rank 0."""
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "training", "--dataset", "synthetic", "--synthetic-size", "32", "--image-size", "32",
        "--nz", "16", "--ngf", "8", "--ndf", "8", "--batch-size", "8", "--steps", "3", "--log-every", "1",
        "--bn-recal-samples", "32", "--device", "cpu", "--no-tensorboard", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_log(out)
    (data,) = [r for r in records if r.get("event") == "data"]  # one writer: a single data record
    assert data["world"] == 2 and data["steps_per_epoch"] == 4  # 32 images / global batch 8
    assert [r["step"] for r in records if r.get("event") == "step"] == [1, 2, 3]
    _, info = load_generator(out / "generator.safetensors")
    assert info.provenance["steps"] == 3
    assert (out / "state.safetensors").is_file()
