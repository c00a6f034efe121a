"""The real thing: ``python -m app`` under uvicorn on 127.0.0.1, and startup failures that end the
process with one clear line."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image

from app.__main__ import main
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**values: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DCGAN_")}
    return clean | {f"DCGAN_{k.upper()}": v for k, v in values.items()}


@pytest.mark.slow
def test_uvicorn_serves_over_http(checkpoint: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=REPO,
        env=env(checkpoint=str(checkpoint), device="cpu", port=str(port), max_batch_images="16"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "exited"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready within 60 s"
            time.sleep(0.2)
        r = httpx.post(f"{base}/generate", params={"n": 4, "seed": 1}, timeout=10)
        assert r.status_code == 200 and r.headers["x-seeds"] == "1,2,3,4"
        assert Image.open(io.BytesIO(r.content)).format == "PNG"
        assert 'route="/generate"' in httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    # uvicorn re-raises the captured SIGTERM after a clean shutdown, so -SIGTERM is a clean exit too
    assert proc.returncode in (0, -signal.SIGTERM), out.decode()
    assert "Application shutdown complete" in out.decode()


def test_missing_checkpoint_exits_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "app"], cwd=REPO, env=env(checkpoint=str(missing), device="cpu"),
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
