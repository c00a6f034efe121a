"""POST /invert through the lifespan: the answer, latent reuse in every latent route, options, limits
(413, 415, 503 queue full, 503 no encoder, 504), metrics. A tiny 32x32 export with a random encoder
beside it; photos are synthetic (align=false) unless a face is needed (held-out CelebA from ../shared)."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

import app.invert.inverter as inverter_module
from app.compute.engine import StartupError
from app.invert.inverter import Inverter
from app.runtime.settings import Settings
from inversion.encoder import default_path
from models import precision
from tests.app.conftest import TINY, Served, serve, wait_for
from tests.conftest import celeba_photos, tiny_export

pytestmark = pytest.mark.anyio


@pytest.fixture
async def inv(invert_settings: Callable[..., Settings]) -> AsyncIterator[Served]:
    async with serve(invert_settings(invert_default_steps=3, invert_max_steps=10)) as s:
        yield s


def photo(size: tuple[int, int] = (40, 50), fmt: str = "PNG", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


async def post(s: Served, data: bytes, *, query: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    return await s.http.post("/invert", params=query or {}, files={"image": ("me.png", data)}, data=fields)


async def test_invert_answers_latent_crop_reconstruction(inv: Served) -> None:
    r = await post(inv, photo(), query={"align": "false", "mode": "fast"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["mode"], out["steps"], out["align"]) == ("fast", 0, False)
    assert len(out["latent"]) == TINY.nz and all(abs(v) < 100 for v in out["latent"])
    assert decode(out["aligned"]).shape == decode(out["reconstruction"]).shape == (32, 32, 3)
    assert isinstance(out["psnr"], float) and -1 <= out["ssim"] <= 1 and out["seconds"] > 0
    assert out["model_id"] == inv.service.info.model_id
    assert out["face"] == {"box": None, "eyes": None, "faces_found": 0, "note": out["face"]["note"]}


async def test_faithful_steps_and_determinism(inv: Served) -> None:
    first = await post(inv, photo(seed=3), query={"align": "false", "steps": "4"})
    again = await post(inv, photo(seed=3), align="false", steps="4")  # as form fields this time
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert (first.json()["mode"], first.json()["steps"]) == ("faithful", 4)
    assert first.json()["latent"] == again.json()["latent"]  # same photo, same settings: same latent
    default = await post(inv, photo(seed=3), query={"align": "false"})
    assert default.json()["steps"] == 3  # DCGAN_INVERT_DEFAULT_STEPS


async def test_latent_works_in_every_latent_route(inv: Served) -> None:
    out = (await post(inv, photo(seed=1), query={"align": "false", "mode": "fast"})).json()
    z = out["latent"]
    gen = await inv.http.post("/generate", json={"latents": [z]})
    assert gen.status_code == 200
    # the reconstruction is the face /generate draws for the latent, pixel for pixel
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(gen.content)).convert("RGB"))[2:-2, 2:-2],
                          decode(out["reconstruction"]))  # fmt: skip
    edit = await inv.http.post(
        "/edit", json={"latent": z, "direction": "sefa-0", "strengths": [0, 1], "format": "json"}
    )
    assert edit.status_code == 200, edit.text
    assert np.array_equal(decode(edit.json()["frames"][0]["png"]), decode(out["reconstruction"]))
    interp = await inv.http.post("/interpolate", json={"latent_a": z, "latent_b": z, "steps": 2})
    assert interp.status_code == 200, interp.text
    terms = [{"name": "upload", "weight": 1, "latents": [z]}]
    arith = await inv.http.post("/arithmetic", json={"terms": terms, "neighbours": 0})
    assert arith.status_code == 200, arith.text


@pytest.mark.parametrize(
    ("query", "fields", "loc", "words"),
    [
        ({"steps": "11"}, {}, ["query", "steps"], "1..10"),
        ({"mode": "fast", "steps": "5"}, {}, ["query", "steps"], "mode=faithful"),
        ({"mode": "slow"}, {}, ["query", "mode"], "fast"),
        ({}, {"steps": "many"}, ["body", "steps"], "integer"),
        ({"mode": "fast"}, {"mode": "fast"}, ["body", "mode"], "both"),
        ({}, {"colour": "red"}, ["body", "colour"], "unknown form field"),
    ],
)
async def test_bad_options_are_422_naming_the_field(
    inv: Served, query: dict[str, str], fields: dict[str, str], loc: list[str], words: str
) -> None:
    r = await post(inv, photo(), query={"align": "false", **query}, **fields)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail[0]["loc"] == loc and words in detail[0]["msg"], detail


async def test_bad_forms(inv: Served) -> None:
    missing = await inv.http.post("/invert", files={"photo": ("a.png", photo())})
    assert missing.status_code == 422 and "unknown form field 'photo'" in missing.text
    no_image = await inv.http.post("/invert", data={"mode": "fast"}, files={"mode2": ("", b"")})
    assert no_image.status_code == 422
    only_field = await inv.http.post("/invert", files={"mode": (None, b"fast")})
    assert only_field.status_code == 422 and "no file field 'image'" in only_field.text
    as_json = await inv.http.post("/invert", json={"image": "x"})
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.text
    headers = {"content-type": "multipart/form-data; boundary=xyz"}
    head = b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
    cut = await inv.http.post("/invert", content=head + photo()[:100], headers=headers)
    assert cut.status_code == 400 and "cut short" in cut.text
    garbage = await inv.http.post("/invert", content=b"garbage", headers=headers)
    assert garbage.status_code == 400 and "malformed" in garbage.text
    twice = await inv.http.post("/invert", files=[("image", ("a.png", photo())), ("image", ("b.png", photo()))])
    assert twice.status_code == 422 and "twice" in twice.text


async def test_body_over_the_cap_is_413_announced_or_streamed(invert_settings: Callable[..., Settings]) -> None:
    async with serve(invert_settings(invert_max_upload_bytes=4096)) as s:
        big = photo((64, 64))  # ~12 KB of noise
        announced = await post(s, big, query={"align": "false"})
        assert announced.status_code == 413 and "4,096-byte cap" in announced.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\n'
            for _ in range(10):
                yield b"x" * 1000

        streamed = await s.http.post(
            "/invert", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert streamed.status_code == 413
        assert s.metric("dcgan_inversions_total", mode="unknown", outcome="bad_request") == 2


async def test_no_encoder_is_503_and_ready(served: Served) -> None:
    assert not default_path(served.service.settings.checkpoint).exists()
    r = await post(served, photo(), query={"align": "false"})
    assert r.status_code == 503 and "Retry-After" not in r.headers
    assert "no encoder" in r.json()["detail"]
    assert (await served.http.get("/readyz")).status_code == 200
    assert (await served.http.post("/generate?n=1&seed=0")).status_code == 200


async def test_turned_off_is_503(invert_settings: Callable[..., Settings]) -> None:
    async with serve(invert_settings(invert_enabled=False)) as s:
        r = await post(s, photo(), query={"align": "false"})
        assert r.status_code == 503 and "DCGAN_INVERT_ENABLED" in r.json()["detail"]


class Hold:
    """Blocks every inversion in its thread until released; counts the ones that started."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0
        self.nice: list[int] = []

    def wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            self.started += 1
            self.nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            assert self.release.wait(30), "the test never released the inversion"
            return original(*args, **kwargs)

        return held


