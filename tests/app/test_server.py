"""The real thing: ``python -m app`` under uvicorn on 127.0.0.1, and startup failures that end the
process with one clear line."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image

from app.__main__ import main
from app.runtime.settings import Settings
from tests.live_server import REPO, SMALL_BATCHES, server_env, start_server


@pytest.mark.slow
def test_uvicorn_serves_over_http(checkpoint: Path, tmp_path: Path) -> None:
    server = start_server(checkpoint, tmp_path / "server.log", **SMALL_BATCHES)
    try:
        server.wait_ready()
        r = httpx.post(f"{server.base}/generate", params={"n": 4, "seed": 1}, timeout=10)
        assert r.status_code == 200 and r.headers["x-seeds"] == "1,2,3,4"
        assert Image.open(io.BytesIO(r.content)).format == "PNG"
        assert 'route="/generate"' in httpx.get(f"{server.base}/metrics", timeout=5).text
    finally:
        code = server.stop(drain=True)  # one SIGTERM: drain, then uvicorn's graceful shutdown
    out = server.log.read_text()
    # uvicorn re-raises the captured SIGTERM after a clean shutdown, so -SIGTERM is a clean exit too
    assert code in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out


def test_missing_checkpoint_exits_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "app"], cwd=REPO, env=server_env(checkpoint=str(missing), device="cpu"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(missing) in lines[0] and "no such file" in lines[0]


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **values: str) -> tuple[int, str]:
    for key in [k for k in os.environ if k.startswith("DCGAN_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(f"DCGAN_{key.upper()}", value)
    code = main()
    return code, capsys.readouterr().err.strip()


def test_corrupt_checkpoint_exits_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    code, err = run_main(monkeypatch, capsys, checkpoint=str(bad), device="cpu")
    assert code == 1 and len(err.splitlines()) == 1 and str(bad) in err and "corrupt" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_exits_with_one_line(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(monkeypatch, capsys, checkpoint=str(checkpoint), device="cuda")
    assert code == 1 and len(err.splitlines()) == 1 and "'cuda'" in err and "CUDA is not available" in err


@pytest.mark.parametrize(("key", "value"), [("port", "http"), ("device", "tpu"), ("max_batch_images", "0")])
def test_invalid_setting_exits_naming_the_variable(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    code, err = run_main(monkeypatch, capsys, checkpoint=str(checkpoint), **{key: value})
    assert code == 2 and len(err.splitlines()) == 1 and f"DCGAN_{key.upper()}" in err


def test_empty_environment_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose files write `DCGAN_API_KEY=` for "no key"; that must not demand an empty key."""
    monkeypatch.setenv("DCGAN_API_KEY", "")
    monkeypatch.setenv("DCGAN_TORCH_THREADS", "")
    settings = Settings()
    assert settings.api_key is None and settings.torch_threads is None
