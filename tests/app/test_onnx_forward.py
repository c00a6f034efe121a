"""DCGAN_RUNTIME: PyTorch by default and unchanged; ONNX Runtime opt-in (CPU, fp32), refused clearly where it
cannot run, its own model id (``-ort``: PNG text, headers, /v1/model), pixels within a level of PyTorch's, and
the byte contract within it: the same seed gives the same bytes whatever the batch size (1, 7, 64, 256), the
position and the neighbours."""

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
from app.compute.onnx_forward import OnnxUnavailable, check_runtime
from app.runtime.settings import Settings
from models import latents_for_seeds
from tests.app.conftest import assert_batch_independent, serve
from tests.conftest import REPO

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def engines(checkpoint: Path) -> tuple[Engine, Engine]:
    """The test checkpoint's engines: PyTorch's and ONNX Runtime's (an export takes seconds: made once)."""
    return Engine.load(str(checkpoint), "cpu"), Engine.load(str(checkpoint), "cpu", runtime="onnxruntime")


def test_runtime_setting_is_torch_or_onnxruntime() -> None:
    assert Settings().runtime == "torch"
    with pytest.raises(ValidationError, match="runtime"):
        Settings(runtime="tensorrt")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("device", "precision", "says"),
    [
        (torch.device("cuda"), "fp32", r"runs on the CPU only, and the device is cuda \(set DCGAN_DEVICE=cpu"),
        (CPU, "bf16", r"runs fp32 only, and DCGAN_PRECISION=bf16"),
    ],
)
def test_onnxruntime_refused_where_it_cannot_run(device: torch.device, precision: str, says: str) -> None:
    with pytest.raises(OnnxUnavailable, match=r"^DCGAN_RUNTIME=onnxruntime " + says):
        check_runtime("onnxruntime", device, precision)
    check_runtime("torch", device, precision)  # PyTorch is never gated here


def test_a_missing_package_is_a_startup_error_naming_the_setting(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    for call in (Engine.load, Engine.preflight):
        with pytest.raises(StartupError, match=r"^DCGAN_RUNTIME=onnxruntime: the onnxruntime package is not installed"):
            call(str(checkpoint), "cpu", "fp32", "onnxruntime")


def test_dcgan_serve_refuses_onnxruntime_with_bf16_in_one_line(checkpoint: Path) -> None:
    env = os.environ | {
        "DCGAN_CHECKPOINT": str(checkpoint), "DCGAN_DEVICE": "cpu", "DCGAN_PRECISION": "bf16",
        "DCGAN_RUNTIME": "onnxruntime",
    }  # fmt: skip
    code = (
        "import sys; from models import precision; precision.cpu_flags = lambda cpuinfo=None: frozenset({'amx_bf16'}); "
        "from app.__main__ import main; sys.exit(main())"
    )  # bf16 itself allowed (as on an AMX CPU), so the runtime's own refusal is what speaks
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == ["dcgan-serve: error: DCGAN_RUNTIME=onnxruntime runs fp32 only, and DCGAN_PRECISION=bf16 "
                     "(pick one of the two speed-ups)"], lines  # fmt: skip


def test_onnxruntime_is_another_model_of_the_same_file(engines: tuple[Engine, Engine]) -> None:
    torch_engine, ort = engines
    assert ort.info.runtime == "onnxruntime" and torch_engine.info.runtime == "torch"
    assert ort.info.model_id == torch_engine.info.model_id + "-ort" and ort.info.sha256 == torch_engine.info.sha256
    assert ort.directions.keys() == torch_engine.directions.keys()  # computed from the fp32 weights, as before


def test_onnxruntime_pixels_are_within_a_level_of_pytorch(engines: tuple[Engine, Engine]) -> None:
    torch_engine, ort = engines
    z = latents_for_seeds(range(256), ort.nz)  # (256, nz)
    difference = (ort.forward(z).int() - torch_engine.forward(z).int()).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() < 1e-3


@pytest.mark.parametrize("chunk_rows", [None, 64])
def test_onnxruntime_pixels_ignore_batch_size_position_and_neighbours(
    engines: tuple[Engine, Engine], chunk_rows: int | None
) -> None:
    """256 seeds rendered one per forward are the reference; then batches of 1, 7, 64 and 256 (shuffled,
    so every seed meets other neighbours at another position), whole or in the server's 64-row pieces."""
    engine = engines[1]
    engine.chunk_rows = chunk_rows
    assert_batch_independent(engine)  # whole, or in the server's 64-row pieces


@pytest.mark.anyio
async def test_onnxruntime_serves_under_its_own_model_id(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as served:
        default = (await served.http.get("/v1/model")).json()
    async with serve(make_settings(runtime="onnxruntime")) as served:
        model = (await served.http.get("/v1/model")).json()
        r = await served.http.post("/generate", params={"n": 1, "seed": 3})
        batch = await served.http.post("/generate", params={"format": "json", "n": 7, "seed": 0})
        alone = await served.http.post("/generate", params={"format": "json", "n": 1, "seed": 3})
    assert default["runtime"] == "torch" and not default["model_id"].endswith("-ort")
    assert model["runtime"] == "onnxruntime" and model["precision"] == "fp32" and model["dtype"] == "float32"
    assert model["model_id"] == default["model_id"] + "-ort" and r.headers["x-model-id"] == model["model_id"]
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.text["dcgan:model_id"] == model["model_id"]  # type: ignore[attr-defined]
    assert batch.json()["images"][3]["png"] == alone.json()["images"][0]["png"]  # seed 3, position 3 or alone
