"""Several models in one service: listing, routing by ``model=``, per-model batches shared fairly, the admin
API and its refusals, zero-downtime swaps, SIGHUP, and the metrics that say so."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import os
import signal
import time
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from app.compute.engine import Engine
from app.runtime.settings import Settings
from tests.app.conftest import Served, serve, wait_for
from tests.app.registry_fixtures import ADMIN, export, hostile, manifest
from tests.conftest import tiny_encoder

pytestmark = pytest.mark.anyio
ADMIN_HEADERS = {"X-Admin-Token": ADMIN}


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    export(tmp_path / "alpha-1.safetensors", seed=1)
    export(tmp_path / "alpha-2.safetensors", seed=2)
    export(tmp_path / "beta.safetensors", seed=3)
    return tmp_path


@pytest.fixture
def registry_settings(models_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "models_manifest": manifest(
                models_dir, {"alpha": "alpha-1.safetensors", "beta": "beta.safetensors"}, "alpha"
            ),
            "device": "cpu",
            "max_batch_images": 64,
            "admin_token": ADMIN,
        }
        return Settings(**(values | overrides))

    return make


@pytest.fixture
async def two(registry_settings: Callable[..., Settings]) -> AsyncIterator[Served]:
    async with serve(registry_settings()) as s:
        yield s


async def face(served: Served, seed: int = 5, model: str | None = None) -> tuple[bytes, str]:
    params: dict[str, Any] = {"n": 2, "seed": seed} | ({"model": model} if model else {})
    r = await served.http.post("/generate", params=params)
    assert r.status_code == 200, r.text
    return r.content, r.headers["x-model-id"]


async def test_with_only_a_checkpoint_nothing_changes(served: Served) -> None:
    listing = (await served.http.get("/v1/models")).json()
    assert listing["default"] == "tiny-faces-32" and [m["name"] for m in listing["models"]] == ["tiny-faces-32"]
    entry = listing["models"][0]
    assert (
        entry["default"]
        and entry["model_id"] == served.service.info.model_id
        and entry["file"] == "tiny-faces-32.safetensors"
    )
    r = await served.http.post("/generate", params={"n": 1, "seed": 0})
    assert r.headers["x-model-id"] == entry["model_id"]
    assert (await served.http.get("/admin/default")).status_code in (404, 405)  # admin off: not there
    assert (await served.http.put("/admin/default", json={"name": "x"})).status_code == 404


async def test_models_are_listed_and_routed_by_name(two: Served) -> None:
    listing = (await two.http.get("/v1/models")).json()
    by_name = {m["name"]: m for m in listing["models"]}
    assert listing["default"] == "alpha" and set(by_name) == {"alpha", "beta"}
    assert by_name["alpha"]["default"] and not by_name["beta"]["default"]
    assert by_name["beta"]["quality"] == {"swd_x1e3": 13.0} and by_name["beta"]["provenance"]["steps"] == 3
    assert "sefa-0" in by_name["alpha"]["directions"] and by_name["alpha"]["config"]["image_size"] == 32
    alpha, alpha_id = await face(two)
    assert (await face(two, model="alpha")) == (alpha, alpha_id) and alpha_id == by_name["alpha"]["model_id"]
    beta, beta_id = await face(two, model="beta")
    assert beta != alpha and beta_id == by_name["beta"]["model_id"]
    for path, kwargs in [
        ("/interpolate", {"json": {"seed_a": 1, "seed_b": 2, "steps": 2}}),
        ("/edit", {"json": {"seed": 1, "direction": "sefa-0", "strengths": [0, 1]}}),
        ("/arithmetic", {"json": {"terms": [{"name": "t", "weight": 1, "seeds": [1]}], "neighbours": 0}}),
    ]:
        r = await two.http.post(path, params={"model": "beta"}, **kwargs)
        assert r.status_code == 200 and r.headers["x-model-id"] == beta_id, (path, r.text)
    assert (await two.http.get("/v1/directions", params={"model": "beta"})).json()["model_id"] == beta_id
    assert (await two.http.get("/latents", params={"seeds": "1", "model": "beta"})).json()["model_id"] == beta_id


async def test_an_unknown_model_is_404_and_a_path_is_422(two: Served) -> None:
    r = await two.http.post("/generate", params={"n": 1, "model": "gamma"})
    assert r.status_code == 404 and "alpha, beta" in r.json()["detail"]
    for bad in ("../beta", "beta.safetensors", "/etc/passwd", "a b", "", "x" * 65):
        r = await two.http.post("/generate", params={"n": 1, "model": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "model"], bad


async def test_a_batch_never_mixes_two_models(two: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    original = Engine.forward

    def forward(engine: Engine, z: torch.Tensor) -> torch.Tensor:
        calls.append((engine.info.model_id, z.shape[0]))
        time.sleep(0.01)
        return original(engine, z)

    monkeypatch.setattr(Engine, "forward", forward)
    alone = {m: (await face(two, seed=3, model=m))[0] for m in ("alpha", "beta")}
    calls.clear()
    requests = [two.http.post("/generate", params={"n": 2, "seed": 3, "model": m}) for m in ["alpha", "beta"] * 16]
    responses = await asyncio.gather(*requests)
    assert all(r.content == alone[m] for r, m in zip(responses, ["alpha", "beta"] * 16, strict=True))
    ids = {m: r.headers["x-model-id"] for r, m in zip(responses, ["alpha", "beta"] * 2, strict=False)}
    assert {i for i, _ in calls} == set(ids.values())
    assert (
        sum(rows for i, rows in calls if i == ids["alpha"]) == 32 == sum(rows for i, rows in calls if i == ids["beta"])
    )
    assert len(calls) < 32  # batched, per model


async def test_a_flood_on_one_model_does_not_starve_another(
    registry_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One forward worker, every forward 20 ms slower: 48 requests of n=16 on alpha (12 forwards of 64 rows)
    queue first; beta's requests each wait for about the alpha batch ahead of them, not for the flood."""
    original = Engine.forward

    def slow(engine: Engine, z: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return original(engine, z)

    monkeypatch.setattr(Engine, "forward", slow)
    async with serve(registry_settings(forward_workers=1, max_queued_images=4096)) as two:
        start = time.perf_counter()
        flood = [asyncio.create_task(two.http.post("/generate", params={"n": 16, "model": "alpha"})) for _ in range(48)]
        await asyncio.sleep(0.01)
        beta = []
        for seed in range(5):
            t0 = time.perf_counter()
            r = await two.http.post("/generate", params={"n": 1, "seed": seed, "model": "beta"})
            assert r.status_code == 200
            beta.append(time.perf_counter() - t0)
        beta_done = time.perf_counter() - start
        assert all(r.status_code == 200 for r in await asyncio.gather(*flood))
        flood_s = time.perf_counter() - start
        # each beta request waits for about one alpha batch (flood_s / 12) and its own, never for the flood
        assert beta_done < flood_s and max(beta) < flood_s / 4, (beta, flood_s)


async def test_admin_refuses_without_its_token(registry_settings: Callable[..., Settings]) -> None:
    async with serve(registry_settings(api_key="client-key-xyz")) as two:
        put = {"json": {"file": "alpha-2.safetensors"}}
        for headers in ({}, {"X-Admin-Token": "wrong-token-0123456789"}, {"X-API-Key": "client-key-xyz"},
                        {"X-Admin-Token": "client-key-xyz"}, {"Authorization": f"Bearer {ADMIN}"}):  # fmt: skip
            r = await two.http.put("/admin/models/alpha", headers=headers, **put)
            assert r.status_code == 401, headers
            assert (await two.http.delete("/admin/models/beta", headers=headers)).status_code == 401
            assert (await two.http.post("/admin/reload", headers=headers)).status_code == 401
        assert two.service.registry.models["alpha"].entry.path.name == "alpha-1.safetensors"
    with pytest.raises(ValueError, match="must differ"):
        registry_settings(api_key=ADMIN)


async def test_every_failing_candidate_is_refused_and_the_old_keeps_serving(two: Served, models_dir: Path) -> None:
    cases = hostile(models_dir / "alpha-2.safetensors", models_dir)
    before = await face(two), await face(two, model="beta")
    refused = two.metric("dcgan_model_swaps_total", outcome="refused")
    for case, (file, word) in cases.items():
        r = await two.http.put("/admin/models/alpha", headers=ADMIN_HEADERS, json={"file": file})
        assert r.status_code == 422 and word in r.json()["detail"], (case, r.text)
        assert file in r.json()["detail"]
        assert (await face(two), await face(two, model="beta")) == before, case
    for file in ("../alpha-2.safetensors", "/etc/passwd", "sub/x.safetensors", "x.pt"):
        r = await two.http.put("/admin/models/alpha", headers=ADMIN_HEADERS, json={"file": file})
        assert r.status_code == 422 and "plain" in r.json()["detail"], file
    r = await two.http.put("/admin/models/alpha", headers=ADMIN_HEADERS,
                           json={"file": "alpha-2.safetensors", "expect": {"0": "0" * 64}})  # fmt: skip
    assert r.status_code == 422 and "pixel digest" in r.json()["detail"]
    assert two.metric("dcgan_model_swaps_total", outcome="refused") - refused == len(cases) + 1
    assert (await two.http.get("/readyz")).status_code == 200
    assert not (models_dir / "canary").exists()


async def test_replace_move_default_unload(two: Served, models_dir: Path) -> None:
    old_alpha, old_id = await face(two)
    beta_before = await face(two, model="beta")
    old_generator = weakref.ref(two.service.registry.models["alpha"].engine.generator)
    digest = __import__("app.registry.registry", fromlist=["pixel_digest"])
    new_engine = Engine.load(str(models_dir / "alpha-2.safetensors"), "cpu")
    expect = {"0": digest.pixel_digest(new_engine, 0), "9": digest.pixel_digest(new_engine, 9)}
    r = await two.http.put(
        "/admin/models/alpha", headers=ADMIN_HEADERS, json={"file": "alpha-2.safetensors", "expect": expect}
    )
    assert r.status_code == 200, r.text
    new_id = r.json()["model_id"]
    new_alpha, got_id = await face(two)
    assert got_id == new_id != old_id and new_alpha != old_alpha
    assert await face(two, model="beta") == beta_before  # the model not swapped keeps its bytes
    await two.service.registry.drained()
    del new_engine
    gc.collect()
    assert old_generator() is None  # the old version was freed once drained
    assert two.metric("dcgan_model_info", model="alpha", model_id=new_id) == 1
    assert two.metric("dcgan_model_info", model="alpha", model_id=old_id) == 0
    r = await two.http.put("/admin/default", headers=ADMIN_HEADERS, json={"name": "beta"})
    assert r.status_code == 200 and (await face(two)) == beta_before
    assert two.metric("dcgan_model_info", model="beta", default="true") == 1
    assert (await two.http.delete("/admin/models/beta", headers=ADMIN_HEADERS)).status_code == 409  # the default
    assert (await two.http.delete("/admin/models/alpha", headers=ADMIN_HEADERS)).status_code == 200
    assert (await two.http.post("/generate", params={"n": 1, "model": "alpha"})).status_code == 404


async def test_the_cap_on_loaded_models(registry_settings: Callable[..., Settings]) -> None:
    async with serve(registry_settings(max_loaded_models=2)) as two:
        r = await two.http.put("/admin/models/gamma", headers=ADMIN_HEADERS, json={"file": "alpha-2.safetensors"})
        assert r.status_code == 409 and "DCGAN_MAX_LOADED_MODELS" in r.json()["detail"]
        r = await two.http.put("/admin/models/alpha", headers=ADMIN_HEADERS, json={"file": "alpha-2.safetensors"})
        assert r.status_code == 200  # a replacement is not one more model
    with pytest.raises(Exception, match="DCGAN_MAX_LOADED_MODELS"):
        async with serve(registry_settings(max_loaded_models=1)):
            pass


async def test_a_swap_under_load_drops_nothing(two: Served) -> None:
    """64 connections of n=1: a steady phase, then a replacement of the default model mid-load. No non-2xx;
    the swap phase's p99 stays within 2x of the steady phase's."""

    async def client(stop: asyncio.Event, out: list[tuple[float, float, int]]) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = await two.http.post("/generate", params={"n": 1})
            out.append((t0, time.perf_counter() - t0, r.status_code))

    stop, samples = asyncio.Event(), []  # type: ignore[var-annotated]
    clients = [asyncio.create_task(client(stop, samples)) for _ in range(64)]
    await asyncio.sleep(0.5)  # warm
    steady_start = time.perf_counter()
    await asyncio.sleep(1.5)
    swap_start = time.perf_counter()
    r = await two.http.put("/admin/models/alpha", headers=ADMIN_HEADERS, json={"file": "alpha-2.safetensors"})
    await two.service.registry.drained()
    await asyncio.sleep(0.3)
    swap_end = time.perf_counter()
    stop.set()
    await asyncio.gather(*clients)
    assert r.status_code == 200, r.text
    assert [s for _, _, s in samples if s >= 300] == []

    def p99(a: float, b: float) -> float:
        values = sorted(d for t, d, _ in samples if a <= t < b)
        return values[int(0.99 * (len(values) - 1))]

    steady, swap = p99(steady_start, swap_start), p99(swap_start, swap_end)
    print(f"swap under load: steady p99 {steady * 1e3:.1f} ms, swap p99 {swap * 1e3:.1f} ms, {len(samples)} requests")
    assert swap <= 2 * steady, (steady, swap)


async def test_sighup_re_reads_the_manifest(two: Served, models_dir: Path) -> None:
    _, old_id = await face(two)
    manifest(models_dir, {"alpha": "alpha-2.safetensors", "gamma": "beta.safetensors"}, "gamma")
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_for(lambda: "gamma" in two.service.registry.models and two.service.registry.default == "gamma")
    await wait_for(lambda: "beta" not in two.service.registry.models)
    assert (await face(two, model="alpha"))[1] != old_id
    r = await two.http.post("/admin/reload", headers=ADMIN_HEADERS)
    assert r.json() == {"alpha": "unchanged", "gamma": "unchanged"}
    (models_dir / "models.json").write_text("{not json")
    r = await two.http.post("/admin/reload", headers=ADMIN_HEADERS)
    assert "refused" in r.json()["manifest"] and (await two.http.get("/readyz")).status_code == 200


async def test_model_label_on_request_and_image_series(two: Served) -> None:
    await face(two, model="beta")
    assert two.metric("dcgan_images_generated_total", model="beta") == 2
    assert two.metric("dcgan_http_requests_total", route="/generate", model="beta", status="200") == 1
    assert two.metric("dcgan_model_info", model="alpha", default="true") == 1
    png = base64.b64decode(
        (await two.http.post("/generate", params={"n": 1, "seed": 1, "format": "json"})).json()["images"][0]["png"]
    )
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("manifest_text", "word"),
    [
        ("{not json", "unreadable manifest"),
        ('{"models": {}}', "non-empty"),
        ('{"models": {"a": {"file": "../alpha-1.safetensors"}}}', "plain"),
        ('{"models": {"a.b": {"file": "alpha-1.safetensors"}}}', "not a plain name"),
        ('{"models": {"a": {"file": "alpha-1.safetensors"}}, "default": "b"}', "default model 'b'"),
        ('{"models": {"a": {"file": "absent.safetensors"}}}', "no such file"),
        ('{"models": {"a": {"file": "alpha-1.safetensors", "expect": {"x": "y"}}}}', "expect"),
    ],
)
def test_a_bad_manifest_stops_the_service_with_one_line(
    models_dir: Path, manifest_text: str, word: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.app.test_server import run_main

    (models_dir / "models.json").write_text(manifest_text)
    code, err = run_main(monkeypatch, capsys, models_manifest=str(models_dir / "models.json"), device="cpu")
    assert code == 1 and len(err.splitlines()) == 1 and word in err, err


async def test_a_models_directory_serves_every_export_by_its_name(models_dir: Path) -> None:
    async with serve(Settings(models_dir=models_dir, default_model="beta", device="cpu", max_batch_images=64)) as s:
        listing = (await s.http.get("/v1/models")).json()
        assert [m["name"] for m in listing["models"]] == ["alpha-1", "alpha-2", "beta"] and listing["default"] == "beta"


async def test_admitted_requests_finish_on_the_version_they_resolved(two: Served, gate: Any) -> None:
    """One alpha request computing (held in its forward), one queued behind it; the swap goes through
    meanwhile, /readyz stays 200; both answer the old version's bytes, the next request the new one's."""
    old_bytes, old_id = await face(two, seed=11)
    gate.close()
    computing = asyncio.create_task(two.http.post("/generate", params={"n": 2, "seed": 11}))
    await gate.wait_entered()
    queued = asyncio.create_task(two.http.post("/generate", params={"n": 2, "seed": 11}))
    await wait_for(lambda: two.metric("dcgan_queue_depth_images") > 0 or len(gate.calls) > 1)
    r = await two.http.put("/admin/models/alpha", headers=ADMIN_HEADERS, json={"file": "alpha-2.safetensors"})
    assert r.status_code == 200 and (await two.http.get("/readyz")).status_code == 200
    new_id = r.json()["model_id"]
    after = asyncio.create_task(two.http.post("/generate", params={"n": 2, "seed": 11}))
    await asyncio.sleep(0.05)
    gate.open.set()
    for task in (computing, queued):
        response = await task
        assert response.headers["x-model-id"] == old_id and response.content == old_bytes
    assert (await after).headers["x-model-id"] == new_id != old_id
    await two.service.registry.drained()


async def test_invert_follows_the_default_model(registry_settings: Callable[..., Settings], models_dir: Path) -> None:
    """/invert inverts into the default model: an encoder beside alpha only, so moving the default to beta
    makes /invert a 503 naming beta's missing encoder, and moving it back inverts into alpha again."""
    tiny_encoder(models_dir / "alpha-1.safetensors")
    image = {"image": ("me.png", _png(seed=3))}

    async def invert() -> Any:
        return await s.http.post("/invert", params={"align": "false", "mode": "fast"}, files=image)

    async with serve(registry_settings(invert_nice=0)) as s:
        first = await invert()
        assert first.status_code == 200, first.text
        alpha_id = s.service.registry.models["alpha"].info.model_id
        assert first.json()["model_id"] == alpha_id
        assert (await s.http.put("/admin/default", headers=ADMIN_HEADERS, json={"name": "beta"})).status_code == 200
        moved = await invert()
        assert moved.status_code == 503 and "beta.encoder.safetensors" in moved.text, moved.text
        assert (await s.http.put("/admin/default", headers=ADMIN_HEADERS, json={"name": "alpha"})).status_code == 200
        back = await invert()
        assert back.status_code == 200 and back.json()["model_id"] == alpha_id
        assert back.json()["latent"] == first.json()["latent"]  # the same encoder, the same photo


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


async def test_a_default_whose_encoder_does_not_fit_makes_invert_a_503(
    registry_settings: Callable[..., Settings], models_dir: Path
) -> None:
    """DCGAN_INVERT_ENCODER names alpha's encoder; once beta is the default that file does not fit its
    generator: /invert answers 503 saying so, and everything else keeps serving."""
    encoder = tiny_encoder(models_dir / "alpha-1.safetensors")
    async with serve(registry_settings(invert_encoder=encoder, invert_nice=0)) as s:
        assert (await s.http.put("/admin/default", headers=ADMIN_HEADERS, json={"name": "beta"})).status_code == 200
        r = await s.http.post("/invert", params={"align": "false"}, files={"image": ("me.png", _png(seed=1))})
        assert r.status_code == 503 and "encoder cannot be used" in r.text, r.text
        assert (await s.http.post("/generate", params={"n": 1})).status_code == 200
