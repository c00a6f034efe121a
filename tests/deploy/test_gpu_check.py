"""``make gpu-check`` (scripts/gpu_check.py), on the CPU: what it can show without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_without_a_gpu_it_reports_why_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_check.main([]) == 1
    report = json.loads(capsys.readouterr().out)  # one JSON object, nothing else on stdout
    assert report["ok"] is False and "no CUDA device" in report["error"]


def test_the_make_target_runs_the_script_without_rebuilding_the_venv() -> None:
    done = subprocess.run(["make", "-n", "gpu-check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and "scripts/gpu_check.py" in done.stdout and "pip install" not in done.stdout


def test_the_training_timing_times_both_input_modes(tmp_path: Path) -> None:
    """The timing loop itself, tiny and on the CPU (where both modes are the same code path)."""
    model = {"synthetic_size": 32, "image_size": 32, "batch_size": 8, "ngf": 8, "ndf": 8}
    result = gpu_check.time_training(2, 1, tmp_path / "run", device="cpu", **model)
    assert set(result["seconds"]) == {"pinned", "blocking"} and result["steps"] == 2
    assert result["pinned_speedup"] > 0


def test_the_serving_timing_times_both_configurations() -> None:
    """The forward timing on the CPU (the flags it sets are CUDA's: the CPU's pixels do not move)."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        result = gpu_check.time_serving(chunk_rows=64, repeats=1, device="cpu")
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert set(result["defaults_ms"]) == set(result["contract_ms"]) == {"n=1", "n=256"}