@pytest.fixture
def hold(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hold]:
    h = Hold()
    monkeypatch.setattr(inverter_module, "invert_photo", h.wrap(inverter_module.invert_photo))
    yield h
    h.release.set()


async def test_queue_full_is_503_with_retry_after_and_generation_goes_on(
    invert_settings: Callable[..., Settings], hold: Hold
) -> None:
    async with serve(invert_settings(invert_concurrency=1, invert_queue=1, invert_nice=10)) as s:
        running = asyncio.create_task(post(s, photo(), query={"align": "false", "mode": "fast"}))
        await wait_for(lambda: hold.started == 1)
        queued = asyncio.create_task(post(s, photo(), query={"align": "false", "mode": "fast"}))
        await wait_for(lambda: s.metric("dcgan_inversion_queue_depth") == 1)
        refused = await post(s, photo(), query={"align": "false", "mode": "fast"})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert "queued" in refused.json()["detail"]
        # generation does not wait for the inversion thread
        assert (await s.http.post("/generate?n=1&seed=0")).status_code == 200
        hold.release.set()
        assert (await running).status_code == (await queued).status_code == 200
        assert s.metric("dcgan_inversions_total", mode="fast", outcome="ok") == 2
        assert s.metric("dcgan_inversions_total", mode="fast", outcome="queue_full") == 1
        assert hold.nice == [10, 10]  # DCGAN_INVERT_NICE: generation's threads get the CPU first


async def test_deadline_is_504_queued_or_running(invert_settings: Callable[..., Settings], hold: Hold) -> None:
    async with serve(invert_settings(invert_concurrency=1, invert_queue=1, invert_timeout_s=0.5)) as s:
        running = asyncio.create_task(post(s, photo(), query={"align": "false", "mode": "fast"}))
        queued = asyncio.create_task(post(s, photo(), query={"align": "false", "mode": "fast"}))
        late_running, late_queued = await running, await queued
        assert late_running.status_code == late_queued.status_code == 504
        details = {late_running.json()["detail"], late_queued.json()["detail"]}
        assert any("while queued (never computed)" in d for d in details), details
        assert any("while the inversion ran" in d for d in details), details
        assert hold.started == 1  # the queued one never ran
        hold.release.set()
        await wait_for(lambda: s.metric("dcgan_inversions_running") == 0)
        assert s.metric("dcgan_inversions_total", mode="fast", outcome="deadline") == 2


