"""Semantic editing through the API: /v1/directions, /edit in every format, direction terms in /arithmetic,
the seed -> bytes contract at strength 0, determinism whatever shares the batch, and the 422s."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.runtime.settings import Settings
from models import Direction, load_export
from models.directions import sefa
from tests.app.conftest import TINY, Served, serve
from tests.conftest import tiny_export

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def with_directions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny generator with two stored attribute directions (any unit vectors will do here)."""
    g = torch.Generator().manual_seed(5)
    vectors = [v / v.norm() for v in torch.randn(2, TINY.nz, generator=g)]
    stored = [
        Direction("Smiling", vectors[0], "attribute", 0.91, "test"),
        Direction("Male", vectors[1], "attribute", 0.97, "test"),
    ]
    return tiny_export(tmp_path_factory.mktemp("edit") / "tiny-directions.safetensors", TINY, stored)


@pytest.fixture(scope="module")
async def served(with_directions: Path) -> AsyncIterator[Served]:
    async with serve(Settings(checkpoint=with_directions, device="cpu", max_batch_images=64)) as s:
        yield s


def decode(data: str | bytes) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data) if isinstance(data, str) else data))


async def test_directions_lists_the_stored_ones_then_sefa(served: Served, with_directions: Path) -> None:
    r = await served.http.get("/v1/directions")
    assert r.status_code == 200
    dirs = r.json()["directions"]
    assert [d["name"] for d in dirs] == ["Smiling", "Male", *(f"sefa-{i}" for i in range(5))]
    assert dirs[0] | {"cosine": None} == {
        "name": "Smiling", "kind": "attribute", "separation": 0.91, "source": "test",
        "correlates_with": None, "cosine": None,
    }  # fmt: skip
    assert all(d["kind"] == "sefa" and d["correlates_with"] in ("Smiling", "Male") for d in dirs[2:])
    expected = sefa(load_export(with_directions).generator)
    assert [d["separation"] for d in dirs[2:]] == [d.separation for d in expected]


async def test_edit_strip_gif_webp_and_json(served: Served) -> None:
    body = {"seed": 3, "direction": "Smiling", "strengths": [-2, 0, 2]}
    strip = await served.http.post("/edit", json=body)
    assert strip.status_code == 200 and strip.headers["content-type"] == "image/png"
    assert decode(strip.content).size == (3 * 32 + 4 * 2, 32 + 2 * 2)  # one row of three frames
    for fmt in ("gif", "webp"):
        r = await served.http.post("/edit", json=body | {"format": fmt})
        assert r.status_code == 200 and r.headers["content-type"] == f"image/{fmt}"
        assert decode(r.content).n_frames == 4  # -2, 0, 2, 0: forward and back
    frames = (await served.http.post("/edit", json=body | {"format": "json"})).json()["frames"]
    assert [f["strength"] for f in frames] == [-2.0, 0.0, 2.0]
    pixels = [torch.tensor(np.array(decode(f["png"])), dtype=torch.float32) for f in frames]
    assert not torch.equal(pixels[0], pixels[1]) and not torch.equal(pixels[2], pixels[1])  # (random weights: faintly)


async def test_strength_zero_is_the_plain_face_byte_for_byte(served: Served) -> None:
    plain = (await served.http.post("/generate", params={"n": 1, "seed": 11, "format": "json"})).json()
    for direction in ("Male", "sefa-1", [{"name": "Smiling", "weight": 0.5}, {"name": "sefa-0", "weight": -1}]):
        body = {"seed": 11, "direction": direction, "strengths": [1.5, 0, -1], "format": "json"}
        frames = (await served.http.post("/edit", json=body)).json()["frames"]
        assert frames[1]["png"] == plain["images"][0]["png"], direction
        assert frames[0]["png"] != frames[1]["png"]
    truncated = {"seed": 11, "direction": "Male", "strengths": [0], "format": "json", "truncation": 1.5}
    plain_t = await served.http.post("/generate", params={"n": 1, "seed": 11, "format": "json", "truncation": 1.5})
    edited = (await served.http.post("/edit", json=truncated)).json()
    assert edited["frames"][0]["png"] == plain_t.json()["images"][0]["png"]


