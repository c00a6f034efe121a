"""The CUDA serving path: its policies on the CPU with CUDA's presence simulated, liveness after a
device error (injected into the forward), and, marked ``cuda``, the byte contract on a real GPU."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from app import service as service_module
from app.compute import engine as engine_module
from app.compute.engine import Engine, StartupError, forward_workers, resolve_device, torch_threads, warmup_sizes
from app.runtime import cpu_quota
from app.runtime.settings import Settings
from models import load_export
from models.cuda import exact_convolutions, exact_convolutions_within, is_device_lost, unavailable_reason
from tests.app.conftest import Served, serve

ILLEGAL_ADDRESS = "CUDA error: an illegal memory access was encountered"


@pytest.fixture
def cudnn_flags() -> Iterator[None]:
    """Put back the process-wide cuDNN/TF32 flags a test sets."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    yield
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make torch report one CUDA device of the given capability (nothing runs on it)."""

    def install(capability: tuple[int, int] = (9, 0)) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Simulated GPU")

    return install


def test_policies_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """2 forward workers (one encodes while the other computes), 1 torch thread each, whatever the cores."""
    monkeypatch.setattr(cpu_quota, "cgroup_quota", lambda *args: None)
    gpu = torch.device("cuda")
    for cores in (1, 2, 64):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert forward_workers(None, gpu) == 2 and torch_threads(None, gpu, workers=2) == 1
    assert forward_workers(3, gpu) == 3 and torch_threads(4, gpu) == 4  # settings win


def test_warm_up_covers_every_shape_a_forward_can_have() -> None:
    assert warmup_sizes(64) == [8, 16, 24, 32, 40, 48, 56, 64]  # CPU: render pads each piece to 8
    assert warmup_sizes(20) == [8, 16, 24]
    assert warmup_sizes(64, fixed_shape=True) == [64]  # CUDA: one shape


def test_exact_convolutions_sets_the_contracts_flags(cudnn_flags: None) -> None:
    torch.backends.cudnn.benchmark = True  # as training sets it (models.cuda.fast_training)
    with exact_convolutions_within():  # training's sample grids: the service's flags, then training's back
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    exact_convolutions()
    cudnn = torch.backends.cudnn
    assert cudnn.deterministic and not cudnn.benchmark
    assert not cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert cudnn.conv.fp32_precision != "tf32" and torch.backends.cuda.matmul.fp32_precision != "tf32"  # IEEE
    with cudnn.flags(enabled=True):  # the old flag stays readable (torch.compile and cudnn.flags read it)
        pass


def test_startup_names_the_driver_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def too_old() -> None:
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 12040).\nMore text")

    monkeypatch.setattr(torch.cuda, "init", too_old)
    with pytest.raises(StartupError) as e:
        resolve_device("cuda")
    message = str(e.value)
    assert "\n" not in message and "CUDA is not available" in message and "too old (found version 12040)" in message
    assert "driver >= 580" in message and "DCGAN_DEVICE=cpu" in message
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU wheel" in unavailable_reason()


def test_a_gpu_below_sm_75_is_refused_at_startup(fake_gpu: Callable[..., None]) -> None:
    fake_gpu((7, 0))
    with pytest.raises(StartupError, match=r"sm 7\.0.*>= 7\.5"):
        resolve_device("cuda")
    with pytest.raises(StartupError, match=r"sm 7\.0"):
        resolve_device("auto")  # auto takes the GPU, and checks it the same way
    fake_gpu((7, 5))
    assert resolve_device("cuda") == torch.device("cuda") == resolve_device("auto")


def test_device_lost_is_told_from_out_of_memory() -> None:
    assert is_device_lost(RuntimeError(ILLEGAL_ADDRESS))
    assert is_device_lost(torch.AcceleratorError("CUDA error: unspecified launch failure"))
    assert is_device_lost(RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"))
    assert not is_device_lost(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_device_lost(RuntimeError("CUDA error: out of memory"))
    assert not is_device_lost(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_device_lost(ValueError(ILLEGAL_ADDRESS))


@pytest.fixture
def simulated_cuda_engine(monkeypatch: pytest.MonkeyPatch, cudnn_flags: None) -> list[int]:
    """``Engine.load`` takes the CUDA path (device cuda, exact flags) but keeps the weights on the CPU;
    returns the row count of every generator forward."""
    cuda = lambda spec, announce=True: torch.device("cuda")  # noqa: E731
    monkeypatch.setattr(engine_module, "resolve_device", cuda)
    monkeypatch.setattr(service_module, "resolve_device", cuda)  # the service resolves its device for every model
    monkeypatch.setattr(engine_module, "load_export", lambda path, device: load_export(path, torch.device("cpu")))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    rows: list[int] = []
    original = engine_module.render
    monkeypatch.setattr(engine_module, "render", lambda g, z, n=None: rows.append(n or z.shape[0]) or original(g, z, n))
    threads = torch.get_num_threads()
    yield rows  # type: ignore[misc]
    torch.set_num_threads(threads)


@pytest.mark.anyio
async def test_a_cuda_service_runs_every_forward_at_its_one_warmed_shape(
    make_settings: Callable[..., Settings], simulated_cuda_engine: list[int]
) -> None:
    """Warm-up runs the one shape; co-batched requests of 1, 7, 13, 64 rows all run as 16-row pieces, with
    the CPU service's bytes (on the CPU a 16-row pad gives the 8-row pad's pixels)."""
    settings = make_settings(device="cuda", cuda_chunk_rows=16, max_wait_ms=50)
    async with serve(settings) as served:
        engine = served.service.engine
        assert engine.fixed_shape and engine.chunk_rows == 16 and torch.backends.cudnn.deterministic
        assert served.service._pool is not None and served.service._pool.workers == 2
        assert torch.get_num_threads() == 1
        assert set(simulated_cuda_engine) == {16}  # warm-up: the one shape, in each worker
        simulated_cuda_engine.clear()
        cuda = await asyncio.gather(*(grid(served, n, 100 * n) for n in (1, 7, 13, 64)))
        assert simulated_cuda_engine and set(simulated_cuda_engine) == {16}
    async with serve(make_settings(max_wait_ms=50)) as served:
        assert cuda == [await grid(served, n, 100 * n) for n in (1, 7, 13, 64)]


async def grid(served: Served, n: int, seed: int) -> bytes:
    r = await served.http.post("/generate", params={"n": n, "seed": seed})
    assert r.status_code == 200, r.text
    return r.content


def failing_forward(monkeypatch: pytest.MonkeyPatch, error: Exception, calls: int = 1) -> None:
    """The first ``calls`` forwards raise ``error``; the later ones render."""
    original, count = Engine.forward, [0]

    def forward(engine: Engine, z: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        if count[0] <= calls:
            raise error
        return original(engine, z)

    monkeypatch.setattr(Engine, "forward", forward)


@pytest.mark.anyio
async def test_a_lost_device_fails_liveness_and_readiness(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(make_settings(forward_workers=1)) as served:
        failing_forward(monkeypatch, RuntimeError(ILLEGAL_ADDRESS))
        r = await served.http.post("/generate", params={"n": 2, "seed": 1})
        assert r.status_code == 500  # that batch
        assert (await served.http.get("/healthz")).status_code == 500
        health = (await served.http.get("/healthz")).json()
        assert health["status"] == "failed" and ILLEGAL_ADDRESS in health["detail"]
        ready = await served.http.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"status": "failed"}
        later = await served.http.post("/generate", params={"n": 1, "seed": 2})
        assert later.status_code == 503 and later.headers["retry-after"] == "1"  # never queued on a dead device
        assert served.metric("dcgan_device_lost") == 1
    assert any(r.levelname == "CRITICAL" and "unusable" in r.getMessage() for r in caplog.records)
    assert served.service.state == "failed"  # the lifespan's stop keeps it: /healthz stays 500 until the process ends


@pytest.mark.anyio
async def test_out_of_memory_is_a_503_for_its_batch_only(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve(make_settings(forward_workers=1)) as served:
        failing_forward(monkeypatch, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
        r = await served.http.post("/generate", params={"n": 3, "seed": 1})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "out of device memory" in r.text
        assert served.metric("dcgan_rejections_total", reason="out_of_memory") == 1
        assert (await served.http.get("/healthz")).status_code == 200
        assert (await served.http.get("/readyz")).status_code == 200
        assert (await served.http.post("/generate", params={"n": 3, "seed": 1})).status_code == 200
        assert served.metric("dcgan_device_lost") == 0


# ---- on a GPU (`make gpu-check`) --------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.anyio
async def test_cuda_same_bytes_whatever_n_and_batch_twice(make_settings: Callable[..., Settings]) -> None:
    """n = 1, 7, 13, 64, 256 co-batched, twice: each seed's PNG is the one it has alone."""
    settings = make_settings(
        device="cuda", max_batch_images=512, max_images_per_request=256, max_queued_images=4096, max_wait_ms=50
    )
    async with serve(settings) as served:
        alone = {s: await pngs(served, n=1, seed=s) for s in (0, 6, 12, 63, 255)}
        for _ in range(2):
            results = await asyncio.gather(*(pngs(served, n=n, seed=0) for n in (1, 7, 13, 64, 256)))
            for n, got in zip((1, 7, 13, 64, 256), results, strict=True):
                for seed, png in alone.items():
                    if seed < n:
                        assert got[seed] == png[seed], (n, seed)


async def pngs(served: Served, **params: object) -> dict[int, str]:
    r = await served.http.post("/generate", params={"format": "json", **params})
    assert r.status_code == 200, r.text
    return {item["seed"]: item["png"] for item in r.json()["images"]}


@pytest.mark.cuda
def test_cuda_pixels_within_one_level_of_the_cpus(checkpoint: Path, cudnn_flags: None) -> None:
    from models.latent import latents_for_seeds

    cpu, gpu = Engine.load(str(checkpoint), "cpu"), Engine.load(str(checkpoint), "cuda")
    gpu.chunk_rows, gpu.fixed_shape = 64, True
    z = latents_for_seeds(list(range(256)), cpu.nz)
    diff = (cpu.forward(z).int() - gpu.forward(z).int()).abs()
    assert diff.max().item() <= 1, diff.max()
