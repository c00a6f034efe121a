"""DCGAN_PRECISION: fp32 by default and unchanged; bf16 opt-in, refused at startup where the CPU would emulate
it, its own model id (PNG text, headers, /v1/model), and the byte contract within it: the same seed gives
the same bytes whatever the batch size (1, 7, 64, 256), the position and the neighbours."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from app.compute.engine import Engine, StartupError
from app.runtime.settings import Settings
from models import latents_for_seeds, precision
from models.sampling import render
from tests.app.conftest import assert_batch_independent, serve
from tests.conftest import REPO

NATIVE_BF16 = bool(precision.cpu_bf16_support())
needs_bf16 = pytest.mark.skipif(
    not NATIVE_BF16, reason="this CPU has neither AVX-512 BF16 nor AMX: DCGAN_PRECISION=bf16 is refused here"
)
NO_BF16 = frozenset({"avx2", "avx512f"})  # a CPU with AVX-512 but no bf16 dot products


def no_bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: NO_BF16)


def test_precision_setting_is_fp32_or_bf16() -> None:
    assert Settings().precision == "fp32"
    with pytest.raises(ValidationError, match="precision"):
        Settings(precision="fp16")  # type: ignore[arg-type]


def test_bf16_refused_on_a_cpu_without_native_bf16(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_bf16_cpu(monkeypatch)
    for call in (Engine.load, Engine.preflight):
        with pytest.raises(StartupError, match=r"DCGAN_PRECISION=bf16: bf16 on the CPU needs AVX-512 BF16 or AMX"):
            call(str(checkpoint), "cpu", "bf16")
    Engine.load(str(checkpoint), "cpu", "fp32")  # fp32 is never gated


def test_dcgan_serve_says_why_in_one_line(checkpoint: Path) -> None:
    """The real entry point on a CPU without bf16 (simulated: the gate reads an empty /proc/cpuinfo)."""
    code = (
        "import sys; from models import precision; precision.cpu_flags = lambda cpuinfo=None: frozenset(); "
        "from app.__main__ import main; sys.exit(main())"
    )
    env = os.environ | {"DCGAN_CHECKPOINT": str(checkpoint), "DCGAN_DEVICE": "cpu", "DCGAN_PRECISION": "bf16"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcgan-serve: error: DCGAN_PRECISION=bf16: bf16 on the CPU"), lines


@pytest.mark.anyio
async def test_fp32_is_the_default_and_says_so(make_settings: Callable[..., Settings], checkpoint: Path) -> None:
    async with serve(make_settings()) as served:
        model = (await served.http.get("/v1/model")).json()
        r = await served.http.post("/generate", params={"n": 1, "seed": 3})
    assert model["precision"] == "fp32" and model["dtype"] == "float32"
    assert not model["model_id"].endswith("-bf16") and r.headers["x-model-id"] == model["model_id"]
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.text["dcgan:model_id"] == model["model_id"]  # type: ignore[attr-defined]


@needs_bf16
@pytest.mark.anyio
async def test_bf16_is_another_model_id_everywhere(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as served:
        fp32 = (await served.http.get("/v1/model")).json()
        fp32_png = (await served.http.post("/generate", params={"n": 1, "seed": 3})).content
    async with serve(make_settings(precision="bf16")) as served:
        model = (await served.http.get("/v1/model")).json()
        r = await served.http.post("/generate", params={"n": 1, "seed": 3})
        metric = served.metric("dcgan_model_info", model_id=model["model_id"], sha256=model["sha256"],
                               image_size="32", nz="16", device="cpu", dtype="bfloat16")  # fmt: skip
    assert model["precision"] == "bf16" and model["dtype"] == "bfloat16" and metric == 1
    assert model["model_id"] == fp32["model_id"] + "-bf16" and model["sha256"] == fp32["sha256"]
    assert r.headers["x-model-id"] == model["model_id"]
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.text["dcgan:model_id"] == model["model_id"]  # type: ignore[attr-defined]
    assert r.content != fp32_png


@needs_bf16
@pytest.mark.parametrize("chunk_rows", [None, 64])
def test_bf16_pixels_ignore_batch_size_position_and_neighbours(checkpoint: Path, chunk_rows: int | None) -> None:
    """256 seeds rendered one per forward are the reference; then batches of 1, 7, 64 and 256 (shuffled,
    so every seed meets other neighbours at another position), whole or in the server's 64-row pieces."""
    engine = Engine.load(str(checkpoint), "cpu", "bf16")
    engine.chunk_rows = chunk_rows
    assert next(engine.generator.parameters()).dtype == torch.bfloat16
    assert_batch_independent(engine)  # whole, or in the server's 64-row pieces


@needs_bf16
def test_bf16_leaves_fp32_alone(checkpoint: Path) -> None:
    """The bf16 engine renders from a copy: an fp32 engine of the same file gives its fp32 pixels, and
    bf16 stays close to them (a tiny random-init model: the demo's figures are in docs/benchmarks)."""
    fp32, bf16 = Engine.load(str(checkpoint), "cpu"), Engine.load(str(checkpoint), "cpu", "bf16")
    z = latents_for_seeds(range(16), fp32.nz)
    assert next(fp32.generator.parameters()).dtype == torch.float32
    assert torch.equal(fp32.forward(z), render(Engine.load(str(checkpoint), "cpu").generator, z))
    difference = (fp32.forward(z).int() - bf16.forward(z).int()).abs()
    assert difference.float().mean() < 2 and difference.max() < 32


@needs_bf16
@pytest.mark.anyio
async def test_bf16_same_png_bytes_whatever_n_and_position(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(precision="bf16")) as served:

        async def pngs(n: int, seed: int) -> dict[int, str]:
            r = await served.http.post("/generate", params={"format": "json", "n": n, "seed": seed})
            assert r.status_code == 200, r.text
            return {item["seed"]: item["png"] for item in r.json()["images"]}

        alone = await pngs(1, 100)
        for n, first in ((7, 97), (64, 60)):  # seed 100 at positions 3 and 40
            assert (await pngs(n, first))[100] == alone[100], (n, first)