async def test_metrics_count_modes_outcomes_duration_steps(inv: Served) -> None:
    await post(inv, photo(), query={"align": "false", "steps": "2"})
    await post(inv, b"not an image", query={"align": "false"})
    await post(inv, photo(), query={"steps": "99"})
    assert inv.metric("dcgan_inversions_total", mode="faithful", outcome="ok") == 1
    assert inv.metric("dcgan_inversions_total", mode="faithful", outcome="bad_upload") == 1
    assert inv.metric("dcgan_inversions_total", mode="unknown", outcome="bad_request") == 1
    assert inv.metric("dcgan_inversion_duration_seconds_count", mode="faithful") == 1
    assert inv.metric("dcgan_inversion_steps_sum") == 2
    text = (await inv.http.get("/metrics")).text
    assert 'dcgan_inversions_total{mode="fast",outcome="no_face"} 0.0' in text


async def test_held_out_celeba_face_is_aligned(inv: Served, tmp_path: Path) -> None:
    face = celeba_photos(["009500.jpg"], tmp_path)["009500.jpg"].read_bytes()
    r = await post(inv, face, query={"mode": "fast"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["align"] is True and out["face"]["faces_found"] >= 1
    x, y, w, h = out["face"]["box"]
    assert 0 <= x < 178 and 0 <= y < 218 and w > 30 and h > 30  # a face in a 178x218 CelebA photo
    assert out["face"]["eyes"] is not None


async def test_no_face_is_422_saying_so(inv: Served) -> None:
    grey = io.BytesIO()
    Image.new("RGB", (200, 200), (128, 128, 128)).save(grey, format="PNG")
    r = await post(inv, grey.getvalue(), query={"mode": "fast"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "image"] and detail["type"] == "no_face" and "face" in detail["msg"]
    assert inv.metric("dcgan_inversions_total", mode="fast", outcome="no_face") == 1


def test_a_bad_encoder_file_stops_the_start(tmp_path: Path, invertible: Path) -> None:
    """An encoder beside the export that is not its own: a startup error naming the file, before serving."""
    other = tiny_export(tmp_path / "other.safetensors", TINY, steps=2)  # other weights: another sha256
    default_path(other).write_bytes(default_path(invertible).read_bytes())
    with pytest.raises(StartupError, match=r"other\.encoder\.safetensors"):
        Inverter.preflight(Settings(checkpoint=other, device="cpu"), other)
    Inverter.preflight(Settings(checkpoint=invertible, device="cpu"), invertible)  # its own encoder passes
    Inverter.preflight(Settings(checkpoint=other, device="cpu", invert_enabled=False), other)  # turned off: not read


@pytest.mark.skipif(
    not precision.cpu_bf16_support(),
    reason="this CPU has neither AVX-512 BF16 nor AMX: DCGAN_PRECISION=bf16 is refused",
)
async def test_inversion_runs_in_fp32_when_generation_serves_bf16(invert_settings: Callable[..., Settings]) -> None:
    async with serve(invert_settings(precision="bf16", invert_default_steps=2)) as s:
        r = await post(s, photo(seed=5), query={"align": "false"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model_id"].endswith("-bf16")
        gen = await s.http.post("/generate", json={"latents": [out["latent"]]})  # drawn in bf16: a few levels off
        drawn = np.asarray(Image.open(io.BytesIO(gen.content)).convert("RGB"))[2:-2, 2:-2].astype(int)
        assert np.abs(drawn - decode(out["reconstruction"]).astype(int)).max() <= 16


async def test_the_reconstruction_names_the_fp32_pytorch_model_that_drew_it(
    invert_settings: Callable[..., Settings],
) -> None:
    """With DCGAN_RUNTIME=onnxruntime generation is the -ort model; the reconstruction is drawn by the
    inverter's own fp32 PyTorch generator, and its PNG text says so (the JSON names the served model)."""
    async with serve(invert_settings(runtime="onnxruntime", invert_default_steps=2)) as s:
        r = await post(s, photo(seed=5), query={"align": "false"})
        assert r.status_code == 200, r.text
        out = r.json()
    assert out["model_id"] == s.service.info.model_id and out["model_id"].endswith("-ort")
    with Image.open(io.BytesIO(base64.b64decode(out["reconstruction"]))) as img:
        assert img.text["dcgan:model_id"] == out["model_id"].removesuffix("-ort")  # type: ignore[attr-defined]