async def test_edit_bytes_do_not_depend_on_what_shares_the_batch(served: Served) -> None:
    body = {"seed": 21, "direction": "Smiling", "strengths": [-1, 1], "format": "json"}
    alone = (await served.http.post("/edit", json=body)).json()
    crowd = [served.http.post("/generate", params={"n": n, "seed": 100 * n}) for n in (3, 5, 7)]
    together, *_ = await asyncio.gather(served.http.post("/edit", json=body), *crowd)
    assert together.json() == alone


async def test_keep_projects_a_direction_out(served: Served) -> None:
    body = {"seed": 2, "direction": "Smiling", "strengths": [2], "format": "json"}
    free = (await served.http.post("/edit", json=body)).json()["frames"][0]["png"]
    kept = (await served.http.post("/edit", json=body | {"keep": ["Male"]})).json()["frames"][0]["png"]
    assert free != kept


async def test_unknown_directions_are_422_naming_them_and_listing_the_known(served: Served) -> None:
    cases = [
        ({"seed": 1, "direction": "Beard"}, ["body", "direction"]),
        ({"seed": 1, "direction": [{"name": "Male"}, {"name": "Hat"}]}, ["body", "direction", 1, "name"]),
        ({"seed": 1, "direction": "Male", "keep": ["Hat"]}, ["body", "keep", 0]),
    ]
    for body, loc in cases:
        r = await served.http.post("/edit", json=body)
        assert r.status_code == 422, r.text
        (error,) = r.json()["detail"]
        assert error["loc"] == loc and "unknown direction" in error["msg"] and "Smiling, Male, sefa-0" in error["msg"]
    cancel = {"seed": 1, "direction": [{"name": "Male", "weight": 1}, {"name": "Male", "weight": -1}]}
    assert (await served.http.post("/edit", json=cancel)).json()["detail"][0]["loc"] == ["body", "direction"]
    both = await served.http.post("/edit", json={"seed": 1, "latent": [0.0] * TINY.nz, "direction": "Male"})
    assert both.json()["detail"][0]["loc"] == ["body", "latent"]
    far = await served.http.post("/edit", json={"seed": 1, "direction": "Male", "strengths": [11]})
    assert far.json()["detail"][0]["loc"] == ["body", "strengths", 0]
    many = await served.http.post("/edit", json={"seed": 1, "direction": "Male", "strengths": [0.5] * 65})
    assert many.json()["detail"][0]["loc"] == ["body", "strengths"]


async def test_arithmetic_takes_direction_terms(served: Served) -> None:
    body = {
        "terms": [
            {"name": "a face", "weight": 1, "seeds": [1, 2]},
            {"name": "more smile", "weight": 2, "direction": "Smiling"},
        ],
        "neighbours": 2,
        "format": "json",
    }
    r = await served.http.post("/arithmetic", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [t["direction"] for t in out["terms"]] == [None, "Smiling"]
    assert out["terms"][1]["mean"] is None and out["terms"][1]["exemplars"] == [] and len(out["neighbours"]) == 2
    grid = await served.http.post("/arithmetic", json=body | {"format": "grid"})
    assert decode(grid.content).size == (3 * 34 + 2, 3 * 34 + 2)  # exemplars, means (one blank), result row
    bad = await served.http.post("/arithmetic", json=body | {"terms": [{"name": "x", "weight": 1, "direction": "Hat"}]})
    assert bad.json()["detail"][0]["loc"] == ["body", "terms", 0, "direction"]
    two = {"name": "x", "weight": 1, "direction": "Male", "seeds": [1]}
    assert (await served.http.post("/arithmetic", json={"terms": [two]})).status_code == 422


async def test_every_edit_status_is_documented(served: Served) -> None:
    spec = (await served.http.get("/openapi.json")).json()
    assert {"200", "401", "413", "422", "503", "504"} <= set(spec["paths"]["/edit"]["post"]["responses"])
    assert "503" in spec["paths"]["/v1/directions"]["get"]["responses"]
